//! Multi-probe vouchers (`Params::probes` > 1, pdata and voucher version 3):
//! they find copies whose least confident bits flipped, still count one image
//! once, keep one size and shape real or synthetic, and leave the older
//! profiles' formats untouched. All data is synthetic.

use bulwark_pdq::PdqHash;
use bulwark_psi::{
    AccountState, DeviceAccount, Params, Pdata, PdataError, PdataIn, Policy, Profile, Rejection,
    SeenImages, ServerKeys, ServerTable, Voucher, agreeing_tables,
};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

const T: u16 = 3;

fn params() -> Params {
    Params {
        threshold: T,
        max_synthetic: 8,
        synthetic_probability: 0.0,
        derivative_bytes: 64,
        ..Params::multiprobe()
    }
}

fn random_hash(rng: &mut impl RngCore) -> PdqHash {
    let mut b = [0u8; 32];
    rng.fill_bytes(&mut b);
    PdqHash::from_bytes(b)
}

fn random_margins(rng: &mut impl RngCore) -> [f32; 256] {
    let mut m = [0f32; 256];
    for v in m.iter_mut() {
        *v = rng.gen_range(0.0..100.0);
    }
    m
}

/// `h` with PDQ bit `p` (the numbering of `PdqHash::bit`) flipped, found by
/// trying every byte and bit (independent of the crate's bit layout).
fn flip_bit(h: &PdqHash, p: usize) -> PdqHash {
    for byte in 0..32 {
        for b in 0..8 {
            let mut x = *h.as_bytes();
            x[byte] ^= 1 << b;
            let g = PdqHash::from_bytes(x);
            if g.bit(p) != h.bit(p) {
                return g;
            }
        }
    }
    unreachable!("every bit is somewhere")
}

/// In every table, the sampled bit with the smallest margin flipped: the
/// exact sub-key of every table changes, the likeliest probe repairs it.
fn flip_least_confident(pdata: &Pdata, h: &PdqHash, margins: &[f32; 256]) -> PdqHash {
    let mut out = *h;
    for pos in pdata.positions() {
        let p = pos
            .iter()
            .copied()
            .min_by(|a, b| margins[usize::from(*a)].total_cmp(&margins[usize::from(*b)]))
            .expect("k > 0");
        out = flip_bit(&out, usize::from(p));
    }
    out
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
    fn voucher(&mut self, a: &DeviceAccount, h: &PdqHash, m: &[f32; 256], id: &PdqHash) -> Voucher {
        a.voucher_probing(&self.pdata, h, Some(m), id, b"grey", &mut self.rng)
            .expect("voucher")
    }
}

#[test]
fn probes_find_copies_whose_least_confident_bits_flipped() {
    let mut w = world(1, params());
    let mut plain = world(
        1,
        Params {
            probes: 1,
            ..params()
        },
    );
    let a = DeviceAccount::generate(&mut w.rng);
    for i in 0..8 {
        let h = w.bank[i].1;
        let m = random_margins(&mut w.rng);
        let copy = flip_least_confident(&w.pdata, &h, &m);
        assert_eq!(h.distance(&copy), 6);
        // Without probes no table agrees; with them every table does.
        assert!(w.pdata.positions().len() == 6);
        let v = plain.voucher(&a, &copy, &m, &copy);
        assert_eq!(agreeing_tables(&plain.keys, &plain.pdata, &v), 0);
        let v = w.voucher(&a, &copy, &m, &copy);
        assert_eq!(agreeing_tables(&w.keys, &w.pdata, &v), 6);
        // Flipping the *most* confident sampled bit of each table instead is
        // not repaired by 4 probes (they flip small-margin bits only).
        let mut far = h;
        for pos in w.pdata.positions() {
            let p = pos
                .iter()
                .copied()
                .max_by(|a, b| m[usize::from(*a)].total_cmp(&m[usize::from(*b)]))
                .expect("k > 0");
            far = flip_bit(&far, usize::from(p));
        }
        let v = w.voucher(&a, &far, &m, &far);
        assert_eq!(agreeing_tables(&w.keys, &w.pdata, &v), 0);
        // After opening, the server's re-check finds the banked image.
        let found = w.table.matches(&copy);
        assert_eq!(
            found.first().map(|c| (c.content_id, c.distance)),
            Some((w.bank[i].0, 6))
        );
    }
}

