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

const LUMA_R: f32 = 0.299;
const LUMA_G: f32 = 0.587;
const LUMA_B: f32 = 0.114;

/// PDQ hash of an interleaved RGB buffer (`width * height * 3` bytes).
///
/// # Panics
/// If the buffer is shorter than `width * height * 3`.
pub fn hash_rgb(rgb: &[u8], width: usize, height: usize) -> Hashed {
    plain(dct_of_luma(
        luma_from_rgb(rgb, width, height),
        width,
        height,
        true,
    ))
}

/// PDQ hash of a grey buffer (`width * height` bytes).
///
/// # Panics
/// If the buffer is shorter than `width * height`.
pub fn hash_luma(luma: &[u8], width: usize, height: usize) -> Hashed {
    plain(dct_of_luma(
        luma_from_grey(luma, width, height),
        width,
        height,
        true,
    ))
}

/// PDQ hash of a luminance plane already in `f32` (consumed as scratch space).
pub(crate) fn hash_luma_plane(luma: Vec<f32>, width: usize, height: usize) -> Hashed {
    plain(dct_of_luma(luma, width, height, true))
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
    dihedral(dct_of_luma(
        luma_from_rgb(rgb, width, height),
        width,
        height,
        false,
    ))
}

/// The eight dihedral hashes of a grey buffer.
pub fn hash_luma_dihedral(luma: &[u8], width: usize, height: usize) -> DihedralHashes {
    dihedral(dct_of_luma(
        luma_from_grey(luma, width, height),
        width,
        height,
        false,
    ))
}

/// Luminance `Y = 0.299 R + 0.587 G + 0.114 B` per pixel, as the reference computes it.
pub(crate) fn luma_from_rgb(rgb: &[u8], width: usize, height: usize) -> Vec<f32> {
    let n = width * height;
    let rgb = &rgb[..n * 3];
    rgb.chunks_exact(3)
        .map(|p| LUMA_R * f32::from(p[0]) + LUMA_G * f32::from(p[1]) + LUMA_B * f32::from(p[2]))
        .collect()
}

pub(crate) fn luma_from_grey(grey: &[u8], width: usize, height: usize) -> Vec<f32> {
    grey[..width * height]
        .iter()
        .map(|&v| f32::from(v))
        .collect()
}

type Dct16 = [[f32; 16]; 16];

/// Downscale, quality and DCT. `skip_blur_at_64` mirrors the reference's plain
/// hashing path, which copies a 64×64 input straight through; its dihedral
/// path always filters.
fn dct_of_luma(
    mut buf1: Vec<f32>,
    width: usize,
    height: usize,
    skip_blur_at_64: bool,
) -> Option<(Dct16, u32)> {
    if width < MIN_HASHABLE_DIM || height < MIN_HASHABLE_DIM {
        return None;
    }
    let mut small = [[0f32; 64]; 64];
    if skip_blur_at_64 && width == 64 && height == 64 {
        for (i, row) in small.iter_mut().enumerate() {
            row.copy_from_slice(&buf1[i * 64..i * 64 + 64]);
        }
    } else {
        let window_along_rows = jarosz_window(width, 64);
        let window_along_cols = jarosz_window(height, 64);
        let mut buf2 = vec![0f32; width * height];
        // First X/Y pass over the whole image.
        box_along_rows_transposed(&buf1, &mut buf2, height, width, window_along_rows);
        box_along_cols(&buf2, &mut buf1, height, width, window_along_cols);
        // Second pass: decimation reads only 64 columns, and a column pass only
        // reads its own column, so the second row pass keeps its running sums
        // over every pixel but writes (and divides) only at the 64 sampled
        // columns, and the second column pass runs over those 64 alone. Each
        // value that reaches the hash is computed by the same operations.
        let sample_cols: [usize; 64] = std::array::from_fn(|j| sample_index(j, width));
        let mut compact = vec![0f32; height * 64];
        box_along_rows_sampled_transposed(
            &buf1,
            &mut compact,
            height,
            width,
            window_along_rows,
            &sample_cols,
        );
        let mut compact2 = vec![0f32; height * 64];
        box_along_cols(&compact, &mut compact2, height, 64, window_along_cols);
        for (oi, orow) in small.iter_mut().enumerate() {
            let ii = sample_index(oi, height);
            orow.copy_from_slice(&compact2[ii * 64..ii * 64 + 64]);
        }
    }
    let quality = quality(&small);
    Some((dct64_to_16(&small), quality))
}

/// The reference's window size: half of the input pixels per output pixel, rounded up.
fn jarosz_window(old: usize, new: usize) -> usize {
    old.div_ceil(2 * new)
}

