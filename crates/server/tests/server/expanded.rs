//! Issue 17, private matching's `expanded` profile built by the service:
//! photos banked from media store their pdata variants (`crop-1.5`,
//! `scale-0.3`), `POST /v1/pdata/build {"profile": "expanded"}` puts them in
//! the release, and edited copies of a banked photo open through real
//! vouchers (the device's `voucher_probing`, the worker's
//! `AccountState::ingest`) — compared with the `multiprobe` release built
//! from the same banks, and with a photo that is not banked. Near-duplicate
//! content in a release is reported.

#![allow(clippy::unwrap_used)]

use crate::support;

use std::collections::HashSet;

use axum::http::{Method, StatusCode};
use bulwark_pdq::{HashKind, KindSet, MultiHash, PdqHash};
use bulwark_psi::{AccountState, DeviceAccount, Pdata, Root, Voucher, lsh::SubKey};
use image::imageops::{self, FilterType};
use rand::SeedableRng;
use serde_json::{Value, json};
use support::TestApp;

/// Distinct benign photos of the conformance set, banked by two providers.
const BANKED: [&str; 4] = [
    "reg-test-input/dih/bridge-1-original.jpg",
    "reg-test-input/pen-and-coaster.png",
    "misc-images/c.png",
    "reg-test-input/exif-rotn/exif-rotn-1.jpg",
];
/// A photo nobody banked.
const NOT_BANKED: &str = "misc-images/small.jpg";

fn rgb(bytes: &[u8]) -> image::RgbImage {
    let img = bulwark_pdq::decode(bytes, &bulwark_pdq::Limits::default()).unwrap();
    let (w, h) = (img.width, img.height);
    if img.channels == 3 {
        image::RgbImage::from_raw(w, h, img.pixels).unwrap()
    } else {
        image::RgbImage::from_fn(w, h, |x, y| {
            let v = img.pixels[(y * w + x) as usize];
            image::Rgb([v, v, v])
        })
    }
}

fn resized(img: &image::RgbImage, s: f32) -> image::RgbImage {
    let (w, h) = img.dimensions();
    let nw = ((w as f32 * s).round() as u32).max(1);
    let nh = ((h as f32 * s).round() as u32).max(1);
    imageops::resize(img, nw, nh, FilterType::Triangle)
}

/// The copies the evaluation measured (docs/PRIVATE-MATCHING.md): the photo
/// as a messenger sends it (long side at most 1024), then cropped by 1 % or
/// 2 % off each edge, or resized by 0.25–0.5.
fn copies(bytes: &[u8]) -> Vec<(&'static str, image::RgbImage)> {
    let img = rgb(bytes);
    let (w, h) = img.dimensions();
    let img = if w.max(h) > 1024 {
        resized(&img, 1024.0 / w.max(h) as f32)
    } else {
        img
    };
    let crop = |c: f32| {
        let (w, h) = img.dimensions();
        let (dx, dy) = ((w as f32 * c).round() as u32, (h as f32 * c).round() as u32);
        imageops::crop_imm(&img, dx, dy, w - 2 * dx, h - 2 * dy).to_image()
    };
    vec![
        ("crop 1%", crop(0.01)),
        ("crop 2%", crop(0.02)),
        ("resize 0.25", resized(&img, 0.25)),
        ("resize 0.3", resized(&img, 0.3)),
        ("resize 0.4", resized(&img, 0.4)),
        ("resize 0.5", resized(&img, 0.5)),
    ]
}

/// A device's view of an image: its hash and per-bit margins.
fn device_hash(img: &image::RgbImage) -> (PdqHash, Box<[f32; 256]>) {
    let c =
        bulwark_pdq::hash_rgb_confidence(img.as_raw(), img.width() as usize, img.height() as usize);
    (c.hash, Box::new(c.margins))
}

