//! Video attachments carry safety vouchers: the key frames' vPDQ hashes go
//! through the same voucher path as images. Against a real matcher and
//! delivery service: a video whose frames no bank holds sends vouchers and
//! is not matched; a video whose frames both providers banked (as PDQ hashes,
//! the way the service banks a video's frames) flags the account above the
//! threshold; the delivery service never sees a frame hash.
#![allow(clippy::unwrap_used, missing_docs)]

use crate::support;

use std::time::{Duration, Instant};

use bulwark_chat::client::{VIDEO_VOUCHERS, video_key_frames};
use bulwark_chat::{Attachment, PdataPolicy};

fn frames(path: &std::path::Path) -> Vec<bulwark_vpdq::FrameHash> {
    let mut opts = bulwark_vpdq::Options::default();
    opts.every_seconds = Some(1.0);
    bulwark_vpdq::hash_video(path, &opts).unwrap()
}

#[test]
fn key_frames_are_good_distinct_and_spread() {
    let h = |hex: &str| -> bulwark_pdq::PdqHash { hex.repeat(64 / hex.len()).parse().unwrap() };
    let f = |i: u64, quality: u32, hash: bulwark_pdq::PdqHash| bulwark_vpdq::FrameHash {
        frame: i,
        quality,
        hash,
        timestamp: i as f64,
    };
    // Low quality and near repeats (within the radius) are skipped.
    let a = h("0");
    let b = h("f");
    let near_a: bulwark_pdq::PdqHash = format!("1{}", "0".repeat(63)).parse().unwrap();
    let got = video_key_frames(
        &[f(0, 10, b), f(1, 90, a), f(2, 90, near_a), f(3, 90, b)],
        31,
    );
    assert_eq!(
        got.iter().map(|g| g.frame).collect::<Vec<_>>(),
        [1, 3],
        "{got:?}"
    );
    // Many distinct frames: at most VIDEO_VOUCHERS, spread over the video.
    let distinct = ["0", "f", "0f", "f0", "00ff", "ff00", "0ff0", "f00f"];
    let many: Vec<_> = distinct
        .iter()
        .enumerate()
        .map(|(i, x)| f(i as u64, 100, h(x)))
        .collect();
    let got = video_key_frames(&many, 31);
    assert_eq!(got.len(), VIDEO_VOUCHERS);
    assert_eq!(
        got.iter().map(|g| g.frame).collect::<Vec<_>>(),
        [0, 2, 4, 6]
    );
}

#[test]
fn video_key_frames_are_vouchered_and_count_toward_the_threshold() {
    if !support::have_ffmpeg() {
        return;
    }
    let env = support::start();
    let videos = support::conformance().join("vpdq/videos");
    let banked = videos.join("pattern-sd-grey-bar.mp4");
    let other = videos.join("doorknob-hd-no-bar.mp4");
    // The providers bank every usable frame of one video.
    let banked_frames = frames(&banked);
    let usable = bulwark_vpdq::prepare(&banked_frames, 50);
    assert!(video_key_frames(&banked_frames, 31).len() >= 2);
    support::banks(&env);
    for h in &usable {
        support::bank_pdq(&env, &h.to_string());
    }
    let policy = PdataPolicy {
        providers: support::release(&env, 1),
        allow_threshold: Some(1),
    };
    let dev = |user: &str| support::phone(&env, &policy, user);
    let mut alice = dev("alice");
    let mut bob = dev("bob");
    alice.create_group("walks", &["bob"]).unwrap();
    bob.receive().unwrap();

    // An unbanked video: vouchers sent, delivered intact, no match.
    let walk = Attachment::from_file(&other).unwrap();
    assert_eq!(walk.media_type, "video/mp4");
    let sent = alice
        .send("walks", "a door", std::slice::from_ref(&walk))
        .unwrap();
    assert!(
        (1..=VIDEO_VOUCHERS).contains(&sent.voucher_bytes.len()),
        "{sent:?}"
    );
    assert_eq!(sent.video_micros.len(), 1);
    let r = bob.receive().unwrap();
    assert!(r.dropped.is_empty(), "{:?}", r.dropped);
    let a = &r.messages[0].attachments[0];
    assert_eq!(a.media_type, "video/mp4");
    assert_eq!(std::fs::read(&a.path).unwrap(), walk.bytes);
    support::vouchers_processed(&env);
    assert_eq!(
        support::account_status(&env, "alice")["status"],
        "not flagged"
    );

    // The banked video: its key frames match, the account is flagged, and
    // the opened matches are the banked frames.
    let sent = alice
        .send(
            "walks",
            "patterns",
            &[Attachment::from_file(&banked).unwrap()],
        )
        .unwrap();
    assert!(sent.voucher_bytes.len() >= 2, "{sent:?}");
    eprintln!(
        "costs: video of {} bytes: {} vouchers of {:?} bytes, device time {:?} µs",
        std::fs::metadata(&banked).unwrap().len(),
        sent.voucher_bytes.len(),
        sent.voucher_bytes,
        sent.video_micros
    );
    let t = Instant::now();
    let mut st = support::account_status(&env, "alice");
    while st["status"] != "flagged" && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(200));
        st = support::account_status(&env, "alice");
    }
    assert_eq!(st["status"], "flagged", "{st}");
    assert!(st["matches"].as_array().unwrap().len() >= 2, "{st}");

    // The delivery service saw no frame hash of either video; the matcher
    // stored none of the unbanked video's.
    let ds = support::db_bytes(&env.ds_db);
    let server = support::db_bytes(&env.server_dir.join("bulwark.db"));
    for f in &banked_frames {
        assert!(!support::contains(&ds, f.hash.to_string().as_bytes()));
    }
    for f in frames(&other) {
        let hex = f.hash.to_string();
        assert!(!support::contains(&ds, hex.as_bytes()));
        assert!(!support::contains(&server, hex.as_bytes()));
    }
}
