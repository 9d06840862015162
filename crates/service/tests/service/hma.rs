//! HMA curation and exchanges as service operations, without HTTP, on a
//! real SQLite store: an exchange's bank and fetch state (one fetch at a
//! time, a lost claim taken over after an hour, checkpoints carrying the
//! skipped-signal counts, the schedule), its map of fetched items, the
//! change feed a follower reads, and banks renamed and rationed through
//! HMA's shapes. The HTTP surface is tested in
//! crates/server/tests/server/hma_conformance.rs and signals.rs.

#![allow(clippy::unwrap_used)]

use bulwark_service::banks::{self, Change};
use bulwark_service::catalog::Catalog;
use bulwark_service::exchanges::{self, Exchange, FeedItem, PageDone, Skipped};
use bulwark_service::hma::{self, HmaBank};
use bulwark_service::{Error, Kind};
use bulwark_store::{self as db, NewContent, SignalRow, Store};
use serde_json::{Map, Value, json};

async fn store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    (Store::open(&url).await.unwrap(), dir)
}

fn exchange(name: &str) -> Exchange {
    Exchange {
        name: name.into(),
        api: "sample".into(),
        enabled: true,
        config: Map::new(),
        interval_seconds: 60,
    }
}

fn kind(r: Result<impl std::fmt::Debug, Error>) -> (Kind, &'static str) {
    let e = r.unwrap_err();
    (e.kind, e.code)
}

