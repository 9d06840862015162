//! A bank's content as service operations, without HTTP, on SQLite and (when
//! `BULWARK_TEST_POSTGRES` is set) PostgreSQL: add, the same content again,
//! a hash below the bank's quality floor, disable until a time, delete, and
//! paging. What the operations answer is checked against the store (the
//! bank's counters) and the index (`Catalog::search`). The HTTP surface is
//! tested in crates/server/tests/server/api.rs.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use bulwark_pdq::PdqHash;
use bulwark_service::banks::{self, NewBank};
use bulwark_service::catalog::Catalog;
use bulwark_service::content::{self, ContentPatch};
use bulwark_service::{Error, Kind};
use bulwark_store::Store;
use rand::{Rng, SeedableRng};
use serde_json::json;

const ACTOR: &str = "curator-key";

fn hash(i: u64) -> PdqHash {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i);
    PdqHash::from_bytes(rng.r#gen())
}

fn kind<T: std::fmt::Debug>(r: Result<T, Error>) -> (Kind, &'static str) {
    let e = r.unwrap_err();
    (e.kind, e.code)
}

/// Content ids of `bank` the index matches `h` to.
fn matched(catalog: &Catalog, h: &PdqHash) -> Vec<i64> {
    catalog
        .search(h, None)
        .into_iter()
        .map(|hit| hit.content_id)
        .collect()
}

/// (content, disabled) of the bank, from the store's counters.
async fn counts(store: &Store, bank: &str) -> (i64, i64) {
    let b = banks::get(store, bank).await.unwrap();
    (b.content_count, b.disabled_count)
}

