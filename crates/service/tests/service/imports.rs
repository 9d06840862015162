//! Import jobs as service operations, without HTTP, on SQLite and (when
//! `BULWARK_TEST_POSTGRES` is set) PostgreSQL. A job's counts (added,
//! duplicates, rejected line numbers) are checked against what the list
//! holds by construction, the bank's counters in the store and the index
//! (`Catalog::search`); a retried create with the same `Idempotency-Key`
//! answers the first job; a job stopped after its first batch and resumed
//! on a reopened store ends with the same counts and the same content as an
//! uninterrupted one, without duplicates. The HTTP surface is tested in
//! crates/server/tests/server/imports.rs.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashSet};

use bulwark_pdq::PdqHash;
use bulwark_service::banks::{self, NewBank};
use bulwark_service::catalog::Catalog;
use bulwark_service::imports::{self, Created, ImportJob, JOB_BATCH, NewJob, Spool};
use bulwark_service::{Error, Kind};
use bulwark_store::Store;
use bytes::Bytes;
use rand::{Rng, SeedableRng};

use crate::support::TestStore;

const ACTOR: &str = "curator-key";

fn hash(seed: u64, i: u64) -> PdqHash {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed * 1_000_003 + i);
    PdqHash::from_bytes(rng.r#gen())
}

/// A list body in chunks of 4 KiB, as a request body arrives.
fn body(
    text: &str,
) -> futures_util::stream::Iter<std::vec::IntoIter<Result<Bytes, std::io::Error>>> {
    let chunks: Vec<_> = text
        .as_bytes()
        .chunks(4096)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures_util::stream::iter(chunks)
}

fn kind<T: std::fmt::Debug>(r: Result<T, Error>) -> Kind {
    r.unwrap_err().kind
}

/// A list of `n` distinct PDQ hashes in `lines` format, with an in-file
/// duplicate, a blank line, a CRLF line and bad lines, one of them past the
/// first batch; with the hashes and the (1-based) numbers of the bad lines.
struct List {
    text: String,
    lines: usize,
    hashes: Vec<PdqHash>,
    rejected: Vec<usize>,
}

fn list(seed: u64, n: u64) -> List {
    let hashes: Vec<PdqHash> = (0..n).map(|i| hash(seed, i)).collect();
    let mut lines: Vec<String> = hashes.iter().map(|h| format!("pdq {h}")).collect();
    lines.insert(10, lines[3].clone());
    lines.insert(20, "pdq nothex".into());
    lines.insert(30, String::new());
    lines[40].push('\r');
    let mut rejected = vec![21];
    // A bad line in the second batch, when the list has one.
    let late = JOB_BATCH + 500;
    if late <= lines.len() {
        lines.insert(late, "md5 0123".into());
        rejected.push(late + 1);
    }
    List {
        text: lines.join("\n"),
        lines: lines.len(),
        hashes,
        rejected,
    }
}

async fn make_bank(store: &Store, catalog: &Catalog, name: &str) {
    let b = NewBank {
        name: name.into(),
        threshold: None,
        min_quality: None,
        enabled: None,
        description: None,
        provider: None,
    };
    banks::create(store, catalog, ACTOR, 31, b).await.unwrap();
}

/// (content, disabled) of the bank, from the store's counters.
async fn counts(store: &Store, bank: &str) -> (i64, i64) {
    let b = banks::get(store, bank).await.unwrap();
    (b.content_count, b.disabled_count)
}

/// The bank's signal values, in item order (as its export reads them).
async fn signal_values(store: &Store, bank: &str) -> Vec<String> {
    let id = banks::by_name(store, bank).await.unwrap().id;
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = bulwark_store::content::export_page(store, id, after)
            .await
            .unwrap();
        out.extend(page.rows.iter().map(|r| r.value.clone()));
        match page.last {
            Some(last) if !page.done => after = last,
            _ => return out,
        }
    }
}

/// How many of `hashes` the index finds exactly in `bank`.
fn indexed(catalog: &Catalog, bank: &str, hashes: &[PdqHash]) -> usize {
    hashes
        .iter()
        .filter(|h| {
            catalog
                .search(h, None)
                .iter()
                .any(|hit| &*hit.bank == bank && hit.distance == 0)
        })
        .count()
}

async fn create(
    store: &Store,
    spool: &Spool,
    actor: &str,
    bank: &str,
    key: Option<&[u8]>,
    text: &str,
) -> Result<Created, Error> {
    let new = NewJob {
        bank,
        format: Some("lines"),
        source: Some("test".into()),
        idempotency_key: key,
    };
    imports::create(store, spool, actor, new, body(text)).await
}

fn rejected_lines(job: &ImportJob) -> Vec<usize> {
    job.rejected
        .as_ref()
        .unwrap()
        .iter()
        .map(|r| r.line)
        .collect()
}

/// Files left in the spool directory.
fn spooled(spool: &Spool) -> usize {
    std::fs::read_dir(&spool.dir).map_or(0, |d| d.count())
}

/// Checks a finished job of `l` into `bank` against the list, the bank's
/// counters and the index.
async fn check_done(store: &Store, catalog: &Catalog, bank: &str, job: &ImportJob, l: &List) {
    assert_eq!(job.status, "done", "{job:?}");
    assert_eq!(job.lines, l.lines as i64);
    assert_eq!(job.added, l.hashes.len() as i64, "{job:?}");
    assert_eq!(job.duplicates, 1, "the in-file duplicate");
    assert_eq!(job.rejected_count, l.rejected.len() as i64);
    assert_eq!(rejected_lines(job), l.rejected);
    assert_eq!(job.bytes_done, job.bytes_total);
    assert_eq!(job.bytes_total, l.text.len() as i64);
    assert!(job.finished_at.is_some() && job.error.is_none(), "{job:?}");
    assert_eq!(counts(store, bank).await, (l.hashes.len() as i64, 0));
    assert_eq!(indexed(catalog, bank, &l.hashes), l.hashes.len());
    let values = signal_values(store, bank).await;
    let distinct: HashSet<&String> = values.iter().collect();
    assert_eq!(distinct.len(), values.len(), "no content imported twice");
    let want: HashSet<String> = l.hashes.iter().map(|h| h.to_string()).collect();
    assert_eq!(distinct.into_iter().cloned().collect::<HashSet<_>>(), want);
}

