//! Decode and hash time against the `pdqhash` PyPI package (Meta's reference
//! C++ core) in the same run, on corpus photos or on two JPEGs made from one
//! photo, one thread. Bulwark and the reference alternate per image, so a
//! change in the machine's load falls on both.
//!
//! `cargo run --release -p bulwark-pdq --example hash_time -- [--python PY] [--runs R] [--size WxH] [--once] SOURCE [N]`
//!
//! SOURCE is a directory (the first N images under it, sorted by path, each
//! resized to `--size`, default 1024×768, and re-encoded as JPEG quality 90)
//! or one image (made into a 1024×768 and a 4000×3000 JPEG). `--python` names
//! an interpreter with `pdqhash`, `numpy` and `pillow` (default `python3`;
//! `--python none` skips the reference). `--once` decodes and hashes each
//! file once and exits (for `valgrind --tool=callgrind`). `--cpu` times each
//! side by its thread's CPU time instead of wall time (both sides read
//! `CLOCK_THREAD_CPUTIME_ID`; Python's `time.thread_time`), which a loaded
//! machine disturbs less. `--keep DIR` writes
//! the JPEGs to DIR and keeps them; `--as-is` takes the files under a SOURCE
//! directory as they are (JPEGs made by an earlier `--keep`).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use bulwark_pdq::{Image, Limits, Mode};

