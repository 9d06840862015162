//! Text and entity signals for trafficking ads.
//!
//! Anti-trafficking teams exchange more than image hashes: the *text* of ads
//! that are re-posted with small edits, and the *entities* in them — phone
//! numbers, messaging handles and invite links, crypto wallets, URLs. This
//! crate computes those signals so that banks can hold them and the matcher
//! can find them again.
//!
//! - [`normalize`]: the folding every text signal goes through (NFKD without
//!   marks, case, confusables skeleton, leetspeak, emoji and spacing, Arabic
//!   and Kurdish letter variants and digits), with a map back to source spans.
//! - [`TextHash`]: a 256-bit near-duplicate hash of an ad (1-bit MinHash of
//!   character 5-gram shingles), compared by Hamming distance like PDQ.
//! - [`index`]: [`TextHashIndex`], bit-sampling LSH over banked text hashes
//!   (answers a radius query without scanning the bank; tested against the
//!   scan).
//! - [`entities`]: phone numbers in E.164, WhatsApp/Telegram/Signal handles
//!   and invite links, Bitcoin/Ethereum/TRON/Monero addresses with checksum
//!   validation, URLs and registrable domains.
//! - [`rules`]: keyword/regex banks with a language, explaining which rule
//!   matched which span.
//! - [`lang`]: which language a text is in, per script (whatlang, with a
//!   documented rule for Sorani and Kurmanji), for choosing rule banks.
//! - [`corpus`]: a seeded generator of clearly fictitious classified ads and
//!   their re-posts, for evaluation on benign text.
//!
//! ```
//! use bulwark_signals::{TextHash, TEXT_HASH_RADIUS, entities};
//! let a = TextHash::of_text("Sofa in good condition, grey fabric, pick up only. 80 EUR").unwrap();
//! let b = TextHash::of_text("S0FA in good condition!! grey fabric, pick up only 🛋 60 EUR").unwrap();
//! assert!(a.distance(&b) <= TEXT_HASH_RADIUS);
//! let found = entities::extract("call +44 20 7946 0123", &Default::default());
//! assert_eq!(found[0].value, "+442079460123");
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod corpus;
pub mod entities;
pub mod eval;
pub mod index;
pub mod lang;
pub mod normalize;
pub mod rules;
pub mod texthash;

pub use entities::{Entity, EntityKind, ExtractOptions, extract};
pub use index::{IndexParams, TextHashIndex, voucher_open_probability};
pub use lang::Languages;
pub use normalize::{Folded, fold};
pub use rules::{RuleBank, RuleBankSpec, RuleMatch, RuleSpec};
pub use texthash::{TEXT_HASH_RADIUS, TextHash};

/// An error of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller's input is not valid; the message says how.
    #[error("{0}")]
    InvalidInput(String),
}
