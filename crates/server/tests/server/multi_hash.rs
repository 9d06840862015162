//! `/v1/hash` and `/v1/match` with extra hashes (bulwark_pdq::MultiHash): a
//! captioned, letterboxed or cropped copy of a banked image is found through
//! the extras of the query and of the bank (crates/service/src/extras.rs),
//! which the plain full-image hash cannot do.

#![allow(clippy::unwrap_used)]

use crate::support;

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
async fn a_captioned_copy_matches_through_an_extra_only() {
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

    // /v1/match finds the banked item once, through an extra of the query
    // (the region, or a crop of it against the same banked crop): the full
    // hash of the captioned copy cannot match.
    let (s, m) = app.upload("/v1/match", &matcher, &copy, &[]).await;
    assert_eq!(s, StatusCode::OK, "{m}");
    let matches = m["matches"].as_array().unwrap();
    assert_eq!(matches.len(), 1, "{m}");
    assert_eq!(matches[0]["content_id"].as_i64(), Some(id));
    let kind = matches[0]["hash_kind"].as_str().unwrap().to_string();
    assert_ne!(kind, "full", "{m}");
    assert_eq!(matches[0]["signal_type"], "pdq");
    let used = h["extras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["hash_kind"] == kind.as_str())
        .expect("the matching kind is among /v1/hash's extras");
    assert_eq!(matches[0]["query_signal"], used["pdq"]);
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
        text.contains(&format!(
            "bulwark_extra_matches_total{{bank=\"photos\",hash_kind=\"{kind}\"}} 1"
        )),
        "{text}"
    );
    app.cleanup().await;
}

/// Decoded RGB pixels of a conformance image.
fn rgb(bytes: &[u8]) -> (Vec<u8>, usize, usize) {
    let img = bulwark_pdq::decode(bytes, &bulwark_pdq::Limits::default()).unwrap();
    assert_eq!(img.channels, 3);
    (img.pixels, img.width as usize, img.height as usize)
}

fn jpeg(px: Vec<u8>, w: usize, h: usize) -> Vec<u8> {
    let out = bulwark_pdq::Image {
        width: w as u32,
        height: h as u32,
        channels: 3,
        pixels: px,
    };
    bulwark_pdq::encode_jpeg(&out, 90).unwrap()
}

/// 5 % cut off every edge, re-encoded: the crop plain PDQ misses.
fn cropped_copy(bytes: &[u8]) -> Vec<u8> {
    let (px, w, h) = rgb(bytes);
    let (dx, dy) = (w / 20, h / 20);
    let (cw, ch) = (w - 2 * dx, h - 2 * dy);
    let mut out = Vec::with_capacity(cw * ch * 3);
    for y in dy..dy + ch {
        out.extend_from_slice(&px[(y * w + dx) * 3..(y * w + dx + cw) * 3]);
    }
    jpeg(out, cw, ch)
}

/// Black bars of 10 % of the height above and below, re-encoded.
fn letterboxed_copy(bytes: &[u8]) -> Vec<u8> {
    let (px, w, h) = rgb(bytes);
    let bar = h / 10;
    let mut out = vec![0u8; w * bar * 3];
    out.extend_from_slice(&px);
    out.resize(w * (h + 2 * bar) * 3, 0);
    jpeg(out, w, h + 2 * bar)
}