/// Reads one path per line; answers with the median decode and hash times and
/// the hash, timing `runs` repetitions of each.
const REFERENCE_SCRIPT: &str = r#"
import sys, time, json
import numpy as np
from PIL import Image
import pdqhash
runs = int(sys.argv[1])
clock = time.thread_time if sys.argv[2] == "cpu" else time.perf_counter
for line in sys.stdin:
    path = line.strip()
    dec, core = [], []
    for _ in range(runs):
        t = clock(); a = np.asarray(Image.open(path).convert("RGB")); dec.append(clock() - t)
        t = clock(); v, q = pdqhash.compute(a); core.append(clock() - t)
    bits = "".join(str(int(b)) for b in v)
    h = "".join("%x" % int(bits[i:i + 4], 2) for i in range(0, 256, 4))
    dec.sort(); core.sort()
    print(json.dumps([dec[runs // 2] * 1e3, core[runs // 2] * 1e3, h, int(q)]), flush=True)
"#;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// This thread's time on a CPU so far, in ms (`CLOCK_THREAD_CPUTIME_ID`, as
/// Python's `time.thread_time`): unlike wall time, it leaves out the time
/// other processes held the CPU.
fn cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

fn time_ms(runs: usize, cpu: bool, mut f: impl FnMut()) -> f64 {
    median(
        (0..runs)
            .map(|_| {
                if cpu {
                    let s = cpu_ms();
                    f();
                    cpu_ms() - s
                } else {
                    let s = Instant::now();
                    f();
                    s.elapsed().as_secs_f64() * 1e3
                }
            })
            .collect(),
    )
}

fn resized_jpeg(img: &Image, w: u32, h: u32) -> Vec<u8> {
    let rgb = image::RgbImage::from_raw(img.width, img.height, img.pixels.clone()).expect("rgb");
    let r = image::imageops::resize(&rgb, w, h, image::imageops::FilterType::Triangle);
    bulwark_pdq::encode_jpeg(
        &Image {
            width: w,
            height: h,
            channels: 3,
            pixels: r.into_raw(),
        },
        90,
    )
    .expect("encode")
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut take = |flag: &str| -> Option<String> {
        let i = args.iter().position(|a| a == flag)?;
        args.remove(i);
        if flag == "--once" || flag == "--as-is" || flag == "--cpu" {
            Some(String::new())
        } else {
            Some(args.remove(i))
        }
    };
    let python = take("--python").unwrap_or_else(|| "python3".into());
    let runs: usize = take("--runs").map_or(9, |s| s.parse().expect("--runs"));
    let (sw, sh): (u32, u32) = take("--size").map_or((1024, 768), |s| {
        let (a, b) = s.split_once('x').expect("--size WxH");
        (a.parse().expect("width"), b.parse().expect("height"))
    });
    let once = take("--once").is_some();
    let cpu = take("--cpu").is_some();
    let as_is = take("--as-is").is_some();
    let keep = take("--keep").map(PathBuf::from);
    let source = PathBuf::from(args.first().expect("usage: hash_time [flags] SOURCE [N]"));
    let n: usize = args.get(1).map_or(100, |s| s.parse().expect("N"));
    let limits = Limits::default();

    // The JPEG files to time, written to a temporary directory.
    let dir = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("bulwark-hash-time-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut files = Vec::new();
    if source.is_dir() {
        let mut paths = Vec::new();
        let mut stack = vec![source];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("read dir") {
                let p = e.expect("entry").path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    paths.push(p);
                }
            }
        }
        paths.sort();
        if as_is {
            paths.truncate(n);
            files = paths.clone();
            paths.clear();
        }
        for p in paths {
            if files.len() == n {
                break;
            }
            let Ok(img) = std::fs::read(&p)
                .map_err(|_| ())
                .and_then(|b| bulwark_pdq::decode(&b, &limits).map_err(|_| ()))
            else {
                continue;
            };
            if img.channels != 3 {
                continue;
            }
            let out = dir.join(format!("{:04}.jpg", files.len()));
            std::fs::write(&out, resized_jpeg(&img, sw, sh)).expect("write");
            files.push(out);
        }
    } else {
        let img = bulwark_pdq::decode(&std::fs::read(&source).expect("read"), &limits)
            .expect("decode source");
        for (w, h) in [(1024, 768), (4000, 3000)] {
            let out = dir.join(format!("{w}x{h}.jpg"));
            std::fs::write(&out, resized_jpeg(&img, w, h)).expect("write");
            files.push(out);
        }
    }

    if once {
        for f in &files {
            let bytes = std::fs::read(f).expect("read");
            std::hint::black_box(bulwark_pdq::hash_bytes(&bytes, Mode::Full, &limits).ok());
        }
        if keep.is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        return;
    }

    let mut reference = (python != "none").then(|| {
        Command::new(&python)
            .arg("-c")
            .arg(REFERENCE_SCRIPT)
            .arg(runs.to_string())
            .arg(if cpu { "cpu" } else { "wall" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the reference (pass --python none to skip)")
    });
    let mut ref_out = reference
        .as_mut()
        .map(|c| BufReader::new(c.stdout.take().expect("stdout")));

    println!(
        "file\tsize\tdecode_ms\thash_ms\ttotal_ms\tref_decode_ms\tref_hash_ms\tref_total_ms\thash_ratio\ttotal_ratio\tbit_exact"
    );
    let (mut hash_ratios, mut total_ratios, mut exact) = (Vec::new(), Vec::new(), 0usize);
    let (mut ours_total, mut ref_total) = (Vec::new(), Vec::new());
    for f in &files {
        let bytes = std::fs::read(f).expect("read");
        let img = bulwark_pdq::decode(&bytes, &limits).expect("decode");
        let dec = time_ms(runs, cpu, || {
            std::hint::black_box(bulwark_pdq::decode(&bytes, &limits).ok());
        });
        let hash = time_ms(runs, cpu, || {
            std::hint::black_box(bulwark_pdq::hash_image(&img, Mode::Full));
        });
        let total = time_ms(runs, cpu, || {
            std::hint::black_box(bulwark_pdq::hash_bytes(&bytes, Mode::Full, &limits).ok());
        });
        let ours = bulwark_pdq::hash_image(&img, Mode::Full);
        let name = f.file_name().unwrap_or_default().to_string_lossy();
        let size = format!("{}x{}", img.width, img.height);
        let Some(out) = ref_out.as_mut() else {
            println!("{name}\t{size}\t{dec:.3}\t{hash:.3}\t{total:.3}");
            continue;
        };
        let child = reference.as_mut().expect("reference");
        writeln!(child.stdin.as_mut().expect("stdin"), "{}", f.display()).expect("to reference");
        let mut line = String::new();
        out.read_line(&mut line).expect("from reference");
        let r: (f64, f64, String, u32) = serde_json::from_str(&line).expect("reference output");
        let same = r.2 == ours.hash.to_string() && r.3 == ours.quality;
        exact += usize::from(same);
        let (hr, tr) = (r.1 / hash, (r.0 + r.1) / total);
        hash_ratios.push(hr);
        total_ratios.push(tr);
        ours_total.push(total);
        ref_total.push(r.0 + r.1);
        println!(
            "{name}\t{size}\t{dec:.3}\t{hash:.3}\t{total:.3}\t{:.3}\t{:.3}\t{:.3}\t{hr:.2}\t{tr:.2}\t{same}",
            r.0,
            r.1,
            r.0 + r.1
        );
    }
    if !hash_ratios.is_empty() {
        let k = hash_ratios.len();
        println!(
            "# {k} files, medians over files: hash ratio {:.2}x, decode+hash ratio {:.2}x \
             (ours {:.2} ms, reference {:.2} ms); bit-exact {exact}/{k}",
            median(hash_ratios),
            median(total_ratios),
            median(ours_total),
            median(ref_total)
        );
    }
    if let Some(mut c) = reference {
        drop(c.stdin.take());
        let _ = c.wait();
    }
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
