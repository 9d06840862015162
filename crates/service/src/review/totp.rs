//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP), with
//! HMAC-SHA1 from the `hmac` and `sha1` crates, as authenticator apps use.

use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

/// The time step, in seconds.
pub const STEP: u64 = 30;

/// HOTP (RFC 4226 §5.3) of `counter` with `digits` decimal digits.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> String {
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(secret) else {
        // HMAC takes keys of any length; this branch is unreachable.
        return String::new();
    };
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = (h[19] & 0x0f) as usize;
    let bin = (u32::from(h[off] & 0x7f) << 24)
        | (u32::from(h[off + 1]) << 16)
        | (u32::from(h[off + 2]) << 8)
        | u32::from(h[off + 3]);
    let code = u64::from(bin) % 10u64.pow(digits);
    format!("{code:0width$}", width = digits as usize)
}

/// TOTP (RFC 6238) at Unix time `t`.
pub fn totp(secret: &[u8], t: u64, digits: u32) -> String {
    hotp(secret, t / STEP, digits)
}

/// Whether `code` is the 6-digit TOTP at `t`, or one step either side
/// (clock drift), compared in constant time.
pub fn verify(secret: &[u8], code: &str, t: u64) -> bool {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let mut ok = 0u8;
    for step in [t.saturating_sub(STEP), t, t + STEP] {
        ok |= totp(secret, step, 6)
            .as_bytes()
            .ct_eq(code.as_bytes())
            .unwrap_u8();
    }
    ok == 1
}

/// RFC 4648 base32 without padding (how authenticator apps take secrets).
pub fn base32(data: &[u8]) -> String {
    const A: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in data {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(A[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(A[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, the SHA-1 rows (secret "12345678901234567890", 8 digits).
    #[test]
    fn rfc6238_sha1_vectors() {
        let secret = b"12345678901234567890";
        for (t, want) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(totp(secret, t, 8), want, "t={t}");
        }
    }

    /// RFC 4226 Appendix D.
    #[test]
    fn rfc4226_hotp_vectors() {
        let want = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (c, w) in want.iter().enumerate() {
            assert_eq!(hotp(b"12345678901234567890", c as u64, 6), *w);
        }
    }

    #[test]
    fn verify_accepts_adjacent_steps_only() {
        let s = b"12345678901234567890";
        let t = 1_234_567_890;
        assert!(verify(s, &totp(s, t, 6), t));
        assert!(verify(s, &totp(s, t - 30, 6), t));
        assert!(verify(s, &totp(s, t + 30, 6), t));
        assert!(!verify(s, &totp(s, t + 90, 6), t));
        assert!(!verify(s, "12345", t));
        assert!(!verify(s, "abcdef", t));
    }

    /// RFC 4648 §10 test vectors (padding stripped).
    #[test]
    fn base32_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(i.as_bytes()), o);
        }
    }
}
