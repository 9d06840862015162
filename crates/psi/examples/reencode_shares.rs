//! How many distinct shares one image yields when re-sent as re-encoded
//! copies (issue 12, item 12). A device derives a voucher's share from the
//! image's PDQ hash, so every copy whose hash differs adds a share toward the
//! threshold. For each image in a directory: the original, 16 JPEG re-encodes
//! (quality 20, 25, …, 95) and 16 second-generation re-encodes (each of those
//! re-encoded again at quality 85): 33 copies. Counts the distinct PDQ hashes
//! (the shares without device memory), the shares with `SeenImages` (a copy
//! within radius 31 of an earlier copy reuses its share: greedy, in the order
//! above), and, for comparison, the distinct values of one 32-bit LSH sub-key
//! (what a share keyed by a coarse feature would count), with the default
//! profile's first table positions from a fixed seed.
//!
//! ```sh
//! cargo run --release -p bulwark-psi --example reencode_shares -- ../shared/conformance/pdq/images
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bulwark_pdq::{Limits, Mode, decode, encode_jpeg, hash_image};
use bulwark_psi::lsh;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: reencode_shares DIR")?;
    let mut paths = Vec::new();
    files(Path::new(&dir), &mut paths);
    paths.sort();
    let positions = lsh::positions(&[7u8; 32], 6, 32);
    let limits = Limits::default();
    let (mut n, mut crossing, mut coarse_crossing) = (0usize, 0usize, 0usize);
    let mut hist: Vec<usize> = Vec::new();
    let mut coarse_hist: Vec<usize> = Vec::new();
    let mut seen_hist: Vec<usize> = Vec::new();
    let mut max_dist = 0u32;
    for p in &paths {
        let Ok(bytes) = std::fs::read(p) else {
            continue;
        };
        let Ok(img) = decode(&bytes, &limits) else {
            continue;
        };
        let original = hash_image(&img, Mode::default()).hash;
        let mut hashes = vec![original];
        for q in (20..=95).step_by(5) {
            let once = encode_jpeg(&img, q)?;
            let once_img = decode(&once, &limits)?;
            hashes.push(hash_image(&once_img, Mode::default()).hash);
            let twice = decode(&encode_jpeg(&once_img, 85)?, &limits)?;
            hashes.push(hash_image(&twice, Mode::default()).hash);
        }
        max_dist = max_dist.max(
            hashes
                .iter()
                .map(|h| h.distance(&original))
                .max()
                .unwrap_or(0),
        );
        let distinct: BTreeSet<[u8; 32]> = hashes.iter().map(|h| *h.as_bytes()).collect();
        let coarse: BTreeSet<u64> = hashes
            .iter()
            .map(|h| lsh::sub_key(h, 0, &positions[0]).bits)
            .collect();
        let mut ids: Vec<bulwark_pdq::PdqHash> = Vec::new();
        for h in &hashes {
            if !ids.iter().any(|i| i.distance(h) <= 31) {
                ids.push(*h);
            }
        }
        seen_hist.push(ids.len());
        if distinct.len() >= 31 {
            println!(
                "{}: {} distinct hashes, {} with SeenImages",
                p.display(),
                distinct.len(),
                ids.len()
            );
        }
        n += 1;
        // t = 30: 31 distinct shares open an account.
        crossing += usize::from(distinct.len() >= 31);
        coarse_crossing += usize::from(coarse.len() >= 31);
        hist.push(distinct.len());
        coarse_hist.push(coarse.len());
    }
    hist.sort_unstable();
    coarse_hist.sort_unstable();
    seen_hist.sort_unstable();
    let med = |v: &[usize]| v.get(v.len() / 2).copied().unwrap_or(0);
    println!(
        "{n} images, 33 copies each (original + 16 JPEG re-encodes + 16 second-generation); largest distance to the original: {max_dist}"
    );
    println!(
        "distinct PDQ hashes (shares today) per image: min {} median {} max {}; images reaching 31 (t = 30) alone: {crossing}",
        hist.first().unwrap_or(&0),
        med(&hist),
        hist.last().unwrap_or(&0)
    );
    println!(
        "shares with SeenImages (radius 31) per image: min {} median {} max {}",
        seen_hist.first().unwrap_or(&0),
        med(&seen_hist),
        seen_hist.last().unwrap_or(&0)
    );
    println!(
        "distinct 32-bit sub-keys of one table per image: min {} median {} max {}; reaching 31: {coarse_crossing}",
        coarse_hist.first().unwrap_or(&0),
        med(&coarse_hist),
        coarse_hist.last().unwrap_or(&0)
    );
    Ok(())
}
