//! The PDQ core: luminance, Jarosz box-filter downscale to 64×64, quality,
//! 16×16 DCT, median threshold, and the eight dihedral hashes.
//!
//! Every floating-point operation happens in `f32`, in the order the reference
//! (facebook/ThreatExchange `pdq/cpp`) performs it, so hashes are bit-exact.
//! Rust never contracts `a * b + c` into a fused multiply-add, so the no-FMA
//! requirement holds on every target. Vectorised loops below keep each output
//! element's own sequence of operations unchanged: they only run several
//! independent sequences side by side.

// Index loops mirror the reference's loops, which makes the order of float
// operations easy to check against it.
#![allow(clippy::needless_range_loop)]

use std::sync::OnceLock;

use crate::hash::PdqHash;

/// A PDQ hash with its quality (0..=100; below 50 is commonly dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hashed {
    /// The hash.
    pub hash: PdqHash,
    /// The reference's gradient-sum quality metric, 0..=100.
    pub quality: u32,
}

/// The eight dihedral hashes of one image and its quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DihedralHashes {
    /// In order: original, rotate 90, rotate 180, rotate 270, flip x, flip y,
    /// flip about the main diagonal (flipplus1), flip about the anti-diagonal
    /// (flipminus1) — the reference's order and names.
    pub hashes: [PdqHash; 8],
    /// Quality, as for [`Hashed`].
    pub quality: u32,
}

/// Names of the dihedral variants, in [`DihedralHashes::hashes`] order.
pub const DIHEDRAL_NAMES: [&str; 8] = [
    "orig",
    "rot90",
    "rot180",
    "rot270",
    "flipx",
    "flipy",
    "flipplus1",
    "flipminus1",
];

/// Images smaller than this on either side hash to zero with quality 0.
pub const MIN_HASHABLE_DIM: usize = 5;

pub(crate) const LUMA_R: f32 = 0.299;
pub(crate) const LUMA_G: f32 = 0.587;
pub(crate) const LUMA_B: f32 = 0.114;

/// Pixels the core reads: interleaved RGB (luminance computed on the fly),
/// grey bytes, or a luminance plane already in `f32`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pixels<'a> {
    Rgb(&'a [u8]),
    Grey(&'a [u8]),
    Luma(&'a [f32]),
}

impl Pixels<'_> {
    /// Luminance of pixel `i` (row-major), as the reference computes it.
    #[inline(always)]
    pub(crate) fn at(self, i: usize) -> f32 {
        match self {
            Pixels::Rgb(p) => {
                LUMA_R * f32::from(p[3 * i])
                    + LUMA_G * f32::from(p[3 * i + 1])
                    + LUMA_B * f32::from(p[3 * i + 2])
            }
            Pixels::Grey(p) => f32::from(p[i]),
            Pixels::Luma(p) => p[i],
        }
    }

    /// The first `n` pixels (panics if the buffer is shorter).
    fn first(self, n: usize) -> Self {
        match self {
            Pixels::Rgb(p) => Pixels::Rgb(&p[..n * 3]),
            Pixels::Grey(p) => Pixels::Grey(&p[..n]),
            Pixels::Luma(p) => Pixels::Luma(&p[..n]),
        }
    }
}

/// PDQ hash of an interleaved RGB buffer (`width * height * 3` bytes).
///
/// # Panics
/// If the buffer is shorter than `width * height * 3`.
pub fn hash_rgb(rgb: &[u8], width: usize, height: usize) -> Hashed {
    plain(dct_of(Pixels::Rgb(rgb), width, height, true))
}

/// PDQ hash of a grey buffer (`width * height` bytes).
///
/// # Panics
/// If the buffer is shorter than `width * height`.
pub fn hash_luma(luma: &[u8], width: usize, height: usize) -> Hashed {
    plain(dct_of(Pixels::Grey(luma), width, height, true))
}

/// PDQ hash of a luminance plane already in `f32`.
pub(crate) fn hash_luma_plane(luma: Vec<f32>, width: usize, height: usize) -> Hashed {
    plain(dct_of(Pixels::Luma(&luma), width, height, true))
}

/// The hash of a DCT; images under the minimum size hash to zero, quality 0.
fn plain(dct: Option<(Dct16, u32)>) -> Hashed {
    match dct {
        Some((d, quality)) => Hashed {
            hash: bits(&d),
            quality,
        },
        None => Hashed {
            hash: PdqHash::ZERO,
            quality: 0,
        },
    }
}

/// The eight dihedral hashes of an interleaved RGB buffer, computed from the
/// DCT coefficients (no re-hashing of transformed images).
pub fn hash_rgb_dihedral(rgb: &[u8], width: usize, height: usize) -> DihedralHashes {
    dihedral(dct_of(Pixels::Rgb(rgb), width, height, false))
}

/// The eight dihedral hashes of a grey buffer.
pub fn hash_luma_dihedral(luma: &[u8], width: usize, height: usize) -> DihedralHashes {
    dihedral(dct_of(Pixels::Grey(luma), width, height, false))
}

/// Luminance `Y = 0.299 R + 0.587 G + 0.114 B` per pixel, as the reference computes it.
pub(crate) fn luma_from_rgb(rgb: &[u8], width: usize, height: usize) -> Vec<f32> {
    luma_plane(Pixels::Rgb(rgb), width * height)
}

pub(crate) fn luma_from_grey(grey: &[u8], width: usize, height: usize) -> Vec<f32> {
    luma_plane(Pixels::Grey(grey), width * height)
}

fn luma_plane(px: Pixels<'_>, n: usize) -> Vec<f32> {
    let px = px.first(n);
    let mut out = vec![0f32; n];
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: `avx2()` is true only where runtime detection saw AVX2.
        #[allow(unsafe_code)]
        unsafe {
            crate::simd::luma_plane(px, &mut out);
        }
        return out;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = px.at(i);
    }
    out
}

