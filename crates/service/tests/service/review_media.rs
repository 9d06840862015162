//! What the console keeps and shows besides decisions
//! (`bulwark_service::review::{matches, media, item}`), on SQLite and
//! PostgreSQL: the match path records exactly the matches a bank's review
//! policy selects, with the upload's hashes and a grey thumbnail whose
//! pixels are the upload's luma (checked pixel by pixel), a text match's
//! excerpt cut to its limit, and nothing once the policy is removed; a
//! medium is shown 16 px wide until revealed, and a malformed media id is
//! "no such media"; similar items are those within 31 bits of PDQ or sharing
//! an account, never the item itself; an item's history holds its own audit
//! entries only, even for an account name with `LIKE` wildcards in it (the
//! attack: `a_b`'s history must not show `axb`'s entries); an item's
//! detail holds its messages' text, only the media that can be shown (a
//! photo whose copy is kept, a recorded match's thumbnail) and a note for a
//! video without frames. All images are synthetic gradients.

use bulwark_pdq::PdqHash;
use bulwark_service::catalog::Catalog;
use bulwark_service::media::Hashed;
use bulwark_service::review::accounts::ConsoleRole;
use bulwark_service::review::item::{self, Facts, Medium, Similar};
use bulwark_service::review::matches::{self, EXCERPT_CHARS, QUERY_SIGNAL_CHARS};
use bulwark_service::review::media::{self, StripOptions};
use bulwark_service::review::{audit, policy, queue};
use bulwark_service::secrets::Kek;
use bulwark_store::Store;
use bulwark_store::console::items::{self as store, NewMatch};
use md5::Digest;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sqlx::Row;

use super::console::{create_known_bank, reviewer};
use super::seed_report;
use crate::support::TestStore;

/// A 64×48 RGB gradient as PNG, and its pixels.
fn photo() -> (bytes::Bytes, image::RgbImage) {
    let img = image::RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x * 3 + y * 7) % 256) as u8])
    });
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    (png.into(), img)
}

/// ITU-R BT.601 luma in integers, as the console's thumbnails promise.
fn luma(p: &image::Rgb<u8>) -> u8 {
    ((299 * u32::from(p[0]) + 587 * u32::from(p[1]) + 114 * u32::from(p[2])) / 1000) as u8
}

fn hashed(file: &[u8]) -> Hashed {
    Hashed::Photo {
        pdq: PdqHash::from_bytes(rand_chacha::ChaCha8Rng::seed_from_u64(3).r#gen()),
        quality: 100,
        md5: md5::Md5::digest(file).into(),
        sha256: sha2::Sha256::digest(file).into(),
        extras: Vec::new(),
    }
}

fn strips() -> StripOptions {
    StripOptions {
        video: bulwark_vpdq::Options::default(),
        frames: 4,
    }
}

/// A decoded PNG's size and grey pixels.
fn grey_png(png: &[u8]) -> image::GrayImage {
    image::load_from_memory_with_format(png, image::ImageFormat::Png)
        .unwrap()
        .into_luma8()
}

async fn match_rows(s: &Store) -> Vec<(i64, i64, Option<String>, Option<String>, bool)> {
    sqlx::query(
        "SELECT content_id, distance, pdq, md5, CASE WHEN thumb IS NULL THEN 0 ELSE 1 END AS t \
         FROM console_matches ORDER BY id",
    )
    .fetch_all(&s.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.try_get("content_id").unwrap(),
            r.try_get("distance").unwrap(),
            r.try_get("pdq").unwrap(),
            r.try_get("md5").unwrap(),
            r.try_get::<i64, _>("t").unwrap() == 1,
        )
    })
    .collect()
}

