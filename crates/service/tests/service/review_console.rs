//! The console's checks without HTTP (`bulwark_service::review::{accounts,
//! queue, decisions}`), on SQLite and PostgreSQL like the rest of
//! [`super`]: sign-in locks an account after `max_failed` failures in a row,
//! refuses even the right password while locked and lets it in once the
//! lock has expired, and wants the TOTP code when one is enrolled; an
//! expired, ended or disabled reviewer's session is refused; the reveal
//! budget refuses the (budget+1)th reveal of a day, audited, and allows
//! reveals again the next day; a decision not allowed for the item or the
//! reviewer is refused and records nothing; `add_to_bank` puts the item's
//! PDQ hash in the bank and the index; an admin cannot change their own
//! account. The pages over these are tested in crates/server/tests/server/
//! console.rs. All data is synthetic.

use std::time::Duration;

use bulwark_pdq::PdqHash;
use bulwark_service::Kind;
use bulwark_service::banks::{self, NewBank};
use bulwark_service::catalog::Catalog;
use bulwark_service::review::accounts::{self, ConsoleRole, Lockout, Reviewer};
use bulwark_service::review::decisions::{self, Request};
use bulwark_service::review::totp;
use bulwark_service::review::webhooks::WebhookConfig;
use bulwark_service::review::{policy, queue};
use bulwark_service::secrets::Kek;
use bulwark_store::Store;
use rand::{Rng, SeedableRng};
use serde_json::json;
use sqlx::Row;

use super::{Recorder, open_queue, seed_report};
use crate::support::TestStore;

const PASSWORD: &str = "correct horse battery";

