//! The private path measured on real copies: every original and its edits
//! hashed **with PDQ's per-bit confidence** ([`bulwark_pdq::hash_rgb_confidence`]),
//! so multi-probe vouchers (`bulwark_psi`'s probing profiles) can be made from
//! what a device would compute. [`hash_corpus`] does the hashing (resumable
//! through a cache file); the voucher runs themselves live in
//! `examples/private_eval.rs`, which uses the device and server code of
//! `bulwark_psi` end to end.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bulwark_pdq::{Limits, PdqHash};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::transforms::{self, Transform};
use crate::{Config, Error};

/// A hash with its per-bit margins (|DCT coefficient − median|).
#[derive(Clone, Debug)]
pub struct Confident {
    /// PDQ hash.
    pub hash: PdqHash,
    /// Per-bit margins.
    pub margins: Box<[f32; 256]>,
}

/// One hashed image of the corpus: an original (`transform` 0 is `identity`)
/// or an edit of it.
#[derive(Clone, Debug)]
pub struct Item {
    /// Index of the original (order of the image list, failures skipped).
    pub original: usize,
    /// Index into the transform list given to [`hash_corpus`].
    pub transform: usize,
    /// Hash and margins.
    pub value: Confident,
}

/// Everything [`hash_corpus`] measured.
#[derive(Debug)]
pub struct ConfidentCorpus {
    /// The edits; index 0 must be `identity` (the original).
    pub transforms: Vec<Transform>,
    /// The originals' paths and file SHA-256.
    pub originals: Vec<(PathBuf, String)>,
    /// One item per (original, transform), originals in order.
    pub items: Vec<Item>,
    /// Files that could not be used.
    pub failed: Vec<(PathBuf, String)>,
}

fn encode(c: &Confident) -> String {
    let mut s = String::with_capacity(64 + 1 + 256 * 8);
    s.push_str(&c.hash.to_string());
    s.push('\t');
    for m in c.margins.iter() {
        s.push_str(&format!("{:08x}", m.to_bits()));
    }
    s
}

fn decode(hash: &str, margins: &str) -> Option<Confident> {
    let hash = hash.parse().ok()?;
    if margins.len() != 256 * 8 {
        return None;
    }
    let mut m = Box::new([0f32; 256]);
    for (i, v) in m.iter_mut().enumerate() {
        *v = f32::from_bits(u32::from_str_radix(margins.get(8 * i..8 * i + 8)?, 16).ok()?);
    }
    Some(Confident { hash, margins: m })
}

