//! `bulwark serve`: the matcher service.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use bulwark_server::{Config, FileConfig, Service};

/// Settings: flags (or `BULWARK_*` environment variables) override the
/// `--config` file, which overrides the defaults.
#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "BULWARK_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data directory: the embedded database and the first admin key [default: ./bulwark-data].
    #[arg(long, env = "BULWARK_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL: postgres://user@host/db for PostgreSQL (replicas share it),
    /// or sqlite://PATH [default: SQLite in the data directory].
    #[arg(long, env = "BULWARK_DATABASE")]
    database: Option<String>,
    /// A TOML configuration file (keys as in docs/SERVICE.md).
    #[arg(long, env = "BULWARK_CONFIG")]
    config: Option<PathBuf>,
    /// Largest accepted upload, in bytes [default: 67108864].
    #[arg(long, env = "BULWARK_MAX_UPLOAD_BYTES")]
    max_upload_bytes: Option<usize>,
    /// Threads decoding media [default: the number of cores].
    #[arg(long, env = "BULWARK_WORKERS")]
    workers: Option<usize>,
    /// Seconds between polls for other replicas' writes, jittered ±50 % [default: 2].
    #[arg(long, env = "BULWARK_REFRESH_SECONDS")]
    refresh_seconds: Option<f64>,
    /// Log lines as text (coloured only on a terminal) or one JSON object per line.
    #[arg(long, env = "BULWARK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// How `bulwark serve` writes its log to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; ANSI colours only when stderr is a terminal.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Builds the configuration from defaults, the file, then flags.
pub fn config(a: &Args) -> anyhow::Result<Config> {
    let mut c = Config::default();
    if let Some(p) = &a.config {
        FileConfig::read(p)?.apply(&mut c)?;
    }
    if let Some(v) = a.listen {
        c.listen = v;
    }
    if let Some(v) = &a.data_dir {
        c.data_dir = v.clone();
    }
    if let Some(v) = &a.database {
        c.database = Some(v.clone());
    }
    if let Some(v) = a.max_upload_bytes {
        c.max_upload_bytes = v;
    }
    if let Some(v) = a.workers {
        c.workers = v.max(1);
    }
    if let Some(v) = a.refresh_seconds {
        c.refresh_interval = std::time::Duration::try_from_secs_f64(v)
            .map_err(|_| anyhow::anyhow!("--refresh-seconds {v} is not a duration"))?;
    }
    Ok(c)
}

/// Installs the global log subscriber: `RUST_LOG` filters (default
/// `info,sqlx=warn`), stderr is the sink.
pub fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    init_logging(a.log_format);
    let c = config(&a)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let service = Service::open(c).await?;
        if let Some(path) = &service.admin_key_file {
            eprintln!(
                "bulwark: first start: an admin API key was written to {} (mode 0600).\n\
                 bulwark: use it as `Authorization: Bearer $(cat {})`; create narrower keys with \
                 `bulwark keys create --role matcher`.",
                path.display(),
                path.display()
            );
        }
        service.run().await
    })?;
    Ok(ExitCode::SUCCESS)
}
