//! Extra PDQ hashes of one image, for the edits plain PDQ misses.
//!
//! A [`MultiHash`] holds the ordinary full-image hash first (bit-exact with
//! [`crate::hash_rgb`]), then a small, fixed set of extras, each tagged with
//! its [`HashKind`]:
//!
//! - **region**: the *content region*, found by trimming, from each edge
//!   inwards, rows and columns that look like framing rather than picture:
//!   near-uniform rows (borders, letterbox bars, margins, status and app
//!   bars) and two-tone rows (a caption's text on its background). Present
//!   only when the region is smaller than the image and at least
//!   [`MIN_REGION_SHARE`] of each side. A captioned, letterboxed or
//!   screenshotted copy's region is the original picture again.
//! - **centre-90, centre-80**: centred sub-crops of the region (or of the
//!   whole image when there is none) at 90 % and 80 % of each side. A copy
//!   cropped by 5 % or 10 % off each edge *is* such a crop of the original;
//!   the centre crops of a slightly rotated copy leave out its black corners.
//! - **corner-tl, corner-tr, corner-bl, corner-br**: 70 % × 70 % crops
//!   anchored at each corner of the region; each leaves out the opposite
//!   corner, where logos and watermarks go.
//! - **rotate-cw2, rotate-ccw2**: the region turned by 2° each way (bilinear,
//!   on the reduced plane), then its centred 90 % crop: what the centre-90
//!   hash of a slightly rotated copy (black corners cut away) sees.
//! - **crop-1.5, scale-0.3** (*pdata variants*, [`KindSet::PDATA_VARIANTS`]):
//!   not for plain matching — no [`Pairing`] compares them and
//!   [`KindSet::ALL`] leaves them out. They are the bank-side variants of
//!   private matching's `expanded` profile (bulwark-psi's
//!   `Pdata::build_with_variants`, docs/PRIVATE-MATCHING.md): the whole image
//!   scaled to a long side of at most [`VARIANT_MAX_SIDE`] (triangle filter),
//!   then a centred crop of [`VARIANT_CROP`] off each edge, or a resize by
//!   [`VARIANT_SCALE`] (triangle filter), hashed in RGB exactly as the
//!   evaluation that measured the profile did (`bulwark-eval`'s
//!   `examples/private_eval.rs`; checked bit for bit there).
//!
//! The extras are hashed from the shared luminance plane, box-averaged by an
//! integer factor so the hashed rectangle's long side is about
//! [`EXTRA_HASH_SIDE`] pixels: the full-resolution filter would cost a whole
//! extra hash each, the reduced plane costs a small fraction (measured in
//! docs/DETECTION.md). Everything here is deterministic integer geometry and
//! the crate's own PDQ core.
//!
//! Which pairs of kinds to compare is the matcher's choice: [`Pairing`] gives
//! the three used by `bulwark eval` and the service.

use std::fmt;
use std::str::FromStr;

use crate::core::{Hashed, hash_luma_plane, luma_from_grey, luma_from_rgb};
use crate::hash::PdqHash;
use crate::{Error, Image, Limits, Mode};

/// The long side (in pixels) the extras' rectangles are reduced to, roughly
/// (an integer box-average factor, so between this and twice it).
pub const EXTRA_HASH_SIDE: usize = 320;

/// A content region smaller than this share of either side of the image is
/// not used (the image is mostly flat, not framed).
pub const MIN_REGION_SHARE: f32 = 0.3;

/// Side of the corner crops, as a share of the region's side.
pub const CORNER_SHARE: f32 = 0.7;

/// The small rotations the bank side also hashes (degrees, both ways).
pub const ROTATION_DEGREES: f32 = 2.0;

/// Images with a side under this many pixels get no extras.
pub const MIN_EXTRA_DIM: usize = 32;

/// The pdata variants are taken of the image scaled (triangle filter) to a
/// long side of at most this: the messenger scaling of the evaluation they
/// were measured with.
pub const VARIANT_MAX_SIDE: u32 = 1024;

/// The `crop-1.5` variant: a centred crop of this share off each edge.
pub const VARIANT_CROP: f32 = 0.015;

/// The `scale-0.3` variant: a resize by this factor.
pub const VARIANT_SCALE: f32 = 0.3;

/// A row or column is framing when this share of its pixels falls within one
/// or two narrow luminance windows.
const CHROME_SHARE: f32 = 0.93;
/// Width of the luminance histogram bins.
const BIN: f32 = 4.0;
/// A window is this many bins either side of its centre (20 levels in all:
/// JPEG ringing around caption text stays inside).
const WINDOW: usize = 2;
const BINS: usize = 64;

/// What part of the image a hash covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum HashKind {
    /// The whole image: the ordinary PDQ hash.
    Full,
    /// The content region inside detected framing.
    Region,
    /// Centred crop, 90 % of each side of the region.
    Centre90,
    /// Centred crop, 80 % of each side of the region.
    Centre80,
    /// 70 % × 70 % crop at the region's top-left corner.
    CornerTopLeft,
    /// 70 % × 70 % crop at the top-right corner.
    CornerTopRight,
    /// 70 % × 70 % crop at the bottom-left corner.
    CornerBottomLeft,
    /// 70 % × 70 % crop at the bottom-right corner.
    CornerBottomRight,
    /// The region turned 2° clockwise, centred 90 % crop.
    RotateCw2,
    /// The region turned 2° counter-clockwise, centred 90 % crop.
    RotateCcw2,
    /// Pdata variant, not matched: the image (scaled to
    /// [`VARIANT_MAX_SIDE`]) cropped by [`VARIANT_CROP`] off each edge.
    Crop15,
    /// Pdata variant, not matched: the image (scaled to
    /// [`VARIANT_MAX_SIDE`]) resized by [`VARIANT_SCALE`].
    Scale03,
}

impl HashKind {
    /// Every kind, in [`MultiHash`] order.
    pub const ALL: [HashKind; 12] = [
        HashKind::Full,
        HashKind::Region,
        HashKind::Centre90,
        HashKind::Centre80,
        HashKind::CornerTopLeft,
        HashKind::CornerTopRight,
        HashKind::CornerBottomLeft,
        HashKind::CornerBottomRight,
        HashKind::RotateCw2,
        HashKind::RotateCcw2,
        HashKind::Crop15,
        HashKind::Scale03,
    ];

