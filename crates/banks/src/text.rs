//! Text and entity signals (issue 18): the ad near-duplicate hash and the
//! entities of `bulwark-signals`, as bank signals.
//!
//! [`Signal`] stays `Copy` with fixed-size values, so its users (indexes,
//! matchers, the private path) are unchanged. Text signals are a separate
//! type, [`TextSignal`], whose entity values are owned strings, and
//! [`AnySignal`] is either kind, for the list formats and the places (bank
//! import/export, exact lookup) that hold both.

use std::fmt;
use std::str::FromStr;

use bulwark_signals::{EntityKind, TextHash};

use crate::{Signal, SignalError, SignalType};

/// A kind of text signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TextSignalType {
    /// The 256-bit ad near-duplicate hash (1-bit MinHash of character
    /// 5-grams of the folded text), compared by Hamming distance.
    TextHash,
    /// A canonical entity value: phone number, handle, invite, wallet, URL, domain.
    Entity(EntityKind),
}

/// The wire name of the ad text hash.
pub const TEXT_HASH_NAME: &str = "text_hash";

impl TextSignalType {
    /// Every text signal type: the text hash, then each entity kind.
    pub fn all() -> Vec<TextSignalType> {
        std::iter::once(TextSignalType::TextHash)
            .chain(EntityKind::ALL.into_iter().map(TextSignalType::Entity))
            .collect()
    }

    /// The name used on the wire: `text_hash`, or the entity kind's name
    /// (`phone`, `telegram_user`, `btc_address`, `url`, `domain`, …).
    pub fn name(self) -> &'static str {
        match self {
            TextSignalType::TextHash => TEXT_HASH_NAME,
            TextSignalType::Entity(k) => k.name(),
        }
    }

    /// Parses and canonicalises a value of this type: 64 hex digits for the
    /// text hash; for an entity the same checks as extraction (E.164 via
    /// libphonenumber, wallet checksums, WHATWG URL, Public Suffix List).
    pub fn parse(self, value: &str) -> Result<TextSignal, SignalError> {
        match self {
            TextSignalType::TextHash => value
                .trim()
                .parse::<TextHash>()
                .map(TextSignal::TextHash)
                .map_err(|e| SignalError::Text(e.to_string())),
            TextSignalType::Entity(kind) => kind
                .canonicalize(value)
                .map(|value| TextSignal::Entity { kind, value })
                .map_err(|e| SignalError::Text(e.to_string())),
        }
    }
}

impl fmt::Display for TextSignalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TextSignalType {
    type Err = SignalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        if t == TEXT_HASH_NAME {
            return Ok(TextSignalType::TextHash);
        }
        EntityKind::ALL
            .into_iter()
            .find(|k| k.name() == t)
            .map(TextSignalType::Entity)
            .ok_or_else(|| SignalError::UnknownType(s.chars().take(40).collect()))
    }
}

/// One text signal value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TextSignal {
    /// An ad near-duplicate hash.
    TextHash(TextHash),
    /// An entity with its canonical value.
    Entity {
        /// What it is.
        kind: EntityKind,
        /// Canonical value (never contains whitespace).
        value: String,
    },
}

impl TextSignal {
    /// The signal's type.
    pub fn signal_type(&self) -> TextSignalType {
        match self {
            TextSignal::TextHash(_) => TextSignalType::TextHash,
            TextSignal::Entity { kind, .. } => TextSignalType::Entity(*kind),
        }
    }

    /// The value as lists write it: lower-case hex for the text hash, the
    /// canonical value for an entity.
    pub fn value(&self) -> String {
        match self {
            TextSignal::TextHash(h) => h.to_string(),
            TextSignal::Entity { value, .. } => value.clone(),
        }
    }
}

impl fmt::Display for TextSignal {
    /// `TYPE VALUE`, like python-threatexchange's lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.signal_type(), self.value())
    }
}

/// A signal of either kind: a media hash or a text signal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AnySignal {
    /// PDQ, MD5 or SHA-256.
    Media(Signal),
    /// Text hash or entity.
    Text(TextSignal),
}