async fn exercise(t: &TestStore) {
    let store = &t.store;
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool {
        dir: dir.path().join("imports"),
        max_bytes: 10 << 20,
    };
    let catalog = Catalog::new();
    catalog.load(store).await.unwrap();
    for b in ["whole", "resumed", "gone"] {
        make_bank(store, &catalog, b).await;
    }
    let l = list(1, 5000);

    // Refused before anything is spooled or queued.
    let ok = l.text.as_str();
    let bad_keys: [&[u8]; 3] = [b"", &[b'k'; 201], b"k\x01"];
    for key in bad_keys {
        let r = create(store, &spool, ACTOR, "whole", Some(key), ok).await;
        assert_eq!(kind(r), Kind::BadRequest);
    }
    let r = create(store, &spool, ACTOR, "nope", None, ok).await;
    assert_eq!(kind(r), Kind::NotFound);
    let new = NewJob {
        bank: "whole",
        format: Some("xml"),
        ..NewJob::default()
    };
    assert_eq!(
        kind(imports::create(store, &spool, ACTOR, new, body(ok)).await),
        Kind::BadRequest
    );
    let small = Spool {
        max_bytes: 100,
        ..spool.clone()
    };
    let r = create(store, &small, ACTOR, "whole", None, ok).await;
    assert_eq!(kind(r), Kind::TooLarge);
    assert_eq!(spooled(&spool), 0, "a refused upload leaves no file");
    assert!(
        imports::list(store, None, None)
            .await
            .unwrap()
            .imports
            .is_empty()
    );

    // An uninterrupted job.
    let whole = create(store, &spool, ACTOR, "whole", None, &l.text)
        .await
        .unwrap();
    assert!(whole.new);
    assert_eq!(whole.job.status, "queued");
    assert_eq!(whole.job.rejected, None, "listed by get only");
    assert_eq!(imports::run_pending(store, &catalog).await.unwrap(), 1);
    let whole = imports::get(store, &whole.job.id).await.unwrap();
    check_done(store, &catalog, "whole", &whole, &l).await;
    assert_eq!(spooled(&spool), 0, "the spool file goes at the end");

    // The same list again: nothing added, all duplicates.
    let again = create(store, &spool, ACTOR, "whole", None, &l.text)
        .await
        .unwrap();
    imports::run_pending(store, &catalog).await.unwrap();
    let again = imports::get(store, &again.job.id).await.unwrap();
    assert_eq!(
        (again.added, again.duplicates),
        (0, l.hashes.len() as i64 + 1)
    );
    assert_eq!(counts(store, "whole").await, (l.hashes.len() as i64, 0));

    // Idempotency: a retry with the same key gets the first job (its body
    // is not read); the same key from another caller is another job.
    let first = create(store, &spool, ACTOR, "resumed", Some(b"k-1"), &l.text)
        .await
        .unwrap();
    assert!(first.new);
    let retry = create(store, &spool, ACTOR, "resumed", Some(b"k-1"), "pdq 00")
        .await
        .unwrap();
    assert!(!retry.new);
    assert_eq!(retry.job.id, first.job.id);
    assert_eq!(retry.job.bytes_total, l.text.len() as i64);
    let other = create(store, &spool, "other-key", "whole", Some(b"k-1"), "")
        .await
        .unwrap();
    assert!(other.new);
    assert_ne!(other.job.id, first.job.id);
    // Cancelled while queued: its file goes; a second cancel conflicts.
    let cancelled = imports::cancel(store, ACTOR, &other.job.id).await.unwrap();
    assert_eq!(cancelled.status, "cancelled");
    assert_eq!(
        kind(imports::cancel(store, ACTOR, &other.job.id).await),
        Kind::Conflict
    );
    assert_eq!(spooled(&spool), 1, "only the queued job's list");
    assert_eq!(kind(imports::get(store, "nope").await), Kind::NotFound);
    let listed: Vec<String> = imports::list(store, Some("whole"), None)
        .await
        .unwrap()
        .imports
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(!listed.contains(&first.job.id), "another bank's job");

    // Stopped after its first batch, as a stopped worker leaves it.
    let id = first.job.id.clone();
    imports::run_for(store, &catalog, &id, 1).await.unwrap();
    let stopped = imports::get(store, &id).await.unwrap();
    assert_eq!(stopped.status, "running", "{stopped:?}");
    assert!(
        stopped.lines > 0 && (stopped.lines as usize) < l.lines,
        "{stopped:?}"
    );
    assert!(stopped.bytes_done < stopped.bytes_total);
    // The checkpoint and the batch were committed together: whole pieces
    // (how many depends on timing: a batch commits early when a writer
    // waits), at most a batch's worth.
    let records = (stopped.added + stopped.duplicates) as usize;
    let piece = imports::piece_records(store.backend);
    assert!(
        records > 0 && records.is_multiple_of(piece) && records <= JOB_BATCH,
        "{stopped:?}"
    );
    assert_eq!(counts(store, "resumed").await, (stopped.added, 0));
    let seen: Vec<usize> = l
        .rejected
        .iter()
        .copied()
        .filter(|&n| n <= stopped.lines as usize)
        .collect();
    assert_eq!(rejected_lines(&stopped), seen);

    // Reopened (a restart): the job resumes at its checkpoint.
    let url = store.pool.connect_options().database_url.to_string();
    store.pool.close().await;
    let store = Store::open(&url).await.unwrap();
    let catalog = Catalog::new();
    catalog.load(&store).await.unwrap();
    assert_eq!(imports::next_job(&store).await.unwrap(), Some(id.clone()));
    assert_eq!(imports::run_pending(&store, &catalog).await.unwrap(), 1);
    let resumed = imports::get(&store, &id).await.unwrap();
    check_done(&store, &catalog, "resumed", &resumed, &l).await;
    assert_eq!(
        signal_values(&store, "resumed")
            .await
            .into_iter()
            .collect::<BTreeSet<_>>(),
        signal_values(&store, "whole")
            .await
            .into_iter()
            .collect::<BTreeSet<_>>(),
        "the same content as the uninterrupted job"
    );
    assert_eq!(spooled(&spool), 0);

    // A job whose bank is deleted before it runs fails, saying why.
    let gone = create(&store, &spool, ACTOR, "gone", None, &list(2, 100).text)
        .await
        .unwrap();
    banks::delete(&store, &catalog, ACTOR, "gone")
        .await
        .unwrap();
    make_bank(&store, &catalog, "gone").await;
    imports::run_pending(&store, &catalog).await.unwrap();
    let gone = imports::get(&store, &gone.job.id).await.unwrap();
    assert_eq!(gone.status, "failed");
    assert!(
        gone.error
            .as_deref()
            .unwrap_or_default()
            .contains("deleted during the import"),
        "{gone:?}"
    );
    assert_eq!(counts(&store, "gone").await, (0, 0));
    assert_eq!(spooled(&spool), 0);
    assert_eq!(imports::run_pending(&store, &catalog).await.unwrap(), 0);
    store.pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_jobs_on_sqlite() {
    let t = TestStore::sqlite().await;
    exercise(&t).await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_jobs_on_postgres() {
    let Some(t) = TestStore::postgres("imports").await else {
        return;
    };
    exercise(&t).await;
    t.cleanup().await;
}

/// What `db::insert_contents` (the import path's batch insert: multi-row
/// `VALUES` statements of up to 512 bound rows, so 1,200 rows take
/// several, of different sizes; on SQLite the change rows are copied from
/// the new content rows by one `INSERT … SELECT`) answers and stores, checked against its input: new keys get ids in
/// order, a key already in the bank and a repeat within the batch get
/// `None`, each new row has one change row (ascending), and the note,
/// metadata, source and signals are stored as given.
async fn batch_insert(t: &TestStore) {
    use bulwark_store::{self as db, NewContent, SignalRow};
    let store = &t.store;
    let catalog = Catalog::new();
    catalog.load(store).await.unwrap();
    make_bank(store, &catalog, "batch").await;
    let bank = db::bank_by_name(store, "batch").await.unwrap().unwrap();
    let item = |i: u64, note: Option<&str>| {
        let h = hash(9, i);
        NewContent {
            kind: "signals",
            dedup_key: format!("pdq:{h}"),
            note: note.map(str::to_string),
            metadata: note.map(|n| format!("{{\"n\":\"{n}\",\"q\":\"it's \\\"x\\\"\"}}")),
            source: Some(format!("list-{i}")),
            signals: vec![SignalRow {
                signal_type: "pdq".into(),
                value: h.to_string(),
                quality: i.is_multiple_of(2).then_some(i as i64),
            }],
            frames: Vec::new(),
            frame_extras: Vec::new(),
        }
    };
    let mut tx = store.begin().await.unwrap();
    let (first, _) = db::insert_contents(store, &mut tx, None, bank.id, ACTOR, &[item(0, None)])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let before = first[0].unwrap();
    // 0 is banked already; 3 comes twice; 1200 rows cross two 512-row chunks.
    let mut items: Vec<NewContent> = (1..1200).map(|i| item(i, Some("ñ \\ ' \""))).collect();
    items.insert(0, item(0, Some("again")));
    items.push(item(3, Some("repeat")));
    let mut tx = store.begin().await.unwrap();
    let (ids, changes) = db::insert_contents(store, &mut tx, None, bank.id, "curator-2", &items)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids.len(), items.len());
    assert_eq!(ids[0], None, "already banked");
    assert_eq!(*ids.last().unwrap(), None, "repeated in the batch");
    let new: Vec<i64> = ids[1..ids.len() - 1].iter().map(|i| i.unwrap()).collect();
    assert!(new.windows(2).all(|w| w[0] < w[1]), "ids follow the input");
    assert!(new[0] > before);
    assert_eq!(changes.len(), new.len());
    assert!(changes.windows(2).all(|w| w[0].0 < w[1].0));
    let changed: Vec<i64> = changes.iter().map(|c| c.2.unwrap()).collect();
    assert_eq!(changed, new, "one change per new row, in order");
    assert!(changes.iter().all(|c| c.1 == Some(bank.id)));
    for (k, &id) in [0usize, 1, 511, 512, 1023, 1024, 1198]
        .iter()
        .map(|&k| (k, &new[k]))
    {
        let want = item(k as u64 + 1, Some("ñ \\ ' \""));
        let row = db::hma::content(store, id).await.unwrap().unwrap();
        assert_eq!(row.bank_id, bank.id);
        assert_eq!(row.kind, "signals");
        assert_eq!(row.note, want.note);
        assert_eq!(row.metadata, want.metadata);
        assert_eq!(row.source, want.source);
        assert_eq!(row.added_by, "curator-2");
        assert!(row.enabled);
        assert_eq!(db::signals_of(store, id).await.unwrap(), want.signals);
    }
    assert_eq!(counts(store, "batch").await, (1200, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_insert_on_sqlite() {
    let t = TestStore::sqlite().await;
    batch_insert(&t).await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_insert_on_postgres() {
    let Some(t) = TestStore::postgres("batch_insert").await else {
        return;
    };
    batch_insert(&t).await;
    t.cleanup().await;
}

/// HMA's per-type sizes (`hma::type_stats`) and a bank's sizes read
/// counters (store modules `counts` and `insert_counts`) instead of counting
/// `signals` and `content`. After a batch with a repeat, a single add with
/// three types, a rolled-back add, a bulk load, items that carry their PDQ
/// hash in their content row, disabling and enabling, two
/// content deletes and a bank delete (cascading), each type's counter and
/// each bank's content and disabled counters equal a count of the table.
/// Inserts are counted by the store's insert functions on SQLite and by
/// statement triggers on PostgreSQL; a path that counted twice (a trigger
/// left beside the store's count) or not at all fails here.
async fn signal_counts(t: &TestStore) {
    use bulwark_store::{self as db, NewContent, SignalRow};
    use sqlx::Row;
    let store = &t.store;
    let catalog = Catalog::new();
    catalog.load(store).await.unwrap();
    make_bank(store, &catalog, "counted_a").await;
    make_bank(store, &catalog, "counted_b").await;
    let a = db::bank_by_name(store, "counted_a")
        .await
        .unwrap()
        .unwrap()
        .id;
    let b = db::bank_by_name(store, "counted_b")
        .await
        .unwrap()
        .unwrap()
        .id;
    let item = |i: u64, types: &[&str]| NewContent {
        kind: "signals",
        dedup_key: format!("k{i}"),
        note: None,
        metadata: None,
        source: None,
        signals: types
            .iter()
            .map(|t| SignalRow {
                signal_type: t.to_string(),
                value: format!("{t}-{i}"),
                quality: None,
            })
            .collect(),
        frames: Vec::new(),
        frame_extras: Vec::new(),
    };
    let types = ["pdq", "md5", "sha256"];
    // Content rows that carry their PDQ hash (store module `carried`).
    let carried = || async {
        sqlx::query("SELECT COUNT(*) AS n FROM content WHERE carried = 1")
            .fetch_one(&store.pool)
            .await
            .unwrap()
            .get::<i64, _>("n")
    };
    let counts = || async {
        let mut out = Vec::new();
        for t in types {
            let rows: i64 =
                sqlx::query(&store.sql("SELECT COUNT(*) AS n FROM signals WHERE signal_type = ?"))
                    .bind(t)
                    .fetch_one(&store.pool)
                    .await
                    .unwrap()
                    .get("n");
            let table = rows + if t == "pdq" { carried().await } else { 0 };
            let kept = db::hma::signal_count(store, t).await.unwrap();
            assert_eq!(kept, table, "{t}");
            out.push(kept);
        }
        for bank in [a, b] {
            let row = sqlx::query(&store.sql(
                "SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN enabled = 0 THEN 1 ELSE 0 END), 0) AS d \
                 FROM content WHERE bank_id = ?",
            ))
            .bind(bank)
            .fetch_one(&store.pool)
            .await
            .unwrap();
            let table: (i64, i64) = (row.get("n"), row.get("d"));
            let kept = db::bank_counts(store, &store.pool, bank).await.unwrap();
            assert_eq!(kept, table, "bank {bank}");
        }
        out
    };
    assert_eq!(counts().await, [0, 0, 0]);
    let mut tx = store.begin().await.unwrap();
    let batch = [
        item(0, &["pdq"]),
        item(1, &["pdq"]),
        item(1, &["pdq"]),
        item(2, &["md5"]),
    ];
    let (ids, _) = db::insert_contents(store, &mut tx, None, a, ACTOR, &batch)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(counts().await, [2, 1, 0]);
    let mut tx = store.begin().await.unwrap();
    db::insert_content(store, &mut tx, b, ACTOR, &item(3, &types))
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(counts().await, [3, 2, 1]);
    let mut tx = store.begin().await.unwrap();
    db::insert_content(store, &mut tx, b, ACTOR, &item(4, &types))
        .await
        .unwrap()
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(counts().await, [3, 2, 1]);
    let loaded: Vec<PdqHash> = (0..3).map(|i| hash(31, i)).collect();
    db::bulk_insert_pdq(store, a, "bench", &loaded)
        .await
        .unwrap();
    assert_eq!(counts().await, [6, 2, 1]);
    // Items of one PDQ hash keyed by it: their content rows carry the hash
    // (store module `carried`), counted by the insert function on SQLite
    // and the content triggers on PostgreSQL.
    let mut carrying = Vec::new();
    for (bank, range) in [(a, 0..3u64), (b, 10..12)] {
        let batch: Vec<NewContent> = range
            .map(|i| NewContent::pdq(hash(37, i).to_string(), Some(90)))
            .collect();
        let mut tx = store.begin().await.unwrap();
        let (ids, _) = db::insert_contents(store, &mut tx, None, bank, ACTOR, &batch)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        carrying.extend(ids.into_iter().flatten());
    }
    assert_eq!(carried().await, 5);
    assert_eq!(counts().await, [11, 2, 1]);
    for enabled in [0, 1, 0] {
        sqlx::query(&store.sql("UPDATE content SET enabled = ? WHERE id = ?"))
            .bind(enabled)
            .bind(ids[3].unwrap())
            .execute(&store.pool)
            .await
            .unwrap();
        assert_eq!(counts().await, [11, 2, 1]);
    }
    for (id, after) in [(ids[0], [10, 2, 1]), (Some(carrying[0]), [9, 2, 1])] {
        sqlx::query(&store.sql("DELETE FROM content WHERE id = ?"))
            .bind(id.unwrap())
            .execute(&store.pool)
            .await
            .unwrap();
        assert_eq!(counts().await, after);
    }
    sqlx::query(&store.sql("DELETE FROM banks WHERE id = ?"))
        .bind(b)
        .execute(&store.pool)
        .await
        .unwrap();
    assert_eq!(counts().await, [6, 1, 0]);
    // Left: bank a's other two.
    assert_eq!(carried().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_counts_on_sqlite() {
    let t = TestStore::sqlite().await;
    signal_counts(&t).await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_counts_on_postgres() {
    let Some(t) = TestStore::postgres("signal_counts").await else {
        return;
    };
    signal_counts(&t).await;
    t.cleanup().await;
}

/// On PostgreSQL, applying a change reads the item's signals through
/// `signals_content`, also while the table's statistics are older than its
/// rows (a first large import, before autovacuum analyses it). As a plain
/// join, the planner then read the whole `signals` table for every single
/// write applied beside the import (60-200 ms at 200,000 rows, growing with
/// the table).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_reads_signals_by_index_before_statistics_on_postgres() {
    use bulwark_store::{self as db, NewContent};
    use sqlx::Row;
    let Some(t) = TestStore::postgres("apply_plan").await else {
        return;
    };
    let store = &t.store;
    let catalog = Catalog::new();
    catalog.load(store).await.unwrap();
    make_bank(store, &catalog, "unanalysed").await;
    let bank = db::bank_by_name(store, "unanalysed")
        .await
        .unwrap()
        .unwrap();
    let items: Vec<NewContent> = (0..20_000)
        .map(|i| NewContent::pdq(hash(17, i).to_string(), None))
        .collect();
    let mut tx = store.begin().await.unwrap();
    let (ids, _) = db::insert_contents(store, &mut tx, None, bank.id, ACTOR, &items)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // The plan the server ends up with: the driver prepares statements, and
    // after five runs PostgreSQL may keep a generic plan (the ids unknown).
    let mut conn = store.pool.acquire().await.unwrap();
    let sql = store
        .sql(&db::catalog::indexed_content_sql(store))
        .into_owned();
    let some: Vec<String> = ids[..3].iter().map(|i| i.unwrap().to_string()).collect();
    let mut plan = Vec::new();
    for (i, mode) in ["auto", "force_generic_plan"].iter().enumerate() {
        for sql in [
            format!("SET plan_cache_mode = {mode}"),
            format!("PREPARE apply_{i}(text) AS {sql}"),
        ] {
            sqlx::query(&sql).execute(&mut *conn).await.unwrap();
        }
        let explain = format!("EXPLAIN EXECUTE apply_{i}('{{{}}}')", some.join(","));
        let lines: Vec<String> = sqlx::query(&explain)
            .fetch_all(&mut *conn)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get::<String, _>(0).unwrap())
            .collect();
        assert!(
            lines.iter().any(|l| l.contains("signals_content")),
            "{mode}: {lines:#?}"
        );
        plan.extend(lines);
    }
    assert!(
        !plan.iter().any(|l| l.contains("Seq Scan on signals")),
        "{plan:#?}"
    );
    // Its settings and statements stay out of the pool.
    drop(conn.detach());
    // And it answers: each of the three with its hash.
    let got = db::catalog::indexed_content(store, &[ids[0].unwrap(), ids[2].unwrap()])
        .await
        .unwrap();
    let mut pdq: Vec<String> = got.iter().filter_map(|c| c.pdq.clone()).collect();
    pdq.sort();
    let mut want = vec![hash(17, 0).to_string(), hash(17, 2).to_string()];
    want.sort();
    assert_eq!(pdq, want);
    t.cleanup().await;
}

/// Start-up reads every banked hash of a type page by page (`signal_page`).
/// A type with no rows is not read at all, a rare type is read through
/// `signals_value` rather than by scanning every PDQ row, and each way gives
/// every row of the type, once, in id order.
async fn signal_pages(t: &TestStore) {
    use bulwark_store::{self as db, NewContent, Reading, SignalRow};
    use sqlx::Row;
    let store = &t.store;
    let catalog = Catalog::new();
    catalog.load(store).await.unwrap();
    make_bank(store, &catalog, "paged").await;
    let bank = db::bank_by_name(store, "paged").await.unwrap().unwrap().id;
    // 2,000 PDQ items; every 100th also holds a rare exact hash.
    let items: Vec<NewContent> = (0..2_000u64)
        .map(|i| {
            let mut c = NewContent::pdq(hash(23, i).to_string(), None);
            if i % 100 == 0 {
                c.signals.push(SignalRow {
                    signal_type: "md5".into(),
                    value: format!("{i:032x}"),
                    quality: None,
                });
            }
            c
        })
        .collect();
    let mut tx = store.begin().await.unwrap();
    let (ids, _) = db::insert_contents(store, &mut tx, None, bank, ACTOR, &items)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // The truth, from a plain query per type.
    let truth = |ty: &'static str| async move {
        sqlx::query(&store.sql(
            "SELECT content_id, bank_id, value FROM signals WHERE signal_type = ? ORDER BY id",
        ))
        .bind(ty)
        .fetch_all(&store.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.try_get::<i64, _>(0).unwrap(),
                r.try_get::<i64, _>(1).unwrap(),
                r.try_get::<String, _>(2).unwrap(),
            )
        })
        .collect::<Vec<_>>()
    };
    for (ty, reading, rows) in [
        ("pdq", Reading::Scan, 2_000),
        ("md5", Reading::ByIndex, 20),
        ("sha256", Reading::Empty, 0),
    ] {
        assert_eq!(
            db::signal_reading(store, ty).await.unwrap(),
            reading,
            "{ty}"
        );
        let mut got = Vec::new();
        let mut after = 0;
        while let Some(page) = db::signal_page(store, ty, after).await.unwrap() {
            assert!(page.last > after);
            after = page.last;
            got.extend(
                page.rows()
                    .map(|r| r.map(|(c, b, v)| (c, b, v.to_string())).unwrap()),
            );
        }
        let want = truth(ty).await;
        if ty != "pdq" {
            assert_eq!(want.len(), rows, "{ty}");
            assert_eq!(got, want, "{ty}");
            continue;
        }
        // PDQ: the rows of `signals` as they are (the items that also hold
        // an MD5 hash), then the hashes content rows carry (each item of one
        // PDQ hash: store module `carried`), together every hash inserted.
        assert_eq!(got, want, "pdq rows");
        assert_eq!(want.len(), rows / 100, "pdq rows");
        let mut after = 0;
        while let Some(page) = db::carried_page(store, after).await.unwrap() {
            assert!(page.last > after);
            after = page.last;
            got.extend(
                page.rows()
                    .map(|r| r.map(|(c, b, v)| (c, b, v.to_string())).unwrap()),
            );
        }
        let mut inserted: Vec<_> = (0..2_000u64)
            .map(|i| (ids[i as usize].unwrap(), bank, hash(23, i).to_string()))
            .collect();
        inserted.sort();
        got.sort();
        assert_eq!(got, inserted, "pdq");
    }
    assert_eq!(ids.iter().flatten().count(), 2_000);
    // The rare type's statement goes through its index on each planner.
    let sql = db::signal_page_sql(store, Reading::ByIndex).unwrap();
    let mut conn = store.pool.acquire().await.unwrap();
    let plan: Vec<String> = match store.backend {
        db::Backend::Sqlite => {
            let q = sql
                .replacen('?', "0", 1)
                .replacen('?', "'md5'", 1)
                .replacen('?', "100000", 1);
            sqlx::query(&format!("EXPLAIN QUERY PLAN {q}"))
                .fetch_all(&mut *conn)
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get::<String, _>("detail").unwrap())
                .collect()
        }
        db::Backend::Postgres => {
            // Without statistics (a table no one analysed), and with the
            // generic plan a prepared statement may keep.
            for q in [
                "SET plan_cache_mode = force_generic_plan".to_string(),
                format!("PREPARE paged(bigint, text, bigint) AS {sql}"),
            ] {
                sqlx::query(&q).execute(&mut *conn).await.unwrap();
            }
            sqlx::query("EXPLAIN EXECUTE paged(0, 'md5', 100000)")
                .fetch_all(&mut *conn)
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get::<String, _>(0).unwrap())
                .collect()
        }
    };
    drop(conn.detach());
    assert!(
        plan.iter().any(|l| l.contains("signals_value")),
        "{plan:#?}"
    );
}

#[tokio::test]
async fn signal_pages_on_sqlite() {
    let t = TestStore::sqlite().await;
    signal_pages(&t).await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_pages_on_postgres() {
    let Some(t) = TestStore::postgres("signal_pages").await else {
        return;
    };
    signal_pages(&t).await;
    t.cleanup().await;
}

/// `db::insert_contents` writes what it was given and answers which row is
/// which: each new id's content row holds its item's key, note, metadata
/// and source byte for byte (quotes, backslashes, braces, commas, the text
/// `NULL`, an empty text, non-ASCII and a real `NULL` among them: on
/// PostgreSQL the rows travel as array literals), its signals are the
/// item's, a key repeated in the call or held from before gets no id, and
/// the answered change rows are the table's, one per new id, in sequence
/// order.
async fn insert_contents_rows_read_back(t: &TestStore) {
    use bulwark_store::{self as db, NewContent, SignalRow};
    use sqlx::Row;
    let store = &t.store;
    let catalog = Catalog::new();
    catalog.load(store).await.unwrap();
    make_bank(store, &catalog, "read_back").await;
    let bank = db::bank_by_name(store, "read_back")
        .await
        .unwrap()
        .unwrap()
        .id;
    let awkward = [
        None,
        Some(""),
        Some("NULL"),
        Some("a \"quoted\", {braced} text"),
        Some("back\\slash\\\\ and \\\" end\\"),
        Some("naïve — 東京 \u{1F600}\ttab\nline"),
        Some(" leading and trailing "),
    ];
    let item = |i: usize, signals: usize| NewContent {
        kind: ["signals", "photo", "video"][i % 3],
        dedup_key: format!("key {i} {}", awkward[i % awkward.len()].unwrap_or("none")),
        note: awkward[i % awkward.len()].map(str::to_string),
        metadata: awkward[(i + 1) % awkward.len()].map(str::to_string),
        source: awkward[(i + 2) % awkward.len()].map(str::to_string),
        signals: (0..signals)
            .map(|s| SignalRow {
                signal_type: ["pdq", "md5", "sha256"][s].to_string(),
                value: format!("{s}-{i}"),
                quality: (s == 0).then_some(i as i64),
            })
            .collect(),
        frames: Vec::new(),
        frame_extras: Vec::new(),
    };
    let mut tx = store.begin().await.unwrap();
    let (held, _) = db::insert_contents(store, &mut tx, None, bank, ACTOR, &[item(3, 1)])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut items: Vec<NewContent> = (0..40).map(|i| item(i, i % 4)).collect();
    items.push(item(5, 2));
    let mut tx = store.begin().await.unwrap();
    let (ids, changes) = db::insert_contents(store, &mut tx, None, bank, ACTOR, &items)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids.len(), items.len());
    assert_eq!(ids[3], None, "held from before");
    assert!(held[0].is_some());
    assert_eq!(ids[40], None, "repeated in the call");
    for (i, (id, c)) in ids.iter().zip(&items).enumerate() {
        let Some(id) = *id else {
            assert!(i == 3 || i == 40, "item {i} got no id");
            continue;
        };
        let row = sqlx::query(&store.sql(
            "SELECT bank_id, kind, dedup_key, note, metadata, source, added_by FROM content WHERE id = ?",
        ))
        .bind(id)
        .fetch_one(&store.pool)
        .await
        .unwrap();
        assert_eq!(row.get::<i64, _>("bank_id"), bank);
        assert_eq!(row.get::<String, _>("kind"), c.kind, "item {i}");
        assert_eq!(row.get::<String, _>("dedup_key"), c.dedup_key, "item {i}");
        assert_eq!(row.get::<Option<String>, _>("note"), c.note, "item {i}");
        assert_eq!(
            row.get::<Option<String>, _>("metadata"),
            c.metadata,
            "item {i}"
        );
        assert_eq!(row.get::<Option<String>, _>("source"), c.source, "item {i}");
        assert_eq!(row.get::<String, _>("added_by"), ACTOR);
        let signals = db::signals_of(store, id).await.unwrap();
        let mut got: Vec<(String, String, Option<i64>)> = signals
            .into_iter()
            .map(|s| (s.signal_type, s.value, s.quality))
            .collect();
        let mut want: Vec<(String, String, Option<i64>)> = c
            .signals
            .iter()
            .map(|s| (s.signal_type.clone(), s.value.clone(), s.quality))
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "item {i}");
    }
    let new: BTreeSet<i64> = ids.iter().flatten().copied().collect();
    assert_eq!(new.len(), 39);
    let table: Vec<(i64, Option<i64>, Option<i64>)> = sqlx::query(&store.sql(
        "SELECT seq, bank_id, content_id FROM changes WHERE content_id IN \
         (SELECT id FROM content WHERE bank_id = ? AND id <> ?) ORDER BY seq",
    ))
    .bind(bank)
    .bind(held[0].unwrap())
    .fetch_all(&store.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.get("seq"), r.get("bank_id"), r.get("content_id")))
    .collect();
    assert_eq!(changes, table);
    let answered: BTreeSet<i64> = changes.iter().filter_map(|c| c.2).collect();
    assert_eq!(answered, new);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_contents_rows_read_back_on_sqlite() {
    let t = TestStore::sqlite().await;
    insert_contents_rows_read_back(&t).await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_contents_rows_read_back_on_postgres() {
    let Some(t) = TestStore::postgres("read_back").await else {
        return;
    };
    insert_contents_rows_read_back(&t).await;
    t.cleanup().await;
}

/// On PostgreSQL the keys an import probes and inserts by compare as bytes
/// (collation "C", store module `byte_keys`), whatever the database's
/// collation: the columns, and the indexes built on them, which is where
/// the comparisons run. Taking the module out, or a later version that
/// rebuilds a table or index with the database's collation, fails here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_keys_compare_as_bytes_on_postgres() {
    let Some(t) = TestStore::postgres("byte_keys").await else {
        return;
    };
    let store = &t.store;
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT a.attrelid::regclass::text, a.attname::text, c.collname::text \
         FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation \
         WHERE (a.attrelid, a.attname) IN (('content'::regclass, 'dedup_key'), \
           ('signals'::regclass, 'signal_type'), ('signals'::regclass, 'value')) \
         ORDER BY 1, 2",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    let c = |table: &str, column: &str| (table.to_string(), column.to_string(), "C".to_string());
    assert_eq!(
        columns,
        [
            c("content", "dedup_key"),
            c("signals", "signal_type"),
            c("signals", "value")
        ]
    );
    // Each text key column of each index on those tables: its collation.
    let indexed: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT i.indexrelid::regclass::text, a.attname::text, c.collname::text \
         FROM pg_index i \
         CROSS JOIN LATERAL unnest(i.indkey::int2[], i.indcollation::oid[]) AS k (attnum, coll) \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
         JOIN pg_collation c ON c.oid = k.coll \
         WHERE i.indrelid IN ('content'::regclass, 'signals'::regclass) AND k.coll <> 0 \
         ORDER BY 1, 2",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    assert_eq!(
        indexed,
        [
            c("content_bank_id_dedup_key_key", "dedup_key"),
            c("signals_value", "signal_type"),
            c("signals_value", "value")
        ]
    );
    t.cleanup().await;
}