    /// The stable name used in reports, APIs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            HashKind::Full => "full",
            HashKind::Region => "region",
            HashKind::Centre90 => "centre-90",
            HashKind::Centre80 => "centre-80",
            HashKind::CornerTopLeft => "corner-tl",
            HashKind::CornerTopRight => "corner-tr",
            HashKind::CornerBottomLeft => "corner-bl",
            HashKind::CornerBottomRight => "corner-br",
            HashKind::RotateCw2 => "rotate-cw2",
            HashKind::RotateCcw2 => "rotate-ccw2",
            HashKind::Crop15 => "crop-1.5",
            HashKind::Scale03 => "scale-0.3",
        }
    }

    /// Whether this kind is a pdata variant ([`KindSet::PDATA_VARIANTS`]):
    /// stored for private matching's pdata builds, never compared by a
    /// [`Pairing`].
    pub fn is_pdata_variant(self) -> bool {
        matches!(self, HashKind::Crop15 | HashKind::Scale03)
    }

    /// Whether this kind covers the whole picture (full image or content
    /// region) rather than a part of it.
    pub fn is_whole(self) -> bool {
        matches!(self, HashKind::Full | HashKind::Region)
    }
}

impl fmt::Display for HashKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HashKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HashKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown hash kind {s:?}"))
    }
}

impl serde::Serialize for HashKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for HashKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A set of extra [`HashKind`]s: which extras to compute or store.
/// [`HashKind::Full`] is never a member (the full-image hash is always
/// computed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KindSet(u16);

/// Every kind but `Full`.
const EVERY_EXTRA: u16 = ((1 << HashKind::ALL.len()) - 1) & !1;

impl KindSet {
    /// No extras: [`MultiHash::compute`] gives the plain hash alone.
    pub const NONE: KindSet = KindSet(0);
    /// Every extra kind used for matching (not the pdata variants, which no
    /// [`Pairing`] compares: add [`KindSet::PDATA_VARIANTS`] for those).
    pub const ALL: KindSet =
        KindSet(EVERY_EXTRA & !(KindSet::bit(HashKind::Crop15) | KindSet::bit(HashKind::Scale03)));

    /// The pdata variants (`crop-1.5`, `scale-0.3`): what bulwark-psi's
    /// `expanded` profile puts in a release besides each banked image's
    /// hash. Stored by banks for pdata builds; never matched.
    pub const PDATA_VARIANTS: KindSet = KindSet::of(&[HashKind::Crop15, HashKind::Scale03]);

    /// The kinds a bank stores by default: the ones the evaluation in
    /// docs/DETECTION.md needs for the issue's recall goals under
    /// [`Pairing::Both`] (region: framing; centre-90: 5 % crops; corners:
    /// logos; rotations: 2° turns). `centre-80` only serves 10 % crops,
    /// which have no goal, and is left out.
    pub const BANK_DEFAULT: KindSet = KindSet::of(&[
        HashKind::Region,
        HashKind::Centre90,
        HashKind::CornerTopLeft,
        HashKind::CornerTopRight,
        HashKind::CornerBottomLeft,
        HashKind::CornerBottomRight,
        HashKind::RotateCw2,
        HashKind::RotateCcw2,
    ]);

    const fn bit(k: HashKind) -> u16 {
        1 << k as u16
    }

    /// The set of these kinds (`Full` is ignored).
    pub const fn of(kinds: &[HashKind]) -> KindSet {
        let mut bits = 0;
        let mut i = 0;
        while i < kinds.len() {
            bits |= KindSet::bit(kinds[i]);
            i += 1;
        }
        KindSet(bits & EVERY_EXTRA)
    }

    /// The kinds in either set.
    #[must_use]
    pub const fn union(self, other: KindSet) -> KindSet {
        KindSet(self.0 | other.0)
    }

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: HashKind) -> bool {
        self.0 & KindSet::bit(kind) != 0
    }

    /// This set with `kind` added (`Full` is ignored).
    #[must_use]
    pub fn with(self, kind: HashKind) -> KindSet {
        KindSet((self.0 | KindSet::bit(kind)) & EVERY_EXTRA)
    }

    /// Members, in [`HashKind::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = HashKind> {
        HashKind::ALL.into_iter().filter(move |&k| self.contains(k))
    }

    /// Number of members.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds a *query* needs to use everything a bank storing `self`
    /// offers under [`Pairing::Both`]: the region (a whole-picture kind,
    /// compared with every banked kind), each banked crop kind (crops are
    /// compared with the same crop), and centre-90 when rotations are
    /// banked (the query's centre-90 is compared with them). The query's
    /// own rotations and unbanked crops would only meet the bank's whole
    /// hashes, which the bank's rotations and crops already cover. Pdata
    /// variants are never matched, so they add nothing.
    pub fn query_side(self) -> KindSet {
        let mut q = KindSet::NONE.with(HashKind::Region);
        for k in self.iter() {
            match k {
                k if k.is_pdata_variant() => {}
                HashKind::RotateCw2 | HashKind::RotateCcw2 => q = q.with(HashKind::Centre90),
                k if !k.is_whole() => q = q.with(k),
                _ => {}
            }
        }
        q
    }
}

impl FromIterator<HashKind> for KindSet {
    fn from_iter<I: IntoIterator<Item = HashKind>>(it: I) -> Self {
        it.into_iter().fold(KindSet::NONE, KindSet::with)
    }
}

impl fmt::Display for KindSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(HashKind::as_str).collect();
        f.write_str(&names.join(","))
    }
}

/// A rectangle of the image, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Rect {
    /// Left edge.
    pub x: usize,
    /// Top edge.
    pub y: usize,
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
}

/// One hash of a [`MultiHash`]: what it covers and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KindHash {
    /// What part of the image.
    pub kind: HashKind,
    /// The hash.
    pub hash: PdqHash,
    /// PDQ quality of the hashed pixels (0..=100).
    pub quality: u32,
    /// The hashed rectangle.
    pub rect: Rect,
}

/// The full-image hash and the extras of one image (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MultiHash {
    /// `hashes[0]` is [`HashKind::Full`]; the extras follow in
    /// [`HashKind::ALL`] order, each kind at most once.
    pub hashes: Vec<KindHash>,
}

/// Which pairs of kinds a matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pairing {
    /// Full against full only: plain PDQ.
    FullOnly,
    /// The query's full and region hashes against the bank's full hash only
    /// (banks that store plain PDQ hashes, as HMA exchanges them: a crop of
    /// the query cannot be the whole of a banked image, so crops are not
    /// compared).
    QueryExtras,
    /// Both sides' extras: whole-picture kinds (full, region) against every
    /// kind, a crop against the same crop, and the query's centre-90 against
    /// the bank's rotated hashes.
    Both,
}