/// Hashes every image and each of its `transforms` (the first must be
/// `identity`) with per-bit margins, as `crate::evaluate` does (the same
/// scaling to `config.max_side`, the same seeded edits). `cache` lines are
/// `sha256 \t transform \t max_side \t seed \t hash \t margins (256 × f32 bits hex)`.
pub fn hash_corpus(
    images: &[PathBuf],
    config: &Config,
    transforms: Vec<Transform>,
    cache: Option<&Path>,
    progress: &(dyn Fn() + Sync),
) -> Result<ConfidentCorpus, Error> {
    let mut map: HashMap<String, Confident> = HashMap::new();
    let mut file = None;
    if let Some(path) = cache {
        if let Ok(f) = std::fs::File::open(path) {
            for line in std::io::BufReader::new(f).lines() {
                let line = line?;
                let p: Vec<&str> = line.split('\t').collect();
                if p.len() == 6
                    && let Some(c) = decode(p[4], p[5])
                {
                    map.insert(p[..4].join("\t"), c);
                }
            }
        }
        file = Some(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        ));
    }
    let limits = Limits::default();
    type PerImage = Result<(String, Vec<Confident>), (PathBuf, String)>;
    let results: Vec<PerImage> = images
        .par_iter()
        .map(|path| {
            let r = (|| -> Result<(String, Vec<Confident>), Error> {
                let bytes = std::fs::read(path)?;
                let sha = hex::encode(Sha256::digest(&bytes));
                let key = |t: &Transform| {
                    format!("{sha}\t{}\t{}\t{}", t.name, config.max_side, config.seed)
                };
                if transforms.iter().all(|t| map.contains_key(&key(t))) {
                    let v = transforms.iter().map(|t| map[&key(t)].clone()).collect();
                    return Ok((sha, v));
                }
                let img = crate::scaled(
                    transforms::from_pdq(bulwark_pdq::decode(&bytes, &limits)?),
                    config.max_side,
                );
                let seed = config.seed ^ u64::from_str_radix(&sha[..16], 16).unwrap_or(0);
                let mut out = Vec::with_capacity(transforms.len());
                for t in &transforms {
                    if let Some(c) = map.get(&key(t)) {
                        out.push(c.clone());
                        continue;
                    }
                    let c = t.apply(&img, seed)?;
                    let h = bulwark_pdq::hash_rgb_confidence(
                        c.as_raw(),
                        c.width() as usize,
                        c.height() as usize,
                    );
                    let v = Confident {
                        hash: h.hash,
                        margins: Box::new(h.margins),
                    };
                    if let Some(f) = &file {
                        let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
                        writeln!(f, "{}\t{}", key(t), encode(&v))?;
                    }
                    out.push(v);
                }
                Ok((sha, out))
            })();
            progress();
            r.map_err(|e| (path.clone(), e.to_string()))
        })
        .collect();
    let mut corpus = ConfidentCorpus {
        transforms,
        originals: Vec::new(),
        items: Vec::new(),
        failed: Vec::new(),
    };
    for (path, r) in images.iter().zip(results) {
        match r {
            Ok((sha, values)) => {
                let o = corpus.originals.len();
                corpus.originals.push((path.clone(), sha));
                for (t, value) in values.into_iter().enumerate() {
                    corpus.items.push(Item {
                        original: o,
                        transform: t,
                        value,
                    });
                }
            }
            Err(f) => corpus.failed.push(f),
        }
    }
    Ok(corpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_lines_round_trip_exactly() {
        let mut margins = Box::new([0f32; 256]);
        for (i, m) in margins.iter_mut().enumerate() {
            *m = i as f32 * 0.37 + 1e-7;
        }
        let c = Confident {
            hash: PdqHash::from_bytes([0x5a; 32]),
            margins,
        };
        let line = encode(&c);
        let (h, m) = line.split_once('\t').expect("tab");
        let back = decode(h, m).expect("decodes");
        assert_eq!(back.hash, c.hash);
        assert_eq!(back.margins, c.margins);
        assert!(decode(h, &m[1..]).is_none());
    }

    #[test]
    fn hashing_matches_plain_pdq_and_resumes_from_the_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let img = image::RgbImage::from_fn(160, 120, |x, y| {
            image::Rgb([
                (x * 7 % 256) as u8,
                (y * 5 % 256) as u8,
                ((x * y) % 256) as u8,
            ])
        });
        let path = dir.path().join("a.png");
        img.save(&path).expect("png");
        let set: Vec<Transform> = transforms::standard_set()
            .into_iter()
            .filter(|t| ["identity", "resize-0.50", "jpeg-q50"].contains(&t.name.as_str()))
            .collect();
        let cache = dir.path().join("cache.tsv");
        let cfg = Config::default();
        let a = hash_corpus(
            std::slice::from_ref(&path),
            &cfg,
            set.clone(),
            Some(&cache),
            &|| {},
        )
        .expect("a");
        assert_eq!(a.items.len(), 3);
        // The hash is plain PDQ of the edited pixels.
        let edited = set[1]
            .apply(
                &img,
                cfg.seed ^ u64::from_str_radix(&a.originals[0].1[..16], 16).unwrap(),
            )
            .expect("edit");
        let plain = bulwark_pdq::hash_rgb(edited.as_raw(), 80, 60).hash;
        assert_eq!(a.items[1].value.hash, plain);
        let b = hash_corpus(&[path], &cfg, set, Some(&cache), &|| {}).expect("b");
        for (x, y) in a.items.iter().zip(&b.items) {
            assert_eq!(x.value.hash, y.value.hash);
            assert_eq!(x.value.margins, y.value.margins);
        }
        let lines = std::fs::read_to_string(&cache)
            .expect("cache")
            .lines()
            .count();
        assert_eq!(lines, 3, "the second run read the cache");
    }

    /// Issue 17: the pdata variants banks store (`bulwark_pdq`'s `crop-1.5`
    /// and `scale-0.3`, from the decoded file as the service computes them)
    /// are, bit for bit, the bank-side variants `examples/private_eval.rs`
    /// measured the `expanded` profile with: [`hash_corpus`] with
    /// `centred_crop(0.015)` and `resize(0.3)` after the 1024-pixel scaling,
    /// on every conformance image (some larger than 1024, some grey).
    #[test]
    fn banked_pdata_variants_equal_the_measured_ones_on_the_conformance_images() {
        use bulwark_pdq::{HashKind, KindSet, Mode, MultiHash};
        let dir = std::env::var_os("BULWARK_CONFORMANCE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
            })
            .join("pdq/images");
        if !dir.is_dir() {
            assert!(
                std::env::var("BULWARK_TEST_REQUIRE_ALL").is_err(),
                "conformance images not found at {}: set BULWARK_CONFORMANCE_DIR",
                dir.display()
            );
            return;
        }
        let images = crate::find_images(&dir).expect("images");
        let set = vec![
            transforms::standard_set().remove(0),
            transforms::centred_crop(0.015),
            transforms::resize(0.3),
        ];
        assert_eq!(set[0].name, "identity");
        let cfg = Config::default();
        let corpus = hash_corpus(&images, &cfg, set, None, &|| {}).expect("hashes");
        let (mut n, mut large) = (0, 0);
        for (o, (path, _)) in corpus.originals.iter().enumerate() {
            let bytes = std::fs::read(path).expect("read");
            let img = bulwark_pdq::decode(&bytes, &Limits::default()).expect("decodes");
            let m = MultiHash::of_bytes(
                &bytes,
                Mode::Full,
                &Limits::default(),
                KindSet::PDATA_VARIANTS,
            )
            .expect("hashes");
            if img.width.min(img.height) < bulwark_pdq::MIN_EXTRA_DIM as u32 {
                assert!(m.extras().is_empty(), "{}", path.display());
                continue;
            }
            let measured = |t: usize| {
                corpus
                    .items
                    .iter()
                    .find(|i| i.original == o && i.transform == t)
                    .expect("item")
                    .value
                    .hash
            };
            for (t, kind) in [(1, HashKind::Crop15), (2, HashKind::Scale03)] {
                assert_eq!(
                    m.get(kind).map(|k| k.hash),
                    Some(measured(t)),
                    "{kind} of {}",
                    path.display()
                );
            }
            n += 1;
            large += usize::from(img.width.max(img.height) > cfg.max_side);
        }
        assert!(n >= 30, "only {n} conformance images compared");
        assert!(large >= 1, "no image larger than {} px", cfg.max_side);
    }
}
