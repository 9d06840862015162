//! AVX2 kernels for the PDQ core: luminance of eight pixels at once and the
//! 8×8 transposes that turn eight image rows into a strip (column-major, eight
//! rows side by side) and back. Only entered after runtime detection of AVX2
//! (see `core::downscale`); `core` has the scalar versions, and its tests
//! check that both give identical bits.
//!
//! Every float operation is the scalar code's, lane by lane: the luminance is
//! `(0.299·R + 0.587·G) + 0.114·B` with the same roundings, and a transpose
//! only moves values. The only `unsafe` operations are unaligned loads and
//! stores, each on a slice whose length was checked just before.

use std::arch::x86_64::{
    __m256, __m256i, _mm_loadl_epi64, _mm_loadu_si128, _mm256_add_ps, _mm256_cvtepi32_ps,
    _mm256_cvtepu8_epi32, _mm256_div_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_permute2f128_ps,
    _mm256_set_m128i, _mm256_set1_ps, _mm256_setr_epi8, _mm256_setzero_ps, _mm256_shuffle_epi8,
    _mm256_shuffle_ps, _mm256_storeu_ps, _mm256_sub_ps, _mm256_unpackhi_ps, _mm256_unpacklo_ps,
};

use crate::core::{LUMA_B, LUMA_G, LUMA_R, Pixels, phases};

const S: usize = 8;

/// A `pshufb` mask moving byte `o + 3j` of the low lane and `o + 4 + 3j` of
/// the high lane to the low byte of 32-bit lane j (-1 zeroes a byte).
#[target_feature(enable = "avx2")]
#[inline]
fn pick(o: i8) -> __m256i {
    #[rustfmt::skip]
    let m = _mm256_setr_epi8(
        o, -1, -1, -1, o + 3, -1, -1, -1, o + 6, -1, -1, -1, o + 9, -1, -1, -1,
        o + 4, -1, -1, -1, o + 7, -1, -1, -1, o + 10, -1, -1, -1, o + 13, -1, -1, -1,
    );
    m
}

/// Luminance of the 8 RGB pixels starting at pixel `i` of `rgb`.
#[target_feature(enable = "avx2")]
#[inline]
fn rgb8(rgb: &[u8], i: usize) -> __m256 {
    let b = &rgb[3 * i..3 * i + 24];
    // SAFETY: `b` is 24 bytes long (the slice above is bounds-checked); the two
    // unaligned 16-byte loads read b[0..16] and b[8..24].
    let (lo, hi) = unsafe {
        (
            _mm_loadu_si128(b.as_ptr().cast()),
            _mm_loadu_si128(b[8..].as_ptr().cast()),
        )
    };
    // Low lane: pixels 0–3 at bytes 0..12; high lane: pixels 4–7 at bytes 4..16
    // of b[8..24]. Each byte goes to the low byte of a 32-bit lane (-1 zeroes).
    let v = _mm256_set_m128i(hi, lo);
    let r = _mm256_cvtepi32_ps(_mm256_shuffle_epi8(v, pick(0)));
    let g = _mm256_cvtepi32_ps(_mm256_shuffle_epi8(v, pick(1)));
    let bl = _mm256_cvtepi32_ps(_mm256_shuffle_epi8(v, pick(2)));
    // The scalar expression `LUMA_R * r + LUMA_G * g + LUMA_B * b`, in its order.
    _mm256_add_ps(
        _mm256_add_ps(
            _mm256_mul_ps(_mm256_set1_ps(LUMA_R), r),
            _mm256_mul_ps(_mm256_set1_ps(LUMA_G), g),
        ),
        _mm256_mul_ps(_mm256_set1_ps(LUMA_B), bl),
    )
}

/// The 8 grey pixels starting at `i`, as floats.
#[target_feature(enable = "avx2")]
#[inline]
fn grey8(grey: &[u8], i: usize) -> __m256 {
    let b = &grey[i..i + 8];
    // SAFETY: `b` is 8 bytes long; the 8-byte load reads exactly those.
    let v = unsafe { _mm_loadl_epi64(b.as_ptr().cast()) };
    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v))
}

/// The 8 floats starting at `i`.
#[target_feature(enable = "avx2")]
#[inline]
fn f32x8(v: &[f32], i: usize) -> __m256 {
    let b = &v[i..i + 8];
    // SAFETY: `b` holds 8 floats; the unaligned load reads exactly those.
    unsafe { _mm256_loadu_ps(b.as_ptr()) }
}

#[target_feature(enable = "avx2")]
#[inline]
fn store8(out: &mut [f32], i: usize, v: __m256) {
    let b = &mut out[i..i + 8];
    // SAFETY: `b` holds 8 floats; the unaligned store writes exactly those.
    unsafe { _mm256_storeu_ps(b.as_mut_ptr(), v) }
}

/// Transposes the 8×8 matrix whose rows are `r`.
#[target_feature(enable = "avx2")]
#[inline]
fn transpose(r: &mut [__m256; 8]) {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    r[0] = _mm256_permute2f128_ps::<0x20>(u0, u4);
    r[1] = _mm256_permute2f128_ps::<0x20>(u1, u5);
    r[2] = _mm256_permute2f128_ps::<0x20>(u2, u6);
    r[3] = _mm256_permute2f128_ps::<0x20>(u3, u7);
    r[4] = _mm256_permute2f128_ps::<0x31>(u0, u4);
    r[5] = _mm256_permute2f128_ps::<0x31>(u1, u5);
    r[6] = _mm256_permute2f128_ps::<0x31>(u2, u6);
    r[7] = _mm256_permute2f128_ps::<0x31>(u3, u7);
}

