//! The dev profile gives dependencies opt-level 3 through `[profile.dev]`
//! (so that build scripts and proc macros stay at `build-override`'s 0), and
//! each workspace crate its own level by name. A crate added without a
//! `[profile.dev.package.<name>]` entry would silently compile at opt-level
//! 3, the slowest to build: this test names it.
#![allow(clippy::unwrap_used)]

use std::path::Path;

#[test]
fn every_workspace_crate_names_its_dev_opt_level() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(
        !workspace
            .lines()
            .any(|l| l.trim() == "[profile.dev.package.\"*\"]"),
        "`package.\"*\"` outranks `build-override`: build scripts and proc macros would compile at its level"
    );
    let mut crates = 0;
    for dir in std::fs::read_dir(root.join("crates")).unwrap() {
        let manifest = dir.unwrap().path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let name = text
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{} has no package name", manifest.display()));
        let entry = format!("[profile.dev.package.{name}]\nopt-level = ");
        assert!(
            workspace.contains(&entry),
            "Cargo.toml has no `[profile.dev.package.{name}]` with an opt-level: \
             {name} would compile at opt-level 3"
        );
        crates += 1;
    }
    assert!(crates >= 15, "found {crates} workspace crates");
}