fn pdq_matches(m: &serde_json::Value) -> Vec<serde_json::Value> {
    m["matches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["signal_type"] == "pdq")
        .cloned()
        .collect()
}

/// The one PDQ match of an upload through an extra, checked against the PDQ
/// crate: the reported distance is that between the query's hash of the
/// reported kind and the banked original's hash of the reported bank kind.
async fn extra_match(
    app: &TestApp,
    key: &str,
    copy: &[u8],
    original: &[u8],
    id: i64,
) -> (String, String) {
    let (s, m) = app.upload("/v1/match", key, copy, &[]).await;
    assert_eq!(s, StatusCode::OK, "{m}");
    let pdq = pdq_matches(&m);
    assert_eq!(pdq.len(), 1, "{m}");
    assert_eq!(pdq[0]["content_id"].as_i64(), Some(id));
    let (qk, bk) = (
        pdq[0]["hash_kind"].as_str().unwrap().to_string(),
        pdq[0]["bank_hash_kind"].as_str().unwrap().to_string(),
    );
    let limits = bulwark_pdq::Limits::default();
    let all = bulwark_pdq::KindSet::ALL;
    let q = bulwark_pdq::MultiHash::of_bytes(copy, Default::default(), &limits, all).unwrap();
    let b = bulwark_pdq::MultiHash::of_bytes(original, Default::default(), &limits, all).unwrap();
    let qh = q.get(qk.parse().unwrap()).unwrap().hash;
    let bh = b.get(bk.parse().unwrap()).unwrap().hash;
    let d = u64::from(qh.distance(&bh));
    assert_eq!(pdq[0]["distance"].as_u64(), Some(d), "{m}");
    assert!(d <= 31, "{m}");
    assert_eq!(pdq[0]["query_signal"].as_str().unwrap(), qh.to_string());
    (qk, bk)
}

/// A 5 % crop and a letterbox of a banked photo: with plain banks the crop
/// is missed (its hashes meet no banked full hash), with the banked extras
/// (the default) both are found, through the reported kinds; disabling or
/// deleting the photo removes its extras from matching, also after a reload
/// from the store and from an index snapshot.
#[tokio::test]
async fn banked_extras_find_crops_and_framing_and_go_with_their_content() {
    let bridge = image(BRIDGE);
    let crop = cropped_copy(&bridge);
    let letterbox = letterboxed_copy(&bridge);
    let limits = bulwark_pdq::Limits::default();
    let plain = |b: &[u8]| {
        bulwark_pdq::hash_bytes(b, Default::default(), &limits)
            .unwrap()
            .hash
    };
    assert!(plain(&bridge).distance(&plain(&crop)) > 31);
    assert!(plain(&bridge).distance(&plain(&letterbox)) > 31);

    // Before: a server whose banks store no extras.
    let app = TestApp::sqlite_with(|c| c.extra_hashes = bulwark_pdq::KindSet::NONE).await;
    app.post("/v1/banks", json!({"name": "photos"})).await;
    let (s, added) = app
        .upload("/v1/banks/photos/content", &app.admin, &bridge, &[])
        .await;
    assert_eq!(s, StatusCode::CREATED, "{added}");
    assert!(added.get("extra_hashes").is_none(), "{added}");
    let matcher = app.key(Role::Matcher).await;
    let (_, m) = app.upload("/v1/match", &matcher, &crop, &[]).await;
    assert_eq!(pdq_matches(&m), Vec::<serde_json::Value>::new(), "{m}");
    app.cleanup().await;

    // With the default banked kinds.
    let app = TestApp::sqlite().await;
    let st = &app.service.state;
    app.post("/v1/banks", json!({"name": "photos"})).await;
    let (s, added) = app
        .upload("/v1/banks/photos/content", &app.admin, &bridge, &[])
        .await;
    assert_eq!(s, StatusCode::CREATED, "{added}");
    let id = added["id"].as_i64().unwrap();
    // What is stored is what the PDQ crate computes for the default kinds
    // (with the pdata variants, which are stored but not matched).
    let expected = bulwark_pdq::MultiHash::of_bytes(
        &bridge,
        Default::default(),
        &limits,
        st.media.bank_kinds(),
    )
    .unwrap();
    let stored = added["extra_hashes"].as_array().unwrap();
    assert_eq!(stored.len(), expected.extras().len(), "{added}");
    assert!(stored.len() >= 7, "{added}");
    for e in expected.extras() {
        assert!(
            stored
                .iter()
                .any(|s| s["hash_kind"] == e.kind.as_str()
                    && s["pdq"] == e.hash.to_string().as_str()),
            "{} missing from {added}",
            e.kind
        );
    }

    let matcher = app.key(Role::Matcher).await;
    let (qk, bk) = extra_match(&app, &matcher, &crop, &bridge, id).await;
    assert!(bk != "full" || qk != "full", "{qk}/{bk}");
    assert_eq!(bk, "centre-90", "a 5 % crop is the banked 90 % centre crop");
    // Framing is seen through the query's region (or a crop of it, taken
    // inside the region): never through its full hash.
    let (qk, _) = extra_match(&app, &matcher, &letterbox, &bridge, id).await;
    assert_ne!(qk, "full");
    let (qk, _) = extra_match(&app, &matcher, &captioned_copy(&bridge), &bridge, id).await;
    assert_ne!(qk, "full");

    // A reload from the store, and from a snapshot, still hold the extras.
    st.catalog.save_snapshot(&st.store).await.unwrap();
    let q = bulwark_pdq::MultiHash::of_bytes(
        &crop,
        Default::default(),
        &limits,
        st.media.query_kinds(),
    )
    .unwrap();
    let found = |c: &bulwark_server::catalog::Catalog| {
        c.search_multi(&q.hashes, bulwark_pdq::Pairing::Both, None)
            .iter()
            .map(|h| h.hit.content_id)
            .collect::<Vec<_>>()
    };
    let full = bulwark_server::catalog::Catalog::new();
    full.load_full(&st.store).await.unwrap();
    assert_eq!(found(&full), [id]);
    // Plain search never reports an extra.
    assert_eq!(full.search(&q.full().hash, None).len(), 0);

    // Disabled: no match; enabled again: a match.
    let path = format!("/v1/banks/photos/content/{id}");
    let (s, j) = app
        .call(
            Method::PATCH,
            &path,
            Some(&app.admin),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    let (_, m) = app.upload("/v1/match", &matcher, &crop, &[]).await;
    assert_eq!(pdq_matches(&m).len(), 0, "{m}");
    app.call(
        Method::PATCH,
        &path,
        Some(&app.admin),
        Some(json!({"enabled": true})),
    )
    .await;
    extra_match(&app, &matcher, &crop, &bridge, id).await;

    // Deleted: the extras go with it, here and in a snapshot replay.
    let (s, j) = app
        .call(Method::DELETE, &path, Some(&app.admin), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    for copy in [&crop, &letterbox] {
        let (_, m) = app.upload("/v1/match", &matcher, copy, &[]).await;
        assert_eq!(pdq_matches(&m).len(), 0, "{m}");
    }
    let snap = bulwark_server::catalog::Catalog::new();
    snap.set_snapshot_path(app.dir.path().join("index.snapshot"));
    assert!(snap.load(&st.store).await.unwrap(), "the snapshot was used");
    assert_eq!(found(&snap), Vec::<i64>::new());
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM pdq_extras")
        .fetch_one(&st.store.pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "stored extras are deleted with their content");
    app.cleanup().await;
}

/// HMA's curation upload banks the extras too, and HMA's `/m/lookup` upload
/// matches through them.
#[tokio::test]
async fn hma_upload_banks_extras_and_lookup_uses_them() {
    let app = TestApp::sqlite().await;
    let (s, j) = app.post("/c/banks", json!({"name": "HMA_PHOTOS"})).await;
    assert!(s.is_success(), "{j}");
    let bridge = image(BRIDGE);
    let form = |field: &str, file: &[u8]| {
        let boundary = "bulwarkExtrasBoundary";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"f\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(file);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        (format!("multipart/form-data; boundary={boundary}"), body)
    };
    let send = |path: &str, key: &str, file: &[u8]| {
        let (ct, body) = form("photo", file);
        axum::http::Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", ct)
            .body(axum::body::Body::from(body))
            .unwrap()
    };
    let (s, added, _) = app
        .send(send("/c/bank/HMA_PHOTOS/content", &app.admin, &bridge))
        .await;
    assert!(s.is_success(), "{added}");
    let id = added["id"].as_i64().unwrap();
    let store = &app.service.state.store;
    let (n,): (i64,) =
        sqlx::query_as(&store.sql("SELECT COUNT(*) FROM pdq_extras WHERE content_id = ?"))
            .bind(id)
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert!(n >= 7, "{n} extras stored");

    let matcher = app.key(Role::Matcher).await;
    let crop = cropped_copy(&bridge);
    let (s, m, _) = app
        .send(send("/m/lookup?bypass_coinflip=true", &matcher, &crop))
        .await;
    assert_eq!(s, StatusCode::OK, "{m}");
    let hits = m["pdq"]["HMA_PHOTOS"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{m}");
    assert_eq!(hits[0]["bank_content_id"].as_i64(), Some(id));
    // An unrelated photo matches nothing.
    let (_, m, _) = app
        .send(send(
            "/m/lookup?bypass_coinflip=true",
            &matcher,
            &image(PEN),
        ))
        .await;
    assert!(
        m["pdq"].as_object().is_none_or(|o| o
            .values()
            .all(|v| v.as_array().is_some_and(|a| a.is_empty()))),
        "{m}"
    );
    app.cleanup().await;
}

/// A copy of a video with black bars above and below (10 % of the height
/// each, as docs/detection/vpdq-framing.md's letterbox), re-encoded with x264.
fn letterboxed_video(video: &[u8]) -> Vec<u8> {
    ffmpeg_copy(video, "pad=iw:trunc(ih*1.25/2)*2:0:(oh-ih)/2:black")
}

/// A copy of a video cropped by 5 % of each edge and scaled back (the
/// `crop5` edit of docs/detection/vpdq-framing.md), re-encoded with x264.
fn cropped_video(video: &[u8]) -> Vec<u8> {
    ffmpeg_copy(
        video,
        "crop=trunc(iw*0.9):trunc(ih*0.9),scale=iw/0.9:ih/0.9",
    )
}

fn ffmpeg_copy(video: &[u8], filter: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("in.mp4"), dir.path().join("out.mp4"));
    std::fs::write(&src, video).unwrap();
    let st = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&src)
        .args([
            "-vf", filter, "-c:v", "libx264", "-crf", "23", "-preset", "veryfast", "-an",
        ])
        .arg(&dst)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::read(dst).unwrap()
}

fn vpdq_matches(m: &serde_json::Value) -> Vec<serde_json::Value> {
    m["matches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["signal_type"] == "vpdq")
        .cloned()
        .collect()
}

/// A letterboxed copy of a banked video (docs/detection/vpdq-framing.md:
/// plain vPDQ misses it, and so does its `region` against the banked plain
/// frames) is found through the `region` frame hashes banked with the video
/// and computed for the query, reported with `hash_kind`/`bank_hash_kind`;
/// the original itself still matches plainly (no kinds); an unrelated video
/// matches nothing; and on a server whose banks store no extras the copy is
/// not found.
#[tokio::test]
async fn a_letterboxed_video_matches_through_banked_frame_regions() {
    if !crate::console_fixtures::ffmpeg_available() {
        return;
    }
    let chair = crate::console_fixtures::video("chair-orig-22-sd-bar.mp4");
    let other = crate::console_fixtures::video("doorknob-hd-no-bar.mp4");
    let copy = letterboxed_video(&chair);

    // Without extras (every other setting the same): missed.
    let plain = TestApp::sqlite_with(|c| c.extra_hashes = bulwark_pdq::KindSet::NONE).await;
    plain.post("/v1/banks", json!({"name": "videos"})).await;
    let (s, c) = plain
        .upload("/v1/banks/videos/content", &plain.admin, &chair, &[])
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let (s, m) = plain.upload("/v1/match", &plain.admin, &copy, &[]).await;
    assert_eq!(s, StatusCode::OK, "{m}");
    assert_eq!(
        m["matches"],
        json!([]),
        "plain vPDQ found the letterboxed copy"
    );
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM video_frame_extras")
        .fetch_one(&plain.service.state.store.pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "extras stored with extra_hashes = []");
    plain.cleanup().await;

    // With the default extras (`region` among them).
    let app = TestApp::sqlite().await;
    app.post("/v1/banks", json!({"name": "videos"})).await;
    let (s, c) = app
        .upload("/v1/banks/videos/content", &app.admin, &chair, &[])
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let id = c["id"].as_i64().unwrap();
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM video_frame_extras WHERE kind = 'region' AND content_id = ?",
    )
    .bind(id)
    .fetch_one(&app.service.state.store.pool)
    .await
    .unwrap();
    assert!(n > 0, "no region frame hashes banked");
    let matcher = app.key(Role::Matcher).await;

    // Matching an upload computes the copy's frame regions; `/v1/hash`'s
    // path, whose answer has no place for them, does not.
    let media = &app.service.state.media;
    let frame_extras = |h| match h {
        bulwark_server::media::Hashed::Video { frame_extras, .. } => frame_extras.len(),
        _ => panic!("not hashed as a video"),
    };
    let to_match = media.hash(copy.clone().into()).await.unwrap();
    assert!(frame_extras(to_match) > 0, "no frame regions to match with");
    let shown = media.hash_to_show(copy.clone().into()).await.unwrap();
    assert_eq!(frame_extras(shown), 0, "/v1/hash computed frame regions");

    let (s, m) = app.upload("/v1/match", &matcher, &copy, &[]).await;
    assert_eq!(s, StatusCode::OK, "{m}");
    let vp = vpdq_matches(&m);
    assert_eq!(vp.len(), 1, "{m}");
    assert_eq!(vp[0]["content_id"].as_i64(), Some(id));
    assert!(vp[0]["query_percent"].as_f64().unwrap() >= 80.0, "{m}");
    assert!(vp[0]["hash_kind"].is_string(), "{m}");
    assert!(vp[0]["bank_hash_kind"].is_string(), "{m}");
    assert!(
        vp[0]["hash_kind"] == "region" || vp[0]["bank_hash_kind"] == "region",
        "{m}"
    );

    // The original matches plainly (and by its bytes).
    let (_, m) = app.upload("/v1/match", &matcher, &chair, &[]).await;
    let vp = vpdq_matches(&m);
    assert_eq!(vp.len(), 1, "{m}");
    assert_eq!(vp[0]["content_id"].as_i64(), Some(id));
    assert!(vp[0].get("hash_kind").is_none_or(|k| k.is_null()), "{m}");

    // An unrelated video, letterboxed or not, matches nothing.
    for v in [letterboxed_video(&other), other] {
        let (s, m) = app.upload("/v1/match", &matcher, &v, &[]).await;
        assert_eq!(s, StatusCode::OK, "{m}");
        assert_eq!(m["matches"], json!([]), "{m}");
    }

    // The catalog finds the banked video exactly when the vPDQ rule, run on
    // the banked video's own frames, says it matches: with the copy's frame
    // regions and without (then only the bank's frame regions can help),
    // live and after a restart (the frame-extras index is rebuilt on load).
    let frames_of = |h: bulwark_server::media::Hashed| match h {
        bulwark_server::media::Hashed::Video {
            frames,
            frame_extras,
            ..
        } => frames
            .iter()
            .map(|f| bulwark_vpdq::FrameExtras {
                frame: *f,
                extras: frame_extras
                    .iter()
                    .filter(|(n, _)| *n == f.frame)
                    .map(|(_, e)| *e)
                    .collect(),
            })
            .collect::<Vec<_>>(),
        _ => panic!("not hashed as a video"),
    };
    let banked = frames_of(media.hash_for_bank(chair.clone().into()).await.unwrap());
    let with_regions = frames_of(media.hash(copy.clone().into()).await.unwrap());
    let plain_only: Vec<_> = with_regions
        .iter()
        .map(|f| bulwark_vpdq::FrameExtras::plain(f.frame))
        .collect();
    // A copy cut to the banked video's content region: its plain frames are
    // the bank's frame regions, which only the frame-extras index holds.
    let cut: Vec<_> = banked
        .iter()
        .filter_map(|f| {
            let r = f
                .extras
                .iter()
                .find(|e| e.kind == bulwark_pdq::HashKind::Region)?;
            Some(bulwark_vpdq::FrameExtras::plain(bulwark_vpdq::FrameHash {
                hash: r.hash,
                quality: r.quality,
                ..f.frame
            }))
        })
        .collect();
    let restarted = bulwark_server::catalog::Catalog::new();
    restarted.load(&app.service.state.store).await.unwrap();
    let rule = bulwark_vpdq::MatchRule::default();
    let truth =
        |q| bulwark_vpdq::match_videos_extras(q, &banked, &rule, bulwark_pdq::Pairing::Both);
    assert!(truth(&cut).result.is_match, "{:?}", truth(&cut));
    for (what, q) in [
        ("with", &with_regions),
        ("without", &plain_only),
        ("cut to", &cut),
    ] {
        let truth = truth(q);
        for (when, catalog) in [
            ("live", &*app.service.state.catalog),
            ("restarted", &restarted),
        ] {
            let hits = catalog.match_video(q, &rule, None);
            assert_eq!(
                hits.iter().map(|h| h.content_id).collect::<Vec<_>>(),
                if truth.result.is_match {
                    vec![id]
                } else {
                    vec![]
                },
                "{when}, {what} the copy's frame regions: {truth:?}"
            );
        }
    }

    // Disabled, the video stops matching through its extras too.
    app.call(
        Method::PATCH,
        &format!("/v1/banks/videos/content/{id}"),
        Some(&app.admin),
        Some(json!({"enabled": false})),
    )
    .await;
    let (_, m) = app.upload("/v1/match", &matcher, &copy, &[]).await;
    assert_eq!(m["matches"], json!([]), "{m}");
    app.cleanup().await;
}

/// A copy of a banked video cropped by 5 % of each edge (plain vPDQ and the
/// `region` miss it: docs/detection/vpdq-framing.md) is found through the
/// `centre-90` frame hashes banked with the video, and only with them: on a
/// server whose banks store every default kind but `centre-90` it is not
/// found.
#[tokio::test]
async fn a_cropped_video_matches_through_banked_frame_centres() {
    if !crate::console_fixtures::ffmpeg_available() {
        return;
    }
    let pattern = crate::console_fixtures::video("pattern-hd-no-bar.mp4");
    let copy = cropped_video(&pattern);
    let no_centre: bulwark_pdq::KindSet = bulwark_pdq::KindSet::BANK_DEFAULT
        .iter()
        .filter(|k| *k != bulwark_pdq::HashKind::Centre90)
        .collect();
    for (centre, app) in [
        (
            false,
            TestApp::sqlite_with(|c| c.extra_hashes = no_centre).await,
        ),
        (true, TestApp::sqlite().await),
    ] {
        app.post("/v1/banks", json!({"name": "videos"})).await;
        let (s, c) = app
            .upload("/v1/banks/videos/content", &app.admin, &pattern, &[])
            .await;
        assert_eq!(s, StatusCode::CREATED, "{c}");
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM video_frame_extras WHERE kind = 'centre-90' AND content_id = ?",
        )
        .bind(c["id"].as_i64().unwrap())
        .fetch_one(&app.service.state.store.pool)
        .await
        .unwrap();
        assert_eq!(n > 0, centre, "centre-90 frame hashes banked: {n}");
        let (s, m) = app.upload("/v1/match", &app.admin, &copy, &[]).await;
        assert_eq!(s, StatusCode::OK, "{m}");
        let vp = vpdq_matches(&m);
        if centre {
            assert_eq!(vp.len(), 1, "{m}");
            assert_eq!(vp[0]["content_id"], c["id"], "{m}");
            // The copy is the centre of each banked frame: its plain frames
            // meet the banked centre-90 hashes.
            assert_eq!(vp[0]["bank_hash_kind"], "centre-90", "{m}");
        } else {
            assert_eq!(
                vp,
                Vec::<serde_json::Value>::new(),
                "found without centre-90: {m}"
            );
        }
        app.cleanup().await;
    }
}
