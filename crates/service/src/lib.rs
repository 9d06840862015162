//! Bulwark's matcher service without HTTP: the in-memory matching state
//! over the store ([`catalog`]), banked extra hashes ([`extras`]), the
//! decode pool that hashes uploads ([`media`]), secrets sealed under the
//! key-encryption key ([`secrets`]) and the service's counters
//! ([`metrics`]), API keys and roles ([`keys`]), banks ([`banks`]) and their
//! content ([`content`]), list import and export ([`lists`]) and import
//! jobs ([`imports`]), enrolled devices ([`devices`]), providers and the
//! signed-root log ([`providers`]), verifiable reports ([`franking`],
//! [`reports`]), private matching ([`vouchers`]), text and entity
//! signals, rules and rescue banks ([`signals`]), and curation and
//! exchanges through Meta's HMA shapes ([`hma`], [`exchanges`]), and the
//! reviewer console's operations: sign-in and sessions, queues and reveal
//! budgets, decisions, webhooks, evidence packages and CyberTipline
//! reports ([`review`]). Nothing
//! here imports axum: `bulwark-server` is the HTTP layer over these
//! operations, and they are tested without it.

pub mod banks;
pub mod catalog;
pub mod content;
pub mod devices;
pub mod error;
pub mod exchanges;
pub mod extras;
pub mod franking;
pub mod hma;
pub mod imports;
mod journal;
pub mod keys;
pub mod lists;
pub mod matching;
pub mod media;
pub mod metrics;
pub mod providers;
pub mod reports;
pub mod review;
pub mod secrets;
pub mod signals;
pub mod vouchers;

pub use error::{Error, Kind, Result};