impl AnySignal {
    /// Parses `TYPE` and `VALUE` of any signal type Bulwark knows.
    pub fn parse(signal_type: &str, value: &str) -> Result<AnySignal, SignalError> {
        if let Ok(t) = signal_type.parse::<SignalType>() {
            return t.parse(value).map(AnySignal::Media);
        }
        match signal_type.parse::<TextSignalType>() {
            Ok(t) => t.parse(value).map(AnySignal::Text),
            Err(_) => Err(SignalError::UnknownAnyType(
                signal_type.chars().take(40).collect(),
            )),
        }
    }

    /// Whether `name` is a signal type of either kind.
    pub fn is_type_name(name: &str) -> bool {
        name.parse::<SignalType>().is_ok() || name.parse::<TextSignalType>().is_ok()
    }

    /// The type's wire name.
    pub fn type_name(&self) -> &'static str {
        match self {
            AnySignal::Media(s) => s.signal_type().name(),
            AnySignal::Text(t) => t.signal_type().name(),
        }
    }

    /// The value as lists write it.
    pub fn value(&self) -> String {
        match self {
            AnySignal::Media(s) => s.value(),
            AnySignal::Text(t) => t.value(),
        }
    }

    /// The media signal, if this is one.
    pub fn as_media(&self) -> Option<&Signal> {
        match self {
            AnySignal::Media(s) => Some(s),
            AnySignal::Text(_) => None,
        }
    }
}

impl From<Signal> for AnySignal {
    fn from(s: Signal) -> AnySignal {
        AnySignal::Media(s)
    }
}

impl From<TextSignal> for AnySignal {
    fn from(s: TextSignal) -> AnySignal {
        AnySignal::Text(s)
    }
}

impl fmt::Display for AnySignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.type_name(), self.value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_type_round_trips_its_name_and_none_clashes_with_media() {
        for t in TextSignalType::all() {
            assert_eq!(t.name().parse::<TextSignalType>(), Ok(t));
            assert!(t.name().parse::<SignalType>().is_err(), "{t}");
        }
        assert_eq!(TextSignalType::all().len(), 1 + EntityKind::ALL.len());
        assert!("pdq".parse::<TextSignalType>().is_err());
    }

    #[test]
    fn entity_values_are_canonicalised_and_checked() {
        // NANP 555-0100..0199 is reserved for fiction.
        let s = AnySignal::parse("phone", "+1 (415) 555-0142").unwrap();
        assert_eq!(s.to_string(), "phone +14155550142");
        let u = AnySignal::parse("URL", "HTTPS://Example.COM/a?utm_source=x#frag").unwrap();
        assert_eq!(u.value(), "https://example.com/a");
        let d = AnySignal::parse("domain", "shop.example.co.uk").unwrap();
        assert_eq!(d.value(), "example.co.uk");
        // EIP-55's first example, then with one letter's case flipped.
        let eth = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        assert_eq!(
            AnySignal::parse("eth_address", eth).unwrap().value(),
            eth.to_ascii_lowercase()
        );
        assert!(AnySignal::parse("eth_address", &eth.replace("aA", "AA")).is_err());
        // The Bitcoin genesis address; one character changed fails Base58Check.
        assert!(AnySignal::parse("btc_address", "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa").is_ok());
        assert!(AnySignal::parse("btc_address", "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb").is_err());
        assert!(AnySignal::parse("phone", "not a number").is_err());
        assert!(matches!(
            AnySignal::parse("fax", "1"),
            Err(SignalError::UnknownAnyType(_))
        ));
    }

    #[test]
    fn text_hash_values_are_64_hex_digits() {
        let h = TextHash::of_text("Grey sofa, pick up only").unwrap();
        let s = AnySignal::parse("text_hash", &h.to_string().to_uppercase()).unwrap();
        assert_eq!(s, AnySignal::Text(TextSignal::TextHash(h)));
        assert!(AnySignal::parse("text_hash", &h.to_string()[1..]).is_err());
        // Media types still parse as media.
        assert!(matches!(
            AnySignal::parse("md5", &"ab".repeat(16)),
            Ok(AnySignal::Media(Signal::Md5(_)))
        ));
    }
}
