//! Content's bank and a signal's content are references the store keeps:
//! foreign keys on SQLite, and on PostgreSQL (store module `references`)
//! statement triggers that replaced two foreign keys. Each test performs
//! what the references forbid (rows naming a missing bank or content, a
//! bank deleted while an import batch writes into it, keys changed) and
//! checks that it is refused or waits, that deletes still cascade, and that
//! no row is left naming a bank or content that is gone.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bulwark_service::banks::{self, NewBank};
use bulwark_service::catalog::Catalog;
use bulwark_store::{self as db, NewContent, SignalRow, Store};
use sqlx::Row;

use crate::support::TestStore;

const ACTOR: &str = "curator-key";

/// A new bank's id.
pub(crate) async fn bank(store: &Store, name: &str) -> i64 {
    let catalog = Catalog::new();
    catalog.load(store).await.unwrap();
    let b = NewBank {
        name: name.into(),
        threshold: None,
        min_quality: None,
        enabled: None,
        description: None,
        provider: None,
    };
    banks::create(store, &catalog, ACTOR, 31, b).await.unwrap();
    db::bank_by_name(store, name).await.unwrap().unwrap().id
}

/// `n` items keyed `{tag}-{i}`, each with a PDQ and an MD5 signal.
pub(crate) fn items(tag: &str, n: usize) -> Vec<NewContent> {
    (0..n)
        .map(|i| NewContent {
            kind: "signals",
            dedup_key: format!("{tag}-{i}"),
            note: None,
            metadata: None,
            source: None,
            signals: ["pdq", "md5"]
                .iter()
                .map(|t| SignalRow {
                    signal_type: t.to_string(),
                    value: format!("{t}-{tag}-{i}"),
                    quality: None,
                })
                .collect(),
            frames: Vec::new(),
            frame_extras: Vec::new(),
        })
        .collect()
}

pub(crate) async fn count(store: &Store, sql: &str, arg: i64) -> i64 {
    sqlx::query(&store.sql(sql))
        .bind(arg)
        .fetch_one(&store.pool)
        .await
        .unwrap()
        .get("n")
}

/// The content rows of bank `bank_id`, counted in the table.
pub(crate) async fn content_rows(store: &Store, bank_id: i64) -> i64 {
    count(
        store,
        "SELECT COUNT(*) AS n FROM content WHERE bank_id = ?",
        bank_id,
    )
    .await
}

/// The signals bank `bank_id` holds, counted in the tables: its rows of
/// `signals` and the PDQ hashes its content rows carry (store module
/// `carried`).
pub(crate) async fn signals_held(store: &Store, bank_id: i64) -> i64 {
    let rows = count(
        store,
        "SELECT COUNT(*) AS n FROM signals WHERE bank_id = ?",
        bank_id,
    )
    .await;
    let carried = count(
        store,
        "SELECT COUNT(*) AS n FROM content WHERE bank_id = ? AND carried = 1",
        bank_id,
    )
    .await;
    rows + carried
}

/// Rows naming a bank or content that does not exist, counted by joins
/// that do not trust any reference.
async fn orphans(store: &Store) -> (i64, i64) {
    let mut out = [0; 2];
    for (n, sql) in [
        "SELECT COUNT(*) AS n FROM content c WHERE NOT EXISTS \
         (SELECT 1 FROM banks b WHERE b.id = c.bank_id)",
        "SELECT COUNT(*) AS n FROM signals s WHERE NOT EXISTS \
         (SELECT 1 FROM content c WHERE c.id = s.content_id)",
    ]
    .into_iter()
    .enumerate()
    {
        out[n] = sqlx::query(sql)
            .fetch_one(&store.pool)
            .await
            .unwrap()
            .get("n");
    }
    (out[0], out[1])
}

fn is_reference_error(e: &sqlx::Error) -> bool {
    // 23503 on PostgreSQL; SQLite's extended code 787
    // (SQLITE_CONSTRAINT_FOREIGNKEY).
    matches!(e, sqlx::Error::Database(d)
        if matches!(d.code().as_deref(), Some("23503") | Some("787")))
}

