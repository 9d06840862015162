//! Bulwark's client SDK for messenger apps: frank a message, stamp it on the
//! delivery service, verify it on receipt and report it ([`franking`]).
//! (Safety vouchers for attachments will live here too; not built yet.)

pub mod franking;
