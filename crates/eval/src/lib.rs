//! Detection quality of PDQ matching on a folder of benign images.
//!
//! [`evaluate`] hashes every image and a fixed, seeded set of benign edits of
//! it ([`transforms::standard_set`]: resizing, recompression, crops, rotations,
//! captions, logos, …), and every pair of distinct originals. [`Evaluation`]
//! then gives, per edit and overall, the distance distribution and the recall
//! at every threshold 0–128 (plain and with dihedral matching), and the
//! false-match rate over all pairs of distinct originals, with duplicates and
//! near-duplicates in the corpus detected (SHA-256, 32×32 thumbnail
//! correlation) and excluded. [`report::write`] writes Markdown, CSV, JSON and
//! SVG plots.
//!
//! The harness is a library so other matchers can be scored the same way:
//! [`Evaluation::copies`] holds every (original, edit) pair with both hashes.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod multi;
pub mod private;
pub mod report;
pub mod transforms;

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bulwark_pdq::{Limits, Mode, PdqHash};
use image::{RgbImage, imageops};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

pub use crate::multi::{MultiConfig, MultiEvaluation, evaluate_multi};
pub use crate::transforms::Transform;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An image could not be decoded (the file's fault).
    #[error(transparent)]
    Image(#[from] bulwark_pdq::Error),
    /// An edit could not be applied or encoded.
    #[error("transform failed: {0}")]
    Transform(String),
    /// Reading or writing files.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Writing a plot.
    #[error("plot: {0}")]
    Plot(String),
}

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Seed for random edits (noise, captions).
    pub seed: u64,
    /// Originals are first scaled so their long side is at most this (what
    /// messengers do before sending); 0 keeps full size.
    pub max_side: u32,
    /// The quality cut shown alongside the unfiltered figures.
    pub min_quality: u32,
    /// Thumbnail correlation at or above which two originals count as
    /// near-duplicates and their pair is excluded from the false-match rate.
    pub near_duplicate_ncc: f32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: 1,
            max_side: 1024,
            min_quality: 50,
            near_duplicate_ncc: 0.98,
        }
    }
}

/// One original image.
#[derive(Debug, Clone)]
pub struct Original {
    /// Where it came from.
    pub path: PathBuf,
    /// SHA-256 of the file.
    pub sha256: String,
    /// PDQ hash (full mode) of the (scaled) original.
    pub hash: PdqHash,
    /// Its eight dihedral hashes.
    pub dihedral: [PdqHash; 8],
    /// PDQ quality.
    pub quality: u32,
    thumb: Vec<f32>,
}

/// One edited copy of an original.
#[derive(Debug, Clone, Copy)]
pub struct Copy {
    /// Index into [`Evaluation::originals`].
    pub original: usize,
    /// Index into [`Evaluation::transforms`].
    pub transform: usize,
    /// PDQ hash of the copy.
    pub hash: PdqHash,
    /// Its quality.
    pub quality: u32,
    /// Distance to the original's hash.
    pub distance: u32,
    /// Smallest distance to any of the original's dihedral hashes.
    pub dihedral_distance: u32,
}

/// Everything measured in a run.
#[derive(Debug)]
pub struct Evaluation {
    /// The settings used.
    pub config: Config,
    /// The edits, in report order.
    pub transforms: Vec<Transform>,
    /// Originals that decoded.
    pub originals: Vec<Original>,
    /// Files that could not be used, with the reason.
    pub failed: Vec<(PathBuf, String)>,
    /// Every (original, edit) pair.
    pub copies: Vec<Copy>,
    /// Pairs of originals excluded from the false-match rate, with the reason.
    pub excluded_pairs: Vec<(usize, usize, String)>,
    /// Histogram (0..=256) of distances over included distinct pairs.
    pub pair_hist: Vec<u64>,
    /// The same with dihedral matching (minimum over the 8 variants).
    pub pair_hist_dihedral: Vec<u64>,
    /// The same restricted to pairs where both originals pass the quality cut.
    pub pair_hist_quality: Vec<u64>,
}

