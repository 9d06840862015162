//! `bulwark bench import`, small: it runs end to end, every line of its list
//! is added (the command fails otherwise), and `--write-every-ms 0` makes no
//! single writes during the import.
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn bench_import_alone_adds_every_line_and_makes_no_single_writes_beside_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args([
            "bench",
            "import",
            "--lines",
            "3000",
            "--reference-lines",
            "100",
            "--write-every-ms",
            "0",
            "--json",
        ])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["backend"], "sqlite", "{v}");
    assert_eq!(v["lines"], 3000, "{v}");
    assert_eq!(v["single_writes"], 0, "{v}");
    assert_eq!(v["single_write_errors"], 0, "{v}");
    assert!(v["lines_per_s"].as_f64().unwrap() > 0.0, "{v}");
    // The writes before the import still ran, to measure a write alone.
    assert!(v["alone_p50_ms"].as_f64().unwrap() > 0.0, "{v}");
}
