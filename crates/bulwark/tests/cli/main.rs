//! The `bulwark` binary's end-to-end tests, as one test binary: each module
//! starts the built binary (`CARGO_BIN_EXE_bulwark`) and talks to it.

// `bulwark chat` exists only with the `chat` feature.
#[cfg(feature = "chat")]
mod chat_cli;
mod serve_crash;
mod serve_logs;
mod vouchers_e2e;
