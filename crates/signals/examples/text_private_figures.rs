//! Figures for the private (voucher) path of text hashes: what the
//! private-matching vouchers' m-of-L bit-sampling rule would do with the
//! text hash's distances, measured on the synthetic corpus.
//!
//! `cargo run --release -p bulwark-signals --example text_private_figures -- [ADS]`
//!
//! Re-post distances: every corpus edit applied to each of ADS ads; distinct
//! pairs: every pair of the ADS originals (different ads). For each parameter
//! set, recall = mean P(open) over the re-posts, and the false opens one
//! benign ad causes against a bank of n ads = n · mean P(open) over distinct
//! pairs (the corpus's own mix of same-language, same-category pairs).
use bulwark_signals::corpus::{self, Edit};
use bulwark_signals::{TEXT_HASH_RADIUS, TextHash, voucher_open_probability};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn main() {
    let ads: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let originals = corpus::generate(1, ads);
    let hashes: Vec<Option<TextHash>> = originals
        .iter()
        .map(|a| TextHash::of_text(&a.text()))
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut repost = [0u64; 257];
    for (a, h) in originals.iter().zip(&hashes) {
        let Some(h) = h else { continue };
        for e in Edit::ALL {
            if let Some(r) = TextHash::of_text(&corpus::repost(a, e, &mut rng).text()) {
                repost[h.distance(&r) as usize] += 1;
            }
        }
    }
    let mut distinct = [0u64; 257];
    let hs: Vec<&TextHash> = hashes.iter().flatten().collect();
    for i in 0..hs.len() {
        for j in i + 1..hs.len() {
            distinct[hs[i].distance(hs[j]) as usize] += 1;
        }
    }
    let (nr, nd) = (
        repost.iter().sum::<u64>() as f64,
        distinct.iter().sum::<u64>() as f64,
    );
    let within = |h: &[u64; 257], r: usize| h[..=r].iter().sum::<u64>() as f64;
    println!(
        "{ads} ads: {nr} re-posts, {nd} distinct pairs; server-side radius {TEXT_HASH_RADIUS}: recall {:.3}, false pairs {:.1e}\n",
        within(&repost, TEXT_HASH_RADIUS as usize) / nr,
        within(&distinct, TEXT_HASH_RADIUS as usize) / nd
    );
    let mut q = Vec::new();
    let mut acc = 0;
    for (d, c) in repost.iter().enumerate() {
        acc += c;
        for (p, name) in [(0.5, "median"), (0.9, "p90"), (0.99, "p99")] {
            if (acc as f64) >= p * nr && !q.iter().any(|(n, _)| *n == name) {
                q.push((name, d));
            }
        }
    }
    println!("re-post distance quantiles: {q:?}\n");
    println!(
        "| tables L × bits k, m agree | opening trials C(L,m)·2^m | recall (re-posts) | false opens per benign ad, bank 10^4 | bank 10^6 |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (l, k, m) in [
        (6u32, 32u32, 2u32), // the PDQ default profile
        (3, 32, 1),          // the PDQ compact profile
        (6, 16, 2),
        (12, 16, 2),
        (12, 12, 2),
        (24, 16, 3),
        (32, 16, 2),
        (64, 24, 2),
    ] {
        let open = |h: &[u64; 257]| {
            h.iter()
                .enumerate()
                .map(|(d, c)| *c as f64 * voucher_open_probability(d as u32, k, l, m))
                .sum::<f64>()
        };
        let trials = {
            let mut c: u64 = 1;
            for i in 0..u64::from(m) {
                c = c * (u64::from(l) - i) / (i + 1);
            }
            c << m
        };
        let f = open(&distinct) / nd;
        println!(
            "| {l} × {k}, {m} | {trials}{} | {:.3} | {:.2e} | {:.2e} |",
            if trials > 4096 { " (over 4096)" } else { "" },
            open(&repost) / nr,
            f * 1e4,
            f * 1e6
        );
    }
}
