//! `bulwark bench index`: build and search the exact index on random codes,
//! with a fraction of near-duplicate queries, against its own brute force.
//! `--export DIR` writes the same codes and queries for
//! `bench/index/faiss_compare.py`, which times faiss on them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use bulwark_index::{Code, Index};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Arguments of `bulwark bench index`.
#[derive(clap::Args)]
pub struct Args {
    /// Number of indexed codes.
    #[arg(long, default_value_t = 1_000_000)]
    size: usize,
    /// Number of queries.
    #[arg(long, default_value_t = 10_000)]
    queries: usize,
    /// Search radius.
    #[arg(long, default_value_t = 31)]
    radius: u32,
    /// Fraction of queries that are near-duplicates of an indexed code
    /// (0 to `radius` random bit flips); the rest are random.
    #[arg(long, default_value_t = 0.5)]
    near_fraction: f64,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Queries checked against brute force for recall (brute force is slow at scale).
    #[arg(long, default_value_t = 500)]
    recall_queries: usize,
    /// Write codes.bin and queries.bin (32 bytes each) here for the faiss script.
    #[arg(long)]
    export: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed);
    let entries: Vec<(u64, Code)> = (0..a.size)
        .map(|i| {
            let mut c = [0u8; 32];
            rng.fill(&mut c[..]);
            (i as u64, c)
        })
        .collect();
    let queries: Vec<Code> = (0..a.queries)
        .map(|_| {
            if !entries.is_empty() && rng.gen_bool(a.near_fraction.clamp(0.0, 1.0)) {
                let mut c = entries[rng.gen_range(0..entries.len())].1;
                let flips = rng.gen_range(0..=a.radius.min(256));
                let mut bits: Vec<usize> = (0..256).collect();
                for k in 0..flips as usize {
                    let j = rng.gen_range(k..256);
                    bits.swap(k, j);
                    c[bits[k] / 8] ^= 1 << (bits[k] % 8);
                }
                c
            } else {
                let mut c = [0u8; 32];
                rng.fill(&mut c[..]);
                c
            }
        })
        .collect();
    if let Some(dir) = &a.export {
        std::fs::create_dir_all(dir)?;
        let flat =
            |v: &mut dyn Iterator<Item = Code>| v.flat_map(|c| c.into_iter()).collect::<Vec<u8>>();
        std::fs::write(
            dir.join("codes.bin"),
            flat(&mut entries.iter().map(|e| e.1)),
        )
        .context("writing codes.bin")?;
        std::fs::write(dir.join("queries.bin"), flat(&mut queries.iter().copied()))
            .context("writing queries.bin")?;
    }
    let t = Instant::now();
    let ix = Index::build(&entries);
    let build_s = t.elapsed().as_secs_f64();
    drop(entries);
    let info = ix.info();

    // One thread, one query at a time.
    let t = Instant::now();
    let mut found = 0usize;
    let mut results = Vec::with_capacity(queries.len());
    for q in &queries {
        let r = ix.search(q, a.radius);
        found += r.len();
        results.push(r);
    }
    let search_s = t.elapsed().as_secs_f64();
    let qps = queries.len() as f64 / search_s;

    // Recall against brute force (a batched scan) on a prefix of the queries.
    let k = a.recall_queries.min(queries.len());
    let t = Instant::now();
    let truth = ix.scan_batch(&queries[..k], a.radius);
    let brute_s = t.elapsed().as_secs_f64();
    let (mut want, mut got) = (0usize, 0usize);
    for (r, tr) in results.iter().zip(&truth) {
        let mut r: Vec<_> = r.iter().map(|m| m.id).collect();
        r.sort_unstable();
        want += tr.len();
        got += tr.iter().filter(|m| r.binary_search(&m.id).is_ok()).count();
    }
    let recall = if want == 0 {
        1.0
    } else {
        got as f64 / want as f64
    };
    let brute_qps = k as f64 / brute_s;
    let report = serde_json::json!({
        "bench": "index", "size": a.size, "queries": queries.len(), "radius": a.radius,
        "near_fraction": a.near_fraction, "seed": a.seed,
        "build_seconds": build_s, "build_threads": rayon::current_num_threads(),
        "bytes_per_code": info.bytes as f64 / info.len.max(1) as f64,
        "substring_bits": info.substring_bits, "scan_list": info.scan_list,
        "queries_per_second_one_core": qps, "matches_found": found,
        "recall": recall, "recall_queries": k, "true_matches_in_recall_queries": want,
        "brute_force_batched_queries_per_second": brute_qps,
        "speedup_vs_brute_force": qps / brute_qps,
        "kernel": bulwark_index::kernel_name(),
    });
    if a.json {
        println!("{report}");
    } else {
        println!(
            "bulwark index: {} codes, radius {}, {} queries ({:.0}% near-duplicates), seed {}",
            a.size,
            a.radius,
            queries.len(),
            a.near_fraction * 100.0,
            a.seed
        );
        println!(
            "  build                 {build_s:.2} s on {} threads",
            rayon::current_num_threads()
        );
        println!(
            "  size                  {:.1} bytes/code ({} substrings {:?}, scan list {})",
            info.bytes as f64 / info.len.max(1) as f64,
            info.substring_bits.len(),
            info.substring_bits,
            info.scan_list
        );
        println!("  search, one core      {qps:.0} queries/s ({found} matches)");
        println!(
            "  brute force (batched) {brute_qps:.0} queries/s  → index is {:.1}× faster",
            qps / brute_qps
        );
        println!("  recall vs brute force {recall:.4} over {k} queries ({want} true matches)");
        println!("  kernel                {}", bulwark_index::kernel_name());
    }
    Ok(ExitCode::SUCCESS)
}