pub(crate) type Dct16 = [[f32; 16]; 16];

/// Downscale, quality and DCT. `skip_blur_at_64` mirrors the reference's plain
/// hashing path, which copies a 64×64 input straight through; its dihedral
/// path always filters.
pub(crate) fn dct_of(
    px: Pixels<'_>,
    width: usize,
    height: usize,
    skip_blur_at_64: bool,
) -> Option<(Dct16, u32)> {
    if width < MIN_HASHABLE_DIM || height < MIN_HASHABLE_DIM {
        return None;
    }
    let px = px.first(width * height);
    let small = if skip_blur_at_64 && width == 64 && height == 64 {
        let mut small = [[0f32; 64]; 64];
        for (i, row) in small.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = px.at(i * 64 + j);
            }
        }
        small
    } else {
        downscale(px, width, height)
    };
    let quality = quality(&small);
    Some((dct64_to_16(&small), quality))
}

/// Whether the AVX2 kernels run: the CPU has AVX2 and the environment
/// variable `BULWARK_PDQ_SCALAR` is unset (set, it forces the portable path,
/// e.g. to run the conformance tests on it).
#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    static AVX2: OnceLock<bool> = OnceLock::new();
    *AVX2.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2")
            && std::env::var_os("BULWARK_PDQ_SCALAR").is_none()
    })
}

/// Rows per strip: eight rows' running sums advance as one vector.
const S: usize = 8;

/// The reference's Jarosz filter (two box-filter passes along rows and down
/// columns, each pass rows then columns) and decimation to 64×64, with the
/// AVX2 kernels where the CPU has them. Same bits either way.
fn downscale(px: Pixels<'_>, w: usize, h: usize) -> [[f32; 64]; 64] {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: `avx2()` is true only where runtime detection saw AVX2.
        #[allow(unsafe_code)]
        let small = unsafe { downscale_avx2(px, w, h) };
        return small;
    }
    downscale_with::<false>(px, w, h)
}

/// [`downscale_with`] compiled for AVX2: the element-wise loops vectorise
/// eight lanes wide and the strip kernels are `simd`'s.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn downscale_avx2(px: Pixels<'_>, w: usize, h: usize) -> [[f32; 64]; 64] {
    downscale_with::<true>(px, w, h)
}

/// `strip[c·8 + k]` = pixel (`r0 + k`, `c`).
#[inline(always)]
fn fill_strip<const AVX: bool>(px: Pixels<'_>, cols: usize, r0: usize, strip: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if AVX {
        // SAFETY: AVX is true only inside `downscale_avx2`, which runs after
        // runtime detection of AVX2.
        #[allow(unsafe_code)]
        unsafe {
            crate::simd::fill_strip(px, cols, r0, strip);
        }
        return;
    }
    fill_strip_scalar(px, cols, r0, strip);
}

fn fill_strip_scalar(px: Pixels<'_>, cols: usize, r0: usize, strip: &mut [f32]) {
    for k in 0..S {
        for c in 0..cols {
            strip[c * S + k] = px.at((r0 + k) * cols + c);
        }
    }
}

/// Row `k` of `rows` (eight rows of `cols`) gets `strip[c·8 + k]`.
#[inline(always)]
fn strip_to_rows<const AVX: bool>(strip: &[f32], cols: usize, rows: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if AVX {
        // SAFETY: as in `fill_strip`.
        #[allow(unsafe_code)]
        unsafe {
            crate::simd::strip_to_rows(strip, cols, rows);
        }
        return;
    }
    for k in 0..S {
        for c in 0..cols {
            rows[k * cols + c] = strip[c * S + k];
        }
    }
}

