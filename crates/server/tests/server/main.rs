//! The server's tests over HTTP, as one test binary: each module is one
//! area (a binary per area would link the whole dependency tree again for
//! each). `cargo test --workspace --features bulwark/full --test server
//! MODULE::` runs one area.

// First, so that its macros (`both_databases!`) are in scope below.
#[macro_use]
mod support;

mod api;
mod connections;
mod console;
mod console_browser;
mod console_fixtures;
mod console_signals;
mod errors;
mod expanded;
mod hma_conformance;
mod imports;
mod multi_hash;
mod signals;
