//! Text and entity signals as service operations, without HTTP, on a real
//! store (SQLite; PostgreSQL too when `BULWARK_TEST_POSTGRES` is set): a
//! re-posted ad matches its banked text hash and phone number, the
//! text-hash index follows items added and banks deleted after its first
//! load, and a bank's rules match for review only, are replaced and
//! deleted. The HTTP surface is tested in crates/server/tests/server/signals.rs.
//!
//! All data is synthetic: a phone number from the NANP range reserved for
//! fiction (555-0100…0199), a fictitious seller name, benign ads.

#![allow(clippy::unwrap_used)]

use crate::support::TestStore;
use bulwark_banks::TextSignal;
use bulwark_service::banks::{self, Change, NewBank};
use bulwark_service::catalog::Catalog;
use bulwark_service::metrics::Metrics;
use bulwark_service::signals::{
    self, Context, Explanation, NewRules, TEXT_HASH_RADIUS, TextIndexCache, TextMatch,
};
use bulwark_service::{Error, Kind};
use bulwark_signals::{ExtractOptions, RuleSpec, TextHash};
use bulwark_store::{BankRow, NewContent, SignalRow, Store};
use serde_json::json;

const AD: &str = "Kittens for adoption, 3 months old, vaccinated and litter trained. \
Very playful and healthy, raised indoors with children. Price 50 EUR each. \
Call +1 (415) 555-0142 or Telegram t.me/fictional_seller_0001";
/// The same ad re-posted: new price, a line added, phone re-formatted, leetspeak.
const REPOST: &str = "K1ttens for adoption, 3 months old, vaccinated and litter trained! \
Very playful and healthy, raised indoors with children. Price 35 EUR each. \
Pick up in the city centre. Call +14155550142";
const OTHER_AD: &str = "Grey corner sofa, fabric in good condition, no pets no smoke, \
pick up only, collection this weekend";

/// The service's state that text matching reads.
struct Service {
    store: Store,
    catalog: Catalog,
    metrics: Metrics,
    text_index: TextIndexCache,
}

impl Service {
    async fn new(store: Store) -> Service {
        let catalog = Catalog::new();
        catalog.load_full(&store).await.unwrap();
        Service {
            store,
            catalog,
            metrics: Metrics::default(),
            text_index: TextIndexCache::default(),
        }
    }

    fn cx(&self) -> Context<'_> {
        Context {
            store: &self.store,
            catalog: &self.catalog,
            metrics: &self.metrics,
            text_index: &self.text_index,
        }
    }

    async fn bank(&self, name: &str) -> BankRow {
        let b: NewBank = serde_json::from_value(json!({ "name": name })).unwrap();
        banks::create(&self.store, &self.catalog, "test", 31, b)
            .await
            .unwrap();
        banks::by_name(&self.store, name).await.unwrap()
    }

    /// Adds an item of text/entity signals as the content API does: the
    /// rows, the audit entry and change row, then this node's index.
    async fn add(&self, bank: &BankRow, signals: &[(&str, String)]) -> i64 {
        let c = NewContent {
            kind: "signals",
            dedup_key: format!("signals:{signals:?}"),
            note: None,
            metadata: None,
            source: None,
            signals: signals
                .iter()
                .map(|(t, v)| SignalRow {
                    signal_type: (*t).into(),
                    value: v.clone(),
                    quality: None,
                })
                .collect(),
            frames: Vec::new(),
            frame_extras: Vec::new(),
        };
        let mut tx = self.store.begin().await.unwrap();
        let id = bulwark_store::insert_content(&self.store, &mut tx, bank.id, "test", &c)
            .await
            .unwrap()
            .unwrap();
        banks::commit_change(
            &self.store,
            &self.catalog,
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

    async fn matches(&self, text: &str, opts: &ExtractOptions) -> Vec<TextMatch> {
        signals::match_text(self.cx(), Some(text), opts, &[], None)
            .await
            .unwrap()
            .0
    }
}

fn of_type<'a>(m: &'a [TextMatch], t: &str) -> Vec<&'a TextMatch> {
    m.iter().filter(|m| m.signal_type == t).collect()
}

