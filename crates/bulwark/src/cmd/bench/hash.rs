//! `bulwark bench hash`: PDQ hashing speed against the `pdqhash` PyPI package
//! (a wrapper of Meta's reference C++ core), timed on the same files in the
//! same run. Decode and hash are shown apart, both modes, one thread and all
//! cores; the reference's hashes are checked against ours on the way.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use bulwark_pdq::{Image, Limits, Mode};
use rayon::prelude::*;

/// Arguments of `bulwark bench hash`.
#[derive(clap::Args)]
pub struct Args {
    /// JPEG files to time. Default: a ~1024×768 and a ~12 MP JPEG made from
    /// `--source` (resized with a triangle filter, quality 90).
    #[arg(long = "file")]
    files: Vec<PathBuf>,
    /// Benign photo the default files are made from.
    #[arg(
        long,
        default_value = "../shared/conformance/pdq/images/misc-images/modes/original.jpg"
    )]
    source: PathBuf,
    /// Timed repetitions per measurement (the median is reported).
    #[arg(long, default_value_t = 15)]
    iterations: usize,
    /// Skip the `pdqhash` reference (when Python or the package is absent).
    #[arg(long)]
    no_reference: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

const REFERENCE_SCRIPT: &str = r#"
import json, sys, time
import numpy as np
from PIL import Image
import pdqhash
n = int(sys.argv[1])
out = []
for path in sys.argv[2:]:
    dec, core = [], []
    for _ in range(n):
        t = time.perf_counter(); a = np.asarray(Image.open(path).convert("RGB")); dec.append(time.perf_counter() - t)
        t = time.perf_counter(); v, q = pdqhash.compute(a); core.append(time.perf_counter() - t)
    bits = "".join(str(int(b)) for b in v)
    hexhash = "".join("%x" % int(bits[i:i + 4], 2) for i in range(0, 256, 4))
    dec.sort(); core.sort()
    out.append({"path": path, "decode_ms": dec[n // 2] * 1e3, "core_ms": core[n // 2] * 1e3, "hash": hexhash, "quality": int(q)})
print(json.dumps(out))
"#;

fn median_ms(n: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..n.max(1))
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn make_default_files(source: &PathBuf) -> anyhow::Result<Vec<PathBuf>> {
    let bytes = std::fs::read(source).with_context(|| {
        format!(
            "reading {} (run from the repository root beside shared/, or pass --source/--file)",
            source.display()
        )
    })?;
    let img = bulwark_pdq::decode(&bytes, &Limits::default())?;
    if img.channels != 3 {
        bail!("--source must be a colour image");
    }
    let rgb =
        image::RgbImage::from_raw(img.width, img.height, img.pixels).context("source pixels")?;
    let dir = std::env::temp_dir().join(format!("bulwark-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut files = Vec::new();
    for (w, h) in [(1024u32, 768u32), (4000, 3000)] {
        let r = image::imageops::resize(&rgb, w, h, image::imageops::FilterType::Triangle);
        let jpeg = bulwark_pdq::encode_jpeg(
            &Image {
                width: w,
                height: h,
                channels: 3,
                pixels: r.into_raw(),
            },
            90,
        )?;
        let p = dir.join(format!("bench-{w}x{h}.jpg"));
        std::fs::write(&p, jpeg)?;
        files.push(p);
    }
    Ok(files)
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let files = if a.files.is_empty() {
        make_default_files(&a.source)?
    } else {
        a.files.clone()
    };
    let limits = Limits::default();
    let threads = rayon::current_num_threads();
    let mut rows = Vec::new();
    for path in &files {
        let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
        let img = bulwark_pdq::decode(&bytes, &limits)?;
        let decode_ms = median_ms(a.iterations, || {
            std::hint::black_box(bulwark_pdq::decode(&bytes, &limits).ok());
        });
        let full_ms = median_ms(a.iterations, || {
            std::hint::black_box(bulwark_pdq::hash_image(&img, Mode::Full));
        });
        let cli_ms = median_ms(a.iterations, || {
            std::hint::black_box(bulwark_pdq::hash_image(&img, Mode::ReferenceCli));
        });
        // All cores: decode + full hash of the same file, many times over.
        let reps = (a.iterations * threads * 2).max(8);
        let s = Instant::now();
        (0..reps).into_par_iter().for_each(|_| {
            std::hint::black_box(bulwark_pdq::hash_bytes(&bytes, Mode::Full, &limits).ok());
        });
        let all_core_per_s = reps as f64 / s.elapsed().as_secs_f64();
        let ours = bulwark_pdq::hash_image(&img, Mode::Full);
        rows.push(serde_json::json!({
            "path": path.display().to_string(),
            "width": img.width, "height": img.height,
            "decode_ms": decode_ms, "hash_full_ms": full_ms, "hash_reference_cli_ms": cli_ms,
            "total_full_ms": decode_ms + full_ms,
            "total_reference_cli_ms": decode_ms + cli_ms,
            "images_per_s_all_cores": all_core_per_s, "threads": threads,
            "hash": ours.hash.to_string(), "quality": ours.quality,
        }));
    }
    if !a.no_reference {
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(REFERENCE_SCRIPT)
            .arg(a.iterations.to_string())
            .args(&files)
            .output()
            .context("running python3 for the pdqhash reference (pass --no-reference to skip)")?;
        if !out.status.success() {
            bail!(
                "the pdqhash reference failed (pip install pdqhash numpy pillow, or pass --no-reference): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let reference: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)?;
        for (row, r) in rows.iter_mut().zip(reference) {
            let core = r["core_ms"].as_f64().unwrap_or(f64::NAN);
            let dec = r["decode_ms"].as_f64().unwrap_or(f64::NAN);
            let same = r["hash"] == row["hash"] && r["quality"] == row["quality"];
            row["reference"] = r;
            row["speedup_hash"] = (core / row["hash_full_ms"].as_f64().unwrap_or(f64::NAN)).into();
            row["speedup_total"] =
                ((core + dec) / row["total_full_ms"].as_f64().unwrap_or(f64::NAN)).into();
            row["bit_exact_with_reference"] = same.into();
        }
    }
    if a.json {
        println!("{}", serde_json::json!({ "bench": "hash", "files": rows }));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "PDQ hashing, one thread unless noted (median of {} runs)",
        a.iterations
    );
    for r in &rows {
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "\n{}×{}  {}",
            r["width"],
            r["height"],
            r["path"].as_str().unwrap_or("")
        );
        println!(
            "  bulwark decode (libjpeg-turbo)        {:8.2} ms",
            f("decode_ms")
        );
        println!(
            "  bulwark hash, full                    {:8.2} ms",
            f("hash_full_ms")
        );
        println!(
            "  bulwark hash, reference-cli           {:8.2} ms",
            f("hash_reference_cli_ms")
        );
        println!(
            "  bulwark decode + hash, full           {:8.2} ms",
            f("total_full_ms")
        );
        println!(
            "  bulwark decode + hash, reference-cli  {:8.2} ms",
            f("total_reference_cli_ms")
        );
        println!(
            "  bulwark decode + hash, full, {} threads {:7.1} images/s",
            r["threads"],
            f("images_per_s_all_cores")
        );
        if let Some(rf) = r.get("reference") {
            let g = |k: &str| rf[k].as_f64().unwrap_or(f64::NAN);
            println!(
                "  pdqhash decode (PIL)                  {:8.2} ms",
                g("decode_ms")
            );
            println!(
                "  pdqhash core (reference C++)          {:8.2} ms",
                g("core_ms")
            );
            println!(
                "  ratio pdqhash/bulwark: hash {:.1}×, decode + hash {:.1}×; bit-exact: {}",
                f("speedup_hash"),
                f("speedup_total"),
                r["bit_exact_with_reference"]
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
