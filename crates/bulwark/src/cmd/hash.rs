//! `bulwark hash`: PDQ-hash files, directories (recursively) and stdin.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use bulwark_pdq::{DIHEDRAL_NAMES, Limits, Mode};
use rayon::prelude::*;

/// Arguments of `bulwark hash`.
#[derive(clap::Args)]
pub struct Args {
    /// Image or video files, directories (walked recursively, other files
    /// skipped), or `-` for stdin. Videos print one line per frame.
    #[arg(required = true)]
    paths: Vec<String>,
    /// Print JSON lines instead of `hash,quality,path`.
    #[arg(long)]
    json: bool,
    /// Print all eight dihedral hashes (orig,rot90,rot180,rot270,flipx,flipy,flipplus1,flipminus1).
    #[arg(long)]
    dihedral: bool,
    /// `full` (full resolution: the reference library, HMA) or `reference-cli`
    /// (the reference command-line hasher's 512×512 resize).
    #[arg(long, default_value = "full")]
    mode: Mode,
    /// Leave out hashes whose quality is below this (0-100; 50 is common).
    #[arg(long, default_value_t = 0)]
    min_quality: u32,
    /// Worker threads (default: all cores).
    #[arg(short = 'j', long)]
    jobs: Option<usize>,
    /// Largest accepted image file, in bytes.
    #[arg(long, default_value_t = Limits::default().max_bytes)]
    max_bytes: u64,
    /// Largest accepted image, in pixels (width × height).
    #[arg(long, default_value_t = Limits::default().max_pixels)]
    max_pixels: u64,
}

enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    fn name(&self) -> String {
        match self {
            Input::Stdin => "-".into(),
            Input::File(p) => p.display().to_string(),
        }
    }
}

/// One input's result lines (none: below the quality cut), or its error.
type Outcome = Result<Vec<String>, String>;

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let limits = Limits::new(a.max_bytes, a.max_pixels, Limits::default().max_dimension);
    let mut failed = false;
    let mut inputs = Vec::new();
    let mut skipped = 0usize;
    for p in &a.paths {
        if p == "-" {
            inputs.push(Input::Stdin);
            continue;
        }
        let path = Path::new(p);
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => walk(path, &mut inputs, &mut skipped, &mut failed),
            Ok(_) => inputs.push(Input::File(path.to_owned())),
            Err(e) => {
                eprintln!("bulwark: {p}: {e}");
                failed = true;
            }
        }
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.jobs.unwrap_or(0))
        .build()
        .context("starting worker threads")?;
    let bar = progress_bar(inputs.len());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut below_quality = 0usize;
    // Work in chunks so output stays in input order and memory stays bounded.
    for chunk in inputs.chunks(256) {
        let results: Vec<Outcome> = pool.install(|| {
            chunk
                .par_iter()
                .map(|input| {
                    let r = hash_one(input, &a, &limits);
                    if let Some(b) = &bar {
                        b.inc(1);
                    }
                    r
                })
                .collect()
        });
        for (input, r) in chunk.iter().zip(results) {
            match r {
                Ok(lines) if lines.is_empty() => below_quality += 1,
                Ok(lines) => {
                    for line in lines {
                        writeln!(out, "{line}")?;
                    }
                }
                Err(e) => {
                    if let Some(b) = &bar {
                        b.suspend(|| eprintln!("bulwark: {}: {e}", input.name()));
                    } else {
                        eprintln!("bulwark: {}: {e}", input.name());
                    }
                    failed = true;
                }
            }
        }
        out.flush()?;
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if below_quality > 0 {
        eprintln!(
            "bulwark: left out {below_quality} hash(es) with quality below {}",
            a.min_quality
        );
    }
    if skipped > 0 {
        eprintln!("bulwark: skipped {skipped} non-image file(s) found in directories");
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn progress_bar(n: usize) -> Option<indicatif::ProgressBar> {
    if n < 64 || !std::io::stderr().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::new(n as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{elapsed_precise} [{bar:40}] {pos}/{len} images ({per_sec}, eta {eta})",
    ) {
        b.set_style(style);
    }
    Some(b)
}

/// Collects the image files below `dir`, sorted, skipping what is not an image.
fn walk(dir: &Path, inputs: &mut Vec<Input>, skipped: &mut usize, failed: &mut bool) {
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            eprintln!("bulwark: {}: {e}", dir.display());
            *failed = true;
            return;
        }
    };
    entries.sort();
    for p in entries {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => walk(&p, inputs, skipped, failed),
            Ok(m) if m.is_file() => {
                if looks_like_image(&p) {
                    inputs.push(Input::File(p));
                } else {
                    *skipped += 1;
                }
            }
            _ => {}
        }
    }
}