/// On PostgreSQL an import call first tries its statement without `ON
/// CONFLICT` (one search of the unique index a row instead of two), and
/// goes back to a savepoint and the statement with it when the bank holds
/// one of its keys. Performed here: a batch whose last key the bank holds;
/// further writes in the same transaction after that; and two replicas
/// (two stores, each with its own memory of recent conflicts) importing the
/// same key at once, the first committing or rolling back while the second
/// waits on its key. Each key is in the bank once, every batch gets the
/// ids of exactly its new rows, and the counters match the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_batches_meeting_held_keys_on_postgres() {
    use crate::references::{bank, content_rows, count, items};
    use bulwark_store as db;
    let Some(t) = TestStore::postgres("held_keys").await else {
        return;
    };
    let store = &t.store;
    let b = bank(store, "held").await;

    // A batch of new keys, then one whose last key the bank holds, then
    // more writes in that transaction.
    let mut tx = store.begin().await.unwrap();
    let (ids, _) = db::insert_contents(store, &mut tx, None, b, ACTOR, &items("a", 100))
        .await
        .unwrap();
    assert!(ids.iter().all(Option::is_some));
    tx.commit().await.unwrap();
    let mut batch = items("b", 99);
    batch.extend(items("a", 100).into_iter().skip(99));
    let mut tx = store.begin().await.unwrap();
    let (ids, changes) = db::insert_contents(store, &mut tx, None, b, ACTOR, &batch)
        .await
        .unwrap();
    assert!(ids[..99].iter().all(Option::is_some), "{ids:?}");
    assert_eq!(ids[99], None, "the key the bank holds");
    assert_eq!(changes.len(), 99);
    let (more, _) = db::insert_contents(store, &mut tx, None, b, ACTOR, &items("c", 10))
        .await
        .unwrap();
    assert!(more.iter().all(Option::is_some));
    tx.commit().await.unwrap();
    assert_eq!(content_rows(store, b).await, 209);
    // The failed attempt drew no change number: the change feed has no gap
    // for replicas to wait on (the change rows are sorted by content id, so
    // they are drawn only once every content row is in).
    let (first, last, n): (i64, i64, i64) =
        sqlx::query_as("SELECT MIN(seq), MAX(seq), COUNT(*) FROM changes WHERE bank_id = $1")
            .bind(b)
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert!(n >= 209, "{n} changes");
    assert_eq!(last - first + 1, n, "a gap in the change feed");

    // Two replicas, the same key: the second waits for the first's
    // transaction, then skips the key if it committed, or adds it if it
    // rolled back.
    let url = store.pool.connect_options().database_url.to_string();
    for commit in [true, false] {
        let tag = if commit {
            "race-commit"
        } else {
            "race-rollback"
        };
        let (one, two) = (
            Store::open(&url).await.unwrap(),
            Store::open(&url).await.unwrap(),
        );
        let mut first = one.begin().await.unwrap();
        db::insert_contents(&one, &mut first, None, b, ACTOR, &items(tag, 1))
            .await
            .unwrap();
        let second = {
            let two = two.clone();
            let mut batch = items(&format!("{tag}-other"), 5);
            batch.extend(items(tag, 1));
            tokio::spawn(async move {
                let mut tx = two.begin().await?;
                let (ids, _) = db::insert_contents(&two, &mut tx, None, b, ACTOR, &batch).await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(ids)
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!second.is_finished(), "the second did not wait on the key");
        if commit {
            first.commit().await.unwrap();
        } else {
            first.rollback().await.unwrap();
        }
        let ids = second.await.unwrap().unwrap();
        assert!(ids[..5].iter().all(Option::is_some), "{ids:?}");
        assert_eq!(ids[5].is_some(), !commit, "{ids:?}");
        one.pool.close().await;
        two.pool.close().await;
    }
    assert_eq!(content_rows(store, b).await, 209 + 6 + 6);
    let keys = count(
        store,
        "SELECT COUNT(DISTINCT dedup_key) AS n FROM content WHERE bank_id = ?",
        b,
    )
    .await;
    assert_eq!(keys, 221, "a key twice");
    assert_eq!(counts(store, "held").await, (221, 0));
    t.cleanup().await;
}

/// Inserts a content row with `key` into bank `bank_id` in `tx`, leaving
/// the counters alone (`bulwark.defer_counts`, as an import batch does:
/// the test's transactions lock what a job's batches lock, no more).
async fn insert_key(
    tx: &mut sqlx::AnyConnection,
    bank_id: i64,
    key: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("SET LOCAL bulwark.defer_counts = on")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO content (bank_id, kind, dedup_key, enabled, added_by, created_at, updated_at) \
         VALUES ($1, 'signals', $2, 1, 'test', 0, 0)",
    )
    .bind(bank_id)
    .bind(key)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A bank with a spool directory and an index, for the tests of a job's
/// two connections on PostgreSQL and of the index it leaves.
struct JobBank {
    t: TestStore,
    _dir: tempfile::TempDir,
    spool: Spool,
    catalog: std::sync::Arc<Catalog>,
    name: &'static str,
    id: i64,
}

impl JobBank {
    /// On PostgreSQL; `None` without it.
    async fn new(test: &str, name: &'static str) -> Option<JobBank> {
        Some(JobBank::on(TestStore::postgres(test).await?, name).await)
    }

    /// On the store of `t`.
    async fn on(t: TestStore, name: &'static str) -> JobBank {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool {
            dir: dir.path().join("imports"),
            max_bytes: 10 << 20,
        };
        let catalog = std::sync::Arc::new(Catalog::new());
        catalog.load(&t.store).await.unwrap();
        make_bank(&t.store, &catalog, name).await;
        let id = banks::by_name(&t.store, name).await.unwrap().id;
        JobBank {
            t,
            _dir: dir,
            spool,
            catalog,
            name,
            id,
        }
    }

    /// Queues a job of `lines`.
    async fn create(&self, lines: &[String]) -> Created {
        create(
            &self.t.store,
            &self.spool,
            ACTOR,
            self.name,
            None,
            &lines.join("\n"),
        )
        .await
        .unwrap()
    }

    /// Runs the queued jobs on a task of their own.
    fn spawn_jobs(&self) -> tokio::task::JoinHandle<Result<usize, Error>> {
        let (store, catalog) = (self.t.store.clone(), self.catalog.clone());
        tokio::spawn(async move { imports::run_pending(&store, &catalog).await })
    }

    /// Waits (at most 120 s) for `jobs` ([`JobBank::spawn_jobs`]) and
    /// answers job `id`, which must be done.
    async fn finished(
        &self,
        jobs: tokio::task::JoinHandle<Result<usize, Error>>,
        id: &str,
    ) -> ImportJob {
        tokio::time::timeout(std::time::Duration::from_secs(120), jobs)
            .await
            .expect("the job never finished")
            .unwrap()
            .unwrap();
        let done = imports::get(&self.t.store, id).await.unwrap();
        assert_eq!(done.status, "done", "{done:?}");
        done
    }

    /// Whether a probe inserting `key` had to wait for another
    /// transaction's row (50 ms lock timeout; rolled back either way).
    async fn key_is_taken(&self, key: &str) -> bool {
        let mut p = self.t.store.pool.begin().await.unwrap();
        sqlx::query("SET LOCAL lock_timeout = '50ms'")
            .execute(&mut *p)
            .await
            .unwrap();
        let r = insert_key(&mut p, self.id, key).await;
        p.rollback().await.unwrap();
        match r {
            Ok(()) => false,
            Err(e) if bulwark_store::imports::is_lock_conflict(&e) => true,
            Err(e) => panic!("probe: {e}"),
        }
    }

    /// Checks that the bank holds `n` content items and signals, and that
    /// its content and signal counters say so.
    async fn assert_counted(&self, n: usize) {
        use crate::references::{content_rows, count, signals_held};
        let (store, n) = (&self.t.store, n as i64);
        assert_eq!(content_rows(store, self.id).await, n);
        assert_eq!(counts(store, self.name).await, (n, 0), "bank counters");
        let signals = signals_held(store, self.id).await;
        let counted = count(
            store,
            "SELECT COALESCE(SUM(n), 0)::bigint AS n FROM signal_counts WHERE bank_id = ?",
            self.id,
        )
        .await;
        assert_eq!((signals, counted), (n, n), "signal counters");
    }
}

