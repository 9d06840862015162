//! A small reference end-to-end encrypted messenger on MLS (RFC 9420,
//! [openmls]) that carries Bulwark's franking, safety vouchers and reports.
//!
//! - [`client`]: one MLS client per device; 1:1s (two-user groups) and
//!   groups, membership changes, several devices per user, committed
//!   encrypted attachments; franks every message, vouchers every image and
//!   a video's key frames,
//!   verifies every stamp, reports signed by the device.
//! - [`delivery`]: the delivery service (axum; SQLite or PostgreSQL): authenticated
//!   devices, key packages, commit and welcome fan-out, per-device queues,
//!   a ciphertext attachment store; stamps through the matcher's stamper
//!   role and forwards vouchers.
//! - [`tui`]: the terminal UI (ratatui) over a [`Client`].
//!
//! See `docs/MESSENGER.md` for the integration guide.
//!
//! [`client`] and [`tui`] need the `mls` feature (on by default); without
//! it the crate is [`delivery`] and [`wire`] (with [`http`]), which builds much
//! faster (no openmls, no ratatui).

#[cfg(feature = "mls")]
pub mod client;
pub mod delivery;
/// The HTTP client ([`bulwark_client::http`]), under the name this crate used.
pub use bulwark_client::http;
#[cfg(feature = "mls")]
pub mod tui;
pub mod wire;

#[cfg(feature = "mls")]
pub use client::{Attachment, Client, Message, PdataPolicy, Received, Sent};
