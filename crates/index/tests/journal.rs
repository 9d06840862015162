//! The index journal: records read back as written, a cut-off or damaged
//! tail ends the journal at the last whole record, and replaying the folded
//! records gives what applying them one by one gives (checked against brute
//! force), also over an index that already holds some of them.

use bulwark_index::journal::{self, Record};
use bulwark_index::{Code, Index, LiveIndex, Match, brute_force};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn code(rng: &mut ChaCha8Rng) -> Code {
    let mut c = [0u8; 32];
    rng.fill(&mut c[..]);
    c
}

/// Records as the catalog writes them: content ids reset and re-added
/// (often the same id again later), some removed for good, some with
/// several entries under one id (video frames).
fn records(rng: &mut ChaCha8Rng, n: usize, ids: u64) -> Vec<Record> {
    (0..n)
        .map(|k| {
            let named: Vec<u64> = (0..rng.gen_range(0..6))
                .map(|_| rng.gen_range(0..ids))
                .collect();
            let mut inserts = Vec::new();
            for &id in &named {
                if rng.gen_bool(0.7) {
                    for _ in 0..rng.gen_range(1..4) {
                        inserts.push((id, code(rng)));
                    }
                }
            }
            Record {
                seqs: vec![k as i64 * 2 + 1, k as i64 * 2 + 2],
                removes: named,
                inserts,
            }
        })
        .collect()
}

fn encode(id: u64, rs: &[Record]) -> Vec<u8> {
    let mut out = journal::encode_header(id).to_vec();
    for r in rs {
        journal::encode_record(&mut out, &r.seqs, &r.removes, &r.inserts);
    }
    out
}

/// What `encode_record` stores: the removals with every inserted id added.
fn normalised(r: &Record) -> Record {
    let mut removes = r.removes.clone();
    let mut extra: Vec<u64> = r
        .inserts
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !r.removes.contains(id))
        .collect();
    extra.sort_unstable();
    extra.dedup();
    removes.extend(extra);
    Record {
        removes,
        ..r.clone()
    }
}

/// The truth: each record applied in turn to a plain list of entries.
fn apply_one_by_one(mut truth: Vec<(u64, Code)>, rs: &[Record]) -> Vec<(u64, Code)> {
    for r in rs.iter().map(normalised) {
        truth.retain(|(id, _)| !r.removes.contains(id));
        truth.extend(r.inserts.iter().copied());
    }
    truth
}

fn sorted(mut v: Vec<Match>) -> Vec<Match> {
    v.sort_unstable();
    v
}

fn same_answers(live: &LiveIndex, truth: &[(u64, Code)], rng: &mut ChaCha8Rng) {
    assert_eq!(live.len(), truth.len());
    for i in 0..24 {
        let q = if i % 2 == 0 {
            let mut c = truth[rng.gen_range(0..truth.len())].1;
            c[0] ^= 0b101;
            c
        } else {
            code(rng)
        };
        for r in [0, 4, 32] {
            assert_eq!(
                sorted(live.search(&q, r)),
                sorted(brute_force(truth, &q, r))
            );
        }
    }
}

#[test]
fn records_read_back_as_written() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let rs = records(&mut rng, 200, 50);
    let bytes = encode(0xfeed, &rs);
    let j = journal::read(&bytes).unwrap();
    assert_eq!(j.snapshot_id, 0xfeed);
    assert_eq!(j.records, rs.iter().map(normalised).collect::<Vec<_>>());
    assert_eq!(j.valid_len, bytes.len() as u64);
    assert!(!j.torn);
}

#[test]
fn a_cut_off_or_damaged_record_ends_the_journal_there() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let rs = records(&mut rng, 5, 50);
    let whole = encode(7, &rs);
    let four = encode(7, &rs[..4]).len();
    // Every cut inside the last record keeps exactly the first four.
    for cut in four..whole.len() {
        let j = journal::read(&whole[..cut]).unwrap();
        assert_eq!(j.records.len(), 4, "cut at {cut}");
        assert_eq!(j.valid_len, four as u64);
        assert_eq!(j.torn, cut > four);
    }
    // A flipped bit anywhere in the third record (length, CRC or payload)
    // ends the journal before it.
    let two = encode(7, &rs[..2]).len();
    let three = encode(7, &rs[..3]).len();
    for at in two..three {
        let mut bad = whole.clone();
        bad[at] ^= 0x10;
        let j = journal::read(&bad).unwrap();
        assert_eq!(j.records.len(), 2, "flip at {at}");
        assert!(j.torn);
    }
    // A bad header is an error, not an empty journal.
    assert!(journal::read(&whole[..10]).is_err());
    let mut other = whole.clone();
    other[0] = b'X';
    assert!(journal::read(&other).is_err());
}