/// `n` hashes from `seed`, and their list lines.
fn hashed_lines(seed: u64, n: usize) -> (Vec<PdqHash>, Vec<String>) {
    let hashes: Vec<PdqHash> = (0..n as u64).map(|i| hash(seed, i)).collect();
    let lines = hashes.iter().map(|h| format!("pdq {h}")).collect();
    (hashes, lines)
}

/// A list of four batches (`3 * JOB_BATCH + 100` lines from `seed`), its
/// hashes, and two of its keys: `held`, of batch 2 (for another transaction
/// to hold, so batch 2 waits), and `probe`, of batch 3 (taken once batch 3
/// is written).
struct FourBatches {
    hashes: Vec<PdqHash>,
    lines: Vec<String>,
    held: String,
    probe: String,
}

impl FourBatches {
    fn new(seed: u64) -> FourBatches {
        let b = JOB_BATCH;
        let (hashes, lines) = hashed_lines(seed, 3 * b + 100);
        let key = |i: usize| format!("pdq:{}", hashes[i]);
        let (held, probe) = (key(b + 100), key(2 * b + 100));
        FourBatches {
            hashes,
            lines,
            held,
            probe,
        }
    }
}

/// A write run every 100 ms on a task of its own until [`Every::stop`]:
/// single writes, or the index journal's sync.
struct Every {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Every {
    fn start<F, Fut>(store: &Store, write: F) -> Every
    where
        F: Fn(Store) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (store, flag) = (store.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !flag.load(Ordering::Relaxed) {
                write(store.clone()).await;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        });
        Every { stop, task }
    }

