//! The promises of private matching, one test each (see docs/THREAT-MODEL.md).
//! All data is synthetic: random 256-bit hashes and placeholder derivatives.

use bulwark_pdq::PdqHash;
use bulwark_psi::{
    AccountState, DeviceAccount, Params, Pdata, PdataError, PdataIn, Rejection, Root, ServerKeys,
    ServerTable, Voucher, opened_pairs,
};
use proptest::prelude::*;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

const T: u16 = 3;

fn params() -> Params {
    Params {
        tables: 6,
        min_tables: 1,
        bits_per_table: 32,
        threshold: T,
        max_synthetic: 8,
        synthetic_probability: 0.0,
        radius: 31,
        derivative_bytes: 64,
    }
}

fn random_hash(rng: &mut impl RngCore) -> PdqHash {
    let mut b = [0u8; 32];
    rng.fill_bytes(&mut b);
    PdqHash::from_bytes(b)
}

fn flip(h: &PdqHash, bits: &[usize]) -> PdqHash {
    let mut b = *h.as_bytes();
    for &k in bits {
        b[k / 8] ^= 1 << (k % 8);
    }
    PdqHash::from_bytes(b)
}

struct World {
    rng: ChaCha8Rng,
    keys: ServerKeys,
    pdata: Pdata,
    table: ServerTable,
    bank: Vec<(u64, PdqHash)>,
}

fn world(seed: u64, params: Params) -> World {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let keys = ServerKeys::generate(&mut rng);
    let bank: Vec<(u64, PdqHash)> = (0..40).map(|i| (1000 + i, random_hash(&mut rng))).collect();
    let (pdata, table) = Pdata::build(&keys, &params, &bank, &mut rng).expect("builds");
    World {
        rng,
        keys,
        pdata,
        table,
        bank,
    }
}

impl World {
    fn voucher(&mut self, a: &DeviceAccount, h: &PdqHash) -> Voucher {
        let d = format!("derivative of {h}");
        a.voucher(&self.pdata, h, &d.as_bytes()[..64], &mut self.rng)
            .expect("voucher")
    }
    fn ingest(&self, s: &mut AccountState, v: &Voucher) -> Result<(), Rejection> {
        s.ingest(&self.keys, &self.pdata, v)
    }
}

#[test]
fn a_match_opens_one_pair_per_agreeing_table_and_a_non_match_none() {
    let mut w = world(1, params());
    let a = DeviceAccount::generate(&mut w.rng);
    for i in 0..10 {
        let h = w.bank[i].1;
        let v = w.voucher(&a, &h);
        // An exact match agrees in every table: one of its two pairs opens in each.
        assert_eq!(opened_pairs(&w.keys, &w.pdata, &v), 6);
        // A copy 12 bits away opens exactly the tables whose sampled bits it kept.
        let bits: Vec<usize> = (0..12).map(|_| w.rng.gen_range(0..256)).collect();
        let near = flip(&h, &bits);
        let agree = w
            .pdata
            .sub_keys(&near)
            .iter()
            .zip(w.pdata.sub_keys(&h))
            .filter(|(a, b)| **a == *b)
            .count();
        let v = w.voucher(&a, &near);
        assert_eq!(opened_pairs(&w.keys, &w.pdata, &v), agree);
        let far = random_hash(&mut w.rng);
        let v = w.voucher(&a, &far);
        assert_eq!(opened_pairs(&w.keys, &w.pdata, &v), 0);
    }
}