/// Inserts naming a missing bank or content are refused, whole; deleting
/// content deletes its signals and deleting a bank its content and their
/// signals, and nothing else.
async fn references_refuse_and_cascade(t: &TestStore) {
    let store = &t.store;
    let (a, b) = (bank(store, "refs_a").await, bank(store, "refs_b").await);
    let missing = a.max(b) + 1000;

    let mut tx = store.begin().await.unwrap();
    let e = db::insert_contents(store, &mut tx, None, missing, ACTOR, &items("m", 3))
        .await
        .unwrap_err();
    assert!(is_reference_error(&e), "{e}");
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    let e = sqlx::query(&store.sql(
        "INSERT INTO signals (content_id, bank_id, signal_type, value) VALUES (?, ?, 'pdq', 'x')",
    ))
    .bind(i64::MAX / 2)
    .bind(a)
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(is_reference_error(&e), "{e}");
    drop(tx);
    assert_eq!(
        count(
            store,
            "SELECT COUNT(*) AS n FROM content WHERE bank_id <> ?",
            0
        )
        .await,
        0
    );
    assert_eq!(
        count(
            store,
            "SELECT COUNT(*) AS n FROM signals WHERE bank_id <> ?",
            0
        )
        .await,
        0
    );

    let mut ids = Vec::new();
    for (bank, tag) in [(a, "a"), (b, "b")] {
        let mut tx = store.begin().await.unwrap();
        let (got, _) = db::insert_contents(store, &mut tx, None, bank, ACTOR, &items(tag, 5))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        ids.push(got.into_iter().flatten().collect::<Vec<i64>>());
    }
    let signals_of = |bank: i64| {
        count(
            store,
            "SELECT COUNT(*) AS n FROM signals WHERE bank_id = ?",
            bank,
        )
    };
    assert_eq!((signals_of(a).await, signals_of(b).await), (10, 10));
    sqlx::query(&store.sql("DELETE FROM content WHERE id = ?"))
        .bind(ids[0][0])
        .execute(&store.pool)
        .await
        .unwrap();
    assert_eq!(
        count(
            store,
            "SELECT COUNT(*) AS n FROM signals WHERE content_id = ?",
            ids[0][0]
        )
        .await,
        0
    );
    assert_eq!((signals_of(a).await, signals_of(b).await), (8, 10));
    sqlx::query(&store.sql("DELETE FROM banks WHERE id = ?"))
        .bind(a)
        .execute(&store.pool)
        .await
        .unwrap();
    assert_eq!(content_rows(store, a).await, 0);
    assert_eq!((signals_of(a).await, signals_of(b).await), (0, 10));
    assert_eq!(content_rows(store, b).await, 5);
    assert_eq!(orphans(store).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_refuse_and_cascade_on_sqlite() {
    let t = TestStore::sqlite().await;
    references_refuse_and_cascade(&t).await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_refuse_and_cascade_on_postgres() {
    let Some(t) = TestStore::postgres("refs_cascade").await else {
        return;
    };
    references_refuse_and_cascade(&t).await;
    t.cleanup().await;
}

/// The attack on a per-statement check: a bank deleted while an import
/// batch writes into it, in both orders. A batch that wrote first holds the
/// bank until it commits (the delete waits, then takes the batch's rows with
/// it); a delete that came first makes the batch fail when it commits. In
/// neither order is a row left naming the deleted bank. (The batch's
/// counter rows, which the delete also removes, make it wait as well: with
/// the trigger's `FOR KEY SHARE` lock taken out this still passes, so the
/// lock is a second guard, not the only one.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_deleted_beside_an_import_batch_leaves_no_rows_on_postgres() {
    let Some(t) = TestStore::postgres("refs_race").await else {
        return;
    };
    let store = &t.store;
    let delete = |id: i64| {
        let store = store.clone();
        tokio::spawn(async move {
            sqlx::query(&store.sql("DELETE FROM banks WHERE id = ?"))
                .bind(id)
                .execute(&store.pool)
                .await
        })
    };

    // The batch first: the delete waits for its commit.
    let first = bank(store, "race_batch_first").await;
    let mut tx = store.begin().await.unwrap();
    db::insert_contents(store, &mut tx, None, first, ACTOR, &items("f", 50))
        .await
        .unwrap();
    let deleting = delete(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !deleting.is_finished(),
        "the delete did not wait for the batch"
    );
    tx.commit().await.unwrap();
    assert_eq!(deleting.await.unwrap().unwrap().rows_affected(), 1);
    assert_eq!(content_rows(store, first).await, 0);
    assert_eq!(orphans(store).await, (0, 0));

    // The delete first: the batch waits for it, then fails.
    let second = bank(store, "race_delete_first").await;
    let mut del = store.begin().await.unwrap();
    sqlx::query(&store.sql("DELETE FROM banks WHERE id = ?"))
        .bind(second)
        .execute(&mut *del)
        .await
        .unwrap();
    let batch = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tx = store.begin().await?;
            db::insert_contents(&store, &mut tx, None, second, ACTOR, &items("s", 50)).await?;
            tx.commit().await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !batch.is_finished(),
        "the batch did not wait for the delete"
    );
    del.commit().await.unwrap();
    let e = batch.await.unwrap().unwrap_err();
    assert!(is_reference_error(&e), "{e}");
    assert_eq!(orphans(store).await, (0, 0));
    t.cleanup().await;
}

/// On PostgreSQL the keys these references use do not change: a bank's id,
/// a content row's id and bank, a signal's content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_keys_do_not_change_on_postgres() {
    let Some(t) = TestStore::postgres("refs_keys").await else {
        return;
    };
    let store = &t.store;
    let (a, b) = (bank(store, "keys_a").await, bank(store, "keys_b").await);
    let mut tx = store.begin().await.unwrap();
    let (ids, _) = db::insert_contents(store, &mut tx, None, a, ACTOR, &items("k", 1))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let id = ids[0].unwrap();
    for (sql, x, y) in [
        ("UPDATE banks SET id = ? WHERE id = ?", b + 100, a),
        ("UPDATE content SET id = ? WHERE id = ?", id + 100, id),
        ("UPDATE content SET bank_id = ? WHERE id = ?", b, id),
        (
            "UPDATE signals SET content_id = ? WHERE content_id = ?",
            id + 100,
            id,
        ),
    ] {
        let e = sqlx::query(&store.sql(sql))
            .bind(x)
            .bind(y)
            .execute(&store.pool)
            .await
            .unwrap_err();
        assert!(is_reference_error(&e), "{sql}: {e}");
    }
    // What may change still does.
    sqlx::query(&store.sql("UPDATE content SET enabled = 0 WHERE id = ?"))
        .bind(id)
        .execute(&store.pool)
        .await
        .unwrap();
    assert_eq!(
        count(
            store,
            "SELECT COUNT(*) AS n FROM signals WHERE content_id = ?",
            id
        )
        .await,
        2
    );
    t.cleanup().await;
}