    async fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap();
    }
}

/// Single writes: transactions begun by the store ([`Store::begin`]).
async fn single_write(store: Store) {
    store.begin().await.unwrap().rollback().await.unwrap();
}

/// Waits (at most 30 s) until `key` is taken: batch 3 written while batch 2
/// waits. Panics with `why` otherwise.
async fn wait_until_taken(bank: &JobBank, key: &str, why: &str) {
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + Duration::from_secs(30);
    while !bank.key_is_taken(key).await {
        assert!(Instant::now() < deadline, "{why}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks a finished job of [`FourBatches`]: every line added once, the
/// bank's counters and the index complete, and at least one of the four
/// batches written beside the one before (`bulwark_import_batches_total`).
async fn assert_four_with_one_beside(bank: &JobBank, list: &FourBatches, done: &ImportJob) {
    let n = list.lines.len();
    assert_eq!((done.added, done.duplicates), (n as i64, 0), "{done:?}");
    bank.assert_counted(n).await;
    assert_eq!(indexed(&bank.catalog, bank.name, &list.hashes), n);
    let (alone, beside) = bank.t.store.import_batches();
    assert_eq!(alone + beside, 4);
    assert!(beside >= 1, "{alone} alone, {beside} beside");
}

/// An import job on PostgreSQL writes a batch while the one before it
/// waits, and commits them in order; a lock wait through another
/// transaction that the job's ordering would make endless ends, and the
/// job finishes one batch at a time.
///
/// A transaction T holds a key of batch 2, so batch 2 waits. The test
/// then finds batch 3's rows written (a probe inserting one of its keys
/// has to wait): two batches at once. Fails if the job writes one batch at
/// a time. Then T asks for that key of batch 3: T waits for batch 3, which
/// waits for batch 2 to commit, which waits for T. PostgreSQL cannot see
/// the middle wait (it is the job's); batch 2's lock timeout ends it. Fails
/// (times out) without it. The job's counts, the bank's counters and the
/// index then hold the whole list once, with two duplicates: a key of
/// batch 2 again in batch 3 (taken out of batch 3 by the reader: the two
/// are written at once) and a key of batch 1 in batch 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_job_writes_two_batches_at_once_on_postgres() {
    use std::time::{Duration, Instant};
    let Some(bank) = JobBank::new("two_at_once", "apart").await else {
        return;
    };
    let store = &bank.t.store;
    let b = JOB_BATCH;
    let n = 4 * b + 100;
    let (hashes, mut lines) = hashed_lines(7, n);
    lines.insert(2 * b + 10, lines[b + 5].clone());
    lines.insert(3 * b + 10, lines[7].clone());
    let key = |i: usize| format!("pdq:{}", hashes[i]);
    let (held, probe) = (key(b + 100), key(2 * b + 100));

    let mut t1 = store.pool.begin().await.unwrap();
    insert_key(&mut t1, bank.id, &held).await.unwrap();
    let created = bank.create(&lines).await;
    // Single writes in the last second make a job write one batch at a
    // time (`SINGLE_WRITE_WINDOW`); making the bank was one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let job = bank.spawn_jobs();

    // Batch 3 is written while batch 2 waits for T.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !bank.key_is_taken(&probe).await {
        assert!(
            Instant::now() < deadline,
            "batch 3 was not written while batch 2 waited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // T asks for batch 3's key: the cycle. It ends when the batches roll
    // back.
    tokio::time::timeout(
        Duration::from_secs(60),
        insert_key(&mut t1, bank.id, &probe),
    )
    .await
    .expect("the wait through the job never ended")
    .unwrap();
    t1.rollback().await.unwrap();
    let done = bank.finished(job, &created.job.id).await;
    assert_eq!(done.lines, lines.len() as i64);
    assert_eq!((done.added, done.duplicates), (n as i64, 2), "{done:?}");
    assert_eq!(done.rejected_count, 0);
    bank.assert_counted(n).await;
    assert_eq!(indexed(&bank.catalog, bank.name, &hashes), n);
    bank.t.cleanup().await;
}

/// While single writes come (one began in the last second), an import job
/// on PostgreSQL writes one batch at a time, leaving a core to them: with
/// batch 2 waiting on a key another transaction holds, batch 3 is not
/// written. Fails if the job writes two at once regardless.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_job_writes_one_batch_at_a_time_beside_single_writes_on_postgres() {
    use std::time::{Duration, Instant};
    let Some(bank) = JobBank::new("beside_writes", "beside").await else {
        return;
    };
    let store = &bank.t.store;
    let list = FourBatches::new(8);
    let writes = Every::start(store, single_write);
    let mut t1 = store.pool.begin().await.unwrap();
    insert_key(&mut t1, bank.id, &list.held).await.unwrap();
    let created = bank.create(&list.lines).await;
    let job = bank.spawn_jobs();
    // Batch 2 waits for T (its key), and batch 3 is not written meanwhile.
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        assert!(
            !bank.key_is_taken(&list.probe).await,
            "batch 3 was written beside batch 2 while single writes came"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    writes.stop().await;
    t1.rollback().await.unwrap();
    let done = bank.finished(job, &created.job.id).await;
    let n = list.lines.len();
    assert_eq!((done.added, done.duplicates), (n as i64, 0), "{done:?}");
    bank.assert_counted(n).await;
    // Four batches, each written alone (`bulwark_import_batches_total`).
    assert_eq!(store.import_batches(), (4, 0));
    bank.t.cleanup().await;
}

/// With the single-write window set to zero (`bulwark serve`'s
/// `import_share_after_write_seconds = 0`), an import job on PostgreSQL
/// writes two batches at once even while single writes come: with batch 2
/// waiting on a key another transaction holds, batch 3 is written. Fails if
/// the setting does not reach the job (the test above, with the default,
/// shows the opposite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_job_writes_two_at_once_beside_single_writes_when_told_on_postgres() {
    let Some(bank) = JobBank::new("told", "told").await else {
        return;
    };
    let store = &bank.t.store;
    store.set_single_write_window(std::time::Duration::ZERO);
    let list = FourBatches::new(11);
    let writes = Every::start(store, single_write);
    let mut t1 = store.pool.begin().await.unwrap();
    insert_key(&mut t1, bank.id, &list.held).await.unwrap();
    let created = bank.create(&list.lines).await;
    let job = bank.spawn_jobs();
    wait_until_taken(
        &bank,
        &list.probe,
        "batch 3 was not written while batch 2 waited, with a zero window",
    )
    .await;
    t1.rollback().await.unwrap();
    writes.stop().await;
    let done = bank.finished(job, &created.job.id).await;
    assert_four_with_one_beside(&bank, &list, &done).await;
    bank.t.cleanup().await;
}

/// The index journal's sync (a write the service makes twice a second while
/// changes come, `bulwark_store::catalog::sync`) is not a single write:
/// beside it an import job on PostgreSQL still writes two batches at once.
/// With batch 2 waiting on a key another transaction holds, batch 3 is
/// written. Fails if the sync marks `Store::wrote_within`, as it did until
/// 2026-12-04 (every job under `bulwark serve` then wrote one batch at a
/// time), or if creating the job marks it (its first second then ran one
/// batch at a time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_job_writes_two_at_once_beside_the_journal_sync_on_postgres() {
    use std::time::Duration;
    let Some(bank) = JobBank::new("beside_sync", "sync").await else {
        return;
    };
    let store = &bank.t.store;
    let list = FourBatches::new(10);
    // The journal's sync, every 100 ms (it runs every 500 ms in a service).
    let syncs = Every::start(store, |s| async move {
        bulwark_store::catalog::sync(&s).await.unwrap();
    });
    let mut t1 = store.pool.begin().await.unwrap();
    insert_key(&mut t1, bank.id, &list.held).await.unwrap();
    // Making the bank was a single write (`SINGLE_WRITE_WINDOW`).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let created = bank.create(&list.lines).await;
    assert!(
        !store.wrote_within(Duration::from_secs(1)),
        "a write the job need not make room for (creating it, or the journal's sync) \
         counted as a single write"
    );
    let job = bank.spawn_jobs();
    wait_until_taken(
        &bank,
        &list.probe,
        "batch 3 was not written while batch 2 waited: the journal's sync made \
         the job write one batch at a time",
    )
    .await;
    t1.rollback().await.unwrap();
    syncs.stop().await;
    let done = bank.finished(job, &created.job.id).await;
    assert_four_with_one_beside(&bank, &list, &done).await;
    bank.t.cleanup().await;
}

/// A job stopped while it writes two batches at once (its task aborted, as
/// a crash stops it: both connections dropped in the middle of whatever
/// they were doing) resumes at its checkpoint and ends with every line
/// once, and the bank's counters equal to its rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_job_stopped_between_two_batches_resumes_on_postgres() {
    use std::time::{Duration, Instant};
    let Some(bank) = JobBank::new("two_stopped", "stopped").await else {
        return;
    };
    let store = &bank.t.store;
    let n = 40 * JOB_BATCH;
    let (hashes, lines) = hashed_lines(9, n);
    let id = bank.create(&lines).await.job.id;
    // Two at once: no single write in the last second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let job = bank.spawn_jobs();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let j = imports::get(store, &id).await.unwrap();
        if j.added >= 3 * JOB_BATCH as i64 {
            break;
        }
        assert!(j.status != "done", "the job ended before it was stopped");
        assert!(Instant::now() < deadline, "no progress: {j:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    job.abort();
    let _ = job.await;
    let stopped = imports::get(store, &id).await.unwrap();
    assert_eq!(stopped.status, "running", "{stopped:?}");
    assert!(stopped.added < n as i64, "{stopped:?}");

    // Resumed, with an index loaded from the store as after a restart.
    let catalog = Catalog::new();
    catalog.load(store).await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(120),
        imports::run_pending(store, &catalog),
    )
    .await
    .expect("the resumed job never finished")
    .unwrap();
    let done = imports::get(store, &id).await.unwrap();
    assert_eq!(done.status, "done", "{done:?}");
    assert_eq!((done.added, done.duplicates), (n as i64, 0), "{done:?}");
    bank.assert_counted(n).await;
    assert_eq!(indexed(&catalog, bank.name, &hashes), n);
    bank.t.cleanup().await;
}