#[test]
fn near_duplicates_match_as_often_as_the_lsh_predicts() {
    let mut w = world(2, params());
    let a = DeviceAccount::generate(&mut w.rng);
    for (d, at_least) in [(4usize, 0.97), (8, 0.85)] {
        let n = 150;
        let mut hits = 0;
        for i in 0..n {
            let h = w.bank[i % w.bank.len()].1;
            let mut bits: Vec<usize> = (0..256).collect();
            for j in 0..d {
                let k = w.rng.gen_range(j..256);
                bits.swap(j, k);
            }
            let v = w.voucher(&a, &flip(&h, &bits[..d]));
            if opened_pairs(&w.keys, &w.pdata, &v) > 0 {
                hits += 1;
            }
        }
        let rate = f64::from(hits) / n as f64;
        assert!(rate >= at_least, "distance {d}: matched {rate:.3}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Flipping any bits a table does not sample never stops that table, so
    /// the voucher still opens.
    #[test]
    fn flips_outside_a_tables_bits_keep_it_matching(
        seed in any::<u64>(), idx in 0usize..40, flips in proptest::collection::vec(0usize..256, 0..40)
    ) {
        let w = world(3, params());
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let a = DeviceAccount::generate(&mut rng);
        let h = w.bank[idx].1;
        let sampled: Vec<usize> = w.pdata.positions()[0].iter().map(|&p| usize::from(p)).collect();
        // Positions are in the reference's bit numbering; flip through PdqHash::bit's layout.
        let outside: Vec<usize> = flips.into_iter().filter(|k| !sampled.contains(k)).collect();
        let mut b = *h.as_bytes();
        for k in outside {
            let (word, bit) = (k / 16, k % 16);
            let byte = 2 * (15 - word) + usize::from(bit < 8);
            b[byte] ^= 1 << (bit % 8);
        }
        let near = PdqHash::from_bytes(b);
        prop_assert_eq!(w.pdata.sub_keys(&near)[0], w.pdata.sub_keys(&h)[0]);
        let v = a.voucher(&w.pdata, &near, b"", &mut rng).expect("voucher");
        prop_assert!(opened_pairs(&w.keys, &w.pdata, &v) >= 1);
    }
}

/// Hashes sorted by what this account does with them under this pdata.
struct Kinds {
    real_matches: Vec<(u64, PdqHash)>,
    synthetic: Vec<PdqHash>,
    real_non_matches: Vec<PdqHash>,
}

fn kinds(w: &mut World, a: &DeviceAccount) -> Kinds {
    let mut k = Kinds {
        real_matches: Vec::new(),
        synthetic: Vec::new(),
        real_non_matches: Vec::new(),
    };
    for &(id, h) in &w.bank {
        if a.sends_synthetic_for(&w.pdata, &h) {
            k.synthetic.push(h);
        } else {
            k.real_matches.push((id, h));
        }
    }
    for _ in 0..60 {
        let h = random_hash(&mut w.rng);
        if a.sends_synthetic_for(&w.pdata, &h) {
            k.synthetic.push(h);
        } else {
            k.real_non_matches.push(h);
        }
    }
    k
}

#[test]
fn at_threshold_nothing_opens_and_one_more_real_match_opens_exactly_the_matches() {
    let mut w = world(
        4,
        Params {
            synthetic_probability: 0.3,
            ..params()
        },
    );
    let a = DeviceAccount::generate(&mut w.rng);
    let k = kinds(&mut w, &a);
    assert!(k.real_matches.len() > usize::from(T) && k.synthetic.len() >= 6);
    let mut s = AccountState::new();
    let feed = |w: &mut World, s: &mut AccountState, h: &PdqHash| {
        let v = w.voucher(&a, h);
        w.ingest(s, &v).expect("accepted");
    };
    for h in &k.real_non_matches[..20] {
        feed(&mut w, &mut s, h);
    }
    for h in &k.synthetic[..6] {
        feed(&mut w, &mut s, h);
    }
    for (_, h) in &k.real_matches[..usize::from(T)] {
        feed(&mut w, &mut s, h);
        // Re-sending the same image adds no share.
        feed(&mut w, &mut s, h);
        // A near copy (2 bits) is a distinct image: it would add a share, so
        // it is not sent here.
    }
    assert_eq!(s.len(), 6 + usize::from(T));
    assert_eq!(s.open(&w.pdata, &w.table), None);
    // The state survives storage.
    let s2 = AccountState::from_bytes(&s.to_bytes()).expect("loads");
    assert_eq!(s2, s);
    let (id, h) = k.real_matches[usize::from(T)];
    feed(&mut w, &mut s, &h);
    let opened = s.open(&w.pdata, &w.table).expect("above threshold");
    let mut got: Vec<u64> = opened.iter().map(|o| o.content_id).collect();
    got.sort_unstable();
    let mut want: Vec<u64> = k.real_matches[..=usize::from(T)]
        .iter()
        .map(|m| m.0)
        .collect();
    want.sort_unstable();
    assert_eq!(got, want);
    assert!(got.contains(&id));
    for o in &opened {
        assert_eq!(o.distance, 0);
        assert_eq!(
            o.derivative,
            format!("derivative of {}", o.hash).as_bytes()[..64]
        );
    }
}

#[test]
fn below_threshold_the_state_has_the_same_shape_whatever_the_mix() {
    let mut w = world(
        5,
        Params {
            synthetic_probability: 0.5,
            ..params()
        },
    );
    let a = DeviceAccount::generate(&mut w.rng);
    let k = kinds(&mut w, &a);
    let t = usize::from(T);
    let real: Vec<PdqHash> = k.real_matches.iter().map(|m| m.1).collect();
    let mixes: Vec<Vec<PdqHash>> = vec![
        real[..t].to_vec(),
        k.synthetic[..t].to_vec(),
        [&real[..1], &k.synthetic[..t - 1]].concat(),
    ];
    let mut shapes = Vec::new();
    for m in mixes {
        let mut s = AccountState::new();
        for h in &m {
            let v = w.voucher(&a, h);
            assert!(opened_pairs(&w.keys, &w.pdata, &v) >= 1);
            w.ingest(&mut s, &v).expect("accepted");
        }
        assert_eq!(s.open(&w.pdata, &w.table), None);
        let bytes = s.to_bytes();
        // The fixed-layout parts: magic, version, count, and each entry's length fields.
        shapes.push((bytes.len(), bytes[..10].to_vec(), s.len()));
    }
    assert!(shapes.windows(2).all(|p| p[0] == p[1]), "{shapes:?}");
}

#[test]
fn synthetic_vouchers_always_open_and_all_vouchers_have_one_size() {
    let mut w = world(
        6,
        Params {
            synthetic_probability: 1.0,
            ..params()
        },
    );
    let a = DeviceAccount::generate(&mut w.rng);
    let mut sizes = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let h = random_hash(&mut w.rng);
        let v = w.voucher(&a, &h);
        assert!(opened_pairs(&w.keys, &w.pdata, &v) >= 1);
        sizes.insert(v.to_bytes().len());
    }
    // Real vouchers, matching or not, under the same parameters (p = 0).
    let mut w2 = world(7, params());
    let h = w2.bank[0].1;
    sizes.insert(w2.voucher(&a, &h).to_bytes().len());
    let far = random_hash(&mut w2.rng);
    sizes.insert(w2.voucher(&a, &far).to_bytes().len());
    assert_eq!(sizes.len(), 1, "{sizes:?}");
}

#[test]
fn exact_duplicates_count_once() {
    let mut w = world(8, params());
    let a = DeviceAccount::generate(&mut w.rng);
    let h = w.bank[0].1;
    let mut s = AccountState::new();
    for _ in 0..(2 * T) {
        let v = w.voucher(&a, &h);
        w.ingest(&mut s, &v).expect("accepted");
    }
    assert_eq!(s.len(), 1);
    assert_eq!(s.open(&w.pdata, &w.table), None);
}

#[test]
fn bad_vouchers_are_refused_and_change_nothing() {
    let mut w = world(9, params());
    let a = DeviceAccount::generate(&mut w.rng);
    let mut s = AccountState::new();
    let v0 = w.voucher(&a, &w.bank[0].1.clone());
    w.ingest(&mut s, &v0).expect("accepted");
    let before = s.to_bytes();
    let h1 = w.bank[1].1;
    let v = w.voucher(&a, &h1);
    let bytes = v.to_bytes();

    // Malformed: truncated, extended, wrong magic.
    assert!(Voucher::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    assert!(Voucher::from_bytes(&[bytes.clone(), vec![0]].concat()).is_err());
    let mut m = bytes.clone();
    m[0] ^= 1;
    assert!(Voucher::from_bytes(&m).is_err());

    // Forged: payload altered (the pairs still open).
    let mut f = bytes.clone();
    let last = f.len() - 1;
    f[last] ^= 1;
    let fv = Voucher::from_bytes(&f).expect("parses");
    assert_eq!(w.ingest(&mut s, &fv), Err(Rejection::Forged));
    assert_eq!(s.to_bytes(), before);

    // A pair's Q replaced by a non-point.
    let mut q = bytes.clone();
    q[40..72].copy_from_slice(&[0xff; 32]);
    let qv = Voucher::from_bytes(&q).expect("parses");
    assert!(matches!(
        w.ingest(&mut s, &qv),
        Err(Rejection::Malformed(_))
    ));
    assert_eq!(s.to_bytes(), before);

    // Replayed.
    assert_eq!(w.ingest(&mut s, &v0), Err(Rejection::Replayed));
    assert_eq!(s.to_bytes(), before);

    // Built against another pdata.
    let mut other = world(10, params());
    let ov = other.voucher(&a, &h1);
    assert_eq!(w.ingest(&mut s, &ov), Err(Rejection::WrongPdata));
    assert_eq!(s.to_bytes(), before);

    // Pairs taken from two vouchers whose keys differ: some mix opens two
    // different keys and is refused as inconsistent.
    let v2 = w.voucher(&a, &w.bank[2].1.clone());
    let mut saw_inconsistent = false;
    for i in 0..12 {
        for j in 0..12 {
            let mut mixed = v.to_bytes();
            let other = v2.to_bytes();
            let (a0, b0) = (40 + 82 * i, 40 + 82 * j);
            mixed[a0..a0 + 82].copy_from_slice(&other[b0..b0 + 82]);
            let mv = Voucher::from_bytes(&mixed).expect("parses");
            let mut probe = s.clone();
            if probe.ingest(&w.keys, &w.pdata, &mv) == Err(Rejection::Inconsistent) {
                saw_inconsistent = true;
                assert_eq!(probe.to_bytes(), before);
            }
        }
    }
    assert!(saw_inconsistent);
    assert_eq!(s.to_bytes(), before);
    // And the untouched voucher is still accepted.
    w.ingest(&mut s, &v).expect("accepted");
    assert_eq!(s.len(), 2);
}

#[test]
fn lsh_false_candidates_are_dropped_after_opening() {
    // Two sampled bits in one table: nearly every image is an LSH candidate.
    let p = Params {
        tables: 1,
        bits_per_table: 2,
        ..params()
    };
    let mut w = world(11, p);
    let a = DeviceAccount::generate(&mut w.rng);
    let mut s = AccountState::new();
    let mut opened = 0;
    while opened < 8 {
        let h = random_hash(&mut w.rng);
        let v = w.voucher(&a, &h);
        if opened_pairs(&w.keys, &w.pdata, &v) > 0 {
            opened += 1;
        }
        w.ingest(&mut s, &v).expect("accepted");
    }
    let h = w.bank[5].1;
    let v = w.voucher(&a, &h);
    w.ingest(&mut s, &v).expect("accepted");
    let got = s.open(&w.pdata, &w.table).expect("above threshold");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].content_id, w.bank[5].0);
    assert_eq!(got[0].distance, 0);
}

