//! `bulwark eval`: what a distance threshold catches and what it wrongly flags.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use bulwark_eval::{Config, evaluate, find_images, report, transforms};

/// Arguments of `bulwark eval`.
#[derive(clap::Args)]
pub struct Args {
    /// Folder of benign images (searched recursively).
    corpus: PathBuf,
    /// Where the report, figures, plots and the hash cache go.
    #[arg(long, default_value = "eval-report")]
    out: PathBuf,
    /// Seed for the random edits.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Scale originals so the long side is at most this first (0: full size).
    #[arg(long, default_value_t = 1024)]
    max_side: u32,
    /// Quality cut shown alongside the unfiltered figures.
    #[arg(long, default_value_t = 50)]
    min_quality: u32,
    /// Use only the first N images (sorted by path).
    #[arg(long)]
    limit: Option<usize>,
    /// Only these edits (names as in the report, e.g. jpeg-q30); default all.
    #[arg(long = "transform")]
    only: Vec<String>,
    /// Also hash every original and copy with extra hashes (content region,
    /// crops: bulwark_pdq::MultiHash) and write multi.md / multi.json.
    #[arg(long)]
    multi: bool,
    /// With --multi: edit only every Nth original (all still enter the false-match pairs).
    #[arg(long, default_value_t = 1)]
    copies_every: usize,
    /// With --multi: drop extras of PDQ quality under this.
    #[arg(long, default_value_t = 0)]
    extra_min_quality: u32,
    /// List the edits and exit.
    #[arg(long)]
    list_transforms: bool,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let mut set = transforms::standard_set();
    if a.list_transforms {
        for t in &set {
            println!("{}\t{}\t{}", t.name, t.family, t.params);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !a.only.is_empty() {
        for o in &a.only {
            if !set.iter().any(|t| &t.name == o) {
                bail!("unknown transform {o:?} (see --list-transforms)");
            }
        }
        set.retain(|t| a.only.contains(&t.name));
    }
    let mut images =
        find_images(&a.corpus).with_context(|| format!("reading {}", a.corpus.display()))?;
    if let Some(n) = a.limit {
        images.truncate(n);
    }
    if images.len() < 2 {
        bail!("{} holds fewer than two images", a.corpus.display());
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let cfg = Config {
        seed: a.seed,
        max_side: a.max_side,
        min_quality: a.min_quality,
        ..Config::default()
    };
    if a.multi {
        let mc = bulwark_eval::MultiConfig {
            copies_every: a.copies_every,
            extra_min_quality: a.extra_min_quality,
            ..Default::default()
        };
        eprintln!(
            "bulwark: multi-hash evaluation of {} images (edits on every {}th) × {} edits",
            images.len(),
            mc.copies_every.max(1),
            set.len()
        );
        let ev = bulwark_eval::evaluate_multi(&images, &cfg, &mc, set, &|| {})?;
        for (p, e) in &ev.failed {
            eprintln!("bulwark: {}: {e}", p.display());
        }
        let md = ev.write(&a.out, 31)?;
        eprintln!(
            "bulwark: {} originals, {} copies, {} distinct pairs; report: {}",
            ev.originals.len(),
            ev.copies.len(),
            ev.pairs(),
            md.display()
        );
        return Ok(if ev.failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(images.len() as u64);
        if let Ok(s) = indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} images ({per_sec}, eta {eta})",
        ) {
            b.set_style(s);
        }
        Some(b)
    } else {
        None
    };
    eprintln!(
        "bulwark: evaluating {} images × {} edits on {} threads",
        images.len(),
        set.len(),
        rayon::current_num_threads()
    );
    let ev = evaluate(&images, &cfg, set, Some(&a.out.join("cache.tsv")), &|| {
        if let Some(b) = &bar {
            b.inc(1);
        }
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    for (p, e) in &ev.failed {
        eprintln!("bulwark: {}: {e}", p.display());
    }
    let md = report::write(&ev, &a.out)?;
    eprintln!(
        "bulwark: {} originals, {} copies, {} distinct pairs; report: {}",
        ev.originals.len(),
        ev.copies.len(),
        ev.pairs(),
        md.display()
    );
    Ok(if ev.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