/// A large import leaves the PDQ index in several segments (each probed by
/// every search: the append segment is built into one each 16,384 codes,
/// `bulwark_index::APPEND_LIMIT`, and the newest are folded together the
/// way a binary counter carries); when the job is done, the catalog folds
/// them into one on a thread of its own. 100,000 hashes leave about two
/// (64k and 32k codes). Fails (the count stays above one) without
/// `Catalog::compact_index` at the job's end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_job_leaves_the_index_in_one_segment() {
    use std::time::Duration;
    let bank = JobBank::on(TestStore::sqlite().await, "large").await;
    let (store, catalog) = (&bank.t.store, &bank.catalog);
    let (hashes, lines) = hashed_lines(5, 100_000);
    let job = bank.create(&lines).await;
    let mut most = 0;
    {
        let run = imports::run(store, catalog, &job.job.id);
        tokio::pin!(run);
        loop {
            tokio::select! {
                r = &mut run => { r.unwrap(); break; }
                () = tokio::time::sleep(Duration::from_millis(5)) => {
                    most = most.max(catalog.index_segments());
                }
            }
        }
    }
    let job = imports::get(store, &job.job.id).await.unwrap();
    assert_eq!((job.status.as_str(), job.added), ("done", 100_000));
    assert!(most > 1, "the import left one segment at most ({most})");
    wait_for(|| catalog.index_segments() == 1).await;
    assert_eq!(catalog.index_segments(), 1);
    assert_eq!(catalog.index_size(), (100_000, 0));
    assert_eq!(indexed(catalog, "large", &hashes), hashes.len());
    bank.t.cleanup().await;
}