#[test]
fn pdata_round_trips_and_a_wrong_root_is_refused() {
    let w = world(12, params());
    let bytes = w.pdata.to_bytes();
    assert_eq!(bytes.len(), w.pdata.byte_len());
    let root = w.pdata.root();
    let back = Pdata::from_bytes(&bytes, &root).expect("verifies");
    assert_eq!(back, w.pdata);
    let shown: Root = root.to_string().parse().expect("hex");
    assert_eq!(shown, root);

    let mut wrong = root;
    wrong.0[0] ^= 1;
    assert_eq!(
        Pdata::from_bytes(&bytes, &wrong),
        Err(PdataError::RootMismatch)
    );
    // One changed point (a padded list) changes the root.
    let mut t = bytes.clone();
    let n = t.len();
    t[n - 5] ^= 1;
    let tin = PdataIn::from_bytes(&t).expect("still parses");
    assert_ne!(tin.root(), root);
    assert_eq!(tin.verify(&root), Err(PdataError::RootMismatch));
    // A changed parameter in the header changes the root too.
    let mut h = bytes.clone();
    h[10] ^= 1; // threshold
    if let Ok(p) = PdataIn::from_bytes(&h) {
        assert_eq!(p.verify(&root).map(|_| ()), Err(PdataError::RootMismatch));
    }
    for cut in [0, 5, 91, bytes.len() - 1] {
        assert!(PdataIn::from_bytes(&bytes[..cut]).is_err());
    }
}

