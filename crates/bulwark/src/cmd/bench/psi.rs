//! `bulwark bench psi`: private matching on a synthetic bank of random hashes —
//! device time per voucher, server time per voucher (one thread, and
//! vouchers/s on every core), bytes per voucher, pdata bytes per banked hash,
//! and the cost of opening an account above the threshold. The reference in
//! the same run is one constant-time ristretto255 scalar multiplication (the
//! unit both sides pay per pair).

use std::process::ExitCode;
use std::time::Instant;

use bulwark_pdq::PdqHash;
use bulwark_psi::{AccountState, DeviceAccount, Params, Pdata, ServerKeys, Voucher};
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Arguments of `bulwark bench psi`.
#[derive(clap::Args)]
pub struct Args {
    /// Banked hashes (random).
    #[arg(long, default_value_t = 20_000)]
    bank: usize,
    /// Vouchers to time (half exact or near matches, half unrelated images).
    #[arg(long, default_value_t = 400)]
    vouchers: usize,
    /// LSH tables (default: `Params::default()`).
    #[arg(long)]
    tables: Option<u16>,
    /// Tables that must agree for a voucher to open (default: `Params::default()`).
    #[arg(long)]
    min_tables: Option<u16>,
    /// Use `Params::compact()` (3 tables, any one opens) as the base.
    #[arg(long)]
    compact: bool,
    /// Sampled bits per table (default: `Params::default()`).
    #[arg(long)]
    bits: Option<u8>,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn random_hash(rng: &mut impl RngCore) -> PdqHash {
    let mut b = [0u8; 32];
    rng.fill_bytes(&mut b);
    PdqHash::from_bytes(b)
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed);
    let d = if a.compact {
        Params::compact()
    } else {
        Params::default()
    };
    let params = Params {
        tables: a.tables.unwrap_or(d.tables),
        min_tables: a.min_tables.unwrap_or(d.min_tables),
        bits_per_table: a.bits.unwrap_or(d.bits_per_table),
        ..d
    };
    params.validate()?;
    let keys = ServerKeys::generate(&mut rng);
    let bank: Vec<(u64, PdqHash)> = (0..a.bank as u64)
        .map(|i| (i, random_hash(&mut rng)))
        .collect();

    // Reference: one constant-time variable-base scalar multiplication.
    let s = Scalar::random(&mut rng);
    let mut p = RistrettoPoint::mul_base(&Scalar::random(&mut rng));
    let n_ref = 2000;
    let t = Instant::now();
    for _ in 0..n_ref {
        p = std::hint::black_box(s * p);
    }
    let mul_us = t.elapsed().as_secs_f64() * 1e6 / n_ref as f64;

    let t = Instant::now();
    let (pdata, table) = Pdata::build(&keys, &params, &bank, &mut rng)?;
    let build_s = t.elapsed().as_secs_f64();
    let pdata_bytes = pdata.to_bytes().len();
    let t = Instant::now();
    let device_pdata = Pdata::from_bytes(&pdata.to_bytes(), &pdata.root())?;
    let verify_s = t.elapsed().as_secs_f64();

    // Device: vouchers for a mix of near matches (0–8 bits off a bank entry)
    // and unrelated images, with a 32×32 grey derivative.
    let account = DeviceAccount::generate(&mut rng);
    let derivative = vec![128u8; usize::from(params.derivative_bytes)];
    let images: Vec<PdqHash> = (0..a.vouchers)
        .map(|i| {
            if i % 2 == 0 && !bank.is_empty() {
                let mut b = *bank[rng.gen_range(0..bank.len())].1.as_bytes();
                for _ in 0..rng.gen_range(0..=8) {
                    let k = rng.gen_range(0..256);
                    b[k / 8] ^= 1 << (k % 8);
                }
                PdqHash::from_bytes(b)
            } else {
                random_hash(&mut rng)
            }
        })
        .collect();
    let t = Instant::now();
    let vouchers: Vec<Vec<u8>> = images
        .iter()
        .map(|h| {
            account
                .voucher(&device_pdata, h, &derivative, &mut rng)
                .map(|v| v.to_bytes())
        })
        .collect::<Result<_, _>>()?;
    let device_ms = t.elapsed().as_secs_f64() * 1e3 / a.vouchers.max(1) as f64;
    let voucher_bytes = vouchers.first().map_or(0, Vec::len);

