//! The reviewer console in a real browser: headless Chromium driven through
//! chromedriver (WebDriver, via fantoccini): sign in, a queue, an item shown
//! blurred, reveal, decide by keyboard, build the CyberTipline report, export
//! the evidence package. Skips (with a message) without chromedriver unless
//! `BULWARK_TEST_REQUIRE_ALL=1`. With `BULWARK_UPDATE_SCREENSHOTS=1` the
//! screenshots of the main views are written to docs/console/.

#![allow(clippy::unwrap_used)]

use crate::console_fixtures;

use std::path::PathBuf;
use std::time::Duration;

use bulwark_server::console::accounts::ConsoleRole;
use console_fixtures::*;
use fantoccini::key::Key;
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
    // A reported video (shown as a strip of frames), when ffmpeg is here.
    let vid = if ffmpeg_available() {
        let clip = video("doorknob-hd-no-bar.mp4");
        let hashes = json!({"kind": "video", "frames": 5});
        Some(
            c.seed_report_file("carol", "dan", &clip, "video/mp4", hashes, "known")
                .await,
        )
    } else {
        None
    };
    c.seed_account("mallory", "known").await;
    c.add("lena", ConsoleRole::Lead, false).await;
    c.add("ada", ConsoleRole::Admin, false).await;
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

    // Sign in, with the keyboard only.
    b.goto(&format!("{base}/console/login")).await.unwrap();
    shot("login.png").await;
    sign_in(&b, "lena").await;
    b.wait()
        .for_element(Locator::Css(".item-link"))
        .await
        .unwrap();
    let url = b.current_url().await.unwrap();
    assert!(url.path().starts_with("/console/queue"), "{url}");
    labelled(&b).await;
    shot("queue.png").await;

    // Keyboard: "j" focuses the first item, Enter opens it.
    press(&b, "j").await;
    let focused = b
        .execute("return document.activeElement.className", vec![])
        .await
        .unwrap();
    assert_eq!(focused, json!("item-link"));
    press(&b, &Key::Enter.to_string()).await;
    b.wait()
        .for_element(Locator::Css("button.reveal"))
        .await
        .unwrap();
    assert_eq!(
        b.current_url().await.unwrap().path(),
        format!("/console/item/report/{rid}")
    );
    labelled(&b).await;
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

    // "n": the next item, the video, shown as a strip of blurred frames.
    if let Some(vid) = vid {
        press(&b, "n").await;
        let path = format!("/console/item/report/{vid}");
        wait_path(&b, &path).await;
        b.wait()
            .for_element(Locator::Css("button.reveal"))
            .await
            .unwrap();
        labelled(&b).await;
        let n = b
            .execute(
                "return [document.querySelectorAll('img.thumb').length, \
                 document.querySelectorAll('video, audio, [autoplay]').length]",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(n, json!([4, 0]), "four frames, nothing that plays");
        // Reveal the second frame with the keyboard (Enter on its button).
        let buttons = b.find_all(Locator::Css("button.reveal")).await.unwrap();
        buttons[1].send_keys(&Key::Enter.to_string()).await.unwrap();
        b.wait()
            .for_element(Locator::Css("img.thumb.revealed"))
            .await
            .unwrap();
        let revealed = b
            .execute(
                "return Array.from(document.querySelectorAll('img.thumb')).map(i => i.classList.contains('revealed'))",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(revealed, json!([false, true, false, false]));
        b.execute(
            "document.getElementById('media-h').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
        shot("video.png").await;
        b.goto(&format!("{base}/console/item/report/{rid}"))
            .await
            .unwrap();
    }

    // Reveal the image (Enter on the focused button).
    b.find(Locator::Css("button.reveal"))
        .await
        .unwrap()
        .send_keys(&Key::Enter.to_string())
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

    // Decide with the keyboard: "c" confirms (category: the first, csam) and
    // moves on to the next item; "d" dismisses that one, and the queue is empty.
    press(&b, "c").await;
    if let Some(vid) = vid {
        wait_path(&b, &format!("/console/item/report/{vid}")).await;
        b.wait()
            .for_element(Locator::Css("#dismiss"))
            .await
            .unwrap();
        press(&b, "d").await;
    }
    wait_path(&b, "/console/queue").await;
    let st = &c.service.state.store;
    let decided: Vec<(String, String)> =
        sqlx::query("SELECT item, decision FROM console_decisions ORDER BY id")
            .fetch_all(&st.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.try_get("item").unwrap(), r.try_get("decision").unwrap()))
            .collect();
    let mut want = vec![(format!("report:{rid}"), "confirm".to_string())];
    if let Some(vid) = vid {
        want.push((format!("report:{vid}"), "dismiss".to_string()));
    }
    assert_eq!(decided, want);

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
    labelled(&b).await;
    shot("account.png").await;
    b.goto(&format!("{base}/console")).await.unwrap();
    labelled(&b).await;
    let dash = b.source().await.unwrap();
    assert!(
        dash.contains("False positives per bank") && dash.contains("False positives per threshold")
    );
    shot("dashboard.png").await;
    b.execute("document.getElementById('fp').scrollIntoView()", vec![])
        .await
        .unwrap();
    shot("dashboard-rates.png").await;

    // Sign out; the admin signs in and sees the admin page.
    b.find(Locator::Css("header button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait().for_element(Locator::Css("#signin")).await.unwrap();
    sign_in(&b, "ada").await;
    b.wait()
        .for_element(Locator::Css("nav a[href='/console/admin']"))
        .await
        .unwrap();
    b.goto(&format!("{base}/console/admin")).await.unwrap();
    b.wait()
        .for_element(Locator::Css("#reviewers"))
        .await
        .unwrap();
    labelled(&b).await;
    let page = b.source().await.unwrap();
    assert!(page.contains("reviewer-lena") && page.contains("policy-known"));
    shot("admin.png").await;
    b.close().await.unwrap();
}

/// Types into the focused element (the page, when nothing is focused).
async fn press(b: &fantoccini::Client, keys: &str) {
    let active = b.active_element().await.unwrap();
    active.send_keys(keys).await.unwrap();
}

/// Fills the sign-in form and submits it with Enter.
async fn sign_in(b: &fantoccini::Client, name: &str) {
    b.find(Locator::Css("#name"))
        .await
        .unwrap()
        .send_keys(name)
        .await
        .unwrap();
    b.find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys(&format!("{PASSWORD}{}", Key::Enter))
        .await
        .unwrap();
}

async fn wait_path(b: &fantoccini::Client, want: &str) {
    let mut at = String::new();
    for _ in 0..200 {
        at = b.current_url().await.unwrap().path().to_string();
        if at == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("at {at}, expected {want}");
}

/// Screen-reader labels: every control has an accessible name (a label, an
/// aria-label, or its text), every image an alt text, and the page has its
/// landmarks (`main`, and `nav` when signed in) and a skip link.
async fn labelled(b: &fantoccini::Client) {
    let missing = b
        .execute(
            r##"
            const out = [];
            for (const el of document.querySelectorAll('button, select, input:not([type=hidden]), a[href]')) {
                const byFor = el.id && document.querySelector('label[for="' + el.id + '"]');
                const name = (el.getAttribute('aria-label') || (byFor && byFor.textContent) ||
                    (el.closest('label') && el.closest('label').textContent) || el.textContent || '').trim();
                if (!name) out.push(el.outerHTML.slice(0, 120));
            }
            for (const img of document.querySelectorAll('img')) {
                if (!(img.getAttribute('alt') || '').trim()) out.push(img.outerHTML.slice(0, 120));
            }
            if (!document.querySelector('main')) out.push('no main');
            if (!document.querySelector('a.skip[href="#main"]')) out.push('no skip link');
            return out;
            "##,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(missing, json!([]), "controls without a label");
}