/// The streamed filter. The first row pass runs on strips of eight rows
/// (transposed so the eight running sums are one vector) into a ring of
/// rows just deep enough for the column pass, which reads row `r` and row
/// `r - window`; the column pass's output rows go, eight at a time, straight
/// into the second row pass, which keeps its running sums over every pixel
/// but writes (and divides) only at the 64 sampled columns; the second
/// column pass runs over those 64 columns alone. No full-size buffer is
/// written, and every value that reaches the hash is computed by the
/// reference's operations in the reference's order.
#[inline(always)]
fn downscale_with<const AVX: bool>(px: Pixels<'_>, w: usize, h: usize) -> [[f32; 64]; 64] {
    let wr = jarosz_window(w, 64);
    let wc = jarosz_window(h, 64);
    let mut rows = FirstRowPass::new(px, w, h, wr, wc);
    let mut next = SecondRowPass::new(w, h, wr);

    // The first column pass over the ring, its rows handed on eight at a time.
    let mut group = vec![0f32; S * w];
    let (p1, p2, p3, p4) = phases(h, wc);
    let mut sum = vec![0f32; w];
    let (mut li, mut ri, mut oi) = (0usize, 0usize, 0usize);
    let mut cur = 0u32;
    for _ in 0..p1 {
        rows.ensure::<AVX>(ri);
        for (s, &x) in sum.iter_mut().zip(rows.row(ri)) {
            *s += x;
        }
        cur += 1;
        ri += 1;
    }
    for _ in 0..p2 {
        rows.ensure::<AVX>(ri);
        cur += 1;
        let c = cur as f32;
        let o = &mut group[(oi % S) * w..(oi % S + 1) * w];
        for ((s, &x), o) in sum.iter_mut().zip(rows.row(ri)).zip(o) {
            *s += x;
            *o = *s / c;
        }
        ri += 1;
        oi += 1;
        if oi % S == 0 {
            next.take::<AVX>(&group, oi - S, S);
        }
    }
    let c = cur as f32;
    for _ in 0..p3 {
        rows.ensure::<AVX>(ri);
        let o = &mut group[(oi % S) * w..(oi % S + 1) * w];
        for (((s, &x), &y), o) in sum.iter_mut().zip(rows.row(ri)).zip(rows.row(li)).zip(o) {
            *s += x;
            *s -= y;
            *o = *s / c;
        }
        li += 1;
        ri += 1;
        oi += 1;
        if oi % S == 0 {
            next.take::<AVX>(&group, oi - S, S);
        }
    }
    for _ in 0..p4 {
        cur -= 1;
        let c = cur as f32;
        let o = &mut group[(oi % S) * w..(oi % S + 1) * w];
        for ((s, &y), o) in sum.iter_mut().zip(rows.row(li)).zip(o) {
            *s -= y;
            *o = *s / c;
        }
        li += 1;
        oi += 1;
        if oi % S == 0 {
            next.take::<AVX>(&group, oi - S, S);
        }
    }
    if oi % S != 0 {
        next.take::<AVX>(&group, oi - oi % S, oi % S);
    }

    // Second column pass over the 64 sampled columns, then the sampled rows.
    let mut compact2 = vec![0f32; h * 64];
    box_along_cols(&next.compact, &mut compact2, h, 64, wc);
    let mut small = [[0f32; 64]; 64];
    for (oi, orow) in small.iter_mut().enumerate() {
        let ii = sample_index(oi, h);
        orow.copy_from_slice(&compact2[ii * 64..ii * 64 + 64]);
    }
    small
}

/// The first row pass, computed on demand into a ring of rows deep enough
/// for the column pass (which reads rows `r` and `r - window`).
struct FirstRowPass<'a> {
    px: Pixels<'a>,
    w: usize,
    h: usize,
    wr: usize,
    cap: usize,
    ring: Vec<f32>,
    strip: Vec<f32>,
    done: Vec<f32>,
    /// Rows below this one are in the ring (the last `cap` of them).
    produced: usize,
}

impl<'a> FirstRowPass<'a> {
    fn new(px: Pixels<'a>, w: usize, h: usize, wr: usize, wc: usize) -> Self {
        // At least wc + 16 rows, a multiple of 8: a strip of eight new rows
        // never overwrites a row the column pass still subtracts.
        let cap = (wc / S + 3) * S;
        FirstRowPass {
            px,
            w,
            h,
            wr,
            cap,
            ring: vec![0f32; cap * w],
            strip: vec![0f32; w * S],
            done: vec![0f32; w * S],
            produced: 0,
        }
    }

    /// Computes rows up to `r` (eight at a time while eight remain).
    #[inline(always)]
    fn ensure<const AVX: bool>(&mut self, r: usize) {
        let w = self.w;
        while self.produced <= r {
            let slot = self.produced % self.cap;
            if self.produced + S <= self.h {
                fill_strip::<AVX>(self.px, w, self.produced, &mut self.strip);
                filter_strip::<AVX>(&self.strip, &mut self.done, w, self.wr);
                strip_to_rows::<AVX>(&self.done, w, &mut self.ring[slot * w..(slot + S) * w]);
                self.produced += S;
            } else {
                let row = &mut self.strip[..w];
                for (c, v) in row.iter_mut().enumerate() {
                    *v = self.px.at(self.produced * w + c);
                }
                box_along_rows(row, &mut self.ring[slot * w..(slot + 1) * w], 1, w, self.wr);
                self.produced += 1;
            }
        }
    }

    /// Row `r` of the first row pass (computed and not yet overwritten).
    #[inline(always)]
    fn row(&self, r: usize) -> &[f32] {
        let s = r % self.cap;
        &self.ring[s * self.w..(s + 1) * self.w]
    }
}

/// The second row pass, fed eight rows of the first column pass at a time;
/// writes `h × 64` (the sampled columns only).
struct SecondRowPass {
    w: usize,
    wr: usize,
    samples: [usize; 64],
    strip: Vec<f32>,
    compact: Vec<f32>,
}

