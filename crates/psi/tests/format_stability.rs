//! Storage-stability known answers: a pdata, a voucher and an account state
//! written by format version 1 are committed in tests/data/; they must keep
//! loading, and the same seeded inputs must keep producing the same bytes (a
//! change here is a wire-format change: bump the version and keep reading the
//! old one). Regenerate with `BULWARK_REGENERATE_KATS=1 cargo test -p bulwark-psi
//! --test format_stability` only for a deliberate format change.

use std::path::PathBuf;

use bulwark_pdq::PdqHash;
use bulwark_psi::{AccountState, DeviceAccount, Params, Pdata, Root, ServerKeys, Voucher};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Server key, pdata, root, account, voucher, state.
type Generated = (Vec<u8>, Vec<u8>, Root, Vec<u8>, Vec<u8>, Vec<u8>);

fn generate() -> Generated {
    let mut rng = ChaCha8Rng::seed_from_u64(20261123);
    let keys = ServerKeys::generate(&mut rng);
    let params = Params {
        tables: 2,
        min_tables: 1,
        bits_per_table: 8,
        threshold: 1,
        max_synthetic: 2,
        synthetic_probability: 0.0,
        radius: 31,
        derivative_bytes: 16,
    };
    let bank = [
        (7u64, PdqHash::from_bytes([0x11; 32])),
        (8u64, PdqHash::from_bytes([0x22; 32])),
    ];
    let (pdata, _) = Pdata::build(&keys, &params, &bank, &mut rng).expect("builds");
    let account = DeviceAccount::generate(&mut rng);
    let v = account
        .voucher(&pdata, &bank[0].1, b"benign grey", &mut rng)
        .expect("voucher");
    let mut state = AccountState::new();
    state.ingest(&keys, &pdata, &v).expect("ingests");
    (
        keys.to_bytes().to_vec(),
        pdata.to_bytes(),
        pdata.root(),
        account.to_bytes().to_vec(),
        v.to_bytes(),
        state.to_bytes(),
    )
}

#[test]
fn version_1_files_still_load_and_inputs_give_the_same_bytes() {
    let (keys, pdata, root, account, voucher, state) = generate();
    let files = [
        ("kat_server_key.bin", &keys),
        ("kat_pdata.bin", &pdata),
        ("kat_account.bin", &account),
        ("kat_voucher.bin", &voucher),
        ("kat_state.bin", &state),
    ];
    if std::env::var_os("BULWARK_REGENERATE_KATS").is_some() {
        for (name, bytes) in files {
            std::fs::write(data(name), bytes).expect("write");
        }
        std::fs::write(data("kat_pdata_root.hex"), format!("{root}\n")).expect("write");
    }
    let read = |n: &str| std::fs::read(data(n)).expect("committed known answer");
    let stored_root: Root = std::fs::read_to_string(data("kat_pdata_root.hex"))
        .expect("root")
        .parse()
        .expect("hex");
    // Old files load and work together.
    let k = ServerKeys::from_bytes(&read("kat_server_key.bin")).expect("key loads");
    let p = Pdata::from_bytes(&read("kat_pdata.bin"), &stored_root).expect("pdata verifies");
    let _ = DeviceAccount::from_bytes(&read("kat_account.bin")).expect("account loads");
    let v = Voucher::from_bytes(&read("kat_voucher.bin")).expect("voucher parses");
    let mut s = AccountState::new();
    s.ingest(&k, &p, &v).expect("old voucher ingests");
    assert_eq!(s.to_bytes(), read("kat_state.bin"));
    assert_eq!(
        AccountState::from_bytes(&read("kat_state.bin")).expect("state loads"),
        s
    );
    // The same inputs still give the same bytes.
    for (name, bytes) in files {
        assert_eq!(&read(name), bytes, "{name} drifted");
    }
    assert_eq!(root, stored_root);
}