fn skipped(pairs: &[(&str, u64)]) -> Skipped {
    pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

/// Content of one MD5 signal, as an exchange would bank it.
fn md5_content(value: &str, note: Option<&str>) -> NewContent {
    NewContent {
        kind: "signals",
        dedup_key: format!("md5:{value}"),
        note: note.map(str::to_string),
        metadata: Some(json!({"collab": {"SHARED": ["r1"]}}).to_string()),
        source: Some("exchange SHARED (sample)".into()),
        signals: vec![SignalRow {
            signal_type: "md5".into(),
            value: value.into(),
            quality: None,
        }],
        frames: Vec::new(),
        frame_extras: Vec::new(),
    }
}

/// Adds content to a bank as the API would: with its audit entry and change.
async fn add(store: &Store, catalog: &Catalog, bank: &db::BankRow, c: &NewContent) -> i64 {
    let mut tx = store.begin().await.unwrap();
    let id = db::insert_content(store, &mut tx, bank.id, "test", c)
        .await
        .unwrap()
        .unwrap();
    banks::commit_change(
        store,
        catalog,
        tx,
        "test",
        Change {
            action: "content.add",
            bank: (bank.id, &bank.name),
            content: Some(id),
            detail: json!({}),
        },
    )
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn an_exchange_fetches_one_at_a_time_and_keeps_its_checkpoint() {
    let (store, _dir) = store().await;
    let catalog = Catalog::new();
    exchanges::create(&store, &catalog, "curator", 31, &exchange("SHARED"))
        .await
        .unwrap();
    // The exchange made its own bank, matching every lookup (ratio 1).
    assert_eq!(
        hma::banks(&store).await.unwrap(),
        vec![HmaBank {
            matching_enabled_ratio: 1.0,
            name: "SHARED".into()
        }]
    );
    assert_eq!(
        kind(exchanges::create(&store, &catalog, "curator", 31, &exchange("SHARED")).await),
        (Kind::BadRequest, "bad_request"),
        "a second exchange of the same name is refused"
    );
    assert_eq!(exchanges::names(&store).await.unwrap(), ["SHARED"]);

    let st = exchanges::status(&store, "SHARED").await.unwrap();
    assert_eq!(
        (st.checkpoint_ts, st.fetched_items, st.up_to_date),
        (0, 0, false)
    );
    assert_eq!(st.last_fetch_succeeded, None);
    assert_eq!(st.skipped_signals, json!({}));
    assert_eq!(
        exchanges::checkpoint(&store, "SHARED").await.unwrap(),
        Value::Null
    );

    // Never fetched: due at once.
    let t0 = 1_800_000_000_000;
    assert_eq!(exchanges::due(&store, t0).await.unwrap(), ["SHARED"]);

    // One fetch at a time; a claim older than an hour was lost and is taken over.
    exchanges::claim(&store, "SHARED", t0).await.unwrap();
    assert_eq!(
        kind(exchanges::claim(&store, "SHARED", t0 + 1000).await),
        (Kind::Conflict, "conflict")
    );
    let t1 = t0 + exchanges::FETCH_CLAIM_MS + 1;
    exchanges::claim(&store, "SHARED", t1).await.unwrap();
    assert_eq!(
        exchanges::status(&store, "SHARED")
            .await
            .unwrap()
            .running_fetch_start_ts,
        Some(t1 / 1000)
    );

    // Two pages: the skipped counts add up across pages, the applied items too.
    let cp = exchanges::record_page(
        &store,
        "SHARED",
        &Value::Null,
        PageDone {
            checkpoint: json!({"after": 5}),
            checkpoint_ts: 100,
            applied: 3,
            more: true,
            full: false,
            skipped: &skipped(&[("ImageX", 2)]),
        },
    )
    .await
    .unwrap();
    assert_eq!(cp, json!({"after": 5, "skipped": {"ImageX": 2}}));
    assert_eq!(exchanges::checkpoint(&store, "SHARED").await.unwrap(), cp);
    assert!(
        !exchanges::status(&store, "SHARED")
            .await
            .unwrap()
            .up_to_date
    );
    let cp = exchanges::record_page(
        &store,
        "SHARED",
        &cp,
        PageDone {
            checkpoint: json!({"after": 9}),
            checkpoint_ts: 200,
            applied: 2,
            more: false,
            full: false,
            skipped: &skipped(&[("ImageX", 1), ("VideoY", 4)]),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        cp,
        json!({"after": 9, "skipped": {"ImageX": 3, "VideoY": 4}})
    );
    exchanges::finish(&store, "SHARED", t1 + 5000, Some("the leader answered 500"))
        .await
        .unwrap();
    let st = exchanges::status(&store, "SHARED").await.unwrap();
    assert_eq!(
        (st.checkpoint_ts, st.fetched_items, st.up_to_date),
        (200, 5, true)
    );
    assert_eq!(st.running_fetch_start_ts, None);
    assert_eq!(st.last_fetch_complete_ts, Some((t1 + 5000) / 1000));
    assert_eq!(st.last_fetch_succeeded, Some(false));
    assert_eq!(st.last_error.as_deref(), Some("the leader answered 500"));
    assert_eq!(st.skipped_signals, json!({"ImageX": 3, "VideoY": 4}));
    // The status serializes in HMA's shape, keys sorted.
    assert_eq!(
        serde_json::to_string(&st).unwrap(),
        format!(
            r#"{{"checkpoint_ts":200,"fetched_items":5,"last_error":"the leader answered 500","last_fetch_complete_ts":{},"last_fetch_succeeded":false,"running_fetch_start_ts":null,"skipped_signals":{{"ImageX":3,"VideoY":4}},"up_to_date":true}}"#,
            (t1 + 5000) / 1000
        )
    );

    // A page that is the whole remote list replaces the counts.
    assert_eq!(
        exchanges::with_skipped(json!({"sha256": "ab"}), &cp, &skipped(&[("Z", 1)]), true),
        json!({"sha256": "ab", "skipped": {"Z": 1}})
    );
    assert_eq!(
        exchanges::with_skipped(json!({"sha256": "ab"}), &cp, &Skipped::new(), true),
        json!({"sha256": "ab"})
    );

    // Due again once its interval (60 s) has passed since the fetch ended.
    assert!(
        exchanges::due(&store, t1 + 5000 + 59_000)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        exchanges::due(&store, t1 + 5000 + 60_000).await.unwrap(),
        ["SHARED"]
    );
    let mut e = exchanges::get(&store, "SHARED").await.unwrap();
    e.enabled = false;
    exchanges::save(&store, &e).await.unwrap();
    assert!(
        exchanges::due(&store, t1 + 5000 + 60_000)
            .await
            .unwrap()
            .is_empty()
    );

    // Deleting the exchange deletes its state and its bank.
    exchanges::delete(&store, &catalog, "curator", "SHARED")
        .await
        .unwrap();
    assert!(exchanges::names(&store).await.unwrap().is_empty());
    assert!(db::bank_by_name(&store, "SHARED").await.unwrap().is_none());
    assert_eq!(
        kind(exchanges::get(&store, "SHARED").await),
        (Kind::NotFound, "not_found")
    );
    assert!(exchanges::status(&store, "SHARED").await.is_err());
}

#[tokio::test]
async fn fetched_items_map_to_content_and_the_feed_shows_their_state() {
    let (store, _dir) = store().await;
    let catalog = Catalog::new();
    exchanges::create(&store, &catalog, "curator", 31, &exchange("SHARED"))
        .await
        .unwrap();
    let bank = db::bank_by_name(&store, "SHARED").await.unwrap().unwrap();
    let md5 = "0123456789abcdef0123456789abcdef";
    let want = md5_content(md5, Some("first"));

    // Not mapped yet: not unchanged.
    assert!(
        !exchanges::unchanged(&store, "SHARED", "r1", &want)
            .await
            .unwrap()
    );
    let id = add(&store, &catalog, &bank, &want).await;
    exchanges::map(&store, "SHARED", "r1", id).await.unwrap();
    assert_eq!(
        exchanges::mapped(&store, "SHARED", "r1").await.unwrap(),
        Some(id)
    );
    assert!(
        exchanges::unchanged(&store, "SHARED", "r1", &want)
            .await
            .unwrap()
    );
    // A changed note or signal is a change.
    assert!(
        !exchanges::unchanged(&store, "SHARED", "r1", &md5_content(md5, Some("second")))
            .await
            .unwrap()
    );
    assert!(
        !exchanges::unchanged(
            &store,
            "SHARED",
            "r1",
            &md5_content("fedcba9876543210fedcba9876543210", Some("first"))
        )
        .await
        .unwrap()
    );

    let feed = exchanges::changes(&store, &bank, 0, 500).await.unwrap();
    assert_eq!(feed.changes.len(), 1);
    let FeedItem::Present {
        content_id,
        enabled,
        ref note,
        ref signals,
        seq,
        ..
    } = feed.changes[0]
    else {
        panic!("not present: {:?}", feed.changes[0]);
    };
    assert_eq!((content_id, enabled), (id, true));
    assert_eq!(note.as_deref(), Some("first"));
    assert_eq!(signals[0].value, md5);
    assert_eq!(feed.next_after, seq);
    assert!(!feed.more);
    // Nothing after the last change.
    assert!(
        exchanges::changes(&store, &bank, seq, 500)
            .await
            .unwrap()
            .changes
            .is_empty()
    );

    // An item the remote list no longer has: its content goes, audited as a change.
    let keep = std::collections::HashSet::from(["r2"]);
    exchanges::unmap_missing(&store, &catalog, "exchange:SHARED", &bank, "SHARED", &keep)
        .await
        .unwrap();
    assert_eq!(
        exchanges::mapped(&store, "SHARED", "r1").await.unwrap(),
        None
    );
    assert!(db::hma::content(&store, id).await.unwrap().is_none());
    // The feed carries the item once, deleted, at its latest change.
    let feed = exchanges::changes(&store, &bank, 0, 500).await.unwrap();
    assert_eq!(
        serde_json::to_value(&feed).unwrap(),
        json!({"changes": [{"content_id": id, "deleted": true, "seq": seq + 1}],
               "more": false, "next_after": seq + 1})
    );
    // A page as long as the limit says there may be more.
    assert!(exchanges::changes(&store, &bank, 0, 1).await.unwrap().more);
}

#[tokio::test]
async fn banks_follow_hma_names_ratios_and_renames() {
    let (store, _dir) = store().await;
    let catalog = Catalog::new();
    assert_eq!(
        kind(hma::create_bank(&store, &catalog, "curator", 31, "lower", 1.0).await),
        (Kind::BadRequest, "bad_request")
    );
    let half = hma::create_bank(&store, &catalog, "curator", 31, "HALF", 0.5)
        .await
        .unwrap();
    let off = hma::create_bank(&store, &catalog, "curator", 31, "OFF", 0.0)
        .await
        .unwrap();
    assert!(
        half.enabled && !off.enabled,
        "a ratio of 0 disables the bank"
    );
    assert_eq!(
        kind(hma::create_bank(&store, &catalog, "curator", 31, "HALF", 1.0).await),
        (Kind::Forbidden, "conflict"),
        "HMA answers 403 for a name taken"
    );
    assert_eq!(
        serde_json::to_string(&hma::banks(&store).await.unwrap()).unwrap(),
        r#"[{"matching_enabled_ratio":0.5,"name":"HALF"},{"matching_enabled_ratio":0.0,"name":"OFF"}]"#
    );

    // A rename to a taken name is refused; a rename keeps the bank's id.
    assert_eq!(
        kind(hma::update_bank(&store, &catalog, "curator", &half, Some("OFF"), None).await),
        (Kind::Forbidden, "conflict")
    );
    let shown = hma::update_bank(&store, &catalog, "curator", &off, Some("OFF2"), Some(0.25))
        .await
        .unwrap();
    assert_eq!(
        shown,
        HmaBank {
            matching_enabled_ratio: 0.25,
            name: "OFF2".into()
        }
    );
    let off = db::bank_by_name(&store, "OFF2").await.unwrap().unwrap();
    assert!(off.enabled, "a ratio above 0 enables the bank");
    assert!(db::bank_by_name(&store, "OFF").await.unwrap().is_none());

    // Content disabled until a time, then deleted once.
    let id = add(
        &store,
        &catalog,
        &half,
        &md5_content("0123456789abcdef0123456789abcdef", None),
    )
    .await;
    let mut c = hma::content(&store, &half, id).await.unwrap();
    assert_eq!(hma::disable_until_ts(&c), 1);
    let until = db::now_ms() / 1000 + 86_400;
    (c.enabled, c.disabled_until) = hma::disable_until(until).unwrap();
    hma::update_content(&store, &catalog, "curator", &half, &c, false)
        .await
        .unwrap();
    let c = hma::content(&store, &half, id).await.unwrap();
    assert_eq!(hma::disable_until_ts(&c), until);
    assert_eq!(hma::disable_until(0).unwrap(), (false, None));
    assert_eq!(
        kind(hma::disable_until(until + 6 * 365 * 86_400)),
        (Kind::BadRequest, "bad_request")
    );
    assert_eq!(
        kind(hma::content(&store, &off, id).await),
        (Kind::NotFound, "not_found"),
        "content is found only in its own bank"
    );
    assert_eq!(
        hma::delete_content(&store, &catalog, "curator", &half, id)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        hma::delete_content(&store, &catalog, "curator", &half, id)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        hma::delete_bank(&store, &catalog, "curator", &half)
            .await
            .unwrap(),
        0
    );
    assert!(db::bank_by_name(&store, "HALF").await.unwrap().is_none());
}

/// Renaming an exchange's bank renames the exchange, and its checkpoint,
/// fetch status and map of fetched items follow. Before, the exchange row
/// was renamed in place under its status row's foreign key: the rename
/// failed (a 500 through `PUT /c/bank/<name>`).
#[tokio::test]
async fn renaming_an_exchanges_bank_keeps_its_state() {
    let (store, _dir) = store().await;
    let catalog = Catalog::new();
    exchanges::create(&store, &catalog, "curator", 31, &exchange("SHARED"))
        .await
        .unwrap();
    let bank = db::bank_by_name(&store, "SHARED").await.unwrap().unwrap();
    let cp = exchanges::record_page(
        &store,
        "SHARED",
        &Value::Null,
        PageDone {
            checkpoint: json!({"after": 7}),
            checkpoint_ts: 100,
            applied: 1,
            more: false,
            full: false,
            skipped: &Skipped::new(),
        },
    )
    .await
    .unwrap();
    let id = add(
        &store,
        &catalog,
        &bank,
        &md5_content("0123456789abcdef0123456789abcdef", None),
    )
    .await;
    exchanges::map(&store, "SHARED", "r1", id).await.unwrap();

    let shown = hma::update_bank(&store, &catalog, "curator", &bank, Some("RENAMED"), None)
        .await
        .unwrap();
    assert_eq!(shown.name, "RENAMED");
    assert_eq!(exchanges::names(&store).await.unwrap(), ["RENAMED"]);
    assert_eq!(
        exchanges::get(&store, "RENAMED").await.unwrap().api,
        "sample"
    );
    assert_eq!(exchanges::checkpoint(&store, "RENAMED").await.unwrap(), cp);
    assert!(exchanges::status(&store, "RENAMED").await.is_ok());
    assert_eq!(
        exchanges::mapped(&store, "RENAMED", "r1").await.unwrap(),
        Some(id)
    );
    assert!(exchanges::status(&store, "SHARED").await.is_err());
    assert_eq!(
        exchanges::mapped(&store, "SHARED", "r1").await.unwrap(),
        None
    );
    let renamed = db::bank_by_name(&store, "RENAMED").await.unwrap().unwrap();
    assert_eq!(renamed.id, bank.id);
}
