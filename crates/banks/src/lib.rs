//! Signals (the hashes a bank holds) and the hash-list formats the field uses.
//!
//! - [`Signal`]: one PDQ, MD5 or SHA-256 value, parsed strictly.
//! - [`TextSignal`] / [`AnySignal`]: the ad text hash and entity signals
//!   (phone numbers, handles, invites, wallets, URLs, domains) of issue 18,
//!   apart from `Signal` so that `Signal` stays `Copy`.
//! - [`Format`]: the list formats Bulwark imports and exports, one record per
//!   line so lists of any size stream: python-threatexchange's `pdq HASH`
//!   lines, CSV `hash,quality,...`, and JSON lines.
//!
//! This crate knows nothing of storage or HTTP; the server streams lines
//! through [`Format::parse_line`] and [`Format::write_record`].

mod formats;
mod text;

pub use formats::{AnyRecord, Format, Record};
pub use text::{AnySignal, TEXT_HASH_NAME, TextSignal, TextSignalType};

use std::fmt;
use std::str::FromStr;

use bulwark_pdq::PdqHash;

/// A kind of signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SignalType {
    /// A 256-bit PDQ perceptual hash.
    Pdq,
    /// MD5 of the file's bytes.
    Md5,
    /// SHA-256 of the file's bytes.
    Sha256,
}

impl SignalType {
    /// Every signal type, in a fixed order.
    pub const ALL: [SignalType; 3] = [SignalType::Pdq, SignalType::Md5, SignalType::Sha256];

    /// The name used on the wire (`pdq`, `md5`, `sha256`), as python-threatexchange spells them.
    pub fn name(self) -> &'static str {
        match self {
            SignalType::Pdq => "pdq",
            SignalType::Md5 => "md5",
            SignalType::Sha256 => "sha256",
        }
    }

    /// Parses a value of this type from its hex text.
    pub fn parse(self, value: &str) -> Result<Signal, SignalError> {
        let v = value.trim();
        let bad = |expected: usize| SignalError::Value {
            signal_type: self,
            expected,
            got: v.chars().take(80).collect(),
        };
        match self {
            SignalType::Pdq => v.parse::<PdqHash>().map(Signal::Pdq).map_err(|_| bad(64)),
            SignalType::Md5 => hex_array::<16>(v).map(Signal::Md5).ok_or_else(|| bad(32)),
            SignalType::Sha256 => hex_array::<32>(v)
                .map(Signal::Sha256)
                .ok_or_else(|| bad(64)),
        }
    }
}

impl fmt::Display for SignalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SignalType {
    type Err = SignalError;

    /// Accepts the names python-threatexchange and HMA use, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pdq" => Ok(SignalType::Pdq),
            "md5" | "photo_md5" | "video_md5" => Ok(SignalType::Md5),
            "sha256" | "sha-256" => Ok(SignalType::Sha256),
            _ => Err(SignalError::UnknownType(s.chars().take(40).collect())),
        }
    }
}

fn hex_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// One signal value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// A PDQ hash.
    Pdq(PdqHash),
    /// An MD5 digest.
    Md5([u8; 16]),
    /// A SHA-256 digest.
    Sha256([u8; 32]),
}

impl Signal {
    /// The signal's type.
    pub fn signal_type(&self) -> SignalType {
        match self {
            Signal::Pdq(_) => SignalType::Pdq,
            Signal::Md5(_) => SignalType::Md5,
            Signal::Sha256(_) => SignalType::Sha256,
        }
    }

    /// Lower-case hex, as every list format writes it.
    pub fn value(&self) -> String {
        match self {
            Signal::Pdq(h) => h.to_string(),
            Signal::Md5(d) => hex::encode(d),
            Signal::Sha256(d) => hex::encode(d),
        }
    }
}

impl fmt::Display for Signal {
    /// `TYPE VALUE`, python-threatexchange's line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.signal_type(), self.value())
    }
}

/// A signal that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    /// Not a signal type Bulwark knows.
    #[error("unknown signal type {0:?} (expected pdq, md5 or sha256)")]
    UnknownType(String),
    /// Not a signal type of either kind (media or text).
    #[error(
        "unknown signal type {0:?} (expected pdq, md5, sha256, text_hash or an entity kind: phone, whatsapp_invite, telegram_user, telegram_invite, signal_link, signal_group, handle, btc_address, eth_address, tron_address, xmr_address, url, domain)"
    )]
    UnknownAnyType(String),
    /// A text signal's value is not valid; the message says why.
    #[error("{0}")]
    Text(String),
    /// The value is not hex of the right length.
    #[error("{signal_type} value must be {expected} hex digits, got {got:?}")]
    Value {
        /// The type asked for.
        signal_type: SignalType,
        /// Hex digits expected.
        expected: usize,
        /// What was given (cut to 80 characters).
        got: String,
    },
}

/// Entry points for `cargo fuzz` (see fuzz/ at the repository root).
#[doc(hidden)]
pub mod fuzzing {
    use super::Format;

    /// Parses `data` as lines of every format and writes back what parsed.
    pub fn list_lines(data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        for format in [Format::Lines, Format::Csv, Format::JsonLines] {
            for line in text.lines() {
                if let Ok(Some(r)) = format.parse_line(line) {
                    let mut out = Vec::new();
                    format
                        .write_record(&r, &mut out)
                        .expect("writing to a Vec cannot fail");
                    let text = String::from_utf8(out).expect("records write UTF-8");
                    let again = format
                        .parse_line(text.trim_end())
                        .expect("a written record parses")
                        .expect("a written record is not blank");
                    assert_eq!(again.signal, r.signal);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_types_round_trip_their_names() {
        for t in SignalType::ALL {
            assert_eq!(t.name().parse::<SignalType>(), Ok(t));
        }
        assert_eq!("VIDEO_MD5".parse::<SignalType>(), Ok(SignalType::Md5));
        assert!("phash".parse::<SignalType>().is_err());
    }

    #[test]
    fn values_are_strict_hex_of_the_right_length() {
        let md5 = "d41d8cd98f00b204e9800998ecf8427e";
        assert_eq!(
            SignalType::Md5.parse(md5).map(|s| s.value()),
            Ok(md5.into())
        );
        assert!(SignalType::Md5.parse(&md5[1..]).is_err());
        assert!(SignalType::Sha256.parse(md5).is_err());
        assert!(SignalType::Pdq.parse(&"g".repeat(64)).is_err());
        let upper = "D41D8CD98F00B204E9800998ECF8427E";
        assert_eq!(
            SignalType::Md5.parse(upper).map(|s| s.value()),
            Ok(md5.into())
        );
    }
}