async fn exercise(store: &Store) {
    let catalog = Catalog::new();
    catalog.load(store).await.unwrap();
    banks::create(
        store,
        &catalog,
        ACTOR,
        31,
        NewBank {
            name: "known".into(),
            threshold: None,
            min_quality: Some(50),
            enabled: None,
            description: None,
            provider: None,
        },
    )
    .await
    .unwrap();
    let bank = banks::by_name(store, "known").await.unwrap();
    let kinds = bulwark_pdq::KindSet::NONE;

    // Add: what the answer says is what get reads back, and the index matches it.
    let h = hash(1);
    let md5 = "0123456789abcdef0123456789abcdef";
    let c = content::from_json(&json!({
        "signals": {"pdq": h.to_string(), "md5": md5},
        "quality": 90,
        "note": "first",
        "metadata": {"case": 7},
    }))
    .unwrap();
    let first = content::add(store, &catalog, ACTOR, &bank, c, &[], kinds)
        .await
        .unwrap();
    assert!(!first.duplicate);
    let item = &first.content;
    assert_eq!(item.bank, "known");
    assert_eq!(item.kind, "signals");
    assert_eq!(item.added_by, ACTOR);
    assert!(item.enabled);
    assert_eq!(item.disabled_until, None);
    assert_eq!(item.note.as_deref(), Some("first"));
    assert_eq!(item.metadata, Some(json!({"case": 7})));
    let sigs: Vec<(&str, &str, Option<i64>)> = item
        .signals
        .iter()
        .map(|s| (s.signal_type.as_str(), s.signal.as_str(), s.quality))
        .collect();
    assert_eq!(
        sigs,
        [("pdq", &*h.to_string(), Some(90)), ("md5", md5, None)]
    );
    let read = content::get(store, "known", item.id).await.unwrap();
    assert_eq!(
        serde_json::to_value(&read).unwrap(),
        serde_json::to_value(item).unwrap()
    );
    // A signals item has no frame count in its JSON; the answer to an add
    // says `duplicate` and, without extras, no `extra_hashes`.
    let j = serde_json::to_value(&first).unwrap();
    assert!(
        j.get("frames").is_none() && j.get("extra_hashes").is_none(),
        "{j}"
    );
    assert_eq!(j["duplicate"], json!(false));
    assert_eq!(j["id"], json!(item.id));
    assert_eq!(matched(&catalog, &h), [item.id]);
    assert_eq!(counts(store, "known").await, (1, 0));

    // The same signals again (another order, another note): the first item, nothing added.
    let again = content::from_json(&json!({
        "signals": {"md5": md5.to_uppercase(), "pdq": h.to_string()},
        "quality": 90,
        "note": "second",
    }))
    .unwrap();
    let dup = content::add(store, &catalog, ACTOR, &bank, again, &[], kinds)
        .await
        .unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.content.id, item.id);
    assert_eq!(dup.content.note.as_deref(), Some("first"));
    assert_eq!(counts(store, "known").await, (1, 0));

    // Below the bank's floor of 50: refused, nothing stored.
    let low = content::from_json(&json!({"signals": {"pdq": hash(2).to_string()}, "quality": 10}))
        .unwrap();
    assert_eq!(
        kind(content::add(store, &catalog, ACTOR, &bank, low, &[], kinds).await),
        (Kind::Unprocessable, "low_quality")
    );
    assert_eq!(counts(store, "known").await, (1, 0));
    assert!(matched(&catalog, &hash(2)).is_empty());

    // Disabled until a time to come: not matched, counted as disabled.
    let until = "2999-01-02T03:04:05Z";
    let off = content::update(
        store,
        &catalog,
        ACTOR,
        "known",
        item.id,
        ContentPatch {
            disabled_until: Some(until.into()),
            ..ContentPatch::default()
        },
    )
    .await
    .unwrap();
    assert!(!off.enabled);
    assert_eq!(off.disabled_until.as_deref(), Some(until));
    assert!(matched(&catalog, &h).is_empty());
    assert_eq!(counts(store, "known").await, (1, 1));
    // Enabled and a disable-until time at once makes no sense.
    let both = ContentPatch {
        enabled: Some(true),
        disabled_until: Some(until.into()),
        ..ContentPatch::default()
    };
    assert_eq!(
        kind(content::update(store, &catalog, ACTOR, "known", item.id, both).await),
        (Kind::BadRequest, "bad_request")
    );
    // A time already past: enabled again (shown with the time it was disabled until).
    let past = "2001-01-01T00:00:00Z";
    let back = content::update(
        store,
        &catalog,
        ACTOR,
        "known",
        item.id,
        ContentPatch {
            disabled_until: Some(past.into()),
            ..ContentPatch::default()
        },
    )
    .await
    .unwrap();
    assert!(back.enabled);
    assert_eq!(back.disabled_until.as_deref(), Some(past));
    assert_eq!(matched(&catalog, &h), [item.id]);

    // Delete: gone from the store and the index; a second delete finds nothing.
    content::delete(store, &catalog, ACTOR, "known", item.id)
        .await
        .unwrap();
    assert_eq!(
        kind(content::get(store, "known", item.id).await),
        (Kind::NotFound, "not_found")
    );
    assert_eq!(
        kind(content::delete(store, &catalog, ACTOR, "known", item.id).await),
        (Kind::NotFound, "not_found")
    );
    assert!(matched(&catalog, &h).is_empty());
    assert_eq!(counts(store, "known").await, (0, 0));
    assert_eq!(
        kind(content::get(store, "no-such-bank", 1).await),
        (Kind::NotFound, "not_found")
    );

    // Paging: 7 items in pages of 3 give every item once, by id, and the
    // last page says there is no next one.
    let mut added = BTreeSet::new();
    for i in 0..7u64 {
        let c = content::from_json(&json!({
            "signals": {"pdq": hash(100 + i).to_string()},
            "quality": 80,
        }))
        .unwrap();
        let a = content::add(store, &catalog, ACTOR, &bank, c, &[], kinds)
            .await
            .unwrap();
        assert!(!a.duplicate);
        added.insert(a.content.id);
    }
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = content::list(store, "known", Some(3), after).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|c| c.id));
        match page.next_after {
            Some(n) => {
                assert_eq!(Some(n), page.items.last().map(|c| c.id));
                after = Some(n);
            }
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert_eq!(seen.iter().copied().collect::<BTreeSet<_>>(), added);
    assert_eq!(counts(store, "known").await, (7, 0));
    // The default page (100) holds them all.
    let all = content::list(store, "known", None, None).await.unwrap();
    assert_eq!(all.items.len(), 7);
    assert_eq!(all.next_after, None);
    // A page carries each item's own signals (read for the whole page at
    // once), as the item read alone has them.
    for item in &all.items {
        let alone = content::get(store, "known", item.id).await.unwrap();
        assert_eq!(item.signals.len(), 1);
        assert_eq!(
            serde_json::to_value(&item.signals).unwrap(),
            serde_json::to_value(&alone.signals).unwrap()
        );
        assert_eq!(item.frames, alone.frames);
    }
}

#[tokio::test]
async fn content_operations_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    exercise(&Store::open(&url).await.unwrap()).await;
}

#[tokio::test]
async fn content_operations_on_postgres() {
    use sqlx::Connection;
    let Ok(base) = std::env::var("BULWARK_TEST_POSTGRES") else {
        eprintln!("SKIPPED (set BULWARK_TEST_POSTGRES to run on PostgreSQL)");
        return;
    };
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    let name = format!("bulwark_service_content_{}", std::process::id());
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    let store = Store::open(&format!("{prefix}/{name}")).await.unwrap();
    exercise(&store).await;
    store.pool.close().await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}
