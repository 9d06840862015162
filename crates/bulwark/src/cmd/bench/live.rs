//! `bulwark bench live`: the live index under a bulk load, as an import job
//! gives it (batches of codes through `LiveIndex::replace`), against the
//! policy it had until 2026-12-04, replayed here in the same run: one
//! indexed segment, rebuilt whole each time the append segment reaches a
//! sixteenth of it (at least 8,192 codes). Reports the CPU each spends on
//! the way to the same size, how many codes each built, and the search
//! latency the live index gives during and after the load. `--preloaded`
//! puts codes in the index first (a large bank taking an import).

use std::process::ExitCode;
use std::time::Instant;

use bulwark_index::{Code, Index, LiveIndex};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::import::pct;
use super::serve::rss_mib;
use super::vpdq::process_cpu_s;

/// Arguments of `bulwark bench live`.
#[derive(clap::Args)]
pub struct Args {
    /// Codes loaded.
    #[arg(long, default_value_t = 1_000_000)]
    size: usize,
    /// Codes in the index before the load (one segment, built untimed).
    #[arg(long, default_value_t = 0)]
    preloaded: usize,
    /// Codes a `replace` call (an import batch writes 2,048).
    #[arg(long, default_value_t = 2048)]
    batch: usize,
    /// The append segment's limit (`LiveIndex::with_append_limit`).
    #[arg(long, default_value_t = bulwark_index::APPEND_LIMIT)]
    append_limit: usize,
    /// Codes a second, as an import writes them (0: as fast as the calls
    /// return, which leaves the background builds behind).
    #[arg(long, default_value_t = 100_000)]
    rate: u64,
    /// Searches timed at the end (each, one at a time), radius 31.
    #[arg(long, default_value_t = 2000)]
    queries: usize,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// p50 and p99 of `v` (µs), as `bench import` takes them ([`pct`]).
fn percentiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (pct(&v, 0.5), pct(&v, 0.99))
}