#[test]
fn one_image_counts_once_however_many_probes_agree() {
    let mut w = world(2, params());
    let a = DeviceAccount::generate(&mut w.rng);
    let mut s = AccountState::new();
    let mut seen = SeenImages::new();
    // Exact copies agree in every table through the exact probe, and their
    // neighbours (probes) may agree too: still one share per voucher.
    for i in 0..usize::from(T) {
        let h = w.bank[i].1;
        let m = random_margins(&mut w.rng);
        for copy in [h, flip_least_confident(&w.pdata, &h, &m), h] {
            let id = seen.identity(&w.pdata, &copy);
            let v = w.voucher(&a, &copy, &m, &id);
            s.ingest(&w.keys, &w.pdata, &v).expect("ingests");
        }
        assert_eq!(s.len(), i + 1, "image {i} counted more than once");
    }
    // T distinct images, each sent three ways: at the threshold, nothing opens.
    assert!(s.open(&w.pdata, &w.table).is_none());
    let h = w.bank[usize::from(T)].1;
    let m = random_margins(&mut w.rng);
    let v = w.voucher(&a, &h, &m, &h);
    s.ingest(&w.keys, &w.pdata, &v).expect("ingests");
    let opened = s
        .open(&w.pdata, &w.table)
        .expect("T + 1 distinct images open");
    assert_eq!(opened.len(), usize::from(T) + 1);
}

#[test]
fn real_and_synthetic_multiprobe_vouchers_have_one_size_and_shape() {
    let mut synth = world(
        3,
        Params {
            synthetic_probability: 1.0,
            ..params()
        },
    );
    let mut real = world(3, params());
    let a = DeviceAccount::generate(&mut real.rng);
    let mut shapes = std::collections::BTreeSet::new();
    let shape = |v: &Voucher| {
        let b = v.to_bytes();
        let parsed = Voucher::from_bytes(&b).expect("parses");
        assert_eq!(parsed.to_bytes(), b);
        // Version, pair count, share-x multiplicities.
        let pairs = usize::from(u16::from_be_bytes([b[38], b[39]]));
        let mut xs: Vec<u16> = (0..pairs)
            .map(|i| u16::from_be_bytes([b[40 + 98 * i], b[41 + 98 * i]]))
            .collect();
        xs.sort_unstable();
        let mut counts: Vec<usize> = xs.chunk_by(|a, b| a == b).map(<[u16]>::len).collect();
        counts.dedup();
        (b.len(), u16::from_be_bytes([b[4], b[5]]), pairs, counts)
    };
    for _ in 0..10 {
        let h = random_hash(&mut synth.rng);
        let m = random_margins(&mut synth.rng);
        let v = synth.voucher(&a, &h, &m, &h);
        assert!(
            agreeing_tables(&synth.keys, &synth.pdata, &v) >= 1,
            "synthetic opens"
        );
        shapes.insert(shape(&v));
    }
    let (h, far) = (real.bank[0].1, random_hash(&mut real.rng));
    let m = random_margins(&mut real.rng);
    shapes.insert(shape(&real.voucher(&a, &h, &m, &h)));
    shapes.insert(shape(&real.voucher(&a, &far, &m, &far)));
    // Without margins the device still sends the same shape.
    shapes.insert(shape(
        &a.voucher(&real.pdata, &far, b"grey", &mut real.rng)
            .expect("v"),
    ));
    let p = params();
    assert_eq!(
        shapes.into_iter().collect::<Vec<_>>(),
        vec![(
            real.voucher(&a, &h, &m, &h).to_bytes().len(),
            3,
            p.pairs(),
            vec![2 * usize::from(p.probes)]
        )]
    );
}

