//! The text-hash index against a linear scan, in the same run.
//!
//! `cargo run --release -p bulwark-signals --example text_index_bench -- [N] [ADS] [QUERIES_PER_EDIT]`
//!
//! Banks N text hashes: ADS hashes of synthetic corpus ads (fictitious,
//! `corpus::generate`) and N − ADS random 256-bit codes standing in for
//! unrelated ads (distinct ads sit near distance 128 from each other, as
//! random codes do). Queries: re-posts of banked ads under every corpus edit,
//! plus as many ads that were never banked. For each index shape, prints the
//! recall against the linear scan's answer (pairs within the radius), the
//! candidates compared per query, the query time (mean, p99) and the ratio to
//! the linear scan's mean time, build time and memory.
use std::time::Instant;

use bulwark_signals::corpus::{self, Edit};
use bulwark_signals::{IndexParams, TEXT_HASH_RADIUS, TextHash, TextHashIndex};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// This thread's CPU time (user + system) in seconds, from
/// /proc/thread-self/stat (clock ticks, 100 Hz): on a loaded machine wall
/// time counts other processes' turns, CPU time does not.
fn cpu_s() -> f64 {
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split(' ').collect();
            Some((f[11].parse::<f64>().ok()? + f[12].parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(f64::NAN)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let ads: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let per_edit: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(150);
    let radius = TEXT_HASH_RADIUS;

    let t = Instant::now();
    let originals = corpus::generate(1, ads);
    let mut entries: Vec<(TextHash, u64)> = originals
        .iter()
        .filter_map(|a| TextHash::of_text(&a.text()).map(|h| (h, a.id as u64)))
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    while entries.len() < n {
        let mut b = [0u8; 32];
        rng.fill(&mut b);
        entries.push((TextHash(b), entries.len() as u64 + 10_000_000));
    }
    let mut queries = Vec::new();
    // Per re-post query: the id of the ad it re-posts.
    let mut origin: Vec<Option<u64>> = Vec::new();
    for (i, e) in Edit::ALL.iter().enumerate() {
        for j in 0..per_edit {
            let a = &originals[(i * 7919 + j * 104_729) % originals.len()];
            if let Some(h) = TextHash::of_text(&corpus::repost(a, *e, &mut rng).text()) {
                queries.push(h);
                origin.push(Some(a.id as u64));
            }
        }
    }
    let fresh = corpus::generate(99, per_edit * Edit::ALL.len());
    queries.extend(fresh.iter().filter_map(|a| TextHash::of_text(&a.text())));
    println!(
        "banked {} ({} corpus ads), {} queries ({} re-posts, rest never banked); setup {:.1} s",
        entries.len(),
        ads,
        queries.len(),
        per_edit * Edit::ALL.len(),
        t.elapsed().as_secs_f64()
    );

    let configs = [
        IndexParams::DEFAULT,
        IndexParams {
            bits: 16,
            tables: 40,
            probe: 1,
        },
        IndexParams {
            bits: 18,
            tables: 48,
            probe: 1,
        },
        IndexParams {
            bits: 20,
            tables: 64,
            probe: 1,
        },
    ];
    let mut rows = Vec::new();
    let mut truth: Vec<Vec<(u64, u32)>> = Vec::new();
    let mut linear_us = Vec::new();
    let mut linear_cpu = 0.0;
    for p in configs {
        let t = Instant::now();
        let idx = TextHashIndex::build(p, entries.iter().copied());
        let build_s = t.elapsed().as_secs_f64();
        if truth.is_empty() {
            // The reference, timed on the same machine in the same run.
            let c0 = cpu_s();
            for q in &queries {
                let t = Instant::now();
                let r = idx.search_linear(q, radius);
                linear_us.push(t.elapsed().as_secs_f64() * 1e6);
                truth.push(r);
            }
            linear_cpu = (cpu_s() - c0) / queries.len() as f64 * 1e6;
        }
        let c0 = cpu_s();
        let mut us = Vec::new();
        let (mut want, mut got, mut cands) = (0usize, 0usize, 0usize);
        // Re-posts whose original the scan finds within the radius, and of
        // those, the ones the index finds.
        let (mut own_want, mut own_got) = (0usize, 0usize);
        for (i, (q, tr)) in queries.iter().zip(&truth).enumerate() {
            let t = Instant::now();
            let (r, c) = idx.search_counted(q, radius);
            us.push(t.elapsed().as_secs_f64() * 1e6);
            cands += c;
            want += tr.len();
            got += r.len();
            assert!(
                r.iter().all(|x| tr.contains(x)),
                "index reported a non-match"
            );
            if let Some(Some(o)) = origin.get(i)
                && tr.iter().any(|x| x.0 == *o)
            {
                own_want += 1;
                own_got += usize::from(r.iter().any(|x| x.0 == *o));
            }
        }
        let cpu = (cpu_s() - c0) / queries.len() as f64 * 1e6;
        rows.push((
            cpu,
            p,
            build_s,
            idx.memory_bytes(),
            us,
            want,
            got,
            cands,
            own_want,
            own_got,
        ));
        drop(idx);
    }
    let stats = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        (
            s.iter().sum::<f64>() / s.len() as f64,
            s[(s.len() * 99 / 100).min(s.len() - 1)],
        )
    };
    let (lin_mean, lin_p99) = stats(&linear_us);
    println!(
        "\nradius {radius}; linear scan: wall mean {lin_mean:.0} µs, p99 {lin_p99:.0} µs; CPU {linear_cpu:.0} µs per query\n"
    );
    println!(
        "| bits × tables, probe | re-posts: own original found | all pairs within radius found | P(miss) at d=60 / 50 / 40 | candidates/query | wall mean µs | wall p99 µs | CPU µs | scan/index (wall, CPU) | build s | memory MB |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (cpu, p, build_s, mem, us, want, got, cands, own_want, own_got) in rows {
        let (m, p99) = stats(&us);
        println!(
            "| {} × {}, {} | {}/{} = {:.4} | {}/{} = {:.4} | {:.3} / {:.1e} / {:.1e} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1}, {:.1} | {:.1} | {:.0} |",
            p.bits,
            p.tables,
            p.probe,
            own_got,
            own_want,
            own_got as f64 / own_want.max(1) as f64,
            got,
            want,
            got as f64 / want.max(1) as f64,
            p.miss_probability(60),
            p.miss_probability(50),
            p.miss_probability(40),
            cands as f64 / queries.len() as f64,
            m,
            p99,
            cpu,
            lin_mean / m,
            linear_cpu / cpu,
            build_s,
            mem as f64 / 1e6
        );
    }
    // The distances of the true matches, to read recall against.
    let mut hist = [0usize; 7];
    for tr in &truth {
        for &(_, d) in tr {
            hist[(d / 10).min(6) as usize] += 1;
        }
    }
    println!("\ntrue matches by distance (0–9, 10–19, …, 60): {hist:?}");
}
