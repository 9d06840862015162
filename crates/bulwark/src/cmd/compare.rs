//! `bulwark compare`: the Hamming distance between two PDQ hashes.

use std::process::ExitCode;

use anyhow::Context;
use bulwark_pdq::PdqHash;

/// Arguments of `bulwark compare`.
#[derive(clap::Args)]
pub struct Args {
    /// First hash (64 hex digits).
    a: String,
    /// Second hash (64 hex digits).
    b: String,
    /// Print a JSON object.
    #[arg(long)]
    json: bool,
    /// Exit 0 only when the distance is at most this (grep-like: 1 otherwise).
    #[arg(long)]
    threshold: Option<u32>,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let x: PdqHash =
        a.a.parse()
            .with_context(|| format!("first hash {:?}", a.a))?;
    let y: PdqHash =
        a.b.parse()
            .with_context(|| format!("second hash {:?}", a.b))?;
    let d = x.distance(&y);
    if a.json {
        println!("{}", serde_json::json!({"distance": d, "a": x, "b": y}));
    } else {
        println!("{d}");
    }
    Ok(match a.threshold {
        Some(t) if d > t => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}
