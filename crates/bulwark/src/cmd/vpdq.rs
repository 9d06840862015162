//! `bulwark vpdq hash|match`: video hashing and matching.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use bulwark_vpdq::{FrameHash, MatchRule, Options};

/// vPDQ subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Hash a video's frames: `frame,quality,hash,timestamp` lines, as the reference tool prints.
    Hash {
        /// The video.
        video: PathBuf,
        #[command(flatten)]
        opts: HashOpts,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Compare two videos (or hash files): both match percentages and the
    /// verdict. Exit 0 on a match, 1 otherwise.
    Match {
        /// Query video, or a file of hash lines.
        a: PathBuf,
        /// Compared video, or a file of hash lines.
        b: PathBuf,
        /// Frames match when their distance is at most this.
        #[arg(long, default_value_t = 31)]
        distance: u32,
        /// Ignore frames below this quality.
        #[arg(long, default_value_t = 50)]
        quality: u32,
        /// Minimum percent of A's frames found in B.
        #[arg(long, default_value_t = 80.0)]
        query_percent: f64,
        /// Minimum percent of B's frames found in A.
        #[arg(long, default_value_t = 0.0)]
        compared_percent: f64,
        #[command(flatten)]
        opts: HashOpts,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Frame sampling and limits.
#[derive(clap::Args, Clone)]
pub struct HashOpts {
    /// Hash one frame every this many seconds (default: every frame).
    #[arg(long)]
    every: Option<f64>,
    /// Scale frames to N×N (area filter) before hashing.
    #[arg(long)]
    size: Option<u32>,
    /// Stop decoding after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

impl HashOpts {
    pub fn options(&self) -> Options {
        let mut o = Options::default();
        o.every_seconds = self.every;
        o.size = self.size;
        o.timeout = Duration::from_secs(self.timeout);
        o
    }
}

pub fn run(c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Hash { video, opts, json } => {
            let frames = bulwark_vpdq::hash_video(&video, &opts.options())
                .with_context(|| video.display().to_string())?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for f in frames {
                use std::io::Write;
                if json {
                    writeln!(out, "{}", serde_json::to_string(&f)?)?;
                } else {
                    writeln!(out, "{f}")?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Match {
            a,
            b,
            distance,
            quality,
            query_percent,
            compared_percent,
            opts,
            json,
        } => {
            let o = opts.options();
            let (fa, fb) = (load(&a, &o)?, load(&b, &o)?);
            let rule = MatchRule {
                distance,
                quality,
                query_percent,
                compared_percent,
            };
            let r = bulwark_vpdq::match_videos(&fa, &fb, &rule);
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "query {:.1}% compared {:.1}% {}",
                    r.query_percent,
                    r.compared_percent,
                    if r.is_match { "match" } else { "no match" }
                );
            }
            Ok(ExitCode::from(if r.is_match { 0 } else { 1 }))
        }
    }
}

/// A hash file when it parses as one, else a video to hash.
fn load(p: &Path, o: &Options) -> anyhow::Result<Vec<FrameHash>> {
    let mut head = [0u8; 256];
    let n = {
        use std::io::Read;
        std::fs::File::open(p)
            .with_context(|| p.display().to_string())?
            .read(&mut head)?
    };
    if !bulwark_vpdq::sniff(&head[..n])
        && let Ok(text) = std::fs::read_to_string(p)
    {
        return bulwark_vpdq::parse_lines(&text).with_context(|| p.display().to_string());
    }
    bulwark_vpdq::hash_video(p, o).with_context(|| p.display().to_string())
}
