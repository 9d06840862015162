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
pub const EXTRA_HASH_SIDE: usize = 256;

/// A content region smaller than this share of either side of the image is
/// not used (the image is mostly flat, not framed).
pub const MIN_REGION_SHARE: f32 = 0.3;

/// Side of the corner crops, as a share of the region's side.
pub const CORNER_SHARE: f32 = 0.7;

/// The small rotations the bank side also hashes (degrees, both ways).
pub const ROTATION_DEGREES: f32 = 2.0;

/// Images with a side under this many pixels get no extras.
pub const MIN_EXTRA_DIM: usize = 32;

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
}

impl HashKind {
    /// Every kind, in [`MultiHash`] order.
    pub const ALL: [HashKind; 10] = [
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
        }
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
    /// Whether a query hash of kind `q` is compared with a bank hash of kind `b`.
    pub fn allows(self, q: HashKind, b: HashKind) -> bool {
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

/// The full-image hash and extras of an interleaved RGB buffer.
///
/// # Panics
/// If the buffer is shorter than `width * height * 3`.
pub fn multi_hash_rgb(rgb: &[u8], width: usize, height: usize) -> MultiHash {
    multi_hash_plane(luma_from_rgb(rgb, width, height), width, height)
}

/// The full-image hash and extras of a grey buffer.
///
/// # Panics
/// If the buffer is shorter than `width * height`.
pub fn multi_hash_luma(grey: &[u8], width: usize, height: usize) -> MultiHash {
    multi_hash_plane(luma_from_grey(grey, width, height), width, height)
}

/// The full-image hash and extras of decoded pixels (the full-image hash is
/// [`crate::hash_image`]'s in the same mode).
pub fn multi_hash_image(img: &Image, mode: Mode) -> MultiHash {
    let img = crate::prepared(img, mode);
    let (w, h) = (img.width as usize, img.height as usize);
    if img.channels == 1 {
        multi_hash_luma(&img.pixels, w, h)
    } else {
        multi_hash_rgb(&img.pixels, w, h)
    }
}

/// Decodes untrusted bytes within `limits` and computes their [`MultiHash`].
pub fn multi_hash_bytes(bytes: &[u8], mode: Mode, limits: &Limits) -> Result<MultiHash, Error> {
    Ok(multi_hash_image(&crate::decode(bytes, limits)?, mode))
}

/// One luminance plane shared by the extras and, last, the full hash (which
/// consumes it as scratch space, so no copy is made).
fn multi_hash_plane(luma: Vec<f32>, w: usize, h: usize) -> MultiHash {
    let whole = Rect {
        x: 0,
        y: 0,
        width: w,
        height: h,
    };
    let mut extras = Vec::new();
    if w >= MIN_EXTRA_DIM && h >= MIN_EXTRA_DIM {
        let base = match content_region_plane(&luma, w, h) {
            Some(r) => {
                extras.push(kind_hash(&luma, w, HashKind::Region, r));
                r
            }
            None => whole,
        };
        for (kind, rect) in crops(base) {
            extras.push(kind_hash(&luma, w, kind, rect));
        }
        for (kind, deg) in [
            (HashKind::RotateCw2, ROTATION_DEGREES),
            (HashKind::RotateCcw2, -ROTATION_DEGREES),
        ] {
            let h = hash_rotated(&luma, w, base, deg);
            extras.push(KindHash {
                kind,
                hash: h.hash,
                quality: h.quality,
                rect: base,
            });
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

fn kind_hash(luma: &[f32], stride: usize, kind: HashKind, rect: Rect) -> KindHash {
    let h = hash_rect(luma, stride, rect);
    KindHash {
        kind,
        hash: h.hash,
        quality: h.quality,
        rect,
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

/// PDQ of a rectangle of the plane, box-averaged by the integer factor that
/// brings its long side near [`EXTRA_HASH_SIDE`].
fn hash_rect(luma: &[f32], stride: usize, r: Rect) -> Hashed {
    let (plane, ow, oh) = reduce(luma, stride, r);
    hash_luma_plane(plane, ow, oh)
}

/// A rectangle of the plane box-averaged by the integer factor that brings
/// its long side near [`EXTRA_HASH_SIDE`] (remainder pixels at the right and
/// bottom edges are dropped).
fn reduce(luma: &[f32], stride: usize, r: Rect) -> (Vec<f32>, usize, usize) {
    let f = (r.width.max(r.height) / EXTRA_HASH_SIDE).max(1);
    let (ow, oh) = (r.width / f, r.height / f);
    let mut out = vec![0f32; ow * oh];
    let norm = 1.0 / (f * f) as f32;
    for (oy, orow) in out.chunks_exact_mut(ow).enumerate() {
        for dy in 0..f {
            let start = (r.y + oy * f + dy) * stride + r.x;
            let row = &luma[start..start + ow * f];
            for (o, block) in orow.iter_mut().zip(row.chunks_exact(f)) {
                *o += block.iter().sum::<f32>();
            }
        }
        if f > 1 {
            for o in orow.iter_mut() {
                *o *= norm;
            }
        }
    }
    (out, ow, oh)
}

/// The rectangle's reduced plane turned by `deg` about its centre (bilinear,
/// edge samples clamped), then its centred 90 % crop, hashed.
fn hash_rotated(luma: &[f32], stride: usize, r: Rect, deg: f32) -> Hashed {
    let (plane, w, h) = reduce(luma, stride, r);
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
fn is_chrome(values: impl Iterator<Item = f32>) -> bool {
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
    (c1 + c2) as f32 >= CHROME_SHARE * n as f32
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
        let (mut ny0, mut ny1) = (0, h);
        while ny1 - ny0 > min_h && is_chrome(row(ny0, x0, x1)) {
            ny0 += 1;
        }
        while ny1 - ny0 > min_h && is_chrome(row(ny1 - 1, x0, x1)) {
            ny1 -= 1;
        }
        (y0, y1) = (ny0, ny1);
        let (mut nx0, mut nx1) = (0, w);
        while nx1 - nx0 > min_w && is_chrome(col(nx0, y0, y1)) {
            nx0 += 1;
        }
        while nx1 - nx0 > min_w && is_chrome(col(nx1 - 1, y0, y1)) {
            nx1 -= 1;
        }
        (x0, x1) = (nx0, nx1);
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
        expected.retain(|&k| k != HashKind::Region);
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
        }
    }
}