impl SecondRowPass {
    fn new(w: usize, h: usize, wr: usize) -> Self {
        SecondRowPass {
            w,
            wr,
            samples: std::array::from_fn(|j| sample_index(j, w)),
            strip: vec![0f32; w * S],
            compact: vec![0f32; h * 64],
        }
    }

    /// Filters rows `g0..g0 + n` (in `group`, `n` ≤ 8 rows of `w`).
    #[inline(always)]
    fn take<const AVX: bool>(&mut self, group: &[f32], g0: usize, n: usize) {
        let w = self.w;
        let out = &mut self.compact[g0 * 64..(g0 + n) * 64];
        if n == S {
            fill_strip::<AVX>(Pixels::Luma(group), w, 0, &mut self.strip);
            filter_strip_sampled(&self.strip, out, w, self.wr, &self.samples);
        } else {
            box_along_rows_sampled(&group[..n * w], out, n, w, self.wr, &self.samples);
        }
    }
}

/// The reference's running-sum box filter along a strip of `len` positions,
/// eight independent lanes (eight image rows) per position.
#[inline(always)]
fn filter_strip<const AVX: bool>(strip: &[f32], out: &mut [f32], len: usize, w: usize) {
    #[cfg(target_arch = "x86_64")]
    if AVX {
        // SAFETY: as in `fill_strip`.
        #[allow(unsafe_code)]
        unsafe {
            crate::simd::filter_strip(strip, out, len, w);
        }
        return;
    }
    filter_strip_scalar(strip, out, len, w);
}

fn filter_strip_scalar(strip: &[f32], out: &mut [f32], len: usize, w: usize) {
    let (p1, p2, p3, p4) = phases(len, w);
    let half = (w + 2) / 2;
    let (v, _) = strip[..len * S].as_chunks::<S>();
    let (o, _) = out[..len * S].as_chunks_mut::<S>();
    let (o2, rest) = o.split_at_mut(p2);
    let (o3, o4) = rest.split_at_mut(p3);
    let mut sum = [0f32; S];
    // Phase 1: accumulate only.
    for x in &v[..p1] {
        for k in 0..S {
            sum[k] += x[k];
        }
    }
    // Phase 2: grow; the window holds `half + i` values at step i.
    for (i, (x, o)) in v[p1..p1 + p2].iter().zip(o2).enumerate() {
        let c = (half + i) as f32;
        for k in 0..S {
            sum[k] += x[k];
            o[k] = sum[k] / c;
        }
    }
    // Phase 3: slide a full window.
    let c = w as f32;
    for ((x, y), o) in v[w..len].iter().zip(&v[..p3]).zip(o3) {
        for k in 0..S {
            sum[k] += x[k];
            sum[k] -= y[k];
            o[k] = sum[k] / c;
        }
    }
    // Phase 4: shrink.
    for (t, (y, o)) in v[p3..p3 + p4].iter().zip(o4).enumerate() {
        let c = (w - t - 1) as f32;
        for k in 0..S {
            sum[k] -= y[k];
            o[k] = sum[k] / c;
        }
    }
}

/// [`filter_strip`] that writes only at the sampled positions, into eight
/// rows of 64 (`out[k·64 + j]` for lane k and sample j). Same operations.
#[inline(always)]
fn filter_strip_sampled(
    strip: &[f32],
    out: &mut [f32],
    len: usize,
    w: usize,
    samples: &[usize; 64],
) {
    let (p1, p2, p3, p4) = phases(len, w);
    let half = (w + 2) / 2;
    let (v, _) = strip[..len * S].as_chunks::<S>();
    let out = &mut out[..S * 64];
    let mut sum = [0f32; S];
    // The next sample's position (usize::MAX once all 64 are written).
    let mut next = 0usize;
    let mut at = samples[0];
    let mut emit = |sum: &[f32; S], c: f32, oi: usize, next: &mut usize, at: &mut usize| {
        while *next < 64 && samples[*next] == oi {
            for k in 0..S {
                out[k * 64 + *next] = sum[k] / c;
            }
            *next += 1;
        }
        *at = if *next < 64 {
            samples[*next]
        } else {
            usize::MAX
        };
    };
    for x in &v[..p1] {
        for k in 0..S {
            sum[k] += x[k];
        }
    }
    for (i, x) in v[p1..p1 + p2].iter().enumerate() {
        for k in 0..S {
            sum[k] += x[k];
        }
        if i == at {
            emit(&sum, (half + i) as f32, i, &mut next, &mut at);
        }
    }
    let c = w as f32;
    for (i, (x, y)) in v[w..len].iter().zip(&v[..p3]).enumerate() {
        for k in 0..S {
            sum[k] += x[k];
            sum[k] -= y[k];
        }
        if p2 + i == at {
            emit(&sum, c, p2 + i, &mut next, &mut at);
        }
    }
    for (t, y) in v[p3..p3 + p4].iter().enumerate() {
        for k in 0..S {
            sum[k] -= y[k];
        }
        if p2 + p3 + t == at {
            emit(&sum, (w - t - 1) as f32, p2 + p3 + t, &mut next, &mut at);
        }
    }
}

/// The reference's window size: half of the input pixels per output pixel, rounded up.
fn jarosz_window(old: usize, new: usize) -> usize {
    old.div_ceil(2 * new)
}

