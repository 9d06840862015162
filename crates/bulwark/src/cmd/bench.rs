//! `bulwark bench ...`: each benchmark times Bulwark against a named reference
//! in the same run and prints the ratio.

use std::process::ExitCode;

#[path = "bench/franking.rs"]
mod franking;
#[path = "bench/hash.rs"]
mod hash;
#[path = "bench/index.rs"]
mod index;
#[path = "bench/psi.rs"]
mod psi;
#[path = "bench/vpdq.rs"]
mod vpdq;

/// Benchmarks.
#[derive(clap::Subcommand)]
pub enum Command {
    /// PDQ hashing speed against the `pdqhash` reference wrapper.
    Hash(hash::Args),
    /// Index build and search against brute force (and faiss via bench/index/faiss_compare.py).
    Index(index::Args),
    /// vPDQ video hashing speed, ms per frame.
    Vpdq(vpdq::Args),
    /// Message franking and report verification, against one HMAC.
    Franking(franking::Args),
    /// Private matching: device and server time per voucher, sizes, against one scalar multiplication.
    Psi(psi::Args),
}

pub fn run(c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Hash(a) => hash::run(a),
        Command::Index(a) => index::run(a),
        Command::Vpdq(a) => vpdq::run(a),
        Command::Franking(a) => franking::run(a),
        Command::Psi(a) => psi::run(a),
    }
}
