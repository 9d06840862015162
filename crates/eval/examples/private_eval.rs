//! Recall of the private path through **real safety vouchers** on a corpus:
//! every original and its edits (resize, JPEG, 1 % and 2 % crops) are hashed
//! with PDQ's per-bit confidence; half of the originals (even positions) form
//! the bank; for each profile, every copy of a banked original goes through
//! `DeviceAccount::voucher_probing` (the device) → `Voucher::to_bytes` /
//! `from_bytes` (the wire) → `AccountState::ingest` (the function the
//! service's voucher worker calls) on a fresh account state, and counts as
//! found if it opened. Recall is reported relative to plain PDQ at the same
//! radius (31) on the same copies. The other half of the originals and their
//! edits are innocent images: every one that opens against the bank while
//! farther than the radius from every banked hash is a false candidate.
//!
//! ```sh
//! cargo run --release --example private_eval -- IMAGES_DIR CACHE_TSV [EVERY] [sweep]
//! ```
//! `EVERY` keeps every n-th original (1 = all). `sweep` prints an LSH-only
//! parameter sweep (no cryptography) before the voucher run.

use std::time::Instant;

use bulwark_eval::private::{ConfidentCorpus, Item, hash_corpus};
use bulwark_eval::{Config, find_images, transforms};
use bulwark_pdq::PdqHash;
use bulwark_psi::{AccountState, DeviceAccount, Params, Pdata, ServerKeys, Voucher, lsh};
use rand::SeedableRng;
use rayon::prelude::*;

const EDITS: [&str; 14] = [
    "identity",
    "resize-0.25",
    "resize-0.40",
    "resize-0.50",
    "resize-0.75",
    "resize-1.50",
    "resize-2.00",
    "jpeg-q20",
    "jpeg-q30",
    "jpeg-q50",
    "jpeg-q70",
    "jpeg-q95",
    "crop-01pct",
    "crop-02pct",
];

const GROUPS: [(&str, &str); 4] = [
    ("resize", "resize-"),
    ("jpeg", "jpeg-"),
    ("crop 1%", "crop-01pct"),
    ("crop 2%", "crop-02pct"),
];

const RADIUS: u32 = 31;
const BANK_MODEL: f64 = 1e6;

fn group_of(name: &str) -> Option<usize> {
    GROUPS.iter().position(|(_, p)| name.starts_with(p))
}

/// Does `copy` open against `bank_hash` at the LSH level (the same sub-keys the
/// device sends, no cryptography): at least m tables where a probe agrees.
fn lsh_tables(positions: &[Vec<u8>], probes: usize, copy: &Item, bank_hash: &PdqHash) -> usize {
    positions
        .iter()
        .enumerate()
        .filter(|(l, pos)| {
            let want = lsh::sub_key(bank_hash, *l as u16, pos);
            lsh::probe_keys(
                &copy.value.hash,
                &copy.value.margins,
                *l as u16,
                pos,
                probes,
            )
            .contains(&want)
        })
        .count()
}

/// ln C(n, r).
fn ln_choose(n: u32, r: u32) -> f64 {
    if r > n {
        return f64::NEG_INFINITY;
    }
    (0..r)
        .map(|i| (f64::from(n - i) / f64::from(i + 1)).ln())
        .sum()
}

/// P(a table of k random positions sees exactly the flip set of size f among
/// d differing bits) = C(256−k, d−f) / C(256, d), times β^f for the
/// measured excess of differing bits among low-margin ones.
fn probe_hit(d: u32, k: u32, f: u32, beta: f64) -> f64 {
    if f > d {
        return 0.0;
    }
    (ln_choose(256 - k, d - f) - ln_choose(256, d)).exp() * beta.powi(f as i32)
}

struct Profile {
    name: &'static str,
    params: Params,
}