/// The four phases of the reference's running-sum box filter, for a vector of
/// `len` elements and window `w`: (accumulate only, grow+write, slide+write,
/// shrink+write) repetition counts.
pub(crate) fn phases(len: usize, w: usize) -> (usize, usize, usize, usize) {
    let half = (w + 2) / 2;
    (half - 1, w - half + 1, len - w, half - 1)
}

/// One box-filter pass along each row. Rows are independent running sums, so
/// eight rows advance together (eight independent dependency chains instead of
/// one); each row's sequence of adds, subtracts and divides is unchanged.
fn box_along_rows(input: &[f32], out: &mut [f32], rows: usize, cols: usize, w: usize) {
    const LANES: usize = 8;
    let (p1, p2, p3, p4) = phases(cols, w);
    let mut r0 = 0;
    while r0 < rows {
        let lanes = LANES.min(rows - r0);
        let mut sum = [0f32; LANES];
        let base = r0 * cols;
        let (mut li, mut ri, mut oi) = (0usize, 0usize, 0usize);
        let mut cur = 0u32;
        for _ in 0..p1 {
            for k in 0..lanes {
                sum[k] += input[base + k * cols + ri];
            }
            cur += 1;
            ri += 1;
        }
        for _ in 0..p2 {
            cur += 1;
            let c = cur as f32;
            for k in 0..lanes {
                sum[k] += input[base + k * cols + ri];
                out[base + k * cols + oi] = sum[k] / c;
            }
            ri += 1;
            oi += 1;
        }
        let c = cur as f32;
        for _ in 0..p3 {
            for k in 0..lanes {
                sum[k] += input[base + k * cols + ri];
                sum[k] -= input[base + k * cols + li];
                out[base + k * cols + oi] = sum[k] / c;
            }
            li += 1;
            ri += 1;
            oi += 1;
        }
        for _ in 0..p4 {
            cur -= 1;
            let c = cur as f32;
            for k in 0..lanes {
                sum[k] -= input[base + k * cols + li];
                out[base + k * cols + oi] = sum[k] / c;
            }
            li += 1;
            oi += 1;
        }
        r0 += lanes;
    }
}

/// One box-filter pass down each column, all columns at once: a row of running
/// sums is updated element-wise, which the compiler vectorises. Each column's
/// own sequence of operations is the reference's.
fn box_along_cols(input: &[f32], out: &mut [f32], rows: usize, cols: usize, w: usize) {
    let (p1, p2, p3, p4) = phases(rows, w);
    let mut sum = vec![0f32; cols];
    let row = |r: usize| &input[r * cols..(r + 1) * cols];
    let (mut li, mut ri, mut oi) = (0usize, 0usize, 0usize);
    let mut cur = 0u32;
    for _ in 0..p1 {
        for (s, &x) in sum.iter_mut().zip(row(ri)) {
            *s += x;
        }
        cur += 1;
        ri += 1;
    }
    for _ in 0..p2 {
        cur += 1;
        let c = cur as f32;
        let o = &mut out[oi * cols..(oi + 1) * cols];
        for ((s, &x), o) in sum.iter_mut().zip(row(ri)).zip(o) {
            *s += x;
            *o = *s / c;
        }
        ri += 1;
        oi += 1;
    }
    let c = cur as f32;
    for _ in 0..p3 {
        let o = &mut out[oi * cols..(oi + 1) * cols];
        for (((s, &x), &y), o) in sum.iter_mut().zip(row(ri)).zip(row(li)).zip(o) {
            *s += x;
            *s -= y;
            *o = *s / c;
        }
        li += 1;
        ri += 1;
        oi += 1;
    }
    for _ in 0..p4 {
        cur -= 1;
        let c = cur as f32;
        let o = &mut out[oi * cols..(oi + 1) * cols];
        for ((s, &y), o) in sum.iter_mut().zip(row(li)).zip(o) {
            *s -= y;
            *o = *s / c;
        }
        li += 1;
        oi += 1;
    }
}

/// The reference's decimation: output cell `o` of 64 samples input index
/// ⌊(o + 0.5) · n / 64⌋ (cell centres, computed in double precision).
fn sample_index(o: usize, n: usize) -> usize {
    ((o as f64 + 0.5) * n as f64 / 64.0) as usize
}

