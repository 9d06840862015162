//! The PDQ hash together with each bit's **confidence**: bit i is set where DCT
//! coefficient i exceeds the median of the 256 coefficients, and its margin
//! |coefficient − median| says how far the coefficient would have to move
//! for the bit to flip. Edits of an image (resizing, recompression, crops)
//! flip low-margin bits first, which is what multi-probe lookups
//! (`bulwark_psi`'s probing profiles) use.
//!
//! This file computes the 64×64 downsample and the 16×16 DCT the plain way
//! (the reference's running-sum box filter, one vector at a time; the same
//! additions, subtractions and divisions in the same order as
//! `crate::core`'s vectorised passes), so the hash it returns is bit-exact
//! with [`crate::hash_rgb`] / [`crate::hash_luma`] — checked against the
//! conformance images in `tests/confidence.rs`.

use crate::core::{MIN_HASHABLE_DIM, luma_from_grey, luma_from_rgb};
use crate::{Image, PdqHash};

/// A PDQ hash, its quality, and each bit's margin from the median.
#[derive(Debug, Clone, PartialEq)]
pub struct Confident {
    /// The PDQ hash (bit-exact with [`crate::hash_rgb`]).
    pub hash: PdqHash,
    /// PDQ quality (0–100), as [`crate::Hashed::quality`].
    pub quality: u32,
    /// `margins[i]` = |DCT coefficient i − median|: the smaller, the likelier
    /// bit i flips under an edit. The median coefficient itself has margin 0.
    /// All zero for images under the minimum size (whose hash is zero).
    pub margins: [f32; 256],
}

impl Confident {
    /// The bit positions ordered from least to most confident (ties by index).
    pub fn least_confident_first(&self) -> Vec<u8> {
        let mut order: Vec<u8> = (0..=255u8).collect();
        order.sort_by(|&a, &b| {
            self.margins[usize::from(a)]
                .total_cmp(&self.margins[usize::from(b)])
                .then(a.cmp(&b))
        });
        order
    }
}

/// [`crate::hash_rgb`] with per-bit margins.
///
/// # Panics
/// If the buffer is shorter than `width * height * 3`.
pub fn hash_rgb_confidence(rgb: &[u8], width: usize, height: usize) -> Confident {
    confident(luma_from_rgb(rgb, width, height), width, height)
}

/// [`crate::hash_luma`] with per-bit margins.
///
/// # Panics
/// If the buffer is shorter than `width * height`.
pub fn hash_luma_confidence(luma: &[u8], width: usize, height: usize) -> Confident {
    confident(luma_from_grey(luma, width, height), width, height)
}

/// [`crate::hash_image`] in [`crate::Mode::Full`] with per-bit margins.
pub fn hash_image_confidence(img: &Image) -> Confident {
    let (w, h) = (img.width as usize, img.height as usize);
    if img.channels == 1 {
        hash_luma_confidence(&img.pixels, w, h)
    } else {
        hash_rgb_confidence(&img.pixels, w, h)
    }
}

fn confident(mut luma: Vec<f32>, width: usize, height: usize) -> Confident {
    if width < MIN_HASHABLE_DIM || height < MIN_HASHABLE_DIM {
        return Confident {
            hash: PdqHash::ZERO,
            quality: 0,
            margins: [0.0; 256],
        };
    }
    let mut small = [[0f32; 64]; 64];
    if width == 64 && height == 64 {
        // The reference's plain hashing copies a 64×64 input straight through.
        for (i, row) in small.iter_mut().enumerate() {
            row.copy_from_slice(&luma[i * 64..i * 64 + 64]);
        }
    } else {
        let wr = width.div_ceil(128);
        let wc = height.div_ceil(128);
        let mut tmp = vec![0f32; width * height];
        for _ in 0..2 {
            for r in 0..height {
                box1d(&luma[r * width..], &mut tmp[r * width..], width, 1, wr);
            }
            for c in 0..width {
                box1d(&tmp[c..], &mut luma[c..], height, width, wc);
            }
        }
        for (oi, row) in small.iter_mut().enumerate() {
            let ii = sample_index(oi, height);
            for (oj, v) in row.iter_mut().enumerate() {
                *v = luma[ii * width + sample_index(oj, width)];
            }
        }
    }
    let quality = quality(&small);
    let dct = dct64_to_16(&small);
    let mut flat = [0f32; 256];
    for (i, row) in dct.iter().enumerate() {
        flat[i * 16..i * 16 + 16].copy_from_slice(row);
    }
    let median = {
        let mut s = flat;
        let (_, m, _) = s.select_nth_unstable_by(127, f32::total_cmp);
        *m
    };
    let mut hash = PdqHash::ZERO;
    let mut margins = [0f32; 256];
    for (k, &v) in flat.iter().enumerate() {
        if v > median {
            hash.set_bit(k);
        }
        margins[k] = (v - median).abs();
    }
    Confident {
        hash,
        quality,
        margins,
    }
}

/// The reference's running-sum box filter over one vector (`len` elements
/// `stride` apart), window `w`.
fn box1d(input: &[f32], out: &mut [f32], len: usize, stride: usize, w: usize) {
    let half = (w + 2) / 2;
    let (p1, p2, p3, p4) = (half - 1, w - half + 1, len - w, half - 1);
    let (mut li, mut ri, mut oi, mut cur, mut sum) = (0, 0, 0, 0u32, 0f32);
    for _ in 0..p1 {
        sum += input[ri];
        cur += 1;
        ri += stride;
    }
    for _ in 0..p2 {
        sum += input[ri];
        cur += 1;
        out[oi] = sum / cur as f32;
        ri += stride;
        oi += stride;
    }
    for _ in 0..p3 {
        sum += input[ri];
        sum -= input[li];
        out[oi] = sum / cur as f32;
        li += stride;
        ri += stride;
        oi += stride;
    }
    for _ in 0..p4 {
        sum -= input[li];
        cur -= 1;
        out[oi] = sum / cur as f32;
        li += stride;
        oi += stride;
    }
}

