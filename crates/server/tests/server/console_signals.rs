//! The reviewer console shows text and entity matches (issue 18): an item
//! that came from a text/entity/rule match — through `POST /v1/match` or a
//! reported message's text — shows the bank, the signal, the normalised
//! value, where in the text it was found and why; text is shown escaped,
//! never as a link, with direction-changing characters made visible. On
//! SQLite and (when it is there) PostgreSQL.
//!
//! All data is synthetic and fictitious: a phone number from the NANP range
//! reserved for fiction (555-0100…0199), example.com, a benign pet ad.

#![allow(clippy::unwrap_used)]

use crate::console_fixtures;

use axum::http::{Method, StatusCode};
use bulwark_server::console::accounts::ConsoleRole;
use console_fixtures::*;
use serde_json::{Value, json};
use sqlx::Row;

async fn on_both<F, Fut>(f: F)
where
    F: Fn(Console) -> Fut,
    Fut: std::future::Future<Output = Console>,
{
    let c = Console::open(false, |_| {}).await.unwrap();
    f(c).await.cleanup().await;
    match Console::open(true, |_| {}).await {
        Some(c) => f(c).await.cleanup().await,
        None => {
            assert!(
                std::env::var("BULWARK_TEST_POSTGRES_REQUIRED").as_deref() != Ok("1"),
                "PostgreSQL is required but not reachable"
            );
            eprintln!("skipping the PostgreSQL run: no server at 127.0.0.1:5432");
        }
    }
}

/// A fictitious ad with markup and a right-to-left override in it, a
/// phone number written loosely and a URL.
const AD: &str = "Adorable <b>kitten</b>\u{202E}gnp.exe for adoption. \
Call +1 (415) 555-0142 or see https://example.com/ads/7 today";