/// [`box_along_rows`] that writes only the columns in `samples` (ascending,
/// possibly repeated), into a `rows × 64` buffer. The running sums are the
/// same; only unused outputs are skipped.
fn box_along_rows_sampled(
    input: &[f32],
    out: &mut [f32],
    rows: usize,
    cols: usize,
    w: usize,
    samples: &[usize; 64],
) {
    const LANES: usize = 8;
    let (p1, p2, p3, p4) = phases(cols, w);
    // Window size in force when output column `oi` is written.
    let divisor = |oi: usize| -> f32 {
        let half = (w + 2) / 2;
        if oi < p2 {
            (half + oi) as f32
        } else if oi < p2 + p3 {
            w as f32
        } else {
            (w - (oi - p2 - p3) - 1) as f32
        }
    };
    let mut r0 = 0;
    while r0 < rows {
        let lanes = LANES.min(rows - r0);
        let mut sum = [0f32; LANES];
        let base = r0 * cols;
        let mut next = 0usize; // index into samples
        let mut emit = |sum: &[f32; LANES], oi: usize, next: &mut usize| {
            while *next < 64 && samples[*next] == oi {
                let c = divisor(oi);
                for k in 0..lanes {
                    out[(r0 + k) * 64 + *next] = sum[k] / c;
                }
                *next += 1;
            }
        };
        let (mut li, mut ri, mut oi) = (0usize, 0usize, 0usize);
        for _ in 0..p1 {
            for k in 0..lanes {
                sum[k] += input[base + k * cols + ri];
            }
            ri += 1;
        }
        for _ in 0..p2 {
            for k in 0..lanes {
                sum[k] += input[base + k * cols + ri];
            }
            emit(&sum, oi, &mut next);
            ri += 1;
            oi += 1;
        }
        for _ in 0..p3 {
            for k in 0..lanes {
                sum[k] += input[base + k * cols + ri];
                sum[k] -= input[base + k * cols + li];
            }
            emit(&sum, oi, &mut next);
            li += 1;
            ri += 1;
            oi += 1;
        }
        for _ in 0..p4 {
            for k in 0..lanes {
                sum[k] -= input[base + k * cols + li];
            }
            emit(&sum, oi, &mut next);
            li += 1;
            oi += 1;
        }
        r0 += lanes;
    }
}

/// The reference's gradient-sum quality metric on the 64×64 downsample.
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

/// The 16×64 DCT-II basis rows 1..=16 the reference uses, computed as it does
/// (double-precision cosine scaled by a single-precision factor, stored as f32).
fn dct_matrix() -> &'static [[f32; 64]; 16] {
    static M: OnceLock<[[f32; 64]; 16]> = OnceLock::new();
    M.get_or_init(|| {
        let scale = (2.0f64 / 64.0).sqrt() as f32;
        let mut m = [[0f32; 64]; 16];
        for (i, row) in m.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                let arg = (std::f64::consts::PI / 2.0 / 64.0) * (i + 1) as f64 * (2 * j + 1) as f64;
                *v = (f64::from(scale) * arg.cos()) as f32;
            }
        }
        m
    })
}

/// B = D A Dᵀ, summing over k in ascending order as the reference does.
fn dct64_to_16(a: &[[f32; 64]; 64]) -> Dct16 {
    let d = dct_matrix();
    let mut t = [[0f32; 64]; 16];
    for (ti, di) in t.iter_mut().zip(d) {
        // T[i][j] = Σ_k D[i][k] · A[k][j]: all j at once, k ascending per element.
        for (k, ak) in a.iter().enumerate() {
            let dik = di[k];
            for (tij, &akj) in ti.iter_mut().zip(ak) {
                *tij += dik * akj;
            }
        }
    }
    let mut b = [[0f32; 16]; 16];
    for (bi, ti) in b.iter_mut().zip(&t) {
        for (bij, dj) in bi.iter_mut().zip(d) {
            let mut s = 0f32;
            for k in 0..64 {
                s += ti[k] * dj[k];
            }
            *bij = s;
        }
    }
    b
}

/// Bit (i·16 + j) is set where coefficient (i, j) exceeds the median.
/// The 256 coefficients row by row, and their median as the reference takes
/// it: its Torben median returns the 128th smallest of 256 values (the lower
/// median), an exact order statistic.
pub(crate) fn flat_and_median(d: &Dct16) -> ([f32; 256], f32) {
    let mut flat = [0f32; 256];
    for (i, row) in d.iter().enumerate() {
        flat[i * 16..i * 16 + 16].copy_from_slice(row);
    }
    let mut s = flat;
    let (_, m, _) = s.select_nth_unstable_by(127, f32::total_cmp);
    (flat, *m)
}

fn bits(d: &Dct16) -> PdqHash {
    let (flat, median) = flat_and_median(d);
    let mut h = PdqHash::ZERO;
    for (k, &v) in flat.iter().enumerate() {
        if v > median {
            h.set_bit(k);
        }
    }
    h
}