    // Server, one thread: parse + ingest into one account's state.
    let t = Instant::now();
    let mut state = AccountState::new();
    for v in &vouchers {
        let v = Voucher::from_bytes(v)?;
        let _ = state.ingest(&keys, &pdata, &v);
    }
    let server_us = t.elapsed().as_secs_f64() * 1e6 / a.vouchers.max(1) as f64;

    // Server, every core: each voucher into its own account's state.
    let cores = rayon::current_num_threads();
    let rounds = 4;
    let t = Instant::now();
    for _ in 0..rounds {
        vouchers.par_iter().for_each(|v| {
            let mut s = AccountState::new();
            if let Ok(v) = Voucher::from_bytes(v) {
                let _ = s.ingest(&keys, &pdata, &v);
            }
        });
    }
    let per_s = (rounds * vouchers.len()) as f64 / t.elapsed().as_secs_f64();

    // Opening an account just above the threshold: t + 1 real matches (an
    // image the account sends synthetic vouchers for does not count).
    let mut above = AccountState::new();
    let real = bank
        .iter()
        .filter(|(_, h)| !account.sends_synthetic_for(&device_pdata, h))
        .take(usize::from(params.threshold) + 1);
    for (_, h) in real {
        let v = account.voucher(&device_pdata, h, &derivative, &mut rng)?;
        let _ = above.ingest(&keys, &pdata, &v);
    }
    let t = Instant::now();
    let opened = above.open(&pdata, &table).map_or(0, |o| o.len());
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    let state_bytes = above.to_bytes().len();

    let pdata_per_hash = pdata_bytes as f64 / a.bank.max(1) as f64;
    let out = serde_json::json!({
        "bench": "psi", "bank": a.bank, "vouchers": a.vouchers,
        "tables": params.tables, "min_tables": params.min_tables, "bits_per_table": params.bits_per_table,
        "threshold": params.threshold, "max_synthetic": params.max_synthetic,
        "scalar_mul_us": mul_us,
        "device_ms_per_voucher": device_ms,
        "device_ratio_to_scalar_mul": device_ms * 1e3 / mul_us,
        "server_us_per_voucher": server_us,
        "server_ratio_to_scalar_mul": server_us / mul_us,
        "server_vouchers_per_s_all_cores": per_s, "cores": cores,
        "bytes_per_voucher": voucher_bytes,
        "pdata_bytes": pdata_bytes, "pdata_bytes_per_banked_hash": pdata_per_hash,
        "pdata_build_s": build_s, "pdata_parse_verify_s": verify_s,
        "open_above_threshold_ms": open_ms, "opened": opened,
        "account_state_bytes_at_threshold_plus_one": state_bytes,
    });
    if a.json {
        println!("{out}");
    } else {
        println!(
            "private matching, bank of {} random hashes, L = {} tables × k = {} bits, {} must agree, t = {}",
            a.bank, params.tables, params.bits_per_table, params.min_tables, params.threshold
        );
        println!("  one scalar multiplication (reference)    {mul_us:9.1} µs");
        println!(
            "  device: one voucher                       {device_ms:9.2} ms ({:.0}× one multiplication)",
            device_ms * 1e3 / mul_us
        );
        println!(
            "  server: ingest one voucher, one thread    {server_us:9.1} µs ({:.1}× one multiplication)",
            server_us / mul_us
        );
        println!("  server: vouchers/s on {cores} cores            {per_s:9.0}");
        println!("  bytes per voucher                         {voucher_bytes:9}");
        println!("  pdata bytes per banked hash               {pdata_per_hash:9.1}");
        println!("  pdata build / parse + verify              {build_s:7.2} s / {verify_s:.3} s");
        println!(
            "  open an account at t + 1 ({opened} opened)     {open_ms:9.2} ms (state {state_bytes} bytes)"
        );
    }
    Ok(ExitCode::SUCCESS)
}
