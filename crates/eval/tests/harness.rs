//! The harness on a few synthetic benign images made at test time.

use std::path::PathBuf;

use bulwark_eval::{Config, Matching, evaluate, find_images, report, transforms};
use image::{Rgb, RgbImage};

type Maker = Box<dyn Fn(u32, u32) -> Rgb<u8>>;

/// Smooth gradients, rings and stripes: distinct, benign, PDQ-hashable.
fn make_images(dir: &std::path::Path) -> Vec<PathBuf> {
    let makers: Vec<Maker> = vec![
        Box::new(|x, y| Rgb([(x * 2) as u8, (y * 3) as u8, 128])),
        Box::new(|x, y| {
            let d = ((x as i32 - 60).pow(2) + (y as i32 - 40).pow(2)) as u32;
            Rgb([(d / 7) as u8, 90, 255u32.saturating_sub(d / 9) as u8])
        }),
        Box::new(|x, y| Rgb([if (x / 12) % 2 == 0 { 220 } else { 30 }, (y * 2) as u8, 60])),
        Box::new(|x, y| Rgb([((x * y) / 40) as u8, (x + y) as u8, (y * 5) as u8])),
        Box::new(|x, y| {
            Rgb([
                if (x + y) / 16 % 2 == 0 { 200 } else { 50 },
                120,
                (x * 3) as u8,
            ])
        }),
    ];
    let mut paths = Vec::new();
    for (i, f) in makers.iter().enumerate() {
        let img = RgbImage::from_fn(128, 96, f);
        let p = dir.join(format!("img{i}.png"));
        img.save(&p).expect("save");
        paths.push(p);
    }
    // An exact duplicate under another name: must be excluded from false matches.
    std::fs::copy(&paths[0], dir.join("dup.png")).expect("copy");
    std::fs::write(dir.join("notes.txt"), "not an image").expect("write");
    paths
}

#[test]
fn measures_recall_and_false_matches_with_exclusions() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_images(dir.path());
    let images = find_images(dir.path()).expect("list");
    assert_eq!(images.len(), 6, "the text file is not an image");
    let out = dir.path().join("out");
    let cfg = Config::default();
    let set = transforms::standard_set();
    let n_t = set.len();
    let ev = evaluate(
        &images,
        &cfg,
        set.clone(),
        Some(&out.join("cache.tsv")).map(|p| {
            std::fs::create_dir_all(&out).expect("mkdir");
            p.as_path()
        }),
        &|| {},
    )
    .expect("evaluate");
    assert_eq!(ev.originals.len(), 6);
    assert_eq!(ev.copies.len(), 6 * n_t);

    // Identity: distance 0, recall 1 at every threshold.
    let id = ev
        .transforms
        .iter()
        .position(|t| t.name == "identity")
        .expect("identity");
    assert!(
        ev.recall(id, Matching::Plain, false)
            .iter()
            .all(|&r| r == 1.0)
    );
    // Lossless format round trips change nothing either.
    let png = ev
        .transforms
        .iter()
        .position(|t| t.name == "png")
        .expect("png");
    assert!(
        ev.copies
            .iter()
            .filter(|c| c.transform == png)
            .all(|c| c.distance == 0)
    );

    for c in &ev.copies {
        // The best of eight includes the original hash itself.
        assert!(c.dihedral_distance <= c.distance);
        // Copies are compared with their own original's hash.
        assert_eq!(c.distance, ev.originals[c.original].hash.distance(&c.hash));
    }
    // A 180° rotation is caught by dihedral matching far better than plainly.
    let rot = ev
        .transforms
        .iter()
        .position(|t| t.name == "rotate-180")
        .expect("rot");
    let (plain, dih): (u32, u32) = ev
        .copies
        .iter()
        .filter(|c| c.transform == rot)
        .fold((0, 0), |(a, b), c| {
            (a + c.distance, b + c.dihedral_distance)
        });
    assert!(dih * 2 < plain, "dihedral {dih} vs plain {plain}");

    // Recall curves never decrease.
    for ti in 0..n_t {
        let r = ev.recall(ti, Matching::Plain, false);
        assert!(r.windows(2).all(|w| w[0] <= w[1]));
    }

    // 6 originals: 15 pairs, one of them the duplicate, excluded with its reason.
    assert!(
        ev.excluded_pairs
            .iter()
            .any(|(_, _, w)| w.contains("SHA-256"))
    );
    assert_eq!(ev.pairs() as usize + ev.excluded_pairs.len(), 15);

    let md = report::write(&ev, &out).expect("report");
    let text = std::fs::read_to_string(md).expect("report.md");
    assert!(text.contains("jpeg-q30") && text.contains("False matches"));
    let csv = std::fs::read_to_string(out.join("recall.csv")).expect("csv");
    assert_eq!(csv.lines().count(), 1 + n_t * 129);
    let svg = std::fs::read_to_string(out.join("false_match_rate.svg")).expect("svg");
    assert!(svg.starts_with("<svg"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("figures.json")).expect("json"))
            .expect("parse");
    assert_eq!(json["originals"], 6);

    // Resumable: the cache holds every copy; a second run reproduces the figures.
    let cached = std::fs::read_to_string(out.join("cache.tsv")).expect("cache");
    assert_eq!(cached.lines().count(), 6 * n_t);
    let again = evaluate(&images, &cfg, set, Some(&out.join("cache.tsv")), &|| {}).expect("again");
    assert_eq!(again.pair_hist, ev.pair_hist);
    let a: Vec<u32> = again.copies.iter().map(|c| c.distance).collect();
    let b: Vec<u32> = ev.copies.iter().map(|c| c.distance).collect();
    assert_eq!(a, b);
}

#[test]
fn noise_is_reproducible_by_seed() {
    let img = RgbImage::from_fn(64, 48, |x, y| Rgb([x as u8 * 3, y as u8 * 4, 77]));
    let noise = transforms::standard_set()
        .into_iter()
        .find(|t| t.name == "noise-sigma20")
        .expect("noise");
    assert_eq!(
        noise.apply(&img, 5).expect("a"),
        noise.apply(&img, 5).expect("b")
    );
    assert_ne!(
        noise.apply(&img, 5).expect("a"),
        noise.apply(&img, 6).expect("c")
    );
}
