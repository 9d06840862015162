//! The reviewer console over HTTP (in-process): sign-in security, queues,
//! safe viewing, decisions and their effects, webhooks, CyberTipline export,
//! on SQLite and (when it is there) PostgreSQL.

#![allow(clippy::unwrap_used)]

use crate::console_fixtures;

use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use bulwark_server::console::accounts::ConsoleRole;
use console_fixtures::*;
use hmac::{Hmac, Mac};
use md5::Digest;
use serde_json::Value;
use sqlx::Row;

async fn on_both<F, Fut>(tweak: fn(&mut bulwark_server::console::ConsoleConfig), f: F)
where
    F: Fn(Console) -> Fut,
    Fut: std::future::Future<Output = Console>,
{
    let c = Console::open(false, tweak).await.unwrap();
    f(c).await.cleanup().await;
    match Console::open(true, tweak).await {
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

fn no_tweak(_: &mut bulwark_server::console::ConsoleConfig) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sets_a_hardened_cookie_and_every_post_needs_the_csrf_token() {
    on_both(no_tweak, |c| async move {
        c.add("rita", ConsoleRole::Reviewer, false).await;
        // Not signed in: every page sends you to the sign-in form.
        for p in [
            "/console",
            "/console/queue?kind=report",
            "/console/item/report/1",
        ] {
            let r = c.request(Method::GET, p, None, None).await;
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{p}");
            assert_eq!(r.location(), "/console/login");
        }
        let r = c.try_login("rita", PASSWORD, "").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
        let set = r
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|v| v.starts_with("bulwark_console="))
            .unwrap();
        for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/console"] {
            assert!(set.contains(attr), "{set} lacks {attr}");
        }
        // The database keeps the token's SHA-256, not the token.
        let token = set
            .split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_string();
        let st = &c.service.state.store;
        let stored: Vec<String> = sqlx::query("SELECT token_sha256 FROM console_sessions")
            .fetch_all(&st.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get("token_sha256").unwrap())
            .collect();
        assert!(!stored.contains(&token));
        assert!(stored.contains(&hex::encode(sha2::Sha256::digest(token.as_bytes()))));
        let s = c.login("rita").await;
        // The page carries strict security headers.
        let q = c.get(&s, "/console/queue").await;
        let csp = q.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(q.headers["cache-control"], "no-store");
        // A POST without the token, or with another session's, is refused.
        for bad in ["", "00", &"a".repeat(64)] {
            let r = c
                .request(
                    Method::POST,
                    "/console/hide",
                    Some(&s.cookie),
                    Some(&[("csrf", bad), ("item", "report:1")]),
                )
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "csrf {bad:?}");
        }
        // A sign-in POST without the form's double-submit cookie is refused.
        let r = c
            .request(
                Method::POST,
                "/console/login",
                None,
                Some(&[("csrf", "x"), ("name", "rita"), ("password", PASSWORD)]),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        // Signing out ends the session.
        let r = c.post(&s, "/console/logout", &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let r = c.get(&s, "/console/queue").await;
        assert_eq!(r.location(), "/console/login");
        let actions = c.audit_actions().await;
        assert!(
            actions
                .iter()
                .any(|a| a.0 == "console:rita" && a.1 == "console.login")
        );
        assert!(actions.iter().any(|a| a.1 == "console.logout"));
        c
    })
    .await;
}

#[tokio::test]
async fn a_locked_account_refuses_even_the_right_password() {
    let c = Console::open(false, |k| k.max_failed_logins = 3)
        .await
        .unwrap();
    c.add("lou", ConsoleRole::Reviewer, false).await;
    for _ in 0..3 {
        let r = c.try_login("lou", "wrong password!!", "").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = c.try_login("lou", PASSWORD, "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "locked out");
    // An unknown name gets the same answer as a wrong password.
    let r = c.try_login("nobody", PASSWORD, "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let actions = c.audit_actions().await;
    assert!(actions.iter().any(|a| a.1 == "console.login.lockout"));
    assert!(actions.iter().any(|a| a.1 == "console.login.locked"));
    // Another account is unaffected.
    c.add("max", ConsoleRole::Reviewer, false).await;
    c.login("max").await;
}

/// RFC 4648 base32 decoding, written here independently of the server's encoder.
fn unbase32(s: &str) -> Vec<u8> {
    let mut bits = String::new();
    for ch in s.chars() {
        let v = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".find(ch).unwrap();
        bits.push_str(&format!("{v:05b}"));
    }
    bits.as_bytes()
        .chunks(8)
        .filter(|c| c.len() == 8)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 2).unwrap())
        .collect()
}

#[tokio::test]
async fn an_enrolled_totp_is_required_at_sign_in() {
    let c = Console::open(false, no_tweak).await.unwrap();
    let secret = c.add("tess", ConsoleRole::Lead, true).await.unwrap();
    let key = unbase32(&secret);
    assert_eq!(key.len(), 20);
    let r = c.try_login("tess", PASSWORD, "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "no code");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let wrong = bulwark_server::console::totp::totp(&key, now + 600, 6);
    let r = c.try_login("tess", PASSWORD, &wrong).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "stale code");
    let code = bulwark_server::console::totp::totp(&key, now, 6);
    let r = c.try_login("tess", PASSWORD, &code).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    // The secret is sealed under the KEK, not stored as given.
    let st = &c.service.state.store;
    let stored: String = sqlx::query("SELECT totp FROM console_reviewers WHERE name = 'tess'")
        .fetch_one(&st.pool)
        .await
        .unwrap()
        .try_get("totp")
        .unwrap();
    assert!(!stored.contains(&secret) && !stored.contains(&hex::encode(&key)));
}

fn png_side(png: &[u8]) -> u32 {
    let img = bulwark_pdq::decode(png, &bulwark_pdq::Limits::default()).unwrap();
    assert_eq!(img.channels, 1, "thumbnails are grey");
    img.width.max(img.height)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_shown_blurred_revealed_within_budget_and_decided() {
    on_both(
        |k| k.daily_reveal_budget = 1,
        |c| async move {
            c.bank("known").await;
            let bridge = image(BRIDGE);
            let rid = c.seed_report("alice", "bob", &bridge, "known").await;
            let rid2 = c.seed_report("alice", "carol", &image(PEN), "known").await;
            c.add("rita", ConsoleRole::Reviewer, false).await;
            let s = c.login("rita").await;
            let q = c.get(&s, "/console/queue?kind=report").await.text();
            assert!(q.contains(&format!("/console/item/report/{rid}")), "{q}");
            assert!(q.contains(&format!("/console/item/report/{rid2}")));
            let page = c.get(&s, &format!("/console/item/report/{rid}")).await;
            assert_eq!(page.status, StatusCode::OK);
            let html = page.text();
            // Why it is here: bank, sender, reporter, franking facts; similar: same sender.
            for want in [
                "known",
                "alice",
                "bob",
                "verified: stamp MAC",
                &format!("report:{rid2}"),
            ] {
                assert!(html.contains(want), "item page lacks {want}");
            }
            assert!(html.contains("class=\"thumb\"") && html.contains("alt=\"Blurred: "));
            assert!(!html.contains("<video") && !html.contains("autoplay"));
            // Before a reveal: a 16-pixel grey thumbnail, never the original.
            let media = format!("/console/media/report/{rid}/0-0");
            let t = c.get(&s, &media).await;
            assert_eq!(t.headers["content-type"], "image/png");
            assert_ne!(t.body, bridge);
            assert!(png_side(&t.body) <= 16);
            let r = c
                .post(
                    &s,
                    "/console/reveal",
                    &[("item", &format!("report:{rid}")), ("media", "0-0")],
                )
                .await;
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
            let side = png_side(&c.get(&s, &media).await.body);
            assert!(side > 16 && side <= 320, "revealed side {side}");
            assert!(
                c.get(&s, &format!("/console/item/report/{rid}"))
                    .await
                    .text()
                    .contains("thumb revealed")
            );
            // The budget is one a day: the next reveal is refused and stays blurred.
            let r = c
                .post(
                    &s,
                    "/console/reveal",
                    &[("item", &format!("report:{rid2}")), ("media", "0-0")],
                )
                .await;
            assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
            assert!(
                png_side(
                    &c.get(&s, &format!("/console/media/report/{rid2}/0-0"))
                        .await
                        .body
                ) <= 16
            );
            // Another reviewer's view of the same image is still blurred.
            c.add("remy", ConsoleRole::Reviewer, false).await;
            let s2 = c.login("remy").await;
            assert!(png_side(&c.get(&s2, &media).await.body) <= 16);
            // Confirming needs a category; then the item leaves the queue.
            let item = format!("report:{rid}");
            let r = c
                .post(
                    &s,
                    "/console/decide",
                    &[
                        ("item", &item),
                        ("decision", "confirm"),
                        ("category", "nonsense"),
                    ],
                )
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST);
            let r = c
                .post(
                    &s,
                    "/console/decide",
                    &[
                        ("item", &item),
                        ("decision", "confirm"),
                        ("category", "csam"),
                    ],
                )
                .await;
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
            assert_eq!(
                r.location(),
                format!("/console/next?kind=report&after={item}")
            );
            let r = c
                .post(
                    &s,
                    "/console/decide",
                    &[("item", &item), ("decision", "dismiss")],
                )
                .await;
            assert_eq!(r.status, StatusCode::CONFLICT, "decided once");
            let item2 = format!("report:{rid2}");
            let r = c
                .post(
                    &s,
                    "/console/decide",
                    &[("item", &item2), ("decision", "dismiss")],
                )
                .await;
            assert_eq!(r.status, StatusCode::SEE_OTHER);
            let q = c.get(&s, "/console/queue?kind=report").await.text();
            assert!(!q.contains(&format!("/console/item/report/{rid}\"")));
            // The dashboard: one confirmed, one dismissed for the bank: 50 %.
            let d = c.get(&s, "/console").await.text();
            assert!(
                d.contains("<td>known</td><td>1</td><td>1</td><td>50 %</td>"),
                "{d}"
            );
            // Audit: the view, the reveal, the refusal, the decisions.
            let a = c.audit_actions().await;
            for want in [
                "console.item.view",
                "console.reveal",
                "console.reveal.refused",
                "console.decide",
            ] {
                assert!(
                    a.iter().any(|x| x.0 == "console:rita" && x.1 == want),
                    "no {want}"
                );
            }
            c
        },
    )
    .await;
}

#[tokio::test]
async fn do_not_show_again_hides_an_item_from_that_reviewer_only() {
    let c = Console::open(false, no_tweak).await.unwrap();
    c.bank("known").await;
    let rid = c.seed_report("alice", "bob", &image(PEN), "known").await;
    c.add("a1", ConsoleRole::Reviewer, false).await;
    c.add("a2", ConsoleRole::Reviewer, false).await;
    let (s1, s2) = (c.login("a1").await, c.login("a2").await);
    let link = format!("/console/item/report/{rid}");
    let r = c
        .post(&s1, "/console/hide", &[("item", &format!("report:{rid}"))])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        !c.get(&s1, "/console/queue?kind=report")
            .await
            .text()
            .contains(&link)
    );
    assert!(
        c.get(&s2, "/console/queue?kind=report")
            .await
            .text()
            .contains(&link)
    );
}

#[tokio::test]
async fn the_break_reminder_shows_after_the_configured_time() {
    let c = Console::open(false, |k| k.break_after_minutes = 1)
        .await
        .unwrap();
    c.add("rita", ConsoleRole::Reviewer, false).await;
    let s = c.login("rita").await;
    assert!(
        !c.get(&s, "/console")
            .await
            .text()
            .contains("break-reminder")
    );
    // Age the session by two minutes.
    let st = &c.service.state.store;
    sqlx::query("UPDATE console_sessions SET created_at = created_at - 120000")
        .execute(&st.pool)
        .await
        .unwrap();
    assert!(c.get(&s, "/console").await.text().contains("take a break"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clearing_a_flagged_account_has_the_api_effect_and_needs_a_lead() {
    on_both(no_tweak, |c| async move {
        c.bank("known").await;
        c.seed_account("mallory", "known").await;
        c.add("rita", ConsoleRole::Reviewer, false).await;
        c.add("lena", ConsoleRole::Lead, false).await;
        let (r, l) = (c.login("rita").await, c.login("lena").await);
        let page = c.get(&r, "/console/item/account/mallory").await.text();
        assert!(page.contains("known") && page.contains("Opened vouchers"));
        assert!(
            !page.contains("id=\"clear\""),
            "reviewers get no clear button"
        );
        let derivative = c.get(&r, "/console/media/account/mallory/0").await;
        assert!(png_side(&derivative.body) <= 16);
        let form = [("item", "account:mallory"), ("decision", "clear")];
        assert_eq!(
            c.post(&r, "/console/decide", &form).await.status,
            StatusCode::FORBIDDEN
        );
        let resp = c.post(&l, "/console/decide", &form).await;
        assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.text());
        // The same state as POST /v1/accounts/{id}/clear leaves.
        let (s, j) = c.api(Method::GET, "/v1/accounts/mallory", None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(j["status"], "not flagged", "{j}");
        let st = &c.service.state.store;
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM psi_opened WHERE account = 'mallory'")
            .fetch_one(&st.pool)
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
        assert_eq!(n, 0);
        let by: String =
            sqlx::query("SELECT cleared_by FROM psi_accounts WHERE account = 'mallory'")
                .fetch_one(&st.pool)
                .await
                .unwrap()
                .try_get("cleared_by")
                .unwrap();
        assert_eq!(by, "console:lena");
        let a = c.audit_actions().await;
        assert!(
            a.iter()
                .any(|x| x.0 == "console:lena" && x.1 == "account.clear")
        );
        c
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_are_queued_by_the_bank_review_policy_and_can_be_banked() {
    let c = Console::open(false, no_tweak).await.unwrap();
    c.bank("known").await;
    c.bank("other").await;
    let bridge = image(BRIDGE);
    let st = &c.service.state.store;
    let upload = |file: Vec<u8>| {
        let router = c.router.clone();
        let admin = c.admin.clone();
        async move {
            let boundary = "b0undary";
            let mut body = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n").into_bytes();
            body.extend_from_slice(&file);
            body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
            let req = axum::http::Request::builder()
                .method(Method::POST)
                .uri("/v1/match")
                .header("authorization", format!("Bearer {admin}"))
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(axum::body::Body::from(body))
                .unwrap();
            let r = tower::ServiceExt::oneshot(router, req).await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
        }
    };
    // Bank the image, then match it: no policy, nothing queued.
    let boundary = "b0undary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&bridge);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let req = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/v1/banks/known/content")
        .header("authorization", format!("Bearer {}", c.admin))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(axum::body::Body::from(body))
        .unwrap();
    let r = tower::ServiceExt::oneshot(c.router.clone(), req)
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    upload(bridge.clone()).await;
    let count = || async {
        sqlx::query("SELECT COUNT(*) AS n FROM console_matches")
            .fetch_one(&st.pool)
            .await
            .unwrap()
            .try_get::<i64, _>("n")
            .unwrap()
    };
    assert_eq!(count().await, 0);
    // A policy on another bank does not select it; one on this bank does.
    crate::support::set_review_policy(st, "other", Some(31)).await;
    upload(bridge.clone()).await;
    assert_eq!(count().await, 0);
    crate::support::set_review_policy(st, "known", Some(10)).await;
    upload(bridge.clone()).await;
    assert!(count().await >= 1, "pdq, md5 and sha256 matches recorded");
    let row = sqlx::query("SELECT id, md5, thumb FROM console_matches ORDER BY id LIMIT 1")
        .fetch_one(&st.pool)
        .await
        .unwrap();
    let id: i64 = row.try_get("id").unwrap();
    assert_eq!(
        row.try_get::<String, _>("md5").unwrap(),
        hex::encode(md5::Md5::digest(&bridge))
    );
    let thumb: Vec<u8> = row.try_get("thumb").unwrap();
    assert!(png_side(&thumb) <= 320, "only a thumbnail is kept");
    c.add("lena", ConsoleRole::Lead, false).await;
    let l = c.login("lena").await;
    let page = c.get(&l, &format!("/console/item/match/{id}")).await.text();
    assert!(page.contains("known") && page.contains("distance"));
    // Add it to the other bank: the hash now matches there through the API.
    let r = c
        .post(
            &l,
            "/console/decide",
            &[
                ("item", &format!("match:{id}")),
                ("decision", "add_to_bank"),
                ("bank", "other"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let (s, j) = c.api(Method::GET, "/v1/banks/other/content", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(j.to_string().contains("console"), "{j}");
}

type Received = Arc<Mutex<Vec<(String, String, String, String)>>>;

/// A local webhook receiver: fails the first `fail` requests with 500.
async fn receiver(fail: usize) -> (String, Received) {
    let got: Received = Arc::default();
    let g = got.clone();
    let n = Arc::new(Mutex::new(0usize));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |h: axum::http::HeaderMap, body: String| {
            let g = g.clone();
            let n = n.clone();
            async move {
                let hv = |k: &str| {
                    h.get(k)
                        .map(|v| v.to_str().unwrap().to_string())
                        .unwrap_or_default()
                };
                g.lock().unwrap().push((
                    hv("bulwark-timestamp"),
                    hv("bulwark-signature"),
                    hv("bulwark-delivery"),
                    body,
                ));
                let mut n = n.lock().unwrap();
                *n += 1;
                if *n <= fail {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_send_signed_webhooks_with_retries_and_a_delivery_log() {
    let (url, got) = receiver(2).await;
    let u = url.clone();
    let c = Console::open(false, move |k| {
        k.webhook_url = Some(u);
        k.webhook_secret = Some(String::from("whsec-test").into());
        k.webhook_backoff_ms = 20;
        k.webhook_max_attempts = 5;
    })
    .await
    .unwrap();
    c.bank("known").await;
    let rid = c.seed_report("alice", "bob", &image(PEN), "known").await;
    c.add("rita", ConsoleRole::Reviewer, false).await;
    let s = c.login("rita").await;
    let r = c
        .post(
            &s,
            "/console/decide",
            &[
                ("item", &format!("report:{rid}")),
                ("decision", "confirm"),
                ("category", "csam"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let st = &c.service.state.store;
    let mut status = String::new();
    for _ in 0..200 {
        status = sqlx::query("SELECT status FROM console_webhooks")
            .fetch_one(&st.pool)
            .await
            .unwrap()
            .try_get("status")
            .unwrap();
        if status != "pending" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, "delivered");
    let row = sqlx::query("SELECT attempts, last_status FROM console_webhooks")
        .fetch_one(&st.pool)
        .await
        .unwrap();
    assert_eq!(row.try_get::<i64, _>("attempts").unwrap(), 3);
    assert_eq!(row.try_get::<i64, _>("last_status").unwrap(), 204);
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    for (ts, sig, delivery, body) in &got {
        // Verify as a receiver would: HMAC-SHA256 over "timestamp.body".
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"whsec-test").unwrap();
        mac.update(format!("{ts}.{body}").as_bytes());
        let want = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(sig, &want);
        assert_eq!(delivery, &got[0].2, "same delivery id on retries");
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["decision"], "confirm");
        assert_eq!(v["action"], "suspend_account_and_delete_content");
        assert_eq!(v["item"], format!("report:{rid}"));
        // A tampered body fails the check.
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"whsec-test").unwrap();
        mac.update(format!("{ts}.{}", body.replace("confirm", "dismiss")).as_bytes());
        assert_ne!(
            sig,
            &format!("v1={}", hex::encode(mac.finalize().into_bytes()))
        );
    }
    // The lead sees the delivery log.
    c.add("lena", ConsoleRole::Lead, false).await;
    let l = c.login("lena").await;
    let log = c.get(&l, "/console/webhooks").await.text();
    assert!(log.contains("delivered") && log.contains(&url));
    assert!(
        c.audit_actions()
            .await
            .iter()
            .any(|(who, a, _)| who == "console:lena" && a == "console.webhooks.view"),
        "viewing the delivery log is audited"
    );
    assert_eq!(
        c.get(&s, "/console/webhooks").await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_webhook_that_never_succeeds_is_given_up_after_max_attempts() {
    let (url, got) = receiver(usize::MAX).await;
    let c = Console::open(false, move |k| {
        k.webhook_url = Some(url);
        k.webhook_secret = Some(String::from("s").into());
        k.webhook_backoff_ms = 5;
        k.webhook_max_attempts = 3;
    })
    .await
    .unwrap();
    c.bank("known").await;
    let rid = c.seed_report("alice", "bob", &image(PEN), "known").await;
    c.add("rita", ConsoleRole::Reviewer, false).await;
    let s = c.login("rita").await;
    c.post(
        &s,
        "/console/decide",
        &[("item", &format!("report:{rid}")), ("decision", "dismiss")],
    )
    .await;
    let st = &c.service.state.store;
    let mut status = String::new();
    for _ in 0..200 {
        status = sqlx::query("SELECT status FROM console_webhooks")
            .fetch_one(&st.pool)
            .await
            .unwrap()
            .try_get("status")
            .unwrap();
        if status != "pending" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, "failed");
    assert_eq!(got.lock().unwrap().len(), 3);
}

/// Element paths (`report/incidentSummary/incidentType`) and their text, by an
/// independent XML parser.
fn xml_paths(xml: &str) -> Vec<(String, String)> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(xml);
    let (mut stack, mut bufs, mut out) = (Vec::<String>::new(), Vec::<String>::new(), Vec::new());
    loop {
        match r.read_event().unwrap() {
            Event::Start(e) => {
                stack.push(String::from_utf8(e.name().as_ref().to_vec()).unwrap());
                bufs.push(String::new());
            }
            Event::End(_) => {
                let text = bufs.pop().unwrap();
                if !text.trim().is_empty() {
                    out.push((stack.join("/"), text.trim().to_string()));
                }
                stack.pop();
            }
            Event::Text(t) => {
                if let Some(b) = bufs.last_mut() {
                    b.push_str(&t.decode().unwrap());
                }
            }
            Event::GeneralRef(g) => {
                let name = String::from_utf8(g.to_vec()).unwrap();
                let ch = quick_xml::escape::resolve_predefined_entity(&name).unwrap();
                if let Some(b) = bufs.last_mut() {
                    b.push_str(ch);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(stack.is_empty(), "unbalanced XML");
    out
}

fn text_at(p: &[(String, String)], path: &str) -> Vec<String> {
    p.iter()
        .filter(|(k, _)| k == path)
        .map(|(_, v)| v.clone())
        .collect()
}

/// NCMEC's CyberTipline Reporting API schema, when one is at hand: the path
/// in `BULWARK_CYBERTIP_XSD`, else `shared/ncmec/cybertipline.xsd` beside
/// the repository (CI's layout). It is not in the repository: NCMEC gives
/// its XSD to registered reporters and states no licence terms for copies
/// (docs/CONSOLE.md, "The XSD").
fn cybertip_xsd() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("BULWARK_CYBERTIP_XSD") {
        let p = std::path::PathBuf::from(p);
        assert!(
            p.is_file(),
            "BULWARK_CYBERTIP_XSD={} is not a file",
            p.display()
        );
        return Some(p);
    }
    let beside = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/ncmec/cybertipline.xsd");
    beside.is_file().then_some(beside)
}

/// Validates `xml` against the CyberTipline XSD with libxml2's `xmllint
/// --schema`. Skips (with a message) when no XSD is at hand; with an XSD
/// but no xmllint it skips too, and fails under `BULWARK_TEST_REQUIRE_ALL=1`
/// (CI installs libxml2-utils). Returns whether it validated.
fn validate_against_cybertip_xsd(xml: &str, what: &str) -> bool {
    let Some(xsd) = cybertip_xsd() else {
        eprintln!(
            "not validating the {what} against NCMEC's XSD: none at hand (set BULWARK_CYBERTIP_XSD)"
        );
        return false;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("doc.xml");
    std::fs::write(&file, xml).unwrap();
    let out = match std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd)
        .arg(&file)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            assert!(
                std::env::var("BULWARK_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
                "xmllint is required (BULWARK_TEST_REQUIRE_ALL=1) but could not run: {e} (apt-get install libxml2-utils)"
            );
            eprintln!("not validating the {what} against the XSD: xmllint is not installed ({e})");
            return false;
        }
    };
    assert!(
        out.status.success(),
        "the {what} does not validate against {}:\n{}\n{xml}",
        xsd.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// Element paths in document order (every start tag), to check the order the
/// Reporting API documentation gives for each element's children.
fn element_order(xml: &str) -> Vec<String> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(xml);
    let (mut stack, mut out) = (Vec::<String>::new(), Vec::new());
    loop {
        match r.read_event().unwrap() {
            Event::Start(e) => {
                stack.push(String::from_utf8(e.name().as_ref().to_vec()).unwrap());
                out.push(stack.join("/"));
            }
            Event::Empty(e) => {
                out.push(format!(
                    "{}/{}",
                    stack.join("/"),
                    String::from_utf8(e.name().as_ref().to_vec()).unwrap()
                ));
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    out
}

type Calls = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A local mock of the CyberTipline Reporting API's documented responses.
async fn mock_ncmec() -> (String, Calls) {
    let calls: Calls = Arc::default();
    let app = axum::Router::new().route(
        "/{op}",
        axum::routing::post({
            let calls = calls.clone();
            move |axum::extract::Path(op): axum::extract::Path<String>, body: axum::body::Bytes| {
                let calls = calls.clone();
                async move {
                    calls.lock().unwrap().push((op.clone(), body.to_vec()));
                    let x = match op.as_str() {
                        "submit" => "<reportResponse><responseCode>0</responseCode><responseDescription>Success</responseDescription><reportId>4242</reportId></reportResponse>",
                        "upload" => "<reportResponse><responseCode>0</responseCode><responseDescription>Success</responseDescription><reportId>4242</reportId><fileId>f-1</fileId><hash>x</hash></reportResponse>",
                        "fileinfo" => "<reportResponse><responseCode>0</responseCode><responseDescription>Success</responseDescription><reportId>4242</reportId></reportResponse>",
                        "finish" => "<reportDoneResponse><responseCode>0</responseCode><reportId>4242</reportId><files><fileId>f-1</fileId></files></reportDoneResponse>",
                        _ => "<reportResponse><responseCode>1000</responseCode><responseDescription>Server error</responseDescription></reportResponse>",
                    };
                    ([("content-type", "text/xml")], x)
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}"), calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_items_become_cybertipline_reports_and_evidence_packages() {
    let (url, calls) = mock_ncmec().await;
    let c = Console::open(false, move |k| {
        k.cybertip_url = Some(url);
        k.reporter_email = "t&s@example.invalid".into();
    })
    .await
    .unwrap();
    c.bank("known").await;
    let pen = image(PEN);
    // An account name that would break naive XML.
    let sender = "eve<script>&\"x\"";
    let rid = c.seed_report(sender, "bob", &pen, "known").await;
    // Two more messages in the reported chain: another sender, then the first again.
    let st = &c.service.state.store;
    for (idx, who) in [(1, "mallory"), (2, sender)] {
        sqlx::query(&st.sql(
            "INSERT INTO report_messages (report_id, idx, sender, conversation, accepted_at, content, \
             key_id, verified, message_id, epoch, stamper) VALUES (?, ?, ?, 'group-1', 1, ?, 1, 1, ?, 5, 'stamper-1')",
        ))
        .bind(rid)
        .bind(idx)
        .bind(who)
        .bind(bulwark_franking::content::Content::text("and this").to_bytes())
        .bind(format!("m-{idx}"))
        .execute(&st.pool)
        .await
        .unwrap();
    }
    c.add("lena", ConsoleRole::Lead, false).await;
    c.add("rita", ConsoleRole::Reviewer, false).await;
    let (l, r) = (c.login("lena").await, c.login("rita").await);
    let item = format!("report:{rid}");
    // Not confirmed yet: refused. Reviewers cannot build reports.
    assert_eq!(
        c.post(&l, "/console/cybertip", &[("item", &item)])
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        c.post(&r, "/console/cybertip", &[("item", &item)])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
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
    let resp = c.post(&l, "/console/cybertip", &[("item", &item)]).await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.text());
    let st = &c.service.state.store;
    let xml: String = sqlx::query("SELECT xml FROM console_cybertips")
        .fetch_one(&st.pool)
        .await
        .unwrap()
        .try_get("xml")
        .unwrap();
    let p = xml_paths(&xml);
    assert_eq!(
        text_at(&p, "report/incidentSummary/incidentType"),
        ["Child Pornography (possession, manufacture, and distribution)"]
    );
    assert_eq!(
        text_at(&p, "report/incidentSummary/incidentDateTime").len(),
        1
    );
    assert_eq!(
        text_at(&p, "report/reporter/reportingPerson/email"),
        ["t&s@example.invalid"]
    );
    // One suspect (the API takes at most one personOrUserReported): the
    // first sender; the other sender is named in additionalInfo.
    assert_eq!(
        text_at(&p, "report/personOrUserReported/espIdentifier"),
        [sender]
    );
    assert_eq!(
        text_at(&p, "report/additionalInfo"),
        ["Other accounts that sent the reported messages: mallory"]
    );
    // Children in the order the Reporting API documents (and its XSD's sequences).
    assert_eq!(
        element_order(&xml),
        [
            "report",
            "report/incidentSummary",
            "report/incidentSummary/incidentType",
            "report/incidentSummary/incidentDateTime",
            "report/incidentSummary/incidentDateTimeDescription",
            "report/reporter",
            "report/reporter/reportingPerson",
            "report/reporter/reportingPerson/firstName",
            "report/reporter/reportingPerson/lastName",
            "report/reporter/reportingPerson/email",
            "report/personOrUserReported",
            "report/personOrUserReported/espIdentifier",
            "report/personOrUserReported/screenName",
            "report/additionalInfo",
        ]
    );
    validate_against_cybertip_xsd(&xml, "report XML");
    // Submit to the mock: submit, upload, fileinfo, finish; the record keeps NCMEC's id.
    let page = resp.location();
    let tid = page.rsplit('/').next().unwrap();
    let resp = c
        .post(&l, &format!("/console/cybertip/{tid}/submit"), &[])
        .await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.text());
    let ops: Vec<String> = calls.lock().unwrap().iter().map(|c| c.0.clone()).collect();
    assert_eq!(ops, ["submit", "upload", "fileinfo", "finish"]);
    let fileinfo = String::from_utf8(calls.lock().unwrap()[2].1.clone()).unwrap();
    let fp = xml_paths(&fileinfo);
    assert_eq!(text_at(&fp, "fileDetails/reportId"), ["4242"]);
    assert_eq!(text_at(&fp, "fileDetails/fileId"), ["f-1"]);
    // The console never shows a whole file, so it never says it viewed one.
    assert_eq!(text_at(&fp, "fileDetails/fileViewedByEsp"), ["false"]);
    assert_eq!(
        element_order(&fileinfo),
        [
            "fileDetails",
            "fileDetails/reportId",
            "fileDetails/fileId",
            "fileDetails/originalFileName",
            "fileDetails/fileViewedByEsp",
            "fileDetails/originalFileHash",
            "fileDetails/originalFileHash",
            "fileDetails/originalFileHash",
        ]
    );
    validate_against_cybertip_xsd(&fileinfo, "fileDetails XML");
    let hashes = text_at(&fp, "fileDetails/originalFileHash");
    assert!(hashes.contains(&hex::encode(md5::Md5::digest(&pen))));
    assert!(hashes.contains(&hex::encode(sha1::Sha1::digest(&pen))));
    let upload = calls.lock().unwrap()[1].1.clone();
    assert!(
        upload.windows(pen.len()).any(|w| w == pen.as_slice()),
        "the file bytes are uploaded"
    );
    let shown = c.get(&l, &format!("/console/cybertip/{tid}")).await.text();
    assert!(shown.contains("NCMEC report id 4242"));
    assert!(
        c.audit_actions()
            .await
            .iter()
            .any(|(who, a, d)| who == "console:lena"
                && a == "console.cybertip.view"
                && d.contains(&format!("\"item\":\"{item}\""))),
        "viewing a CyberTipline report is audited"
    );
    // A match keeps no file: its report names no account and carries the
    // upload's hashes in additionalInfo instead of a fileDetails.
    let mid = seed_match(&c, "known", 3, 0).await;
    let mitem = format!("match:{mid}");
    let resp = c
        .post(
            &r,
            "/console/decide",
            &[
                ("item", &mitem),
                ("decision", "confirm"),
                ("category", "csam"),
            ],
        )
        .await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.text());
    let resp = c.post(&l, "/console/cybertip", &[("item", &mitem)]).await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.text());
    let mxml: String = sqlx::query(&st.sql("SELECT xml FROM console_cybertips WHERE item = ?"))
        .bind(&mitem)
        .fetch_one(&st.pool)
        .await
        .unwrap()
        .try_get("xml")
        .unwrap();
    let mp = xml_paths(&mxml);
    assert!(text_at(&mp, "report/personOrUserReported/espIdentifier").is_empty());
    let pdq = format!("{:064x}", 1003);
    assert_eq!(
        text_at(&mp, "report/additionalInfo"),
        [format!(
            "Matched files not kept by the service, so not uploaded, with their hashes: match-{mid}-upload (PDQ {pdq})"
        )]
    );
    validate_against_cybertip_xsd(&mxml, "report XML of a match");
    // The evidence package: the file, its hashes and the audit trail.
    let e = c.get(&l, &format!("/console/export/report/{rid}")).await;
    assert_eq!(e.status, StatusCode::OK);
    let v: Value = serde_json::from_slice(&e.body).unwrap();
    let f = &v["files"][0];
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(f["content_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, pen);
    assert_eq!(f["sha256"], hex::encode(sha2::Sha256::digest(&pen)));
    let trail: Vec<&str> = v["audit_trail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert!(
        trail.contains(&"console.decide") && trail.contains(&"console.cybertip.build"),
        "{trail:?}"
    );
    assert_eq!(
        c.get(&r, &format!("/console/export/report/{rid}"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_failed_submission_is_reported_and_not_recorded_as_submitted() {
    let c = Console::open(false, |k| {
        k.cybertip_url = Some("http://127.0.0.1:9/".into())
    })
    .await
    .unwrap();
    c.bank("known").await;
    let rid = c.seed_report("alice", "bob", &image(PEN), "known").await;
    c.add("lena", ConsoleRole::Lead, false).await;
    let l = c.login("lena").await;
    let item = format!("report:{rid}");
    c.post(
        &l,
        "/console/decide",
        &[
            ("item", &item),
            ("decision", "confirm"),
            ("category", "csam"),
        ],
    )
    .await;
    let r = c.post(&l, "/console/cybertip", &[("item", &item)]).await;
    let tid = r.location().rsplit('/').next().unwrap().to_string();
    let r = c
        .post(&l, &format!("/console/cybertip/{tid}/submit"), &[])
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    let st = &c.service.state.store;
    let sub: Option<i64> = sqlx::query("SELECT submitted_at FROM console_cybertips")
        .fetch_one(&st.pool)
        .await
        .unwrap()
        .try_get("submitted_at")
        .unwrap();
    assert_eq!(sub, None);
}

#[tokio::test]
async fn escalations_go_to_leads_only() {
    let c = Console::open(false, no_tweak).await.unwrap();
    c.bank("known").await;
    let rid = c.seed_report("alice", "bob", &image(PEN), "known").await;
    c.add("rita", ConsoleRole::Reviewer, false).await;
    c.add("lena", ConsoleRole::Lead, false).await;
    let (r, l) = (c.login("rita").await, c.login("lena").await);
    let item = format!("report:{rid}");
    c.post(
        &r,
        "/console/decide",
        &[("item", &item), ("decision", "escalate")],
    )
    .await;
    let link = format!("/console/item/report/{rid}");
    assert!(
        !c.get(&r, "/console/queue?kind=report")
            .await
            .text()
            .contains(&link)
    );
    assert!(
        !c.get(&r, "/console/queue?kind=escalated")
            .await
            .text()
            .contains(&link)
    );
    assert!(
        c.get(&l, "/console/queue?kind=escalated")
            .await
            .text()
            .contains(&link)
    );
    // Only a lead decides an escalated item.
    let f = [("item", item.as_str()), ("decision", "dismiss")];
    assert_eq!(
        c.post(&r, "/console/decide", &f).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.post(&l, "/console/decide", &f).await.status,
        StatusCode::SEE_OTHER
    );
    assert!(
        !c.get(&l, "/console/queue?kind=escalated")
            .await
            .text()
            .contains(&link)
    );
}

#[test]
fn reviewer_passwords_are_argon2id_and_short_ones_are_refused() {
    let h = bulwark_server::console::accounts::hash_password("a long enough password").unwrap();
    assert!(h.starts_with("$argon2id$"), "{h}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = Console::open(false, no_tweak).await.unwrap();
        let st = &c.service.state;
        let e = bulwark_server::console::accounts::add_reviewer(
            &st.store,
            &st.kek,
            "x",
            ConsoleRole::Reviewer,
            "short",
            false,
        )
        .await;
        assert!(e.unwrap_err().to_string().contains("12 characters"));
    });
}

/// `(width, height, duration)` of a video by ffprobe, run here independently.
fn probe(file: &[u8]) -> (u32, u32, f64) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v.mp4");
    std::fs::write(&p, file).unwrap();
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height:format=duration",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(&p)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap()
            .to_string()
    };
    (
        get("width").parse().unwrap(),
        get("height").parse().unwrap(),
        get("duration").parse().unwrap(),
    )
}

fn png_size(png: &[u8]) -> (u32, u32) {
    let img = bulwark_pdq::decode(png, &bulwark_pdq::Limits::default()).unwrap();
    assert_eq!(img.channels, 1, "frames are grey");
    (img.width, img.height)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn videos_are_a_blurred_strip_of_frames_revealed_one_at_a_time_within_budget() {
    if !ffmpeg_available() {
        return;
    }
    let c = Console::open(false, |k| {
        k.daily_reveal_budget = 2;
        k.video_frames = 4;
    })
    .await
    .unwrap();
    c.bank("known").await;
    let clip = video("doorknob-hd-no-bar.mp4");
    let (w, h, dur) = probe(&clip);
    let hashes = serde_json::json!({"kind": "video", "frames": 5,
        "md5": hex::encode(md5::Md5::digest(&clip)), "sha256": hex::encode(sha2::Sha256::digest(&clip))});
    let rid = c
        .seed_report_file("alice", "bob", &clip, "video/mp4", hashes, "known")
        .await;
    c.add("rita", ConsoleRole::Reviewer, false).await;
    let s = c.login("rita").await;
    let html = c
        .get(&s, &format!("/console/item/report/{rid}"))
        .await
        .text();
    // Nothing that plays; four frames, blurred, each with its own reveal button.
    assert!(!html.contains("<video") && !html.contains("autoplay") && !html.contains("<audio"));
    for k in 0..4 {
        // The middle of each quarter of the video.
        let at = dur * (2.0 * k as f64 + 1.0) / 8.0;
        let label = format!(
            "frame {} of 4, at {at:.1} s, of video attachment 0 of message 0",
            k + 1
        );
        assert!(
            html.contains(&format!("alt=\"Blurred: {label}\"")),
            "{label}\n{html}"
        );
        assert!(html.contains(&format!("aria-label=\"Reveal {label}\"")));
        let t = c
            .get(&s, &format!("/console/media/report/{rid}/0-0.f{k}"))
            .await;
        assert_eq!(t.status, StatusCode::OK);
        let (tw, th) = png_size(&t.body);
        assert!(tw.max(th) <= 16, "unrevealed frame {tw}×{th}");
    }
    assert_eq!(
        c.get(&s, &format!("/console/media/report/{rid}/0-0.f4"))
            .await
            .status,
        StatusCode::NOT_FOUND,
        "four frames, no more"
    );
    // Reveal two frames: each counts against the budget of two.
    let item = format!("report:{rid}");
    for k in 0..2 {
        let r = c
            .post(
                &s,
                "/console/reveal",
                &[("item", &item), ("media", &format!("0-0.f{k}"))],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
        let (tw, th) = png_size(
            &c.get(&s, &format!("/console/media/report/{rid}/0-0.f{k}"))
                .await
                .body,
        );
        // At most 320 px, the video's aspect ratio.
        assert_eq!(tw.max(th), 320);
        let want = f64::from(w) / f64::from(h);
        assert!(
            (f64::from(tw) / f64::from(th) - want).abs() < 0.02,
            "{tw}×{th} for {w}×{h}"
        );
    }
    let r = c
        .post(
            &s,
            "/console/reveal",
            &[("item", &item), ("media", "0-0.f2")],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let (tw, th) = png_size(
        &c.get(&s, &format!("/console/media/report/{rid}/0-0.f2"))
            .await
            .body,
    );
    assert!(tw.max(th) <= 16, "over budget, the frame stays blurred");
    let page = c
        .get(&s, &format!("/console/item/report/{rid}"))
        .await
        .text();
    assert_eq!(page.matches("thumb revealed").count(), 2);
    let a = c.audit_actions().await;
    assert!(
        a.iter()
            .any(|x| x.1 == "console.reveal" && x.2.contains("0-0.f1"))
    );

    // A matched video upload: the strip is kept with the match (the file is not).
    let st = &c.service.state.store;
    let (s2, j) = c.upload("/v1/banks/known/content", &clip).await;
    assert_eq!(s2, StatusCode::CREATED, "{j}");
    crate::support::set_review_policy(st, "known", Some(31)).await;
    let (s2, m) = c.upload("/v1/match", &clip).await;
    assert_eq!(s2, StatusCode::OK, "{m}");
    let mid: i64 = sqlx::query("SELECT MIN(id) AS id FROM console_matches")
        .fetch_one(&st.pool)
        .await
        .unwrap()
        .try_get("id")
        .unwrap();
    let page = c
        .get(&s, &format!("/console/item/match/{mid}"))
        .await
        .text();
    assert_eq!(page.matches("alt=\"Blurred: frame ").count(), 4, "{page}");
    assert!(!page.contains("<video"));
}

#[tokio::test]
async fn a_video_that_ffmpeg_cannot_decode_says_so_instead_of_a_strip() {
    if !ffmpeg_available() {
        return;
    }
    let c = Console::open(false, no_tweak).await.unwrap();
    c.bank("known").await;
    // An MP4 header and nothing else: sniffed as a video, not decodable.
    let mut junk = vec![0, 0, 0, 0x18];
    junk.extend_from_slice(b"ftypmp42");
    junk.extend_from_slice(&[0; 64]);
    let rid = c
        .seed_report_file(
            "alice",
            "bob",
            &junk,
            "video/mp4",
            serde_json::json!({"kind": "video"}),
            "known",
        )
        .await;
    c.add("rita", ConsoleRole::Reviewer, false).await;
    let s = c.login("rita").await;
    let html = c
        .get(&s, &format!("/console/item/report/{rid}"))
        .await
        .text();
    assert!(
        html.contains("video attachment 0 of message 0: no frames: "),
        "{html}"
    );
    assert!(!html.contains("class=\"thumb\""));
}

/// A recorded match, as the match path writes it, queued `hours_ago`.
async fn seed_match(c: &Console, bank: &str, distance: i64, hours_ago: i64) -> i64 {
    let st = &c.service.state.store;
    sqlx::query(&st.sql(
        "INSERT INTO console_matches (at, actor, bank, content_id, signal_type, distance, pdq) \
         VALUES (?, 'key1', ?, 1, 'pdq', ?, ?) RETURNING id",
    ))
    .bind(bulwark_server::db::now_ms() - hours_ago * 3_600_000)
    .bind(bank)
    .bind(distance)
    .bind(format!("{:064x}", 1000 + distance + hours_ago * 1000))
    .fetch_one(&st.pool)
    .await
    .unwrap()
    .try_get("id")
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_false_positives_per_bank_and_threshold_and_time_to_decision() {
    on_both(no_tweak, |c| async move {
        c.bank("known").await;
        c.bank("other").await;
        // Five matches: (bank, distance, hours waiting) and what is decided.
        let m1 = seed_match(&c, "known", 0, 1).await; // confirm
        let m2 = seed_match(&c, "known", 8, 3).await; // dismiss
        let m3 = seed_match(&c, "known", 25, 5).await; // dismiss
        let m4 = seed_match(&c, "other", 15, 2).await; // confirm
        let _m5 = seed_match(&c, "other", 30, 7).await; // left in the queue
        c.add("rita", ConsoleRole::Reviewer, false).await;
        let s = c.login("rita").await;
        for (id, d) in [
            (m1, "confirm"),
            (m2, "dismiss"),
            (m3, "dismiss"),
            (m4, "confirm"),
        ] {
            let item = format!("match:{id}");
            let mut f = vec![("item", item.as_str()), ("decision", d)];
            if d == "confirm" {
                f.push(("category", "csam"));
            }
            let r = c.post(&s, "/console/decide", &f).await;
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
        }
        let d = c.get(&s, "/console").await.text();
        // Per bank: known 1 confirmed, 2 dismissed = 67 %; other 1, 0 = 0 %.
        assert!(
            d.contains("<td>known</td><td>1</td><td>2</td><td>67 %</td>"),
            "{d}"
        );
        assert!(
            d.contains("<td>other</td><td>1</td><td>0</td><td>0 %</td>"),
            "{d}"
        );
        // Per threshold band, and cumulatively (a policy of at most that distance):
        // 0: 1c → 0 %, 0 %; 1–10: 1d → 100 %, 1/2 = 50 %; 11–20: 1c → 0 %, 1/3 = 33 %;
        // 21–31: 1d → 100 %, 2/4 = 50 %; 32+: none.
        for row in [
            "<td>0</td><td>1</td><td>0</td><td>0 %</td><td>0 %</td>",
            "<td>1–10</td><td>0</td><td>1</td><td>100 %</td><td>50 %</td>",
            "<td>11–20</td><td>1</td><td>0</td><td>0 %</td><td>33 %</td>",
            "<td>21–31</td><td>0</td><td>1</td><td>100 %</td><td>50 %</td>",
            "<td>32+</td><td>0</td><td>0</td><td>–</td><td>50 %</td>",
        ] {
            assert!(d.contains(row), "no {row} in\n{d}");
        }
        // Waits of 1, 3, 5 and 2 hours: the median (the upper middle) is 3 h.
        assert!(
            d.contains("Median time to decision (last 14 days): 3 h over 4 decisions"),
            "{d}"
        );
        // One match left, waiting 7 hours.
        let card = d.split("id=\"card-match\"").nth(1).unwrap();
        let card = &card[..card.find("</a>").unwrap()];
        assert!(card.contains("<span class=\"big\">1</span>"), "{card}");
        assert!(card.contains("oldest 7 h"), "{card}");
        // Decisions per day: four, on the day they were made.
        let st = &c.service.state.store;
        let at: i64 = sqlx::query("SELECT MAX(at) AS at FROM console_decisions")
            .fetch_one(&st.pool)
            .await
            .unwrap()
            .try_get("at")
            .unwrap();
        let day = &bulwark_server::db::rfc3339(at)[..10];
        assert!(
            d.contains(&format!("aria-label=\"4 decisions on {day}\"")),
            "{d}"
        );
        assert!(
            c.audit_actions()
                .await
                .iter()
                .any(|(_, a, _)| a == "console.dashboard.view"),
            "viewing the dashboard is audited"
        );
        c
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_are_read_a_page_at_a_time_and_next_walks_them() {
    on_both(no_tweak, |c| async move {
        c.bank("known").await;
        let mut ids = Vec::new();
        for _ in 0..53 {
            ids.push(seed_match(&c, "known", 3, 0).await);
        }
        c.add("rita", ConsoleRole::Reviewer, false).await;
        let s = c.login("rita").await;
        let link = |id: i64| format!("href=\"/console/item/match/{id}\"");
        let p1 = c.get(&s, "/console/queue?kind=match").await.text();
        assert!(p1.contains("Upload and API matches (53)"), "{p1}");
        assert_eq!(p1.matches("class=\"item-link\"").count(), 50);
        assert!(p1.contains(&link(ids[0])) && p1.contains(&link(ids[49])));
        assert!(!p1.contains(&link(ids[50])));
        let needle = "id=\"next-page\" href=\"";
        let at = p1.find(needle).unwrap() + needle.len();
        let next = p1[at..at + p1[at..].find('"').unwrap()].replace("&amp;", "&");
        let p2 = c.get(&s, &next).await.text();
        assert_eq!(p2.matches("class=\"item-link\"").count(), 3, "{p2}");
        assert!(p2.contains(&link(ids[50])) && p2.contains(&link(ids[52])));
        assert!(!p2.contains("id=\"next-page\""));
        // Hidden and decided items leave the pages; "next" walks in queue order.
        c.post(
            &s,
            "/console/hide",
            &[("item", &format!("match:{}", ids[1]))],
        )
        .await;
        let r = c
            .get(
                &s,
                &format!("/console/next?kind=match&after=match:{}", ids[0]),
            )
            .await;
        assert_eq!(r.location(), format!("/console/item/match/{}", ids[2]));
        let r = c
            .post(
                &s,
                "/console/decide",
                &[
                    ("item", &format!("match:{}", ids[52])),
                    ("decision", "dismiss"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
        // After the last one, back to the first open item.
        let r = c.get(&s, &r.location()).await;
        assert_eq!(r.location(), format!("/console/item/match/{}", ids[0]));
        let p1 = c.get(&s, "/console/queue?kind=match").await.text();
        assert!(p1.contains("Upload and API matches (51)"), "{p1}");
        c
    })
    .await;
}

async fn decide_match(c: &Console, s: &Session, id: i64, d: &str) {
    let item = format!("match:{id}");
    let mut f = vec![("item", item.as_str()), ("decision", d)];
    if d == "confirm" {
        f.push(("category", "csam"));
    }
    let resp = c.post(s, "/console/decide", &f).await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decided_items_never_appear_and_next_skips_to_the_right_item() {
    on_both(no_tweak, |c| async move {
        c.bank("known").await;
        let mut ids = Vec::new();
        for _ in 0..60 {
            ids.push(seed_match(&c, "known", 3, 0).await);
        }
        c.add("rita", ConsoleRole::Reviewer, false).await;
        c.add("lena", ConsoleRole::Lead, false).await;
        let (r, l) = (c.login("rita").await, c.login("lena").await);
        // The oldest 55 are decided (more than a page), the 57th escalated.
        for (n, id) in ids[..55].iter().enumerate() {
            decide_match(&c, &r, *id, if n % 2 == 0 { "dismiss" } else { "confirm" }).await;
        }
        decide_match(&c, &r, ids[56], "escalate").await;
        let open = [ids[55], ids[57], ids[58], ids[59]];
        let link = |id: i64| format!("href=\"/console/item/match/{id}\"");
        let p = c.get(&r, "/console/queue?kind=match").await.text();
        assert!(p.contains("Upload and API matches (4)"), "{p}");
        assert_eq!(p.matches("class=\"item-link\"").count(), 4, "{p}");
        for id in open {
            assert!(p.contains(&link(id)), "{id} missing in {p}");
        }
        for id in ids[..55].iter().chain([&ids[56]]) {
            assert!(!p.contains(&link(*id)), "decided {id} shown");
        }
        // What a page reads holds the open items only: decided ones are not
        // there to step over.
        let st = &c.service.state.store;
        let mut rows: Vec<String> = sqlx::query(&st.sql(
            "SELECT item FROM console_open WHERE queue = 'match' ORDER BY n",
        ))
        .fetch_all(&st.pool)
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get("item").unwrap())
        .collect();
        assert_eq!(
            rows,
            open.iter().map(|i| format!("match:{i}")).collect::<Vec<_>>()
        );
        rows = sqlx::query(&st.sql("SELECT item FROM console_open WHERE queue = 'escalated'"))
            .fetch_all(&st.pool)
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get("item").unwrap())
            .collect();
        assert_eq!(rows, [format!("match:{}", ids[56])]);
        if st.backend == bulwark_server::db::Backend::Sqlite {
            // The page query is a search of the open items' index, not a scan.
            for after in [false, true] {
                let sql = format!(
                    "EXPLAIN QUERY PLAN {}",
                    bulwark_server::console::items::open_page_sql(after)
                );
                let mut q = sqlx::query(&sql).bind("match").bind(1_i64);
                if after {
                    q = q.bind(0_i64).bind("");
                }
                let plan: Vec<String> = q
                    .bind(51_i64)
                    .fetch_all(&st.pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|row| row.try_get::<String, _>("detail").unwrap())
                    .collect();
                assert!(
                    plan.iter().any(|d| d.contains("console_open")
                        && d.starts_with("SEARCH")
                        && d.contains("INDEX console_open_queue")),
                    "{plan:?}"
                );
                assert!(!plan.iter().any(|d| d.starts_with("SCAN")), "{plan:?}");
            }
        } else {
            // PostgreSQL: the query can be answered by walking the index in
            // its order with no sort (what the planner does on a large table;
            // with four rows it prefers a scan, so the alternatives are off).
            let mut conn = st.pool.acquire().await.unwrap();
            for off in ["enable_seqscan", "enable_bitmapscan", "enable_sort"] {
                sqlx::query(&format!("SET {off} = off"))
                    .execute(&mut *conn)
                    .await
                    .unwrap();
            }
            for after in [false, true] {
                let raw = format!(
                    "EXPLAIN {}",
                    bulwark_server::console::items::open_page_sql(after)
                );
                let sql = st.sql(&raw);
                let mut q = sqlx::query(&sql).bind("match").bind(1_i64);
                if after {
                    q = q.bind(0_i64).bind("");
                }
                let plan: Vec<String> = q
                    .bind(51_i64)
                    .fetch_all(&mut *conn)
                    .await
                    .unwrap()
                    .iter()
                    .map(|row| row.try_get::<String, _>(0).unwrap())
                    .collect();
                assert!(
                    plan.iter()
                        .any(|d| d.contains("Index Scan using console_open_queue")),
                    "{plan:?}"
                );
                assert!(
                    !plan.iter().any(|d| d.contains("Seq Scan") || d.contains("Sort")),
                    "{plan:?}"
                );
            }
            sqlx::query("RESET ALL").execute(&mut *conn).await.unwrap();
        }
        // "next" after a decided item goes to the first open one after it;
        // it skips the escalated one; after the last it starts over.
        let next = |after: i64| format!("/console/next?kind=match&after=match:{after}");
        let item = |id: i64| format!("/console/item/match/{id}");
        assert_eq!(c.get(&r, &next(ids[0])).await.location(), item(ids[55]));
        assert_eq!(c.get(&r, &next(ids[54])).await.location(), item(ids[55]));
        assert_eq!(c.get(&r, &next(ids[55])).await.location(), item(ids[57]));
        assert_eq!(c.get(&r, &next(ids[56])).await.location(), item(ids[57]));
        assert_eq!(c.get(&r, &next(ids[59])).await.location(), item(ids[55]));
        // Deciding one moves on to the next open one.
        let resp = c
            .post(
                &r,
                "/console/decide",
                &[("item", &format!("match:{}", ids[57])), ("decision", "dismiss")],
            )
            .await;
        assert_eq!(c.get(&r, &resp.location()).await.location(), item(ids[58]));
        // A decided item cannot be decided again.
        let resp = c
            .post(
                &r,
                "/console/decide",
                &[("item", &format!("match:{}", ids[3])), ("decision", "dismiss")],
            )
            .await;
        assert_eq!(resp.status, StatusCode::CONFLICT);
        // The escalated item: a lead's queue only, and gone once decided.
        let p = c.get(&l, "/console/queue?kind=escalated").await.text();
        assert!(p.contains(&link(ids[56])), "{p}");
        let resp = c
            .post(
                &l,
                "/console/decide",
                &[("item", &format!("match:{}", ids[56])), ("decision", "dismiss")],
            )
            .await;
        assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.text());
        let p = c.get(&l, "/console/queue?kind=escalated").await.text();
        assert!(p.contains("Nothing is waiting here."), "{p}");
        // A cleared account that is flagged again is back in its queue and
        // can be decided again.
        c.seed_account("acct-7", "known").await;
        let resp = c
            .post(
                &l,
                "/console/decide",
                &[("item", "account:acct-7"), ("decision", "clear")],
            )
            .await;
        assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.text());
        let p = c.get(&l, "/console/queue?kind=account").await.text();
        assert!(!p.contains("acct-7"), "{p}");
        // The flag upsert of the voucher path (api/vouchers.rs).
        sqlx::query(&st.sql(
            "INSERT INTO psi_accounts (account, state, flagged, updated_at, flagged_at) VALUES (?, ?, 1, ?, ?) \
             ON CONFLICT (account) DO UPDATE SET flagged = 1, updated_at = excluded.updated_at, \
             flagged_at = COALESCE(psi_accounts.flagged_at, excluded.flagged_at)",
        ))
        .bind("acct-7")
        .bind(Vec::<u8>::new())
        .bind(bulwark_server::db::now_ms())
        .bind(bulwark_server::db::now_ms())
        .execute(&st.pool)
        .await
        .unwrap();
        let p = c.get(&l, "/console/queue?kind=account").await.text();
        assert!(p.contains("href=\"/console/item/account/acct-7\""), "{p}");
        let resp = c
            .post(
                &l,
                "/console/decide",
                &[("item", "account:acct-7"), ("decision", "dismiss")],
            )
            .await;
        assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.text());
        let p = c.get(&l, "/console/queue?kind=account").await.text();
        assert!(!p.contains("acct-7"), "{p}");
        // Dismissed, it is still flagged: a lead can still clear it (the one
        // way to unflag), a reviewer cannot, and it cannot be dismissed again.
        let resp = c
            .post(
                &l,
                "/console/decide",
                &[("item", "account:acct-7"), ("decision", "dismiss")],
            )
            .await;
        assert_eq!(resp.status, StatusCode::CONFLICT);
        let resp = c
            .post(
                &r,
                "/console/decide",
                &[("item", "account:acct-7"), ("decision", "clear")],
            )
            .await;
        assert_eq!(resp.status, StatusCode::FORBIDDEN);
        let resp = c
            .post(
                &l,
                "/console/decide",
                &[("item", "account:acct-7"), ("decision", "clear")],
            )
            .await;
        assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.text());
        let flagged: i64 = sqlx::query(&st.sql("SELECT flagged FROM psi_accounts WHERE account = ?"))
            .bind("acct-7")
            .fetch_one(&st.pool)
            .await
            .unwrap()
            .try_get("flagged")
            .unwrap();
        assert_eq!(flagged, 0);
        c
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_manage_reviewers_and_policies_and_others_are_refused() {
    on_both(
        |k| k.max_failed_logins = 2,
        |c| async move {
            c.bank("known").await;
            c.add("ada", ConsoleRole::Admin, false).await;
            c.add("lena", ConsoleRole::Lead, false).await;
            c.add("rita", ConsoleRole::Reviewer, false).await;
            let (a, l, r) = (
                c.login("ada").await,
                c.login("lena").await,
                c.login("rita").await,
            );
            // Reviewers and leads: no page, no changes, no link.
            for s in [&r, &l] {
                assert_eq!(
                    c.get(s, "/console/admin").await.status,
                    StatusCode::FORBIDDEN
                );
                let p = c
                    .post(
                        s,
                        "/console/admin/reviewer",
                        &[("action", "role"), ("name", "rita"), ("role", "admin")],
                    )
                    .await;
                assert_eq!(p.status, StatusCode::FORBIDDEN);
                let p = c
                    .post(
                        s,
                        "/console/policy",
                        &[("bank", "known"), ("max_distance", "31")],
                    )
                    .await;
                assert_eq!(p.status, StatusCode::FORBIDDEN);
                assert!(
                    !c.get(s, "/console")
                        .await
                        .text()
                        .contains("href=\"/console/admin\"")
                );
            }
            let page = c.get(&a, "/console/admin").await;
            assert_eq!(page.status, StatusCode::OK);
            let html = page.text();
            assert!(html.contains("id=\"reviewer-rita\"") && html.contains("id=\"policy-known\""));
            // Without the CSRF token: refused even for an admin.
            let p = c
                .request(
                    Method::POST,
                    "/console/admin/reviewer",
                    Some(&a.cookie),
                    Some(&[("action", "disable"), ("name", "rita")]),
                )
                .await;
            assert_eq!(p.status, StatusCode::FORBIDDEN);
            // Add a reviewer (with TOTP: the secret is shown once); they can sign in.
            let p = c
                .post(
                    &a,
                    "/console/admin/reviewer",
                    &[
                        ("action", "add"),
                        ("name", "nina"),
                        ("role", "reviewer"),
                        ("password", PASSWORD),
                    ],
                )
                .await;
            assert_eq!(p.status, StatusCode::OK, "{}", p.text());
            assert!(p.text().contains("Added nina"));
            assert!(!p.text().contains("id=\"totp-secret\""));
            c.login("nina").await;
            let p = c
                .post(
                    &a,
                    "/console/admin/reviewer",
                    &[
                        ("action", "add"),
                        ("name", "tom"),
                        ("role", "lead"),
                        ("password", PASSWORD),
                        ("totp", "1"),
                    ],
                )
                .await;
            assert!(p.text().contains("id=\"totp-secret\""), "{}", p.text());
            // Enrolled: the password alone no longer signs tom in.
            assert_eq!(
                c.try_login("tom", PASSWORD, "").await.status,
                StatusCode::UNAUTHORIZED
            );
            assert!(
                !c.get(&a, "/console/admin")
                    .await
                    .text()
                    .contains("id=\"totp-secret\"")
            );
            let p = c
                .post(
                    &a,
                    "/console/admin/reviewer",
                    &[
                        ("action", "add"),
                        ("name", "short"),
                        ("role", "reviewer"),
                        ("password", "short"),
                    ],
                )
                .await;
            assert_eq!(p.status, StatusCode::BAD_REQUEST);
            // Promote rita to lead: she sees the escalated queue now.
            let p = c
                .post(
                    &a,
                    "/console/admin/reviewer",
                    &[("action", "role"), ("name", "rita"), ("role", "lead")],
                )
                .await;
            assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text());
            assert_eq!(c.get(&r, "/console/webhooks").await.status, StatusCode::OK);
            // Lock lena out, then reset the lockout.
            for _ in 0..2 {
                c.try_login("lena", "wrong password!!", "").await;
            }
            assert_eq!(
                c.try_login("lena", PASSWORD, "").await.status,
                StatusCode::UNAUTHORIZED
            );
            assert!(
                c.get(&a, "/console/admin")
                    .await
                    .text()
                    .contains("id=\"unlock-lena\"")
            );
            let p = c
                .post(
                    &a,
                    "/console/admin/reviewer",
                    &[("action", "unlock"), ("name", "lena")],
                )
                .await;
            assert_eq!(p.status, StatusCode::SEE_OTHER);
            c.login("lena").await;
            // Disable rita: her session ends and she cannot sign in; enable again.
            let p = c
                .post(
                    &a,
                    "/console/admin/reviewer",
                    &[("action", "disable"), ("name", "rita")],
                )
                .await;
            assert_eq!(p.status, StatusCode::SEE_OTHER);
            assert_eq!(c.get(&r, "/console").await.location(), "/console/login");
            assert_eq!(
                c.try_login("rita", PASSWORD, "").await.status,
                StatusCode::UNAUTHORIZED
            );
            c.post(
                &a,
                "/console/admin/reviewer",
                &[("action", "enable"), ("name", "rita")],
            )
            .await;
            c.login("rita").await;
            // An admin cannot demote or disable themselves.
            let p = c
                .post(
                    &a,
                    "/console/admin/reviewer",
                    &[("action", "disable"), ("name", "ada")],
                )
                .await;
            assert_eq!(p.status, StatusCode::CONFLICT);
            // Policies: set, shown, removed; an unknown bank is refused.
            let p = c
                .post(
                    &a,
                    "/console/policy",
                    &[("bank", "known"), ("max_distance", "12")],
                )
                .await;
            assert_eq!(p.status, StatusCode::SEE_OTHER);
            assert!(
                c.get(&a, "/console/admin")
                    .await
                    .text()
                    .contains("value=\"12\"")
            );
            let st = &c.service.state.store;
            let n: i64 =
                sqlx::query("SELECT max_distance FROM console_policy WHERE bank = 'known'")
                    .fetch_one(&st.pool)
                    .await
                    .unwrap()
                    .try_get("max_distance")
                    .unwrap();
            assert_eq!(n, 12);
            let p = c
                .post(
                    &a,
                    "/console/policy",
                    &[("bank", "nope"), ("max_distance", "3")],
                )
                .await;
            assert_eq!(p.status, StatusCode::NOT_FOUND);
            assert!(p.text().contains("No bank named"), "{}", p.text());
            for bad in ["257", "twelve"] {
                let p = c
                    .post(
                        &a,
                        "/console/policy",
                        &[("bank", "known"), ("max_distance", bad)],
                    )
                    .await;
                assert_eq!(p.status, StatusCode::BAD_REQUEST, "{bad}");
            }
            assert!(
                c.get(&a, "/console/admin")
                    .await
                    .text()
                    .contains("value=\"12\""),
                "a refused change leaves the policy as it was"
            );
            // Every change is audited as the admin.
            let audit = c.audit_actions().await;
            for want in [
                "console.admin.view",
                "console.reviewer.add",
                "console.reviewer.role",
                "console.reviewer.unlock",
                "console.reviewer.disable",
                "console.reviewer.enable",
                "console.policy",
            ] {
                assert!(
                    audit.iter().any(|x| x.0 == "console:ada" && x.1 == want),
                    "no {want} by console:ada"
                );
            }
            c
        },
    )
    .await;
}

/// A local HTTPS server with a certificate of the test CA
/// (`console_fixtures/tls`); records each request's path and body.
async fn tls_server() -> (String, Calls) {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/server/console_fixtures/tls");
    let cert =
        rustls::pki_types::CertificateDer::from(std::fs::read(dir.join("server.der")).unwrap());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        std::fs::read(dir.join("server.key.der")).unwrap(),
    ));
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let seen: Calls = Arc::default();
    let app = axum::Router::new().fallback({
        let seen = seen.clone();
        move |uri: axum::http::Uri, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push((uri.path().to_string(), body.to_vec()));
                let x = match uri.path() {
                    "/ispws/submit" => "<reportResponse><responseCode>0</responseCode><reportId>77</reportId></reportResponse>",
                    "/ispws/upload" => "<reportResponse><responseCode>0</responseCode><reportId>77</reportId><fileId>f-9</fileId></reportResponse>",
                    "/ispws/fileinfo" | "/ispws/finish" => "<reportResponse><responseCode>0</responseCode><reportId>77</reportId></reportResponse>",
                    _ => "",
                };
                (StatusCode::OK, x)
            }
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                // A client that does not trust the certificate hangs up here.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (format!("https://127.0.0.1:{port}"), seen)
}

async fn webhook_status(c: &Console) -> (String, Option<String>) {
    let st = &c.service.state.store;
    let mut out = (String::new(), None);
    for _ in 0..300 {
        let r = sqlx::query("SELECT status, last_error FROM console_webhooks")
            .fetch_one(&st.pool)
            .await
            .unwrap();
        out = (
            r.try_get("status").unwrap(),
            r.try_get("last_error").unwrap(),
        );
        if out.0 != "pending" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_and_cybertipline_speak_https_to_a_private_ca() {
    let (base, seen) = tls_server().await;
    let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/server/console_fixtures/tls/ca.pem");
    // Without the CA as an extra root, the certificate is not trusted.
    let untrusted = Console::open(false, {
        let base = base.clone();
        move |k| {
            k.webhook_url = Some(format!("{base}/hook"));
            k.webhook_secret = Some(String::from("s").into());
            k.webhook_backoff_ms = 5;
            k.webhook_max_attempts = 1;
        }
    })
    .await
    .unwrap();
    untrusted.bank("known").await;
    let rid = untrusted
        .seed_report("alice", "bob", &image(PEN), "known")
        .await;
    untrusted.add("rita", ConsoleRole::Reviewer, false).await;
    let s = untrusted.login("rita").await;
    untrusted
        .post(
            &s,
            "/console/decide",
            &[("item", &format!("report:{rid}")), ("decision", "dismiss")],
        )
        .await;
    let (status, err) = webhook_status(&untrusted).await;
    assert_eq!(status, "failed");
    let err = err.unwrap_or_default().to_lowercase();
    assert!(
        err.contains("certificate") || err.contains("unknownissuer"),
        "{err}"
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the server"
    );

    // With it: the webhook and the CyberTipline submission go over TLS.
    let c = Console::open(false, {
        let (base, ca) = (base.clone(), ca.clone());
        move |k| {
            k.webhook_url = Some(format!("{base}/hook"));
            k.webhook_secret = Some(String::from("s").into());
            k.webhook_backoff_ms = 5;
            k.webhook_max_attempts = 1;
            k.cybertip_url = Some(format!("{base}/ispws"));
            k.tls_extra_roots = Some(ca);
        }
    })
    .await
    .unwrap();
    c.bank("known").await;
    let rid = c.seed_report("alice", "bob", &image(PEN), "known").await;
    c.add("lena", ConsoleRole::Lead, false).await;
    let l = c.login("lena").await;
    let item = format!("report:{rid}");
    c.post(
        &l,
        "/console/decide",
        &[
            ("item", &item),
            ("decision", "confirm"),
            ("category", "csam"),
        ],
    )
    .await;
    assert_eq!(webhook_status(&c).await.0, "delivered");
    let r = c.post(&l, "/console/cybertip", &[("item", &item)]).await;
    let tid = r.location().rsplit('/').next().unwrap().to_string();
    let r = c
        .post(&l, &format!("/console/cybertip/{tid}/submit"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let paths: Vec<String> = seen.lock().unwrap().iter().map(|x| x.0.clone()).collect();
    assert_eq!(
        paths,
        [
            "/hook",
            "/ispws/submit",
            "/ispws/upload",
            "/ispws/fileinfo",
            "/ispws/finish"
        ]
    );
    let hook: Value = serde_json::from_slice(&seen.lock().unwrap()[0].1).unwrap();
    assert_eq!(hook["decision"], "confirm");

    // A file that holds no certificate is a clear error, not a silent fallback.
    let bad = c.dir.path().join("not-a-cert.pem");
    std::fs::write(&bad, "hello").unwrap();
    let cfg = bulwark_server::console::ConsoleConfig {
        tls_extra_roots: Some(bad),
        ..Default::default()
    };
    let e = bulwark_server::console::actions::client(&cfg, std::time::Duration::from_secs(1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("tls_extra_roots"), "{e}");
}

#[test]
fn frames_without_ffmpeg_are_a_clear_tool_missing_error() {
    let mut o = bulwark_vpdq::Options::default();
    o.ffprobe = "/nonexistent/bulwark-test/ffprobe".into();
    o.ffmpeg = "/nonexistent/bulwark-test/ffmpeg".into();
    let mut mp4 = vec![0, 0, 0, 0x18];
    mp4.extend_from_slice(b"ftypmp42");
    match bulwark_server::console::video::sample_frames(&mp4, &o, 4, 320) {
        Err(bulwark_vpdq::Error::ToolMissing { tool, .. }) => {
            assert!(tool.contains("/nonexistent/"), "{tool}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("frames without ffmpeg"),
    }
}
