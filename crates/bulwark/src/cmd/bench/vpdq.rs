//! `bulwark bench vpdq`: ms per frame and frames per second hashing videos,
//! ffmpeg decoding included, with one hashing thread and with all cores; and
//! what the per-frame `region` extra (the service's default for videos)
//! adds, plain and plain + region timed alternately on one hashing thread.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use bulwark_pdq::HashKind;

/// Arguments of `bulwark bench vpdq`.
#[derive(clap::Args)]
pub struct Args {
    /// Videos to time (default: the 480×720 and 1280×720 conformance videos).
    #[arg(long = "video")]
    videos: Vec<PathBuf>,
    /// Timed runs per video (the median is reported).
    #[arg(long, default_value_t = 3)]
    iterations: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Per-frame times the issue quotes for the reference (PyPI `vpdq`, which
/// wraps it), measured on this machine kind; used when the package cannot be
/// installed here to time it in the same run.
const REFERENCE_MS_PER_FRAME: [(u32, u32, f64); 2] = [(480, 720, 4.8), (1280, 720, 14.8)];

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let videos = if a.videos.is_empty() {
        let base = PathBuf::from("../shared/conformance/vpdq/videos");
        vec![
            base.join("chair-19-sd-bar.mp4"),
            base.join("doorknob-hd-no-bar.mp4"),
        ]
    } else {
        a.videos.clone()
    };
    let opts = bulwark_vpdq::Options::default();
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let mut rows = Vec::new();
    for v in &videos {
        let info = bulwark_vpdq::probe(v, &opts).with_context(|| v.display().to_string())?;
        let time = |pool: Option<&rayon::ThreadPool>| -> anyhow::Result<(f64, usize)> {
            let mut t = Vec::new();
            let mut frames = 0;
            for _ in 0..a.iterations.max(1) {
                let s = Instant::now();
                let f = match pool {
                    Some(p) => p.install(|| bulwark_vpdq::hash_video(v, &opts)),
                    None => bulwark_vpdq::hash_video(v, &opts),
                }?;
                t.push(s.elapsed().as_secs_f64());
                frames = f.len();
            }
            t.sort_by(f64::total_cmp);
            Ok((t[t.len() / 2], frames))
        };
        let (t1, frames) = time(Some(&one))?;
        let (tn, _) = time(None)?;
        let region = extras_cost(&one, v, &opts, a.iterations.max(1), &[HashKind::Region])?;
        let centre = extras_cost(
            &one,
            v,
            &opts,
            a.iterations.max(1),
            &[HashKind::Region, HashKind::Centre90],
        )?;
        let ms1 = t1 * 1e3 / frames as f64;
        let reference = REFERENCE_MS_PER_FRAME
            .iter()
            .find(|(w, h, _)| {
                (*w == info.width && *h == info.height) || (*w == info.height && *h == info.width)
            })
            .map(|r| r.2);
        rows.push(serde_json::json!({
            "video": v.display().to_string(), "width": info.width, "height": info.height, "frames": frames,
            "ms_per_frame_one_hashing_thread": ms1, "fps_one_hashing_thread": 1e3 / ms1,
            "ms_per_frame_all_cores": tn * 1e3 / frames as f64, "fps_all_cores": frames as f64 / tn,
            "threads": rayon::current_num_threads(),
            "reference_ms_per_frame_quoted": reference,
            "speedup_vs_quoted_reference": reference.map(|r| r / ms1),
            "region": region,
            "region_and_centre_90": centre,
        }));
    }
    if a.json {
        println!("{}", serde_json::json!({"bench": "vpdq", "videos": rows}));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "vPDQ hashing, ffmpeg decoding included (median of {} runs)",
        a.iterations
    );
    for r in &rows {
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "\n{}×{}, {} frames  {}",
            r["width"],
            r["height"],
            r["frames"],
            r["video"].as_str().unwrap_or("")
        );
        println!(
            "  one hashing thread   {:6.2} ms/frame  {:7.1} frames/s",
            f("ms_per_frame_one_hashing_thread"),
            f("fps_one_hashing_thread")
        );
        println!(
            "  all {} cores          {:6.2} ms/frame  {:7.1} frames/s",
            r["threads"],
            f("ms_per_frame_all_cores"),
            f("fps_all_cores")
        );
        for (key, label) in [
            ("region", "+ region per frame  "),
            ("region_and_centre_90", "+ region, centre-90 "),
        ] {
            let g = |k: &str| r[key][k].as_f64().unwrap_or(f64::NAN);
            println!(
                "  {label} wall {:+.1} % (median of paired runs), this process's CPU {:+.1} % ({:.2} → {:.2} s)",
                g("wall_percent"),
                g("cpu_percent"),
                g("cpu_plain_s"),
                g("cpu_extras_s")
            );
        }
        if let Some(q) = r["reference_ms_per_frame_quoted"].as_f64() {
            println!(
                "  reference (quoted, not timed in this run: the vpdq wheel does not build here) {q:.1} ms/frame → {:.1}×",
                f("speedup_vs_quoted_reference")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// This process's user + system CPU seconds (`/proc/self/stat`; ffmpeg, a
/// child, is not counted). `None` off Linux.
pub(super) fn process_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the line, in clock ticks (100 per second on
    // Linux's usual USER_HZ).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Plain against plain + `kinds` per frame, on one hashing thread, runs
/// alternated so both see the same machine: the median of the paired wall
/// ratios, and the process's CPU time over all runs of each (less moved by
/// other load on the machine than wall time).
fn extras_cost(
    one: &rayon::ThreadPool,
    v: &std::path::Path,
    opts: &bulwark_vpdq::Options,
    runs: usize,
    kinds: &[HashKind],
) -> anyhow::Result<serde_json::Value> {
    let extras = bulwark_pdq::KindSet::of(kinds);
    let (mut ratios, mut cpu) = (Vec::new(), [0.0f64; 2]);
    for _ in 0..runs {
        let mut wall = [0.0f64; 2];
        for (i, w) in wall.iter_mut().enumerate() {
            let (c0, t0) = (process_cpu_s(), Instant::now());
            if i == 0 {
                one.install(|| bulwark_vpdq::hash_video(v, opts))?;
            } else {
                one.install(|| bulwark_vpdq::hash_video_extras(v, opts, extras))?;
            }
            *w = t0.elapsed().as_secs_f64();
            if let (Some(a), Some(b)) = (c0, process_cpu_s()) {
                cpu[i] += b - a;
            }
        }
        ratios.push(wall[1] / wall[0]);
    }
    ratios.sort_by(f64::total_cmp);
    Ok(serde_json::json!({
        "wall_percent": (ratios[ratios.len() / 2] - 1.0) * 100.0,
        "cpu_plain_s": cpu[0],
        "cpu_extras_s": cpu[1],
        "cpu_percent": (cpu[1] / cpu[0] - 1.0) * 100.0,
        "runs": runs,
    }))
}