/// Times one search per query, µs each.
fn search_us(live: &LiveIndex, queries: &[Code]) -> (Vec<f64>, usize) {
    let mut found = 0;
    let t: Vec<f64> = queries
        .iter()
        .map(|q| {
            let t = Instant::now();
            found += live.search(q, 31).len();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    (t, found)
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed);
    let total = a.preloaded + a.size;
    let codes: Vec<(u64, Code)> = (0..total as u64)
        .map(|i| {
            let mut c = [0u8; 32];
            rng.fill(&mut c[..]);
            (i, c)
        })
        .collect();
    // Half near-duplicates of loaded codes (up to 31 bits flipped), half random.
    let queries: Vec<Code> = (0..a.queries)
        .map(|i| {
            let mut c = if i % 2 == 0 && !codes.is_empty() {
                codes[rng.gen_range(0..codes.len())].1
            } else {
                [0u8; 32]
            };
            if i % 2 == 0 {
                for _ in 0..rng.gen_range(0..=31) {
                    let b = rng.gen_range(0..256);
                    c[b / 8] ^= 1 << (b % 8);
                }
            } else {
                rng.fill(&mut c[..]);
            }
            c
        })
        .collect();
    let batch = a.batch.max(1);

    let (preloaded, load) = codes.split_at(a.preloaded);

    // The policy before: one segment, rebuilt at each sixteenth.
    let mut base = Index::build(preloaded);
    let cpu0 = process_cpu_s().unwrap_or(0.0);
    let t = Instant::now();
    let (mut base_len, mut tail, mut old_builds, mut old_built) = (a.preloaded, 0, 0, 0);
    for chunk in load.chunks(batch) {
        tail += chunk.len();
        if tail >= (base_len / 16).max(8192) {
            base = Index::build(&codes[..base_len + tail]);
            base_len += tail;
            tail = 0;
            old_builds += 1;
            old_built += base_len;
        }
    }
    let old_s = t.elapsed().as_secs_f64();
    let old_cpu = process_cpu_s().unwrap_or(0.0) - cpu0;
    // Its searches at the end: the segment and the codes since its last
    // build, scanned.
    let before = LiveIndex::with_append_limit(base, usize::MAX);
    before.replace(&[], &codes[base_len..]);
    let (at_end_before, found_before) = search_us(&before, &queries);
    drop(before);
    // And just before a rebuild, its worst: a sixteenth of the segment
    // scanned (the first 16/17 of the codes in the segment).
    let split = total / 17 * 16;
    let worst = LiveIndex::with_append_limit(Index::build(&codes[..split]), usize::MAX);
    worst.replace(&[], &codes[split..]);
    let (worst_before, _) = search_us(&worst, &queries);
    drop(worst);

    // The live index, as an import job loads it.
    let rss0 = rss_mib();
    let live = LiveIndex::with_append_limit(Index::build(preloaded), a.append_limit);
    let during_every = (load.len() / batch / 50).max(1);
    let mut during = Vec::new();
    let mut most_segments = 1;
    let cpu0 = process_cpu_s().unwrap_or(0.0);
    let t = Instant::now();
    for (i, chunk) in load.chunks(batch).enumerate() {
        if a.rate > 0 {
            let due = std::time::Duration::from_secs_f64((i * batch) as f64 / a.rate as f64);
            if let Some(wait) = due.checked_sub(t.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        live.replace(&[], chunk);
        most_segments = most_segments.max(live.segments());
        if i % during_every == 0 {
            during.extend(search_us(&live, &queries[..queries.len().min(20)]).0);
        }
    }
    // The last background build, if one runs, is part of the load.
    live.build_pending();
    let new_s = t.elapsed().as_secs_f64();
    let new_cpu = process_cpu_s().unwrap_or(0.0) - cpu0;
    let rss_loaded = rss_mib();
    let segments = live.segments();
    let pending = live.pending();
    let fragmented = live.fragmented();
    let (after_load, found) = search_us(&live, &queries);
    let t = Instant::now();
    live.merge();
    let merge_s = t.elapsed().as_secs_f64();
    let (after_merge, found_merged) = search_us(&live, &queries);
    anyhow::ensure!(
        found == found_merged && found == found_before,
        "the segments found {found} matches, the merged index {found_merged}, the policy before {found_before}"
    );
    let (during_p50, during_p99) = percentiles(during);
    let (load_p50, load_p99) = percentiles(after_load);
    let (merged_p50, merged_p99) = percentiles(after_merge);
    let (before_p50, before_p99) = percentiles(at_end_before);
    let (worst_p50, worst_p99) = percentiles(worst_before);
    let report = serde_json::json!({
        "bench": "live", "size": a.size, "preloaded": a.preloaded, "batch": batch, "append_limit": a.append_limit, "rate": a.rate,
        "machine": super::machine(),
        "load_cpu_s": new_cpu, "load_s": new_s,
        "before_cpu_s": old_cpu, "before_s": old_s,
        "before_builds": old_builds, "before_codes_built": old_built,
        "before_pending_at_end": total - base_len,
        "search_before_p50_us": before_p50, "search_before_p99_us": before_p99,
        "search_before_worst_p50_us": worst_p50, "search_before_worst_p99_us": worst_p99,
        "cpu_ratio": old_cpu / new_cpu.max(1e-9),
        "segments_most": most_segments, "segments_after_load": segments,
        "pending_after_load": pending,
        "search_during_load_p50_us": during_p50, "search_during_load_p99_us": during_p99,
        "search_after_load_p50_us": load_p50, "search_after_load_p99_us": load_p99,
        "fragmented_after_load": fragmented, "merge_s": merge_s,
        "search_merged_p50_us": merged_p50, "search_merged_p99_us": merged_p99,
        "rss_before_mib": rss0, "rss_loaded_mib": rss_loaded,
    });
    if a.json {
        println!("{report}");
    } else {
        println!(
            "bulwark live: {} codes into {} in batches of {batch} at {} a second, append limit {}, on {}",
            a.size,
            a.preloaded,
            a.rate,
            a.append_limit,
            super::machine()
        );
        println!(
            "  load, segments    {new_cpu:.2} s CPU ({new_s:.2} s wall); {most_segments} segments at most, {segments} after"
        );
        println!(
            "  load, one segment {old_cpu:.2} s CPU ({old_s:.2} s wall; {old_builds} builds, {old_built} codes built)  → {:.2}× the CPU",
            old_cpu / new_cpu.max(1e-9)
        );
        println!(
            "  search, radius 31, one segment and {} codes scanned (the policy before): p50 {before_p50:.0} µs p99 {before_p99:.0} µs",
            total - base_len
        );
        println!(
            "  search, radius 31, the policy before at its worst ({} codes scanned): p50 {worst_p50:.0} µs p99 {worst_p99:.0} µs",
            total - split
        );
        println!(
            "  search, radius 31 during load p50 {during_p50:.0} µs p99 {during_p99:.0} µs; after p50 {load_p50:.0} p99 {load_p99:.0}; merged ({merge_s:.2} s; the server merges after an import: {fragmented}) p50 {merged_p50:.0} p99 {merged_p99:.0}"
        );
    }
    Ok(ExitCode::SUCCESS)
}
