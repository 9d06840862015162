//! `bulwark`: the command line of Bulwark.
//!
//! Exit codes (documented in `--help` too): matching commands follow grep —
//! 0 when something matched, 1 when nothing did, 2 on error; other commands
//! exit 0 on success, 1 when some inputs failed (the rest were done), 2 on a
//! fatal or usage error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The allocator this binary was built with, for benchmark reports.
#[cfg(feature = "bench")]
pub(crate) const ALLOCATOR: &str = if cfg!(feature = "mimalloc") {
    "mimalloc"
} else {
    "system"
};

const EXIT_CODES: &str = "\
Exit status: 0 success (or: a match was found); 1 some inputs failed, the rest \
were done (or: no match); 2 fatal or usage error.";

/// Bulwark: PDQ hashing, exact hash matching, private matching and verifiable
/// reports for end-to-end encrypted messengers.
#[derive(Parser)]
#[command(name = "bulwark", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// PDQ-hash images (files, directories, or `-` for stdin).
    Hash(cmd::hash::Args),
    /// Print the Hamming distance between two PDQ hashes.
    Compare(cmd::compare::Args),
    /// Build, search and inspect an exact Hamming-radius index.
    #[command(subcommand)]
    Index(cmd::index::Command),
    /// Measure detection quality of PDQ on a folder of benign images.
    #[cfg(feature = "eval")]
    Eval(cmd::eval::Args),
    /// Measure detection quality [not in this build: the `eval` feature].
    #[cfg(not(feature = "eval"))]
    Eval(cmd::Disabled),
    /// vPDQ video hashing and matching.
    #[command(subcommand)]
    Vpdq(cmd::vpdq::Command),
    /// Run the matcher service (HTTP API; SQLite in --data-dir unless --database).
    Serve(cmd::serve::Args),
    /// Create, list and revoke the service's API keys.
    #[command(subcommand)]
    Keys(cmd::keys::Command),
    /// Import a hash list into a bank of a running service (an import job, with progress).
    Import(cmd::import::Args),
    /// A test device for private matching: account keys, safety vouchers, sending them.
    #[command(subcommand)]
    Device(cmd::device::Command),
    /// Published matching tables (pdata): verify against a root, fetch from a service.
    #[command(subcommand)]
    Pdata(cmd::device::PdataCommand),
    /// List providers: a signing key, and signing a pdata release.
    #[command(subcommand)]
    Providers(cmd::device::ProvidersCommand),
    /// Text and entity signals of ad text: extract, hash, fold, rules, eval.
    #[command(subcommand)]
    Signals(cmd::signals::Command),
    /// The reference messenger (MLS): terminal UI (the default), register, send, read, report, groups.
    #[cfg(feature = "chat")]
    Chat(cmd::chat::Args),
    /// The reference messenger (MLS) [not in this build: the `chat` feature].
    #[cfg(not(feature = "chat"))]
    Chat(cmd::Disabled),
    /// The reference messenger's delivery service.
    #[command(subcommand)]
    Delivery(cmd::delivery::Command),
    /// The reviewer console: reviewer accounts.
    #[command(subcommand)]
    Console(cmd::console::Command),
    /// Benchmarks against the named references.
    #[cfg(feature = "bench")]
    #[command(subcommand)]
    Bench(cmd::bench::Command),
    /// Benchmarks [not in this build: the `bench` feature].
    #[cfg(not(feature = "bench"))]
    Bench(cmd::Disabled),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Hash(a) => cmd::hash::run(a),
        Command::Compare(a) => cmd::compare::run(a),
        Command::Index(c) => cmd::index::run(c),
        #[cfg(feature = "eval")]
        Command::Eval(a) => cmd::eval::run(a),
        #[cfg(not(feature = "eval"))]
        Command::Eval(_) => cmd::disabled("eval", "eval"),
        Command::Vpdq(c) => cmd::vpdq::run(c),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Keys(c) => cmd::keys::run(c),
        Command::Import(a) => cmd::import::run(a),
        Command::Device(c) => cmd::device::run(c),
        Command::Pdata(c) => cmd::device::run_pdata(c),
        Command::Providers(c) => cmd::device::run_providers(c),
        #[cfg(feature = "bench")]
        Command::Bench(c) => cmd::bench::run(c),
        #[cfg(not(feature = "bench"))]
        Command::Bench(_) => cmd::disabled("bench", "bench"),
        Command::Console(c) => cmd::console::run(c),
        Command::Signals(c) => cmd::signals::run(c),
        #[cfg(feature = "chat")]
        Command::Chat(a) => cmd::chat::run(a),
        #[cfg(not(feature = "chat"))]
        Command::Chat(_) => cmd::disabled("chat", "chat"),
        Command::Delivery(c) => cmd::delivery::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) if cmd::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bulwark: {e:#}");
            ExitCode::from(2)
        }
    }
}