/// Modelled false candidates per innocent image against a bank of 10⁶
/// unrelated photos distributed like the banked half of the corpus: per
/// table, the chance some probe equals an entry's sub-key given their
/// distance and the probe's flip count (hypergeometric, with β for
/// low-margin bits differing more often), then P(≥ m tables) assuming
/// independent tables; the larger of that and the expected number of single
/// entries agreeing on m tables (as `psi`'s `lsh_params` example does).
fn model_fc(
    p: &Params,
    positions: &[Vec<u8>],
    innocents: &[&Item],
    bank: &[PdqHash],
    beta: f64,
) -> f64 {
    let k = u32::from(p.bits_per_table);
    let probes = usize::from(p.probes);
    let (l, m) = (usize::from(p.tables), usize::from(p.min_tables));
    // probe_hit for every distance and flip count, once.
    let hit: Vec<[f64; 4]> = (0..=256u32)
        .map(|d| std::array::from_fn(|f| probe_hit(d, k, f as u32, beta)))
        .collect();
    let total: f64 = innocents
        .par_iter()
        .map(|a| {
            // Flip counts of a's probes in each table.
            let flips: Vec<Vec<u32>> = positions
                .iter()
                .enumerate()
                .map(|(t, pos)| {
                    let exact = lsh::sub_key(&a.value.hash, t as u16, pos);
                    lsh::probe_keys(&a.value.hash, &a.value.margins, t as u16, pos, probes)
                        .iter()
                        .map(|q| (q.bits ^ exact.bits).count_ones())
                        .collect()
                })
                .collect();
            let mut q_mean = vec![0.0; l];
            let mut single = 0.0;
            for b in bank {
                let d = a.value.hash.distance(b);
                let q: Vec<f64> = flips
                    .iter()
                    .map(|fs| {
                        fs.iter()
                            .map(|&f| hit[d as usize][f as usize])
                            .sum::<f64>()
                            .min(1.0)
                    })
                    .collect();
                for (acc, qi) in q_mean.iter_mut().zip(&q) {
                    *acc += qi / bank.len() as f64;
                }
                single += at_least(&q, m) / bank.len() as f64;
            }
            let per_table: Vec<f64> = q_mean
                .iter()
                .map(|q| 1.0 - (-BANK_MODEL * q).exp())
                .collect();
            at_least(&per_table, m).max((BANK_MODEL * single).min(1.0))
        })
        .sum();
    total / innocents.len() as f64
}

/// P(at least m of independent events with probabilities `p`).
fn at_least(p: &[f64], m: usize) -> f64 {
    let mut dist = vec![0.0; p.len() + 1];
    dist[0] = 1.0;
    for &pi in p {
        for j in (0..p.len()).rev() {
            dist[j + 1] += dist[j] * pi;
            dist[j] *= 1.0 - pi;
        }
    }
    dist[m..].iter().sum()
}