async fn recorded_matches(s: &Store) {
    let kek = Kek::generate();
    let ada = reviewer(s, &kek, "ada", ConsoleRole::Admin).await;
    let catalog = Catalog::new();
    catalog.load(s).await.unwrap();
    create_known_bank(s, &catalog).await;
    policy::set(s, &ada, "known", Some(10)).await.unwrap();
    let (file, rgb) = photo();
    let query = hashed(&file);
    let summary = query.summary_json();
    let hits = [
        json!({"bank": "known", "content_id": 1, "signal_type": "pdq", "distance": 5}),
        json!({"bank": "known", "content_id": 2, "signal_type": "pdq", "distance": 11}),
        json!({"bank": "other", "content_id": 3, "signal_type": "pdq", "distance": 0}),
        json!({"bank": "known", "content_id": 4, "signal_type": "md5"}),
    ];
    let photo = matches::record(s, &strips(), "key1", Some((&query, &file)), &hits)
        .await
        .unwrap();
    assert_eq!(
        photo.len(),
        2,
        "the policy selects distance 5 and no distance"
    );
    let (pdq, md5) = (summary["pdq"].as_str(), summary["md5"].as_str());
    let want = |c: i64, d: i64| (c, d, pdq.map(String::from), md5.map(String::from), true);
    assert_eq!(match_rows(s).await, [want(1, 5), want(4, 0)]);
    for id in &photo {
        assert_eq!(
            super::open_queue(s, &format!("match:{id}"))
                .await
                .as_deref(),
            Some("match")
        );
    }
    // The thumbnail: grey, at most 320 px (this upload is smaller, so one
    // pixel each), every pixel the upload's luma.
    let thumb = grey_png(&store::match_thumb(s, photo[0]).await.unwrap().unwrap());
    assert_eq!(thumb.dimensions(), rgb.dimensions());
    for (x, y, p) in rgb.enumerate_pixels() {
        assert_eq!(thumb.get_pixel(x, y)[0], luma(p), "pixel {x},{y}");
    }

    // A text match sent as JSON: no thumbnail or hashes; its excerpt and
    // query signal kept only up to their limits.
    let text: String = "an advert's words ".repeat(40);
    let hit = json!({"bank": "known", "content_id": 5, "signal_type": "phone", "distance": 0,
        "query_signal": "9".repeat(5000), "review_only": true,
        "explanation": {"text": text, "why": "exact canonical value"}});
    let ids = matches::record(s, &strips(), "key1", None, &[hit])
        .await
        .unwrap();
    assert_eq!(ids.len(), 1);
    let t = bulwark_store::console::text::text_match(s, ids[0])
        .await
        .unwrap()
        .unwrap();
    let e: Value = serde_json::from_str(&t.explanation).unwrap();
    let cut: String = text.chars().take(EXCERPT_CHARS).collect();
    assert_eq!(e, json!({"text": cut, "why": "exact canonical value"}));
    assert_eq!(t.query_signal.unwrap().len(), QUERY_SIGNAL_CHARS);
    assert!(t.review_only);
    assert_eq!(match_rows(s).await[2], (5, 0, None, None, false));

    // The thumbnail as shown: 16 px across until revealed, then whole.
    let first = photo[0];
    let hidden = media::shown(s, "match", &first.to_string(), "0", false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grey_png(&hidden).dimensions(), (16, 12));
    let open = media::shown(s, "match", &first.to_string(), "0", true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grey_png(&open).dimensions(), (64, 48));
    // No such medium, however malformed: none, not an error.
    for (kind, id, m) in [
        ("match", "x", "0"),
        ("match", "987654", "0"),
        ("report", "1", "nonsense"),
        ("report", "x", "0-0"),
        ("account", "nobody", "zero"),
        ("account", "nobody", "0"),
    ] {
        assert!(
            media::load(s, kind, id, m).await.unwrap().is_none(),
            "{kind} {id} {m}"
        );
    }

    // Without a policy nothing is recorded.
    policy::set(s, &ada, "known", None).await.unwrap();
    let ids = matches::record(s, &strips(), "key1", Some((&query, &file)), &hits)
        .await
        .unwrap();
    assert!(ids.is_empty());
    assert_eq!(match_rows(s).await.len(), 3);
}

