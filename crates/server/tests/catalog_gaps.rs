//! The replica change feed's gap rule, against a real store: a node applies
//! changes in sequence order and does not move its floor past a sequence
//! number that has not appeared (PostgreSQL hands out sequence numbers
//! before commit, so a later number can commit first); once the missing
//! change commits, the floor moves past both.

#![allow(clippy::unwrap_used)]

mod support;

use bulwark_server::catalog::Catalog;
use bulwark_server::db::Store;

async fn add_change(store: &Store, seq: i64) {
    sqlx::query(
        &store.sql("INSERT INTO changes (seq, bank_id, content_id, at) VALUES (?, NULL, NULL, 0)"),
    )
    .bind(seq)
    .execute(&store.pool)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_holds_the_floor_until_it_fills() {
    let app = support::TestApp::sqlite().await;
    let store = &app.service.state.store;
    let catalog = Catalog::new();
    catalog.load_full(store).await.unwrap();
    let base = catalog.applied_seq();
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
    app.cleanup().await;
}