/// β: how much likelier one of an innocent image's 64 least confident bits
/// differs from an unrelated banked hash than an average bit does.
fn measure_beta(innocents: &[&Item], bank: &[PdqHash]) -> f64 {
    let (mut low, mut all) = (0u64, 0u64);
    for a in innocents {
        let mut order: Vec<usize> = (0..256).collect();
        order.sort_by(|&x, &y| a.value.margins[x].total_cmp(&a.value.margins[y]));
        for b in bank {
            all += u64::from(a.value.hash.distance(b));
            low += order[..64]
                .iter()
                .filter(|&&i| a.value.hash.bit(i) != b.bit(i))
                .count() as u64;
        }
    }
    (low as f64 / 64.0) / (all as f64 / 256.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, cache, rest @ ..] = args.as_slice() else {
        return Err("usage: private_eval IMAGES_DIR CACHE_TSV [EVERY] [sweep]".into());
    };
    let every: usize = rest.first().map_or(Ok(1), |s| s.parse())?;
    let sweep = rest.iter().any(|s| s == "sweep");
    let mut set = transforms::standard_set();
    set.retain(|t| EDITS.contains(&t.name.as_str()));
    assert_eq!(set[0].name, "identity");
    let images: Vec<_> = find_images(std::path::Path::new(dir))?
        .into_iter()
        .step_by(every.max(1))
        .collect();
    let started = Instant::now();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let corpus: ConfidentCorpus = hash_corpus(
        &images,
        &Config::default(),
        set,
        Some(std::path::Path::new(cache)),
        &|| {
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if n.is_multiple_of(100) {
                eprintln!("hashed {n} of {}", images.len());
            }
        },
    )?;
    eprintln!(
        "hashing: {} originals × {} edits in {:.0} s ({} failed)",
        corpus.originals.len(),
        corpus.transforms.len(),
        started.elapsed().as_secs_f64(),
        corpus.failed.len()
    );
    let names: Vec<&str> = corpus.transforms.iter().map(|t| t.name.as_str()).collect();
    let originals: Vec<&Item> = corpus.items.iter().filter(|i| i.transform == 0).collect();
    let bank: Vec<(u64, PdqHash)> = originals
        .iter()
        .filter(|o| o.original % 2 == 0)
        .map(|o| (o.original as u64, o.value.hash))
        .collect();
    let bank_hashes: Vec<PdqHash> = bank.iter().map(|b| b.1).collect();
    let orig_hash = |o: usize| {
        originals
            .iter()
            .find(|i| i.original == o)
            .map(|i| i.value.hash)
    };
    // Copies of banked originals (not the identity), and innocents: the
    // other half and its edits, unless within the radius of a banked hash
    // (a cross-half near-duplicate is not innocent).
    let copies: Vec<&Item> = corpus
        .items
        .iter()
        .filter(|i| i.original % 2 == 0 && i.transform != 0)
        .collect();
    let innocents: Vec<&Item> = corpus
        .items
        .iter()
        .filter(|i| i.original % 2 == 1)
        .filter(|i| {
            bank_hashes
                .iter()
                .all(|b| b.distance(&i.value.hash) > RADIUS)
        })
        .collect();
    let innocent_originals: Vec<&Item> = innocents
        .iter()
        .copied()
        .filter(|i| i.transform == 0)
        .collect();
    let beta = measure_beta(&innocent_originals, &bank_hashes);
    println!(
        "corpus: {} originals ({} banked), {} copies of banked originals, {} innocent images ({} originals), β = {beta:.2}",
        originals.len(),
        bank.len(),
        copies.len(),
        innocents.len(),
        innocent_originals.len()
    );
    // Plain PDQ at radius 31 per group.
    let within: Vec<bool> = copies
        .iter()
        .map(|c| orig_hash(c.original).is_some_and(|h| h.distance(&c.value.hash) <= RADIUS))
        .collect();
    print!("plain PDQ recall at {RADIUS}:");
    for (g, (gname, _)) in GROUPS.iter().enumerate() {
        let (n, hit) = copies.iter().zip(&within).fold((0, 0), |(n, h), (c, w)| {
            if group_of(names[c.transform]) == Some(g) {
                (n + 1, h + usize::from(*w))
            } else {
                (n, h)
            }
        });
        print!(" {gname} {:.3} ({hit}/{n});", hit as f64 / n.max(1) as f64);
    }
    println!();

    let profiles = vec![
        Profile {
            name: "default (v2: 6 × 32 bits, 2 to open, 1 probe)",
            params: Params::default(),
        },
        Profile {
            name: "multiprobe (v3: 6 × 40 bits, 1 to open, 5 probes)",
            params: Params::multiprobe(),
        },
    ];

    if sweep {
        println!(
            "\nLSH-only sweep (no cryptography; 3 pdata seeds; recall vs plain; modelled fc/img at 10⁶):"
        );
        println!(
            "| k | L | m | probes | resize | jpeg | crop 1% | crop 2% | fc/img (model) | pairs |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let mut cands: Vec<(u8, u16, u16, u8)> = vec![
            (32, 6, 2, 1),
            (32, 6, 2, 5),
            (36, 6, 2, 5),
            (36, 8, 2, 4),
            (32, 8, 3, 2),
            (44, 6, 1, 4),
            (38, 6, 1, 5),
            (40, 6, 1, 5),
            (42, 6, 1, 5),
            (40, 8, 1, 4),
            (40, 4, 1, 8),
            (48, 6, 1, 8),
        ];
        if let Ok(spec) = std::env::var("PRIVATE_EVAL_SWEEP") {
            // "k,L,m,probes;…" replaces the built-in list.
            cands = spec
                .split(';')
                .filter_map(|c| {
                    let v: Vec<u16> = c.split(',').filter_map(|x| x.trim().parse().ok()).collect();
                    (v.len() == 4).then(|| (v[0] as u8, v[1], v[2], v[3] as u8))
                })
                .collect();
        }
        for (k, l, m, p) in cands {
            let ok = Params {
                bits_per_table: k,
                tables: l,
                min_tables: m,
                probes: p,
                ..Params::default()
            }
            .validate();
            if let Err(e) = ok {
                println!("| {k} | {l} | {m} | {p} | {e} |");
                continue;
            }
            let params = Params {
                bits_per_table: k,
                tables: l,
                min_tables: m,
                probes: p,
                ..Params::default()
            };
            let mut rec = [0.0f64; 4];
            let mut fc = 0.0;
            for s in 0..3u8 {
                let pos = lsh::positions(&[s; 32], l, k);
                let hits: Vec<(usize, bool)> = copies
                    .par_iter()
                    .zip(&within)
                    .filter(|(_, w)| **w)
                    .filter_map(|(c, _)| {
                        let g = group_of(names[c.transform])?;
                        let o = orig_hash(c.original)?;
                        Some((g, lsh_tables(&pos, usize::from(p), c, &o) >= usize::from(m)))
                    })
                    .collect();
                for (g, r) in rec.iter_mut().enumerate() {
                    let n = hits.iter().filter(|h| h.0 == g).count();
                    let y = hits.iter().filter(|h| h.0 == g && h.1).count();
                    *r += y as f64 / n.max(1) as f64 / 3.0;
                }
                fc += model_fc(&params, &pos, &innocent_originals, &bank_hashes, beta) / 3.0;
            }
            println!(
                "| {k} | {l} | {m} | {p} | {:.3} | {:.3} | {:.3} | {:.3} | {fc:.2e} | {} |",
                rec[0],
                rec[1],
                rec[2],
                rec[3],
                params.pairs()
            );
        }
    }

    if std::env::var_os("PRIVATE_EVAL_SWEEP_ONLY").is_some() {
        return Ok(());
    }
    println!(
        "\nThrough real vouchers (device → wire → AccountState::ingest), recall relative to plain PDQ at {RADIUS}:"
    );
    println!(
        "| profile | resize | jpeg | crop 1% | crop 2% | false candidates / innocent image | fc/img modelled at 10⁶ | device ms / voucher (2 threads) | bytes / voucher | server ms / voucher (2 threads) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for prof in &profiles {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(42);
        let keys = ServerKeys::generate(&mut rng);
        let params = Params {
            synthetic_probability: 0.0, // measure the LSH path, not the noise
            ..prof.params
        };
        let (server_pdata, _table) = Pdata::build(&keys, &params, &bank, &mut rng)?;
        let device_pdata = Pdata::from_bytes(&server_pdata.to_bytes(), &server_pdata.root())?;
        let account = DeviceAccount::generate(&mut rng);
        let derivative = [0u8; 1024];
        // (group or innocent, opened, device µs, server µs, bytes)
        let run = |items: &[&Item], seed: u64| -> Vec<(usize, bool, f64, f64, usize)> {
            items
                .par_iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed ^ (i as u64) << 20);
                    let t0 = Instant::now();
                    let v = account
                        .voucher_probing(
                            &device_pdata,
                            &c.value.hash,
                            Some(&c.value.margins),
                            &c.value.hash,
                            &derivative,
                            &mut rng,
                        )
                        .expect("voucher");
                    let wire = v.to_bytes();
                    let dev = t0.elapsed().as_secs_f64() * 1e6;
                    let t1 = Instant::now();
                    let parsed = Voucher::from_bytes(&wire).expect("parses");
                    let mut state = AccountState::for_epoch(server_pdata.release().epoch);
                    state
                        .ingest(&keys, &server_pdata, &parsed)
                        .expect("ingests");
                    let srv = t1.elapsed().as_secs_f64() * 1e6;
                    let g = group_of(names[c.transform]).unwrap_or(usize::MAX);
                    (g, state.len() == 1, dev, srv, wire.len())
                })
                .collect()
        };
        let within_copies: Vec<&Item> = copies
            .iter()
            .zip(&within)
            .filter(|(_, w)| **w)
            .map(|(c, _)| *c)
            .collect();
        let r = run(&within_copies, 1);
        let f = run(&innocents, 2);
        let mut row = format!("| {} |", prof.name);
        for g in 0..GROUPS.len() {
            let n = r.iter().filter(|x| x.0 == g).count();
            let y = r.iter().filter(|x| x.0 == g && x.1).count();
            row.push_str(&format!(" {:.3} ({y}/{n}) |", y as f64 / n.max(1) as f64));
        }
        let fcs = f.iter().filter(|x| x.1).count();
        let modelled = model_fc(
            &params,
            device_pdata.positions(),
            &innocent_originals,
            &bank_hashes,
            beta,
        );
        let all: Vec<&(usize, bool, f64, f64, usize)> = r.iter().chain(&f).collect();
        let n = all.len() as f64;
        let dev = all.iter().map(|x| x.2).sum::<f64>() / n / 1000.0;
        let srv = all.iter().map(|x| x.3).sum::<f64>() / n / 1000.0;
        let bytes = all.iter().map(|x| x.4).max().unwrap_or(0);
        assert!(
            all.iter().all(|x| x.4 == bytes),
            "every voucher has one size"
        );
        row.push_str(&format!(
            " {:.2e} ({fcs}/{}) | {modelled:.2e} | {dev:.2} | {bytes} | {srv:.2} |",
            fcs as f64 / f.len().max(1) as f64,
            f.len()
        ));
        println!("{row}");
    }
    // Device time, one thread, the profiles interleaved on the same images.
    {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let keys = ServerKeys::generate(&mut rng);
        let account = DeviceAccount::generate(&mut rng);
        let pdatas: Vec<Pdata> = profiles
            .iter()
            .map(|p| Pdata::build(&keys, &p.params, &bank, &mut rng).map(|x| x.0))
            .collect::<Result<_, _>>()?;
        let mut total = vec![0.0f64; profiles.len()];
        let sample: Vec<&Item> = copies.iter().step_by(40).copied().collect();
        for c in &sample {
            for (i, p) in pdatas.iter().enumerate() {
                let t = Instant::now();
                let v = account.voucher_probing(
                    p,
                    &c.value.hash,
                    Some(&c.value.margins),
                    &c.value.hash,
                    &[0u8; 1024],
                    &mut rng,
                )?;
                total[i] += t.elapsed().as_secs_f64();
                std::hint::black_box(v);
            }
        }
        println!();
        for (p, t) in profiles.iter().zip(total) {
            println!(
                "device, one thread, {} vouchers: {}: {:.2} ms per voucher",
                sample.len(),
                p.name,
                t * 1000.0 / sample.len() as f64
            );
        }
    }
    // The device's extra cost: PDQ with margins vs the plain hash.
    let sample: Vec<_> = images.iter().take(40).collect();
    let (mut plain, mut conf) = (0.0, 0.0);
    for p in &sample {
        let bytes = std::fs::read(p)?;
        let img = bulwark_pdq::decode(&bytes, &bulwark_pdq::Limits::default())?;
        let t = Instant::now();
        let a = bulwark_pdq::hash_image(&img, bulwark_pdq::Mode::Full);
        plain += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let b = bulwark_pdq::hash_image_confidence(&img);
        conf += t.elapsed().as_secs_f64();
        assert_eq!(a.hash, b.hash);
    }
    println!(
        "\nPDQ on the device ({} full-size originals): plain {:.1} ms, with margins {:.1} ms per image (same hashes).",
        sample.len(),
        plain * 1000.0 / sample.len() as f64,
        conf * 1000.0 / sample.len() as f64
    );
    eprintln!("total {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