/// Polls `done` every 10 ms until it holds, for at most 60 s (the caller
/// asserts what it waited for).
async fn wait_for(done: impl Fn() -> bool) {
    let t0 = std::time::Instant::now();
    while !done() && t0.elapsed() < std::time::Duration::from_secs(60) {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A replica that applies another node's import from the change feed gets
/// segments too, and no job end to fold them at: its refresh loop's idle
/// check (`Catalog::compact_index_when_idle`) folds them, but only at the
/// second check with no insert in between, never right after changes came.
/// The replica holds 40,000 codes in one segment, then applies a 20,000-line
/// import: one build of the append segment (past 16,384 codes) leaves two
/// segments. Fails without the check's fold (two stay) or with a fold at the
/// first check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_folds_its_index_when_changes_stop() {
    let bank = JobBank::on(TestStore::sqlite().await, "large").await;
    let (store, writer) = (&bank.t.store, &bank.catalog);
    let replica = Catalog::new();
    replica.load(store).await.unwrap();
    let (hashes, lines) = hashed_lines(6, 60_000);
    for part in [&lines[..40_000], &lines[40_000..]] {
        let job = bank.create(part).await;
        imports::run(store, writer, &job.job.id).await.unwrap();
        while replica.refresh(store).await.unwrap() > 0 {}
        if part.len() == 40_000 {
            replica.merge_index();
            assert_eq!(replica.index_segments(), 1);
        }
    }
    assert_eq!(replica.index_size().0, 60_000);
    // The build the last apply started.
    wait_for(|| replica.index_size().1 < bulwark_index::APPEND_LIMIT).await;
    assert_eq!(replica.index_segments(), 2);
    replica.compact_index_when_idle();
    // Time for a fold to end, had the check started one.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        replica.index_segments(),
        2,
        "folded at the check right after the changes"
    );
    replica.compact_index_when_idle();
    wait_for(|| replica.index_segments() == 1).await;
    assert_eq!(replica.index_segments(), 1);
    assert_eq!(indexed(&replica, "large", &hashes), hashes.len());
    bank.t.cleanup().await;
}

