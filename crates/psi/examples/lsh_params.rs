//! Measures the LSH trade-off behind `Params::default()`: for candidate
//! (bits per table k, tables L), recall at each Hamming distance (Monte Carlo
//! over random 256-bit hashes with d random bits flipped, using the crate's own
//! table positions), the recall through vouchers relative to plain PDQ at
//! radius 31 for the edits measured in docs/detection/ (distance distributions
//! from recall.csv), pdata bytes per banked hash, voucher bytes, and the
//! false-candidate rate for a bank of 1M hashes — both for uniform random
//! hashes and for the distance distribution of distinct real photos
//! (docs/detection/false_matches.csv).
//!
//! ```sh
//! cargo run --release -p bulwark-psi --example lsh_params [-- TRIALS]
//! ```

use std::collections::BTreeMap;

use bulwark_pdq::PdqHash;
use bulwark_psi::{Params, lsh, slots_for};
use rand::{Rng, RngCore, SeedableRng};

const BANK: f64 = 1e6;
const THRESHOLD: u32 = 30;

fn detection_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/detection")
}

/// Per-transform distance pmf over 0..=31 and plain recall at 31, from recall.csv.
fn edit_distributions() -> BTreeMap<String, Vec<f64>> {
    let text = std::fs::read_to_string(detection_dir().join("recall.csv")).unwrap_or_default();
    let mut cdf: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 3 {
            continue;
        }
        let (Ok(t), Ok(r)) = (f[1].parse::<usize>(), f[2].parse::<f64>()) else {
            continue;
        };
        if t <= 31 {
            let v = cdf.entry(f[0].to_string()).or_default();
            if v.len() == t {
                v.push(r);
            }
        }
    }
    cdf.into_iter()
        .filter(|(_, c)| c.len() == 32)
        .map(|(k, c)| {
            let pmf = (0..32)
                .map(|d| if d == 0 { c[0] } else { c[d] - c[d - 1] })
                .collect();
            (k, pmf)
        })
        .collect()
}

/// Distance pmf over 0..=128 of distinct real photos (mass beyond 128 put at 128).
fn pair_distribution() -> Vec<f64> {
    let text =
        std::fs::read_to_string(detection_dir().join("false_matches.csv")).unwrap_or_default();
    let mut cum = Vec::new();
    let mut pairs = 0.0;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() >= 3 {
            pairs = f[1].parse().unwrap_or(0.0);
            cum.push(f[2].parse::<f64>().unwrap_or(0.0));
        }
    }
    if cum.len() != 129 || pairs == 0.0 {
        return Vec::new();
    }
    let mut pmf: Vec<f64> = (0..129)
        .map(|d| if d == 0 { cum[0] } else { cum[d] - cum[d - 1] } / pairs)
        .collect();
    pmf[128] += 1.0 - cum[128] / pairs;
    pmf
}

fn flip(h: &[u8; 32], rng: &mut impl RngCore, d: usize) -> PdqHash {
    let mut idx: Vec<usize> = (0..256).collect();
    let mut b = *h;
    for j in 0..d {
        let k = rng.gen_range(j..256);
        idx.swap(j, k);
        b[idx[j] / 8] ^= 1 << (idx[j] % 8);
    }
    PdqHash::from_bytes(b)
}

/// Monte Carlo recall (at least m tables agree) at each distance 0..=31.
fn recall_curve(k: u8, l: u16, m: u16, trials: usize, rng: &mut impl RngCore) -> Vec<f64> {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    let pos = lsh::positions(&seed, l, k);
    (0..32)
        .map(|d| {
            let mut hits = 0;
            for _ in 0..trials {
                let mut b = [0u8; 32];
                rng.fill_bytes(&mut b);
                let h = PdqHash::from_bytes(b);
                let n = flip(&b, rng, d);
                let agree = pos
                    .iter()
                    .enumerate()
                    .filter(|(t, p)| {
                        lsh::sub_key(&h, *t as u16, p) == lsh::sub_key(&n, *t as u16, p)
                    })
                    .count();
                if agree >= usize::from(m) {
                    hits += 1;
                }
            }
            f64::from(hits) / trials as f64
        })
        .collect()
}

/// P(Poisson(λ) > t).
fn poisson_tail(lambda: f64, t: u32) -> f64 {
    let mut term = (-lambda).exp();
    let mut cdf = term;
    for i in 1..=t {
        term *= lambda / f64::from(i);
        cdf += term;
    }
    (1.0 - cdf).max(0.0)
}

/// Largest λ with P(Poisson(λ) > t) ≤ 1e-6.
fn lambda_max(t: u32) -> f64 {
    let (mut lo, mut hi) = (0.0, f64::from(t));
    for _ in 0..60 {
        let mid = (lo + hi) / 2.0;
        if poisson_tail(mid, t) <= 1e-6 {
            lo = mid
        } else {
            hi = mid
        }
    }
    lo
}