impl Pairing {
    /// Whether a query hash of kind `q` is compared with a bank hash of kind
    /// `b`. Never for a pdata variant (on either side).
    pub fn allows(self, q: HashKind, b: HashKind) -> bool {
        if q.is_pdata_variant() || b.is_pdata_variant() {
            return false;
        }
        match self {
            Pairing::FullOnly => q == HashKind::Full && b == HashKind::Full,
            Pairing::QueryExtras => q.is_whole() && b == HashKind::Full,
            Pairing::Both => {
                q.is_whole()
                    || b.is_whole()
                    || q == b
                    || (q == HashKind::Centre90
                        && matches!(b, HashKind::RotateCw2 | HashKind::RotateCcw2))
            }
        }
    }
}

/// The closest pair found by [`MultiHash::nearest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nearest {
    /// Hamming distance.
    pub distance: u32,
    /// Kind on the query side.
    pub query: HashKind,
    /// Kind on the bank side.
    pub bank: HashKind,
}

impl MultiHash {
    /// The ordinary full-image hash.
    pub fn full(&self) -> Hashed {
        let k = &self.hashes[0];
        Hashed {
            hash: k.hash,
            quality: k.quality,
        }
    }

    /// The extras (everything after the full-image hash).
    pub fn extras(&self) -> &[KindHash] {
        &self.hashes[1..]
    }

    /// The hash of one kind, if present.
    pub fn get(&self, kind: HashKind) -> Option<&KindHash> {
        self.hashes.iter().find(|k| k.kind == kind)
    }

    /// The closest pair between this (query) and `bank` among the pairs
    /// `pairing` allows, skipping hashes under `min_quality`; ties go to the
    /// earlier kinds (full before region before crops).
    pub fn nearest(&self, bank: &MultiHash, pairing: Pairing, min_quality: u32) -> Option<Nearest> {
        let mut best: Option<Nearest> = None;
        for q in self.hashes.iter().filter(|k| k.quality >= min_quality) {
            for b in bank.hashes.iter().filter(|k| k.quality >= min_quality) {
                if !pairing.allows(q.kind, b.kind) {
                    continue;
                }
                let d = q.hash.distance(&b.hash);
                if best.is_none_or(|n| d < n.distance) {
                    best = Some(Nearest {
                        distance: d,
                        query: q.kind,
                        bank: b.kind,
                    });
                }
            }
        }
        best
    }
}

impl MultiHash {
    /// The full-image hash and the extras in `kinds` of an interleaved RGB
    /// buffer. Only the extras asked for are hashed (the content region is
    /// still detected when crops or rotations are asked for: they are taken
    /// of it).
    ///
    /// # Panics
    /// If the buffer is shorter than `width * height * 3`.
    pub fn of_rgb(rgb: &[u8], width: usize, height: usize, kinds: KindSet) -> MultiHash {
        let mut m = multi_hash_plane(
            luma_from_rgb(rgb, width, height),
            width,
            height,
            matching(kinds),
        );
        if wants_variants(kinds, width, height) {
            let n = width * height * 3;
            let img = image::RgbImage::from_raw(width as u32, height as u32, rgb[..n].to_vec());
            m.hashes
                .extend(img.map(|i| pdata_variants(i, kinds)).unwrap_or_default());
        }
        m
    }

    /// [`MultiHash::of_rgb`] of a grey buffer.
    ///
    /// # Panics
    /// If the buffer is shorter than `width * height`.
    pub fn of_luma(grey: &[u8], width: usize, height: usize, kinds: KindSet) -> MultiHash {
        let mut m = multi_hash_plane(
            luma_from_grey(grey, width, height),
            width,
            height,
            matching(kinds),
        );
        if wants_variants(kinds, width, height) {
            // Grey as RGB (v, v, v), as the evaluation the variants were
            // measured with converts it.
            let img = image::RgbImage::from_fn(width as u32, height as u32, |x, y| {
                let v = grey[y as usize * width + x as usize];
                image::Rgb([v, v, v])
            });
            m.hashes.extend(pdata_variants(img, kinds));
        }
        m
    }

    /// [`MultiHash::of_rgb`] of decoded pixels (the full-image hash is
    /// [`crate::hash_image`]'s in the same mode).
    pub fn of_image(img: &Image, mode: Mode, kinds: KindSet) -> MultiHash {
        let img = crate::prepared(img, mode);
        let (w, h) = (img.width as usize, img.height as usize);
        if img.channels == 1 {
            MultiHash::of_luma(&img.pixels, w, h, kinds)
        } else {
            MultiHash::of_rgb(&img.pixels, w, h, kinds)
        }
    }

    /// Decodes untrusted bytes within `limits` and computes their
    /// [`MultiHash`] with the extras in `kinds`.
    pub fn of_bytes(
        bytes: &[u8],
        mode: Mode,
        limits: &Limits,
        kinds: KindSet,
    ) -> Result<MultiHash, Error> {
        Ok(MultiHash::of_image(
            &crate::decode(bytes, limits)?,
            mode,
            kinds,
        ))
    }

    /// The kinds present.
    pub fn kinds(&self) -> KindSet {
        self.hashes.iter().map(|k| k.kind).collect()
    }
}

/// The full-image hash and every extra of an interleaved RGB buffer
/// ([`MultiHash::of_rgb`] with [`KindSet::ALL`]).
///
/// # Panics
/// If the buffer is shorter than `width * height * 3`.
pub fn multi_hash_rgb(rgb: &[u8], width: usize, height: usize) -> MultiHash {
    MultiHash::of_rgb(rgb, width, height, KindSet::ALL)
}

/// The full-image hash and every extra of a grey buffer.
///
/// # Panics
/// If the buffer is shorter than `width * height`.
pub fn multi_hash_luma(grey: &[u8], width: usize, height: usize) -> MultiHash {
    MultiHash::of_luma(grey, width, height, KindSet::ALL)
}

/// The full-image hash and every extra of decoded pixels (the full-image
/// hash is [`crate::hash_image`]'s in the same mode).
pub fn multi_hash_image(img: &Image, mode: Mode) -> MultiHash {
    MultiHash::of_image(img, mode, KindSet::ALL)
}

/// Decodes untrusted bytes within `limits` and computes their [`MultiHash`]
/// with every extra.
pub fn multi_hash_bytes(bytes: &[u8], mode: Mode, limits: &Limits) -> Result<MultiHash, Error> {
    MultiHash::of_bytes(bytes, mode, limits, KindSet::ALL)
}

