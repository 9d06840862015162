//! One module per subcommand. Each exposes its clap `Args` (or `Command`) and
//! a `run` that returns the process exit code.

#[cfg(feature = "bench")]
pub mod bench;
#[cfg(feature = "chat")]
pub mod chat;
pub mod compare;
pub mod console;
pub mod delivery;
pub mod device;
#[cfg(feature = "eval")]
pub mod eval;
pub mod hash;
pub mod import;
pub mod index;
pub mod keys;
pub mod serve;
pub mod signals;
pub mod vpdq;

/// The arguments of a command this binary was built without (cargo features,
/// README "Cargo features"): anything is accepted, and running it says which
/// feature to build with.
#[derive(clap::Args)]
#[command(disable_help_flag = true)]
#[cfg_attr(
    all(feature = "chat", feature = "eval", feature = "bench"),
    allow(dead_code)
)]
pub struct Disabled {
    /// Ignored.
    #[arg(num_args = 0.., trailing_var_arg = true, allow_hyphen_values = true)]
    _args: Vec<std::ffi::OsString>,
}

/// The error for a command this binary was built without.
#[cfg_attr(
    all(feature = "chat", feature = "eval", feature = "bench"),
    allow(dead_code)
)]
pub fn disabled(command: &str, feature: &str) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!(
        "`bulwark {command}` is not in this build: build with the `{feature}` cargo feature \
         (`cargo build --release -p bulwark --features {feature}`, or `--features full`)"
    )
}

/// True when the error chain bottoms out in a closed pipe (`bulwark hash | head`).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