fn main() {
    let trials: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(4000);
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let edits = edit_distributions();
    let pairs = pair_distribution();
    let groups: [(&str, &[&str]); 4] = [
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
    ];
    let lmax = lambda_max(THRESHOLD);
    println!(
        "LSH trade-off: bank {BANK:.0} hashes, threshold {THRESHOLD}, {trials} trials per distance.\n\
         recall@d = P(some table agrees) for random hashes d bits apart;\n\
         vs plain = recall through vouchers / plain PDQ recall at radius 31 for the corpus edits;\n\
         m = tables that must agree (m-of-L opening; 1 = any table);\n\
         fc/img = P(an unrelated image opens): at least m of its L sub-keys are in the tables\n\
         (uniform hashes | distance distribution of distinct real photos; the larger of the\n\
         independent-tables estimate and the expected number of single entries agreeing on m tables);\n\
         innocent images = uploads before P(more than {THRESHOLD} false candidates) reaches 1e-6 (real-photo rate).\n"
    );
    println!(
        "| k | L | m | recall@4 | @8 | @16 | @24 | @31 | vs plain: jpeg | resize | crop 1% | crop 2% | pdata B/hash | voucher B | fc/img uniform | fc/img photos | innocent images |"
    );
    println!(
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut configs: Vec<(u8, u16, u16)> = Vec::new();
    for k in [16u8, 20, 24, 28, 32, 36] {
        for l in [3u16, 4, 6, 8, 10, 12] {
            configs.push((k, l, 1));
        }
    }
    configs.extend([
        (24, 6, 2),
        (24, 8, 2),
        (24, 12, 3),
        (28, 6, 2),
        (28, 8, 2),
        (28, 12, 3),
        (32, 6, 2),
        (32, 8, 2),
    ]);
    for (k, l, m) in configs {
        let curve = recall_curve(k, l, m, trials, &mut rng);
        let mut ratios = Vec::new();
        for (_, names) in groups {
            let (mut through, mut plain) = (0.0, 0.0);
            for n in names {
                if let Some(pmf) = edits.get(*n) {
                    through += pmf.iter().zip(&curve).map(|(p, r)| p * r).sum::<f64>();
                    plain += pmf.iter().sum::<f64>();
                }
            }
            ratios.push(if plain > 0.0 {
                through / plain
            } else {
                f64::NAN
            });
        }
        // Distinct sub-keys per table for a bank of uniform random hashes.
        let space = 2f64.powi(i32::from(k));
        let distinct = space * (1.0 - (-BANK / space).exp());
        let pdata_per_hash = f64::from(l) * slots_for(distinct as usize) as f64 * 32.0 / BANK;
        // q = P(an unrelated image's sub-key is in a table), from any bank
        // entry; the image opens if at least m of its L tables are hits
        // (tables treated as independent).
        let q_uniform = 1.0 - (-BANK / space).exp();
        let per_entry_photos: f64 = pairs
            .iter()
            .enumerate()
            .map(|(d, p)| p * lsh::table_hit_probability(d as u32, u32::from(k)))
            .sum();
        let q_photos = 1.0 - (-BANK * per_entry_photos).exp();
        let fc_uniform = at_least(l, m, q_uniform);
        // Tables are not independent for one nearby entry: also count images
        // that agree with a single entry on m tables, and take the larger.
        let same_entry: f64 = BANK
            * pairs
                .iter()
                .enumerate()
                .map(|(d, p)| {
                    p * at_least(l, m, lsh::table_hit_probability(d as u32, u32::from(k)))
                })
                .sum::<f64>();
        let fc_photos = if pairs.is_empty() {
            f64::NAN
        } else {
            at_least(l, m, q_photos).max(same_entry.min(1.0))
        };
        let params = Params {
            tables: l,
            min_tables: m,
            bits_per_table: k,
            ..Params::default()
        };
        let voucher = 44
            + 2 * usize::from(l) * 82
            + 32
            + 16
            + 64
            + 8 * params.detection_dim()
            + 12
            + 34
            + usize::from(params.derivative_bytes)
            + 16;
        let innocent = lmax / fc_photos;
        println!(
            "| {k} | {l} | {m} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.0} | {voucher} | {:.2e} | {:.2e} | {:.0} |",
            curve[4],
            curve[8],
            curve[16],
            curve[24],
            curve[31],
            ratios[0],
            ratios[1],
            ratios[2],
            ratios[3],
            pdata_per_hash,
            fc_uniform,
            fc_photos,
            innocent
        );
    }
}

/// P(Binomial(l, q) ≥ m).
fn at_least(l: u16, m: u16, q: f64) -> f64 {
    let mut total = 0.0;
    for i in m..=l {
        let mut c = 1.0;
        for j in 0..i {
            c *= f64::from(l - j) / f64::from(j + 1);
        }
        total += c * q.powi(i32::from(i)) * (1.0 - q).powi(i32::from(l - i));
    }
    total
}
