//! Every file in shared/conformance/vpdq/expected reproduced exactly, and bad
//! input refused with a clear error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bulwark_vpdq::{Error, FrameHash, MatchRule, Options, hash_video, match_videos, parse_lines};
use rayon::prelude::*;

fn conformance() -> PathBuf {
    let d = std::env::var("BULWARK_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        })
        .join("vpdq");
    assert!(
        d.is_dir(),
        "conformance vectors not found at {}",
        d.display()
    );
    d
}

/// ffmpeg is needed only for video: without it these tests skip with a
/// message, unless BULWARK_TEST_REQUIRE_ALL=1 (as in CI), where they fail.
fn ffmpeg_available() -> bool {
    let ok = std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("BULWARK_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
            "ffmpeg is required (BULWARK_TEST_REQUIRE_ALL=1) but not on PATH (apt-get install ffmpeg)"
        );
        eprintln!("SKIPPED: ffmpeg is not on PATH (apt-get install ffmpeg to run the vPDQ tests)");
    }
    ok
}

#[test]
fn every_expected_file_is_reproduced_exactly() {
    if !ffmpeg_available() {
        return;
    }
    let dir = conformance();
    let mut cases: Vec<(PathBuf, PathBuf, Option<u32>)> = Vec::new();
    for e in std::fs::read_dir(dir.join("expected")).expect("expected/") {
        let p = e.expect("entry").path();
        let name = p
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("name")
            .to_string();
        let (video, size) = match name.strip_suffix("-128x128") {
            Some(v) => (v.to_string(), Some(128)),
            None => (name.clone(), None),
        };
        cases.push((p, dir.join("videos").join(format!("{video}.mp4")), size));
    }
    cases.sort();
    assert!(
        cases.len() >= 28,
        "expected the full conformance set, found {}",
        cases.len()
    );
    let failures: Vec<String> = cases
        .par_iter()
        .filter_map(|(expected, video, size)| {
            let want = std::fs::read_to_string(expected).expect("read expected");
            let mut opts = Options::default();
            opts.size = *size;
            let got = match hash_video(video, &opts) {
                Ok(g) => g,
                Err(e) => return Some(format!("{}: {e}", video.display())),
            };
            let got_lines: Vec<String> = got.iter().map(FrameHash::to_string).collect();
            let want_lines: Vec<&str> = want.lines().filter(|l| !l.is_empty()).collect();
            if got_lines.len() != want_lines.len() {
                return Some(format!(
                    "{}: {} frames, want {}",
                    expected.display(),
                    got_lines.len(),
                    want_lines.len()
                ));
            }
            let bad: Vec<String> = got_lines
                .iter()
                .zip(&want_lines)
                .filter(|(g, w)| g != *w)
                .take(3)
                .map(|(g, w)| format!("got {g} want {w}"))
                .collect();
            (!bad.is_empty()).then(|| format!("{}: {}", expected.display(), bad.join("; ")))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn expected_files_parse_and_match_themselves_and_their_edits() {
    let dir = conformance().join("expected");
    let read =
        |n: &str| parse_lines(&std::fs::read_to_string(dir.join(n)).expect("read")).expect("parse");
    let orig = read("chair-orig-22-sd-bar.txt");
    let logo = read("chair-22-with-small-logo-bar.txt");
    let large_logo = read("chair-22-with-large-logo-bar.txt");
    let other = read("pattern-sd-grey-bar.txt");
    let rule = MatchRule::default();
    let same = match_videos(&orig, &orig, &rule);
    assert_eq!(
        (same.query_percent, same.compared_percent, same.is_match),
        (100.0, 100.0, true)
    );
    assert!(match_videos(&logo, &orig, &rule).is_match);
    // A logo covering much of the frame defeats frame matching (about 11 %).
    assert!(!match_videos(&large_logo, &orig, &rule).is_match);
    let diff = match_videos(&other, &orig, &rule);
    assert!(!diff.is_match, "{diff:?}");
}

#[test]
fn match_rule_by_hand() {
    let h = |s: &str, q: u32, i: u64| FrameHash {
        frame: i,
        quality: q,
        hash: s.repeat(64).parse().expect("hash"),
        timestamp: i as f64,
    };
    // Query: frames 0, f (twice: de-duplicated), and a low-quality frame (dropped).
    let q = vec![
        h("0", 100, 0),
        h("f", 100, 1),
        h("f", 100, 2),
        h("3", 10, 3),
    ];
    // Compared: 0 exactly, plus something 32 bits from "f...".
    let mut near = [0xffu8; 32];
    near[0] = 0;
    near[1] = 0;
    near[2] = 0;
    near[3] = 0;
    let c = vec![
        h("0", 100, 0),
        FrameHash {
            frame: 1,
            quality: 90,
            hash: bulwark_pdq::PdqHash::from_bytes(near),
            timestamp: 1.0,
        },
    ];
    let r = match_videos(&q, &c, &MatchRule::default());
    // "0" matches; "f…" is 32 bits from `near`: over the default 31.
    assert_eq!(r.query_percent, 50.0);
    assert_eq!(r.compared_percent, 50.0);
    assert!(!r.is_match);
    let loose = MatchRule {
        distance: 32,
        ..MatchRule::default()
    };
    let r = match_videos(&q, &c, &loose);
    assert_eq!(
        (r.query_percent, r.compared_percent, r.is_match),
        (100.0, 100.0, true)
    );
    // Nothing left after the quality filter: no match, no division by zero.
    let r = match_videos(&[h("3", 10, 0)], &c, &MatchRule::default());
    assert_eq!((r.query_percent, r.is_match), (0.0, false));
}

#[test]
fn bad_lines_are_reported_with_their_number() {
    let good = "0,100,e271017837246aaccddea259648fb7d62f435c89d9e99b2497763e216c8d055c,0.000\n";
    for (bad, what) in [
        ("1,100,xyz,0.033", "hex"),
        (
            "1,101,e271017837246aaccddea259648fb7d62f435c89d9e99b2497763e216c8d055c,0.033",
            "quality",
        ),
        (
            "1,100,e271017837246aaccddea259648fb7d62f435c89d9e99b2497763e216c8d055c",
            "field",
        ),
        (
            "1,100,e271017837246aaccddea259648fb7d62f435c89d9e99b2497763e216c8d055c,-1",
            "timestamp",
        ),
    ] {
        let e = parse_lines(&format!("{good}{bad}\n")).expect_err("must be refused");
        let s = e.to_string();
        assert!(s.starts_with("line 2:") && s.contains(what), "{s}");
    }
}

fn tmp_video(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let p = dir.join(name);
    let st = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .arg(&p)
        .status()
        .expect("ffmpeg");
    assert!(st.success());
    p
}

#[test]
fn bad_input_gets_a_clear_error() {
    if !ffmpeg_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options::default();
    // Not a video.
    let txt = dir.path().join("notes.mp4");
    std::fs::write(&txt, "this is text").expect("write");
    assert!(matches!(hash_video(&txt, &opts), Err(Error::NotAVideo(_))));
    // Truncated: half of a conformance video (its index is at the end).
    let full = std::fs::read(conformance().join("videos/chair-19-sd-bar.mp4")).expect("read");
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &full[..full.len() / 2]).expect("write");
    let e = hash_video(&cut, &opts).expect_err("truncated");
    assert!(matches!(e, Error::Decode(_) | Error::NotAVideo(_)), "{e}");
    // Zero video frames: an audio-only file.
    let audio = tmp_video(
        dir.path(),
        "audio.m4a",
        &["-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "0.2"],
    );
    assert!(matches!(
        hash_video(&audio, &opts),
        Err(Error::NotAVideo(_))
    ));
    // A frame size past the limits is refused before decoding.
    let wide = tmp_video(
        dir.path(),
        "wide.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "color=c=gray:s=8200x16:d=0.04",
            "-c:v",
            "ffv1",
        ],
    );
    assert!(matches!(
        hash_video(&wide, &opts),
        Err(Error::LimitExceeded(_))
    ));
    // A deadline that cannot be met stops ffmpeg.
    let mut quick = Options::default();
    quick.timeout = Duration::from_millis(1);
    assert!(matches!(
        hash_video(&conformance().join("videos/chair-19-sd-bar.mp4"), &quick),
        Err(Error::Timeout(_))
    ));
}

/// A video with one frame per hour (a slideshow, a time-lapse) is a video,
/// not a damaged stream: every frame is hashed, at its true timestamp, and
/// each hash equals the PDQ hash of that frame decoded on its own.
#[test]
fn one_frame_per_hour_is_a_video_not_damage() {
    if !ffmpeg_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let v = tmp_video(
        dir.path(),
        "hourly.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=rate=1/3600:size=160x120",
            "-t",
            "10800",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    let frames = hash_video(&v, &Options::default()).expect("an hourly video hashes");
    assert_eq!(
        frames
            .iter()
            .map(|f| (f.frame, f.timestamp))
            .collect::<Vec<_>>(),
        [(0, 0.0), (1, 3600.0), (2, 7200.0)]
    );
    // The middle frame as a still, decoded by ffmpeg alone.
    let still = dir.path().join("f1.png");
    let st = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-noautorotate", "-i"])
        .arg(&v)
        .args(["-vf", "select=eq(n\\,1)", "-frames:v", "1"])
        .args(["-sws_flags", "area", "-pix_fmt", "rgb24"])
        .arg(&still)
        .status()
        .expect("ffmpeg");
    assert!(st.success());
    let want = bulwark_pdq::hash_bytes(
        &std::fs::read(&still).expect("still"),
        bulwark_pdq::Mode::Full,
        &bulwark_pdq::Limits::default(),
    )
    .expect("still hashes");
    assert_eq!(frames[1].hash, want.hash);
}

/// A letterboxed re-upload of a banked video (black bars above and below,
/// made here with ffmpeg) is missed by plain vPDQ and found when frames carry
/// their `region` hash (the picture inside the bars); an unrelated video is
/// still not matched; the plain frames are bit-exact with `hash_video`'s.
#[test]
fn a_letterboxed_copy_is_found_through_the_region_hash_only() {
    use bulwark_pdq::{HashKind, KindSet, Pairing};
    use bulwark_vpdq::{FrameExtras, hash_video_extras, match_videos_extras};
    if !ffmpeg_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let orig = conformance().join("videos/pattern-hd-no-bar.mp4");
    let boxed = tmp_video(
        dir.path(),
        "letterbox.mp4",
        &[
            "-i",
            orig.to_str().expect("utf-8"),
            "-an",
            "-vf",
            "pad=iw:trunc(ih*1.25/2)*2:0:(oh-ih)/2:black",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    let mut opts = Options::default();
    opts.every_seconds = Some(0.5);
    let region = KindSet::of(&[HashKind::Region]);
    let banked = hash_video_extras(&orig, &opts, region).expect("original");
    let copy = hash_video_extras(&boxed, &opts, region).expect("copy");
    let other = hash_video_extras(
        &conformance().join("videos/doorknob-hd-no-bar.mp4"),
        &opts,
        region,
    )
    .expect("unrelated");
    let plain = |f: &[FrameExtras]| f.iter().map(|f| f.frame).collect::<Vec<_>>();
    assert_eq!(plain(&banked), hash_video(&orig, &opts).expect("plain"));
    assert!(
        copy.iter()
            .all(|f| f.extras.iter().any(|e| e.kind == HashKind::Region)),
        "every letterboxed frame has a content region"
    );
    let rule = MatchRule::default();
    let before = match_videos(&plain(&copy), &plain(&banked), &rule);
    assert!(
        !before.is_match,
        "plain vPDQ misses the letterbox: {before:?}"
    );
    // Plain pairing over frames with extras is the plain rule.
    let same = match_videos_extras(&copy, &banked, &rule, Pairing::FullOnly);
    assert_eq!(same.result, before);
    assert_eq!((same.query_percent_via_extras, same.via), (0.0, None));
    let after = match_videos_extras(&copy, &banked, &rule, Pairing::Both);
    assert!(after.result.is_match, "{after:?}");
    assert!(after.query_percent_via_extras > 0.0, "{after:?}");
    assert_eq!(
        after.via.map(|(q, _)| q),
        Some(HashKind::Region),
        "{after:?}"
    );
    for (a, b) in [(&copy, &other), (&other, &banked), (&other, &copy)] {
        let r = match_videos_extras(a, b, &rule, Pairing::Both);
        assert!(!r.result.is_match, "unrelated videos matched: {r:?}");
    }
}
