//! Bulwark's client SDK for messenger apps: one call to hash an attachment and
//! build its safety voucher ([`voucher`]); one call to frank a message, stamp
//! it on the delivery service, verify it on receipt and report it ([`franking`]).

pub mod franking;
pub mod voucher;
