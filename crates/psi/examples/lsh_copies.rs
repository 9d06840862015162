//! Recall through vouchers on **real** edited copies, not random bit flips:
//! reads the hash cache `bulwark eval` writes (`cache.tsv`: original file
//! SHA-256, edit, max side, seed, PDQ hash of the copy, quality; the
//! `identity` row is the original's hash) and, for each (k, L), counts the
//! copies within radius 31 of their original that also agree with it in some
//! LSH table, averaged over 20 random pdata seeds (real PDQ bit flips are not
//! uniform, so which bits are sampled matters).
//!
//! ```sh
//! target/release/bulwark eval IMAGES_DIR --out /tmp/eval
//! cargo run --release -p bulwark-psi --example lsh_copies -- /tmp/eval/cache.tsv
//! ```

use std::collections::HashMap;

use bulwark_pdq::PdqHash;
use bulwark_psi::lsh;
use rand::{RngCore, SeedableRng};

const GROUPS: [(&str, &[&str]); 5] = [
    (
        "jpeg",
        &["jpeg-q20", "jpeg-q30", "jpeg-q50", "jpeg-q70", "jpeg-q95"],
    ),
    (
        "resize",
        &[
            "resize-0.25",
            "resize-0.40",
            "resize-0.50",
            "resize-0.75",
            "resize-1.50",
            "resize-2.00",
        ],
    ),
    ("crop 1%", &["crop-01pct"]),
    ("crop 2%", &["crop-02pct"]),
    (
        "blur/noise/grey/sharpen/brightness",
        &[
            "blur-sigma1",
            "blur-sigma3",
            "noise-sigma8",
            "noise-sigma20",
            "greyscale",
            "sharpen",
            "brightness-40",
            "brightness+40",
        ],
    ),
];

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: lsh_copies CACHE_TSV");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        eprintln!("lsh_copies: {path}: {e}");
        std::process::exit(2);
    });
    let mut originals: HashMap<String, PdqHash> = HashMap::new();
    let mut copies: Vec<(String, String, PdqHash)> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 5 {
            continue;
        }
        let Ok(h) = f[4].parse::<PdqHash>() else {
            continue;
        };
        if f[1] == "identity" {
            originals.insert(f[0].to_string(), h);
        }
        copies.push((f[0].to_string(), f[1].to_string(), h));
    }
    let pairs: Vec<(&str, PdqHash, PdqHash)> = copies
        .iter()
        .filter_map(|(o, t, h)| originals.get(o).map(|oh| (t.as_str(), *oh, *h)))
        .collect();
    println!(
        "{} originals, {} copies; recall through vouchers / plain recall at radius 31, mean over 20 pdata seeds\n\
         (in brackets: the same for uniformly random flips at the same distances; n = copies within 31)\n",
        originals.len(),
        pairs.len()
    );
    print!("| k | L |");
    for (g, _) in GROUPS {
        print!(" {g} |");
    }
    println!();
    print!("|---:|---:|");
    for _ in GROUPS {
        print!("---:|");
    }
    println!();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for (k, l) in [
        (16u8, 6u16),
        (24, 3),
        (28, 3),
        (32, 3),
        (32, 4),
        (32, 6),
        (36, 3),
    ] {
        print!("| {k} | {l} |");
        for (_, names) in GROUPS {
            let within: Vec<&(&str, PdqHash, PdqHash)> = pairs
                .iter()
                .filter(|(t, a, b)| names.contains(t) && a.distance(b) <= 31)
                .collect();
            let mut through = 0.0;
            for _ in 0..20 {
                let mut seed = [0u8; 32];
                rng.fill_bytes(&mut seed);
                let pos = lsh::positions(&seed, l, k);
                through += within
                    .iter()
                    .filter(|(_, a, b)| {
                        pos.iter().enumerate().any(|(t, p)| {
                            lsh::sub_key(a, t as u16, p) == lsh::sub_key(b, t as u16, p)
                        })
                    })
                    .count() as f64
                    / 20.0;
            }
            // What uniformly random flips at the same distances would give.
            let predicted: f64 = within
                .iter()
                .map(|(_, a, b)| {
                    let p = lsh::table_hit_probability(a.distance(b), u32::from(k));
                    1.0 - (1.0 - p).powi(i32::from(l))
                })
                .sum();
            if within.is_empty() {
                print!(" – |");
            } else {
                let n = within.len() as f64;
                print!(
                    " {:.3} ({:.3}) n={} |",
                    through / n,
                    predicted / n,
                    within.len()
                );
            }
        }
        println!();
    }
}