/// `kinds` without the pdata variants (which are not hashed from the
/// luminance plane).
fn matching(kinds: KindSet) -> KindSet {
    kinds.iter().filter(|k| !k.is_pdata_variant()).collect()
}

/// Whether `kinds` asks for a pdata variant of an image this size.
fn wants_variants(kinds: KindSet, width: usize, height: usize) -> bool {
    width >= MIN_EXTRA_DIM
        && height >= MIN_EXTRA_DIM
        && kinds.iter().any(HashKind::is_pdata_variant)
}

/// The pdata variants in `kinds` of an RGB image (module docs): the image
/// scaled to a long side of at most [`VARIANT_MAX_SIDE`], then cropped or
/// resized, each hashed with [`crate::hash_rgb`]. The same integer geometry
/// and `image` filters as `bulwark-eval` (`scaled`, `Transform::apply`), so
/// the hashes are those the `expanded` profile was measured with.
fn pdata_variants(img: image::RgbImage, kinds: KindSet) -> Vec<KindHash> {
    use image::imageops::{self, FilterType};
    let (w0, h0) = img.dimensions();
    let resized = |img: &image::RgbImage, s: f32| {
        let (w, h) = img.dimensions();
        let nw = ((w as f32 * s).round() as u32).max(1);
        let nh = ((h as f32 * s).round() as u32).max(1);
        imageops::resize(img, nw, nh, FilterType::Triangle)
    };
    let img = if w0.max(h0) <= VARIANT_MAX_SIDE {
        img
    } else {
        resized(&img, VARIANT_MAX_SIDE as f32 / w0.max(h0) as f32)
    };
    let (w, h) = img.dimensions();
    // A rectangle of the scaled image in the image's own pixels.
    let back = |x: u32, y: u32, rw: u32, rh: u32| Rect {
        x: (u64::from(x) * u64::from(w0) / u64::from(w)) as usize,
        y: (u64::from(y) * u64::from(h0) / u64::from(h)) as usize,
        width: (u64::from(rw) * u64::from(w0) / u64::from(w)) as usize,
        height: (u64::from(rh) * u64::from(h0) / u64::from(h)) as usize,
    };
    let hashed = |kind: HashKind, i: &image::RgbImage, rect: Rect| {
        let h = crate::hash_rgb(i.as_raw(), i.width() as usize, i.height() as usize);
        KindHash {
            kind,
            hash: h.hash,
            quality: h.quality,
            rect,
        }
    };
    let mut out = Vec::new();
    if kinds.contains(HashKind::Crop15) {
        let dx = (w as f32 * VARIANT_CROP).round() as u32;
        let dy = (h as f32 * VARIANT_CROP).round() as u32;
        let (cw, ch) = (w - 2 * dx, h - 2 * dy);
        let c = imageops::crop_imm(&img, dx, dy, cw, ch).to_image();
        out.push(hashed(HashKind::Crop15, &c, back(dx, dy, cw, ch)));
    }
    if kinds.contains(HashKind::Scale03) {
        let s = resized(&img, VARIANT_SCALE);
        out.push(hashed(HashKind::Scale03, &s, back(0, 0, w, h)));
    }
    out
}

/// One luminance plane shared by the extras and, last, the full hash (which
/// consumes it as scratch space, so no copy is made). The base rectangle
/// (the content region, else the whole image) is box-averaged once to a long
/// side near [`EXTRA_HASH_SIDE`]; the region, crop and rotated hashes are all
/// taken from that one reduced plane.
fn multi_hash_plane(luma: Vec<f32>, w: usize, h: usize, kinds: KindSet) -> MultiHash {
    let whole = Rect {
        x: 0,
        y: 0,
        width: w,
        height: h,
    };
    let mut extras = Vec::new();
    if w >= MIN_EXTRA_DIM && h >= MIN_EXTRA_DIM && !kinds.is_empty() {
        let region = content_region_plane(&luma, w, h);
        let base = region.unwrap_or(whole);
        let needs_plane = kinds.iter().any(|k| k != HashKind::Region) || region.is_some();
        if needs_plane {
            let reduced = Reduced::of(&luma, w, base);
            if region.is_some() && kinds.contains(HashKind::Region) {
                let h = hash_luma_plane(reduced.plane.clone(), reduced.width, reduced.height);
                extras.push(KindHash {
                    kind: HashKind::Region,
                    hash: h.hash,
                    quality: h.quality,
                    rect: base,
                });
            }
            for (kind, sub) in crops(reduced.rect())
                .into_iter()
                .filter(|(k, _)| kinds.contains(*k))
            {
                let h = hash_luma_plane(reduced.crop(sub), sub.width, sub.height);
                extras.push(KindHash {
                    kind,
                    hash: h.hash,
                    quality: h.quality,
                    rect: reduced.to_image(sub),
                });
            }
            for (kind, deg) in [
                (HashKind::RotateCw2, ROTATION_DEGREES),
                (HashKind::RotateCcw2, -ROTATION_DEGREES),
            ] {
                if !kinds.contains(kind) {
                    continue;
                }
                let h = hash_rotated(&reduced, deg);
                extras.push(KindHash {
                    kind,
                    hash: h.hash,
                    quality: h.quality,
                    rect: base,
                });
            }
        }
    }
    let full = hash_luma_plane(luma, w, h);
    let mut hashes = Vec::with_capacity(1 + extras.len());
    hashes.push(KindHash {
        kind: HashKind::Full,
        hash: full.hash,
        quality: full.quality,
        rect: whole,
    });
    hashes.extend(extras);
    MultiHash { hashes }
}

/// The base rectangle box-averaged by one integer factor.
struct Reduced {
    plane: Vec<f32>,
    width: usize,
    height: usize,
    /// The base rectangle in the image.
    base: Rect,
    factor: usize,
}

impl Reduced {
    /// The rectangle `r` of the plane box-averaged by the integer factor that
    /// brings its long side near [`EXTRA_HASH_SIDE`] (remainder pixels at the
    /// right and bottom edges are dropped).
    fn of(luma: &[f32], stride: usize, r: Rect) -> Reduced {
        let f = (r.width.max(r.height) / EXTRA_HASH_SIDE).max(1);
        let (ow, oh) = (r.width / f, r.height / f);
        let mut out = vec![0f32; ow * oh];
        let norm = 1.0 / (f * f) as f32;
        for (oy, orow) in out.chunks_exact_mut(ow).enumerate() {
            for dy in 0..f {
                let start = (r.y + oy * f + dy) * stride + r.x;
                let row = &luma[start..start + ow * f];
                if f == 1 {
                    orow.copy_from_slice(row);
                } else {
                    for (o, block) in orow.iter_mut().zip(row.chunks_exact(f)) {
                        *o += block.iter().sum::<f32>();
                    }
                }
            }
            if f > 1 {
                for o in orow.iter_mut() {
                    *o *= norm;
                }
            }
        }
        Reduced {
            plane: out,
            width: ow,
            height: oh,
            base: r,
            factor: f,
        }
    }