/// The four phases of the reference's running-sum box filter, for a vector of
/// `len` elements and window `w`: (accumulate only, grow+write, slide+write,
/// shrink+write) repetition counts.
fn phases(len: usize, w: usize) -> (usize, usize, usize, usize) {
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

/// [`box_along_rows`] computed by transposing strips of eight rows into
/// column-major order, so that the eight rows' running sums advance as one
/// vector ([`box_along_cols`] over an 8-wide matrix), then transposing back.
/// Each row's sequence of operations is unchanged.
fn box_along_rows_transposed(input: &[f32], out: &mut [f32], rows: usize, cols: usize, w: usize) {
    const S: usize = 8;
    let mut strip = vec![0f32; cols * S];
    let mut done = vec![0f32; cols * S];
    let mut r0 = 0;
    while r0 + S <= rows {
        for k in 0..S {
            let row = &input[(r0 + k) * cols..(r0 + k + 1) * cols];
            for (c, &v) in row.iter().enumerate() {
                strip[c * S + k] = v;
            }
        }
        box_along_cols(&strip, &mut done, cols, S, w);
        for k in 0..S {
            let row = &mut out[(r0 + k) * cols..(r0 + k + 1) * cols];
            for (c, o) in row.iter_mut().enumerate() {
                *o = done[c * S + k];
            }
        }
        r0 += S;
    }
    if r0 < rows {
        box_along_rows(
            &input[r0 * cols..],
            &mut out[r0 * cols..],
            rows - r0,
            cols,
            w,
        );
    }
}

/// [`box_along_rows_sampled`] over transposed strips of eight rows, so the
/// eight running sums advance as one vector. Same operations per row.
fn box_along_rows_sampled_transposed(
    input: &[f32],
    out: &mut [f32],
    rows: usize,
    cols: usize,
    w: usize,
    samples: &[usize; 64],
) {
    const S: usize = 8;
    let (p1, p2, p3, p4) = phases(cols, w);
    let half = (w + 2) / 2;
    let mut strip = vec![0f32; cols * S];
    let mut r0 = 0;
    while r0 + S <= rows {
        for k in 0..S {
            let row = &input[(r0 + k) * cols..(r0 + k + 1) * cols];
            for (c, &v) in row.iter().enumerate() {
                strip[c * S + k] = v;
            }
        }
        let at = |i: usize| -> &[f32] { &strip[i * S..i * S + S] };
        let mut sum = [0f32; S];
        let mut next = 0usize;
        let mut emit = |sum: &[f32; S], oi: usize, cur: usize, next: &mut usize| {
            while *next < 64 && samples[*next] == oi {
                let c = cur as f32;
                for k in 0..S {
                    out[(r0 + k) * 64 + *next] = sum[k] / c;
                }
                *next += 1;
            }
        };
        let (mut li, mut ri, mut oi) = (0usize, 0usize, 0usize);
        for _ in 0..p1 {
            for (s, &x) in sum.iter_mut().zip(at(ri)) {
                *s += x;
            }
            ri += 1;
        }
        for _ in 0..p2 {
            for (s, &x) in sum.iter_mut().zip(at(ri)) {
                *s += x;
            }
            emit(&sum, oi, half + oi, &mut next);
            ri += 1;
            oi += 1;
        }
        for _ in 0..p3 {
            for ((s, &x), &y) in sum.iter_mut().zip(at(ri)).zip(at(li)) {
                *s += x;
                *s -= y;
            }
            emit(&sum, oi, w, &mut next);
            li += 1;
            ri += 1;
            oi += 1;
        }
        for t in 0..p4 {
            for (s, &y) in sum.iter_mut().zip(at(li)) {
                *s -= y;
            }
            emit(&sum, oi, w - t - 1, &mut next);
            li += 1;
            oi += 1;
        }
        r0 += S;
    }
    if r0 < rows {
        box_along_rows_sampled(
            &input[r0 * cols..],
            &mut out[r0 * 64..],
            rows - r0,
            cols,
            w,
            samples,
        );
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
fn bits(d: &Dct16) -> PdqHash {
    let mut flat = [0f32; 256];
    for (i, row) in d.iter().enumerate() {
        flat[i * 16..i * 16 + 16].copy_from_slice(row);
    }
    let median = {
        // The reference's Torben median returns the 128th smallest of 256
        // values (the lower median): an exact order statistic.
        let mut s = flat;
        let (_, m, _) = s.select_nth_unstable_by(127, f32::total_cmp);
        *m
    };
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
            let mut transposed = vec![0f32; rows * cols];
            box_along_rows_transposed(&input, &mut transposed, rows, cols, w);
            assert_eq!(fast, transposed, "transposed rows, window {w}");
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
                let mut compact_t = vec![0f32; rows * 64];
                box_along_rows_sampled_transposed(&input, &mut compact_t, rows, cols, w, &samples);
                assert_eq!(compact_t, compact, "{rows}x{cols} w{w}");
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
