//! A stable-toolchain stand-in for the fuzz targets (fuzz/fuzz_targets/psi_*.rs):
//! thousands of mutations of valid pdata, vouchers and account states go
//! through the same `fuzzing` entry points, which must never panic.

use bulwark_pdq::PdqHash;
use bulwark_psi::{AccountState, DeviceAccount, Params, Pdata, ServerKeys, fuzzing};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn mutate(rng: &mut ChaCha8Rng, b: &[u8]) -> Vec<u8> {
    let mut v = b.to_vec();
    match rng.gen_range(0..5) {
        0 if !v.is_empty() => {
            let i = rng.gen_range(0..v.len());
            v[i] ^= 1 << rng.gen_range(0..8);
        }
        1 => v.truncate(rng.gen_range(0..=v.len())),
        2 => {
            let i = rng.gen_range(0..=v.len());
            v.insert(i, rng.r#gen());
        }
        3 if v.len() > 12 => {
            // Overwrite a length-like field with a large value.
            let i = rng.gen_range(0..v.len() - 4);
            v[i..i + 4].copy_from_slice(&[0xff, 0xff, 0xff, rng.r#gen()]);
        }
        _ => {
            let n = rng.gen_range(0..64);
            v = (0..n).map(|_| rng.r#gen()).collect();
        }
    }
    v
}

#[test]
fn mutated_inputs_never_panic() {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let keys = ServerKeys::generate(&mut rng);
    // The same parameters as the fuzzing fixture, so mutated vouchers get
    // as far as ingestion.
    let params = Params {
        tables: 2,
        bits_per_table: 8,
        threshold: 1,
        max_synthetic: 2,
        derivative_bytes: 16,
        ..Params::default()
    };
    let bank = [(1u64, PdqHash::from_bytes([0; 32]))];
    let (pdata, _) = Pdata::build(&keys, &params, &bank, &mut rng).expect("builds");
    let pbytes = pdata.to_bytes();
    fuzzing::pdata(&pbytes);
    let a = DeviceAccount::generate(&mut rng);
    let mut state = AccountState::new();
    let mut vbytes = Vec::new();
    for i in 0..3u8 {
        let v = a
            .voucher(&pdata, &PdqHash::from_bytes([i; 32]), b"grey", &mut rng)
            .expect("voucher");
        let _ = state.ingest(&keys, &pdata, &v);
        vbytes.push(v.to_bytes());
    }
    let sbytes = state.to_bytes();
    fuzzing::account_state(&sbytes);
    let seeds: Vec<Vec<u8>> = (0..4u8)
        .map(|i| fuzzing::seed_voucher(i, i % 2 == 1))
        .collect();
    for s in &seeds {
        fuzzing::voucher(s);
    }
    for _ in 0..3000 {
        let s = &seeds[rng.gen_range(0..seeds.len())];
        fuzzing::voucher(&mutate(&mut rng, s));
        fuzzing::pdata(&mutate(&mut rng, &pbytes));
        let v = &vbytes[rng.gen_range(0..vbytes.len())];
        fuzzing::voucher(&mutate(&mut rng, v));
        fuzzing::account_state(&mutate(&mut rng, &sbytes));
    }
    let _ = rng.next_u32();
}
