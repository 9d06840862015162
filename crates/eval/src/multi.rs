//! Detection quality with extra hashes per image ([`bulwark_pdq::MultiHash`]).
//!
//! Every original gets a `MultiHash` (bank side) and so does every edited copy
//! (query side). A copy's distance under a [`Pairing`] is the smallest
//! distance over the pairs of kinds it allows; a pair of distinct originals
//! counts as a false match at threshold `t` when either one, as a query,
//! comes within `t` of the other, as a bank entry — the same pairs test as
//! [`crate::evaluate`] (exact and near-duplicates excluded), so per-pair rates
//! are comparable. Extras under a quality floor can be dropped (the full hash
//! is always kept, as in plain matching).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bulwark_pdq::{HashKind, KindSet, Limits, MultiHash, Pairing};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::{Config, Error, Transform, cumulative, median, scaled, thumbnail, transforms};

/// The matching variants a run compares. The first three use every kind;
/// "service" is what the service does by default: [`Pairing::Both`] with
/// banks holding [`MultiConfig::bank_kinds`] and queries computing
/// [`KindSet::query_side`] of them.
pub const VARIANTS: [(&str, Pairing); 4] = [
    ("plain", Pairing::FullOnly),
    ("query extras", Pairing::QueryExtras),
    ("both sides", Pairing::Both),
    ("service", Pairing::Both),
];

/// (query kinds, bank kinds) of variant `v`.
fn variant_kinds(v: usize, multi: &MultiConfig) -> (KindSet, KindSet) {
    if v == 3 {
        (multi.bank_kinds.query_side(), multi.bank_kinds)
    } else {
        (KindSet::ALL, KindSet::ALL)
    }
}

/// Settings beyond [`Config`].
#[derive(Debug, Clone)]
pub struct MultiConfig {
    /// Edit every `copies_every`-th original (1: all); every original still
    /// takes part in the false-match pairs.
    pub copies_every: usize,
    /// Extras with a PDQ quality under this are dropped (0 keeps all).
    pub extra_min_quality: u32,
    /// The kinds banks store in the "service" variant.
    pub bank_kinds: KindSet,
}

impl Default for MultiConfig {
    fn default() -> Self {
        MultiConfig {
            copies_every: 1,
            extra_min_quality: 0,
            bank_kinds: KindSet::BANK_DEFAULT,
        }
    }
}

/// One edited copy: the nearest pair under each of [`VARIANTS`].
#[derive(Debug, Clone, Copy)]
pub struct MultiCopy {
    /// Index into [`MultiEvaluation::originals`].
    pub original: usize,
    /// Index into [`MultiEvaluation::transforms`].
    pub transform: usize,
    /// Nearest (distance, query kind, bank kind) per variant.
    pub nearest: [(u32, HashKind, HashKind); 4],
}

/// Everything measured by [`evaluate_multi`].
#[derive(Debug)]
pub struct MultiEvaluation {
    /// Settings.
    pub config: Config,
    /// Settings of the extras.
    pub multi: MultiConfig,
    /// The edits.
    pub transforms: Vec<Transform>,
    /// Originals that decoded.
    pub originals: Vec<PathBuf>,
    /// Files that could not be used.
    pub failed: Vec<(PathBuf, String)>,
    /// Every (edited original, edit) pair.
    pub copies: Vec<MultiCopy>,
    /// Per variant, histogram (0..=256) of the nearest distance over distinct
    /// pairs of originals (both directions, the smaller).
    pub pair_hist: [Vec<u64>; 4],
    /// Pairs excluded as exact or near-duplicates.
    pub excluded_pairs: usize,
    /// Mean number of hashes stored per original (full + extras kept).
    pub hashes_per_image: f64,
    /// The same with only [`MultiConfig::bank_kinds`] (the "service" variant).
    pub hashes_per_image_service: f64,
    /// Mean seconds per original for the plain hash and for the MultiHash of
    /// the same decoded pixels (measured inside the parallel run: indicative).
    pub seconds_plain: f64,
    /// See [`MultiEvaluation::seconds_plain`].
    pub seconds_multi: f64,
}