/// A box-downscaled thumbnail: each pixel the mean luma of its 2×2 block
/// (rounded down), for an image exactly twice the side.
#[test]
fn a_thumbnail_is_the_mean_luma_of_its_block() {
    let (_, rgb) = photo();
    let img = bulwark_pdq::Image {
        width: 64,
        height: 48,
        channels: 3,
        pixels: rgb.as_raw().clone(),
    };
    let thumb = grey_png(&media::thumbnail(&img, 32).unwrap());
    assert_eq!(thumb.dimensions(), (32, 24));
    for (x, y, p) in thumb.enumerate_pixels() {
        let sum: u32 = [(0, 0), (1, 0), (0, 1), (1, 1)]
            .iter()
            .map(|(dx, dy)| u32::from(luma(rgb.get_pixel(2 * x + dx, 2 * y + dy))))
            .sum();
        assert_eq!(u32::from(p[0]), sum / 4, "pixel {x},{y}");
    }
}

/// `h` with its first `n` bits flipped.
fn flipped(h: &PdqHash, n: usize) -> PdqHash {
    let mut b = *h.as_bytes();
    for k in 0..n {
        b[k / 8] ^= 1 << (k % 8);
    }
    PdqHash::from_bytes(b)
}

async fn insert_match(s: &Store, pdq: Option<&str>) -> i64 {
    store::insert_match(
        s,
        &NewMatch {
            at: bulwark_store::now_ms(),
            actor: "key1",
            bank: "known",
            content_id: 1,
            signal_type: "pdq",
            distance: 0,
            pdq,
            md5: None,
            sha256: None,
            thumb: None,
        },
    )
    .await
    .unwrap()
}

async fn similar_and_history(s: &Store) {
    let h = PdqHash::from_bytes(rand_chacha::ChaCha8Rng::seed_from_u64(9).r#gen());
    let me = insert_match(s, Some(&h.to_string())).await;
    let same = insert_match(s, Some(&h.to_string())).await;
    let near = insert_match(s, Some(&flipped(&h, 31).to_string())).await;
    let far = insert_match(s, Some(&flipped(&h, 32).to_string())).await;
    insert_match(s, None).await;
    assert_eq!(flipped(&h, 32).distance(&h), 32);
    let me_key = format!("match:{me}");
    let sim = item::similar(s, &me_key, &[h.to_string()], &[])
        .await
        .unwrap();
    let mut want = vec![
        Similar {
            key: format!("match:{same}"),
            why: "PDQ distance 0".into(),
        },
        Similar {
            key: format!("match:{near}"),
            why: "PDQ distance 31".into(),
        },
    ];
    want.sort();
    assert_eq!(sim, want, "not match:{far} (32 bits), not itself");
    assert_eq!(sim[0].href(), format!("/console/item/match/{same}"));

    // The same account: its reports, once each.
    let rid = seed_report(s, &["alice", "alice"], &[]).await;
    let sim = item::similar(s, &me_key, &[], &["alice".into()])
        .await
        .unwrap();
    assert_eq!(
        sim,
        [Similar {
            key: format!("report:{rid}"),
            why: "same account alice".into(),
        }]
    );

    // History: this item's console entries only. `_` is a `LIKE` wildcard:
    // the entries of `account:axb` must not appear in `account:a_b`'s.
    let view = |item: &str| json!({"item": item});
    audit(s, "console:rita", "console.item.view", view("account:a_b"))
        .await
        .unwrap();
    audit(s, "console:rita", "console.item.view", view("account:axb"))
        .await
        .unwrap();
    audit(s, "console:remy", "console.hide", view("account:a_b"))
        .await
        .unwrap();
    audit(s, "console:remy", "console.item.view", view("account:a_b2"))
        .await
        .unwrap();
    let hist = item::history(s, "account:a_b").await.unwrap();
    let got: Vec<(&str, &str)> = hist
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("console:rita", "console.item.view"),
            ("console:remy", "console.hide")
        ]
    );
    assert_eq!(item::history(s, "account:axb").await.unwrap().len(), 1);
}