/// A PDQ list item written by the import path carries its hash in its
/// content row (store module `carried`): no row of `signals`. Every reader
/// of signals reads it as it reads the same item written with a signal row:
/// the same items go into bank `rows` one at a time (`insert_content`,
/// which writes signal rows) and into bank `carried` through
/// `insert_contents`; an item's signals, a page's, the export (more than
/// one page of it), the index's read of changed items, the start-up read
/// and a release's holdings agree between the two banks.
async fn carried_hashes_read_as_signal_rows(t: &TestStore) {
    use bulwark_store::{self as db, NewContent, SignalRow};
    let store = &t.store;
    let catalog = Catalog::new();
    catalog.load(store).await.unwrap();
    let mut banks_ = Vec::new();
    for name in ["rows", "carried"] {
        let b = NewBank {
            name: name.into(),
            threshold: None,
            min_quality: None,
            enabled: None,
            description: None,
            provider: Some(format!("provider-{name}")),
        };
        banks::create(store, &catalog, ACTOR, 31, b).await.unwrap();
        banks_.push(db::bank_by_name(store, name).await.unwrap().unwrap().id);
    }
    let (rows_bank, carried_bank) = (banks_[0], banks_[1]);
    // 5,100 items (an export page and a part), every third with a quality,
    // and one item of two signals, which cannot carry them.
    let mut items: Vec<NewContent> = (0..5_100u64)
        .map(|i| {
            NewContent::pdq(
                hash(41, i).to_string(),
                (i % 3 == 0).then_some(i as i64 % 101),
            )
        })
        .collect();
    items[7].signals.push(SignalRow {
        signal_type: "md5".into(),
        value: format!("{:032x}", 7),
        quality: None,
    });
    let mut rows_ids = Vec::new();
    let mut tx = store.begin().await.unwrap();
    for c in &items {
        rows_ids.push(
            db::insert_content(store, &mut tx, rows_bank, ACTOR, c)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let (ids, _) = db::insert_contents(store, &mut tx, None, carried_bank, ACTOR, &items)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let carried_ids: Vec<i64> = ids.into_iter().map(Option::unwrap).collect();
    let signal_rows = |bank| {
        crate::references::count(
            store,
            "SELECT COUNT(*) AS n FROM signals WHERE bank_id = ?",
            bank,
        )
    };
    assert_eq!(signal_rows(rows_bank).await, 5_101);
    assert_eq!(signal_rows(carried_bank).await, 2);
    // One item's signals, and many items' at once.
    let view = |s: &[SignalRow]| {
        s.iter()
            .map(|s| (s.signal_type.clone(), s.value.clone(), s.quality))
            .collect::<Vec<_>>()
    };
    for (&r, &c) in rows_ids
        .iter()
        .zip(&carried_ids)
        .step_by(97)
        .chain([(&rows_ids[7], &carried_ids[7])])
    {
        let (want, got) = (
            db::signals_of(store, r).await.unwrap(),
            db::signals_of(store, c).await.unwrap(),
        );
        assert!(!want.is_empty());
        assert_eq!(view(&got), view(&want), "content {c}");
    }
    let (want, got) = (
        db::content::signals_of_many(store, &rows_ids)
            .await
            .unwrap(),
        db::content::signals_of_many(store, &carried_ids)
            .await
            .unwrap(),
    );
    for (r, c) in rows_ids.iter().zip(&carried_ids) {
        assert_eq!(view(&got[c]), view(&want[r]), "content {c}");
    }
    // The export, page by page.
    let export = |bank| async move {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = db::content::export_page(store, bank, after).await.unwrap();
            out.extend(
                page.rows
                    .iter()
                    .map(|r| (r.signal_type.clone(), r.value.clone(), r.quality, r.enabled)),
            );
            match page.last {
                Some(last) if !page.done => after = last,
                _ => return out,
            }
        }
    };
    let want = export(rows_bank).await;
    assert_eq!(want.len(), 5_101);
    assert_eq!(export(carried_bank).await, want);
    // What the index reads for changed items.
    let pdq_of = |found: Vec<db::catalog::IndexedContent>| {
        let mut v: Vec<_> = found.into_iter().map(|c| c.pdq).collect();
        v.sort();
        v
    };
    let want = pdq_of(
        db::catalog::indexed_content(store, &rows_ids)
            .await
            .unwrap(),
    );
    assert_eq!(want.len(), 5_100);
    assert_eq!(
        pdq_of(
            db::catalog::indexed_content(store, &carried_ids)
                .await
                .unwrap()
        ),
        want
    );
    // Start-up's read of every hash, and a release's holdings.
    let fresh = Catalog::new();
    fresh.load(store).await.unwrap();
    for h in [hash(41, 0), hash(41, 7), hash(41, 5_099)] {
        let mut hit: Vec<String> = fresh
            .search(&h, None)
            .iter()
            .filter(|hit| hit.distance == 0)
            .map(|hit| hit.bank.to_string())
            .collect();
        hit.sort();
        assert_eq!(hit, ["carried", "rows"], "{h}");
    }
    let mut held: HashSet<(String, String)> = HashSet::new();
    for h in db::psi::provider_holdings(store).await.unwrap() {
        assert!(held.insert((h.provider.clone(), h.value.clone())));
    }
    for i in 0..5_100 {
        for p in ["provider-rows", "provider-carried"] {
            assert!(
                held.contains(&(p.to_string(), hash(41, i).to_string())),
                "{p} {i}"
            );
        }
    }
    assert_eq!(held.len(), 10_200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carried_hashes_read_as_signal_rows_on_sqlite() {
    let t = TestStore::sqlite().await;
    carried_hashes_read_as_signal_rows(&t).await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carried_hashes_read_as_signal_rows_on_postgres() {
    let Some(t) = TestStore::postgres("carried_read").await else {
        return;
    };
    carried_hashes_read_as_signal_rows(&t).await;
    t.cleanup().await;
}

/// After an import job that added a large bank, PostgreSQL's planner knows
/// the bank (`imports::analyze_after_import`): a page of its export walks
/// the primary key from the cursor. With the statistics of before (here a
/// table never analysed, as with autovacuum off or before its next run)
/// each page read the whole bank through the de-duplication index and
/// sorted it. Fails without the job's `ANALYZE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_import_leaves_its_banks_pages_on_the_primary_key_on_postgres() {
    use sqlx::Row;
    let Some(t) = TestStore::postgres("analyzed").await else {
        return;
    };
    let bank = JobBank::on(t, "analyzed").await;
    let (store, catalog) = (&bank.t.store, &bank.catalog);
    let (_, lines) = hashed_lines(43, 20_000);
    let job = bank.create(&lines).await;
    imports::run(store, catalog, &job.job.id).await.unwrap();
    let job = imports::get(store, &job.job.id).await.unwrap();
    assert_eq!((job.status.as_str(), job.added), ("done", 20_000));
    let sql = bulwark_store::content::EXPORT_ITEMS
        .replacen('?', &bank.id.to_string(), 1)
        .replacen('?', "0", 1)
        .replacen('?', "5000", 1);
    let plan: Vec<String> = sqlx::query(&format!("EXPLAIN {sql}"))
        .fetch_all(&store.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String, _>(0).unwrap())
        .collect();
    let plan = plan.join("\n");
    assert!(
        plan.contains("Index Scan using content_pkey") && !plan.contains("Sort"),
        "{plan}"
    );
    bank.t.cleanup().await;
}
