//! The reviewer console over HTTP (in-process): sign-in security, queues,
//! safe viewing, decisions and their effects, webhooks, CyberTipline export,
//! on SQLite and (when it is there) PostgreSQL.

#![allow(clippy::unwrap_used)]

mod console_fixtures;
mod support;

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
    bulwark_server::console::items::set_review_policy(st, "other", Some(31))
        .await
        .unwrap();
    upload(bridge.clone()).await;
    assert_eq!(count().await, 0);
    bulwark_server::console::items::set_review_policy(st, "known", Some(10))
        .await
        .unwrap();
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
        k.webhook_secret = Some("whsec-test".into());
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
        k.webhook_secret = Some("s".into());
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
    assert_eq!(
        text_at(&p, "report/personOrUserReported/espIdentifier"),
        [sender]
    );
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