/// The reference's decimation: cell centres, in double precision.
fn sample_index(o: usize, n: usize) -> usize {
    ((o as f64 + 0.5) * n as f64 / 64.0) as usize
}

/// The reference's gradient-sum quality metric on the 64×64 downsample
/// (indexed as the reference writes it).
#[allow(clippy::needless_range_loop)]
fn quality(a: &[[f32; 64]; 64]) -> u32 {
    let step = |u: f32, v: f32| -> i64 {
        let d = ((u - v) * 100.0) / 255.0;
        i64::from((d as i32).abs())
    };
    let mut sum: i64 = 0;
    for i in 0..63 {
        for j in 0..64 {
            sum += step(a[i][j], a[i + 1][j]);
        }
    }
    for row in a.iter() {
        for j in 0..63 {
            sum += step(row[j], row[j + 1]);
        }
    }
    (sum / 90).min(100) as u32
}

/// B = D A Dᵀ with the reference's 16×64 DCT-II basis (double-precision
/// cosine times a single-precision scale, stored as f32), summing over k in
/// ascending order.
fn dct64_to_16(a: &[[f32; 64]; 64]) -> [[f32; 16]; 16] {
    let scale = (2.0f64 / 64.0).sqrt() as f32;
    let mut d = [[0f32; 64]; 16];
    for (i, row) in d.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            let arg = (std::f64::consts::PI / 2.0 / 64.0) * (i + 1) as f64 * (2 * j + 1) as f64;
            *v = (f64::from(scale) * arg.cos()) as f32;
        }
    }
    let mut t = [[0f32; 64]; 16];
    for (ti, di) in t.iter_mut().zip(&d) {
        for (k, ak) in a.iter().enumerate() {
            let dik = di[k];
            for (tij, &akj) in ti.iter_mut().zip(ak) {
                *tij += dik * akj;
            }
        }
    }
    let mut b = [[0f32; 16]; 16];
    for (bi, ti) in b.iter_mut().zip(&t) {
        for (bij, dj) in bi.iter_mut().zip(&d) {
            let mut s = 0f32;
            for k in 0..64 {
                s += ti[k] * dj[k];
            }
            *bij = s;
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u32) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                (s >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn hash_and_quality_equal_the_ordinary_hash_on_many_shapes() {
        for (i, (w, h)) in [
            (64, 64),
            (5, 5),
            (37, 129),
            (300, 200),
            (1024, 17),
            (130, 130),
        ]
        .into_iter()
        .enumerate()
        {
            let rgb = noise(w * h * 3, i as u32 + 1);
            let c = hash_rgb_confidence(&rgb, w, h);
            let o = crate::hash_rgb(&rgb, w, h);
            assert_eq!((c.hash, c.quality), (o.hash, o.quality), "{w}×{h}");
            let grey = noise(w * h, i as u32 + 9);
            let c = hash_luma_confidence(&grey, w, h);
            let o = crate::hash_luma(&grey, w, h);
            assert_eq!((c.hash, c.quality), (o.hash, o.quality), "grey {w}×{h}");
        }
        assert_eq!(hash_rgb_confidence(&[0; 48], 4, 4).hash, PdqHash::ZERO);
    }

    #[test]
    fn margins_are_distances_from_the_median_and_order_the_bits() {
        let rgb = noise(200 * 150 * 3, 3);
        let c = hash_rgb_confidence(&rgb, 200, 150);
        // Exactly one coefficient is the (lower) median: margin 0, bit clear.
        let zeros: Vec<usize> = (0..256).filter(|&i| c.margins[i] == 0.0).collect();
        assert_eq!(zeros.len(), 1);
        assert!(!c.hash.bit(zeros[0]));
        assert_eq!(c.hash.distance(&PdqHash::ZERO), 128);
        let order = c.least_confident_first();
        assert_eq!(usize::from(order[0]), zeros[0]);
        assert!(
            order
                .windows(2)
                .all(|w| c.margins[usize::from(w[0])] <= c.margins[usize::from(w[1])])
        );
    }
}

#[cfg(test)]
mod conformance {
    use super::*;

    /// Every conformance image (`$BULWARK_CONFORMANCE_DIR/pdq/images`):
    /// the hash and quality from this file equal the ordinary hash's.
    #[test]
    fn hashes_equal_the_ordinary_hash_on_the_conformance_images() {
        // As the conformance tests find them: the variable, else `shared/`
        // beside the checkout.
        let dir = std::env::var_os("BULWARK_CONFORMANCE_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
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
        let mut n = 0;
        let mut stack = vec![dir];
        let mut files = Vec::new();
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("conformance images") {
                let p = e.expect("entry").path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    files.push(p);
                }
            }
        }
        for path in files {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let Ok(img) = crate::decode(&bytes, &crate::Limits::default()) else {
                continue;
            };
            let c = hash_image_confidence(&img);
            let o = crate::hash_image(&img, crate::Mode::Full);
            assert_eq!(
                (c.hash, c.quality),
                (o.hash, o.quality),
                "{}",
                path.display()
            );
            n += 1;
        }
        assert!(n >= 30, "only {n} conformance images decoded");
    }
}
