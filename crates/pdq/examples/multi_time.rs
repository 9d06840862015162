//! Time of the extra hashes: plain PDQ against `MultiHash::of_rgb` with
//! several sets of kinds on the same decoded pixels, per image resized to
//! 1024×768, one thread.
//!
//! `cargo run --release -p bulwark-pdq --example multi_time -- [--cpu] DIR [N]`
//! (the first N images under DIR, sorted by path; default 100).

use std::time::Instant;

/// This thread's CPU time in seconds (`CLOCK_THREAD_CPUTIME_ID`).
fn cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // --cpu: time by this thread's CPU time (less disturbed by other load).
    let cpu = args.iter().any(|a| a == "--cpu");
    args.retain(|a| a != "--cpu");
    let mut args = args.into_iter();
    let dir = args.next().expect("usage: multi_time [--cpu] DIR [N]");
    let n: usize = args.next().map_or(100, |s| s.parse().expect("N"));
    let mut files = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(dir)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let limits = bulwark_pdq::Limits::default();
    use bulwark_pdq::KindSet;
    let sets = [
        ("every kind", KindSet::ALL),
        ("bank default", KindSet::BANK_DEFAULT),
        (
            "query side of the bank default",
            KindSet::BANK_DEFAULT.query_side(),
        ),
        ("region only", KindSet::of(&[bulwark_pdq::HashKind::Region])),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); sets.len()];
    let (mut plain, mut extras, mut regions) = (Vec::new(), 0usize, 0usize);
    for p in files.iter() {
        if plain.len() == n {
            break;
        }
        let Ok(bytes) = std::fs::read(p) else {
            continue;
        };
        let Ok(img) = bulwark_pdq::decode(&bytes, &limits) else {
            continue;
        };
        if img.channels != 3 {
            continue;
        }
        // Nearest-neighbour resize to exactly 1024×768.
        let (w, h) = (1024usize, 768usize);
        let (sw, sh) = (img.width as usize, img.height as usize);
        let mut rgb = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                let at = ((y * sh / h) * sw + x * sw / w) * 3;
                rgb.extend_from_slice(&img.pixels[at..at + 3]);
            }
        }
        let time = |f: &dyn Fn()| {
            let mut t: Vec<f64> = (0..7)
                .map(|_| {
                    if cpu {
                        let s = cpu_s();
                        f();
                        return cpu_s() - s;
                    }
                    let s = Instant::now();
                    f();
                    s.elapsed().as_secs_f64()
                })
                .collect();
            t.sort_by(f64::total_cmp);
            t[3]
        };
        plain.push(time(&|| {
            std::hint::black_box(bulwark_pdq::hash_rgb(&rgb, w, h));
        }));
        for (i, (_, kinds)) in sets.iter().enumerate() {
            times[i].push(time(&|| {
                std::hint::black_box(bulwark_pdq::MultiHash::of_rgb(&rgb, w, h, *kinds));
            }));
        }
        let m = bulwark_pdq::multi_hash_rgb(&rgb, w, h);
        extras += m.extras().len();
        regions += usize::from(m.get(bulwark_pdq::HashKind::Region).is_some());
    }
    let med = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2] * 1e3
    };
    let k = plain.len();
    println!(
        "{k} images at 1024×768, one thread, medians of 7 runs per image; {:.2} extras per image \
         with every kind, {regions} with a content region",
        extras as f64 / k as f64
    );
    let p = med(&plain);
    println!("plain hash: {p:.2} ms");
    for (i, (name, kinds)) in sets.iter().enumerate() {
        let extra: Vec<f64> = times[i].iter().zip(&plain).map(|(m, p)| m - p).collect();
        let e = med(&extra);
        println!(
            "{name} ({} kinds): {:.2} ms, extra {e:.2} ms = {:.0} % of plain",
            kinds.len(),
            med(&times[i]),
            100.0 * e / p
        );
    }
}