/// Every `href` of a page: only the console's own pages and anchors.
fn foreign_links(html: &str) -> Vec<String> {
    html.match_indices("href=\"")
        .map(|(i, _)| {
            let rest = &html[i + 6..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .filter(|h| !(h.starts_with("/console") || h.starts_with('#')))
        .collect()
}

/// The page without its `<span …>`/`</span>` tags (the visible markers of
/// invisible characters are spans).
fn unspanned(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(i) = rest
        .find("<span")
        .into_iter()
        .chain(rest.find("</span>"))
        .min()
    {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('>').unwrap();
        rest = &rest[i + end + 1..];
    }
    out.push_str(rest);
    out
}

/// What every page showing the ad's text must do with it.
fn shown_safely(html: &str) {
    assert!(
        !html.contains("<b>kitten"),
        "markup from the text is escaped"
    );
    assert!(
        !html.contains('\u{202E}'),
        "the right-to-left override is not in the page"
    );
    assert_eq!(
        foreign_links(html),
        Vec::<String>::new(),
        "no link but the console's"
    );
}

async fn bank_with_text_signals(c: &Console) {
    c.bank("ads").await;
    let (s, j) = c
        .api(
            Method::POST,
            "/v1/banks/ads/content",
            Some(json!({"signals": {"phone": "+1 415 555 0142"}})),
        )
        .await;
    assert!(s.is_success(), "{j}");
    let (s, j) = c
        .api(
            Method::POST,
            "/v1/banks/ads/content",
            Some(json!({"signals": {"url": "HTTPS://EXAMPLE.com/ads/7#x"}})),
        )
        .await;
    assert!(s.is_success(), "{j}");
    let (s, j) = c
        .api(
            Method::PUT,
            "/v1/banks/ads/rules",
            Some(json!({"language": "en", "rules": [
                {"id": "tagged-file", "pattern": "<b>kitten</b>\\x{202E}\\S+", "raw": true,
                 "description": "markup then a reversed file name"}
            ]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{j}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_and_entity_matches_show_what_matched_and_why() {
    on_both(|c| async move {
        bank_with_text_signals(&c).await;
        let st = &c.service.state.store;
        crate::support::set_review_policy(st, "ads", Some(60)).await;
        let (s, m) = c
            .api(Method::POST, "/v1/match", Some(json!({"text": AD})))
            .await;
        assert_eq!(s, StatusCode::OK, "{m}");
        let mut types: Vec<&str> = m["matches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["signal_type"].as_str().unwrap())
            .collect();
        types.sort_unstable();
        assert_eq!(types, ["phone", "rule", "url"], "{m}");

        // Each is queued under the bank's review policy.
        let rows = sqlx::query("SELECT id, signal_type FROM console_matches ORDER BY id")
            .fetch_all(&st.pool)
            .await
            .unwrap();
        let ids: Vec<(i64, String)> = rows
            .iter()
            .map(|r| (r.try_get("id").unwrap(), r.try_get("signal_type").unwrap()))
            .collect();
        assert_eq!(ids.len(), 3, "{ids:?}");
        // Only the matched excerpts are kept, never the rest of the text.
        for r in sqlx::query("SELECT explanation, query_signal FROM console_text_matches")
            .fetch_all(&st.pool)
            .await
            .unwrap()
        {
            let e: String = r.try_get("explanation").unwrap();
            assert!(!e.contains("Adorable") && !e.contains("today"), "{e}");
        }

        c.add("rita", ConsoleRole::Reviewer, false).await;
        let s = c.login("rita").await;
        let q = c.get(&s, "/console/queue?kind=match").await.text();
        assert!(q.contains("phone") && q.contains("rule"), "{q}");
        for (id, t) in &ids {
            let page = c.get(&s, &format!("/console/item/match/{id}")).await;
            assert_eq!(page.status, StatusCode::OK);
            let html = page.text();
            assert!(html.contains("What matched in the text"), "{html}");
            assert!(html.contains("<td>ads</td>"), "the bank: {html}");
            shown_safely(&html);
            match t.as_str() {
                "phone" => {
                    assert!(html.contains("entity: phone"), "{html}");
                    assert!(html.contains("+14155550142"), "normalised (E.164): {html}");
                    assert!(html.contains("+1 (415) 555-0142"), "as written: {html}");
                    assert!(html.contains("exactly"), "{html}");
                }
                "url" => {
                    assert!(html.contains("entity: url"), "{html}");
                    // The canonical URL and the text's, as text.
                    assert!(html.contains("https://example.com/ads/7"), "{html}");
                }
                "rule" => {
                    // A rule has no distance: the title does not pretend one.
                    assert!(
                        html.contains(&format!("Match {id}: bank ads, rule")),
                        "{html}"
                    );
                    assert!(!html.contains("rule distance"), "{html}");
                    assert!(html.contains("tagged-file"), "{html}");
                    assert!(html.contains("markup then a reversed file name"), "{html}");
                    assert!(html.contains("Review only"), "{html}");
                    assert!(
                        html.contains("&lt;b&gt;kitten&lt;/b&gt;"),
                        "the excerpt, escaped: {html}"
                    );
                    assert!(
                        unspanned(&html).contains("&lt;b&gt;kitten&lt;/b&gt;[U+202E]gnp.exe"),
                        "the override as a visible marker: {html}"
                    );
                }
                other => panic!("unexpected {other}"),
            }
        }
        c
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_whose_text_matched_shows_its_matches() {
    on_both(|c| async move {
        bank_with_text_signals(&c).await;
        c.bank("known").await;
        let st = &c.service.state.store;
        let id = c
            .seed_report(
                "fictional_sender",
                "fictional_reporter",
                &image(PEN),
                "known",
            )
            .await;
        // The message's text is the ad, matched by the report path's own code.
        sqlx::query(&st.sql("UPDATE report_messages SET content = ? WHERE report_id = ?"))
            .bind(bulwark_franking::content::Content::text(AD).to_bytes())
            .bind(id)
            .execute(&st.pool)
            .await
            .unwrap();
        let state = &c.service.state;
        let sig = bulwark_service::signals::ReportSignals::compute(
            bulwark_service::signals::Context {
                store: &state.store,
                catalog: &state.catalog,
                metrics: &state.metrics,
                text_index: &state.text_index,
            },
            &[(0, AD.to_string())],
            &[],
        )
        .await
        .unwrap();
        let mut conn = st.pool.acquire().await.unwrap();
        sig.store(st, &mut conn, id).await.unwrap();
        drop(conn);

        c.add("rita", ConsoleRole::Reviewer, false).await;
        let s = c.login("rita").await;
        let q = c.get(&s, "/console/queue?kind=report").await.text();
        assert!(q.contains("banks: ads, known"), "the text's bank too: {q}");
        let html = c
            .get(&s, &format!("/console/item/report/{id}"))
            .await
            .text();
        assert!(html.contains("Text and entity matches"), "{html}");
        shown_safely(&html);
        let plain = unspanned(&html);
        let section = &plain[plain.find("id=\"text-signals-h\"").unwrap()..];
        for want in [
            "entity: phone",
            "+14155550142",
            "+1 (415) 555-0142",
            "entity: url",
            "https://example.com/ads/7",
            "tagged-file",
            "Review only",
            "&lt;b&gt;kitten&lt;/b&gt;[U+202E]",
            // The entities found, with the domain that matched nothing.
            "domain",
            "example.com",
        ] {
            assert!(section.contains(want), "{want}: {section}");
        }
        // The message itself, in the report chain: escaped, override visible.
        assert!(
            plain.contains("Adorable &lt;b&gt;kitten&lt;/b&gt;[U+202E]gnp.exe"),
            "{html}"
        );
        let matched: Value = serde_json::from_str(
            &sqlx::query("SELECT matches FROM report_text_signals")
                .fetch_one(&st.pool)
                .await
                .unwrap()
                .try_get::<String, _>("matches")
                .unwrap(),
        )
        .unwrap();
        assert_eq!(matched.as_array().unwrap().len(), 3, "{matched}");
        c
    })
    .await;
}

/// The evidence package and the CyberTipline report of a confirmed report
/// carry the text and entity matches of its messages: the package every
/// match (bank, signal, normalised value, message, span, why; rule matches
/// marked review-only), the report's `additionalInfo` the entity values and
/// the text hash's distance — not bank names, not rule matches — and the
/// report XML keeps its structure (one `additionalInfo`, well-formed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_matches_go_into_the_evidence_package_and_cybertip_report() {
    on_both(|c| async move {
        bank_with_text_signals(&c).await;
        // The banked ad: the same ad posted earlier with another price line.
        let banked_ad = "Adorable kitten for adoption, vaccinated and litter trained. \
                         Call +1 (415) 555-0199, 40 EUR";
        let posted = "Adorable kitten for adoption!! vaccinated and litter trained 🐱 \
                      Call +1 (415) 555-0142, 30 EUR";
        let h = bulwark_signals::TextHash::of_text(banked_ad).unwrap();
        let want_d = h.distance(&bulwark_signals::TextHash::of_text(posted).unwrap());
        assert!(want_d <= bulwark_signals::TEXT_HASH_RADIUS, "{want_d}");
        let (s, j) = c
            .api(
                Method::POST,
                "/v1/banks/ads/content",
                Some(json!({"signals": {"text_hash": h.to_string()}})),
            )
            .await;
        assert!(s.is_success(), "{j}");
        c.bank("known").await;
        let st = &c.service.state.store;
        let id = c
            .seed_report(
                "fictional_sender",
                "fictional_reporter",
                &image(PEN),
                "known",
            )
            .await;
        let state = &c.service.state;
        let sig = bulwark_service::signals::ReportSignals::compute(
            bulwark_service::signals::Context {
                store: &state.store,
                catalog: &state.catalog,
                metrics: &state.metrics,
                text_index: &state.text_index,
            },
            &[(0, AD.to_string()), (1, posted.to_string())],
            &[],
        )
        .await
        .unwrap();
        let mut conn = st.pool.acquire().await.unwrap();
        sig.store(st, &mut conn, id).await.unwrap();
        drop(conn);

        c.add("lena", ConsoleRole::Lead, false).await;
        c.add("rita", ConsoleRole::Reviewer, false).await;
        let (l, r) = (c.login("lena").await, c.login("rita").await);
        let item = format!("report:{id}");
        c.post(
            &r,
            "/console/decide",
            &[
                ("item", &item),
                ("decision", "confirm"),
                ("category", "csam"),
            ],
        )
        .await;

        // The evidence package.
        let e = c.get(&l, &format!("/console/export/report/{id}")).await;
        assert_eq!(e.status, StatusCode::OK);
        let v: Value = serde_json::from_slice(&e.body).unwrap();
        let tm = v["text_matches"].as_array().unwrap();
        let find = |msg: i64, t: &str| {
            tm.iter()
                .find(|m| m["message"] == msg && m["signal_type"] == t)
                .unwrap_or_else(|| panic!("{msg} {t}: {tm:?}"))
        };
        let phone = find(0, "phone");
        assert_eq!(phone["value"], "+14155550142");
        assert_eq!(phone["bank"], "ads");
        let span = phone["span"].as_array().unwrap();
        let (a, b) = (
            span[0].as_u64().unwrap() as usize,
            span[1].as_u64().unwrap() as usize,
        );
        assert_eq!(
            &AD[a..b],
            "+1 (415) 555-0142",
            "the span points into the text"
        );
        assert_eq!(find(0, "url")["value"], "https://example.com/ads/7");
        let rule = find(0, "rule");
        assert_eq!(rule["value"], "tagged-file");
        assert_eq!(rule["review_only"], true);
        assert_eq!(rule["language"], "en");
        let th = find(1, "text_hash");
        assert_eq!(
            th["distance"], want_d,
            "the distance bulwark-signals computes"
        );
        assert_eq!(th["review_only"], false);
        assert_eq!(find(1, "phone")["value"], "+14155550142");
        // Only the match facts: no excerpt of the messages.
        assert!(!serde_json::to_string(tm).unwrap().contains("Adorable"));

        // The CyberTipline report.
        let resp = c.post(&l, "/console/cybertip", &[("item", &item)]).await;
        assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.text());
        let xml: String = sqlx::query("SELECT xml FROM console_cybertips")
            .fetch_one(&st.pool)
            .await
            .unwrap()
            .try_get("xml")
            .unwrap();
        assert_eq!(xml.matches("<additionalInfo>").count(), 1, "{xml}");
        let info =
            &xml[xml.find("<additionalInfo>").unwrap()..xml.find("</additionalInfo>").unwrap()];
        for want in [
            "phone +14155550142 in message 0 (exact match",
            "url https://example.com/ads/7 in message 0",
            "phone +14155550142 in message 1",
            &format!("near-duplicate ad text in message 1 (text hash {}", {
                bulwark_signals::TextHash::of_text(posted).unwrap()
            }),
            &format!("Hamming distance {want_d} of 256 bits"),
        ] {
            assert!(info.contains(want), "{want}: {info}");
        }
        assert!(
            !info.contains("tagged-file") && !info.contains("review"),
            "{info}"
        );
        // Same elements, in the same order, as a report without text
        // matches: the text only adds to additionalInfo.
        let tags: Vec<&str> = xml
            .split('<')
            .skip(1)
            .filter(|t| !t.starts_with('/') && !t.starts_with('?'))
            .map(|t| t.split([' ', '>']).next().unwrap())
            .collect();
        assert_eq!(
            tags,
            [
                "report",
                "incidentSummary",
                "incidentType",
                "incidentDateTime",
                "incidentDateTimeDescription",
                "reporter",
                "reportingPerson",
                "firstName",
                "lastName",
                "email",
                "personOrUserReported",
                "espIdentifier",
                "screenName",
                "additionalInfo",
            ]
        );
        // Well-formed (xmllint, when installed).
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("r.xml");
        std::fs::write(&f, &xml).unwrap();
        if let Ok(o) = std::process::Command::new("xmllint")
            .arg("--noout")
            .arg(&f)
            .output()
        {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        c
    })
    .await;
}
