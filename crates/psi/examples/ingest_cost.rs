//! Server cost of ingesting one voucher (one thread), against one
//! constant-time scalar multiplication measured in the same run:
//! `cargo run --release -p bulwark-psi --example ingest_cost [default|compact]`.
//! Half the vouchers are exact matches, half unrelated images.

use std::time::Instant;

use bulwark_pdq::PdqHash;
use bulwark_psi::{AccountState, DeviceAccount, Params, Pdata, ServerKeys};
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand::{RngCore, SeedableRng};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let compact = std::env::args().nth(1).as_deref() == Some("compact");
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let params = if compact {
        Params::compact()
    } else {
        Params::default()
    };
    let keys = ServerKeys::generate(&mut rng);
    let bank: Vec<(u64, PdqHash)> = (0..2000u64)
        .map(|i| {
            let mut b = [0u8; 32];
            rng.fill_bytes(&mut b);
            (i, PdqHash::from_bytes(b))
        })
        .collect();
    let (pdata, _) = Pdata::build(&keys, &params, &bank, &mut rng)?;
    let account = DeviceAccount::generate(&mut rng);
    let n = 200;
    let vouchers: Vec<_> = (0..n)
        .map(|i| {
            let h = if i % 2 == 0 {
                bank[i].1
            } else {
                let mut b = [0u8; 32];
                rng.fill_bytes(&mut b);
                PdqHash::from_bytes(b)
            };
            account.voucher(&pdata, &h, b"", &mut rng)
        })
        .collect::<Result<_, _>>()?;
    let s = Scalar::random(&mut rng);
    let mut p = RistrettoPoint::mul_base(&Scalar::random(&mut rng));
    let t = Instant::now();
    for _ in 0..2000 {
        p = std::hint::black_box(s * p);
    }
    let mul_us = t.elapsed().as_secs_f64() * 1e6 / 2000.0;
    let mut state = AccountState::new();
    let t = Instant::now();
    for v in &vouchers {
        let _ = state.ingest(&keys, &pdata, v);
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!(
        "{}: ingest {us:.1} µs per voucher, one scalar multiplication {mul_us:.1} µs ({:.1}×)",
        if compact { "compact" } else { "default" },
        us / mul_us
    );
    Ok(())
}
