//! The replica change feed's gap rule without HTTP, on SQLite and (when
//! `BULWARK_TEST_POSTGRES` is set) PostgreSQL, where it matters: PostgreSQL
//! hands out sequence numbers before commit, so a later number can commit
//! first. The catalog applies changes in sequence order and does not move
//! its floor past a number that has not appeared; once the missing change
//! commits, the floor moves past both.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::support::TestStore;
use bulwark_service::catalog::Catalog;
use bulwark_store::Store;

async fn add_change(store: &Store, seq: i64) {
    sqlx::query(
        &store.sql("INSERT INTO changes (seq, bank_id, content_id, at) VALUES (?, NULL, NULL, 0)"),
    )
    .bind(seq)
    .execute(&store.pool)
    .await
    .unwrap();
}

async fn a_gap_holds_the_floor_until_it_fills(store: &Store) {
    let catalog = Catalog::new();
    catalog.load_full(store).await.unwrap();
    let base = catalog.applied_seq();
    assert_eq!(
        base,
        bulwark_store::catalog::latest_change(store).await.unwrap()
    );
    for s in 1..=3 {
        add_change(store, base + s).await;
    }
    assert_eq!(catalog.refresh(store).await.unwrap(), 3);
    assert_eq!(catalog.applied_seq(), base + 3);

    // base + 4 is "in flight": base + 5 and base + 6 commit first.
    add_change(store, base + 5).await;
    add_change(store, base + 6).await;
    assert_eq!(
        catalog.refresh(store).await.unwrap(),
        2,
        "applied, but not past the gap"
    );
    assert_eq!(catalog.applied_seq(), base + 3);
    assert!(catalog.has_applied(base + 5) && !catalog.has_applied(base + 4));
    // Polling again neither re-applies them nor moves the floor.
    assert_eq!(catalog.refresh(store).await.unwrap(), 0);
    assert_eq!(catalog.applied_seq(), base + 3);

    add_change(store, base + 4).await;
    assert_eq!(
        catalog.refresh(store).await.unwrap(),
        1,
        "only the late change is new"
    );
    assert_eq!(catalog.applied_seq(), base + 6);

    // A run of numbers that never commit (a rolled-back import batch on
    // PostgreSQL leaves one, up to 2,048 long): once the gap has been
    // waited for, the whole run is skipped at once, not one number per
    // wait, which held the floor for 30 s a number.
    let patience = Duration::from_millis(200);
    catalog.set_gap_patience(patience);
    add_change(store, base + 12).await;
    assert_eq!(catalog.refresh(store).await.unwrap(), 1);
    assert_eq!(catalog.applied_seq(), base + 6, "waits for the gap first");
    tokio::time::sleep(patience * 2).await;
    assert_eq!(catalog.refresh(store).await.unwrap(), 0);
    assert_eq!(catalog.applied_seq(), base + 12, "the run 7..=11 skipped");

    // A gap that fills while a later one opens: the later one is waited
    // for from when it was noticed, and the floor never moves back.
    add_change(store, base + 14).await;
    assert_eq!(catalog.refresh(store).await.unwrap(), 1);
    tokio::time::sleep(patience * 2).await;
    add_change(store, base + 13).await;
    add_change(store, base + 16).await;
    assert_eq!(catalog.refresh(store).await.unwrap(), 2);
    assert_eq!(
        catalog.applied_seq(),
        base + 14,
        "the new gap is waited for in full"
    );
    tokio::time::sleep(patience * 2).await;
    assert_eq!(catalog.refresh(store).await.unwrap(), 0);
    assert_eq!(catalog.applied_seq(), base + 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gaps_on_sqlite() {
    let t = TestStore::sqlite().await;
    a_gap_holds_the_floor_until_it_fills(&t.store).await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gaps_on_postgres() {
    let Some(t) = TestStore::postgres("gaps").await else {
        return;
    };
    a_gap_holds_the_floor_until_it_fills(&t.store).await;
    t.cleanup().await;
}