#[test]
fn a_record_inserting_an_id_it_does_not_remove_is_refused() {
    // Hand-made: the writer never produces one, and folding assumes none.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let good = encode(1, &records(&mut rng, 1, 10));
    let mut bytes = good.clone();
    let payload = {
        let mut p = Vec::new();
        p.extend_from_slice(&0u32.to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes());
        p.extend_from_slice(&1u32.to_le_bytes());
        p.extend_from_slice(&9u64.to_le_bytes());
        p.extend_from_slice(&[1u8; 32]);
        p
    };
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    let j = journal::read(&bytes).unwrap();
    assert_eq!(j.records.len(), 1);
    assert_eq!(j.valid_len, good.len() as u64);
}

#[test]
fn folded_replay_equals_applying_each_record() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let base: Vec<(u64, Code)> = (0..4000u64).map(|i| (i / 2, code(&mut rng))).collect();
    let rs = records(&mut rng, 600, 3000);
    let truth = apply_one_by_one(base.clone(), &rs);

    let stepwise = LiveIndex::from_index(Index::build(&base));
    for r in journal::read(&encode(1, &rs)).unwrap().records {
        stepwise.replace(&r.removes, &r.inserts);
    }
    same_answers(&stepwise, &truth, &mut rng);

    let j = journal::read(&encode(1, &rs)).unwrap();
    let (removes, inserts) = journal::fold(&j.records);
    let folded = LiveIndex::from_index(Index::build(&base));
    folded.replace(&removes, &inserts);
    same_answers(&folded, &truth, &mut rng);
    folded.merge();
    same_answers(&folded, &truth, &mut rng);
}

#[test]
fn replaying_over_a_snapshot_that_holds_part_of_the_journal_changes_nothing_more() {
    // A snapshot is taken after its journal starts: it may already hold the
    // first records' effect. Replaying them again must not duplicate entries.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let base: Vec<(u64, Code)> = (0..2000u64).map(|i| (i, code(&mut rng))).collect();
    let rs = records(&mut rng, 300, 2500);
    let truth = apply_one_by_one(base.clone(), &rs);
    let j = journal::read(&encode(1, &rs)).unwrap();
    for held in [0, 1, 150, 300] {
        let snapshot = apply_one_by_one(base.clone(), &rs[..held]);
        let (removes, inserts) = journal::fold(&j.records);
        let live = LiveIndex::from_index(Index::build(&snapshot));
        live.replace(&removes, &inserts);
        same_answers(&live, &truth, &mut rng);
    }
}

#[test]
fn fold_equals_a_map_that_applies_each_record() {
    // The second implementation: an ordered map from id to its entries,
    // each record resetting the ids it names and then adding its inserts.
    // Random records name ids in any order and repeat them; import-like ones
    // name ascending fresh ids (the sorts' best case); both mixed.
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let import_like: Vec<Record> = (0..400u64)
        .map(|k| {
            let ids: Vec<u64> = (k * 50..k * 50 + 50).collect();
            Record {
                seqs: vec![k as i64 + 1],
                inserts: ids.iter().map(|&id| (id, code(&mut rng))).collect(),
                removes: ids,
            }
        })
        .collect();
    let random = records(&mut rng, 800, 500);
    let mut mixed = import_like.clone();
    mixed.extend(records(&mut rng, 300, 20_000));
    for rs in [import_like, random, mixed] {
        let mut truth: std::collections::BTreeMap<u64, Vec<Code>> = Default::default();
        let j = journal::read(&encode(1, &rs)).unwrap();
        for r in &j.records {
            for &id in &r.removes {
                truth.insert(id, Vec::new());
            }
            for &(id, c) in &r.inserts {
                truth
                    .get_mut(&id)
                    .expect("a record removes what it inserts")
                    .push(c);
            }
        }
        let (removes, inserts) = journal::fold(&j.records);
        assert_eq!(removes, truth.keys().copied().collect::<Vec<_>>());
        let want: Vec<(u64, Code)> = truth
            .iter()
            .flat_map(|(&id, cs)| cs.iter().map(move |&c| (id, c)))
            .collect();
        assert_eq!(inserts, want);
    }
}
