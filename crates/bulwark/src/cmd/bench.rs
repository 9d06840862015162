//! `bulwark bench ...`: each benchmark times Bulwark against a named reference
//! in the same run and prints the ratio.

use std::process::ExitCode;

#[path = "bench/franking.rs"]
mod franking;
#[path = "bench/hash.rs"]
mod hash;
#[path = "bench/import.rs"]
mod import;
#[path = "bench/index.rs"]
mod index;
#[path = "bench/live.rs"]
mod live;
#[path = "bench/psi.rs"]
mod psi;
#[path = "bench/serve.rs"]
mod serve;
#[path = "bench/vpdq.rs"]
mod vpdq;

/// Benchmarks.
#[derive(clap::Subcommand)]
pub enum Command {
    /// PDQ hashing speed against the `pdqhash` reference wrapper.
    Hash(hash::Args),
    /// Index build and search against brute force (and faiss via bench/index/faiss_compare.py).
    Index(index::Args),
    /// The live index under a bulk load (batches of inserts), against one segment rebuilt at each sixteenth.
    Live(live::Args),
    /// vPDQ video hashing speed, ms per frame.
    Vpdq(vpdq::Args),
    /// Message franking and report verification, against one HMAC.
    Franking(franking::Args),
    /// Private matching: device and server time per voucher, sizes, against one scalar multiplication.
    Psi(psi::Args),
    /// The matcher service under load on loopback (match by hash and by upload), and start-up.
    Serve(serve::Args),
    /// A large list through an import job, with single writes during it, against per-row inserts.
    Import(import::Args),
}

pub fn run(c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Hash(a) => hash::run(a),
        Command::Index(a) => index::run(a),
        Command::Live(a) => live::run(a),
        Command::Vpdq(a) => vpdq::run(a),
        Command::Franking(a) => franking::run(a),
        Command::Psi(a) => psi::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Import(a) => import::run(a),
    }
}

/// The CPU model and core count, for the record.
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores")
}
