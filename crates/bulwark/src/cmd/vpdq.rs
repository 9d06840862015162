//! Placeholder: being built in this session.
use std::process::ExitCode;

/// Subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Placeholder.
    Todo,
}

pub fn run(_c: Command) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