macro_rules! fill_blocks {
    ($load:ident, $src:expr, $cols:expr, $r0:expr, $strip:expr) => {{
        let (cols, r0) = ($cols, $r0);
        let mut c0 = 0;
        while c0 + S <= cols {
            let mut v = [_mm256_setzero_ps(); 8];
            for (k, vk) in v.iter_mut().enumerate() {
                *vk = $load($src, (r0 + k) * cols + c0);
            }
            transpose(&mut v);
            for (i, vi) in v.iter().enumerate() {
                store8($strip, (c0 + i) * S, *vi);
            }
            c0 += S;
        }
        c0
    }};
}

/// `strip[c·8 + k]` = pixel (`r0 + k`, `c`) for the eight rows from `r0`.
/// Same result as the scalar `core::fill_strip_scalar`.
#[target_feature(enable = "avx2")]
pub(crate) fn fill_strip(px: Pixels<'_>, cols: usize, r0: usize, strip: &mut [f32]) {
    let strip = &mut strip[..cols * S];
    let done = match px {
        Pixels::Rgb(p) => fill_blocks!(rgb8, p, cols, r0, strip),
        Pixels::Grey(p) => fill_blocks!(grey8, p, cols, r0, strip),
        Pixels::Luma(p) => fill_blocks!(f32x8, p, cols, r0, strip),
    };
    for c in done..cols {
        for k in 0..S {
            strip[c * S + k] = px.at((r0 + k) * cols + c);
        }
    }
}

/// The inverse of [`fill_strip`] on floats: row `k` of `rows` (8 rows of
/// `cols`) gets `strip[c·8 + k]`.
#[target_feature(enable = "avx2")]
pub(crate) fn strip_to_rows(strip: &[f32], cols: usize, rows: &mut [f32]) {
    let (strip, rows) = (&strip[..cols * S], &mut rows[..cols * S]);
    let mut c0 = 0;
    while c0 + S <= cols {
        let mut v = [_mm256_setzero_ps(); 8];
        for (i, vi) in v.iter_mut().enumerate() {
            *vi = f32x8(strip, (c0 + i) * S);
        }
        transpose(&mut v);
        for (k, vk) in v.iter().enumerate() {
            store8(rows, k * cols + c0, *vk);
        }
        c0 += S;
    }
    for c in c0..cols {
        for k in 0..S {
            rows[k * cols + c] = strip[c * S + k];
        }
    }
}

/// Luminance of every pixel of `px` into `out` (one float per pixel).
#[target_feature(enable = "avx2")]
pub(crate) fn luma_plane(px: Pixels<'_>, out: &mut [f32]) {
    let n = out.len();
    let mut i = 0;
    while i + S <= n {
        let v = match px {
            Pixels::Rgb(p) => rgb8(p, i),
            Pixels::Grey(p) => grey8(p, i),
            Pixels::Luma(p) => f32x8(p, i),
        };
        store8(out, i, v);
        i += S;
    }
    for (j, o) in out.iter_mut().enumerate().skip(i) {
        *o = px.at(j);
    }
}

#[target_feature(enable = "avx2")]
#[inline]
fn load(x: &[f32; 8]) -> __m256 {
    // SAFETY: `x` is 8 floats; the unaligned load reads exactly those.
    unsafe { _mm256_loadu_ps(x.as_ptr()) }
}

#[target_feature(enable = "avx2")]
#[inline]
fn store(o: &mut [f32; 8], v: __m256) {
    // SAFETY: `o` is 8 floats; the unaligned store writes exactly those.
    unsafe { _mm256_storeu_ps(o.as_mut_ptr(), v) }
}

/// `core::filter_strip` with its eight lanes in one register: the same
/// adds, subtracts and divides, lane by lane, in the same order.
#[target_feature(enable = "avx2")]
pub(crate) fn filter_strip(strip: &[f32], out: &mut [f32], len: usize, w: usize) {
    let (p1, p2, p3, p4) = phases(len, w);
    let half = (w + 2) / 2;
    let (v, _) = strip[..len * S].as_chunks::<S>();
    let (o, _) = out[..len * S].as_chunks_mut::<S>();
    let (o2, rest) = o.split_at_mut(p2);
    let (o3, o4) = rest.split_at_mut(p3);
    let mut sum = _mm256_setzero_ps();
    for x in &v[..p1] {
        sum = _mm256_add_ps(sum, load(x));
    }
    for (i, (x, o)) in v[p1..p1 + p2].iter().zip(o2).enumerate() {
        let c = _mm256_set1_ps((half + i) as f32);
        sum = _mm256_add_ps(sum, load(x));
        store(o, _mm256_div_ps(sum, c));
    }
    let c = _mm256_set1_ps(w as f32);
    for ((x, y), o) in v[w..len].iter().zip(&v[..p3]).zip(o3) {
        sum = _mm256_add_ps(sum, load(x));
        sum = _mm256_sub_ps(sum, load(y));
        store(o, _mm256_div_ps(sum, c));
    }
    for (t, (y, o)) in v[p3..p3 + p4].iter().zip(o4).enumerate() {
        let c = _mm256_set1_ps((w - t - 1) as f32);
        sum = _mm256_sub_ps(sum, load(y));
        store(o, _mm256_div_ps(sum, c));
    }
}