fn english() -> ExtractOptions {
    signals::options(None, Some(&json!("en"))).unwrap()
}

async fn text_and_entities(s: &Service) {
    let ads = s.bank("ads").await;
    let other = s.bank("other").await;
    let ad_hash = TextHash::of_text(AD).unwrap();
    let ad_item = s
        .add(
            &ads,
            &[
                ("text_hash", ad_hash.to_string()),
                ("phone", "+14155550142".into()),
            ],
        )
        .await;

    // The re-post: by text hash (the distance the crate computes) and by
    // phone, with where the phone is in the text.
    let (m, computed) =
        signals::match_text(s.cx(), Some(REPOST), &ExtractOptions::default(), &[], None)
            .await
            .unwrap();
    let repost_hash = TextHash::of_text(REPOST).unwrap();
    let d = ad_hash.distance(&repost_hash);
    assert!(d <= TEXT_HASH_RADIUS, "independent distance {d}");
    let th = of_type(&m, "text_hash");
    assert_eq!(th.len(), 1, "{m:?}");
    assert_eq!(
        (th[0].bank.as_str(), th[0].content_id, th[0].distance),
        ("ads", Some(ad_item), Some(d))
    );
    assert_eq!(th[0].query_signal, Some(repost_hash.to_string()));
    let ph = of_type(&m, "phone");
    assert_eq!(ph.len(), 1, "{m:?}");
    let Explanation::Entity { value, at, .. } = &ph[0].explanation else {
        panic!("{:?}", ph[0]);
    };
    assert_eq!(value, "+14155550142");
    let at = at.as_ref().unwrap();
    assert_eq!(&REPOST[at.span[0]..at.span[1]], "+14155550142");
    assert_eq!(at.text.as_deref(), Some("+14155550142"));
    assert_eq!(
        computed.unwrap().text_hash,
        Some(repost_hash.to_string()),
        "the signals computed from the text"
    );
    // The JSON `/v1/match` answers with: an entity match's explanation
    // carries its span and text, and nothing a rule match has.
    let j = serde_json::to_value(ph[0]).unwrap();
    assert_eq!(j["distance"], 0);
    assert_eq!(j["explanation"]["span"], json!(at.span));
    assert!(j.get("review_only").is_none(), "{j}");

    // An explicit entity signal, restricted to a bank that does not hold it.
    let phone = TextSignal::Entity {
        kind: bulwark_signals::EntityKind::Phone,
        value: "+14155550142".into(),
    };
    let only_other = ["other".to_string()].into_iter().collect();
    let (m, computed) = signals::match_text(
        s.cx(),
        None,
        &ExtractOptions::default(),
        std::slice::from_ref(&phone),
        Some(&only_other),
    )
    .await
    .unwrap();
    assert!(m.is_empty() && computed.is_none(), "{m:?}");

    // Items added after the index's first load are found (it follows the
    // change log), and a deleted bank's entries are gone.
    assert!(
        s.matches(OTHER_AD, &ExtractOptions::default())
            .await
            .is_empty()
    );
    assert!(
        ad_hash.distance(&TextHash::of_text(OTHER_AD).unwrap()) > TEXT_HASH_RADIUS,
        "the unrelated ad is far by the crate's own distance"
    );
    let sofa = s
        .add(
            &other,
            &[(
                "text_hash",
                TextHash::of_text(OTHER_AD).unwrap().to_string(),
            )],
        )
        .await;
    let m = s.matches(OTHER_AD, &ExtractOptions::default()).await;
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(
        (m[0].bank.as_str(), m[0].content_id, m[0].distance),
        ("other", Some(sofa), Some(0))
    );
    banks::delete(&s.store, &s.catalog, "test", "other")
        .await
        .unwrap();
    assert!(
        s.matches(OTHER_AD, &ExtractOptions::default())
            .await
            .is_empty()
    );
    assert_eq!(
        s.text_index
            .current(&s.store, &s.catalog)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn rules(s: &Service) {
    let kitten = RuleSpec::keyword("kitten", "kittens");
    let set = |rules: Vec<RuleSpec>| NewRules {
        language: " en ".into(),
        rules,
    };
    let r = signals::put_rules(&s.store, "test", "ads", set(vec![kitten.clone()]))
        .await
        .unwrap();
    assert_eq!((r.bank.as_str(), r.language.as_str()), ("ads", "en"));
    assert!(r.review_only);

    let m = s.matches(AD, &english()).await;
    let rule = of_type(&m, "rule");
    assert_eq!(rule.len(), 1, "{m:?}");
    assert!(rule[0].review_only && rule[0].content_id.is_none());
    let Explanation::Rule {
        rule: id,
        span,
        text,
        ..
    } = &rule[0].explanation
    else {
        panic!("{:?}", rule[0]);
    };
    assert_eq!((id.as_str(), text.as_str()), ("kitten", "Kittens"));
    assert_eq!(&AD[span[0]..span[1]], "Kittens");
    let j = serde_json::to_value(rule[0]).unwrap();
    assert_eq!(j["content_id"], json!(null), "{j}");
    assert!(j.get("distance").is_none(), "{j}");
    // Declared in another language, the English rules do not run.
    let italian = signals::options(None, Some(&json!("it"))).unwrap();
    assert!(of_type(&s.matches(AD, &italian).await, "rule").is_empty());

    // Replaced: the cached compiled set gives way to the new version.
    signals::put_rules(
        &s.store,
        "test",
        "ads",
        set(vec![RuleSpec::keyword("sofa", "corner sofa")]),
    )
    .await
    .unwrap();
    assert!(of_type(&s.matches(AD, &english()).await, "rule").is_empty());
    let got = signals::get_rules(&s.store, "ads").await.unwrap();
    assert_eq!(got.rules.len(), 1);
    assert_eq!(got.rules[0].id, "sofa");

    signals::delete_rules(&s.store, "test", "ads")
        .await
        .unwrap();
    let kind = |r: Result<_, Error>| r.err().map(|e| e.kind);
    assert_eq!(
        kind(signals::get_rules(&s.store, "ads").await.map(|_| ())),
        Some(Kind::NotFound)
    );
    assert_eq!(
        kind(signals::delete_rules(&s.store, "test", "ads").await),
        Some(Kind::NotFound)
    );
    assert_eq!(
        kind(
            signals::put_rules(&s.store, "test", "nope", set(vec![kitten.clone()]))
                .await
                .map(|_| ())
        ),
        Some(Kind::NotFound)
    );
    let bad = RuleSpec {
        pattern: "(".into(),
        ..kitten
    };
    assert_eq!(
        kind(
            signals::put_rules(&s.store, "test", "ads", set(vec![bad]))
                .await
                .map(|_| ())
        ),
        Some(Kind::BadRequest)
    );
    // Every change was audited.
    let actions: Vec<String> = bulwark_store::audit_list(&s.store, 0, 100, Some("ads"))
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .filter(|a| a.starts_with("rules."))
        .collect();
    assert_eq!(actions, ["rules.set", "rules.set", "rules.delete"]);
}

async fn scenario(store: Store) {
    let s = Service::new(store).await;
    text_and_entities(&s).await;
    rules(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_signals_on_sqlite() {
    let t = TestStore::sqlite().await;
    scenario(t.store.clone()).await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_signals_on_postgres() {
    let Some(t) = TestStore::postgres("signals").await else {
        return;
    };
    scenario(t.store.clone()).await;
    t.cleanup().await;
}