fn keep_quality(mut m: MultiHash, floor: u32) -> MultiHash {
    let full = m.hashes[0];
    m.hashes
        .retain(|k| k.kind == HashKind::Full || k.quality >= floor);
    debug_assert_eq!(m.hashes[0], full);
    m
}

/// The nearest pair `p` allows among the query's kinds `qk` and the bank's
/// kinds `bk` (the full hash always takes part); ties go to the earlier
/// kinds, as in [`MultiHash::nearest`].
fn nearest(
    q: &MultiHash,
    b: &MultiHash,
    p: Pairing,
    (qk, bk): (KindSet, KindSet),
) -> (u32, HashKind, HashKind) {
    let mut best = (256, HashKind::Full, HashKind::Full);
    let kept = |m: &MultiHash, s: KindSet| -> Vec<bulwark_pdq::KindHash> {
        m.hashes
            .iter()
            .filter(|k| k.kind == HashKind::Full || s.contains(k.kind))
            .copied()
            .collect()
    };
    let (qs, bs) = (kept(q, qk), kept(b, bk));
    for x in &qs {
        for y in &bs {
            if p.allows(x.kind, y.kind) {
                let d = x.hash.distance(&y.hash);
                if d < best.0 {
                    best = (d, x.kind, y.kind);
                }
            }
        }
    }
    best
}

/// Runs the multi-hash evaluation over `images`.
pub fn evaluate_multi(
    images: &[PathBuf],
    config: &Config,
    multi: &MultiConfig,
    transforms: Vec<Transform>,
    progress: &(dyn Fn() + Sync),
) -> Result<MultiEvaluation, Error> {
    let limits = Limits::default();
    let every = multi.copies_every.max(1);
    type PerImage = (
        PathBuf,
        String,
        Vec<f32>,
        MultiHash,
        Vec<(usize, MultiHash)>,
        f64,
        f64,
    );
    let results: Vec<Result<PerImage, (PathBuf, String)>> = images
        .par_iter()
        .enumerate()
        .map(|(i, path)| {
            let r = (|| -> Result<PerImage, Error> {
                let bytes = std::fs::read(path)?;
                let sha = hex::encode(Sha256::digest(&bytes));
                let img = scaled(
                    transforms::from_pdq(bulwark_pdq::decode(&bytes, &limits)?),
                    config.max_side,
                );
                let (w, h) = (img.width() as usize, img.height() as usize);
                let t0 = Instant::now();
                let plain = bulwark_pdq::hash_rgb(img.as_raw(), w, h);
                let t1 = Instant::now();
                let m = bulwark_pdq::multi_hash_rgb(img.as_raw(), w, h);
                let t2 = Instant::now();
                debug_assert_eq!(plain, m.full());
                let bank = keep_quality(m, multi.extra_min_quality);
                let mut copies = Vec::new();
                if i % every == 0 {
                    let seed = config.seed ^ u64::from_str_radix(&sha[..16], 16).unwrap_or(0);
                    for (ti, t) in transforms.iter().enumerate() {
                        let c = t.apply(&img, seed)?;
                        let q = bulwark_pdq::multi_hash_rgb(
                            c.as_raw(),
                            c.width() as usize,
                            c.height() as usize,
                        );
                        copies.push((ti, keep_quality(q, multi.extra_min_quality)));
                    }
                }
                Ok((
                    path.clone(),
                    sha,
                    thumbnail(&img),
                    bank,
                    copies,
                    (t1 - t0).as_secs_f64(),
                    (t2 - t1).as_secs_f64(),
                ))
            })();
            progress();
            r.map_err(|e| (path.clone(), e.to_string()))
        })
        .collect();
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for r in results {
        match r {
            Ok(v) => ok.push(v),
            Err(f) => failed.push(f),
        }
    }
    let mut copies = Vec::new();
    for (oi, (_, _, _, bank, cs, _, _)) in ok.iter().enumerate() {
        for (ti, q) in cs {
            copies.push(MultiCopy {
                original: oi,
                transform: *ti,
                nearest: std::array::from_fn(|v| {
                    nearest(q, bank, VARIANTS[v].1, variant_kinds(v, multi))
                }),
            });
        }
    }
    let n = ok.len();
    let rows: Vec<([Vec<u64>; 4], usize)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut h: [Vec<u64>; 4] = std::array::from_fn(|_| vec![0u64; 257]);
            let mut ex = 0;
            let a = &ok[i];
            for b in ok.iter().skip(i + 1) {
                let ncc: f32 = a.2.iter().zip(&b.2).map(|(x, y)| x * y).sum();
                if a.1 == b.1 || ncc >= config.near_duplicate_ncc {
                    ex += 1;
                    continue;
                }
                for (v, (_, p)) in VARIANTS.iter().enumerate() {
                    let k = variant_kinds(v, multi);
                    let d = nearest(&a.3, &b.3, *p, k)
                        .0
                        .min(nearest(&b.3, &a.3, *p, k).0);
                    h[v][d as usize] += 1;
                }
            }
            (h, ex)
        })
        .collect();
    let mut pair_hist: [Vec<u64>; 4] = std::array::from_fn(|_| vec![0u64; 257]);
    let mut excluded_pairs = 0;
    for (h, ex) in rows {
        excluded_pairs += ex;
        for v in 0..4 {
            for k in 0..257 {
                pair_hist[v][k] += h[v][k];
            }
        }
    }
    let denom = n.max(1) as f64;
    Ok(MultiEvaluation {
        config: config.clone(),
        multi: multi.clone(),
        transforms,
        hashes_per_image: ok.iter().map(|o| o.3.hashes.len()).sum::<usize>() as f64 / denom,
        hashes_per_image_service: ok
            .iter()
            .map(|o| {
                o.3.hashes
                    .iter()
                    .filter(|k| k.kind == HashKind::Full || multi.bank_kinds.contains(k.kind))
                    .count()
            })
            .sum::<usize>() as f64
            / denom,
        seconds_plain: ok.iter().map(|o| o.5).sum::<f64>() / denom,
        seconds_multi: ok.iter().map(|o| o.6).sum::<f64>() / denom,
        originals: ok.into_iter().map(|o| o.0).collect(),
        failed,
        copies,
        pair_hist,
        excluded_pairs,
    })
}