fn head_of(p: &Path) -> [u8; 256] {
    let mut head = [0u8; 256];
    let _ = std::fs::File::open(p).and_then(|mut f| f.read(&mut head));
    head
}

fn looks_like_image(p: &Path) -> bool {
    let head = head_of(p);
    bulwark_pdq::sniff(&head).is_some() || bulwark_vpdq::sniff(&head)
}

/// Videos: one line per frame, `hash,quality,path#t=SECONDS` (a media
/// fragment), or JSON with frame and timestamp.
fn hash_video(input: &Input, a: &Args) -> Outcome {
    let opts = bulwark_vpdq::Options::default();
    let frames = match input {
        Input::File(p) => bulwark_vpdq::hash_video(p, &opts),
        Input::Stdin => {
            let bytes = read_input(input, VIDEO_MAX_BYTES)?;
            bulwark_vpdq::hash_video_bytes(&bytes, &opts)
        }
    }
    .map_err(|e| e.to_string())?;
    let name = input.name();
    Ok(frames
        .iter()
        .filter(|f| f.quality >= a.min_quality)
        .map(|f| {
            if a.json {
                serde_json::json!({"path": name, "frame": f.frame, "timestamp": f.timestamp,
                    "hash": f.hash, "quality": f.quality})
                .to_string()
            } else {
                format!("{},{},{name}#t={:.3}", f.hash, f.quality, f.timestamp)
            }
        })
        .collect())
}

/// Largest video read from stdin.
const VIDEO_MAX_BYTES: u64 = 2 << 30;

fn read_input(input: &Input, limit: u64) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let r: std::io::Result<u64> = match input {
        Input::Stdin => std::io::stdin()
            .lock()
            .take(limit + 1)
            .read_to_end(&mut buf)
            .map(|n| n as u64),
        Input::File(p) => std::fs::File::open(p)
            .and_then(|f| f.take(limit + 1).read_to_end(&mut buf).map(|n| n as u64)),
    };
    let n = r.map_err(|e| e.to_string())?;
    if n > limit {
        return Err(format!(
            "image too large: more than the {limit} byte input limit"
        ));
    }
    Ok(buf)
}

fn hash_one(input: &Input, a: &Args, limits: &Limits) -> Outcome {
    if let Input::File(p) = input
        && bulwark_vpdq::sniff(&head_of(p))
    {
        return hash_video(input, a);
    }
    let bytes = read_input(input, limits.max_bytes)?;
    if bulwark_pdq::sniff(&bytes).is_none() && bulwark_vpdq::sniff(&bytes[..bytes.len().min(256)]) {
        let opts = bulwark_vpdq::Options::default();
        let frames = bulwark_vpdq::hash_video_bytes(&bytes, &opts).map_err(|e| e.to_string())?;
        let name = input.name();
        return Ok(frames
            .iter()
            .filter(|f| f.quality >= a.min_quality)
            .map(|f| format!("{},{},{name}#t={:.3}", f.hash, f.quality, f.timestamp))
            .collect());
    }
    let img = bulwark_pdq::decode(&bytes, limits).map_err(|e| e.to_string())?;
    let name = input.name();
    if a.dihedral {
        let d = bulwark_pdq::hash_image_dihedral(&img, a.mode);
        if d.quality < a.min_quality {
            return Ok(Vec::new());
        }
        Ok(vec![if a.json {
            let mut m = serde_json::Map::new();
            for (n, h) in DIHEDRAL_NAMES.iter().zip(&d.hashes) {
                m.insert((*n).into(), h.to_string().into());
            }
            serde_json::json!({"path": name, "hash": d.hashes[0], "quality": d.quality, "dihedral": m})
                .to_string()
        } else {
            let hs: Vec<String> = d.hashes.iter().map(ToString::to_string).collect();
            format!("{},{},{name}", hs.join(","), d.quality)
        }])
    } else {
        let h = bulwark_pdq::hash_image(&img, a.mode);
        if h.quality < a.min_quality {
            return Ok(Vec::new());
        }
        Ok(vec![if a.json {
            serde_json::json!({"path": name, "hash": h.hash, "quality": h.quality}).to_string()
        } else {
            format!("{},{},{name}", h.hash, h.quality)
        }])
    }
}
