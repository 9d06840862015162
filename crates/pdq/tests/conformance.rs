//! Every row of every CSV in `shared/conformance/pdq/` reproduced exactly:
//! same hash, same quality. The vectors come from Meta's reference build (see
//! that folder's README); they are the judge of bit-exactness.

#![allow(clippy::too_many_arguments, clippy::needless_range_loop)]

use std::path::PathBuf;

use bulwark_pdq::{
    Limits, Mode, PdqHash, decode, hash_image, hash_image_dihedral, hash_luma, hash_luma_dihedral,
    hash_rgb, hash_rgb_dihedral,
};

fn conformance_dir() -> PathBuf {
    if let Ok(d) = std::env::var("BULWARK_CONFORMANCE_DIR") {
        return PathBuf::from(d).join("pdq");
    }
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/pdq");
    assert!(
        d.is_dir(),
        "conformance vectors not found at {}: clone the project beside shared/ or set BULWARK_CONFORMANCE_DIR",
        d.display()
    );
    d
}

fn rows(name: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(conformance_dir().join(name)).expect("read CSV");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

fn h(s: &str) -> PdqHash {
    s.parse().expect("hash in CSV")
}

/// The synthetic pixel formula from the conformance README.
fn synthetic_pixels(
    w: usize,
    hgt: usize,
    ch: usize,
    seed: u32,
    kx: u32,
    ky: u32,
    mask: u32,
    flat: bool,
) -> Vec<u8> {
    let mut s = seed;
    let mut out = Vec::with_capacity(w * hgt * ch);
    for y in 0..hgt as u32 {
        for x in 0..w as u32 {
            for c in 0..ch as u32 {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                let v = if flat {
                    128
                } else {
                    (((x.wrapping_mul(kx) + y.wrapping_mul(ky) + c * 85) & 255)
                        ^ ((s >> 24) & mask)) as u8
                };
                out.push(v);
            }
        }
    }
    out
}

#[test]
fn synthetic_core_vectors() {
    let rows = rows("pdq_synthetic_core_vectors.csv");
    let mut failures = Vec::new();
    for r in &rows[1..] {
        let n = |i: usize| r[i].parse::<u32>().expect("number");
        let (w, hh, ch) = (n(0) as usize, n(1) as usize, n(2) as usize);
        let px = synthetic_pixels(w, hh, ch, n(3), n(4), n(5), n(6), n(7) == 1);
        let (plain, dih) = if ch == 1 {
            (hash_luma(&px, w, hh), hash_luma_dihedral(&px, w, hh))
        } else {
            (hash_rgb(&px, w, hh), hash_rgb_dihedral(&px, w, hh))
        };
        let label = format!("{w}x{hh}x{ch} seed {}", r[3]);
        if plain.quality != n(8) || plain.hash != h(&r[9]) {
            failures.push(format!(
                "{label}: plain got {},{} want {},{}",
                plain.hash, plain.quality, r[9], r[8]
            ));
        }
        if dih.quality != n(10) {
            failures.push(format!(
                "{label}: dihedral quality {} want {}",
                dih.quality, r[10]
            ));
        }
        for k in 0..8 {
            if dih.hashes[k] != h(&r[11 + k]) {
                failures.push(format!(
                    "{label}: dihedral #{k} got {} want {}",
                    dih.hashes[k],
                    r[11 + k]
                ));
            }
        }
    }
    assert!(rows.len() > 20, "expected the full synthetic table");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn image_rows(csv: &str, mode: Mode) {
    let dir = conformance_dir().join("images");
    let rows = rows(csv);
    let mut failures = Vec::new();
    for r in &rows {
        let path = &r[2];
        let bytes = std::fs::read(dir.join(path)).expect("image file");
        let img = match decode(&bytes, &Limits::default()) {
            Ok(i) => i,
            Err(e) => {
                failures.push(format!("{path}: {e}"));
                continue;
            }
        };
        let got = hash_image(&img, mode);
        let want_q: u32 = r[1].parse().expect("quality");
        if got.hash != h(&r[0]) || got.quality != want_q {
            failures.push(format!(
                "{path}: got {},{} want {},{} (distance {})",
                got.hash,
                got.quality,
                r[0],
                want_q,
                got.hash.distance(&h(&r[0]))
            ));
        }
    }
    assert!(!rows.is_empty());
    assert!(
        failures.is_empty(),
        "{} of {} rows differ:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn reference_cli_rows() {
    image_rows("pdq_cli_expected.csv", Mode::ReferenceCli);
}

#[test]
fn full_resolution_rows() {
    image_rows("pdq_core_fullres_expected.csv", Mode::Full);
}

#[test]
fn reference_cli_dihedral_rows() {
    let dir = conformance_dir().join("images");
    let rows = rows("pdq_cli_dihedral_expected.csv");
    let mut failures = Vec::new();
    for r in &rows {
        let path = &r[9];
        let bytes = std::fs::read(dir.join(path)).expect("image file");
        let img = decode(&bytes, &Limits::default()).expect("decodes");
        let got = hash_image_dihedral(&img, Mode::ReferenceCli);
        let want_q: u32 = r[8].parse().expect("quality");
        if got.quality != want_q {
            failures.push(format!("{path}: quality {} want {want_q}", got.quality));
        }
        for k in 0..8 {
            if got.hashes[k] != h(&r[k]) {
                failures.push(format!("{path}: #{k} got {} want {}", got.hashes[k], r[k]));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