#[test]
fn versions_and_share_groupings_are_checked() {
    let mut w = world(4, params());
    let mut old = world(
        4,
        Params {
            probes: 1,
            ..params()
        },
    );
    let a = DeviceAccount::generate(&mut w.rng);
    let h = w.bank[0].1;
    let m = random_margins(&mut w.rng);
    let v3 = w.voucher(&a, &h, &m, &h).to_bytes();
    let v2 = old.voucher(&a, &h, &m, &h).to_bytes();
    assert_eq!(
        u16::from_be_bytes([v2[4], v2[5]]),
        2,
        "one probe keeps version 2"
    );
    // A version 3 voucher relabelled 2, and the reverse, are refused.
    let mut x = v3.clone();
    x[5] = 2;
    assert!(matches!(
        Voucher::from_bytes(&x),
        Err(Rejection::Malformed(_))
    ));
    let mut x = v2.clone();
    x[5] = 3;
    assert!(matches!(
        Voucher::from_bytes(&x),
        Err(Rejection::Malformed(_))
    ));
    // Unequal groups: one pair's x moved to another table's x.
    let mut x = v3.clone();
    let other = (1..params().pairs())
        .find(|&i| x[40 + 98 * i..42 + 98 * i] != x[40..42])
        .expect("two xs");
    let (a0, a1) = (x[40 + 98 * other], x[41 + 98 * other]);
    x[40] = a0;
    x[41] = a1;
    assert!(matches!(
        Voucher::from_bytes(&x),
        Err(Rejection::Malformed(_))
    ));
    // A voucher of the other profile is refused by the state, unchanged.
    let mut s = AccountState::new();
    let before = s.clone();
    let v2p = Voucher::from_bytes(&v2).expect("parses");
    assert!(s.ingest(&w.keys, &w.pdata, &v2p).is_err());
    assert_eq!(s, before);
}

#[test]
fn pdata_version_3_round_trips_and_older_profiles_stay_version_2() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let keys = ServerKeys::generate(&mut rng);
    let bank: Vec<(u64, PdqHash)> = (0..50).map(|i| (i, random_hash(&mut rng))).collect();
    let (p, _) = Pdata::build(&keys, &Params::multiprobe(), &bank, &mut rng).expect("builds");
    let b = p.to_bytes();
    assert_eq!(&b[4..6], &[0, 3]);
    assert_eq!(b.len(), p.byte_len());
    let back = Pdata::from_bytes(&b, &p.root()).expect("round trips");
    assert_eq!(back.params(), &Params::multiprobe());
    back.check_policy(&Policy::default())
        .expect("the multi-probe profile is allowed");
    // The probes byte (offset 19) set to 1: one parameter set, one encoding.
    let mut x = b.clone();
    x[19] = 1;
    assert!(matches!(
        PdataIn::from_bytes(&x),
        Err(PdataError::Malformed(_))
    ));
    for older in [Params::default(), Params::compact()] {
        let (p, _) = Pdata::build(&keys, &older, &bank, &mut rng).expect("builds");
        assert_eq!(&p.to_bytes()[4..6], &[0, 2]);
        p.check_policy(&Policy::default()).expect("still allowed");
    }
    // Exact profiles: other probe counts, or the multi-probe bits without
    // probes, are refused; a policy without the profile refuses it.
    for bad in [
        Params {
            probes: 4,
            ..Params::multiprobe()
        },
        Params {
            probes: 6,
            ..Params::multiprobe()
        },
        Params {
            probes: 1,
            ..Params::multiprobe()
        },
        Params {
            min_tables: 2,
            ..Params::multiprobe()
        },
        Params {
            probes: 4,
            ..Params::default()
        },
    ] {
        let (p, _) = Pdata::build(&keys, &bad, &bank, &mut rng).expect("builds");
        assert!(
            matches!(
                p.check_policy(&Policy::default()),
                Err(PdataError::Policy(_))
            ),
            "{bad:?}"
        );
    }
    let (p, _) = Pdata::build(&keys, &Params::multiprobe(), &bank, &mut rng).expect("builds");
    let old_devices =
        Policy::default().with_profiles(vec![Profile::default_profile(), Profile::compact()]);
    assert!(p.check_policy(&old_devices).is_err());
    // Out-of-range probe counts are invalid parameters.
    for probes in [0u8, 17] {
        assert!(
            Params {
                probes,
                ..Params::multiprobe()
            }
            .validate()
            .is_err()
        );
    }
    assert!(
        Params {
            tables: 6,
            min_tables: 3,
            probes: 4,
            ..Params::multiprobe()
        }
        .validate()
        .is_err()
    );
}