impl MultiEvaluation {
    /// Histogram of the nearest distance of one edit's copies under variant `v`.
    pub fn copy_hist(&self, transform: usize, v: usize) -> Vec<u64> {
        let mut h = vec![0u64; 257];
        for c in self.copies.iter().filter(|c| c.transform == transform) {
            h[c.nearest[v].0 as usize] += 1;
        }
        h
    }

    /// Recall of one edit at threshold `t` under variant `v`.
    pub fn recall_at(&self, transform: usize, v: usize, t: usize) -> f64 {
        cumulative(&self.copy_hist(transform, v), t)[t]
    }

    /// Number of distinct pairs of originals counted.
    pub fn pairs(&self) -> u64 {
        self.pair_hist[0].iter().sum()
    }

    /// False matches (count) at threshold `t` under variant `v`.
    pub fn false_matches(&self, v: usize, t: usize) -> u64 {
        self.pair_hist[v][..=t].iter().sum()
    }

    /// The most frequent winning (query kind, bank kind) among one edit's
    /// copies within `t` under variant `v`, with its share of those matches.
    pub fn main_pair(&self, transform: usize, v: usize, t: u32) -> Option<(String, f64)> {
        let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
        let mut total = 0;
        for c in self.copies.iter().filter(|c| c.transform == transform) {
            let (d, q, b) = c.nearest[v];
            if d <= t {
                *counts.entry(format!("{q}→{b}")).or_default() += 1;
                total += 1;
            }
        }
        counts
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|(k, n)| (k, n as f64 / total as f64))
    }

    /// The report as Markdown.
    pub fn markdown(&self, threshold: usize) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Detection with extra hashes per image (MultiHash)\n");
        let _ = writeln!(
            s,
            "{} originals ({} failed), edits applied to every {}th ({} copies); {} distinct pairs \
             of originals ({} excluded as duplicates); originals scaled to ≤ {} px; seed {}; \
             extras of quality < {} dropped. Hashes per image: {:.2} (plain: 1). Mean time per \
             original (inside the parallel run): plain hash {:.2} ms, MultiHash {:.2} ms. \
             \"service\": banks store {} ({:.2} hashes per image), queries compute {}.\n",
            self.originals.len(),
            self.failed.len(),
            self.multi.copies_every.max(1),
            self.copies.len(),
            self.pairs(),
            self.excluded_pairs,
            self.config.max_side,
            self.config.seed,
            self.multi.extra_min_quality,
            self.hashes_per_image,
            self.seconds_plain * 1e3,
            self.seconds_multi * 1e3,
            self.multi.bank_kinds,
            self.hashes_per_image_service,
            self.multi.bank_kinds.query_side(),
        );
        let _ = writeln!(
            s,
            "| edit | median plain | median both | recall ≤ {threshold} plain | query extras | both sides | service | winning pair (both) |"
        );
        let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
        for (ti, t) in self.transforms.iter().enumerate() {
            let med = |v| {
                median(&self.copy_hist(ti, v))
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "–".into())
            };
            let r = |v| format!("{:.1} %", 100.0 * self.recall_at(ti, v, threshold));
            let main = self
                .main_pair(ti, 2, threshold as u32)
                .map(|(k, f)| format!("{k} ({:.0} %)", f * 100.0))
                .unwrap_or_else(|| "–".into());
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                t.name,
                med(0),
                med(2),
                r(0),
                r(1),
                r(2),
                r(3),
                main
            );
        }
        let _ = writeln!(s, "\nFalse matches among distinct originals (per pair):\n");
        let _ = writeln!(
            s,
            "| threshold | plain | query extras | both sides | service |"
        );
        let _ = writeln!(s, "| ---: | ---: | ---: | ---: | ---: |");
        let pairs = self.pairs().max(1) as f64;
        for t in [24usize, 31, 40, 48] {
            let cell = |v| {
                let n = self.false_matches(v, t);
                format!("{n} ({:.1e})", n as f64 / pairs)
            };
            let _ = writeln!(
                s,
                "| {t} | {} | {} | {} | {} |",
                cell(0),
                cell(1),
                cell(2),
                cell(3)
            );
        }
        s
    }

    /// Writes `multi.md` and `multi.json` into `dir`; returns the Markdown path.
    pub fn write(&self, dir: &Path, threshold: usize) -> Result<PathBuf, Error> {
        std::fs::create_dir_all(dir)?;
        let md = dir.join("multi.md");
        std::fs::write(&md, self.markdown(threshold))?;
        let recall: serde_json::Map<String, serde_json::Value> = self
            .transforms
            .iter()
            .enumerate()
            .map(|(ti, t)| {
                let per: serde_json::Map<String, serde_json::Value> = VARIANTS
                    .iter()
                    .enumerate()
                    .map(|(v, (name, _))| {
                        (name.to_string(), self.recall_at(ti, v, threshold).into())
                    })
                    .collect();
                (t.name.clone(), per.into())
            })
            .collect();
        let fm: serde_json::Map<String, serde_json::Value> = VARIANTS
            .iter()
            .enumerate()
            .map(|(v, (name, _))| {
                (
                    name.to_string(),
                    (0..=64)
                        .map(|t| self.false_matches(v, t))
                        .collect::<Vec<_>>()
                        .into(),
                )
            })
            .collect();
        let json = serde_json::json!({
            "threshold": threshold,
            "originals": self.originals.len(),
            "copies": self.copies.len(),
            "pairs": self.pairs(),
            "hashes_per_image": self.hashes_per_image,
            "hashes_per_image_service": self.hashes_per_image_service,
            "service_bank_kinds": self.multi.bank_kinds.to_string(),
            "service_query_kinds": self.multi.bank_kinds.query_side().to_string(),
            "ms_plain": self.seconds_plain * 1e3,
            "ms_multi": self.seconds_multi * 1e3,
            "recall": recall,
            "false_matches_by_threshold_0_64": fm,
        });
        std::fs::write(
            dir.join("multi.json"),
            serde_json::to_string_pretty(&json).map_err(|e| Error::Plot(e.to_string()))?,
        )?;
        Ok(md)
    }
}
