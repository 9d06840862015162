//! Does the `region` extra hash per frame help vPDQ find framed re-uploads?
//!
//! Takes benign videos (the conformance vPDQ videos, and short slow-zoom
//! videos made with ffmpeg from conformance photos), makes edited copies with
//! ffmpeg (letterbox and pillarbox bars, a caption bar, a screenshot-like
//! frame, a 5 % crop, a low-bitrate re-encode, letterbox plus low bitrate),
//! hashes every video with its frames' extras, and reports the vPDQ rule's
//! result (query %, compared %, matched?) for each edit against its original
//! under four pairings, plus the conformance set's own edits, plus false
//! matches among every pair of videos of distinct content.
//!
//! ```sh
//! cargo run --release -p bulwark-vpdq --example framing_eval -- OUT_DIR [EVERY_SECONDS]
//! ```
//!
//! OUT_DIR keeps the made videos (re-used when present) and `report.md`.
//! EVERY_SECONDS: frames hashed (default 1, as the service hashes uploads).
//! Needs ffmpeg with libx264 and the conformance set (BULWARK_CONFORMANCE_DIR,
//! default ../shared/conformance from the repository root).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use bulwark_pdq::{HashKind, KindSet, Pairing};
use bulwark_vpdq::{FrameExtras, MatchRule, Options, hash_video, hash_video_extras};

/// The edits: name and ffmpeg filter (iw/ih are the padded size inside
/// `drawbox`, the source size inside `pad`).
const EDITS: &[(&str, &str, &[&str])] = &[
    (
        "letterbox",
        "pad=iw:trunc(ih*1.25/2)*2:0:(oh-ih)/2:black",
        &[],
    ),
    (
        "pillarbox",
        "pad=trunc(iw*1.4/2)*2:ih:(ow-iw)/2:0:black",
        &[],
    ),
    (
        "caption",
        "pad=iw:trunc(ih*1.2/2)*2:0:0:white,\
         drawbox=x=iw*0.06:y=ih*0.86:w=iw*0.35:h=ih*0.035:color=black:t=fill,\
         drawbox=x=iw*0.45:y=ih*0.86:w=iw*0.30:h=ih*0.035:color=black:t=fill,\
         drawbox=x=iw*0.06:y=ih*0.92:w=iw*0.50:h=ih*0.035:color=black:t=fill",
        &[],
    ),
    (
        "screenshot",
        "pad=trunc(iw*1.08/2)*2:trunc(ih*1.3/2)*2:trunc(iw*0.04):trunc(ih*0.18):0xf2f2f2,\
         drawbox=x=0:y=0:w=iw:h=ih*0.05:color=0x111111:t=fill,\
         drawbox=x=0:y=ih*0.05:w=iw:h=ih*0.08:color=0x3b5998:t=fill,\
         drawbox=x=iw*0.05:y=ih*0.07:w=iw*0.3:h=ih*0.035:color=white:t=fill,\
         drawbox=x=0:y=ih*0.92:w=iw:h=ih*0.08:color=0xdddddd:t=fill",
        &[],
    ),
    (
        "crop5",
        "crop=trunc(iw*0.9):trunc(ih*0.9),scale=iw/0.9:ih/0.9",
        &[],
    ),
    (
        "lowrate",
        "scale=iw/2:ih/2",
        &["-b:v", "120k", "-maxrate", "120k", "-bufsize", "240k"],
    ),
    (
        "letterbox-lowrate",
        "pad=iw:trunc(ih*1.25/2)*2:0:(oh-ih)/2:black,scale=iw/2:ih/2",
        &["-b:v", "120k", "-maxrate", "120k", "-bufsize", "240k"],
    ),
];

/// Conformance videos edited from others: (original, copy).
const CONFORMANCE_PAIRS: &[(&str, &str)] = &[
    ("chair-orig-22-sd-bar", "chair-19-sd-bar"),
    ("chair-orig-22-sd-bar", "chair-20-sd-bar"),
    ("chair-orig-22-sd-bar", "chair-22-sd-grey-bar"),
    ("chair-orig-22-sd-bar", "chair-22-sd-sepia-bar"),
    ("chair-orig-22-sd-bar", "chair-22-with-small-logo-bar"),
    ("chair-orig-22-sd-bar", "chair-22-with-large-logo-bar"),
    ("pattern-hd-no-bar", "pattern-longer-no-bar"),
    ("pattern-hd-no-bar", "pattern-sd-grey-bar"),
    ("pattern-hd-no-bar", "pattern-sd-with-small-logo-bar"),
    ("pattern-hd-no-bar", "pattern-sd-with-large-logo-bar"),
];