/// Lists image files under `dir` (recursively, sorted), by content sniffing.
pub fn find_images(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if is_image(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn is_image(p: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 32];
    let n = std::fs::File::open(p)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    bulwark_pdq::sniff(&head[..n]).is_some()
}

fn rgb_of(img: bulwark_pdq::Image) -> RgbImage {
    transforms::from_pdq(img)
}

fn scaled(img: RgbImage, max_side: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    if max_side == 0 || w.max(h) <= max_side {
        return img;
    }
    let s = max_side as f32 / w.max(h) as f32;
    let nw = ((w as f32 * s).round() as u32).max(1);
    let nh = ((h as f32 * s).round() as u32).max(1);
    imageops::resize(&img, nw, nh, imageops::FilterType::Triangle)
}

/// A 32×32 grey thumbnail, zero mean and unit norm, for near-duplicate checks.
fn thumbnail(img: &RgbImage) -> Vec<f32> {
    let g = imageops::grayscale(img);
    let t = imageops::resize(&g, 32, 32, imageops::FilterType::Triangle);
    let v: Vec<f32> = t.pixels().map(|p| f32::from(p[0])).collect();
    let mean = v.iter().sum::<f32>() / v.len() as f32;
    let v: Vec<f32> = v.iter().map(|x| x - mean).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.iter().map(|x| x / norm).collect()
}

fn hash_rgb(img: &RgbImage) -> bulwark_pdq::Hashed {
    bulwark_pdq::hash_rgb(img.as_raw(), img.width() as usize, img.height() as usize)
}

/// Hash cache: `sha256 \t transform \t max_side \t seed \t hash \t quality` lines.
struct Cache {
    map: HashMap<String, (PdqHash, u32)>,
    file: Option<Mutex<std::fs::File>>,
}

impl Cache {
    fn open(path: Option<&Path>) -> Result<Cache, Error> {
        let mut map = HashMap::new();
        let Some(path) = path else {
            return Ok(Cache { map, file: None });
        };
        if let Ok(f) = std::fs::File::open(path) {
            for line in std::io::BufReader::new(f).lines() {
                let line = line?;
                let parts: Vec<&str> = line.split('\t').collect();
                // A torn last line from an interrupted run is simply skipped.
                if parts.len() == 6
                    && let (Ok(h), Ok(q)) = (parts[4].parse(), parts[5].parse())
                {
                    map.insert(parts[..4].join("\t"), (h, q));
                }
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Cache {
            map,
            file: Some(Mutex::new(file)),
        })
    }

    fn get_or(
        &self,
        key: String,
        f: impl FnOnce() -> Result<(PdqHash, u32), Error>,
    ) -> Result<(PdqHash, u32), Error> {
        if let Some(v) = self.map.get(&key) {
            return Ok(*v);
        }
        let v = f()?;
        if let Some(file) = &self.file {
            let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
            writeln!(file, "{key}\t{}\t{}", v.0, v.1)?;
        }
        Ok(v)
    }
}

/// Runs the evaluation over `images`. `cache` (a file) makes re-runs resume;
/// `progress` is called once per finished original.
pub fn evaluate(
    images: &[PathBuf],
    config: &Config,
    transforms: Vec<Transform>,
    cache: Option<&Path>,
    progress: &(dyn Fn() + Sync),
) -> Result<Evaluation, Error> {
    let cache = Cache::open(cache)?;
    let limits = Limits::default();
    type Hashed = (Original, Vec<(usize, PdqHash, u32)>);
    type PerImage = Result<Hashed, (PathBuf, String)>;
    let results: Vec<PerImage> = images
        .par_iter()
        .map(|path| {
            let r = (|| -> Result<Hashed, Error> {
                let bytes = std::fs::read(path)?;
                let sha = hex::encode(Sha256::digest(&bytes));
                let img = scaled(
                    rgb_of(bulwark_pdq::decode(&bytes, &limits)?),
                    config.max_side,
                );
                let d = bulwark_pdq::hash_image_dihedral(&transforms::to_pdq(&img), Mode::Full);
                let original = Original {
                    path: path.clone(),
                    sha256: sha.clone(),
                    hash: d.hashes[0],
                    dihedral: d.hashes,
                    quality: d.quality,
                    thumb: thumbnail(&img),
                };
                let mut copies = Vec::with_capacity(transforms.len());
                for (ti, t) in transforms.iter().enumerate() {
                    let key = format!("{sha}\t{}\t{}\t{}", t.name, config.max_side, config.seed);
                    let seed = config.seed ^ u64::from_str_radix(&sha[..16], 16).unwrap_or(0);
                    let (h, q) = cache.get_or(key, || {
                        let c = t.apply(&img, seed)?;
                        let r = hash_rgb(&c);
                        Ok((r.hash, r.quality))
                    })?;
                    copies.push((ti, h, q));
                }
                Ok((original, copies))
            })();
            progress();
            r.map_err(|e| (path.clone(), e.to_string()))
        })
        .collect();
    let mut originals = Vec::new();
    let mut failed = Vec::new();
    let mut copies = Vec::new();
    for r in results {
        match r {
            Ok((o, cs)) => {
                let oi = originals.len();
                for (ti, h, q) in cs {
                    copies.push(Copy {
                        original: oi,
                        transform: ti,
                        hash: h,
                        quality: q,
                        distance: o.hash.distance(&h),
                        dihedral_distance: o
                            .dihedral
                            .iter()
                            .map(|d| d.distance(&h))
                            .min()
                            .unwrap_or(256),
                    });
                }
                originals.push(o);
            }
            Err(f) => failed.push(f),
        }
    }
    let (excluded_pairs, pair_hist, pair_hist_dihedral, pair_hist_quality) =
        distinct_pairs(&originals, config);
    Ok(Evaluation {
        config: config.clone(),
        transforms,
        originals,
        failed,
        copies,
        excluded_pairs,
        pair_hist,
        pair_hist_dihedral,
        pair_hist_quality,
    })
}

type PairStats = (Vec<(usize, usize, String)>, Vec<u64>, Vec<u64>, Vec<u64>);

/// Distance histograms over all pairs of distinct originals, excluding exact
/// duplicates (same SHA-256) and near-duplicates (thumbnail correlation).
fn distinct_pairs(originals: &[Original], config: &Config) -> PairStats {
    let n = originals.len();
    let rows: Vec<PairStats> = (0..n)
        .into_par_iter()
        .map(|i| {
            let (mut ex, mut h, mut hd, mut hq) = (
                Vec::new(),
                vec![0u64; 257],
                vec![0u64; 257],
                vec![0u64; 257],
            );
            let a = &originals[i];
            for (j, b) in originals.iter().enumerate().skip(i + 1) {
                if a.sha256 == b.sha256 {
                    ex.push((i, j, "identical files (SHA-256)".to_string()));
                    continue;
                }
                let ncc: f32 = a.thumb.iter().zip(&b.thumb).map(|(x, y)| x * y).sum();
                if ncc >= config.near_duplicate_ncc {
                    ex.push((
                        i,
                        j,
                        format!("near-duplicates (thumbnail correlation {ncc:.3})"),
                    ));
                    continue;
                }
                let d = a.hash.distance(&b.hash) as usize;
                h[d] += 1;
                let dd = a
                    .dihedral
                    .iter()
                    .map(|x| x.distance(&b.hash))
                    .min()
                    .unwrap_or(256) as usize;
                hd[dd] += 1;
                if a.quality >= config.min_quality && b.quality >= config.min_quality {
                    hq[d] += 1;
                }
            }
            (ex, h, hd, hq)
        })
        .collect();
    let (mut ex, mut h, mut hd, mut hq) = (
        Vec::new(),
        vec![0u64; 257],
        vec![0u64; 257],
        vec![0u64; 257],
    );
    for (e, a, b, c) in rows {
        ex.extend(e);
        for k in 0..257 {
            h[k] += a[k];
            hd[k] += b[k];
            hq[k] += c[k];
        }
    }
    (ex, h, hd, hq)
}

/// Fraction of a histogram at or below each threshold 0..=max.
pub fn cumulative(hist: &[u64], max: usize) -> Vec<f64> {
    let total: u64 = hist.iter().sum();
    let mut acc = 0u64;
    (0..=max)
        .map(|t| {
            acc += hist.get(t).copied().unwrap_or(0);
            if total == 0 {
                0.0
            } else {
                acc as f64 / total as f64
            }
        })
        .collect()
}

/// Which distance of a copy to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matching {
    /// Original hash against copy hash.
    Plain,
    /// Best of the original's eight dihedral hashes.
    Dihedral,
}

impl Evaluation {
    /// Histogram (0..=256) of copy distances for the copies `select` keeps.
    pub fn copy_hist(
        &self,
        m: Matching,
        quality_filter: bool,
        select: impl Fn(&Copy) -> bool,
    ) -> Vec<u64> {
        let mut h = vec![0u64; 257];
        for c in self.copies.iter().filter(|c| select(c)) {
            if quality_filter
                && (c.quality < self.config.min_quality
                    || self.originals[c.original].quality < self.config.min_quality)
            {
                continue;
            }
            let d = match m {
                Matching::Plain => c.distance,
                Matching::Dihedral => c.dihedral_distance,
            };
            h[d as usize] += 1;
        }
        h
    }

    /// Recall at thresholds 0..=128 for one edit.
    pub fn recall(&self, transform: usize, m: Matching, quality_filter: bool) -> Vec<f64> {
        cumulative(
            &self.copy_hist(m, quality_filter, |c| c.transform == transform),
            128,
        )
    }

    /// False-match rate at thresholds 0..=128 over distinct pairs.
    pub fn false_match_rate(&self, m: Matching, quality_filter: bool) -> Vec<f64> {
        let h = match (m, quality_filter) {
            (Matching::Dihedral, _) => &self.pair_hist_dihedral,
            (Matching::Plain, true) => &self.pair_hist_quality,
            (Matching::Plain, false) => &self.pair_hist,
        };
        cumulative(h, 128)
    }

    /// Number of distinct pairs counted in the false-match rate.
    pub fn pairs(&self) -> u64 {
        self.pair_hist.iter().sum()
    }
}

/// Median of a histogram.
pub fn median(hist: &[u64]) -> Option<usize> {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return None;
    }
    let mut acc = 0;
    for (d, &c) in hist.iter().enumerate() {
        acc += c;
        if 2 * acc >= total {
            return Some(d);
        }
    }
    None
}