    /// The whole reduced plane as a rectangle of itself.
    fn rect(&self) -> Rect {
        Rect {
            x: 0,
            y: 0,
            width: self.width,
            height: self.height,
        }
    }

    /// A copy of a rectangle of the reduced plane.
    fn crop(&self, r: Rect) -> Vec<f32> {
        let mut out = Vec::with_capacity(r.width * r.height);
        for y in r.y..r.y + r.height {
            out.extend_from_slice(&self.plane[y * self.width + r.x..][..r.width]);
        }
        out
    }

    /// A rectangle of the reduced plane in image pixels.
    fn to_image(&self, r: Rect) -> Rect {
        Rect {
            x: self.base.x + r.x * self.factor,
            y: self.base.y + r.y * self.factor,
            width: r.width * self.factor,
            height: r.height * self.factor,
        }
    }
}

/// The fixed crops of a base rectangle.
fn crops(r: Rect) -> Vec<(HashKind, Rect)> {
    let scaled = |s: f32| -> (usize, usize) {
        (
            ((r.width as f32 * s).round() as usize).max(1),
            ((r.height as f32 * s).round() as usize).max(1),
        )
    };
    let centre = |s: f32| {
        let (cw, ch) = scaled(s);
        Rect {
            x: r.x + (r.width - cw) / 2,
            y: r.y + (r.height - ch) / 2,
            width: cw,
            height: ch,
        }
    };
    let (cw, ch) = scaled(CORNER_SHARE);
    let corner = |right: bool, bottom: bool| Rect {
        x: r.x + if right { r.width - cw } else { 0 },
        y: r.y + if bottom { r.height - ch } else { 0 },
        width: cw,
        height: ch,
    };
    vec![
        (HashKind::Centre90, centre(0.9)),
        (HashKind::Centre80, centre(0.8)),
        (HashKind::CornerTopLeft, corner(false, false)),
        (HashKind::CornerTopRight, corner(true, false)),
        (HashKind::CornerBottomLeft, corner(false, true)),
        (HashKind::CornerBottomRight, corner(true, true)),
    ]
}

/// The reduced plane turned by `deg` about its centre (bilinear, edge
/// samples clamped), then its centred 90 % crop, hashed.
fn hash_rotated(r: &Reduced, deg: f32) -> Hashed {
    let (plane, w, h) = (&r.plane, r.width, r.height);
    let (cw, ch) = (
        ((w as f32 * 0.9).round() as usize).max(1),
        ((h as f32 * 0.9).round() as usize).max(1),
    );
    let (ox, oy) = ((w - cw) / 2, (h - ch) / 2);
    let (s, c) = deg.to_radians().sin_cos();
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let at = |x: usize, y: usize| plane[y.min(h - 1) * w + x.min(w - 1)];
    let mut out = Vec::with_capacity(cw * ch);
    for y in oy..oy + ch {
        for x in ox..ox + cw {
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            let sx = (c * dx + s * dy + cx - 0.5).max(0.0);
            let sy = (-s * dx + c * dy + cy - 0.5).max(0.0);
            let (x0, y0) = (sx as usize, sy as usize);
            let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
            let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
            let bot = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
            out.push(top * (1.0 - fy) + bot * fy);
        }
    }
    hash_luma_plane(out, cw, ch)
}

/// The content region of an RGB image (see the module docs), or `None` when
/// no framing was found or the region would be too small.
pub fn content_region_rgb(rgb: &[u8], width: usize, height: usize) -> Option<Rect> {
    content_region_plane(&luma_from_rgb(rgb, width, height), width, height)
}

/// Whether these luminance values look like framing: at least
/// [`CHROME_SHARE`] of them within one or two windows of five 4-level bins
/// (a flat bar, or text on a flat background).
#[cfg(test)]
fn is_chrome(values: impl Iterator<Item = f32>) -> bool {
    chrome_share(values) >= CHROME_SHARE
}

/// The share of these luminance values within the best one or two windows
/// (see [`CHROME_SHARE`]).
fn chrome_share(values: impl Iterator<Item = f32>) -> f32 {
    let mut hist = [0u32; BINS];
    let mut n = 0u32;
    for v in values {
        hist[((v / BIN) as usize).min(BINS - 1)] += 1;
        n += 1;
    }
    let window = |b: usize| -> u32 {
        hist[b.saturating_sub(1)..=(b + 1).min(BINS - 1)]
            .iter()
            .sum()
    };
    let (mut b1, mut c1) = (0, 0);
    for b in 0..BINS {
        let c = window(b);
        if c > c1 {
            (b1, c1) = (b, c);
        }
    }
    let c2 = (0..BINS)
        .filter(|&b| b.abs_diff(b1) > 2 * WINDOW)
        .map(window)
        .max()
        .unwrap_or(0);
    (c1 + c2) as f32 / n.max(1) as f32
}

/// Longest band of non-framing lines that trimming steps over inside a bar:
/// one JPEG block, the reach of the ringing around a caption's text, which
/// pushes a row or two at the text's edges just under [`CHROME_SHARE`].
const BRIDGE_LINES: usize = 8;
/// Lines of such a band must still have this share in one or two windows
/// (text with ringing, not picture).
const BRIDGE_SHARE: f32 = 0.8;
/// Framing lines that must follow such a band for it to be stepped over.
const BRIDGE_RUN: usize = 3;

/// How many lines to trim from one edge, at most `max`, given each line's
/// [`chrome_share`]: lines `0, 1, ...` while framing ([`CHROME_SHARE`]);
/// then, once a bar has been found at this edge (at least one framing line),
/// also a band of at most `bridge` lines that are nearly framing
/// ([`BRIDGE_SHARE`]) when [`BRIDGE_RUN`] framing lines follow it, and the
/// framing lines after those (a caption bar: background, text, background).
/// Without the step, text whose edges JPEG has blurred would end the bar
/// early.
fn trim_edge(max: usize, bridge: usize, share: impl Fn(usize) -> f32) -> usize {
    let is_frame = |i: usize| share(i) >= CHROME_SHARE;
    let mut n = 0;
    while n < max && is_frame(n) {
        n += 1;
    }
    while n > 0 && n < max {
        let mut run = 0;
        let mut next = None;
        for i in n..(n + bridge + BRIDGE_RUN).min(max) {
            let s = share(i);
            if s >= CHROME_SHARE {
                run += 1;
                if run == BRIDGE_RUN {
                    next = Some(i + 1);
                    break;
                }
            } else if s >= BRIDGE_SHARE && run == 0 {
                continue;
            } else {
                break;
            }
        }
        let Some(mut m) = next else { break };
        while m < max && is_frame(m) {
            m += 1;
        }
        n = m;
    }
    n
}

