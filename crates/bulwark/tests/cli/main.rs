//! The `bulwark` binary's end-to-end tests, as one test binary: each module
//! starts the built binary (`CARGO_BIN_EXE_bulwark`) and talks to it.

// `bulwark bench` exists only with the `bench` feature.
#[cfg(feature = "bench")]
mod bench_import;
// `bulwark chat` exists only with the `chat` feature.
#[cfg(feature = "chat")]
mod chat_cli;
mod dev_profile;
mod serve_crash;
mod serve_logs;
mod vouchers_e2e;
