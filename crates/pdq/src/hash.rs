//! The 256-bit PDQ hash value, its hex form and Hamming distance.

use std::fmt;
use std::str::FromStr;

/// A 256-bit PDQ hash.
///
/// The bytes are in the order of the reference's hex string: byte 0 is its first
/// two hex digits. The reference stores the hash as sixteen 16-bit words and
/// prints word 15 first; bit `k` of the hash (the `k`-th DCT coefficient in
/// row-major order) lives in word `k / 16`, bit `k % 16`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PdqHash([u8; 32]);

impl PdqHash {
    /// The all-zero hash (what the reference returns for images under 5 pixels).
    pub const ZERO: PdqHash = PdqHash([0; 32]);

    /// Wraps raw bytes (in hex-string order).
    pub const fn from_bytes(b: [u8; 32]) -> Self {
        PdqHash(b)
    }

    /// The raw bytes (in hex-string order).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Hamming distance: the number of bits that differ (0..=256).
    pub fn distance(&self, other: &PdqHash) -> u32 {
        let mut d = 0;
        for i in 0..4 {
            let a = u64::from_le_bytes(self.0[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
            let b = u64::from_le_bytes(other.0[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
            d += (a ^ b).count_ones();
        }
        d
    }

    /// Sets bit `k` (0..256) in the reference's numbering.
    pub(crate) fn set_bit(&mut self, k: usize) {
        let (byte, bit) = Self::locate(k);
        self.0[byte] |= 1 << bit;
    }

    /// Reads bit `k` (0..256) in the reference's numbering.
    pub fn bit(&self, k: usize) -> bool {
        let (byte, bit) = Self::locate(k);
        self.0[byte] >> bit & 1 == 1
    }

    fn locate(k: usize) -> (usize, u32) {
        let word = k / 16;
        let b = k % 16;
        let byte = 2 * (15 - word) + usize::from(b < 8);
        (byte, (b % 8) as u32)
    }
}

impl fmt::Display for PdqHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = [0u8; 64];
        for (i, b) in self.0.iter().enumerate() {
            s[2 * i] = HEX[usize::from(b >> 4)];
            s[2 * i + 1] = HEX[usize::from(b & 15)];
        }
        // The buffer holds ASCII hex digits only.
        f.write_str(std::str::from_utf8(&s).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for PdqHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PdqHash({self})")
    }
}

/// Why a string is not a PDQ hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseHashError {
    /// The string is not 64 characters long.
    #[error("a PDQ hash is 64 hex digits, got {0} characters")]
    Length(usize),
    /// A character is not a hex digit.
    #[error("a PDQ hash is 64 hex digits, found {found:?} at position {position}")]
    NotHex {
        /// Offending character.
        found: char,
        /// Its 0-based position.
        position: usize,
    },
}

impl FromStr for PdqHash {
    type Err = ParseHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.len() != 64 {
            return Err(ParseHashError::Length(s.chars().count()));
        }
        let digit = |i: usize| -> Result<u8, ParseHashError> {
            let c = b[i];
            match c {
                b'0'..=b'9' => Ok(c - b'0'),
                b'a'..=b'f' => Ok(c - b'a' + 10),
                b'A'..=b'F' => Ok(c - b'A' + 10),
                _ => Err(ParseHashError::NotHex {
                    found: s[i..].chars().next().unwrap_or('?'),
                    position: i,
                }),
            }
        };
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = digit(2 * i)? << 4 | digit(2 * i + 1)?;
        }
        Ok(PdqHash(out))
    }
}

impl serde::Serialize for PdqHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PdqHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_case() {
        let s = "d8f8f0cee0f4a84f0637022a078f67f0b36e2ed596621e1d33e6339c4e9c9b22";
        let h: PdqHash = s.parse().expect("valid");
        assert_eq!(h.to_string(), s);
        let upper: PdqHash = s.to_uppercase().parse().expect("valid");
        assert_eq!(upper, h);
    }

    #[test]
    fn rejects_bad_hex() {
        assert_eq!("abc".parse::<PdqHash>(), Err(ParseHashError::Length(3)));
        let mut s = "0".repeat(63);
        s.push('g');
        assert!(matches!(
            s.parse::<PdqHash>(),
            Err(ParseHashError::NotHex {
                found: 'g',
                position: 63
            })
        ));
        let multibyte = format!("{}é", "0".repeat(62));
        assert!(multibyte.parse::<PdqHash>().is_err());
    }

    #[test]
    fn bit_numbering_matches_reference_words() {
        // Bit 0 is the lowest bit of word 0, which the reference prints last.
        let mut h = PdqHash::ZERO;
        h.set_bit(0);
        assert_eq!(h.to_string(), format!("{}0001", "0".repeat(60)));
        let mut h = PdqHash::ZERO;
        h.set_bit(255);
        assert_eq!(h.to_string(), format!("8000{}", "0".repeat(60)));
        let mut h = PdqHash::ZERO;
        h.set_bit(9);
        assert_eq!(h.to_string(), format!("{}0200", "0".repeat(60)));
        assert!(h.bit(9) && !h.bit(8));
    }

    #[test]
    fn distance_counts_differing_bits() {
        let a = PdqHash::ZERO;
        let mut b = PdqHash::ZERO;
        for k in [0, 17, 100, 255] {
            b.set_bit(k);
        }
        assert_eq!(a.distance(&b), 4);
        assert_eq!(b.distance(&b), 0);
        assert_eq!(PdqHash::from_bytes([0xff; 32]).distance(&a), 256);
    }
}
