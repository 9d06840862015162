//! Every route of the API, against SQLite and against PostgreSQL.
#![allow(clippy::unwrap_used)]

use crate::support;

use axum::http::{Method, StatusCode};
use bulwark_server::auth::Role;
use serde_json::{Value, json};
use support::{TestApp, image, resized_copy};

const BRIDGE: &str = "reg-test-input/dih/bridge-1-original.jpg";
const PEN: &str = "reg-test-input/pen-and-coaster.png";
/// A PDQ hash with half its bits set, as real image hashes have (an all-zero
/// hash is degenerate: banks refuse it, see `low_quality_hashes_are_neither_banked_nor_matched`).
const BASE: &str = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f";

async fn make_bank(app: &TestApp, name: &str) {
    let (s, j) = app.post("/v1/banks", json!({"name": name})).await;
    assert_eq!(s, StatusCode::CREATED, "{j}");
}

fn ids(matches: &Value) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = matches
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["bank"].as_str().unwrap().to_string(),
                m["content_id"].as_i64().unwrap(),
            )
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

async fn auth_is_required_and_roles_are_enforced(app: &TestApp) {
    // No key, malformed key, unknown key, wrong secret.
    let (s, j) = app.call(Method::GET, "/v1/banks", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(j["error"]["code"], "unauthorized");
    for bad in [
        "nonsense",
        "bwk_000000000000_00",
        &format!("bwk_000000000000_{}", "0".repeat(64)),
    ] {
        let (s, _) = app.call(Method::GET, "/v1/banks", Some(bad), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{bad}");
    }
    let mut wrong = app.admin.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == '0' { '1' } else { '0' });
    let (s, _) = app.call(Method::GET, "/v1/banks", Some(&wrong), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Roles: a matcher matches but cannot curate; a curator cannot read the audit log.
    let matcher = app.key(Role::Matcher).await;
    let curator = app.key(Role::Curator).await;
    let (s, _) = app
        .call(
            Method::POST,
            "/v1/banks",
            Some(&matcher),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app
        .call(
            Method::POST,
            "/v1/match",
            Some(&matcher),
            Some(json!({"signals": {"pdq": BASE}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .call(
            Method::POST,
            "/v1/banks",
            Some(&curator),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, j) = app
        .call(Method::GET, "/v1/audit", Some(&curator), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(j["error"]["code"], "forbidden");
    let (s, _) = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // A revoked key stops working.
    let k = app.key(Role::Admin).await;
    assert!(
        bulwark_server::auth::revoke_key(&app.service.state.store, &k)
            .await
            .unwrap()
    );
    let (s, j) = app.call(Method::GET, "/v1/banks", Some(&k), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(j["error"]["message"], "invalid or revoked API key");
    let keys = bulwark_server::auth::list_keys(&app.service.state.store)
        .await
        .unwrap();
    assert_eq!(keys.len(), 4);
    assert_eq!(keys.iter().filter(|k| k.revoked_at.is_some()).count(), 1);
}

async fn banks_crud(app: &TestApp) {
    make_bank(app, "alpha").await;
    let (s, j) = app.post("/v1/banks", json!({"name": "alpha"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{j}");
    for bad in [
        json!({"name": "a b"}),
        json!({"name": ""}),
        json!({"name": "x", "threshold": 300}),
        json!({"name": "y", "colour": 1}),
        json!({}),
    ] {
        let (s, j) = app.post("/v1/banks", bad.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad} → {j}");
        assert!(j["error"]["message"].as_str().is_some());
    }
    let (s, _) = app
        .post("/v1/banks", json!({"name": "beta", "threshold": 12, "enabled": false, "description": "d", "provider": "org-a"}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, j) = app.get("/v1/banks").await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = j["banks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    let (s, j) = app.get("/v1/banks/beta").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (j["threshold"].as_i64(), j["enabled"].as_bool()),
        (Some(12), Some(false))
    );
    assert_eq!(
        (j["provider"].as_str(), j["content_count"].as_i64()),
        (Some("org-a"), Some(0))
    );
    let (s, j) = app
        .call(
            Method::PATCH,
            "/v1/banks/beta",
            Some(&app.admin),
            Some(json!({"threshold": 20, "enabled": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    assert_eq!(
        (j["threshold"].as_i64(), j["enabled"].as_bool()),
        (Some(20), Some(true))
    );
    let (s, _) = app
        .call(
            Method::PATCH,
            "/v1/banks/nope",
            Some(&app.admin),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .call(Method::DELETE, "/v1/banks/beta", Some(&app.admin), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, j) = app.get("/v1/banks/beta").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(j["error"]["code"], "not_found");
}

async fn upload_then_match_a_resized_copy(app: &TestApp) {
    make_bank(app, "photos").await;
    make_bank(app, "other").await;
    let bridge = image(BRIDGE);
    let (s, added) = app
        .upload(
            "/v1/banks/photos/content",
            &app.admin,
            &bridge,
            &[("note", "first"), ("metadata", r#"{"case":"7"}"#)],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{added}");
    let id = added["id"].as_i64().unwrap();
    assert_eq!(added["kind"], "photo");
    assert_eq!(added["note"], "first");
    assert_eq!(added["metadata"]["case"], "7");
    let expected =
        bulwark_pdq::hash_bytes(&bridge, bulwark_pdq::Mode::default(), &Default::default())
            .unwrap();
    let pdq = added["signals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["signal_type"] == "pdq")
        .unwrap();
    assert_eq!(pdq["signal"].as_str().unwrap(), expected.hash.to_string());
    assert_eq!(pdq["quality"].as_u64().unwrap(), expected.quality as u64);

    // The same file again is a duplicate, not a second item.
    let (s, again) = app
        .upload("/v1/banks/photos/content", &app.admin, &bridge, &[])
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (again["id"].as_i64(), again["duplicate"].as_bool()),
        (Some(id), Some(true))
    );

    // A resized, recompressed copy matches; an unrelated image does not.
    let copy = resized_copy(&bridge);
    assert_ne!(copy, bridge);
    let matcher = app.key(Role::Matcher).await;
    let (s, m) = app.upload("/v1/match", &matcher, &copy, &[]).await;
    assert_eq!(s, StatusCode::OK, "{m}");
    assert_eq!(ids(&m["matches"]), [("photos".to_string(), id)]);
    let d = m["matches"][0]["distance"].as_u64().unwrap();
    assert!(d <= 31, "distance {d}");
    assert_eq!(m["query"]["kind"], "photo");
    let (_, m) = app.upload("/v1/match", &matcher, &image(PEN), &[]).await;
    assert_eq!(m["matches"], json!([]));
    // The exact file matches by MD5 and SHA-256 too.
    let (_, m) = app.upload("/v1/match", &matcher, &bridge, &[]).await;
    let mut types: Vec<&str> = m["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["signal_type"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(types, ["md5", "pdq", "sha256"]);
    // Restricting to another bank finds nothing; an unknown bank is an error.
    let (_, m) = app
        .upload("/v1/match", &matcher, &copy, &[("banks", "other")])
        .await;
    assert_eq!(m["matches"], json!([]));
    let (s, _) = app
        .upload("/v1/match", &matcher, &copy, &[("banks", "nosuch")])
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // The bank's threshold decides: below the copy's distance, no match.
    let (s, _) = app
        .call(
            Method::PATCH,
            "/v1/banks/photos",
            Some(&app.admin),
            Some(json!({"threshold": d.saturating_sub(1)})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    if d > 0 {
        // No plain match; only a pair of extra hashes (crops of both images,
        // docs/DETECTION.md) can still be within the lower threshold.
        let (_, m) = app.upload("/v1/match", &matcher, &copy, &[]).await;
        for x in m["matches"].as_array().unwrap() {
            assert!(x.get("hash_kind").is_some(), "{m}");
            assert!(x["distance"].as_u64().unwrap() < d, "{m}");
        }
    }
    // A disabled bank matches nothing.
    app.call(
        Method::PATCH,
        "/v1/banks/photos",
        Some(&app.admin),
        Some(json!({"threshold": 31, "enabled": false})),
    )
    .await;
    let (_, m) = app.upload("/v1/match", &matcher, &copy, &[]).await;
    assert_eq!(m["matches"], json!([]));
    app.call(
        Method::PATCH,
        "/v1/banks/photos",
        Some(&app.admin),
        Some(json!({"enabled": true})),
    )
    .await;
    let (_, m) = app.upload("/v1/match", &matcher, &copy, &[]).await;
    assert_eq!(ids(&m["matches"]).len(), 1);
}

async fn content_by_signals_list_disable_delete(app: &TestApp) {
    make_bank(app, "sig").await;
    let h1 = format!("{}e", &BASE[..63]);
    let h2 = "f".repeat(64);
    let (s, a) = app
        .post(
            "/v1/banks/sig/content",
            json!({"signals": {"pdq": h1}, "quality": 80, "note": "n", "source": "list-a"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    let id1 = a["id"].as_i64().unwrap();
    assert_eq!(
        (a["source"].as_str(), a["signals"][0]["quality"].as_i64()),
        (Some("list-a"), Some(80))
    );
    let (s, b) = app
        .post(
            "/v1/banks/sig/content",
            json!({"signals": {"pdq": h2, "md5": "d41d8cd98f00b204e9800998ecf8427e"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let id2 = b["id"].as_i64().unwrap();
    for bad in [
        json!({"signals": {"pdq": "abc"}}),
        json!({"signals": {"phash": BASE}}),
        json!({"signals": {}}),
        json!({"signals": {"pdq": BASE}, "metadata": [1]}),
        json!({"signals": {"pdq": BASE}, "quality": 101}),
        json!({"pdq": BASE}),
    ] {
        let (s, j) = app.post("/v1/banks/sig/content", bad.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad} → {j}");
    }
    let (s, _) = app
        .post("/v1/banks/none/content", json!({"signals": {"pdq": BASE}}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Paging.
    let (_, p1) = app.get("/v1/banks/sig/content?limit=1").await;
    assert_eq!(p1["items"].as_array().unwrap().len(), 1);
    assert_eq!(p1["items"][0]["id"].as_i64(), Some(id1));
    let after = p1["next_after"].as_i64().unwrap();
    let (_, p2) = app
        .get(&format!("/v1/banks/sig/content?limit=1&after={after}"))
        .await;
    assert_eq!(p2["items"][0]["id"].as_i64(), Some(id2));
    let (_, p3) = app
        .get(&format!("/v1/banks/sig/content?limit=1&after={id2}"))
        .await;
    assert_eq!(p3["items"], json!([]));
    assert_eq!(p3["next_after"], Value::Null);
    let (s, g) = app.get(&format!("/v1/banks/sig/content/{id2}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(g["signals"].as_array().unwrap().len(), 2);
    let (s, _) = app.get("/v1/banks/sig/content/99999").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let matches = |q: String| async move {
        let (s, m) = app.post("/v1/match", json!({"signals": {"pdq": q}})).await;
        assert_eq!(s, StatusCode::OK);
        ids(&m["matches"])
    };
    assert_eq!(matches(BASE.into()).await, [("sig".to_string(), id1)]);
    // Disable; disable until a past time (= enabled); until a future time; enable.
    let patch = |body: Value| async move {
        let (s, j) = app
            .call(
                Method::PATCH,
                &format!("/v1/banks/sig/content/{id1}"),
                Some(&app.admin),
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{j}");
        j
    };
    let j = patch(json!({"enabled": false})).await;
    assert_eq!(j["enabled"], false);
    assert!(matches(BASE.into()).await.is_empty());
    patch(json!({"disabled_until": "2001-01-01T00:00:00Z"})).await;
    assert_eq!(matches(BASE.into()).await.len(), 1);
    let j = patch(json!({"disabled_until": "2999-01-01T00:00:00Z"})).await;
    assert_eq!(j["disabled_until"], "2999-01-01T00:00:00Z");
    assert!(matches(BASE.into()).await.is_empty());
    patch(json!({"enabled": true, "note": "reviewed"})).await;
    assert_eq!(matches(BASE.into()).await.len(), 1);
    let (s, _) = app
        .call(
            Method::PATCH,
            &format!("/v1/banks/sig/content/{id1}"),
            Some(&app.admin),
            Some(json!({"disabled_until": "soon"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Exact MD5 match, and a list of PDQ hashes in one request.
    let (_, m) = app
        .post(
            "/v1/match",
            json!({"signals": {"md5": "d41d8cd98f00b204e9800998ecf8427e"}}),
        )
        .await;
    assert_eq!(ids(&m["matches"]), [("sig".to_string(), id2)]);
    let (_, m) = app
        .post(
            "/v1/match",
            json!({"signals": {"pdq": [BASE, h2]}, "banks": ["sig"]}),
        )
        .await;
    assert_eq!(
        ids(&m["matches"]),
        [("sig".to_string(), id1), ("sig".to_string(), id2)]
    );

    // Delete.
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/banks/sig/content/{id1}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/banks/sig/content/{id1}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(matches(BASE.into()).await.is_empty());
}

async fn hash_route_and_bad_media(app: &TestApp) {
    let m = app.key(Role::Matcher).await;
    let pen = image(PEN);
    let (s, j) = app.upload("/v1/hash", &m, &pen, &[]).await;
    assert_eq!(s, StatusCode::OK, "{j}");
    let want =
        bulwark_pdq::hash_bytes(&pen, bulwark_pdq::Mode::default(), &Default::default()).unwrap();
    assert_eq!(j["pdq"].as_str().unwrap(), want.hash.to_string());
    assert_eq!(j["quality"].as_u64().unwrap(), want.quality as u64);
    use sha2::Digest;
    assert_eq!(
        j["sha256"].as_str().unwrap(),
        hex::encode(sha2::Sha256::digest(&pen))
    );
    // Not media, empty, truncated: a clear 422.
    for bad in [
        b"hello, this is text".to_vec(),
        Vec::new(),
        image(BRIDGE)[..2000].to_vec(),
    ] {
        let (s, j) = app.upload("/v1/hash", &m, &bad, &[]).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{j}");
        assert_eq!(j["error"]["code"], "bad_media");
    }
    // A PNG header claiming 100000×100000 pixels: refused before decoding.
    let mut bomb = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    bomb.extend_from_slice(&100_000u32.to_be_bytes());
    bomb.extend_from_slice(&100_000u32.to_be_bytes());
    bomb.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    let (s, _) = app.upload("/v1/hash", &m, &bomb, &[]).await;
    assert!(
        s == StatusCode::PAYLOAD_TOO_LARGE || s == StatusCode::UNPROCESSABLE_ENTITY,
        "{s}"
    );
    // No file field; not multipart; oversized body.
    let (s, _) = app
        .call(Method::POST, "/v1/hash", Some(&m), Some(json!({})))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, _) = app.raw(Method::POST, "/v1/hash", b"xx".to_vec()).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = vec![0u8; app.service.state.config.max_upload_bytes + 1];
    let (s, _) = app.upload("/v1/hash", &m, &big, &[]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    // Malformed JSON.
    let req = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/v1/match")
        .header("authorization", format!("Bearer {m}"))
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{nope"))
        .unwrap();
    let (s, j, _) = app.send(req).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{j}");
}

async fn import_export_round_trip(app: &TestApp) {
    make_bank(app, "src").await;
    make_bank(app, "dst").await;
    let h = |i: u8| hex::encode([i; 32]);
    let list = format!(
        "# a list\npdq {}\npdq {}\nnot a record\npdq 1234\n\nmd5 d41d8cd98f00b204e9800998ecf8427e\npdq {}\r\n{}",
        h(1),
        h(2),
        h(1),
        "x".repeat(70_000)
    );
    let (s, r, _) = app
        .raw(
            Method::POST,
            "/v1/banks/src/import?format=lines&source=ncmec-2026",
            list.clone().into_bytes(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(
        (
            r["added"].as_u64(),
            r["duplicates"].as_u64(),
            r["rejected_count"].as_u64()
        ),
        (Some(3), Some(1), Some(3))
    );
    let lines: Vec<u64> = r["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [4, 5, 9]);
    // Idempotent.
    let (_, r2, _) = app
        .raw(
            Method::POST,
            "/v1/banks/src/import?format=lines",
            list.into_bytes(),
        )
        .await;
    assert_eq!(
        (r2["added"].as_u64(), r2["duplicates"].as_u64()),
        (Some(0), Some(4))
    );
    // Imported records match and carry their provenance.
    let (_, m) = app
        .post("/v1/match", json!({"signals": {"pdq": h(2)}}))
        .await;
    let cid = m["matches"][0]["content_id"].as_i64().unwrap();
    let (_, c) = app.get(&format!("/v1/banks/src/content/{cid}")).await;
    assert_eq!(c["source"], "ncmec-2026");
    assert_eq!(c["added_by"].as_str().unwrap(), &app.admin[4..16]);

    let csv = format!(
        "hash,quality,note\n{},90,\"a, note\"\n{},101\n{},,\n",
        h(3),
        h(4),
        h(5)
    );
    let (_, r, _) = app
        .raw(
            Method::POST,
            "/v1/banks/src/import?format=csv",
            csv.into_bytes(),
        )
        .await;
    assert_eq!(
        (r["added"].as_u64(), r["rejected_count"].as_u64()),
        (Some(2), Some(1))
    );
    let jl = format!(
        "{{\"signal_type\":\"pdq\",\"signal\":\"{}\",\"quality\":70,\"metadata\":{{\"k\":1}}}}\n{{\"oops\":1}}\n",
        h(6)
    );
    let (_, r, _) = app
        .raw(
            Method::POST,
            "/v1/banks/src/import?format=jsonl",
            jl.into_bytes(),
        )
        .await;
    assert_eq!(
        (r["added"].as_u64(), r["rejected_count"].as_u64()),
        (Some(1), Some(1))
    );
    let (s, _, _) = app
        .raw(Method::POST, "/v1/banks/src/import?format=xml", Vec::new())
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Export in each format and import into another bank: the same signals.
    let mut want: Vec<String> = [1, 2, 3, 5, 6].iter().map(|i| h(*i)).collect();
    want.sort();
    for format in ["lines", "csv", "jsonl"] {
        let (s, _, text) = app
            .raw(
                Method::GET,
                &format!("/v1/banks/src/export?format={format}"),
                Vec::new(),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (_, r, _) = app
            .raw(
                Method::POST,
                &format!("/v1/banks/dst/import?format={format}"),
                text.clone().into_bytes(),
            )
            .await;
        assert_eq!(
            r["rejected_count"].as_u64(),
            Some(0),
            "{format}: {r}\n{text}"
        );
        let mut got: Vec<String> = text
            .lines()
            .filter_map(|l| {
                bulwark_banks::Format::ALL
                    .iter()
                    .find_map(|f| f.parse_line(l).ok().flatten())
            })
            .filter(|r| r.signal.signal_type() == bulwark_banks::SignalType::Pdq)
            .map(|r| r.signal.value())
            .collect();
        got.sort();
        assert_eq!(got, want, "{format}");
        if format == "csv" {
            assert!(text.starts_with("hash,quality,note\n"));
            assert!(text.contains(",90,\"a, note\""));
        }
        if format == "jsonl" {
            assert!(text.contains("\"metadata\":{\"k\":1}"));
        }
    }
    let (_, b) = app.get("/v1/banks/dst").await;
    assert_eq!(
        b["content_count"].as_i64(),
        Some(6),
        "5 PDQ + 1 MD5 from the lines export"
    );
}

async fn hma_compatible_routes(app: &TestApp) {
    make_bank(app, "HMA_BANK").await;
    let (s, j) = app
        .post("/c/bank/HMA_BANK/signal", json!({"pdq": BASE}))
        .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    assert!(j["id"].as_i64().is_some());
    assert_eq!(j["signals"]["pdq"], BASE);
    let (s, j) = app.get("/c/banks").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        j,
        json!([{"name": "HMA_BANK", "matching_enabled_ratio": 1.0}])
    );
    let near = format!("{}c", &BASE[..63]);
    let (s, j) = app
        .get(&format!("/m/lookup?signal_type=pdq&signal={near}"))
        .await;
    assert_eq!(s, StatusCode::OK);
    // HMA's per-bank map; the distance is a string, as HMA writes it.
    let id = j["HMA_BANK"][0]["bank_content_id"].as_i64();
    assert!(id.is_some(), "{j}");
    assert_eq!(
        j,
        json!({"HMA_BANK": [{"bank_content_id": id, "distance": "2"}]})
    );
    let (_, j) = app
        .get(&format!(
            "/m/lookup?signal_type=pdq&signal={}",
            "f".repeat(64)
        ))
        .await;
    assert_eq!(j, json!({}));
    let (s, _) = app.get("/m/lookup?signal_type=pdq&signal=xyz").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = app.post("/c/bank/NOPE/signal", json!({"pdq": BASE})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn audit_log_records_every_change(app: &TestApp) {
    let curator = app.key(Role::Curator).await;
    let cid = &curator[4..16];
    app.call(
        Method::POST,
        "/v1/banks",
        Some(&curator),
        Some(json!({"name": "aud"})),
    )
    .await;
    let (_, c) = app
        .call(
            Method::POST,
            "/v1/banks/aud/content",
            Some(&curator),
            Some(json!({"signals": {"pdq": BASE}})),
        )
        .await;
    let id = c["id"].as_i64().unwrap();
    app.call(
        Method::PATCH,
        &format!("/v1/banks/aud/content/{id}"),
        Some(&curator),
        Some(json!({"enabled": false})),
    )
    .await;
    app.call(
        Method::DELETE,
        &format!("/v1/banks/aud/content/{id}"),
        Some(&curator),
        None,
    )
    .await;
    app.call(
        Method::PATCH,
        "/v1/banks/aud",
        Some(&curator),
        Some(json!({"threshold": 10})),
    )
    .await;
    app.call(Method::DELETE, "/v1/banks/aud", Some(&curator), None)
        .await;
    let (s, j) = app.get("/v1/audit?bank=aud").await;
    assert_eq!(s, StatusCode::OK);
    let actions: Vec<(&str, &str)> = j["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("bank.create", cid),
            ("content.add", cid),
            ("content.update", cid),
            ("content.delete", cid),
            ("bank.update", cid),
            ("bank.delete", cid)
        ]
    );
    let (_, j) = app.get("/v1/audit?limit=2").await;
    assert_eq!(j["entries"].as_array().unwrap().len(), 2);
    let next = j["next_after"].as_i64().unwrap();
    let (_, j) = app.get(&format!("/v1/audit?after={next}&limit=1000")).await;
    assert_eq!(j["entries"].as_array().unwrap().len(), 4);
}

async fn health_metrics_and_openapi(app: &TestApp) {
    let (s, j) = app.call(Method::GET, "/v1/health", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (
            j["index"]["loaded"].as_bool(),
            j["index"]["current"].as_bool()
        ),
        (Some(true), Some(true))
    );
    make_bank(app, "h").await;
    app.post("/v1/banks/h/content", json!({"signals": {"pdq": BASE}}))
        .await;
    app.post("/v1/match", json!({"signals": {"pdq": BASE}}))
        .await;
    let (_, j) = app.call(Method::GET, "/v1/health", None, None).await;
    assert_eq!(j["index"]["entries"].as_u64(), Some(1));
    let (s, _, text) = app.raw(Method::GET, "/metrics", Vec::new()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(text.contains("bulwark_index_entries 1"), "{text}");
    assert!(text.contains("bulwark_index_segments 1"), "{text}");
    assert!(
        text.contains("bulwark_matches_total{bank=\"h\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("route=\"/v1/match\",status=\"200\""),
        "{text}"
    );

    // Every documented operation is routed (no 404/405 from the router).
    let (s, doc) = app.call(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        doc["openapi"].as_str().map(|v| v.starts_with("3.")),
        Some(true)
    );
    let paths = doc["paths"].as_object().unwrap();
    let mut n = 0;
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            assert!(
                op["responses"].is_object(),
                "{method} {path} has no responses"
            );
            let concrete = path.replace("{bank}", "h").replace("{id}", "1");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (_, _, body) = app.raw(m, &concrete, Vec::new()).await;
            assert!(
                !body.contains("no such route"),
                "{method} {path} is documented but not routed"
            );
            n += 1;
        }
    }
    assert!(n >= 20, "only {n} operations documented");
    let (s, j) = app.get("/v1/nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(j["error"]["code"], "not_found");
}

async fn replicas_see_each_others_writes(app: &TestApp) {
    let other = app.replica().await;
    make_bank(app, "rep").await;
    let (_, c) = app
        .post("/v1/banks/rep/content", json!({"signals": {"pdq": BASE}}))
        .await;
    let id = c["id"].as_i64().unwrap();
    // The replica does not see it until it polls; then it does.
    let (s, m) = other
        .post("/v1/match", json!({"signals": {"pdq": BASE}}))
        .await;
    assert!(s == StatusCode::OK || s == StatusCode::BAD_REQUEST);
    assert!(m["matches"].as_array().is_none_or(|a| a.is_empty()));
    other
        .service
        .state
        .catalog
        .refresh(&other.service.state.store)
        .await
        .unwrap();
    let (_, m) = other
        .post("/v1/match", json!({"signals": {"pdq": BASE}}))
        .await;
    assert_eq!(ids(&m["matches"]), [("rep".to_string(), id)]);
    // Disabling on the replica reaches the first node the same way.
    other
        .call(
            Method::PATCH,
            &format!("/v1/banks/rep/content/{id}"),
            Some(&app.admin),
            Some(json!({"enabled": false})),
        )
        .await;
    app.service
        .state
        .catalog
        .refresh(&app.service.state.store)
        .await
        .unwrap();
    let (_, m) = app
        .post("/v1/match", json!({"signals": {"pdq": BASE}}))
        .await;
    assert_eq!(m["matches"], json!([]));
    // A bank deleted on one node stops matching on the other.
    other
        .call(
            Method::PATCH,
            &format!("/v1/banks/rep/content/{id}"),
            Some(&app.admin),
            Some(json!({"enabled": true})),
        )
        .await;
    app.service
        .state
        .catalog
        .refresh(&app.service.state.store)
        .await
        .unwrap();
    assert_eq!(
        ids(&app
            .post("/v1/match", json!({"signals": {"pdq": BASE}}))
            .await
            .1["matches"])
        .len(),
        1
    );
    other
        .call(Method::DELETE, "/v1/banks/rep", Some(&app.admin), None)
        .await;
    app.service
        .state
        .catalog
        .refresh(&app.service.state.store)
        .await
        .unwrap();
    let (_, m) = app
        .post("/v1/match", json!({"signals": {"pdq": BASE}}))
        .await;
    assert!(m["matches"].as_array().is_none_or(|a| a.is_empty()), "{m}");
    // A restart loads everything from the store.
    make_bank(app, "again").await;
    app.post("/v1/banks/again/content", json!({"signals": {"pdq": BASE}}))
        .await;
    let fresh = app.replica().await;
    let (_, m) = fresh
        .post("/v1/match", json!({"signals": {"pdq": BASE}}))
        .await;
    assert_eq!(ids(&m["matches"]).len(), 1);
    other.service.state.store.pool.close().await;
    fresh.service.state.store.pool.close().await;
}

fn ffmpeg_available() -> bool {
    let ok = std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("BULWARK_TEST_REQUIRE_ALL").as_deref() == Ok("1") {
            panic!("ffmpeg is required (BULWARK_TEST_REQUIRE_ALL=1) but not on PATH");
        }
        eprintln!("SKIPPED (ffmpeg not on PATH)");
    }
    ok
}

/// Re-encodes a video at half size with another codec setting: a copy that
/// shares no bytes with the original.
fn reencoded_half_size(video: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("in.mp4"), dir.path().join("out.mp4"));
    std::fs::write(&src, video).unwrap();
    let st = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&src)
        .args([
            "-vf",
            "scale=iw/2:-2",
            "-c:v",
            "libx264",
            "-crf",
            "30",
            "-preset",
            "veryfast",
            "-an",
        ])
        .arg(&dst)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::read(dst).unwrap()
}

async fn videos_bank_and_match_after_reencoding(app: &TestApp) {
    if !ffmpeg_available() {
        return;
    }
    let video =
        std::fs::read(support::shared().join("conformance/vpdq/videos/chair-orig-22-sd-bar.mp4"))
            .unwrap();
    make_bank(app, "videos").await;
    let (s, c) = app
        .upload(
            "/v1/banks/videos/content",
            &app.admin,
            &video,
            &[("note", "v")],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    assert_eq!(c["kind"], "video");
    let id = c["id"].as_i64().unwrap();
    // One frame a second (the service default) of a 673-frame, 30 fps video.
    let frames = c["frames"].as_u64().unwrap();
    assert_eq!(frames, 673_u64.div_ceil(30), "{frames} frames");
    // A page of the bank's content gives the same count.
    let (s, page) = app.get("/v1/banks/videos/content").await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(page["items"][0]["id"], id, "{page}");
    assert_eq!(page["items"][0]["frames"], frames, "{page}");

    let copy = reencoded_half_size(&video);
    let (s, m) = app.upload("/v1/match", &app.admin, &copy, &[]).await;
    assert_eq!(s, StatusCode::OK, "{m}");
    assert_eq!(m["query"]["kind"], "video");
    let vp: Vec<&Value> = m["matches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["signal_type"] == "vpdq")
        .collect();
    assert_eq!(vp.len(), 1, "{m}");
    assert_eq!(vp[0]["content_id"].as_i64(), Some(id));
    assert!(vp[0]["query_percent"].as_f64().unwrap() >= 80.0);
    // The copy has other bytes: no MD5/SHA-256 match.
    assert!(
        m["matches"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["signal_type"] == "vpdq")
    );
    // A still image of something else matches no video.
    let (_, m) = app.upload("/v1/match", &app.admin, &image(PEN), &[]).await;
    assert_eq!(m["matches"], json!([]));
    // Disabled, the video stops matching.
    app.call(
        Method::PATCH,
        &format!("/v1/banks/videos/content/{id}"),
        Some(&app.admin),
        Some(json!({"enabled": false})),
    )
    .await;
    let (_, m) = app.upload("/v1/match", &app.admin, &copy, &[]).await;
    assert_eq!(m["matches"], json!([]));
    // /v1/hash gives the frame lines.
    let (_, h) = app.upload("/v1/hash", &app.admin, &copy, &[]).await;
    assert_eq!(
        h["vpdq"].as_array().unwrap().len() as u64,
        h["frames"].as_u64().unwrap()
    );
    // A truncated video is refused with a clear error.
    let (s, j) = app
        .upload("/v1/hash", &app.admin, &video[..4096], &[])
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{j}");
}

/// A blank (uniform grey) JPEG: PDQ quality 0 and the all-zero hash.
fn blank_jpeg() -> Vec<u8> {
    let img = bulwark_pdq::Image {
        width: 96,
        height: 96,
        channels: 3,
        pixels: vec![128; 96 * 96 * 3],
    };
    bulwark_pdq::encode_jpeg(&img, 90).unwrap()
}

/// The attack: bank an all-zero PDQ hash (or a blank image) and every blank
/// image anyone uploads matches at distance 0. A bank's quality floor
/// (default 50) refuses such hashes on both sides.
async fn low_quality_hashes_are_neither_banked_nor_matched(app: &TestApp) {
    let zero = "0".repeat(64);
    make_bank(app, "floor").await;
    let (_, b) = app.get("/v1/banks/floor").await;
    assert_eq!(b["min_quality"], 50);
    for body in [
        json!({"signals": {"pdq": zero}}),
        json!({"signals": {"pdq": BASE}, "quality": 20}),
    ] {
        let (s, j) = app.post("/v1/banks/floor/content", body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{j}");
        assert_eq!(j["error"]["code"], "low_quality");
    }
    let (s, j) = app
        .upload("/v1/banks/floor/content", &app.admin, &blank_jpeg(), &[])
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{j}");
    // A bank that opts out (floor 0) takes it; a blank upload then matches
    // there, until the floor is raised: then it matches nothing.
    let (s, _) = app
        .post("/v1/banks", json!({"name": "lenient", "min_quality": 0}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, j) = app
        .post(
            "/v1/banks/lenient/content",
            json!({"signals": {"pdq": zero}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{j}");
    let (s, j) = app
        .upload("/v1/banks/lenient/content", &app.admin, &blank_jpeg(), &[])
        .await;
    assert_eq!(s, StatusCode::CREATED, "{j}");
    let pdq_hits = |m: &Value| {
        m["matches"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["signal_type"] == "pdq")
            .count()
    };
    let (_, m) = app
        .upload("/v1/match", &app.admin, &blank_jpeg(), &[])
        .await;
    assert_eq!(pdq_hits(&m), 1, "{m}");
    let (s, _) = app
        .call(
            Method::PATCH,
            "/v1/banks/lenient",
            Some(&app.admin),
            Some(json!({"min_quality": 50})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, m) = app
        .upload("/v1/match", &app.admin, &blank_jpeg(), &[])
        .await;
    assert_eq!(
        pdq_hits(&m),
        0,
        "the same file still matches by MD5/SHA-256, not by PDQ: {m}"
    );
    let (_, m) = app
        .post("/v1/match", json!({"signals": {"pdq": zero}}))
        .await;
    assert_eq!(
        m["matches"],
        json!([]),
        "a degenerate hash query matches nothing"
    );
    let (s, _) = app
        .post("/v1/banks", json!({"name": "bad", "min_quality": 101}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

/// Hostile-input hygiene: oversized text fields, bounded error messages, an
/// unknown key id answered like a wrong secret, metrics labels that clients
/// cannot grow.
async fn text_limits_uniform_401_and_bounded_metrics(app: &TestApp) {
    // A 60 MB description was once accepted and copied into the audit log.
    let long = "d".repeat(5000);
    let (s, j) = app
        .post("/v1/banks", json!({"name": "big", "description": long}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{j}");
    let (s, j) = app
        .post(
            "/v1/banks",
            json!({"name": "big", "provider": "p".repeat(300)}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{j}");
    // A JSON body over 1 MiB is refused before it is parsed.
    let (s, j) = app
        .post(
            "/v1/banks",
            json!({"name": "big", "description": "x".repeat(2 << 20)}),
        )
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{j}");
    assert_eq!(j["error"]["code"], "too_large");
    // Error messages quote at most a few dozen bytes of input.
    let junk = "z".repeat(10_000);
    let mut body = serde_json::Map::new();
    body.insert("name".into(), json!("ok"));
    body.insert(junk.clone(), json!(1));
    let (s, j) = app.post("/v1/banks", Value::Object(body)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let msg = j["error"]["message"].as_str().unwrap();
    assert!(msg.len() <= 320 && !msg.contains(&"z".repeat(300)), "{msg}");
    // Unknown key id and wrong secret: the same status and message.
    let mut wrong = app.admin.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == '0' { '1' } else { '0' });
    let unknown = format!("bwk_000000000000_{}", "0".repeat(64));
    let (s1, j1) = app.call(Method::GET, "/v1/banks", Some(&wrong), None).await;
    let (s2, j2) = app
        .call(Method::GET, "/v1/banks", Some(&unknown), None)
        .await;
    assert_eq!((s1, &j1), (s2, &j2));
    assert_eq!(s1, StatusCode::UNAUTHORIZED);
    // Made-up HTTP methods do not grow /metrics (no key needed to send them).
    for i in 0..200 {
        let req = axum::http::Request::builder()
            .method(Method::from_bytes(format!("X{i}").as_bytes()).unwrap())
            .uri("/v1/health")
            .body(axum::body::Body::empty())
            .unwrap();
        app.send(req).await;
    }
    let (_, _, text) = app.raw(Method::GET, "/metrics", Vec::new()).await;
    assert!(!text.contains("X199"), "method labels are bounded");
    assert!(text.contains("OTHER"), "{text}");
}

/// Secrets at rest: the database holds only sealed values (a dump of it is
/// useless without the KEK), and the embedded store's files are private.
async fn secrets_are_sealed_at_rest(app: &TestApp) {
    let st = reports::stamper(app).await;
    let (s, _) = app
        .call(
            Method::POST,
            "/v1/franking/stamp",
            Some(&st),
            Some(
                json!({"tag": BASE, "sender": "a", "conversation": "g", "message_id": "m",
                "epoch": 1, "recipients": ["b"]}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let pool = &app.service.state.store.pool;
    let rows = sqlx::query("SELECT secret FROM franking_keys")
        .fetch_all(pool)
        .await
        .unwrap();
    assert!(!rows.is_empty());
    let meta = sqlx::query("SELECT value FROM meta WHERE key = 'franking_signing_key'")
        .fetch_one(pool)
        .await
        .unwrap();
    for stored in rows
        .iter()
        .map(|r| sqlx::Row::get::<String, _>(r, "secret"))
        .chain([sqlx::Row::get::<String, _>(&meta, "value")])
    {
        assert!(
            stored.starts_with("bwse1:"),
            "stored in the clear: {stored}"
        );
        // A 32-byte key in hex would be 64 hex digits: nothing like it is stored.
        assert!(!stored.chars().all(|c| c.is_ascii_hexdigit()));
    }
    #[cfg(unix)]
    if app.url.starts_with("sqlite:") {
        use std::os::unix::fs::PermissionsExt;
        let dir = &app.service.state.config.data_dir;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("bulwark.db")), 0o600);
        assert_eq!(mode(&dir.join("secrets.kek")), 0o600);
        // A data directory the service creates itself is private.
        let fresh = tempfile::tempdir().unwrap();
        let sub = fresh.path().join("data");
        let svc = bulwark_server::Service::open(support::config(&sub, None))
            .await
            .unwrap();
        assert_eq!(mode(&sub), 0o700);
        svc.state.store.pool.close().await;
    }
}

both_databases!(
    secrets_are_sealed_at_rest,
    low_quality_hashes_are_neither_banked_nor_matched,
    text_limits_uniform_401_and_bounded_metrics,
    vouchers_open_only_above_the_threshold,
    restart_from_snapshot_replays_later_changes,
    restart_reads_the_index_journal_not_the_store,
    an_older_binary_refuses_a_newer_schema,
    verified_report_with_a_matching_attachment,
    forged_reports_are_rejected_and_recorded,
    videos_bank_and_match_after_reencoding,
    auth_is_required_and_roles_are_enforced,
    banks_crud,
    upload_then_match_a_resized_copy,
    content_by_signals_list_disable_delete,
    hash_route_and_bad_media,
    import_export_round_trip,
    hma_compatible_routes,
    audit_log_records_every_change,
    health_metrics_and_openapi,
    replicas_see_each_others_writes,
);

mod reports {
    use super::*;
    use base64::Engine as _;
    use bulwark_franking::content::Content;
    use bulwark_franking::wire::{
        AttachmentJson, MessageJson, ReportJson, ReporterJson, StampJson, report_signing_input,
    };
    use bulwark_franking::{MessageInfo, Stamp};

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    pub(super) const MEMBERS: [&str; 3] = ["alice", "bob", "mallory"];

    /// The delivery service's stamper key.
    pub(super) async fn stamper(app: &TestApp) -> String {
        app.key(Role::Stamper).await
    }

    /// An enrolled device: its account, id, signing key and device API key.
    pub(super) struct Device {
        pub account: String,
        pub id: String,
        pub key: ed25519_dalek::SigningKey,
        pub api_key: String,
    }

    pub(super) async fn enrol(app: &TestApp, account: &str, id: &str) -> Device {
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let st = stamper(app).await;
        let (s, j) = app
            .call(
                Method::POST,
                "/v1/devices",
                Some(&st),
                Some(json!({"account": account, "device": id,
                    "public_key": hex::encode(key.verifying_key().to_bytes())})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{j}");
        Device {
            account: account.into(),
            id: id.into(),
            key,
            api_key: j["key"].as_str().unwrap().to_string(),
        }
    }

    /// A sender's message with an optional attachment, stamped by the service
    /// for the group of [`MEMBERS`].
    pub(super) async fn franked(
        app: &TestApp,
        text: &str,
        attachment: Option<&[u8]>,
        sender: &str,
        conv: &str,
    ) -> MessageJson {
        let mut rng = rand::thread_rng();
        let mut content = Content::text(text);
        let mut att = Vec::new();
        if let Some(file) = attachment {
            let (r, ct) =
                bulwark_franking::attachment::seal(file, "image/jpeg", "blob-1", &mut rng);
            att.push(AttachmentJson {
                blob_id: r.blob_id.clone(),
                key: hex::encode(r.key.0),
                commitment: hex::encode(r.commitment.0),
                ciphertext_sha256: hex::encode(r.ciphertext_sha256),
                size: r.size,
                media_type: r.media_type.clone(),
                ciphertext: Some(b64(&ct)),
            });
            content.attachments.push(r);
        }
        let content = content.to_bytes();
        let message_id = format!("m-{}", rand::random::<u64>());
        let info = MessageInfo::new(sender, conv, &message_id);
        let (salt, tag) = bulwark_franking::frank(&info, &content, &mut rng);
        let st_key = stamper(app).await;
        let (s, st) = app
            .call(
                Method::POST,
                "/v1/franking/stamp",
                Some(&st_key),
                Some(
                    json!({"tag": hex::encode(tag.0), "sender": sender, "conversation": conv,
                    "message_id": message_id, "epoch": 5, "recipients": MEMBERS}),
                ),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{st}");
        MessageJson {
            content: b64(&content),
            salt: hex::encode(salt.0),
            sender: sender.into(),
            conversation: conv.into(),
            message_id,
            epoch: 5,
            recipients: MEMBERS.iter().map(|m| m.to_string()).collect(),
            accepted_at: st["accepted_at"].as_u64().unwrap(),
            stamper: st["stamper"].as_str().unwrap().into(),
            stamp: StampJson {
                key_id: st["key_id"].as_u64().unwrap() as u32,
                mac: st["mac"].as_str().unwrap().into(),
                signature: Some(st["signature"].as_str().unwrap().into()),
            },
            attachments: att,
        }
    }

    /// A report of `messages` signed by `by`.
    pub(super) fn signed(messages: Vec<MessageJson>, by: &Device) -> ReportJson {
        use ed25519_dalek::Signer;
        let stamps: Vec<Stamp> = messages
            .iter()
            .map(|m| {
                let mut mac = [0u8; 32];
                hex::decode_to_slice(&m.stamp.mac, &mut mac).unwrap();
                Stamp {
                    key_id: m.stamp.key_id,
                    mac,
                }
            })
            .collect();
        let (reason, text) = (Some("csam"), Some("reported from the app"));
        let input = report_signing_input(&by.account, &by.id, &stamps, reason, text);
        ReportJson {
            messages,
            reason: reason.map(Into::into),
            text: text.map(Into::into),
            reporter: Some(ReporterJson {
                account: by.account.clone(),
                device: by.id.clone(),
                signature: hex::encode(by.key.sign(&input).to_bytes()),
            }),
        }
    }

    pub(super) async fn submit_as(
        app: &TestApp,
        key: &str,
        messages: Vec<MessageJson>,
        by: &Device,
    ) -> (StatusCode, Value) {
        let r = signed(messages, by);
        app.call(
            Method::POST,
            "/v1/reports",
            Some(key),
            Some(serde_json::to_value(&r).unwrap()),
        )
        .await
    }

    pub(super) async fn verified_report_with_a_matching_attachment(app: &TestApp) {
        make_bank(app, "known").await;
        let bob = enrol(app, "bob", "bob-phone").await;
        let bridge = image(BRIDGE);
        let (_, c) = app
            .upload("/v1/banks/known/content", &app.admin, &bridge, &[])
            .await;
        let banked = c["id"].as_i64().unwrap();
        let m1 = franked(app, "hello", None, "alice", "group-1").await;
        let m2 = franked(
            app,
            "see this",
            Some(&resized_copy(&bridge)),
            "alice",
            "group-1",
        )
        .await;
        // The reporter's own device key submits.
        let (s, r) = submit_as(app, &bob.api_key, vec![m2.clone(), m1.clone()], &bob).await;
        assert_eq!(s, StatusCode::CREATED, "{r}");
        assert_eq!(r["status"], "queued");
        let att = &r["attachments"][0];
        assert_eq!(att["status"], "opened");
        assert_eq!(ids(&att["matches"]), [("known".to_string(), banked)]);
        let id = r["id"].as_i64().unwrap();
        let (s, g) = app.get(&format!("/v1/reports/{id}")).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(g["messages"][1]["content_text"], "hello");
        assert_eq!(g["messages"][0]["sender"], "alice");
        assert_eq!(g["messages"][0]["message_id"], m2.message_id.as_str());
        assert_eq!(g["messages"][0]["verified"], true);
        assert_eq!(
            g["messages"][0]["attachments"][0]["hashes"]["kind"],
            "photo"
        );
        assert_eq!(g["reporters"][0]["account"], "bob");
        // The same message reported again, by another recipient through a
        // relaying matcher key: the same report, one more reporter.
        let alice = enrol(app, "alice", "alice-laptop").await;
        let m = app.key(Role::Matcher).await;
        let (s, r2) = submit_as(app, &m, vec![m2.clone()], &alice).await;
        assert_eq!(s, StatusCode::OK, "{r2}");
        assert_eq!(
            (r2["id"].as_i64(), &r2["duplicate"]),
            (Some(id), &json!(true))
        );
        let (s, again) = submit_as(app, &bob.api_key, vec![m2, m1], &bob).await;
        assert_eq!(s, StatusCode::OK, "{again}");
        let (_, g) = app.get(&format!("/v1/reports/{id}")).await;
        assert_eq!(g["reporters"].as_array().unwrap().len(), 2, "{g}");
        let (_, l) = app.get("/v1/reports?status=queued").await;
        assert_eq!(l["items"].as_array().unwrap().len(), 1);
        // A matcher key submits but cannot read reports; a stamper key cannot submit.
        let (s, _) = app.call(Method::GET, "/v1/reports", Some(&m), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let st = stamper(app).await;
        let m3 = franked(app, "hi", None, "alice", "group-1").await;
        let (s, _) = submit_as(app, &st, vec![m3], &bob).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // The receiver checks the stamp's signature with the published key.
        let (s, k) = app.call(Method::GET, "/v1/franking/keys", None, None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(k["algorithm"], "ed25519");
    }

    pub(super) async fn forged_reports_are_rejected_and_recorded(app: &TestApp) {
        let bob = enrol(app, "bob", "phone").await;
        let submit = |m: Vec<MessageJson>| {
            let key = bob.api_key.clone();
            let bob = &bob;
            async move { submit_as(app, &key, m, bob).await }
        };
        let good = franked(app, "the real message", None, "mallory", "g").await;
        let other = franked(app, "another message", None, "mallory", "g").await;
        let mut alterations: Vec<(&str, MessageJson)> = Vec::new();
        let mut m = good.clone();
        m.content = b64(&Content::text("a different message").to_bytes());
        alterations.push(("content", m));
        let mut m = good.clone();
        m.salt = hex::encode([7u8; 16]);
        alterations.push(("salt", m));
        let mut m = good.clone();
        m.sender = "alice".into();
        alterations.push(("sender", m));
        let mut m = good.clone();
        m.conversation = "other-group".into();
        alterations.push(("conversation (replay elsewhere)", m));
        let mut m = good.clone();
        m.message_id = other.message_id.clone();
        alterations.push(("re-targeted at another message id", m));
        let mut m = good.clone();
        m.epoch += 1;
        alterations.push(("epoch", m));
        let mut m = good.clone();
        m.recipients.push("eve".into());
        alterations.push(("recipients", m));
        let mut m = good.clone();
        m.stamper = "another-stamper".into();
        alterations.push(("stamper", m));
        let mut m = good.clone();
        m.accepted_at += 1;
        alterations.push(("time", m));
        let mut m = good.clone();
        m.stamp = other.stamp.clone();
        alterations.push(("stamp swapped from another message", m));
        let mut m = good.clone();
        m.stamp.key_id = 99;
        alterations.push(("unknown service key", m));
        let n_alterations = alterations.len();
        for (what, m) in alterations {
            let (s, r) = submit(vec![m]).await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {r}");
            assert_eq!(r["error"]["code"], "report_rejected", "{what}");
            let id = r["report_id"].as_i64().unwrap();
            let (_, g) = app.get(&format!("/v1/reports/{id}")).await;
            assert_eq!(g["status"], "rejected", "{what}");
            assert!(
                g["rejection"].as_str().unwrap().starts_with("message 0"),
                "{what}: {g}"
            );
        }
        // An attachment the sender never referenced is refused, even on a valid message.
        let mut m = franked(app, "no attachment here", None, "mallory", "g").await;
        let with = franked(app, "x", Some(&image(PEN)), "mallory", "g").await;
        m.attachments = with.attachments.clone();
        let (s, r) = submit(vec![m]).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
        // Quoting someone else's attachment reference in the body does not pin
        // their file on the quoter: the body is text, not a reference.
        let quoted = {
            let mut att_ref = Content::parse(
                &base64::engine::general_purpose::STANDARD
                    .decode(&with.content)
                    .unwrap(),
            )
            .unwrap();
            att_ref.body.clear();
            franked(
                app,
                &String::from_utf8_lossy(&att_ref.to_bytes()),
                None,
                "mallory",
                "g",
            )
            .await
        };
        let mut m = quoted;
        m.attachments = with.attachments.clone();
        let (s, r) = submit(vec![m]).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "quoted reference: {r}");
        // The attachment's ciphertext swapped for another: refused.
        let mut m = with.clone();
        let other_att = franked(app, "y", Some(&image(BRIDGE)), "mallory", "g").await;
        m.attachments[0].ciphertext = other_att.attachments[0].ciphertext.clone();
        let (s, _) = submit(vec![m]).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        // A reporter who was not a recipient, a report signed by another
        // device's key, an unsigned report, a device key reporting as another
        // device: all refused and recorded.
        let eve = enrol(app, "eve", "eve-phone").await;
        let (s, r) = submit_as(app, &eve.api_key, vec![good.clone()], &eve).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "not a recipient: {r}");
        let mut forged = signed(vec![good.clone()], &bob);
        forged.reporter.as_mut().unwrap().signature =
            hex::encode(ed25519_dalek::Signer::sign(&eve.key, b"anything").to_bytes());
        let m = app.key(Role::Matcher).await;
        let (s, _) = app
            .call(
                Method::POST,
                "/v1/reports",
                Some(&m),
                Some(serde_json::to_value(&forged).unwrap()),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad reporter signature"
        );
        let mut unsigned = signed(vec![good.clone()], &bob);
        unsigned.reporter = None;
        let (s, _) = app
            .call(
                Method::POST,
                "/v1/reports",
                Some(&m),
                Some(serde_json::to_value(&unsigned).unwrap()),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "unsigned");
        let (s, _) = submit_as(app, &eve.api_key, vec![good.clone()], &bob).await;
        assert_eq!(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "device key as another device"
        );
        // A stamp cannot be made by any key but a stamper's: a curator or
        // admin cannot forge a "verified" report against anyone.
        for role in [Role::Matcher, Role::Curator, Role::Admin, Role::Device] {
            let k = if role == Role::Device {
                bob.api_key.clone()
            } else {
                app.key(role).await
            };
            let (s, _) = app
                .call(
                    Method::POST,
                    "/v1/franking/stamp",
                    Some(&k),
                    Some(json!({"tag": BASE, "sender": "alice", "conversation": "g",
                        "message_id": "m", "epoch": 1, "recipients": ["bob"]})),
                )
                .await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{role:?}");
        }
        // The stamper cannot choose the time: the server's clock is bound.
        let st = stamper(app).await;
        let (s, j) = app
            .call(
                Method::POST,
                "/v1/franking/stamp",
                Some(&st),
                Some(
                    json!({"tag": BASE, "sender": "a", "conversation": "g", "message_id": "m",
                    "epoch": 1, "recipients": ["b"], "accepted_at": 1}),
                ),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{j}");
        // Rejected reports are listed as such; the valid one still verifies after a key rotation.
        let (_, l) = app.get("/v1/reports?status=rejected").await;
        assert_eq!(
            l["items"].as_array().unwrap().len(),
            n_alterations + 3 + 4,
            "{l}"
        );
        let (s, k) = app.post("/v1/franking/rotate", json!({})).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(k["key_id"], 2);
        let (s, r) = submit(vec![good]).await;
        assert_eq!(s, StatusCode::CREATED, "{r}");
        let fresh = franked(app, "after rotation", None, "mallory", "g").await;
        assert_eq!(fresh.stamp.key_id, 2);
        // Malformed input is a 400, not a stored report.
        let (s, _) = app.post("/v1/reports", json!({"messages": []})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, _, _) = app.raw(Method::POST, "/v1/reports", b"{".to_vec()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    }
}
use reports::{
    forged_reports_are_rejected_and_recorded, verified_report_with_a_matching_attachment,
};

/// A binary older than the store refuses to start on it, for the service's
/// schema and for a feature module's tables alike, and says what to do;
/// nothing is written. The same store at its own version opens again.
async fn an_older_binary_refuses_a_newer_schema(app: &TestApp) {
    let st = &app.service.state;
    let s = &st.store;
    let reopen = || async {
        let mut c = support::config(app.dir.path(), st.config.database.clone());
        c.bootstrap_admin = false;
        bulwark_server::Service::open(c).await
    };
    sqlx::query("INSERT INTO schema_version (version) VALUES (9999)")
        .execute(&s.pool)
        .await
        .unwrap();
    let e = reopen().await.err().expect("opened a newer schema");
    let msg = format!("{e:#}");
    assert!(
        msg.contains("version 9999") && msg.contains("newer than this binary"),
        "{msg}"
    );
    sqlx::query("DELETE FROM schema_version WHERE version = 9999")
        .execute(&s.pool)
        .await
        .unwrap();
    let row = sqlx::query(&s.sql("SELECT value FROM meta WHERE key = ?"))
        .bind("counts")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    let counts: String = sqlx::Row::get(&row, "value");
    sqlx::query(&s.sql("UPDATE meta SET value = '9999' WHERE key = ?"))
        .bind("counts")
        .execute(&s.pool)
        .await
        .unwrap();
    let e = reopen().await.err().expect("opened newer module tables");
    let msg = format!("{e:#}");
    assert!(
        msg.contains("bank counter") && msg.contains("newer than this binary"),
        "{msg}"
    );
    sqlx::query(&s.sql("UPDATE meta SET value = ? WHERE key = ?"))
        .bind(&counts)
        .bind("counts")
        .execute(&s.pool)
        .await
        .unwrap();
    let again = reopen().await.expect("the store at its own version opens");
    again.state.store.pool.close().await;
}

/// A restart from the index snapshot sees every change made after it.
async fn restart_from_snapshot_replays_later_changes(app: &TestApp) {
    let st = &app.service.state;
    make_bank(app, "snap").await;
    let h = |i: u8| hex::encode([i; 32]);
    let mut ids = Vec::new();
    for i in 1..=4u8 {
        let (_, c) = app
            .post("/v1/banks/snap/content", json!({"signals": {"pdq": h(i)}}))
            .await;
        ids.push(c["id"].as_i64().unwrap());
    }
    st.catalog.save_snapshot(&st.store).await.unwrap();
    // After the snapshot: one added, one disabled, one deleted.
    app.post("/v1/banks/snap/content", json!({"signals": {"pdq": h(5)}}))
        .await;
    app.call(
        Method::PATCH,
        &format!("/v1/banks/snap/content/{}", ids[1]),
        Some(&app.admin),
        Some(json!({"enabled": false})),
    )
    .await;
    app.call(
        Method::DELETE,
        &format!("/v1/banks/snap/content/{}", ids[2]),
        Some(&app.admin),
        None,
    )
    .await;
    let fresh = bulwark_server::catalog::Catalog::new();
    fresh.set_snapshot_path(app.dir.path().join("index.snapshot"));
    assert!(
        fresh.load(&st.store).await.unwrap(),
        "the snapshot was used"
    );
    let found = |c: &bulwark_server::catalog::Catalog, i: u8| {
        !c.search(&h(i).parse().unwrap(), None).is_empty()
    };
    assert_eq!(
        (1..=5).map(|i| found(&fresh, i)).collect::<Vec<_>>(),
        [true, false, false, true, true]
    );
    // A snapshot further behind than the replay cap (3 changes > 2) is not
    // replayed: the index is read from the store, with the same answers.
    let capped = bulwark_server::catalog::Catalog::new();
    capped.set_snapshot_path(app.dir.path().join("index.snapshot"));
    capped.set_max_replay(2);
    assert!(
        !capped.load(&st.store).await.unwrap(),
        "a snapshot past the replay cap was replayed"
    );
    assert_eq!(
        (1..=5).map(|i| found(&capped, i)).collect::<Vec<_>>(),
        [true, false, false, true, true]
    );
    // A bulk load around the change log makes the snapshot stale: it is not used.
    let bank = bulwark_server::db::bank_by_name(&st.store, "snap")
        .await
        .unwrap()
        .unwrap();
    bulwark_server::db::bulk_insert_pdq(&st.store, bank.id, "bulk", &[h(9).parse().unwrap()])
        .await
        .unwrap();
    let again = bulwark_server::catalog::Catalog::new();
    again.set_snapshot_path(app.dir.path().join("index.snapshot"));
    assert!(
        !again.load(&st.store).await.unwrap(),
        "a stale snapshot was used"
    );
    assert!(found(&again, 9) && found(&again, 5) && !found(&again, 3));
}

/// A restart rebuilds the index from the snapshot plus the index journal,
/// reading nothing back from the store for the changes the journal holds;
/// what the journal cannot vouch for (cut off, never written, or naming
/// changes the store does not hold) is read from the store instead.
async fn restart_reads_the_index_journal_not_the_store(app: &TestApp) {
    use bulwark_server::catalog::Catalog;
    let st = &app.service.state;
    make_bank(app, "jrnl").await;
    let h = |i: u8| hex::encode([i; 32]);
    let add = |i: u8| {
        let body = json!({"signals": {"pdq": h(i)}});
        async move {
            let (s, c) = app.post("/v1/banks/jrnl/content", body).await;
            assert_eq!(s, StatusCode::CREATED, "{c}");
            c["id"].as_i64().unwrap()
        }
    };
    let mut ids = Vec::new();
    for i in 1..=4u8 {
        ids.push(add(i).await);
    }
    st.catalog.save_snapshot(&st.store).await.unwrap();
    // After the snapshot: added, disabled, deleted, added then deleted.
    add(5).await;
    let patch = |id: i64, enabled: bool| async move {
        let path = format!("/v1/banks/jrnl/content/{id}");
        let body = json!({"enabled": enabled});
        app.call(Method::PATCH, &path, Some(&app.admin), Some(body))
            .await
    };
    let delete = |id: i64| async move {
        let path = format!("/v1/banks/jrnl/content/{id}");
        app.call(Method::DELETE, &path, Some(&app.admin), None)
            .await
    };
    patch(ids[1], false).await;
    delete(ids[2]).await;
    let six = add(6).await;
    delete(six).await;
    assert!(st.catalog.flush_journal(&st.store).await.unwrap() > 0);
    let expected = [true, false, false, true, true, false];
    let found = |c: &Catalog, i: u8| !c.search(&h(i).parse().unwrap(), None).is_empty();
    let reload = || async {
        let c = Catalog::new();
        c.set_snapshot_path(app.dir.path().join("index.snapshot"));
        assert!(c.load(&st.store).await.unwrap(), "the snapshot was used");
        c
    };
    let c = reload().await;
    let stats = c.last_load();
    assert_eq!(stats.journal_records, 5, "one record per write: {stats:?}");
    assert_eq!(
        stats.replayed, 0,
        "changes were read from the store: {stats:?}"
    );
    assert_eq!((1..=6).map(|i| found(&c, i)).collect::<Vec<_>>(), expected);
    // The same answers as a catalog read whole from the store.
    let whole = Catalog::new();
    whole.load(&st.store).await.unwrap();
    for i in 1..=6 {
        assert_eq!(
            c.search(&h(i).parse().unwrap(), None).len(),
            whole.search(&h(i).parse().unwrap(), None).len()
        );
    }
    assert_eq!(c.index_size().0, whole.index_size().0);

    let journal = app.dir.path().join("index.journal");
    let bytes = std::fs::read(&journal).unwrap();
    // A write cut off by a crash: the journal ends at its last whole record
    // and the rest comes from the store.
    std::fs::write(&journal, &bytes[..bytes.len() - 3]).unwrap();
    let c = reload().await;
    assert_eq!(c.last_load().journal_records, stats.journal_records - 1);
    assert!(c.last_load().replayed >= 1);
    assert_eq!((1..=6).map(|i| found(&c, i)).collect::<Vec<_>>(), expected);

    // A record naming a change the store does not hold (written before a
    // crash that lost the change, or forged): dropped with everything after
    // it, so its entry never matches.
    let latest = bulwark_server::db::catalog::latest_change(&st.store)
        .await
        .unwrap();
    let mut forged = bytes.clone();
    bulwark_index::journal::encode_record(
        &mut forged,
        &[latest + 1],
        &[],
        &[(u64::MAX >> 2, [9u8; 32])],
    );
    bulwark_index::journal::encode_record(&mut forged, &[latest], &[], &[(7, [10u8; 32])]);
    std::fs::write(&journal, &forged).unwrap();
    let c = reload().await;
    assert_eq!(c.last_load().journal_dropped, 2);
    assert_eq!(c.index_size().0, whole.index_size().0);
    assert!(c.search(&h(9).parse().unwrap(), None).is_empty());

    // A journal of another snapshot is not used.
    std::fs::write(&journal, &bytes).unwrap();
    st.catalog.save_snapshot(&st.store).await.unwrap();
    std::fs::write(&journal, &bytes).unwrap();
    let c = reload().await;
    assert_eq!(c.last_load().journal_records, 0);
    assert_eq!((1..=6).map(|i| found(&c, i)).collect::<Vec<_>>(), expected);

    // Changes not yet flushed when the process died come from the store.
    st.catalog.save_snapshot(&st.store).await.unwrap();
    add(7).await;
    let c = reload().await;
    assert_eq!(c.last_load().replayed, 1);
    assert!(found(&c, 7));

    // While a snapshot is written, records go on to the current journal as
    // well as to the new one: a snapshot that is never completed (a crash,
    // or here a failed write) leaves the current one with its whole journal.
    let blocker = app.dir.path().join("index.tmp");
    std::fs::create_dir(&blocker).unwrap();
    assert!(st.catalog.save_snapshot(&st.store).await.is_err());
    add(8).await;
    st.catalog.flush_journal(&st.store).await.unwrap();
    let c = reload().await;
    assert_eq!(c.last_load().replayed, 0, "{:?}", c.last_load());
    assert!(found(&c, 7) && found(&c, 8));
    assert!(!app.dir.path().join("index.journal.new").exists());
    std::fs::remove_dir(&blocker).unwrap();
}

mod vouchers {
    use super::*;
    use base64::Engine as _;
    use bulwark_pdq::PdqHash;
    use bulwark_psi::{DeviceAccount, Pdata, Root};

    fn hash(i: u8) -> PdqHash {
        // Far apart: each byte pattern differs in about half the bits.
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(i as u64);
        PdqHash::from_bytes(rand::Rng::r#gen(&mut rng))
    }

    /// `h` with bits `flips` flipped, in PDQ's own bit numbering (the one
    /// the LSH tables sample), which is not the byte order of `as_bytes`.
    fn near(h: &PdqHash, flips: &[usize]) -> PdqHash {
        let mut b = *h.as_bytes();
        for &k in flips {
            let raw = (0..256)
                .find(|&r| {
                    let mut c = *h.as_bytes();
                    c[r / 8] ^= 1 << (r % 8);
                    PdqHash::from_bytes(c).bit(k) != h.bit(k)
                })
                .expect("every PDQ bit lives in some byte");
            b[raw / 8] ^= 1 << (raw % 8);
        }
        PdqHash::from_bytes(b)
    }

    /// Signs a voucher with an enrolled device's key (as the client SDK does).
    fn body(d: &super::reports::Device, account: &str, voucher: &[u8]) -> Value {
        use ed25519_dalek::Signer;
        let sig = d.key.sign(&bulwark_psi::envelope::signing_input(
            account, &d.id, voucher,
        ));
        json!({"account": account, "device": d.id,
            "voucher": base64::engine::general_purpose::STANDARD.encode(voucher),
            "signature": hex::encode(sig.to_bytes())})
    }

    async fn send(
        app: &TestApp,
        d: &super::reports::Device,
        pdata: &Pdata,
        dev: &DeviceAccount,
        h: &PdqHash,
    ) -> (StatusCode, Value) {
        let v = dev
            .voucher(pdata, h, &[7u8; 1024], &mut rand::thread_rng())
            .unwrap();
        let r = app
            .call(
                Method::POST,
                "/v1/vouchers",
                Some(&d.api_key),
                Some(body(d, &d.account, &v.to_bytes())),
            )
            .await;
        // The worker opens off the request path; tests drain its queue.
        bulwark_server::api::vouchers::process_pending(&app.service.state, 1000)
            .await
            .unwrap();
        r
    }

    /// Every enrolled provider in `keys` signs release `id`; returns the last answer.
    async fn sign_release(app: &TestApp, id: i64, keys: &[&bulwark_psi::ProviderKey]) -> Value {
        let (s, _) = app
            .call(Method::GET, &format!("/v1/pdata/releases/{id}"), None, None)
            .await;
        assert_eq!(s, StatusCode::OK);
        let req = axum::http::Request::builder()
            .uri(format!("/v1/pdata/releases/{id}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = tower::ServiceExt::oneshot(app.router.clone(), req)
            .await
            .unwrap();
        let root: Root = resp.headers()["x-bulwark-pdata-root"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        let pdata = Pdata::from_bytes(&bytes, &root).unwrap();
        let mut last = Value::Null;
        for k in keys {
            let sig = k.sign(&pdata);
            let (s, j) = app
                .call(
                    Method::POST,
                    &format!("/v1/pdata/releases/{id}/signatures"),
                    None,
                    Some(json!({"public_key": sig.key.to_string(),
                        "signature": hex::encode(sig.signature)})),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{j}");
            last = j;
        }
        last
    }

    pub(super) async fn vouchers_open_only_above_the_threshold(app: &TestApp) {
        // Two providers agree on hashes 1..=6; hash 7 comes from one provider only (twice).
        for (name, provider) in [("ncmec", "org-a"), ("iwf", "org-b"), ("ncmec2", "org-a")] {
            let (s, _) = app
                .post("/v1/banks", json!({"name": name, "provider": provider}))
                .await;
            assert_eq!(s, StatusCode::CREATED);
        }
        let mut content = HashMap::new();
        for i in 1..=7u8 {
            let banks: &[&str] = if i == 7 {
                &["ncmec", "ncmec2"]
            } else {
                &["ncmec", "iwf"]
            };
            for b in banks {
                let (_, c) = app
                    .post(
                        &format!("/v1/banks/{b}/content"),
                        json!({"signals": {"pdq": hash(i).to_string()}}),
                    )
                    .await;
                content.entry(i).or_insert(c["id"].as_i64().unwrap());
            }
        }
        let curator = app.key(Role::Curator).await;
        let (s, _) = app
            .call(
                Method::POST,
                "/v1/pdata/build",
                Some(&curator),
                Some(json!({})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, b) = app
            .post(
                "/v1/pdata/build",
                json!({"profile": "compact", "threshold": 2}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert_eq!(b["entries"], 6, "only hashes two providers agree on");
        let release = b["release"].as_i64().unwrap();
        // No admin can lower the two-provider rule.
        let (s, j) = app
            .post(
                "/v1/pdata/build",
                json!({"profile": "compact", "min_providers": 1}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{j}");
        // Not served until two enrolled providers signed it.
        let (s, _) = app.call(Method::GET, "/v1/pdata", None, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let mut rng = rand::thread_rng();
        let (pa, pb, stranger) = (
            bulwark_psi::ProviderKey::generate(&mut rng),
            bulwark_psi::ProviderKey::generate(&mut rng),
            bulwark_psi::ProviderKey::generate(&mut rng),
        );
        for (name, k) in [("org-a", &pa), ("org-b", &pb)] {
            let (s, j) = app
                .post(
                    "/v1/providers",
                    json!({"name": name, "public_key": k.public().to_string()}),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{j}");
        }
        let (s, j) = app
            .call(
                Method::POST,
                &format!("/v1/pdata/releases/{release}/signatures"),
                None,
                Some(json!({"public_key": stranger.public().to_string(), "signature": "00".repeat(64)})),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "a key that is not an enrolled provider: {j}"
        );
        let (s, j) = app
            .call(
                Method::POST,
                &format!("/v1/pdata/releases/{release}/signatures"),
                None,
                Some(json!({"public_key": pa.public().to_string(), "signature": "00".repeat(64)})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "a bad signature: {j}");
        let one = sign_release(app, release, &[&pa]).await;
        assert_eq!(
            (one["published"].as_bool(), one["valid_signatures"].as_u64()),
            (Some(false), Some(1))
        );
        // The same provider twice still counts once.
        let again = sign_release(app, release, &[&pa]).await;
        assert_eq!(again["published"], false);
        let (s, _) = app.call(Method::GET, "/v1/pdata", None, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let two = sign_release(app, release, &[&pb]).await;
        assert_eq!(two["published"], true, "{two}");
        app.service.state.releases.clear_cache();

        // Public: the pdata and its root; the device refuses any other root.
        let (s, r) = app.call(Method::GET, "/v1/pdata/root", None, None).await;
        assert_eq!(s, StatusCode::OK);
        let root: Root = r["root"].as_str().unwrap().parse().unwrap();
        let req = axum::http::Request::builder()
            .uri("/v1/pdata")
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = tower::ServiceExt::oneshot(app.router.clone(), req)
            .await
            .unwrap();
        assert_eq!(
            resp.headers()["x-bulwark-pdata-root"].to_str().unwrap(),
            root.to_string()
        );
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        let pdata = Pdata::from_bytes(&bytes, &root).unwrap();
        let mut wrong = root.0;
        wrong[0] ^= 1;
        assert!(Pdata::from_bytes(&bytes, &Root(wrong)).is_err());
        // The device's checks: the signed root carries both pinned providers'
        // signatures, and it is in the public log.
        let req = axum::http::Request::builder()
            .uri("/v1/pdata/signed")
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = tower::ServiceExt::oneshot(app.router.clone(), req)
            .await
            .unwrap();
        let index: u64 = resp.headers()["x-bulwark-log-index"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let signed = bulwark_psi::SignedRoot::from_bytes(
            &http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes(),
        )
        .unwrap();
        let policy = bulwark_psi::Policy::default()
            .pin([pa.public(), pb.public()])
            .allow_threshold(2);
        assert!(Pdata::from_signed(&bytes, &signed, &policy).is_ok());
        let one_pinned = bulwark_psi::Policy::default()
            .pin([pa.public()])
            .allow_threshold(2);
        assert!(
            Pdata::from_signed(&bytes, &signed, &one_pinned).is_err(),
            "one pinned provider is not enough"
        );
        let (_, head) = app.call(Method::GET, "/v1/pdata/log", None, None).await;
        let (_, proof) = app
            .call(
                Method::GET,
                &format!(
                    "/v1/pdata/log/inclusion?index={index}&size={}",
                    head["size"]
                ),
                None,
                None,
            )
            .await;
        let h = |v: &Value| -> [u8; 32] {
            hex::decode(v.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        };
        let tree = bulwark_psi::log::TreeHead {
            size: head["size"].as_u64().unwrap(),
            root: h(&head["root"]),
        };
        let path: Vec<[u8; 32]> = proof["proof"].as_array().unwrap().iter().map(h).collect();
        signed.check_logged(index, &tree, &path).unwrap();

        let dev = DeviceAccount::generate(&mut rand::thread_rng());
        // Three flipped bits that table 0 does not sample, so every copy opens there.
        let sampled: Vec<usize> = pdata.positions()[0].iter().map(|&b| b as usize).collect();
        let flips: Vec<usize> = (0..256)
            .filter(|b| !sampled.contains(b))
            .step_by(50)
            .take(3)
            .collect();
        // Hashes whose vouchers are real (a device sends a synthetic one for ~1 % of hashes).
        let real: Vec<PdqHash> = (1..=6u8)
            .map(|i| near(&hash(i), &flips))
            .filter(|h| !dev.sends_synthetic_for(&pdata, h))
            .collect();
        assert!(real.len() >= 4);
        let m = app.key(Role::Matcher).await;
        let d1 = super::reports::enrol(app, "acct-1", "phone").await;
        let not_flagged = json!({"account": "acct-1", "status": "not flagged"});
        let (_, unknown) = app.get("/v1/accounts/acct-1").await;
        assert_eq!(unknown, not_flagged);
        // A non-matching image, two matching ones and a duplicate: at the threshold (t = 2), nothing.
        for h in [hash(99), real[0], real[1], real[1]] {
            let (s, j) = send(app, &d1, &pdata, &dev, &h).await;
            assert_eq!((s, j), (StatusCode::ACCEPTED, json!({"accepted": true})));
            let (_, a) = app.get("/v1/accounts/acct-1").await;
            assert_eq!(a, not_flagged, "nothing below or at the threshold");
        }
        // A malformed voucher is refused without touching the account.
        let (s, j) = app
            .call(
                Method::POST,
                "/v1/vouchers",
                Some(&d1.api_key),
                Some(body(&d1, "acct-1", b"AAAA")),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{j}");
        // Mallory, with a matcher key and her own enrolled device, cannot file
        // vouchers under Alice's account: unenrolled device, wrong key, or a
        // device key used for another account — all refused before queueing.
        let mallory = super::reports::enrol(app, "mallory", "m-phone").await;
        let v = dev
            .voucher(&pdata, &real[2], &[7u8; 1024], &mut rand::thread_rng())
            .unwrap()
            .to_bytes();
        let mut forged = body(&mallory, "acct-1", &v);
        forged["device"] = json!("phone");
        for (what, key, b) in [
            (
                "another account's device id with mallory's signature",
                &m,
                forged,
            ),
            (
                "mallory's device for acct-1",
                &m,
                body(&mallory, "acct-1", &v),
            ),
            (
                "mallory's device key for acct-1",
                &mallory.api_key,
                body(&mallory, "acct-1", &v),
            ),
        ] {
            let (s, j) = app
                .call(Method::POST, "/v1/vouchers", Some(key), Some(b))
                .await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{what}: {j}");
        }
        let pending: i64 = sqlx::Row::get(
            &sqlx::query("SELECT COUNT(*) AS n FROM psi_pending")
                .fetch_one(&app.service.state.store.pool)
                .await
                .unwrap(),
            "n",
        );
        assert_eq!(pending, 0, "nothing forged was queued");
        // False LSH candidates (they open a table but are 40 bits from any
        // banked hash) never flag an account, however many cross the threshold.
        let d3 = super::reports::enrol(app, "acct-3", "phone").await;
        let far: Vec<usize> = (0..256).filter(|b| !sampled.contains(b)).take(40).collect();
        let dev3 = DeviceAccount::generate(&mut rand::thread_rng());
        for i in 1..=5u8 {
            send(app, &d3, &pdata, &dev3, &near(&hash(i), &far)).await;
        }
        let (_, a) = app.get("/v1/accounts/acct-3").await;
        assert_eq!(a["status"], "not flagged", "{a}");
        // The third distinct match crosses it: exactly the matched set opens.
        let (s, j) = send(app, &d1, &pdata, &dev, &real[2]).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{j}");
        let (_, a) = app.get("/v1/accounts/acct-1").await;
        assert_eq!(a["status"], "flagged", "{a}");
        let mut got: Vec<i64> = a["matches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["content_id"].as_i64().unwrap())
            .collect();
        got.sort();
        let mut want: Vec<i64> = real[..3]
            .iter()
            .map(|h| {
                *content
                    .iter()
                    .find(|(i, _)| h.distance(&hash(**i)) <= 3)
                    .unwrap()
                    .1
            })
            .collect();
        want.sort();
        assert_eq!(got, want);
        assert!(
            a["matches"]
                .as_array()
                .unwrap()
                .iter()
                .all(|x| x["distance"] == 3 && x["bank"] == "ncmec")
        );
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(a["matches"][0]["derivative_base64"].as_str().unwrap())
                .unwrap(),
            vec![7u8; 1024]
        );
        // Only curators read accounts.
        let (s, _) = app
            .call(Method::GET, "/v1/accounts/acct-1", Some(&m), None)
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // The flag is sticky: more vouchers (even past the state's cap) do not clear it.
        for i in 100..140u8 {
            send(app, &d1, &pdata, &dev, &hash(i)).await;
        }
        let (_, a) = app.get("/v1/accounts/acct-1").await;
        assert_eq!(a["status"], "flagged");
        // Only a reviewer clears it, and that is audited.
        let (s, _) = app
            .call(Method::POST, "/v1/accounts/acct-1/clear", Some(&m), None)
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, c) = app
            .post("/v1/accounts/acct-1/clear", json!({"note": "reviewed"}))
            .await;
        assert_eq!(s, StatusCode::OK, "{c}");
        let (_, a) = app.get("/v1/accounts/acct-1").await;
        assert_eq!(a, not_flagged);
        let (_, audit) = app.get("/v1/audit").await;
        assert!(audit.to_string().contains("account.clear"), "{audit}");
        // A new release: vouchers made against the old pdata are refused as stale.
        let (s, b2) = app
            .post(
                "/v1/pdata/build",
                json!({"profile": "compact", "threshold": 2}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        sign_release(app, b2["release"].as_i64().unwrap(), &[&pa, &pb]).await;
        app.service.state.releases.clear_cache();
        // The log grew by one and the new head extends the old one.
        let (_, head2) = app.call(Method::GET, "/v1/pdata/log", None, None).await;
        assert_eq!(head2["size"], 2);
        let (_, c) = app
            .call(
                Method::GET,
                "/v1/pdata/log/consistency?old=1&new=2",
                None,
                None,
            )
            .await;
        let new_head = bulwark_psi::log::TreeHead {
            size: 2,
            root: h(&head2["root"]),
        };
        let path: Vec<[u8; 32]> = c["proof"].as_array().unwrap().iter().map(h).collect();
        new_head.check_extends(&tree, &path).unwrap();
        let d2 = super::reports::enrol(app, "acct-2", "phone").await;
        let (s, j) = send(app, &d2, &pdata, &dev, &real[0]).await;
        assert_eq!(s, StatusCode::CONFLICT, "{j}");
        assert_eq!(j["error"]["code"], "stale_pdata");
    }
}
use std::collections::HashMap;
use vouchers::vouchers_open_only_above_the_threshold;
/// The response-shape checker itself finds each kind of mismatch.
#[test]
fn openapi_checker_catches_wrong_shapes() {
    use support::openapi::mismatch;
    let doc = serde_json::json!({
        "paths": {"/v1/things/{id}": {"get": {"responses": {
            "200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/T"}}}},
            "404": {"$ref": "#/components/responses/E"}
        }}}},
        "components": {
            "schemas": {"T": {"type": "object", "required": ["n"], "properties": {
                "n": {"type": "integer", "minimum": 0},
                "k": {"type": ["string", "null"], "enum": ["a", null]},
                "xs": {"type": "array", "items": {"type": "string"}}
            }}},
            "responses": {"E": {"content": {"application/json": {"schema": {"type": "object"}}}}}
        }
    });
    let get = |status: u16, body: &str| {
        mismatch(
            &doc,
            &Method::GET,
            "/v1/things/7?x=1",
            status,
            Some("application/json"),
            body.as_bytes(),
        )
    };
    assert_eq!(get(200, r#"{"n": 1, "k": null, "xs": ["a"]}"#), Ok(()));
    assert_eq!(get(404, r#"{"anything": 1}"#), Ok(()));
    for (status, body, why) in [
        (200, r#"{"k": "a"}"#, "required field \"n\""),
        (200, r#"{"n": -1}"#, "minimum"),
        (200, r#"{"n": 1.5}"#, "expected type"),
        (200, r#"{"n": 1, "k": "b"}"#, "not one of"),
        (200, r#"{"n": 1, "xs": [1]}"#, "$.xs[0]"),
        (200, r#"{"n": 1, "z": 1}"#, "$.z: not a documented field"),
        (201, r#"{"n": 1}"#, "status 201 is not documented"),
    ] {
        let e = get(status, body).expect_err(body);
        assert!(e.contains(why), "{body}: {e}");
    }
    let post = mismatch(&doc, &Method::POST, "/v1/things/7", 200, None, b"");
    assert!(post.is_err_and(|e| e.contains("POST is not documented")));
    assert_eq!(
        mismatch(&doc, &Method::GET, "/v1/other", 404, None, b""),
        Ok(())
    );
    assert!(mismatch(&doc, &Method::GET, "/v1/other", 200, None, b"").is_err());
}
