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
use bulwark_psi::{
    AccountState, DeviceAccount, Params, Pdata, Release, ServerKeys, Voucher, lsh,
    opened_pairs_per_table,
};
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

/// In how many tables `copy` agrees with one banked image at the LSH level
/// (the same sub-keys the device sends, no cryptography): tables where some
/// probe equals the sub-key of one of the image's bank entries (its hash and
/// any bank-side variants, which only the first `variant_tables` tables hold).
fn lsh_tables(
    positions: &[Vec<u8>],
    probes: usize,
    copy: &Item,
    entries: &[PdqHash],
    variant_tables: usize,
) -> usize {
    positions
        .iter()
        .enumerate()
        .filter(|(l, pos)| {
            let probe = lsh::probe_keys(
                &copy.value.hash,
                &copy.value.margins,
                *l as u16,
                pos,
                probes,
            );
            let n = if *l < variant_tables {
                entries.len()
            } else {
                1
            };
            entries[..n]
                .iter()
                .any(|e| probe.contains(&lsh::sub_key(e, *l as u16, pos)))
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
    name: String,
    params: Params,
    /// Bank-side variants per banked image (the first n of `bank_variants`).
    variants: usize,
    /// How many tables (the first) hold the variants' sub-keys.
    variant_tables: u16,
}

/// Modelled false candidates per innocent image against a bank of
/// [`BANK_MODEL`] photos distributed like `bank` (the banked half of the
/// corpus; each photo's entries: its hash and any bank-side variants, which
/// only the first `variant_tables` tables hold): per
/// table and photo, the chance some probe equals one of the photo's distinct
/// sub-keys in that table (entries whose sub-key repeats an earlier entry's
/// count once: the pdata holds it once) given their distance and the probe's
/// flip count (hypergeometric, with β for low-margin bits differing more
/// often; summed over probes and entries, a union bound), then P(≥ m tables)
/// assuming independent tables; the larger of that and the expected number of
/// single photos agreeing on m tables (as `psi`'s `lsh_params` example does).
fn model_fc(
    p: &Params,
    positions: &[Vec<u8>],
    innocents: &[&Item],
    bank: &[Vec<PdqHash>],
    variant_tables: usize,
    beta: f64,
) -> f64 {
    let k = u32::from(p.bits_per_table);
    let probes = usize::from(p.probes);
    let (l, m) = (usize::from(p.tables), usize::from(p.min_tables));
    // probe_hit for every distance and flip count, once.
    let hit: Vec<[f64; 4]> = (0..=256u32)
        .map(|d| std::array::from_fn(|f| probe_hit(d, k, f as u32, beta)))
        .collect();
    // Which entries of each photo bring a new sub-key to each table.
    let fresh: Vec<Vec<Vec<bool>>> = bank
        .iter()
        .map(|es| {
            positions
                .iter()
                .enumerate()
                .map(|(t, pos)| {
                    let keys: Vec<lsh::SubKey> =
                        es.iter().map(|e| lsh::sub_key(e, t as u16, pos)).collect();
                    (0..keys.len())
                        .map(|i| (i == 0 || t < variant_tables) && !keys[..i].contains(&keys[i]))
                        .collect()
                })
                .collect()
        })
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
            for (es, fresh) in bank.iter().zip(&fresh) {
                let mut q = vec![0.0f64; l];
                for (i, e) in es.iter().enumerate() {
                    let d = a.value.hash.distance(e) as usize;
                    for (t, fs) in flips.iter().enumerate() {
                        if fresh[t][i] {
                            q[t] += fs.iter().map(|&f| hit[d][f as usize]).sum::<f64>();
                        }
                    }
                }
                for qi in q.iter_mut() {
                    *qi = qi.min(1.0);
                }
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

/// Bank entries: (content id, hash).
type Bank = Vec<(u64, PdqHash)>;

/// A voucher as the server sees it once opened: how many of its pairs open
/// in each agreeing table (descending; `opened_pairs_per_table`).
type Signature = Vec<usize>;

/// The table-count attack: for each class of real opened vouchers, how well
/// the server tells them from synthetic ones by what an opened voucher shows.
/// Prints, per class, the total variation distance between the two
/// distributions (a best test's accuracy at equal priors is 0.5 + TV/2), the
/// likelihood ratio real : synthetic of the class's commonest signature, and
/// the share of real vouchers whose signature no synthetic voucher showed.
fn leak_report(
    profile: &str,
    real: &[(String, Signature)],
    synthetic: &[Signature],
    key: &dyn Fn(&Signature) -> String,
) {
    use std::collections::BTreeMap;
    let dist = |v: &mut dyn Iterator<Item = &Signature>| {
        let mut m: BTreeMap<String, f64> = BTreeMap::new();
        let mut n = 0.0;
        for s in v {
            *m.entry(key(s)).or_default() += 1.0;
            n += 1.0;
        }
        for x in m.values_mut() {
            *x /= n;
        }
        (m, n as usize)
    };
    let (syn, ns) = dist(&mut synthetic.iter());
    let mut classes: Vec<&str> = real.iter().map(|r| r.0.as_str()).collect();
    classes.sort_unstable();
    classes.dedup();
    println!(
        "  {profile}: synthetic ({ns} vouchers): {}",
        syn.iter()
            .map(|(k, p)| format!("{k} {p:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for c in classes {
        let (r, nr) = dist(&mut real.iter().filter(|x| x.0 == c).map(|x| &x.1));
        let keys: std::collections::BTreeSet<&String> = r.keys().chain(syn.keys()).collect();
        let tv = 0.5
            * keys
                .iter()
                .map(|k| (r.get(*k).unwrap_or(&0.0) - syn.get(*k).unwrap_or(&0.0)).abs())
                .sum::<f64>();
        let (mode, pm) = r
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(k, p)| (k.clone(), *p))
            .unwrap_or_default();
        let ps = syn.get(&mode).copied().unwrap_or(0.0);
        let never: f64 = r
            .iter()
            .filter(|(k, _)| !syn.contains_key(*k))
            .map(|(_, p)| p)
            .sum();
        let lr = if ps > 0.0 {
            format!("{:.2}", pm / ps)
        } else {
            "∞".into()
        };
        println!(
            "    {c} ({nr} opened): TV {tv:.3}; commonest {mode} ({pm:.3}, synthetic {ps:.3}): LR {lr}; never synthetic {never:.3}; {}",
            r.iter()
                .map(|(k, p)| format!("{k} {p:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

fn env_list<T: std::str::FromStr>(name: &str, default: &str) -> Vec<T> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|x| x.trim().parse().ok())
        .collect()
}

/// "k,L,m,probes[,variants[,variant tables]];…" (variants in every table
/// unless said).
fn parse_candidates(spec: &str) -> Vec<(u8, u16, u16, u8, usize, u16)> {
    spec.split(';')
        .filter_map(|c| {
            let v: Vec<u16> = c.split(',').filter_map(|x| x.trim().parse().ok()).collect();
            (4..=6).contains(&v.len()).then(|| {
                (
                    v[0] as u8,
                    v[1],
                    v[2],
                    v[3] as u8,
                    v.get(4).copied().unwrap_or(0) as usize,
                    v.get(5).copied().unwrap_or(v[1]),
                )
            })
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, cache, rest @ ..] = args.as_slice() else {
        return Err("usage: private_eval IMAGES_DIR CACHE_TSV [EVERY] [sweep]".into());
    };
    let every: usize = rest.first().map_or(Ok(1), |s| s.parse())?;
    let sweep = rest.iter().any(|s| s == "sweep");
    // Bank-side variants: centred crops of each banked original at these
    // fractions per edge (not the 1 % and 2 % the copies are cropped by).
    // "crop:F" = centred crop of F per edge, "resize:S" = resize by S.
    let bank_variants: Vec<String> =
        env_list("PRIVATE_EVAL_BANK_VARIANTS", "crop:0.015,resize:0.3");
    let mut set = transforms::standard_set();
    set.retain(|t| EDITS.contains(&t.name.as_str()));
    assert_eq!(set[0].name, "identity");
    let n_edits = set.len();
    for v in &bank_variants {
        let (kind, x) = v.split_once(':').ok_or("variant: crop:F or resize:S")?;
        let x: f32 = x.parse()?;
        set.push(match kind {
            "crop" => transforms::centred_crop(x),
            "resize" => transforms::resize(x),
            _ => return Err(format!("unknown bank variant {v}").into()),
        });
    }
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
    // entries[o] = the original's hash, then its bank-side variants in order.
    let mut entries: Vec<Vec<PdqHash>> = vec![Vec::new(); corpus.originals.len()];
    for i in &corpus.items {
        if i.transform == 0 {
            entries[i.original].insert(0, i.value.hash);
        } else if i.transform >= n_edits {
            entries[i.original].push(i.value.hash);
        }
    }
    let entries_of = |o: usize, v: usize| -> &[PdqHash] { &entries[o][..=v] };
    let bank_of = |v: usize| -> Vec<(u64, PdqHash)> {
        originals
            .iter()
            .filter(|o| o.original % 2 == 0)
            .flat_map(|o| {
                entries_of(o.original, v)
                    .iter()
                    .map(|h| (o.original as u64, *h))
            })
            .collect()
    };
    let groups_of = |v: usize| -> Vec<Vec<PdqHash>> {
        originals
            .iter()
            .filter(|o| o.original % 2 == 0)
            .map(|o| entries_of(o.original, v).to_vec())
            .collect()
    };
    // (entries, variants) for a pdata with v variants per banked image.
    let split_of = |v: usize| -> (Bank, Bank) {
        bank_of(v)
            .into_iter()
            .partition(|(o, h)| entries[*o as usize][0] == *h)
    };
    let bank = bank_of(0);
    let bank_hashes: Vec<PdqHash> = bank.iter().map(|b| b.1).collect();
    let orig_hash = |o: usize| entries[o][0];
    // Copies of banked originals (not the identity, not the bank variants),
    // and innocents: the other half and its edits, unless within the radius
    // of a banked hash (a cross-half near-duplicate is not innocent).
    let copies: Vec<&Item> = corpus
        .items
        .iter()
        .filter(|i| i.original % 2 == 0 && i.transform != 0 && i.transform < n_edits)
        .collect();
    let exact: Vec<&Item> = originals
        .iter()
        .copied()
        .filter(|o| o.original % 2 == 0)
        .collect();
    let innocents: Vec<&Item> = corpus
        .items
        .iter()
        .filter(|i| i.original % 2 == 1 && i.transform < n_edits)
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
        "corpus: {} originals ({} banked), {} copies of banked originals, {} innocent images ({} originals), β = {beta:.2}; bank-side variants (in order): {:?}",
        originals.len(),
        bank.len(),
        copies.len(),
        innocents.len(),
        innocent_originals.len(),
        bank_variants
    );
    for v in 1..=bank_variants.len() {
        let b = bank_of(v);
        let near = innocents
            .iter()
            .filter(|i| b.iter().any(|e| e.1.distance(&i.value.hash) <= RADIUS))
            .count();
        println!(
            "  innocent images within {RADIUS} of a bank entry with {v} variant(s): {near} (plain PDQ false matches the variants add)"
        );
    }
    // Plain PDQ at radius 31 per group.
    let within: Vec<bool> = copies
        .iter()
        .map(|c| orig_hash(c.original).distance(&c.value.hash) <= RADIUS)
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

    let mut profiles = vec![
        Profile {
            name: "default (v2: 6 × 32 bits, 2 to open, 1 probe)".into(),
            params: Params::default(),
            variants: 0,
            variant_tables: 0,
        },
        Profile {
            name: "multiprobe (v3: 6 × 40 bits, 1 to open, 5 probes)".into(),
            params: Params::multiprobe(),
            variants: 0,
            variant_tables: 0,
        },
        Profile {
            name:
                "expanded (v3: 6 × 44 bits, 1 to open, 5 probes; bank: + crop 1.5 %, resize 0.3×)"
                    .into(),
            params: Params::expanded(),
            variants: 2,
            variant_tables: 6,
        },
    ];
    if let Ok(spec) = std::env::var("PRIVATE_EVAL_PROFILES") {
        // Extra profiles, "k,L,m,probes,variants;…".
        for (k, l, m, p, v, vt) in parse_candidates(&spec) {
            profiles.push(Profile {
                name: format!(
                    "{l} × {k} bits, {m} to open, {p} probes, {v} bank crop variant(s) in {vt} tables"
                ),
                params: Params {
                    bits_per_table: k,
                    tables: l,
                    min_tables: m,
                    probes: p,
                    ..Params::default()
                },
                variants: v.min(bank_variants.len()),
                variant_tables: vt,
            });
        }
    }

    if sweep {
        println!(
            "\nLSH-only sweep (no cryptography; 3 pdata seeds; recall vs plain; modelled fc/img at 10⁶ banked images):"
        );
        println!(
            "| k | L | m | probes | bank variants (tables) | resize | jpeg | crop 1% | crop 2% | fc/img (model) | pairs |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let mut cands = parse_candidates(
            "32,6,2,1;40,6,1,5;41,7,1,4;40,6,1,5,1;41,6,1,5,1;41,7,1,4,1;41,6,1,5,1,4;41,7,1,4,1,4;40,6,1,5,2;42,6,1,5,2;43,6,1,5,2;44,6,1,5,2;44,7,1,4,2;46,6,1,5,2;48,6,1,8,2",
        );
        if let Ok(spec) = std::env::var("PRIVATE_EVAL_SWEEP") {
            cands = parse_candidates(&spec);
        }
        for (k, l, m, p, v, vt) in cands {
            let params = Params {
                bits_per_table: k,
                tables: l,
                min_tables: m,
                probes: p,
                ..Params::default()
            };
            if let Err(e) = params.validate() {
                println!("| {k} | {l} | {m} | {p} | {v} ({vt}) | {e} |");
                continue;
            }
            let v = v.min(bank_variants.len());
            let bank_v = groups_of(v);
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
                        let e = entries_of(c.original, v);
                        let n = lsh_tables(&pos, usize::from(p), c, e, usize::from(vt));
                        Some((g, n >= usize::from(m)))
                    })
                    .collect();
                for (g, r) in rec.iter_mut().enumerate() {
                    let n = hits.iter().filter(|h| h.0 == g).count();
                    let y = hits.iter().filter(|h| h.0 == g && h.1).count();
                    *r += y as f64 / n.max(1) as f64 / 3.0;
                }
                fc += model_fc(
                    &params,
                    &pos,
                    &innocent_originals,
                    &bank_v,
                    usize::from(vt),
                    beta,
                ) / 3.0;
            }
            println!(
                "| {k} | {l} | {m} | {p} | {v} ({vt}) | {:.3} | {:.3} | {:.3} | {:.3} | {fc:.2e} | {} |",
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
        "| profile | resize | jpeg | crop 1% | crop 2% | false candidates / innocent image | fc/img modelled at 10⁶ | device ms / voucher (2 threads) | bytes / voucher | server ms / voucher (2 threads) | pdata bytes / banked image |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let n_synthetic: usize = std::env::var("PRIVATE_EVAL_SYNTHETIC")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1200);
    let mut leaks = Vec::new();
    for prof in &profiles {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(42);
        let keys = ServerKeys::generate(&mut rng);
        let params = Params {
            synthetic_probability: 0.0, // measure the LSH path, not the noise
            ..prof.params
        };
        let (bank_e, bank_x) = split_of(prof.variants);
        let (server_pdata, _table) = Pdata::build_with_variants(
            &keys,
            &params,
            Release::default(),
            &bank_e,
            &bank_x,
            prof.variant_tables,
            &mut rng,
        )?;
        let account = DeviceAccount::generate(&mut rng);
        let derivative = [0u8; 1024];
        // (group or innocent, opened, device µs, server µs, bytes, signature)
        type Run = (usize, bool, f64, f64, usize, Signature);
        let run = |pdata: &Pdata, items: &[&Item], seed: u64| -> Vec<Run> {
            let dev_pdata = Pdata::from_bytes(&pdata.to_bytes(), &pdata.root()).expect("loads");
            items
                .par_iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed ^ (i as u64) << 20);
                    let t0 = Instant::now();
                    let v = account
                        .voucher_probing(
                            &dev_pdata,
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
                    let mut state = AccountState::for_epoch(pdata.release().epoch);
                    state.ingest(&keys, pdata, &parsed).expect("ingests");
                    let srv = t1.elapsed().as_secs_f64() * 1e6;
                    let opened = state.len() == 1;
                    // What the server can see of an opened voucher (the attack).
                    let sig = if opened {
                        opened_pairs_per_table(&keys, pdata, &parsed)
                    } else {
                        Vec::new()
                    };
                    let g = if c.transform == 0 {
                        GROUPS.len()
                    } else {
                        group_of(names[c.transform]).unwrap_or(usize::MAX)
                    };
                    (g, opened, dev, srv, wire.len(), sig)
                })
                .collect()
        };
        let within_copies: Vec<&Item> = copies
            .iter()
            .zip(&within)
            .filter(|(_, w)| **w)
            .map(|(c, _)| *c)
            .collect();
        let r = run(&server_pdata, &within_copies, 1);
        let f = run(&server_pdata, &innocents, 2);
        let e = run(&server_pdata, &exact, 3);
        let mut row = format!("| {} |", prof.name);
        for g in 0..GROUPS.len() {
            let n = r.iter().filter(|x| x.0 == g).count();
            let y = r.iter().filter(|x| x.0 == g && x.1).count();
            row.push_str(&format!(" {:.3} ({y}/{n}) |", y as f64 / n.max(1) as f64));
        }
        let fcs = f.iter().filter(|x| x.1).count();
        let modelled = model_fc(
            &params,
            server_pdata.positions(),
            &innocent_originals,
            &groups_of(prof.variants),
            usize::from(prof.variant_tables),
            beta,
        );
        let all: Vec<&Run> = r.iter().chain(&f).collect();
        let n = all.len() as f64;
        let dev = all.iter().map(|x| x.2).sum::<f64>() / n / 1000.0;
        let srv = all.iter().map(|x| x.3).sum::<f64>() / n / 1000.0;
        let bytes = all.iter().map(|x| x.4).max().unwrap_or(0);
        assert!(
            all.iter().all(|x| x.4 == bytes),
            "every voucher has one size"
        );
        row.push_str(&format!(
            " {:.2e} ({fcs}/{}) | {modelled:.2e} | {dev:.2} | {bytes} | {srv:.2} | {:.0} |",
            fcs as f64 / f.len().max(1) as f64,
            f.len(),
            server_pdata.byte_len() as f64 / exact.len() as f64
        ));
        println!("{row}");
        // Synthetic vouchers against the same bank and parameters.
        let syn_params = Params {
            synthetic_probability: 1.0,
            ..prof.params
        };
        let (syn_pdata, _) = Pdata::build_with_variants(
            &keys,
            &syn_params,
            Release::default(),
            &bank_e,
            &bank_x,
            prof.variant_tables,
            &mut rng,
        )?;
        let sample: Vec<&Item> = innocents
            .iter()
            .copied()
            .cycle()
            .take(n_synthetic)
            .collect();
        let s = run(&syn_pdata, &sample, 4);
        assert!(s.iter().all(|x| x.1), "synthetic vouchers always open");
        assert!(
            s.iter().all(|x| x.4 == bytes),
            "synthetic vouchers have the real ones' size"
        );
        let class = |g: usize| match g {
            g if g < GROUPS.len() => GROUPS[g].0.to_string(),
            g if g == GROUPS.len() => "exact copy".to_string(),
            _ => "false candidate".to_string(),
        };
        let real: Vec<(String, Signature)> = r
            .iter()
            .chain(&e)
            .filter(|x| x.1)
            .map(|x| (class(x.0), x.5.clone()))
            .chain(
                f.iter()
                    .filter(|x| x.1)
                    .map(|x| ("false candidate".to_string(), x.5.clone())),
            )
            .collect();
        let syn: Vec<Signature> = s.into_iter().map(|x| x.5).collect();
        leaks.push((prof.name.clone(), real, syn));
    }
    println!(
        "\nTable-count attack (the server sees, per opened voucher, the tables that agree; by agreeing-table count only, then by opened pairs per table):"
    );
    for (name, real, syn) in &leaks {
        leak_report(name, real, syn, &|s: &Signature| {
            format!("{} tables", s.len())
        });
    }
    for (name, real, syn) in &leaks {
        leak_report(name, real, syn, &|s: &Signature| format!("{s:?}"));
    }
    // Device time, one thread, the profiles interleaved on the same images.
    {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let keys = ServerKeys::generate(&mut rng);
        let account = DeviceAccount::generate(&mut rng);
        let pdatas: Vec<Pdata> = profiles
            .iter()
            .map(|p| {
                let (e, x) = split_of(p.variants);
                Pdata::build_with_variants(
                    &keys,
                    &p.params,
                    Release::default(),
                    &e,
                    &x,
                    p.variant_tables,
                    &mut rng,
                )
                .map(|x| x.0)
            })
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