/// What a single write waits for beside an import batch on PostgreSQL,
/// which has no store-wide write lock: a write into another bank does not
/// wait for the batch (docs/SERVICE.md, "Lists"); one into the batch's own
/// bank waits for its commit, as the bank's counter row is locked by the
/// batch's insert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_write_waits_for_an_import_batch_in_its_own_bank_only_on_postgres() {
    let Some(t) = TestStore::postgres("refs_single").await else {
        return;
    };
    let store = &t.store;
    let (importing, other) = (bank(store, "single_a").await, bank(store, "single_b").await);
    let single = |bank_id: i64, tag: &'static str| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tx = store.begin().await?;
            let c = items(tag, 1).remove(0);
            db::insert_content(&store, &mut tx, bank_id, ACTOR, &c).await?;
            tx.commit().await
        })
    };
    let mut batch = store.begin().await.unwrap();
    db::insert_contents(
        store,
        &mut batch,
        None,
        importing,
        ACTOR,
        &items("batch", 200),
    )
    .await
    .unwrap();
    // Another bank: done while the batch is open.
    tokio::time::timeout(Duration::from_secs(10), single(other, "other"))
        .await
        .expect("a write into another bank waited for the import batch")
        .unwrap()
        .unwrap();
    // The batch's bank: waits until the batch commits.
    let same = single(importing, "same");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !same.is_finished(),
        "a write into the importing bank did not wait for the batch"
    );
    batch.commit().await.unwrap();
    same.await.unwrap().unwrap();
    let n = content_rows(store, importing).await;
    assert_eq!(n, 201);
    t.cleanup().await;
}