/// Issue 17, bank-side expansion: a pdata built with variants of a banked
/// image (`Pdata::build_with_variants`) opens for a copy near the variant but
/// far from the image in every table, and the server's re-check names the
/// image's content id; with no variants the build is `build_release`'s, byte
/// for byte; only the first `variant_tables` tables hold the variants.
#[test]
fn bank_side_variants_open_for_copies_near_them_and_change_nothing_else() {
    use bulwark_psi::{Release, agreeing_tables};
    let p = Params {
        threshold: T,
        max_synthetic: 8,
        synthetic_probability: 0.0,
        derivative_bytes: 64,
        ..Params::expanded()
    };
    assert_eq!((p.tables, p.min_tables, p.probes), (6, 1, 5));
    assert_eq!(p.pairs(), Params::multiprobe().pairs());
    let mut rng = ChaCha8Rng::seed_from_u64(30);
    let keys = ServerKeys::generate(&mut rng);
    let bank: Vec<(u64, PdqHash)> = (0..20).map(|i| (500 + i, random_hash(&mut rng))).collect();
    // The "variant": bank[3] with a high-margin bit flipped in every table
    // (probes flip low-margin bits only, so they cannot repair it).
    let margins = random_margins(&mut rng);
    let seed_rng = ChaCha8Rng::seed_from_u64(31);
    let (plain, _) =
        Pdata::build_release(&keys, &p, Release::default(), &bank, &mut seed_rng.clone())
            .expect("builds");
    let (same, _) = Pdata::build_with_variants(
        &keys,
        &p,
        Release::default(),
        &bank,
        &[],
        6,
        &mut seed_rng.clone(),
    )
    .expect("builds");
    assert_eq!(plain.to_bytes(), same.to_bytes(), "no variants: same bytes");
    let mut variant = bank[3].1;
    for pos in plain.positions() {
        let q = pos
            .iter()
            .copied()
            .max_by(|a, b| margins[usize::from(*a)].total_cmp(&margins[usize::from(*b)]))
            .expect("k > 0");
        variant = flip_bit(&variant, usize::from(q));
    }
    assert_eq!(variant.distance(&bank[3].1), 6);
    let variants = [(bank[3].0, variant)];
    let a = DeviceAccount::generate(&mut rng);
    for (tables, agree) in [(0u16, 0usize), (2, 2), (6, 6)] {
        let (pd, table) = Pdata::build_with_variants(
            &keys,
            &p,
            Release::default(),
            &bank,
            &variants,
            tables,
            &mut seed_rng.clone(),
        )
        .expect("builds");
        assert_eq!(pd.positions(), plain.positions(), "same seed, same tables");
        assert_eq!(pd.bank_entries(), bank.len() as u64);
        let v = a
            .voucher_probing(&pd, &variant, Some(&margins), &variant, b"grey", &mut rng)
            .expect("voucher");
        assert_eq!(agreeing_tables(&keys, &pd, &v), agree, "{tables} tables");
        let found = table.matches(&variant);
        assert_eq!(
            found.first().map(|c| (c.content_id, c.distance)),
            Some((bank[3].0, 0))
        );
    }
    assert!(
        Policy::default()
            .profiles
            .contains(&bulwark_psi::Profile::expanded())
    );
}

