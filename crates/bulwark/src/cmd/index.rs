//! `bulwark index build|search|info`: the exact Hamming index on the command line.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use bulwark_index::{Code, Index};
use bulwark_pdq::PdqHash;
use rayon::prelude::*;

/// Index subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Build an index from a hash list: one 64-hex hash a line, optionally
    /// `hash,id` (id a non-negative integer; default: the line number).
    Build {
        /// The list (`-` for stdin).
        list: String,
        /// Where to write the index.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Find every indexed hash within a radius of each query hash. Prints
    /// `query_line,id,distance`; exit 0 if anything matched, 1 if nothing did.
    Search {
        /// The index file.
        index: PathBuf,
        /// Hamming radius (0-256; 31 is PDQ's usual threshold).
        #[arg(short, long, default_value_t = 31)]
        radius: u32,
        /// Query file, one hash a line (the first comma-separated field); default stdin.
        queries: Option<PathBuf>,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Describe an index: size, substrings, bucket statistics.
    Info {
        /// The index file.
        index: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Build { list, output } => build(&list, &output),
        Command::Search {
            index,
            radius,
            queries,
            json,
        } => search(&index, radius, queries.as_deref(), json),
        Command::Info { index, json } => info(&index, json),
    }
}

fn open_input(path: &str) -> anyhow::Result<Box<dyn BufRead>> {
    Ok(if path == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("opening {path}"))?,
        ))
    })
}

/// Parses `hash` or `hash,id`; blank lines and `#` comments are skipped (None).
fn parse_list_line(line: &str, line_no: u64) -> Result<Option<(u64, Code)>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut parts = line.splitn(2, ',');
    let hash: PdqHash = parts
        .next()
        .unwrap_or("")
        .trim()
        .parse()
        .map_err(|e| format!("{e}"))?;
    let id = match parts.next() {
        Some(id) => id
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("id {:?} is not a non-negative integer", id.trim()))?,
        None => line_no,
    };
    Ok(Some((id, *hash.as_bytes())))
}

fn spinner(msg: &'static str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::new_spinner();
    b.set_message(msg);
    b.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(b)
}

fn build(list: &str, output: &std::path::Path) -> anyhow::Result<ExitCode> {
    let mut entries = Vec::new();
    let mut bad = 0usize;
    for (i, line) in open_input(list)?.lines().enumerate() {
        let no = i as u64 + 1;
        let line = line.with_context(|| format!("reading {list}"))?;
        match parse_list_line(&line, no) {
            Ok(Some(e)) => entries.push(e),
            Ok(None) => {}
            Err(e) => {
                bad += 1;
                eprintln!("bulwark: {list}:{no}: {e}");
            }
        }
    }
    let bar = spinner("building index");
    let t = std::time::Instant::now();
    let ix = Index::build(&entries);
    ix.save(output)
        .with_context(|| format!("writing {}", output.display()))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let info = ix.info();
    eprintln!(
        "bulwark: indexed {} hashes in {:.2}s, {:.0} bytes/code, into {}{}",
        info.len,
        t.elapsed().as_secs_f64(),
        info.bytes as f64 / info.len.max(1) as f64,
        output.display(),
        if bad > 0 {
            format!("; {bad} bad line(s) skipped")
        } else {
            String::new()
        }
    );
    Ok(if bad > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn search(
    index: &std::path::Path,
    radius: u32,
    queries: Option<&std::path::Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if radius > 256 {
        bail!("--radius must be 0-256");
    }
    let ix = Index::open(index).with_context(|| format!("opening {}", index.display()))?;
    let input = match queries {
        Some(p) => open_input(&p.to_string_lossy())?,
        None => open_input("-")?,
    };
    let mut qs: Vec<(u64, PdqHash)> = Vec::new();
    let mut errors = false;
    for (i, line) in input.lines().enumerate() {
        let line = line.context("reading queries")?;
        let t = line.split(',').next().unwrap_or("").trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        match t.parse::<PdqHash>() {
            Ok(h) => qs.push((i as u64 + 1, h)),
            Err(e) => {
                eprintln!("bulwark: query line {}: {e}", i + 1);
                errors = true;
            }
        }
    }
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let mut any = false;
    for chunk in qs.chunks(1024) {
        let results: Vec<Vec<bulwark_index::Match>> = chunk
            .par_iter()
            .map(|(_, h)| ix.search(h.as_bytes(), radius))
            .collect();
        for ((line, h), ms) in chunk.iter().zip(results) {
            let mut ms = ms;
            ms.sort_by_key(|m| (m.distance, m.id));
            for m in ms {
                any = true;
                if json {
                    writeln!(
                        out,
                        "{}",
                        serde_json::json!({"query_line": line, "query": h, "id": m.id, "distance": m.distance})
                    )?;
                } else {
                    writeln!(out, "{line},{},{}", m.id, m.distance)?;
                }
            }
        }
    }
    out.flush()?;
    Ok(if errors {
        ExitCode::from(2)
    } else if any {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn info(index: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let t = std::time::Instant::now();
    let ix = Index::open(index).with_context(|| format!("opening {}", index.display()))?;
    let open_s = t.elapsed().as_secs_f64();
    let i = ix.info();
    let per_code = i.bytes as f64 / i.len.max(1) as f64;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "codes": i.len, "substring_bits": i.substring_bits, "scan_list": i.scan_list,
                "max_bucket": i.max_bucket, "mean_nonempty_bucket": i.mean_nonempty_bucket,
                "bytes": i.bytes, "bytes_per_code": per_code, "open_seconds": open_s,
                "kernel": bulwark_index::kernel_name(),
            })
        );
    } else {
        println!("codes:                {}", i.len);
        println!(
            "substrings:           {} ({:?} bits)",
            i.substring_bits.len(),
            i.substring_bits
        );
        println!("scan list (skewed):   {}", i.scan_list);
        println!("largest bucket:       {}", i.max_bucket);
        println!("mean non-empty bucket {:.2}", i.mean_nonempty_bucket);
        println!("bytes:                {} ({per_code:.1} per code)", i.bytes);
        println!(
            "opened and verified in {open_s:.3}s; kernel {}",
            bulwark_index::kernel_name()
        );
    }
    Ok(ExitCode::SUCCESS)
}