async fn details(s: &Store) {
    // A report: two messages, a kept photo, a photo not kept, and a video
    // whose bytes are no video (so its strip is a note, whether or not
    // ffmpeg is installed).
    let (png, _) = photo();
    let rid = seed_report(s, &["alice", "bob"], &[(0, 0, Some(&png)), (1, 0, None)]).await;
    let hashes = json!({"kind": "video", "md5": "22".repeat(16), "sha256": "33".repeat(32)});
    sqlx::query(&s.sql(
        "INSERT INTO report_attachments (report_id, msg_idx, idx, blob_id, media_type, size, \
         ciphertext_sha256, status, hashes, matches, plaintext) \
         VALUES (?, 1, 1, 'blob-v', 'video/mp4', 9, 'x', 'opened', ?, '[]', ?)",
    ))
    .bind(rid)
    .bind(hashes.to_string())
    .bind(b"not video".to_vec())
    .execute(&s.pool)
    .await
    .unwrap();
    let it = queue::find_item(s, "report", &rid.to_string())
        .await
        .unwrap()
        .unwrap();
    let d = item::detail(s, &strips(), &it).await.unwrap();
    let Facts::Report {
        messages,
        attachments,
        ..
    } = &d.facts
    else {
        panic!("a report's facts: {:?}", d.facts);
    };
    let texts: Vec<(&str, &str)> = messages
        .iter()
        .map(|m| (m.view.sender.as_str(), m.text.as_str()))
        .collect();
    assert_eq!(texts, [("alice", "hello there"), ("bob", "hello there")]);
    assert_eq!(attachments.len(), 3);
    assert_eq!(
        d.media,
        [Medium {
            id: "0-0".into(),
            label: "attachment 0 of message 0 (image/png)".into(),
        }],
        "only the photo whose copy is kept"
    );
    assert_eq!(d.pdq, [format!("{:064x}", 0), format!("{:064x}", 10)]);
    assert_eq!(d.accounts[..2], ["alice".to_string(), "bob".to_string()]);
    assert_eq!(d.notes.len(), 1, "{:?}", d.notes);
    assert!(
        d.notes[0].starts_with("video attachment 1 of message 1: no frames"),
        "{:?}",
        d.notes
    );
    // The medium's id names the photo.
    let shown = media::shown(s, "report", &rid.to_string(), "0-0", true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grey_png(&shown).dimensions(), (64, 48));

    // A recorded match: its thumbnail is its one medium.
    let query = hashed(&png);
    let summary = query.summary_json();
    let id = store::insert_match(
        s,
        &NewMatch {
            at: bulwark_store::now_ms(),
            actor: "key1",
            bank: "known",
            content_id: 7,
            signal_type: "pdq",
            distance: 3,
            pdq: summary["pdq"].as_str(),
            md5: summary["md5"].as_str(),
            sha256: summary["sha256"].as_str(),
            thumb: Some(png.to_vec()),
        },
    )
    .await
    .unwrap();
    let it = queue::find_item(s, "match", &id.to_string())
        .await
        .unwrap()
        .unwrap();
    let d = item::detail(s, &strips(), &it).await.unwrap();
    assert!(matches!(&d.facts, Facts::Match(m) if m.content_id == 7 && m.distance == 3));
    assert_eq!(d.media.len(), 1);
    assert_eq!(d.media[0].id, "0");
    assert_eq!(d.pdq, [summary["pdq"].as_str().unwrap().to_string()]);
    assert!(d.notes.is_empty());
}

#[tokio::test]
async fn details_on_sqlite() {
    let t = TestStore::sqlite().await;
    details(&t.store).await;
    t.cleanup().await;
}

#[tokio::test]
async fn details_on_postgres() {
    let Some(t) = TestStore::postgres("review_details").await else {
        return;
    };
    details(&t.store).await;
    t.cleanup().await;
}

#[tokio::test]
async fn recorded_matches_on_sqlite() {
    let t = TestStore::sqlite().await;
    recorded_matches(&t.store).await;
    t.cleanup().await;
}

#[tokio::test]
async fn recorded_matches_on_postgres() {
    let Some(t) = TestStore::postgres("review_recorded_matches").await else {
        return;
    };
    recorded_matches(&t.store).await;
    t.cleanup().await;
}

#[tokio::test]
async fn similar_and_history_on_sqlite() {
    let t = TestStore::sqlite().await;
    similar_and_history(&t.store).await;
    t.cleanup().await;
}

#[tokio::test]
async fn similar_and_history_on_postgres() {
    let Some(t) = TestStore::postgres("review_similar_history").await else {
        return;
    };
    similar_and_history(&t.store).await;
    t.cleanup().await;
}