#[test]
fn keys_and_accounts_round_trip() {
    let mut w = world(13, params());
    let k2 = ServerKeys::from_bytes(&w.keys.to_bytes()).expect("loads");
    assert_eq!(k2.public(), w.keys.public());
    assert_eq!(w.pdata.public(), w.keys.public());
    assert!(ServerKeys::from_bytes(&[0u8; 38]).is_err());
    assert!(!format!("{:?}", w.keys).contains(&hex::encode(&w.keys.to_bytes()[6..])));
    let a = DeviceAccount::generate(&mut w.rng);
    let a2 = DeviceAccount::from_bytes(&a.to_bytes()).expect("loads");
    assert_eq!(format!("{a2:?}"), "DeviceAccount(<redacted>)");
    // Same account, same image: same share, so the server stores it once.
    let mut s = AccountState::new();
    let h = w.bank[0].1;
    let v1 = w.voucher(&a, &h);
    let v2 = w.voucher(&a2, &h);
    w.ingest(&mut s, &v1).expect("ok");
    w.ingest(&mut s, &v2).expect("ok");
    assert_eq!(s.len(), 1);
    let too_big = vec![0u8; 65];
    assert!(a.voucher(&w.pdata, &h, &too_big, &mut w.rng).is_err());
}

#[test]
fn devices_refuse_weakened_parameters() {
    use bulwark_psi::Policy;
    let w = world(14, params());
    // The test parameters (t = 3, p = 0) are below the default floors.
    assert!(matches!(
        w.pdata.check_policy(&Policy::default()),
        Err(PdataError::Policy(_))
    ));
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    let keys = ServerKeys::generate(&mut rng);
    let bank: Vec<(u64, PdqHash)> = (0..50).map(|i| (i, random_hash(&mut rng))).collect();
    let (good, _) = Pdata::build(&keys, &Params::default(), &bank, &mut rng).expect("builds");
    good.check_policy(&Policy::for_bank_size(50))
        .expect("defaults pass");
    // A table sized for far more entries than the published bank is refused.
    assert!(good.check_policy(&Policy::for_bank_size(10)).is_err());
    let weak = Params {
        bits_per_table: 8,
        ..Params::default()
    };
    let (bad, _) = Pdata::build(&keys, &weak, &bank, &mut rng).expect("builds");
    assert!(bad.check_policy(&Policy::default()).is_err());
}

