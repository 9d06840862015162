//! Bulwark's client SDK for messenger apps: frank a message, stamp it on the
//! delivery service, verify it on receipt and report it ([`franking`]); hash
//! an image attachment and build its safety voucher ([`voucher`]).

pub mod franking;
#[cfg(feature = "http")]
pub mod http;
pub mod voucher;