/// Conformance videos that get the edits above.
const EDITED: &[&str] = &[
    "chair-orig-22-sd-bar",
    "doorknob-hd-no-bar",
    "pattern-hd-no-bar",
    "test-padded-dimensions",
];

/// Conformance photos made into slow-zoom videos (name, path under pdq/images).
const PHOTOS: &[(&str, &str)] = &[
    ("photo-bridge", "bridge-mods/aaa-orig.jpg"),
    ("photo-pen", "reg-test-input/pen-and-coaster.png"),
    ("photo-c", "misc-images/c.png"),
    ("photo-small", "misc-images/small.jpg"),
    ("photo-exif", "reg-test-input/exif-rotn/exif-rotn-1.jpg"),
];

struct Mode {
    name: &'static str,
    pairing: Pairing,
    kinds: KindSet,
}

fn modes() -> Vec<Mode> {
    let region = KindSet::of(&[HashKind::Region]);
    vec![
        Mode {
            name: "plain",
            pairing: Pairing::FullOnly,
            kinds: KindSet::NONE,
        },
        Mode {
            name: "query region",
            pairing: Pairing::QueryExtras,
            kinds: region,
        },
        Mode {
            name: "both, region",
            pairing: Pairing::Both,
            kinds: region,
        },
        Mode {
            name: "both, region + centre-90",
            pairing: Pairing::Both,
            kinds: region.with(HashKind::Centre90),
        },
    ]
}

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Encodes `src` through `vf` into `out` (skipped when present).
fn make(src: &Path, out: &Path, vf: &str, extra: &[&str]) {
    if out.exists() {
        return;
    }
    let vf = format!("{vf},scale=trunc(iw/2)*2:trunc(ih/2)*2,setsar=1");
    let mut args = vec!["-i", src.to_str().expect("utf-8 path"), "-an", "-vf", &vf];
    args.extend([
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
    ]);
    if extra.is_empty() {
        args.extend(["-crf", "23"]);
    }
    args.extend(extra);
    let tmp = out.with_extension("part.mp4");
    args.push(tmp.to_str().expect("utf-8 path"));
    ffmpeg(&args);
    std::fs::rename(&tmp, out).expect("rename");
}

/// A 6 s, 30 fps slow zoom into a photo, 640×480.
fn photo_video(photo: &Path, out: &Path) {
    if out.exists() {
        return;
    }
    let tmp = out.with_extension("part.mp4");
    ffmpeg(&[
        "-loop",
        "1",
        "-i",
        photo.to_str().expect("utf-8 path"),
        "-t",
        "6",
        "-vf",
        "scale=640:480:force_original_aspect_ratio=increase,crop=640:480,\
         zoompan=z='1+0.002*on':x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)':d=1:s=640x480:fps=30,\
         setsar=1",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "20",
        "-pix_fmt",
        "yuv420p",
        tmp.to_str().expect("utf-8 path"),
    ]);
    std::fs::rename(&tmp, out).expect("rename");
}

fn group(name: &str) -> &str {
    if let Some(p) = name.strip_prefix("photo-") {
        return &name[..6 + p.find('.').unwrap_or(p.len())];
    }
    name.split(['-', '.']).next().unwrap_or(name)
}

