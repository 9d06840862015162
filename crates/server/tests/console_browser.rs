//! The reviewer console in a real browser: headless Chromium driven through
//! chromedriver (WebDriver, via fantoccini): sign in, a queue, an item shown
//! blurred, reveal, decide by keyboard, build the CyberTipline report, export
//! the evidence package. Skips (with a message) without chromedriver unless
//! `BULWARK_TEST_REQUIRE_ALL=1`. With `BULWARK_UPDATE_SCREENSHOTS=1` the
//! screenshots of the main views are written to docs/console/.

#![allow(clippy::unwrap_used)]

mod console_fixtures;
mod support;

use std::path::PathBuf;
use std::time::Duration;

use bulwark_server::console::accounts::ConsoleRole;
use console_fixtures::*;
use fantoccini::{ClientBuilder, Locator};
use serde_json::json;
use sqlx::Row;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_in_a_real_browser() {
    if !std::path::Path::new(CHROMEDRIVER).exists() || !std::path::Path::new(CHROMIUM).exists() {
        assert!(
            std::env::var("BULWARK_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
            "chromedriver/chromium are required (BULWARK_TEST_REQUIRE_ALL=1) but {CHROMEDRIVER} or {CHROMIUM} is missing"
        );
        eprintln!("skipping the browser test: {CHROMEDRIVER} or {CHROMIUM} is not installed");
        return;
    }
    // The service, listening on a real port (plain HTTP on localhost: no Secure cookies).
    let c = Console::open(false, |k| k.secure_cookies = false)
        .await
        .unwrap();
    c.bank("known").await;
    let rid = c.seed_report("alice", "bob", &image(BRIDGE), "known").await;
    c.seed_account("mallory", "known").await;
    c.add("lena", ConsoleRole::Lead, false).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = c.service.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let port = free_port();
    let _driver = Driver(
        std::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": CHROMIUM, "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--no-first-run", "--window-size=1280,1000",
            format!("--user-data-dir={}", profile.path().display()),
        ]}),
    );
    let mut client = None;
    for _ in 0..100 {
        let conn = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(conn)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(cl) => {
                client = Some(cl);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let b = client.expect("chromedriver did not start a session");
    let shots = std::env::var("BULWARK_UPDATE_SCREENSHOTS").as_deref() == Ok("1");
    let shot_dir = if shots {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/console")
    } else {
        c.dir.path().join("shots")
    };
    std::fs::create_dir_all(&shot_dir).unwrap();
    let shot = |name: &'static str| {
        let b = b.clone();
        let p = shot_dir.join(name);
        async move {
            let png = b.screenshot().await.unwrap();
            assert!(png.starts_with(b"\x89PNG"));
            std::fs::write(p, png).unwrap();
        }
    };

    // Sign in.
    b.goto(&format!("{base}/console/login")).await.unwrap();
    shot("login.png").await;
    b.find(Locator::Css("#name"))
        .await
        .unwrap()
        .send_keys("lena")
        .await
        .unwrap();
    b.find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    b.find(Locator::Css("#signin"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // A click that submits a form returns before the next page has loaded:
    // wait for an element of that page before looking at it.
    b.wait()
        .for_element(Locator::Css(".item-link"))
        .await
        .unwrap();
    let url = b.current_url().await.unwrap();
    assert!(url.path().starts_with("/console/queue"), "{url}");
    shot("queue.png").await;

    // Open the report: the image is blurred.
    b.find(Locator::Css(".item-link"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait()
        .for_element(Locator::Css("button.reveal"))
        .await
        .unwrap();
    assert_eq!(
        b.current_url().await.unwrap().path(),
        format!("/console/item/report/{rid}")
    );
    let filter = b
        .execute(
            "return getComputedStyle(document.querySelector('img.thumb')).filter",
            vec![],
        )
        .await
        .unwrap();
    let filter = filter.as_str().unwrap().to_string();
    assert!(
        filter.contains("blur") && filter.contains("grayscale"),
        "{filter}"
    );
    let natural = b
        .execute(
            "return document.querySelector('img.thumb').naturalWidth",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        natural.as_u64().unwrap() <= 16,
        "unrevealed thumbnails are 16 px: {natural}"
    );
    b.execute(
        "document.getElementById('media-h').scrollIntoView()",
        vec![],
    )
    .await
    .unwrap();
    shot("item-blurred.png").await;

    // Reveal it.
    b.find(Locator::Css("button.reveal"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait()
        .for_element(Locator::Css("img.thumb.revealed"))
        .await
        .unwrap();
    let filter = b
        .execute(
            "return getComputedStyle(document.querySelector('img.thumb')).filter",
            vec![],
        )
        .await
        .unwrap();
    assert!(!filter.as_str().unwrap().contains("blur"), "{filter}");
    let natural = b
        .execute(
            "return document.querySelector('img.thumb').naturalWidth",
            vec![],
        )
        .await
        .unwrap();
    assert!(natural.as_u64().unwrap() > 16, "{natural}");
    b.execute(
        "document.getElementById('media-h').scrollIntoView()",
        vec![],
    )
    .await
    .unwrap();
    shot("item-revealed.png").await;

    // Decide with the keyboard: "c" confirms (category: the first, csam).
    b.find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys("c")
        .await
        .unwrap();
    let mut at = String::new();
    for _ in 0..100 {
        at = b.current_url().await.unwrap().path().to_string();
        if at == "/console/queue" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        at, "/console/queue",
        "confirming moves on to the next item or the queue"
    );
    let st = &c.service.state.store;
    let d: String = sqlx::query("SELECT decision FROM console_decisions")
        .fetch_one(&st.pool)
        .await
        .unwrap()
        .try_get("decision")
        .unwrap();
    assert_eq!(d, "confirm");

    // The CyberTipline report of the confirmed item.
    b.goto(&format!("{base}/console/item/report/{rid}"))
        .await
        .unwrap();
    b.find(Locator::Css("#cybertip"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let xml = b
        .wait()
        .for_element(Locator::Css("#cybertip-xml"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        xml.contains("<report") && xml.contains("<espIdentifier>alice</espIdentifier>"),
        "{xml}"
    );
    shot("cybertip.png").await;

    // The evidence package, fetched by the page's origin.
    let n = b
        .execute(
            &format!("return fetch('/console/export/report/{rid}').then(r => r.json()).then(j => j.files.length)"),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(n, json!(1));

    // The flagged account, and the dashboard.
    b.goto(&format!("{base}/console/item/account/mallory"))
        .await
        .unwrap();
    shot("account.png").await;
    b.goto(&format!("{base}/console")).await.unwrap();
    let dash = b.source().await.unwrap();
    assert!(dash.contains("False positives per bank"));
    shot("dashboard.png").await;
    b.close().await.unwrap();
}