fn content_region_plane(luma: &[f32], w: usize, h: usize) -> Option<Rect> {
    if w < MIN_EXTRA_DIM || h < MIN_EXTRA_DIM {
        return None;
    }
    let min_w = ((w as f32 * MIN_REGION_SHARE).ceil() as usize).max(MIN_EXTRA_DIM);
    let min_h = ((h as f32 * MIN_REGION_SHARE).ceil() as usize).max(MIN_EXTRA_DIM);
    let row = |y: usize, x0: usize, x1: usize| luma[y * w + x0..y * w + x1].iter().copied();
    let col = |x: usize, y0: usize, y1: usize| (y0..y1).map(move |y| luma[y * w + x]);
    // Rows are trimmed within the columns kept, columns within the rows kept,
    // each time afresh from the image's edges, until neither changes: a
    // status bar spans the margins' columns and a margin spans the caption's
    // rows, and starting afresh means rows are finally judged without the
    // margins (as in the unframed original).
    let (mut x0, mut x1, mut y0, mut y1) = (0, w, 0, h);
    for _ in 0..4 {
        let before = (x0, x1, y0, y1);
        let top = trim_edge(h - min_h, BRIDGE_LINES, |i| chrome_share(row(i, x0, x1)));
        let bottom = trim_edge(h - min_h - top, BRIDGE_LINES, |i| {
            chrome_share(row(h - 1 - i, x0, x1))
        });
        (y0, y1) = (top, h - bottom);
        let left = trim_edge(w - min_w, BRIDGE_LINES, |i| chrome_share(col(i, y0, y1)));
        let right = trim_edge(w - min_w - left, BRIDGE_LINES, |i| {
            chrome_share(col(w - 1 - i, y0, y1))
        });
        (x0, x1) = (left, w - right);
        if (x0, x1, y0, y1) == before {
            break;
        }
    }
    let r = Rect {
        x: x0,
        y: y0,
        width: x1 - x0,
        height: y1 - y0,
    };
    // Trimming down to the minimum means the picture itself is flat, not framed.
    let whole = r.width == w && r.height == h;
    let flat = r.width <= min_w || r.height <= min_h;
    (!whole && !flat).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic textured picture (no flat rows or columns).
    fn picture(w: usize, h: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(w * h * 3);
        let mut s = 0x2545_f491_u32;
        for y in 0..h {
            for x in 0..w {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                let base = (x * 7 + y * 3) % 160 + (x / 9 + y / 13) % 50;
                let n = (s % 40) as usize;
                v.extend_from_slice(&[
                    (base + n) as u8,
                    (base / 2 + n) as u8,
                    (200 - base / 2) as u8,
                ]);
            }
        }
        v
    }

    /// `img` (w×h) placed at (x, y) on a `cw`×`ch` canvas of `bg`.
    fn framed(
        img: &[u8],
        (w, h): (usize, usize),
        (cw, ch): (usize, usize),
        (x, y): (usize, usize),
        bg: [u8; 3],
    ) -> Vec<u8> {
        let mut out: Vec<u8> = std::iter::repeat_n(bg, cw * ch).flatten().collect();
        for r in 0..h {
            let dst = ((y + r) * cw + x) * 3;
            out[dst..dst + w * 3].copy_from_slice(&img[r * w * 3..(r + 1) * w * 3]);
        }
        out
    }

    #[test]
    fn plain_picture_has_no_region_and_a_bit_exact_full_hash() {
        let (w, h) = (320, 240);
        let p = picture(w, h);
        let m = multi_hash_rgb(&p, w, h);
        assert_eq!(m.full(), crate::hash_rgb(&p, w, h));
        assert!(m.get(HashKind::Region).is_none());
        let kinds: Vec<_> = m.hashes.iter().map(|k| k.kind).collect();
        let mut expected = HashKind::ALL.to_vec();
        expected.retain(|&k| k != HashKind::Region && !k.is_pdata_variant());
        assert_eq!(kinds, expected);
    }

    #[test]
    fn letterbox_caption_and_screenshot_frames_are_found_exactly() {
        let (w, h) = (300, 200);
        let p = picture(w, h);
        // Letterbox: black bars above and below.
        let lb = framed(&p, (w, h), (w, h + 60), (0, 30), [0, 0, 0]);
        assert_eq!(
            content_region_rgb(&lb, w, h + 60),
            Some(Rect {
                x: 0,
                y: 30,
                width: w,
                height: h
            })
        );
        // Caption: white bar below with a line of black "words".
        let mut cap = framed(&p, (w, h), (w, h + 30), (0, 0), [255, 255, 255]);
        for y in h + 10..h + 20 {
            for x in (15..w - 15).filter(|x| x % 25 < 18) {
                cap[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&[0, 0, 0]);
            }
        }
        assert_eq!(
            content_region_rgb(&cap, w, h + 30),
            Some(Rect {
                x: 0,
                y: 0,
                width: w,
                height: h
            })
        );
        // Screenshot: dark status bar, blue title bar, grey margins.
        let (cw, ch) = (w + 40, h + 10 + 20 + 20);
        let mut shot = framed(&p, (w, h), (cw, ch), (20, 30), [238, 238, 238]);
        for y in 0..30 {
            let c = if y < 10 { [20, 20, 20] } else { [33, 150, 243] };
            for x in 0..cw {
                shot[(y * cw + x) * 3..(y * cw + x) * 3 + 3].copy_from_slice(&c);
            }
        }
        assert_eq!(
            content_region_rgb(&shot, cw, ch),
            Some(Rect {
                x: 20,
                y: 30,
                width: w,
                height: h
            })
        );
        // The region hash of the screenshot is the hash of the same pixels
        // the original's extras are computed from.
        let orig = multi_hash_rgb(&p, w, h);
        let copy = multi_hash_rgb(&shot, cw, ch);
        let region = copy.get(HashKind::Region).expect("region found");
        assert!(orig.full().hash.distance(&copy.full().hash) > 31);
        assert!(region.hash.distance(&orig.full().hash) <= 31);
        let n = copy.nearest(&orig, Pairing::QueryExtras, 0).expect("pairs");
        assert_eq!(n.query, HashKind::Region);
        assert_eq!(n.bank, HashKind::Full);
    }

    /// A caption whose text rows have soft edges (a third, mid-grey tone on
    /// one word pixel in five, as JPEG ringing or anti-aliasing leaves them),
    /// framed as a screenshot: those rows fail the framing test, and
    /// the bar is still stepped over.
    #[test]
    fn a_caption_with_soft_text_edges_inside_a_screenshot_is_trimmed() {
        let (w, h) = (320, 240);
        let p = picture(w, h);
        let bar = 30;
        let mut cap = framed(&p, (w, h), (w, h + bar), (0, 0), [255, 255, 255]);
        let (t0, t1) = (h + 10, h + 20);
        for y in t0 - 1..t1 + 1 {
            for x in (w / 20..w - w / 20).filter(|x| x % 23 < 15) {
                let edge = y == t0 - 1 || y == t1;
                let c = if edge && x % 5 == 0 {
                    [128, 128, 128]
                } else {
                    [0, 0, 0]
                };
                cap[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&c);
            }
        }
        let (cw, ch) = (w + 40, h + bar + 30 + 20);
        let mut shot = framed(&cap, (w, h + bar), (cw, ch), (20, 30), [238, 238, 238]);
        for y in 0..30 {
            let c = if y < 10 { [20, 20, 20] } else { [33, 150, 243] };
            for x in 0..cw {
                shot[(y * cw + x) * 3..(y * cw + x) * 3 + 3].copy_from_slice(&c);
            }
        }
        // The soft edge rows are not framing by themselves (three tones)...
        let luma = luma_from_rgb(&shot, cw, ch);
        let edge_row = |y: usize| luma[y * cw + 20..y * cw + 20 + w].iter().copied();
        for y in [30 + t0 - 1, 30 + t1] {
            assert!(!is_chrome(edge_row(y)), "row {y}");
            assert!(chrome_share(edge_row(y)) >= BRIDGE_SHARE, "row {y}");
        }
        // ...yet the region is exactly the picture.
        assert_eq!(
            content_region_rgb(&shot, cw, ch),
            Some(Rect {
                x: 20,
                y: 30,
                width: w,
                height: h
            })
        );
    }

    #[test]
    fn trim_edge_steps_over_one_band_only_inside_a_bar() {
        // f = framing line, t = nearly framing (text with ringing), p =
        // picture line; the bar is 2 lines, a 3-line text band, then 3
        // lines of background.
        let lines = |s: &'static str| {
            move |i: usize| match s.as_bytes()[i] {
                b'f' => 1.0,
                b't' => 0.85,
                _ => 0.3,
            }
        };
        assert_eq!(trim_edge(12, 4, lines("ffttttfffppp")), 9);
        // No bar at the edge: nothing is stepped over.
        assert_eq!(trim_edge(12, 4, lines("tffttpffpppp")), 0);
        // A band of picture lines is not stepped over.
        assert_eq!(trim_edge(12, 4, lines("fftptfffpppp")), 2);
        // A band longer than the bridge ends the bar.
        assert_eq!(trim_edge(12, 2, lines("fftttfffpppp")), 2);
        // Fewer than BRIDGE_RUN framing lines after the band end it too.
        assert_eq!(trim_edge(12, 4, lines("fftttffppppp")), 2);
        // Never past `max`.
        assert_eq!(trim_edge(6, 4, lines("fftttfffpppp")), 2);
    }

    #[test]
    fn a_flat_image_is_not_a_region() {
        let (w, h) = (100, 80);
        let flat = vec![128u8; w * h * 3];
        assert_eq!(content_region_rgb(&flat, w, h), None);
        let tiny = picture(20, 20);
        let m = multi_hash_rgb(&tiny, 20, 20);
        assert_eq!(m.hashes.len(), 1);
    }

    #[test]
    fn centre_crop_of_the_original_matches_a_cropped_copy() {
        let (w, h) = (400, 300);
        let p = picture(w, h);
        // 5 % off each edge: the 90 % centred crop.
        let (dx, dy) = (20, 15);
        let (cw, ch) = (w - 2 * dx, h - 2 * dy);
        let mut crop = Vec::with_capacity(cw * ch * 3);
        for y in dy..dy + ch {
            crop.extend_from_slice(&p[(y * w + dx) * 3..(y * w + dx + cw) * 3]);
        }
        let bank = multi_hash_rgb(&p, w, h);
        let query = multi_hash_rgb(&crop, cw, ch);
        let n = query.nearest(&bank, Pairing::Both, 0).expect("pairs");
        assert_eq!((n.query, n.bank), (HashKind::Full, HashKind::Centre90));
        assert!(n.distance <= 31, "distance {}", n.distance);
    }

    #[test]
    fn only_the_kinds_asked_for_are_computed_and_they_equal_the_full_set() {
        let (w, h) = (300, 200);
        let p = picture(w, h);
        let shot = framed(&p, (w, h), (w + 40, h + 60), (20, 30), [238, 238, 238]);
        let all = MultiHash::of_rgb(&shot, w + 40, h + 60, KindSet::ALL);
        assert_eq!(all, multi_hash_rgb(&shot, w + 40, h + 60));
        assert_eq!(all.kinds(), KindSet::ALL.with(HashKind::Full));
        let want = KindSet::of(&[HashKind::CornerBottomRight, HashKind::RotateCw2]);
        let some = MultiHash::of_rgb(&shot, w + 40, h + 60, want);
        let kinds: Vec<_> = some.hashes.iter().map(|k| k.kind).collect();
        assert_eq!(
            kinds,
            [
                HashKind::Full,
                HashKind::CornerBottomRight,
                HashKind::RotateCw2
            ]
        );
        // Each is the same hash as in the full set (crops are of the region
        // even when the region's own hash is not asked for).
        for k in &some.hashes {
            assert_eq!(Some(k), all.get(k.kind));
        }
        let none = MultiHash::of_rgb(&shot, w + 40, h + 60, KindSet::NONE);
        assert_eq!(none.hashes.len(), 1);
        assert_eq!(none.full(), all.full());
    }

    #[test]
    fn kind_sets() {
        use HashKind::*;
        assert_eq!(KindSet::ALL.len(), 9);
        assert!(!KindSet::ALL.contains(Full));
        assert_eq!(KindSet::of(&[Full]), KindSet::NONE);
        assert_eq!(KindSet::BANK_DEFAULT.len(), 8);
        assert!(!KindSet::BANK_DEFAULT.contains(Centre80));
        // A bank with rotations and one corner: the query needs its region,
        // centre-90 (against the rotations) and that corner.
        let q = KindSet::of(&[RotateCw2, CornerTopLeft]).query_side();
        assert_eq!(q, KindSet::of(&[Region, Centre90, CornerTopLeft]));
        assert_eq!(KindSet::NONE.query_side(), KindSet::of(&[Region]));
        assert_eq!(
            KindSet::BANK_DEFAULT.query_side(),
            KindSet::of(&[
                Region,
                Centre90,
                CornerTopLeft,
                CornerTopRight,
                CornerBottomLeft,
                CornerBottomRight
            ])
        );
        assert_eq!(KindSet::BANK_DEFAULT.to_string().split(',').count(), 8);
        let parsed: KindSet = "region,centre-90"
            .split(',')
            .map(|s| s.parse::<HashKind>().expect("kind"))
            .collect();
        assert_eq!(parsed, KindSet::of(&[Region, Centre90]));
        // The pdata variants: parsed and held by sets, never in ALL, the
        // default bank set or any query side.
        assert_eq!(KindSet::PDATA_VARIANTS, KindSet::of(&[Crop15, Scale03]));
        assert_eq!(KindSet::PDATA_VARIANTS.to_string(), "crop-1.5,scale-0.3");
        let both = KindSet::BANK_DEFAULT.union(KindSet::PDATA_VARIANTS);
        assert_eq!(both.len(), 10);
        assert_eq!(both.query_side(), KindSet::BANK_DEFAULT.query_side());
        for k in KindSet::PDATA_VARIANTS.iter() {
            assert!(k.is_pdata_variant());
            assert!(!KindSet::ALL.contains(k) && !KindSet::BANK_DEFAULT.contains(k));
        }
        assert_eq!(
            KindSet::ALL.iter().filter(|k| k.is_pdata_variant()).count(),
            0
        );
    }

    #[test]
    fn pairing_rules() {
        use HashKind::*;
        assert!(Pairing::FullOnly.allows(Full, Full));
        assert!(!Pairing::FullOnly.allows(Region, Full));
        assert!(Pairing::QueryExtras.allows(Region, Full));
        assert!(!Pairing::QueryExtras.allows(Centre90, Full));
        assert!(Pairing::Both.allows(Centre90, RotateCw2));
        assert!(!Pairing::Both.allows(RotateCw2, Centre80));
        assert!(!Pairing::QueryExtras.allows(Full, Region));
        assert!(Pairing::Both.allows(Full, Centre80));
        assert!(Pairing::Both.allows(CornerTopLeft, CornerTopLeft));
        assert!(!Pairing::Both.allows(CornerTopLeft, Centre90));
        for k in HashKind::ALL {
            assert_eq!(k.as_str().parse::<HashKind>(), Ok(k));
            for p in [Pairing::FullOnly, Pairing::QueryExtras, Pairing::Both] {
                for v in [Crop15, Scale03] {
                    assert!(!p.allows(k, v) && !p.allows(v, k), "{k} {v}");
                }
            }
        }
    }

    /// The pdata variants: appended after the other extras, equal to the
    /// plain hash of the crop or resize done here by hand (the evaluation's
    /// own computation is compared bit for bit in bulwark-eval's
    /// `private::tests`), taken of the image scaled to 1024 when larger, and
    /// nothing changes for the other kinds.
    #[test]
    fn pdata_variants_are_the_hashes_of_the_crop_and_the_resize() {
        use HashKind::*;
        use image::imageops::{self, FilterType};
        let (w, h) = (400, 300);
        let p = picture(w, h);
        let kinds = KindSet::BANK_DEFAULT.union(KindSet::PDATA_VARIANTS);
        let m = MultiHash::of_rgb(&p, w, h, kinds);
        let plain = MultiHash::of_rgb(&p, w, h, KindSet::BANK_DEFAULT);
        assert_eq!(m.hashes[..plain.hashes.len()], plain.hashes[..]);
        let tail: Vec<_> = m.hashes[plain.hashes.len()..]
            .iter()
            .map(|k| k.kind)
            .collect();
        assert_eq!(tail, [Crop15, Scale03]);
        let img = image::RgbImage::from_raw(w as u32, h as u32, p.clone()).expect("rgb");
        // 1.5 % of 400 = 6, of 300 = 4.5 → 5 (rounded half away from zero).
        let c = imageops::crop_imm(&img, 6, 5, 388, 290).to_image();
        let crop = m.get(Crop15).expect("crop");
        assert_eq!(crop.hash, crate::hash_rgb(c.as_raw(), 388, 290).hash);
        assert_eq!((crop.rect.x, crop.rect.y, crop.rect.width), (6, 5, 388));
        let r = imageops::resize(&img, 120, 90, FilterType::Triangle);
        assert_eq!(
            m.get(Scale03).expect("scale").hash,
            crate::hash_rgb(r.as_raw(), 120, 90).hash
        );
        // Only the variants asked for; none for a tiny image.
        let one = MultiHash::of_rgb(&p, w, h, KindSet::of(&[Scale03]));
        assert_eq!(one.kinds(), KindSet::of(&[Full, Scale03]));
        let tiny = picture(20, 20);
        assert_eq!(MultiHash::of_rgb(&tiny, 20, 20, kinds).hashes.len(), 1);
        // Larger than 1024: first scaled to 1024 × 768.
        let (bw, bh) = (1600, 1200);
        let big = picture(bw, bh);
        let bimg = image::RgbImage::from_raw(bw as u32, bh as u32, big.clone()).expect("rgb");
        let s = imageops::resize(&bimg, 1024, 768, FilterType::Triangle);
        let r = imageops::resize(&s, 307, 230, FilterType::Triangle);
        let m = MultiHash::of_rgb(&big, bw, bh, KindSet::PDATA_VARIANTS);
        assert_eq!(
            m.get(Scale03).expect("scale").hash,
            crate::hash_rgb(r.as_raw(), 307, 230).hash
        );
        // Grey images go through RGB (v, v, v).
        let grey: Vec<u8> = p.chunks_exact(3).map(|c| c[0]).collect();
        let rgb: Vec<u8> = grey.iter().flat_map(|&v| [v, v, v]).collect();
        assert_eq!(
            MultiHash::of_luma(&grey, w, h, KindSet::PDATA_VARIANTS).extras(),
            MultiHash::of_rgb(&rgb, w, h, KindSet::PDATA_VARIANTS).extras()
        );
    }
}
