//! One module per subcommand. Each exposes its clap `Args` (or `Command`) and
//! a `run` that returns the process exit code.

pub mod bench;
pub mod chat;
pub mod compare;
pub mod console;
pub mod device;
pub mod eval;
pub mod hash;
pub mod import;
pub mod index;
pub mod keys;
pub mod serve;
pub mod signals;
pub mod vpdq;

/// True when the error chain bottoms out in a closed pipe (`bulwark hash | head`).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