fn dihedral(dct: Option<(Dct16, u32)>) -> DihedralHashes {
    let Some((a, quality)) = dct else {
        return DihedralHashes {
            hashes: [PdqHash::ZERO; 8],
            quality: 0,
        };
    };
    // Each variant maps coefficient (i, j) to a position and a sign; see the
    // sign tables in the reference's pdqhashing.cpp.
    let variant = |transpose: bool, negate: &dyn Fn(usize, usize) -> bool| -> PdqHash {
        let mut b = [[0f32; 16]; 16];
        for i in 0..16 {
            for j in 0..16 {
                let v = if negate(i, j) { -a[i][j] } else { a[i][j] };
                if transpose {
                    b[j][i] = v;
                } else {
                    b[i][j] = v;
                }
            }
        }
        bits(&b)
    };
    let hashes = [
        bits(&a),
        variant(true, &|_, j| j & 1 == 0),
        variant(false, &|i, j| (i + j) & 1 == 1),
        variant(true, &|i, _| i & 1 == 0),
        variant(false, &|i, _| i & 1 == 0),
        variant(false, &|_, j| j & 1 == 0),
        variant(true, &|_, _| false),
        variant(true, &|i, j| (i + j) & 1 == 1),
    ];
    DihedralHashes { hashes, quality }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference's box filter written the plain way (one vector, a stride),
    /// as an independent check of the vectorised passes.
    fn box1d(input: &[f32], out: &mut [f32], len: usize, stride: usize, w: usize) {
        let (p1, p2, p3, p4) = phases(len, w);
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

    #[test]
    fn vectorised_box_passes_equal_the_plain_filter() {
        let (rows, cols) = (37, 29);
        let mut s = 7u32;
        let input: Vec<f32> = (0..rows * cols)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                (s >> 8) as f32 / 65536.0
            })
            .collect();
        for w in [1, 2, 3, 4, 7, 8, 29] {
            let mut fast = vec![0f32; rows * cols];
            let mut plain = vec![0f32; rows * cols];
            box_along_rows(&input, &mut fast, rows, cols, w);
            for r in 0..rows {
                box1d(&input[r * cols..], &mut plain[r * cols..], cols, 1, w);
            }
            assert_eq!(fast, plain, "rows, window {w}");
            if w <= rows {
                box_along_cols(&input, &mut fast, rows, cols, w);
                for c in 0..cols {
                    box1d(&input[c..], &mut plain[c..], rows, cols, w);
                }
                assert_eq!(fast, plain, "cols, window {w}");
            }
        }
    }

    #[test]
    fn sampled_row_pass_equals_the_full_pass_at_the_samples() {
        for (rows, cols) in [(13, 5), (9, 64), (20, 129), (11, 700)] {
            let input: Vec<f32> = (0..rows * cols)
                .map(|i| ((i * 7919) % 1000) as f32 / 7.0)
                .collect();
            let samples: [usize; 64] = std::array::from_fn(|j| sample_index(j, cols));
            for w in [1, 2, 3, jarosz_window(cols, 64)] {
                let mut full = vec![0f32; rows * cols];
                box_along_rows(&input, &mut full, rows, cols, w);
                let mut compact = vec![0f32; rows * 64];
                box_along_rows_sampled(&input, &mut compact, rows, cols, w, &samples);
                for r in 0..rows {
                    for (j, &c) in samples.iter().enumerate() {
                        assert_eq!(
                            compact[r * 64 + j],
                            full[r * cols + c],
                            "{rows}x{cols} w{w} r{r} j{j}"
                        );
                    }
                }
            }
        }
    }

    fn lcg(s: &mut u64) -> u64 {
        *s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *s >> 33
    }

    /// The reference's downscale written the plain way on full buffers: the
    /// luminance plane, [`box1d`] along every row, down every column, again
    /// along every row and down every column, then decimation. The
    /// reference's pdqhashing.cpp in the shape it has there.
    fn plain_downscale(px: Pixels<'_>, w: usize, h: usize) -> [[f32; 64]; 64] {
        let mut a: Vec<f32> = (0..w * h).map(|i| px.at(i)).collect();
        let mut b = vec![0f32; w * h];
        let (wr, wc) = (jarosz_window(w, 64), jarosz_window(h, 64));
        for _ in 0..2 {
            for r in 0..h {
                box1d(&a[r * w..], &mut b[r * w..], w, 1, wr);
            }
            for c in 0..w {
                box1d(&b[c..], &mut a[c..], h, w, wc);
            }
        }
        std::array::from_fn(|i| {
            std::array::from_fn(|j| a[sample_index(i, h) * w + sample_index(j, w)])
        })
    }

    fn random_rgb(s: &mut u64, n: usize) -> Vec<u8> {
        // Smooth-ish content plus noise, so sums carry rounding in every lane.
        (0..n * 3)
            .map(|i| ((i / 7 % 200) as u64 + lcg(s) % 56) as u8)
            .collect()
    }

    /// The streamed downscale, on the scalar path and (where the CPU has
    /// it) the AVX2 path, gives the plain full-buffer filter's bits exactly,
    /// for RGB, grey and float sources, on random sizes: odd sizes, sizes
    /// not a multiple of 8 (tail rows and columns), windows from 1 to 24.
    #[test]
    fn streamed_scalar_and_simd_downscales_equal_the_plain_filter() {
        let mut s = 11u64;
        let mut sizes = vec![
            (5, 5),
            (8, 8),
            (9, 17),
            (64, 64),
            (65, 63),
            (130, 257),
            (1023, 769),
            (3001, 47),
        ];
        for _ in 0..12 {
            sizes.push((
                5 + (lcg(&mut s) % 700) as usize,
                5 + (lcg(&mut s) % 700) as usize,
            ));
        }
        for (w, h) in sizes {
            let rgb = random_rgb(&mut s, w * h);
            let grey: Vec<u8> = rgb[..w * h].to_vec();
            let luma: Vec<f32> = (0..w * h).map(|i| Pixels::Rgb(&rgb).at(i) * 1.37).collect();
            for px in [Pixels::Rgb(&rgb), Pixels::Grey(&grey), Pixels::Luma(&luma)] {
                let plain = plain_downscale(px, w, h);
                assert_eq!(
                    downscale_with::<false>(px, w, h),
                    plain,
                    "scalar {w}x{h} {px:?}"
                );
                // `downscale` takes the AVX2 path where the CPU has AVX2.
                assert_eq!(downscale(px, w, h), plain, "dispatched {w}x{h}");
            }
        }
    }

    /// The AVX2 kernels against their scalar versions on random input.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn simd_kernels_equal_the_scalar_ones() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            eprintln!("no AVX2 on this CPU: only the scalar path runs");
            return;
        }
        let mut s = 5u64;
        for cols in [1, 7, 8, 9, 16, 63, 100, 1024] {
            let rows = 8 + (lcg(&mut s) % 9) as usize;
            let rgb = random_rgb(&mut s, rows * cols);
            let grey: Vec<u8> = rgb[..rows * cols].to_vec();
            let luma: Vec<f32> = (0..rows * cols)
                .map(|_| lcg(&mut s) as f32 / 977.0)
                .collect();
            for px in [Pixels::Rgb(&rgb), Pixels::Grey(&grey), Pixels::Luma(&luma)] {
                for r0 in 0..=rows - S {
                    let mut a = vec![0f32; cols * S];
                    let mut b = vec![1f32; cols * S];
                    fill_strip_scalar(px, cols, r0, &mut a);
                    // SAFETY: AVX2 detected above.
                    #[allow(unsafe_code)]
                    unsafe {
                        crate::simd::fill_strip(px, cols, r0, &mut b);
                    }
                    assert_eq!(a, b, "fill_strip {cols} {r0} {px:?}");
                    let mut back = vec![0f32; cols * S];
                    strip_to_rows::<false>(&a, cols, &mut back);
                    let mut back2 = vec![0f32; cols * S];
                    // SAFETY: AVX2 detected above.
                    #[allow(unsafe_code)]
                    unsafe {
                        crate::simd::strip_to_rows(&a, cols, &mut back2);
                    }
                    assert_eq!(back, back2);
                    let direct: Vec<f32> = (r0 * cols..(r0 + S) * cols).map(|i| px.at(i)).collect();
                    assert_eq!(back, direct, "strip round trip");
                }
                for w in [1, 2, 3, 8, cols.div_ceil(128), cols] {
                    if w > cols {
                        continue;
                    }
                    let mut strip = vec![0f32; cols * S];
                    fill_strip_scalar(px, cols, 0, &mut strip);
                    let (mut a, mut b) = (vec![0f32; cols * S], vec![1f32; cols * S]);
                    filter_strip_scalar(&strip, &mut a, cols, w);
                    // SAFETY: AVX2 detected above.
                    #[allow(unsafe_code)]
                    unsafe {
                        crate::simd::filter_strip(&strip, &mut b, cols, w);
                    }
                    assert_eq!(a, b, "filter_strip {cols} w{w}");
                }
                let n = rows * cols;
                let scalar: Vec<f32> = (0..n).map(|i| px.at(i)).collect();
                assert_eq!(luma_plane(px, n), scalar, "luma plane {cols}");
            }
        }
        // Every byte triple's luminance, in every lane position.
        let all: Vec<u8> = (0..=255u8)
            .flat_map(|v| [v, v.wrapping_mul(7), 255 - v])
            .collect();
        let mut out = vec![0f32; 256];
        // SAFETY: AVX2 detected above.
        #[allow(unsafe_code)]
        unsafe {
            crate::simd::luma_plane(Pixels::Rgb(&all), &mut out);
        }
        for (i, v) in out.iter().enumerate() {
            let (r, g, b) = (
                f32::from(all[3 * i]),
                f32::from(all[3 * i + 1]),
                f32::from(all[3 * i + 2]),
            );
            assert_eq!(
                v.to_bits(),
                (LUMA_R * r + LUMA_G * g + LUMA_B * b).to_bits()
            );
        }
    }

    #[test]
    fn tiny_images_hash_to_zero() {
        let h = hash_rgb(&[200; 4 * 100 * 3], 4, 100);
        assert_eq!(h.hash, PdqHash::ZERO);
        assert_eq!(h.quality, 0);
    }

    #[test]
    fn dihedral_flips_are_involutions_on_bits() {
        // Transposing twice is the identity: flipplus1 of a transposed image's
        // DCT is the original. Checked on the sign/transposition tables alone.
        let mut s = 3u32;
        let rgb: Vec<u8> = (0..40 * 30 * 3)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                (s >> 24) as u8
            })
            .collect();
        let d = hash_rgb_dihedral(&rgb, 40, 30);
        // The original of the dihedral set equals the plain hash (no 64×64 special case here).
        assert_eq!(d.hashes[0], hash_rgb(&rgb, 40, 30).hash);
        // Mirroring the pixels left-right gives the flipy hash... via the core,
        // within rounding: check it is close, and exact on the bit table level.
        let mut mirrored = rgb.clone();
        for y in 0..30 {
            for x in 0..40 {
                for c in 0..3 {
                    mirrored[(y * 40 + x) * 3 + c] = rgb[(y * 40 + (39 - x)) * 3 + c];
                }
            }
        }
        let m = hash_rgb(&mirrored, 40, 30).hash;
        assert!(
            m.distance(&d.hashes[5]) <= 16,
            "{}",
            m.distance(&d.hashes[5])
        );
    }
}