/// Issue 17, item 2: the table-count attack on multi-probe vouchers. Once a
/// voucher opens, the server sees how many of its tables agree and how many
/// pairs of each agreeing table carry the key's share
/// (`opened_pairs_per_table`), and tries to tell synthetic vouchers from real
/// ones: a false candidate (one table agrees), an exact copy (all six) and
/// an exact copy of an image whose near-duplicate or bank-side variant is
/// banked too (one table opens two pairs: the exact probe and the probe that
/// flips the bit they differ in). By agreeing tables alone the likelihood
/// ratio of a false candidate's or an exact copy's count stays ≈ 3 for both
/// multi-probe profiles; synthetic vouchers of the expanded profile (whose
/// variants make real tables open two pairs) open a second pair in ≈ 15 % of
/// their copy-like tables, so two open pairs do not prove a voucher real; the
/// multiprobe profile's never do, nor do its real ones without near-duplicate
/// banked images. The figures on the corpus come from `private_eval`
/// (docs/PRIVATE-MATCHING.md).
#[test]
fn multiprobe_table_counts_tell_synthetic_from_real_by_a_bounded_ratio() {
    use bulwark_psi::opened_pairs_per_table;
    use std::collections::BTreeMap;
    let small = |p: Params| Params {
        threshold: T,
        max_synthetic: 8,
        derivative_bytes: 64,
        ..p
    };
    for (profile, extra) in [(Params::multiprobe(), 0.0), (Params::expanded(), 0.15)] {
        assert_eq!(small(profile).synthetic_extra_pair(), extra);
        let n = 300;
        let mut synth = world(
            40,
            Params {
                synthetic_probability: 1.0,
                ..small(profile)
            },
        );
        let a = DeviceAccount::generate(&mut synth.rng);
        let mut seen: BTreeMap<Vec<usize>, usize> = BTreeMap::new();
        for _ in 0..n {
            let h = random_hash(&mut synth.rng);
            let m = random_margins(&mut synth.rng);
            let v = synth.voucher(&a, &h, &m, &h);
            *seen
                .entry(opened_pairs_per_table(&synth.keys, &synth.pdata, &v))
                .or_default() += 1;
        }
        assert!(!seen.contains_key(&Vec::new()), "synthetic always open");
        let share = |f: &dyn Fn(&Vec<usize>) -> bool| {
            seen.iter()
                .filter(|(s, _)| f(s))
                .map(|(_, c)| *c)
                .sum::<usize>() as f64
                / n as f64
        };
        // Real vouchers, built for real.
        let mut w = world(
            41,
            Params {
                synthetic_probability: 0.0,
                ..small(profile)
            },
        );
        let m = random_margins(&mut w.rng);
        let h = w.bank[0].1;
        let v = w.voucher(&a, &h, &m, &h);
        assert_eq!(opened_pairs_per_table(&w.keys, &w.pdata, &v), vec![1; 6]);
        // A false candidate: one table agrees, a high-margin bit flipped in
        // every other.
        let mut fc = h;
        for pos in &w.pdata.positions()[1..] {
            let q = pos
                .iter()
                .copied()
                .max_by(|x, y| m[usize::from(*x)].total_cmp(&m[usize::from(*y)]))
                .expect("k > 0");
            fc = flip_bit(&fc, usize::from(q));
        }
        let v = w.voucher(&a, &fc, &m, &fc);
        assert_eq!(opened_pairs_per_table(&w.keys, &w.pdata, &v), vec![1]);
        // A banked near-duplicate (or variant): bank[1] := bank[0] with table
        // 0's least confident bit flipped.
        let low = w.pdata.positions()[0]
            .iter()
            .copied()
            .min_by(|x, y| m[usize::from(*x)].total_cmp(&m[usize::from(*y)]))
            .expect("k > 0");
        let mut bank = w.bank.clone();
        bank[1].1 = flip_bit(&h, usize::from(low));
        let (pd, _) = Pdata::build(&w.keys, w.pdata.params(), &bank, &mut w.rng).expect("builds");
        let v = a
            .voucher_probing(&pd, &h, Some(&m), &h, b"grey", &mut w.rng)
            .expect("voucher");
        let double = opened_pairs_per_table(&w.keys, &pd, &v);
        assert_eq!(double, vec![2, 1, 1, 1, 1, 1]);
        // The attack by agreeing tables: likelihood ratios real : synthetic
        // of a false candidate's count (1) and an exact copy's (6).
        let lr_fc = 1.0 / share(&|s| s.len() == 1);
        let lr_exact = 1.0 / share(&|s| s.len() == 6);
        let with_double = share(&|s| s.first().is_some_and(|&c| c >= 2));
        // Tables with two or more open pairs among the synthetic vouchers
        // that open more than one table (those play copies).
        let (tables, doubles) =
            seen.iter()
                .filter(|(s, _)| s.len() > 1)
                .fold((0, 0), |(t, d), (s, c)| {
                    (
                        t + s.len() * c,
                        d + s.iter().filter(|&&x| x >= 2).count() * c,
                    )
                });
        let rate = doubles as f64 / tables as f64;
        println!(
            "k = {}: LR by tables: false candidate {lr_fc:.2}, exact copy {lr_exact:.2}; synthetic with a double table {with_double:.3}, double tables {rate:.3}",
            profile.bits_per_table
        );
        assert!(lr_fc <= 3.5 && lr_exact <= 3.5, "{seen:?}");
        if extra == 0.0 {
            assert_eq!(with_double, 0.0, "{seen:?}");
        } else {
            assert!((rate - extra).abs() < 0.05, "{rate} {seen:?}");
            assert!(seen.contains_key(&double), "{seen:?}");
        }
    }
}
