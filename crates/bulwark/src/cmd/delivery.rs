//! `bulwark delivery serve`: the reference messenger's delivery service. It
//! needs no MLS code, so it is in every build; the messenger's client,
//! `bulwark chat`, needs the `chat` feature.

use std::process::ExitCode;

/// `bulwark delivery` commands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Run the delivery service.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: std::net::SocketAddr,
        /// The database: a SQLite file (created), `sqlite://FILE` or
        /// `postgres://...` (it may be the matcher's own database).
        #[arg(long, env = "BULWARK_DELIVERY_DATABASE", default_value = "delivery.db")]
        database: String,
        /// Matcher service (`bulwark serve`) URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        matcher: String,
        /// A stamper-role API key of the matcher service.
        #[arg(
            long = "stamper-key",
            env = "BULWARK_STAMPER_KEY",
            hide_env_values = true
        )]
        stamper_key: String,
    },
}

/// Runs `bulwark delivery ...`.
pub fn run(c: Command) -> anyhow::Result<ExitCode> {
    let Command::Serve {
        listen,
        database,
        matcher,
        stamper_key,
    } = c;
    let rt = tokio::runtime::Runtime::new()?;
    eprintln!("bulwark: delivery service on http://{listen}, matcher {matcher}");
    rt.block_on(bulwark_chat::delivery::serve(
        bulwark_chat::delivery::Config {
            database,
            matcher_url: matcher,
            stamper_key,
        },
        listen,
    ))?;
    Ok(ExitCode::SUCCESS)
}
