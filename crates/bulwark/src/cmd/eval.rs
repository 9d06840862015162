//! Placeholder: being built in this session.
use std::process::ExitCode;

/// Arguments.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_a: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