/// How many audit entries by `actor` have `action`.
async fn audits(s: &Store, action: &str, actor: &str) -> i64 {
    sqlx::query(&s.sql("SELECT COUNT(*) AS n FROM audit WHERE action = ? AND actor = ?"))
        .bind(action)
        .bind(actor)
        .fetch_one(&s.pool)
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

/// Creates the bank `known` (distance 31, no other settings).
pub(super) async fn create_known_bank(s: &Store, catalog: &Catalog) {
    banks::create(
        s,
        catalog,
        "admin",
        31,
        NewBank {
            name: "known".into(),
            threshold: None,
            min_quality: None,
            enabled: None,
            description: None,
            provider: None,
        },
    )
    .await
    .unwrap();
}

pub(super) async fn reviewer(s: &Store, kek: &Kek, name: &str, role: ConsoleRole) -> Reviewer {
    accounts::add_reviewer(s, kek, "test", name, role, PASSWORD, false)
        .await
        .unwrap();
    let (id, _) = bulwark_store::console::admin::reviewer_by_name(s, name)
        .await
        .unwrap()
        .unwrap();
    Reviewer {
        id,
        name: name.into(),
        role,
    }
}

async fn sign_in_and_sessions(s: &Store) {
    let kek = Kek::generate();
    let lockout = Lockout {
        max_failed: 3,
        minutes: 15,
    };
    let rita = reviewer(s, &kek, "rita", ConsoleRole::Reviewer).await;
    let t0 = 1_900_000_000_000;
    let sign_in = |name: &'static str, pw: &'static str, code: String, now: i64| {
        let kek = &kek;
        async move {
            accounts::sign_in(s, kek, lockout, name, pw, &code, now)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        sign_in("rita", PASSWORD, String::new(), t0).await,
        Some(rita.id)
    );
    // Two failures, then the right password: in, and the count starts over.
    for _ in 0..2 {
        assert_eq!(
            sign_in("rita", "wrong password!", String::new(), t0).await,
            None
        );
    }
    assert_eq!(
        sign_in("rita", PASSWORD, String::new(), t0).await,
        Some(rita.id)
    );
    // Three in a row lock the account for 15 minutes, even for the right password.
    for _ in 0..3 {
        assert_eq!(
            sign_in("rita", "wrong password!", String::new(), t0).await,
            None
        );
    }
    assert_eq!(audits(s, "console.login.failed", "console:rita").await, 4);
    assert_eq!(audits(s, "console.login.lockout", "console:rita").await, 1);
    let during = t0 + 15 * 60_000 - 1;
    assert_eq!(sign_in("rita", PASSWORD, String::new(), during).await, None);
    assert_eq!(audits(s, "console.login.locked", "console:rita").await, 1);
    // Once the lock has expired, the right password lets her in.
    let after = t0 + 15 * 60_000 + 1;
    assert_eq!(
        sign_in("rita", PASSWORD, String::new(), after).await,
        Some(rita.id)
    );
    // An unknown name fails the same way, audited as anonymous.
    assert_eq!(sign_in("nobody", PASSWORD, String::new(), t0).await, None);
    assert_eq!(audits(s, "console.login.failed", "anonymous").await, 1);

    // TOTP enrolled: the password alone is not enough; the current code is.
    let shown = accounts::add_reviewer(s, &kek, "test", "tom", ConsoleRole::Lead, PASSWORD, true)
        .await
        .unwrap();
    assert!(shown.is_some());
    let sealed: String = sqlx::query(&s.sql("SELECT totp FROM console_reviewers WHERE name = ?"))
        .bind("tom")
        .fetch_one(&s.pool)
        .await
        .unwrap()
        .try_get("totp")
        .unwrap();
    let secret = kek.open("console-totp:tom", &sealed).unwrap();
    assert_eq!(shown.unwrap(), totp::base32(&secret));
    let t = (t0 / 1000) as u64;
    assert_eq!(sign_in("tom", PASSWORD, String::new(), t0).await, None);
    let stale = totp::totp(&secret, t + 600, 6);
    assert_eq!(sign_in("tom", PASSWORD, stale, t0).await, None);
    assert!(
        sign_in("tom", PASSWORD, totp::totp(&secret, t, 6), t0)
            .await
            .is_some()
    );

    // Sessions: found until they expire, not after; not once ended.
    let life = Duration::from_secs(3600);
    let new = accounts::start_session(s, rita.id, "rita", life, t0)
        .await
        .unwrap();
    assert_eq!(audits(s, "console.login", "console:rita").await, 1);
    let live = accounts::session(s, &new.token, t0 + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            live.reviewer.id,
            live.reviewer.name.as_str(),
            live.reviewer.role
        ),
        (rita.id, "rita", ConsoleRole::Reviewer)
    );
    assert_eq!((live.csrf.as_str(), live.since), (new.csrf.as_str(), t0));
    assert!(
        accounts::session(s, &new.token, t0 + 3_600_000 - 1)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        accounts::session(s, &new.token, t0 + 3_600_000)
            .await
            .unwrap()
            .is_none(),
        "an expired session is refused"
    );
    assert!(accounts::session(s, "00", t0).await.unwrap().is_none());
    let other = accounts::start_session(s, rita.id, "rita", life, t0)
        .await
        .unwrap();
    accounts::end_session(s, &other.token).await.unwrap();
    assert!(
        accounts::session(s, &other.token, t0 + 1)
            .await
            .unwrap()
            .is_none()
    );

    // An admin's changes: not to their own account; a disabled reviewer's
    // sessions end and she cannot sign in until enabled again.
    let ada = reviewer(s, &kek, "ada", ConsoleRole::Admin).await;
    let e = accounts::change_reviewer(s, &ada, "ada", "role", "reviewer")
        .await
        .unwrap_err();
    assert_eq!(e.kind, Kind::Conflict);
    for (name, action, role, kind) in [
        ("nobody", "disable", "", Kind::NotFound),
        ("rita", "role", "boss", Kind::BadRequest),
        ("rita", "rename", "", Kind::BadRequest),
    ] {
        let e = accounts::change_reviewer(s, &ada, name, action, role)
            .await
            .unwrap_err();
        assert_eq!(e.kind, kind, "{name} {action} {role}");
    }
    accounts::change_reviewer(s, &ada, "rita", "disable", "")
        .await
        .unwrap();
    assert!(
        accounts::session(s, &new.token, t0 + 1)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(sign_in("rita", PASSWORD, String::new(), after).await, None);
    accounts::change_reviewer(s, &ada, "rita", "enable", "")
        .await
        .unwrap();
    assert_eq!(
        sign_in("rita", PASSWORD, String::new(), after).await,
        Some(rita.id)
    );
    accounts::change_reviewer(s, &ada, "rita", "role", "lead")
        .await
        .unwrap();
    assert_eq!(
        bulwark_store::console::admin::reviewer_by_name(s, "rita")
            .await
            .unwrap()
            .unwrap()
            .1,
        "lead"
    );
    assert_eq!(audits(s, "console.reviewer.role", "console:ada").await, 1);
}

async fn reveal_budget(s: &Store) {
    let kek = Kek::generate();
    let rita = reviewer(s, &kek, "rita", ConsoleRole::Reviewer).await;
    let day = 1_900_000_000_000 / 86_400_000 * 86_400_000;
    let now = day + 3_600_000;
    for (n, media) in ["0-0", "0-1", "0-2"].into_iter().enumerate() {
        assert_eq!(
            queue::reveal(s, &rita, "report:1", media, 3, now)
                .await
                .unwrap(),
            n as i64 + 1
        );
    }
    let e = queue::reveal(s, &rita, "report:1", "0-3", 3, now)
        .await
        .unwrap_err();
    assert_eq!(e.kind, Kind::RateLimited);
    assert!(
        e.message.contains("revealed 3 images today"),
        "{}",
        e.message
    );
    assert_eq!(queue::reveals_today(s, &rita, now).await.unwrap(), 3);
    let shown = queue::revealed(s, &rita, "report:1", now).await.unwrap();
    assert_eq!(shown.len(), 3);
    assert!(!shown.contains("0-3"));
    assert_eq!(audits(s, "console.reveal", "console:rita").await, 3);
    assert_eq!(audits(s, "console.reveal.refused", "console:rita").await, 1);
    // Another reviewer has a budget of their own; the next UTC day starts over.
    let lena = reviewer(s, &kek, "lena", ConsoleRole::Lead).await;
    assert_eq!(
        queue::reveal(s, &lena, "report:1", "0-3", 3, now)
            .await
            .unwrap(),
        1
    );
    let tomorrow = day + 86_400_000;
    assert_eq!(
        queue::reveal(s, &rita, "report:1", "0-3", 3, tomorrow)
            .await
            .unwrap(),
        1
    );
    assert!(
        queue::revealed(s, &rita, "report:1", tomorrow)
            .await
            .unwrap()
            .contains("0-3")
    );
}

async fn decisions_rows(s: &Store, item: &str) -> i64 {
    sqlx::query(&s.sql("SELECT COUNT(*) AS n FROM console_decisions WHERE item = ?"))
        .bind(item)
        .fetch_one(&s.pool)
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

async fn decisions_checked_and_banked(s: &Store) {
    let kek = Kek::generate();
    let catalog = Catalog::new();
    catalog.load(s).await.unwrap();
    let rita = reviewer(s, &kek, "rita", ConsoleRole::Reviewer).await;
    let lena = reviewer(s, &kek, "lena", ConsoleRole::Lead).await;
    let http = Recorder::new(|_, _| Ok((204, Vec::new())));
    let hooks = WebhookConfig::default();
    let decide = |who: &Reviewer, item: &str, decision: &str, category: &str, bank: &str| {
        let (who, item, decision, category, bank) = (
            who.clone(),
            item.to_string(),
            decision.to_string(),
            category.to_string(),
            bank.to_string(),
        );
        let (catalog, hooks, http) = (&catalog, &hooks, http.clone());
        async move {
            decisions::decide(
                s,
                catalog,
                hooks,
                http,
                &who,
                &Request {
                    item: &item,
                    decision: &decision,
                    category: &category,
                    bank: &bank,
                    note: None,
                },
            )
            .await
        }
    };
    let rid = seed_report(s, &["alice"], &[]).await;
    let item = format!("report:{rid}");
    // Refused, nothing recorded, the item still open where it was.
    for (who, decision, category, kind) in [
        (&rita, "clear", "", Kind::Forbidden),
        (&rita, "add_to_bank", "", Kind::Forbidden),
        (&lena, "clear", "", Kind::BadRequest),
        (&rita, "confirm", "no_such_category", Kind::BadRequest),
        (&rita, "approve", "", Kind::BadRequest),
    ] {
        let e = decide(who, &item, decision, category, "known")
            .await
            .unwrap_err();
        assert_eq!(e.kind, kind, "{} {decision}", who.name);
    }
    for (key, kind) in [
        ("report", Kind::BadRequest),
        ("ticket:1", Kind::BadRequest),
        ("report:999999", Kind::NotFound),
    ] {
        assert_eq!(
            decide(&rita, key, "dismiss", "", "")
                .await
                .unwrap_err()
                .kind,
            kind,
            "{key}"
        );
    }
    let long = "n".repeat(2001);
    let e = decisions::decide(
        s,
        &catalog,
        &hooks,
        http.clone(),
        &rita,
        &Request {
            item: &item,
            decision: "dismiss",
            category: "",
            bank: "",
            note: Some(&long),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, Kind::BadRequest);
    assert_eq!(decisions_rows(s, &item).await, 0);
    assert_eq!(open_queue(s, &item).await.as_deref(), Some("report"));
    // Escalated: a reviewer may no longer decide it, a lead may; then it is closed.
    let d = decide(&rita, &item, "escalate", "", "").await.unwrap();
    assert_eq!(d.queue, "report");
    let e = decide(&rita, &item, "dismiss", "", "").await.unwrap_err();
    assert_eq!(e.kind, Kind::Forbidden);
    let d = decide(&lena, &item, "confirm", "other_violation", "")
        .await
        .unwrap();
    assert_eq!(d.queue, "escalated");
    let e = decide(&lena, &item, "dismiss", "", "").await.unwrap_err();
    assert_eq!(e.kind, Kind::Conflict);
    assert_eq!(decisions_rows(s, &item).await, 2);

    // Add to bank: the recorded match's upload hash goes into the bank and
    // the index.
    create_known_bank(s, &catalog).await;
    let h = PdqHash::from_bytes(rand_chacha::ChaCha8Rng::seed_from_u64(14).r#gen());
    let hex = h.to_string();
    let mid = bulwark_store::console::items::insert_match(
        s,
        &bulwark_store::console::items::NewMatch {
            at: bulwark_store::now_ms(),
            actor: "api-key",
            bank: "other",
            content_id: 1,
            signal_type: "pdq",
            distance: 12,
            pdq: Some(&hex),
            md5: None,
            sha256: None,
            thumb: None,
        },
    )
    .await
    .unwrap();
    let mitem = format!("match:{mid}");
    assert!(catalog.search(&h, None).is_empty());
    decide(&lena, &mitem, "add_to_bank", "", "known")
        .await
        .unwrap();
    let hits = catalog.search(&h, None);
    assert_eq!(hits.len(), 1);
    assert_eq!((&*hits[0].bank, hits[0].distance), ("known", 0));
    let signals = bulwark_store::signals_of(s, hits[0].content_id)
        .await
        .unwrap();
    assert!(
        signals
            .iter()
            .any(|g| g.signal_type == "pdq" && g.value == hex),
        "{signals:?}"
    );
    assert_eq!(open_queue(s, &mitem).await, None);
    let effect: String = sqlx::query(
        &s.sql("SELECT detail FROM audit WHERE action = 'console.decide' ORDER BY id DESC LIMIT 1"),
    )
    .fetch_one(&s.pool)
    .await
    .unwrap()
    .try_get("detail")
    .unwrap();
    let effect: serde_json::Value = serde_json::from_str(&effect).unwrap();
    assert_eq!(
        effect["effect"],
        json!({"bank": "known", "content_ids": [hits[0].content_id]})
    );
}

/// The keys of the items on `who`'s first page of `queue`, sorted.
async fn page_ids(s: &Store, who: &Reviewer, queue_name: &str) -> Vec<String> {
    let mut keys: Vec<String> = queue::open_page(s, who, queue_name, None, 500)
        .await
        .unwrap()
        .into_iter()
        .map(|(it, _)| it.key())
        .collect();
    keys.sort();
    keys
}

async fn hiding_and_policies(s: &Store) {
    let kek = Kek::generate();
    let rita = reviewer(s, &kek, "rita", ConsoleRole::Reviewer).await;
    let remy = reviewer(s, &kek, "remy", ConsoleRole::Reviewer).await;
    let ada = reviewer(s, &kek, "ada", ConsoleRole::Admin).await;

    // Hiding: gone from this reviewer's page and "next item", not from others'.
    let first = format!("report:{}", seed_report(s, &["alice"], &[]).await);
    let second = format!("report:{}", seed_report(s, &["bob"], &[]).await);
    let mut both = vec![first.clone(), second.clone()];
    both.sort();
    assert_eq!(page_ids(s, &rita, "report").await, both);
    assert_eq!(queue::hide(s, &rita, &first).await.unwrap(), "report");
    assert_eq!(page_ids(s, &rita, "report").await, [second.as_str()]);
    assert_eq!(page_ids(s, &remy, "report").await, both);
    let next = queue::next(s, &rita, "report", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.key(), second);
    assert_eq!(
        open_queue(s, &first).await.as_deref(),
        Some("report"),
        "still open"
    );
    assert_eq!(audits(s, "console.hide", "console:rita").await, 1);
    // Twice: still hidden, each request audited.
    queue::hide(s, &rita, &first).await.unwrap();
    assert_eq!(page_ids(s, &rita, "report").await, [second.as_str()]);
    assert_eq!(audits(s, "console.hide", "console:rita").await, 2);
    // No such item, or not an item key: refused, nothing hidden or audited.
    let e = queue::hide(s, &rita, "report:987654").await.unwrap_err();
    assert_eq!(e.kind, Kind::NotFound);
    let e = queue::hide(s, &rita, "nonsense").await.unwrap_err();
    assert_eq!(e.kind, Kind::BadRequest);
    assert_eq!(audits(s, "console.hide", "console:rita").await, 2);
    assert_eq!(page_ids(s, &rita, "report").await, [second.as_str()]);

    // Review policies: admins only, an existing bank, 0-256; a refusal
    // leaves the policy as it was.
    let catalog = Catalog::new();
    catalog.load(s).await.unwrap();
    create_known_bank(s, &catalog).await;
    let e = policy::set(s, &rita, "known", Some(10)).await.unwrap_err();
    assert_eq!(e.kind, Kind::Forbidden);
    let e = policy::set(s, &ada, "unknown", Some(10)).await.unwrap_err();
    assert_eq!(e.kind, Kind::NotFound);
    assert!(policy::all(s).await.unwrap().is_empty());
    policy::set(s, &ada, "known", Some(10)).await.unwrap();
    policy::set(s, &ada, "known", Some(31)).await.unwrap();
    for bad in [-1, 257] {
        let e = policy::set(s, &ada, "known", Some(bad)).await.unwrap_err();
        assert_eq!(e.kind, Kind::BadRequest, "{bad}");
    }
    let want: std::collections::BTreeMap<String, i64> = [("known".to_string(), 31)].into();
    assert_eq!(policy::all(s).await.unwrap(), want);
    assert_eq!(audits(s, "console.policy", "console:ada").await, 2);
    policy::set(s, &ada, "known", None).await.unwrap();
    assert!(policy::all(s).await.unwrap().is_empty());
    assert_eq!(audits(s, "console.policy", "console:ada").await, 3);
    assert_eq!(audits(s, "console.policy", "console:rita").await, 0);
}

#[tokio::test]
async fn hiding_and_policies_on_sqlite() {
    let t = TestStore::sqlite().await;
    hiding_and_policies(&t.store).await;
    t.cleanup().await;
}

#[tokio::test]
async fn hiding_and_policies_on_postgres() {
    let Some(t) = TestStore::postgres("review_hide_policy").await else {
        return;
    };
    hiding_and_policies(&t.store).await;
    t.cleanup().await;
}

#[tokio::test]
async fn sign_in_and_sessions_on_sqlite() {
    let t = TestStore::sqlite().await;
    sign_in_and_sessions(&t.store).await;
    t.cleanup().await;
}

#[tokio::test]
async fn sign_in_and_sessions_on_postgres() {
    let Some(t) = TestStore::postgres("review_sign_in").await else {
        return;
    };
    sign_in_and_sessions(&t.store).await;
    t.cleanup().await;
}

#[tokio::test]
async fn reveal_budget_on_sqlite() {
    let t = TestStore::sqlite().await;
    reveal_budget(&t.store).await;
    t.cleanup().await;
}

#[tokio::test]
async fn reveal_budget_on_postgres() {
    let Some(t) = TestStore::postgres("review_reveals").await else {
        return;
    };
    reveal_budget(&t.store).await;
    t.cleanup().await;
}

#[tokio::test]
async fn decisions_checked_and_banked_on_sqlite() {
    let t = TestStore::sqlite().await;
    decisions_checked_and_banked(&t.store).await;
    t.cleanup().await;
}

#[tokio::test]
async fn decisions_checked_and_banked_on_postgres() {
    let Some(t) = TestStore::postgres("review_decide").await else {
        return;
    };
    decisions_checked_and_banked(&t.store).await;
    t.cleanup().await;
}
