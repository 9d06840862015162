//! The PDQ hash together with each bit's **confidence**: bit i is set where DCT
//! coefficient i exceeds the median of the 256 coefficients, and its margin
//! |coefficient − median| says how far the coefficient would have to move
//! for the bit to flip. Edits of an image (resizing, recompression, crops)
//! flip low-margin bits first, which is what multi-probe lookups
//! (`bulwark_psi`'s probing profiles) use.
//!
//! The downsample and DCT are the ordinary hash's own (`crate::core`, with
//! its AVX2 kernels), so the hash returned is the ordinary hash — checked
//! against the conformance images below.

use crate::core::{Pixels, dct_of, flat_and_median};
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
    confident(Pixels::Rgb(rgb), width, height)
}

/// [`crate::hash_luma`] with per-bit margins.
///
/// # Panics
/// If the buffer is shorter than `width * height`.
pub fn hash_luma_confidence(luma: &[u8], width: usize, height: usize) -> Confident {
    confident(Pixels::Grey(luma), width, height)
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

fn confident(px: Pixels<'_>, width: usize, height: usize) -> Confident {
    let Some((dct, quality)) = dct_of(px, width, height, true) else {
        return Confident {
            hash: PdqHash::ZERO,
            quality: 0,
            margins: [0.0; 256],
        };
    };
    let (flat, median) = flat_and_median(&dct);
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
