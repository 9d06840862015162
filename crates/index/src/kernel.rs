//! Verification kernels: Hamming distance over 256-bit codes, brute-force
//! scans and MIH bucket probes.
//!
//! Each kernel is written once as an `#[inline(always)]` body and compiled
//! twice: plainly (the portable fallback) and inside a function with the
//! `popcnt` and `avx2` target features, where `count_ones` becomes the
//! `popcnt` instruction and scans vectorise. The choice is made once, by
//! runtime CPU detection; `BULWARK_KERNEL=scalar` forces the fallback. Tests
//! check both give identical answers.

use std::sync::OnceLock;

use crate::Words;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

fn detect() -> Kernel {
    static K: OnceLock<Kernel> = OnceLock::new();
    *K.get_or_init(|| {
        if std::env::var("BULWARK_KERNEL").as_deref() == Ok("scalar") {
            return Kernel::Scalar;
        }
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("popcnt") {
                return Kernel::Avx2;
            }
        }
        Kernel::Scalar
    })
}

/// Name of the kernel in use ("avx2" or "scalar"), for reports.
pub fn kernel_name() -> &'static str {
    match detect() {
        Kernel::Scalar => "scalar",
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => "avx2+popcnt",
    }
}

#[inline(always)]
pub(crate) fn distance(a: &Words, b: &Words) -> u32 {
    (a[0] ^ b[0]).count_ones()
        + (a[1] ^ b[1]).count_ones()
        + (a[2] ^ b[2]).count_ones()
        + (a[3] ^ b[3]).count_ones()
}

#[inline(always)]
fn scan_body(codes: &[Words], base: u32, q: &Words, r: u32, out: &mut Vec<u32>) {
    for (i, c) in codes.iter().enumerate() {
        if distance(c, q) <= r {
            out.push(base + i as u32);
        }
    }
}

#[inline(always)]
fn scan_batch_body(codes: &[Words], base: u32, qs: &[Words], r: u32, out: &mut [Vec<u32>]) {
    // Blocks of codes stay in cache while every query visits them.
    const BLOCK: usize = 2048;
    for (bi, block) in codes.chunks(BLOCK).enumerate() {
        let start = base + (bi * BLOCK) as u32;
        for (q, o) in qs.iter().zip(out.iter_mut()) {
            scan_body(block, start, q, r, o);
        }
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn probe_body(
    codes: &[Words],
    offsets: &[u32],
    entries: &[u32],
    key: u32,
    bits: u8,
    flips: u32,
    q: &Words,
    r: u32,
    out: &mut Vec<u32>,
) {
    // Visit every key within `flips` bits of `key`: flip bits in increasing
    // position order so each key is visited exactly once.
    fn visit(key: u32, from: u8, left: u32, bits: u8, keys: &mut Vec<u32>) {
        keys.push(key);
        if left == 0 {
            return;
        }
        for b in from..bits {
            visit(key ^ (1 << b), b + 1, left - 1, bits, keys);
        }
    }
    // Three passes of independent loads (bucket bounds, then bucket entries,
    // then candidate codes) instead of one dependent chain per bucket: the
    // CPU overlaps the cache misses of each pass.
    let mut keys = Vec::with_capacity(512);
    visit(key, 0, flips, bits, &mut keys);
    let mut cands: Vec<u32> = Vec::with_capacity(keys.len() * 2);
    let ranges: Vec<(u32, u32)> = keys
        .iter()
        .map(|&k| (offsets[k as usize], offsets[k as usize + 1]))
        .collect();
    for (lo, hi) in ranges {
        cands.extend_from_slice(&entries[lo as usize..hi as usize]);
    }
    for p in cands {
        if distance(&codes[p as usize], q) <= r {
            out.push(p);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;

    #[target_feature(enable = "avx2,popcnt")]
    pub(super) fn scan(codes: &[Words], base: u32, q: &Words, r: u32, out: &mut Vec<u32>) {
        scan_body(codes, base, q, r, out)
    }

    #[target_feature(enable = "avx2,popcnt")]
    pub(super) fn scan_batch(
        codes: &[Words],
        base: u32,
        qs: &[Words],
        r: u32,
        out: &mut [Vec<u32>],
    ) {
        scan_batch_body(codes, base, qs, r, out)
    }

    #[target_feature(enable = "avx2,popcnt")]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn probe(
        codes: &[Words],
        offsets: &[u32],
        entries: &[u32],
        key: u32,
        bits: u8,
        flips: u32,
        q: &Words,
        r: u32,
        out: &mut Vec<u32>,
    ) {
        probe_body(codes, offsets, entries, key, bits, flips, q, r, out)
    }
}

/// Appends `base + i` for every `codes[i]` within `r` of `q`.
pub(crate) fn scan(codes: &[Words], base: u32, q: &Words, r: u32, out: &mut Vec<u32>) {
    match detect() {
        Kernel::Scalar => scan_body(codes, base, q, r, out),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `detect` returns Avx2 only after runtime detection saw
        // both the avx2 and popcnt features on this CPU.
        #[allow(unsafe_code)]
        Kernel::Avx2 => unsafe { avx2::scan(codes, base, q, r, out) },
    }
}

/// [`scan`] for a batch of queries, one pass over the codes.
pub(crate) fn scan_batch(codes: &[Words], base: u32, qs: &[Words], r: u32, out: &mut [Vec<u32>]) {
    match detect() {
        Kernel::Scalar => scan_batch_body(codes, base, qs, r, out),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `scan`: features detected at run time.
        #[allow(unsafe_code)]
        Kernel::Avx2 => unsafe { avx2::scan_batch(codes, base, qs, r, out) },
    }
}

/// Probes every bucket within `flips` bits of `key` and verifies candidates.
#[allow(clippy::too_many_arguments)]
pub(crate) fn probe(
    codes: &[Words],
    offsets: &[u32],
    entries: &[u32],
    key: u32,
    bits: u8,
    flips: u32,
    q: &Words,
    r: u32,
    out: &mut Vec<u32>,
) {
    match detect() {
        Kernel::Scalar => probe_body(codes, offsets, entries, key, bits, flips, q, r, out),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `scan`: features detected at run time.
        #[allow(unsafe_code)]
        Kernel::Avx2 => unsafe {
            avx2::probe(codes, offsets, entries, key, bits, flips, q, r, out)
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(s: &mut u64) -> u64 {
        *s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *s
    }

    #[test]
    fn simd_and_scalar_scans_agree() {
        let mut s = 1;
        let codes: Vec<Words> = (0..5000)
            .map(|_| std::array::from_fn(|_| lcg(&mut s)))
            .collect();
        let q: Words = std::array::from_fn(|_| lcg(&mut s));
        for r in [0, 100, 120, 128, 140, 256] {
            let mut a = Vec::new();
            scan_body(&codes, 7, &q, r, &mut a);
            let mut b = Vec::new();
            scan(&codes, 7, &q, r, &mut b);
            assert_eq!(a, b, "radius {r}");
            let expect: Vec<u32> = codes
                .iter()
                .enumerate()
                .filter(|(_, c)| {
                    c.iter()
                        .zip(&q)
                        .map(|(x, y)| (x ^ y).count_ones())
                        .sum::<u32>()
                        <= r
                })
                .map(|(i, _)| 7 + i as u32)
                .collect();
            assert_eq!(a, expect);
            let mut batch = vec![Vec::new(); 2];
            scan_batch(&codes, 7, &[q, q], r, &mut batch);
            assert_eq!(batch[0], expect);
            assert_eq!(batch[1], expect);
        }
    }
}
