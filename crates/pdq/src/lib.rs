//! PDQ perceptual hashing, bit-exact with Meta's reference implementation.
//!
//! The main types are [`PdqHash`] (a 256-bit hash with the reference's hex form),
//! [`Hashed`] (a hash and its quality), [`DihedralHashes`] (the eight rotations
//! and mirrors), [`Mode`] (full resolution, as the reference library and HMA
//! compute, or the reference command-line tool's 512×512 resize) and [`Limits`]
//! (caps applied before decoding untrusted bytes).
//!
//! ```
//! use bulwark_pdq::{hash_rgb, PdqHash};
//! // A 64×48 gradient: any RGB buffer works.
//! let rgb: Vec<u8> = (0..64 * 48 * 3).map(|i| (i % 251) as u8).collect();
//! let h = hash_rgb(&rgb, 64, 48);
//! let again: PdqHash = h.hash.to_string().parse().unwrap();
//! assert_eq!(again.distance(&h.hash), 0);
//! ```
//!
//! See docs/PDQ.md for the algorithm, the modes and how each format is handled.
// `unsafe` only in the AVX2 kernels (`simd`) and the calls into them, each
// after runtime feature detection; the workspace denies it everywhere else.
#![deny(missing_docs)]

mod confidence;
mod core;
mod decode;
mod hash;
mod region;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod simd;

use std::fmt;
use std::str::FromStr;

pub use crate::confidence::{
    Confident, hash_image_confidence, hash_luma_confidence, hash_rgb_confidence,
};
pub use crate::core::{
    DIHEDRAL_NAMES, DihedralHashes, Hashed, MIN_HASHABLE_DIM, hash_luma, hash_luma_dihedral,
    hash_rgb, hash_rgb_dihedral,
};
pub use crate::decode::{Format, Image, Limits, decode, dimensions, encode_jpeg, sniff};
pub use crate::hash::{ParseHashError, PdqHash};
pub use crate::region::{
    CORNER_SHARE, EXTRA_HASH_SIDE, HashKind, KindHash, KindSet, MIN_EXTRA_DIM, MIN_REGION_SHARE,
    MultiHash, Nearest, Pairing, ROTATION_DEGREES, Rect, content_region_rgb, multi_hash_bytes,
    multi_hash_image, multi_hash_luma, multi_hash_rgb,
};

/// What went wrong hashing untrusted bytes. Every variant is the input's fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a valid image of their format (corrupt, truncated, empty).
    #[error("cannot decode image: {0}")]
    Decode(String),
    /// Not a format Bulwark decodes, or a feature of it that it does not support.
    #[error("unsupported image: {0}")]
    Unsupported(String),
    /// The image is larger than the configured [`Limits`] allow.
    #[error("image too large: {0}")]
    LimitExceeded(String),
}

/// Which pixels are hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The full-resolution decoded image: what the reference library, the
    /// `pdqhash` Python wrapper, HMA and vPDQ compute. The default: hashes
    /// published by platforms through HMA are of this kind.
    #[default]
    Full,
    /// What the reference command-line hasher computes: a nearest-neighbour
    /// resize to exactly 512×512 (aspect ratio not kept) when either side is
    /// over 512, then the core.
    ReferenceCli,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Full => "full",
            Mode::ReferenceCli => "reference-cli",
        })
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(Mode::Full),
            "reference-cli" => Ok(Mode::ReferenceCli),
            _ => Err(format!(
                "unknown mode {s:?}: expected \"full\" or \"reference-cli\""
            )),
        }
    }
}

/// The reference CLI's nearest-neighbour resize: source index ⌊x·W/512⌋.
fn resize_for_cli(img: &Image) -> Option<Image> {
    const S: usize = 512;
    let (w, h, c) = (
        img.width as usize,
        img.height as usize,
        usize::from(img.channels),
    );
    if w <= S && h <= S {
        return None;
    }
    let mut pixels = Vec::with_capacity(S * S * c);
    for y in 0..S {
        let sy = y * h / S;
        for x in 0..S {
            let sx = x * w / S;
            let at = (sy * w + sx) * c;
            pixels.extend_from_slice(&img.pixels[at..at + c]);
        }
    }
    Some(Image {
        width: S as u32,
        height: S as u32,
        channels: img.channels,
        pixels,
    })
}

fn prepared(img: &Image, mode: Mode) -> std::borrow::Cow<'_, Image> {
    match mode {
        Mode::ReferenceCli => match resize_for_cli(img) {
            Some(r) => std::borrow::Cow::Owned(r),
            None => std::borrow::Cow::Borrowed(img),
        },
        Mode::Full => std::borrow::Cow::Borrowed(img),
    }
}

/// Hashes decoded pixels in the given mode.
pub fn hash_image(img: &Image, mode: Mode) -> Hashed {
    let img = prepared(img, mode);
    let (w, h) = (img.width as usize, img.height as usize);
    if img.channels == 1 {
        hash_luma(&img.pixels, w, h)
    } else {
        hash_rgb(&img.pixels, w, h)
    }
}

/// The eight dihedral hashes of decoded pixels in the given mode.
pub fn hash_image_dihedral(img: &Image, mode: Mode) -> DihedralHashes {
    let img = prepared(img, mode);
    let (w, h) = (img.width as usize, img.height as usize);
    if img.channels == 1 {
        hash_luma_dihedral(&img.pixels, w, h)
    } else {
        hash_rgb_dihedral(&img.pixels, w, h)
    }
}

/// Decodes untrusted bytes within `limits` and hashes them.
pub fn hash_bytes(bytes: &[u8], mode: Mode, limits: &Limits) -> Result<Hashed, Error> {
    Ok(hash_image(&decode(bytes, limits)?, mode))
}

/// Decodes untrusted bytes within `limits` and returns all eight dihedral hashes.
pub fn hash_bytes_dihedral(
    bytes: &[u8],
    mode: Mode,
    limits: &Limits,
) -> Result<DihedralHashes, Error> {
    Ok(hash_image_dihedral(&decode(bytes, limits)?, mode))
}

/// Entry points for `cargo fuzz` (see fuzz/ at the repository root).
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// Decoding arbitrary bytes must return, never panic or exceed the limits.
    pub fn decode_and_hash(data: &[u8]) {
        let limits = Limits::new(1 << 20, 4_000_000, 4096);
        if let Ok(img) = decode(data, &limits) {
            assert_eq!(
                img.pixels.len(),
                img.width as usize * img.height as usize * usize::from(img.channels)
            );
            let h = hash_image(&img, Mode::Full);
            assert!(h.quality <= 100);
        }
    }

    /// Parsing arbitrary text as a hash round-trips when it succeeds.
    pub fn parse_hash(data: &[u8]) {
        if let Ok(s) = std::str::from_utf8(data)
            && let Ok(h) = s.parse::<PdqHash>()
        {
            assert_eq!(h.to_string(), s.to_ascii_lowercase());
        }
    }
}