/// Release `id`'s pdata, as a provider fetches it to sign.
async fn release(app: &TestApp, id: i64) -> Pdata {
    let req = axum::http::Request::builder()
        .uri(format!("/v1/pdata/releases/{id}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(app.router.clone(), req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let root: Root = resp.headers()["x-bulwark-pdata-root"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    Pdata::from_bytes(&bytes, &root).unwrap()
}

async fn bank_photo(app: &TestApp, bank: &str, bytes: &[u8]) -> Value {
    let (s, added) = app
        .upload(&format!("/v1/banks/{bank}/content"), &app.admin, bytes, &[])
        .await;
    assert_eq!(s, StatusCode::CREATED, "{added}");
    added
}

async fn two_provider_banks(app: &TestApp) {
    for (name, provider) in [("a", "org-a"), ("b", "org-b")] {
        let (s, j) = app
            .post("/v1/banks", json!({"name": name, "provider": provider}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{j}");
    }
}

/// Whether a voucher for `hash` can open by the LSH alone, from plain hashes
/// (independent of the cryptography): one of its probe sub-keys is a
/// sub-key of a banked hash.
fn predicted(
    pdata: &Pdata,
    banked: &HashSet<SubKey>,
    hash: &PdqHash,
    margins: &[f32; 256],
) -> bool {
    pdata
        .probe_keys(hash, margins)
        .iter()
        .any(|k| banked.contains(k))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expanded_releases_open_edited_copies_that_multiprobe_misses() {
    let app = TestApp::sqlite().await;
    assert!(
        app.service
            .state
            .media
            .bank_kinds()
            .contains(HashKind::Crop15),
        "the default extra_hashes store the pdata variants"
    );
    two_provider_banks(&app).await;
    let photos: Vec<Vec<u8>> = BANKED.iter().map(|p| support::image(p)).collect();
    let mut plain = Vec::new();
    let mut variants = Vec::new();
    let mut ids = Vec::new();
    for bytes in &photos {
        let added = bank_photo(&app, "a", bytes).await;
        bank_photo(&app, "b", bytes).await;
        ids.push(added["id"].as_i64().unwrap());
        // The variants stored are the PDQ crate's, listed with their kind.
        let m = MultiHash::of_bytes(
            bytes,
            Default::default(),
            &bulwark_pdq::Limits::default(),
            KindSet::PDATA_VARIANTS,
        )
        .unwrap();
        for e in m.extras() {
            assert!(
                added["extra_hashes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["hash_kind"] == e.kind.as_str()
                        && s["pdq"] == e.hash.to_string().as_str()),
                "{} missing from {added}",
                e.kind
            );
            variants.push(e.hash);
        }
        plain.push(m.full().hash);
    }
    assert_eq!(variants.len(), 2 * BANKED.len());
    // Plain /v1/match never reports a variant as the banked kind.
    let matcher = app.key(bulwark_server::auth::Role::Matcher).await;
    for (name, copy) in copies(&photos[0]) {
        let mut png = std::io::Cursor::new(Vec::new());
        copy.write_to(&mut png, image::ImageFormat::Png).unwrap();
        let (s, m) = app.upload("/v1/match", &matcher, png.get_ref(), &[]).await;
        assert_eq!(s, StatusCode::OK, "{m}");
        assert!(
            !m.to_string().contains("crop-1.5") && !m.to_string().contains("scale-0.3"),
            "{name}: {m}"
        );
    }
    // A hash banked from a list by both providers: no pixels, no variants.
    let listed = PdqHash::from_bytes([0x3c; 32]);
    for b in ["a", "b"] {
        let (s, j) = app
            .post(
                &format!("/v1/banks/{b}/content"),
                json!({"signals": {"pdq": listed.to_string()}}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{j}");
    }

    let (s, e) = app
        .post("/v1/pdata/build", json!({"profile": "expanded"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    assert_eq!(e["entries"], BANKED.len() + 1, "{e}");
    assert_eq!(e["params"]["bits_per_table"], 44, "{e}");
    assert_eq!(
        e["variants"],
        json!({"hashes": 2 * BANKED.len(), "entries_with": BANKED.len(), "entries_without": 1}),
        "{e}"
    );
    assert!(
        e["warnings"][0]
            .as_str()
            .unwrap()
            .contains("1 of 5 entries have no bank-side variants"),
        "{e}"
    );
    let (s, mp) = app
        .post("/v1/pdata/build", json!({"profile": "multiprobe"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{mp}");
    assert_eq!(mp["variants"], Value::Null, "{mp}");
    let expanded = release(&app, e["release"].as_i64().unwrap()).await;
    let multiprobe = release(&app, mp["release"].as_i64().unwrap()).await;
    assert!(bulwark_psi::Profile::expanded().allows(expanded.params()));
    assert!(bulwark_psi::Profile::multiprobe().allows(multiprobe.params()));
    let state = &app.service.state;
    let keys = bulwark_service::vouchers::server_keys(&state.store, &state.kek, false)
        .await
        .unwrap()
        .unwrap();

    // Every sub-key each release should hold, from the plain hashes.
    let sub_keys = |p: &Pdata, hashes: &[PdqHash]| -> HashSet<SubKey> {
        hashes.iter().flat_map(|h| p.sub_keys(h)).collect()
    };
    let mut bank_plain = plain.clone();
    bank_plain.push(listed);
    let mut bank_all = bank_plain.clone();
    bank_all.extend(&variants);
    let in_expanded = sub_keys(&expanded, &bank_all);
    let in_multiprobe = sub_keys(&multiprobe, &bank_plain);

    // The copies, and the photo nobody banked; a device account whose
    // vouchers for them are all real (synthetic ones open at random).
    let mut items: Vec<(String, PdqHash, Box<[f32; 256]>)> = Vec::new();
    for (p, bytes) in BANKED.iter().zip(&photos) {
        for (name, img) in copies(bytes) {
            let (h, m) = device_hash(&img);
            items.push((format!("{p} {name}"), h, m));
        }
    }
    let (h, m) = device_hash(&rgb(&support::image(NOT_BANKED)));
    items.push((format!("{NOT_BANKED} (not banked)"), h, m));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
    let device = loop {
        let d = DeviceAccount::generate(&mut rng);
        if items.iter().all(|(_, h, _)| {
            !d.sends_synthetic_for(&expanded, h) && !d.sends_synthetic_for(&multiprobe, h)
        }) {
            break d;
        }
    };
    // Opens = the worker's ingest stores the voucher's share.
    let opens = |pdata: &Pdata, h: &PdqHash, m: &[f32; 256], rng: &mut rand_chacha::ChaCha8Rng| {
        let v = device
            .voucher_probing(pdata, h, Some(m), h, &[7u8; 1024], rng)
            .unwrap();
        let v = Voucher::from_bytes(&v.to_bytes()).unwrap();
        let mut st = AccountState::for_epoch(pdata.release().epoch);
        st.ingest(&keys, pdata, &v).unwrap();
        st.len() == 1
    };
    let (mut by_expanded, mut by_multiprobe) = (0, 0);
    let mut only_expanded = Vec::new();
    for (name, h, m) in &items[..items.len() - 1] {
        let near = plain.iter().map(|p| p.distance(h)).min().unwrap();
        let (x, y) = (
            opens(&expanded, h, m, &mut rng),
            opens(&multiprobe, h, m, &mut rng),
        );
        eprintln!("{name}: {near} bits from its photo; expanded {x}, multiprobe {y}");
        assert_eq!(
            x,
            predicted(&expanded, &in_expanded, h, m),
            "{name} expanded"
        );
        assert_eq!(
            y,
            predicted(&multiprobe, &in_multiprobe, h, m),
            "{name} multiprobe"
        );
        by_expanded += usize::from(x);
        by_multiprobe += usize::from(y);
        if x && !y {
            only_expanded.push(name.clone());
        }
    }
    let n = items.len() - 1;
    eprintln!(
        "copies opened: expanded {by_expanded} of {n}, multiprobe {by_multiprobe} of {n}; \
         only expanded: {only_expanded:?}"
    );
    let (name, h, m) = items.last().unwrap();
    assert!(!opens(&expanded, h, m, &mut rng), "{name}");
    assert!(!opens(&multiprobe, h, m, &mut rng), "{name}");
    assert!(
        by_expanded > by_multiprobe,
        "expanded {by_expanded}, multiprobe {by_multiprobe}"
    );
    assert!(!only_expanded.is_empty());
    app.cleanup().await;
}

/// Two different contents of one photo (the same picture banked twice, once
/// as a re-encoded copy) in a release: the build counts the pair and names
/// both, and warns for probing profiles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_duplicate_content_is_reported_by_the_build() {
    let app = TestApp::sqlite().await;
    two_provider_banks(&app).await;
    let pen = support::image(BANKED[1]);
    let bridge = support::image(BANKED[0]);
    let mut ids = Vec::new();
    for bytes in [&pen, &bridge] {
        ids.push(bank_photo(&app, "a", bytes).await["id"].as_i64().unwrap());
        bank_photo(&app, "b", bytes).await;
    }
    let (s, j) = app
        .post("/v1/pdata/build", json!({"profile": "expanded"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{j}");
    assert_eq!(j["near_duplicates"]["pairs"], 0, "{j}");
    assert_eq!(j["warnings"], json!([]), "{j}");

    // The pen again, as a JPEG re-encode: a new content id, a few bits away.
    let img = bulwark_pdq::decode(&pen, &bulwark_pdq::Limits::default()).unwrap();
    let copy = bulwark_pdq::encode_jpeg(&img, 80).unwrap();
    let a = bank_photo(&app, "a", &copy).await;
    bank_photo(&app, "b", &copy).await;
    let dup = a["id"].as_i64().unwrap();
    for profile in ["multiprobe", "expanded", "default"] {
        let (s, j) = app
            .post("/v1/pdata/build", json!({"profile": profile}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{j}");
        let nd = &j["near_duplicates"];
        assert_eq!(nd["pairs"], 1, "{profile}: {j}");
        assert_eq!(nd["radius"], 31);
        let (x, y) = (nd["sample"][0][0].as_i64(), nd["sample"][0][1].as_i64());
        assert_eq!((x, y), (Some(ids[0]), Some(dup)), "{profile}: {j}");
        let warned = j["warnings"].as_array().unwrap().iter().any(|w| {
            w.as_str()
                .unwrap()
                .contains(&format!("{} and {dup}", ids[0]))
        });
        assert_eq!(warned, profile != "default", "{profile}: {j}");
    }
    let (s, _) = app
        .call(Method::GET, "/v1/pdata/releases/1", None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    app.cleanup().await;
}
