//! `/v1/hash` and `/v1/match` with extra hashes (bulwark_pdq::MultiHash): a
//! captioned copy of a banked image is found through its content-region hash,
//! which its plain full-image hash cannot do.

#![allow(clippy::unwrap_used)]

mod support;

use axum::http::{Method, StatusCode};
use bulwark_server::auth::Role;
use serde_json::json;
use support::TestApp;

/// A conformance image (`BULWARK_CONFORMANCE_DIR` overrides where the shared
/// set lives, as for the PDQ crate's tests: worktrees sit deeper than main).
fn image(name: &str) -> Vec<u8> {
    match std::env::var("BULWARK_CONFORMANCE_DIR") {
        Ok(d) => std::fs::read(std::path::Path::new(&d).join("pdq/images").join(name)).unwrap(),
        Err(_) => support::image(name),
    }
}

const BRIDGE: &str = "reg-test-input/dih/bridge-1-original.jpg";
const PEN: &str = "reg-test-input/pen-and-coaster.png";

/// The image with a white caption bar (20 % of its height) appended below,
/// holding a line of black "words", re-encoded as JPEG at quality 85: what a
/// re-post with a caption looks like.
fn captioned_copy(bytes: &[u8]) -> Vec<u8> {
    let img = bulwark_pdq::decode(bytes, &bulwark_pdq::Limits::default()).unwrap();
    assert_eq!(img.channels, 3);
    let (w, h) = (img.width as usize, img.height as usize);
    let bar = h / 5;
    let mut px = img.pixels.clone();
    px.resize(w * (h + bar) * 3, 255);
    for y in h + bar / 3..h + 2 * bar / 3 {
        for x in (w / 20..w - w / 20).filter(|x| x % (w / 8) < w / 10) {
            px[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&[0, 0, 0]);
        }
    }
    let out = bulwark_pdq::Image {
        width: w as u32,
        height: (h + bar) as u32,
        channels: 3,
        pixels: px,
    };
    bulwark_pdq::encode_jpeg(&out, 85).unwrap()
}

#[tokio::test]
async fn a_captioned_copy_matches_through_its_region_hash_only() {
    let app = TestApp::sqlite().await;
    let (s, j) = app.post("/v1/banks", json!({"name": "photos"})).await;
    assert_eq!(s, StatusCode::CREATED, "{j}");
    let bridge = image(BRIDGE);
    let (s, added) = app
        .upload("/v1/banks/photos/content", &app.admin, &bridge, &[])
        .await;
    assert_eq!(s, StatusCode::CREATED, "{added}");
    let id = added["id"].as_i64().unwrap();

    let copy = captioned_copy(&bridge);
    // Independent check with the PDQ crate: the plain hashes are far apart.
    let limits = bulwark_pdq::Limits::default();
    let plain_bank = bulwark_pdq::hash_bytes(&bridge, Default::default(), &limits).unwrap();
    let plain_copy = bulwark_pdq::hash_bytes(&copy, Default::default(), &limits).unwrap();
    let full_distance = plain_bank.hash.distance(&plain_copy.hash);
    assert!(full_distance > 31, "full-image distance {full_distance}");

    let matcher = app.key(Role::Matcher).await;
    // /v1/hash reports the extras with their kind; the full hash is unchanged.
    let (s, h) = app.upload("/v1/hash", &matcher, &copy, &[]).await;
    assert_eq!(s, StatusCode::OK, "{h}");
    assert_eq!(h["pdq"].as_str().unwrap(), plain_copy.hash.to_string());
    let region = h["extras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["hash_kind"] == "region")
        .expect("a region hash for a captioned copy")
        .clone();
    let region_hash: bulwark_pdq::PdqHash = region["pdq"].as_str().unwrap().parse().unwrap();
    assert!(region_hash.distance(&plain_bank.hash) <= 31);

    // /v1/match finds the banked item once, through the region hash.
    let (s, m) = app.upload("/v1/match", &matcher, &copy, &[]).await;
    assert_eq!(s, StatusCode::OK, "{m}");
    let matches = m["matches"].as_array().unwrap();
    assert_eq!(matches.len(), 1, "{m}");
    assert_eq!(matches[0]["content_id"].as_i64(), Some(id));
    assert_eq!(matches[0]["hash_kind"], "region");
    assert_eq!(matches[0]["signal_type"], "pdq");
    assert_eq!(matches[0]["query_signal"], region["pdq"]);
    assert!(matches[0]["distance"].as_u64().unwrap() <= 31);

    // The original itself matches by its full hash (no hash_kind: not an
    // extra), and an unrelated image matches nothing, extras included.
    let (_, m) = app.upload("/v1/match", &matcher, &bridge, &[]).await;
    let pdq: Vec<_> = m["matches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["signal_type"] == "pdq")
        .collect();
    assert_eq!(pdq.len(), 1, "{m}");
    assert!(pdq[0].get("hash_kind").is_none());
    let (_, m) = app.upload("/v1/match", &matcher, &image(PEN), &[]).await;
    assert_eq!(m["matches"], json!([]));

    // Extra-hash matches are counted apart, by kind.
    let (s, _, text) = app.raw(Method::GET, "/metrics", Vec::new()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        text.contains("bulwark_extra_matches_total{bank=\"photos\",hash_kind=\"region\"} 1"),
        "{text}"
    );
    app.cleanup().await;
}
