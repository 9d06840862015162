//! The multi-hash evaluation without the full `bulwark` binary (same code as
//! `bulwark eval --multi`, lighter to build):
//!
//! `cargo run --release -p bulwark-eval --example multi_eval -- DIR OUT [COPIES_EVERY] [EXTRA_MIN_QUALITY] [EDIT...]`

use bulwark_eval::{Config, MultiConfig, evaluate_multi, find_images, transforms};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, out, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: multi_eval DIR OUT [COPIES_EVERY] [EXTRA_MIN_QUALITY] [EDIT...]".into(),
        );
    };
    let every: usize = rest.first().map_or(Ok(1), |s| s.parse())?;
    let floor: u32 = rest.get(1).map_or(Ok(0), |s| s.parse())?;
    let only = rest.get(2..).unwrap_or(&[]);
    let mut set = transforms::standard_set();
    if !only.is_empty() {
        set.retain(|t| only.contains(&t.name));
    }
    let images = find_images(std::path::Path::new(dir))?;
    let mc = MultiConfig {
        copies_every: every,
        extra_min_quality: floor,
        ..Default::default()
    };
    let ev = evaluate_multi(&images, &Config::default(), &mc, set, &|| {})?;
    for (p, e) in &ev.failed {
        eprintln!("{}: {e}", p.display());
    }
    let md = ev.write(std::path::Path::new(out), 31)?;
    print!("{}", std::fs::read_to_string(md)?);
    Ok(())
}