/// Flips, in the reference's bit numbering, one sampled bit in each table
/// listed (so exactly the other tables keep agreeing).
fn break_tables(pdata: &Pdata, h: &PdqHash, tables: &[usize]) -> PdqHash {
    let mut b = *h.as_bytes();
    for &t in tables {
        let k = usize::from(pdata.positions()[t][0]);
        let (word, bit) = (k / 16, k % 16);
        let byte = 2 * (15 - word) + usize::from(bit < 8);
        b[byte] ^= 1 << (bit % 8);
    }
    PdqHash::from_bytes(b)
}

#[test]
fn m_of_l_opens_only_when_m_tables_agree() {
    let p = Params {
        tables: 8,
        min_tables: 3,
        bits_per_table: 16,
        ..params()
    };
    let mut w = world(16, p);
    let a = DeviceAccount::generate(&mut w.rng);
    let h = w.bank[0].1;
    // Two tables agree: their pairs open (the server sees that), but the
    // voucher key cannot be rebuilt, so nothing is stored.
    let two = break_tables(&w.pdata, &h, &[0, 1, 2, 3, 4, 5]);
    let v = w.voucher(&a, &two);
    assert_eq!(opened_pairs(&w.keys, &w.pdata, &v), 2);
    let mut s = AccountState::new();
    w.ingest(&mut s, &v).expect("accepted");
    assert!(s.is_empty());
    // Three agree: it opens.
    let three = break_tables(&w.pdata, &h, &[0, 1, 2, 3, 4]);
    let v3 = w.voucher(&a, &three);
    assert_eq!(opened_pairs(&w.keys, &w.pdata, &v3), 3);
    w.ingest(&mut s, &v3).expect("accepted");
    assert_eq!(s.len(), 1);
    // A share from another voucher mixed in is refused.
    let other = w.voucher(&a, &w.bank[1].1.clone()).to_bytes();
    let exact = w.voucher(&a, &h);
    let mut saw = false;
    for i in 0..16 {
        for j in 0..16 {
            let mut mixed = exact.to_bytes();
            let (a0, b0) = (40 + 82 * i, 40 + 82 * j);
            mixed[a0..a0 + 82].copy_from_slice(&other[b0..b0 + 82]);
            let mv = Voucher::from_bytes(&mixed).expect("parses");
            let mut probe = s.clone();
            if probe.ingest(&w.keys, &w.pdata, &mv) == Err(Rejection::Inconsistent) {
                saw = true;
                assert_eq!(probe, s);
            }
        }
    }
    assert!(saw);
    // Synthetic vouchers open at least m tables, so they are stored too.
    let mut ws = world(
        16,
        Params {
            synthetic_probability: 1.0,
            ..p
        },
    );
    let mut s2 = AccountState::new();
    for _ in 0..10 {
        let far = random_hash(&mut ws.rng);
        let v = ws.voucher(&a, &far);
        assert!(opened_pairs(&ws.keys, &ws.pdata, &v) >= 3);
        ws.ingest(&mut s2, &v).expect("accepted");
    }
    assert_eq!(s2.len(), 10);
    // And above the threshold the matches open as with m = 1.
    for (_, h) in w.bank.clone().iter().skip(2).take(4) {
        let v = w.voucher(&a, h);
        w.ingest(&mut s, &v).expect("accepted");
    }
    let opened = s.open(&w.pdata, &w.table).expect("above threshold");
    assert_eq!(opened.len(), 5);
}