/// The frames' extras limited to `kinds`.
fn only(frames: &[FrameExtras], kinds: KindSet) -> Vec<FrameExtras> {
    frames
        .iter()
        .map(|f| FrameExtras {
            frame: f.frame,
            extras: f
                .extras
                .iter()
                .filter(|e| kinds.contains(e.kind))
                .copied()
                .collect(),
        })
        .collect()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next()
            .expect("usage: framing_eval OUT_DIR [EVERY_SECONDS]"),
    );
    let every: f64 = args.next().map_or(1.0, |s| s.parse().expect("seconds"));
    let conf = std::env::var("BULWARK_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        });
    let videos_dir = conf.join("vpdq/videos");
    std::fs::create_dir_all(&out).expect("out dir");
    let started = Instant::now();

    // name → path; originals of the edits.
    let mut videos: Vec<(String, PathBuf)> = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&videos_dir)
        .expect("conformance videos")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_stem().and_then(|s| s.to_str()).expect("name");
        videos.push((name.to_string(), p.clone()));
    }
    let mut originals: Vec<(String, PathBuf)> = EDITED
        .iter()
        .map(|n| (n.to_string(), videos_dir.join(format!("{n}.mp4"))))
        .collect();
    for (name, photo) in PHOTOS {
        let p = out.join(format!("{name}.mp4"));
        photo_video(&conf.join("pdq/images").join(photo), &p);
        videos.push((name.to_string(), p.clone()));
        originals.push((name.to_string(), p));
    }
    let mut edited: Vec<(String, String, String)> = Vec::new(); // (original, edit, copy name)
    for (name, src) in &originals {
        for (edit, vf, extra) in EDITS {
            let copy = format!("{name}.{edit}");
            let p = out.join(format!("{copy}.mp4"));
            make(src, &p, vf, extra);
            videos.push((copy.clone(), p));
            edited.push((name.clone(), edit.to_string(), copy));
        }
    }
    let made_s = started.elapsed().as_secs_f64();

    let mut opts = Options::default();
    opts.every_seconds = Some(every);
    let all_kinds = KindSet::of(&[HashKind::Region, HashKind::Centre90]);
    let t = Instant::now();
    let hashed: Vec<(String, Vec<FrameExtras>)> = videos
        .iter()
        .map(|(n, p)| {
            let f = hash_video_extras(p, &opts, all_kinds)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (n.clone(), f)
        })
        .collect();
    let hash_s = t.elapsed().as_secs_f64();
    let frames_of = |n: &str| -> &Vec<FrameExtras> {
        &hashed
            .iter()
            .find(|(m, _)| m == n)
            .unwrap_or_else(|| panic!("no video {n}"))
            .1
    };
    // FRAMING_EVAL_DUMP=name,name: each frame's quality and content region.
    if let Ok(names) = std::env::var("FRAMING_EVAL_DUMP") {
        for n in names.split(',') {
            for f in frames_of(n) {
                let r = f.extras.iter().find(|e| e.kind == HashKind::Region);
                eprintln!(
                    "{n} frame {} quality {} region {:?}",
                    f.frame.frame,
                    f.frame.quality,
                    r.map(|r| (r.rect, r.quality))
                );
            }
        }
    }
    // The plain frames are bit-exact with hash_video's (checked, not assumed).
    for (n, p) in videos.iter().take(3) {
        let plain = hash_video(p, &opts).expect("plain hash");
        let with: Vec<_> = frames_of(n).iter().map(|f| f.frame).collect();
        assert_eq!(plain, with, "{n}: plain frames differ with extras");
    }
    // Time: plain against plain + region, the first original, 3 runs each.
    let mut timing = String::new();
    {
        let (n, p) = &originals[0];
        let mut all = Options::default();
        all.every_seconds = None;
        let best = |f: &dyn Fn()| {
            (0..3)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed().as_secs_f64()
                })
                .fold(f64::MAX, f64::min)
        };
        let plain = best(&|| {
            hash_video(p, &all).expect("hash");
        });
        let region = best(&|| {
            hash_video_extras(p, &all, KindSet::of(&[HashKind::Region])).expect("hash");
        });
        let nframes = hash_video(p, &all).expect("hash").len();
        let _ = writeln!(
            timing,
            "Time, every frame of `{n}` ({nframes} frames, best of 3, all cores): plain {:.2} s, \
             plain + region {:.2} s ({:+.0} %).",
            plain,
            region,
            (region / plain - 1.0) * 100.0
        );
    }

    let rule = MatchRule::default();
    let modes = modes();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# vPDQ with per-frame extra hashes: framed and cropped copies\n\n\
         One frame every {every} s; rule: distance ≤ {}, quality ≥ {}, query ≥ {} %, compared ≥ {} %.\n\
         Cells: query % / compared % (✓ = matched). Query = the copy, compared = the original.\n\
         {} videos ({} made in {made_s:.0} s), hashed with region + centre-90 extras in {hash_s:.0} s.\n\n{timing}",
        rule.distance,
        rule.quality,
        rule.query_percent,
        rule.compared_percent,
        videos.len(),
        edited.len() + PHOTOS.len(),
    );
    let header = |md: &mut String, first: &str| {
        let _ = write!(md, "\n| {first} |");
        for m in &modes {
            let _ = write!(md, " {} |", m.name);
        }
        let _ = write!(md, "\n| --- |");
        for _ in &modes {
            let _ = write!(md, " ---: |");
        }
        let _ = writeln!(md);
    };
    let cell = |q: &str, c: &str, m: &Mode| {
        let r = bulwark_vpdq::match_videos_extras(
            &only(frames_of(q), m.kinds),
            &only(frames_of(c), m.kinds),
            &rule,
            m.pairing,
        );
        (
            r.result.is_match,
            format!(
                "{:.0} / {:.0}{}",
                r.result.query_percent,
                r.result.compared_percent,
                if r.result.is_match { " ✓" } else { "" }
            ),
        )
    };

    // Per edit: matched count over originals, then every pair.
    let _ = writeln!(
        md,
        "\n## Edits made with ffmpeg: originals matched, of {}",
        originals.len()
    );
    header(&mut md, "edit");
    for (edit, _, _) in EDITS {
        let _ = write!(md, "| {edit} |");
        for m in &modes {
            let n = edited
                .iter()
                .filter(|(_, e, _)| e == edit)
                .filter(|(o, _, c)| cell(c, o, m).0)
                .count();
            let _ = write!(md, " {n} / {} |", originals.len());
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(md, "\n## Every edited copy against its original");
    header(&mut md, "copy");
    for (o, _, c) in &edited {
        let _ = write!(md, "| {c} |");
        for m in &modes {
            let _ = write!(md, " {} |", cell(c, o, m).1);
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(
        md,
        "\n## The conformance set's own edits against their original"
    );
    header(&mut md, "copy (original)");
    for (o, c) in CONFORMANCE_PAIRS {
        let _ = write!(md, "| {c} ({o}) |");
        for m in &modes {
            let _ = write!(md, " {} |", cell(c, o, m).1);
        }
        let _ = writeln!(md);
    }

    // False matches: ordered pairs of videos of distinct content.
    let names: Vec<&str> = videos.iter().map(|(n, _)| n.as_str()).collect();
    let pairs: Vec<(&str, &str)> = names
        .iter()
        .flat_map(|a| names.iter().map(move |b| (*a, *b)))
        .filter(|(a, b)| group(a) != group(b))
        .collect();
    let groups: std::collections::BTreeSet<&str> = names.iter().map(|n| group(n)).collect();
    let _ = writeln!(
        md,
        "\n## False matches among distinct videos\n\n{} ordered pairs (either video as the query) \
         of {} videos in {} distinct contents ({}).",
        pairs.len(),
        names.len(),
        groups.len(),
        groups.iter().copied().collect::<Vec<_>>().join(", ")
    );
    let _ = writeln!(
        md,
        "\n| pairing | false matches | highest query % | that pair |\n| --- | ---: | ---: | --- |"
    );
    let mut false_pairs = std::collections::BTreeSet::new();
    for m in &modes {
        let mut matched = 0;
        let mut worst = (0.0f64, ("", ""));
        for (a, b) in &pairs {
            let r = bulwark_vpdq::match_videos_extras(
                &only(frames_of(a), m.kinds),
                &only(frames_of(b), m.kinds),
                &rule,
                m.pairing,
            );
            if r.result.is_match {
                matched += 1;
                false_pairs.insert((*a, *b));
            }
            if r.result.query_percent > worst.0 {
                worst = (r.result.query_percent, (a, b));
            }
        }
        let _ = writeln!(
            md,
            "| {} | {matched} | {:.0} | {} → {} |",
            m.name, worst.0, worst.1.0, worst.1.1
        );
    }
    let _ = writeln!(md, "\nPairs matched in any pairing (query → compared):\n");
    for (a, b) in &false_pairs {
        let _ = writeln!(md, "- {a} → {b}");
    }
    let _ = writeln!(md, "\nTotal {:.0} s.", started.elapsed().as_secs_f64());
    std::fs::write(out.join("report.md"), &md).expect("write report");
    print!("{md}");
}
