//! Storage-stability known answers: a pdata, a signed root, a voucher and an
//! account state written by the current formats (pdata 2, voucher 2, state 2,
//! signed root 1) are committed in tests/data/; they must keep loading, and the
//! same seeded inputs must keep producing the same bytes (a change here is a
//! wire-format change: bump the version). Regenerate with
//! `BULWARK_REGENERATE_KATS=1 cargo test -p bulwark-psi --test format_stability`
//! only for a deliberate format change.
//!
//! Version 1 pdata, vouchers and states (`v1_*`) are refused with a clear
//! error, not misread: version 2 changed what the header promises (epoch,
//! provider quorum, bank size) and how a voucher opens (issue 12), so a
//! version 1 file cannot be used safely; the service rebuilds its pdata and
//! starts new account states.

use std::path::PathBuf;

use bulwark_pdq::PdqHash;
use bulwark_psi::{
    AccountState, DeviceAccount, Params, Pdata, PdataError, PdataIn, ProviderKey, Release, Root,
    ServerKeys, SignedRoot, Voucher,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Server key, pdata, root, account, voucher, state, signed root.
type Generated = (Vec<u8>, Vec<u8>, Root, Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>);

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
        probes: 1,
        derivative_bytes: 16,
    };
    let bank = [
        (7u64, PdqHash::from_bytes([0x11; 32])),
        (8u64, PdqHash::from_bytes([0x22; 32])),
    ];
    let release = Release {
        epoch: 7,
        min_providers: 2,
    };
    let (pdata, _) =
        Pdata::build_release(&keys, &params, release, &bank, &mut rng).expect("builds");
    let account = DeviceAccount::generate(&mut rng);
    let v = account
        .voucher(&pdata, &bank[0].1, b"benign grey", &mut rng)
        .expect("voucher");
    let mut state = AccountState::new();
    state.ingest(&keys, &pdata, &v).expect("ingests");
    let mut signed = SignedRoot::new(&pdata);
    for _ in 0..2 {
        signed.add(ProviderKey::generate(&mut rng).sign(&pdata));
    }
    (
        keys.to_bytes().to_vec(),
        pdata.to_bytes(),
        pdata.root(),
        account.to_bytes().to_vec(),
        v.to_bytes(),
        state.to_bytes(),
        signed.to_bytes(),
    )
}

#[test]
fn current_files_still_load_and_inputs_give_the_same_bytes() {
    let (keys, pdata, root, account, voucher, state, signed) = generate();
    let files = [
        ("kat_signed_root.bin", &signed),
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
    let sr = SignedRoot::from_bytes(&read("kat_signed_root.bin")).expect("signed root parses");
    assert_eq!(sr.root, stored_root);
    assert_eq!(sr.header_digest, p.header_digest());
    assert_eq!(
        sr.valid_signers(&sr.signatures.iter().map(|s| s.key).collect::<Vec<_>>())
            .len(),
        2
    );
}

#[test]
fn version_1_files_are_refused_with_a_clear_error() {
    let read = |n: &str| std::fs::read(data(n)).expect("committed v1 file");
    assert_eq!(
        PdataIn::from_bytes(&read("v1_kat_pdata.bin")).map(|_| ()),
        Err(PdataError::UnsupportedVersion(1))
    );
    assert!(format!("{}", PdataError::UnsupportedVersion(1)).contains("reads version 2"));
    assert!(matches!(
        Voucher::from_bytes(&read("v1_kat_voucher.bin")),
        Err(bulwark_psi::Rejection::Malformed(
            "unsupported voucher version"
        ))
    ));
    assert!(AccountState::from_bytes(&read("v1_kat_state.bin")).is_err());
    // Keys and accounts kept their format.
    ServerKeys::from_bytes(&read("v1_kat_server_key.bin")).expect("v1 key loads");
    DeviceAccount::from_bytes(&read("v1_kat_account.bin")).expect("v1 account loads");
}

/// Multi-probe (pdata and voucher version 3): a committed pdata, voucher and
/// state (`kat3_*`) keep loading and opening together, and the same seeded
/// inputs (hash, per-bit margins) keep producing the same bytes. Regenerate
/// with `BULWARK_REGENERATE_KATS=1` only for a deliberate format change.
#[test]
fn multiprobe_files_still_load_and_inputs_give_the_same_bytes() {
    let mut rng = ChaCha8Rng::seed_from_u64(20261201);
    let keys = ServerKeys::generate(&mut rng);
    let params = Params {
        tables: 2,
        min_tables: 1,
        bits_per_table: 8,
        threshold: 1,
        max_synthetic: 2,
        synthetic_probability: 0.0,
        radius: 31,
        probes: 3,
        derivative_bytes: 16,
    };
    let bank = [
        (7u64, PdqHash::from_bytes([0x11; 32])),
        (8u64, PdqHash::from_bytes([0x22; 32])),
    ];
    let (pdata, _) = Pdata::build(&keys, &params, &bank, &mut rng).expect("builds");
    let account = DeviceAccount::generate(&mut rng);
    let margins: [f32; 256] = std::array::from_fn(|i| (i * 37 % 256) as f32);
    let v = account
        .voucher_probing(
            &pdata,
            &bank[0].1,
            Some(&margins),
            &bank[0].1,
            b"benign grey",
            &mut rng,
        )
        .expect("voucher");
    let mut state = AccountState::new();
    state.ingest(&keys, &pdata, &v).expect("ingests");
    assert_eq!(state.len(), 1);
    let files = [
        ("kat3_server_key.bin", keys.to_bytes().to_vec()),
        ("kat3_pdata.bin", pdata.to_bytes()),
        ("kat3_voucher.bin", v.to_bytes()),
        ("kat3_state.bin", state.to_bytes()),
    ];
    if std::env::var_os("BULWARK_REGENERATE_KATS").is_some() {
        for (name, bytes) in &files {
            std::fs::write(data(name), bytes).expect("write");
        }
        std::fs::write(data("kat3_pdata_root.hex"), format!("{}\n", pdata.root())).expect("write");
    }
    let read = |n: &str| std::fs::read(data(n)).expect("committed known answer");
    let root: Root = std::fs::read_to_string(data("kat3_pdata_root.hex"))
        .expect("root")
        .parse()
        .expect("hex");
    let k = ServerKeys::from_bytes(&read("kat3_server_key.bin")).expect("key loads");
    let p = Pdata::from_bytes(&read("kat3_pdata.bin"), &root).expect("pdata verifies");
    assert_eq!(p.params(), &params);
    let old = Voucher::from_bytes(&read("kat3_voucher.bin")).expect("voucher parses");
    let mut s = AccountState::new();
    s.ingest(&k, &p, &old).expect("old voucher ingests");
    assert_eq!(s.to_bytes(), read("kat3_state.bin"));
    for (name, bytes) in &files {
        assert_eq!(&read(name), bytes, "{name} drifted");
    }
    assert_eq!(pdata.root(), root);
}
