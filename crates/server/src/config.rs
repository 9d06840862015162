//! Service configuration: flags and environment (parsed by the binary) over a
//! TOML file over defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Everything `bulwark serve` can be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory for the embedded database, the first admin key and snapshots.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; `None`: SQLite in `data_dir`.
    pub database: Option<String>,
    /// Largest accepted upload body, in bytes.
    pub max_upload_bytes: usize,
    /// Largest list accepted by an import job (spooled to `data_dir/imports`).
    pub max_import_bytes: u64,
    /// Threads decoding and hashing media (the bounded worker pool).
    pub workers: usize,
    /// Uploads accepted at once (each holds at most `max_upload_bytes`); more wait.
    pub max_uploads_in_flight: usize,
    /// Image pixels, in millions, decoded at once across the workers (hashing
    /// holds about 11 bytes per pixel, so 64 is about 700 MB at the peak);
    /// an image larger than this runs alone.
    pub decode_megapixels: u32,
    /// How long an upload may wait for a worker before a 503.
    pub queue_timeout: Duration,
    /// How long one request may take, body included.
    pub request_timeout: Duration,
    /// A connection must send a complete request head within this time after
    /// it opens and between keep-alive requests, or it is closed.
    pub header_read_timeout: Duration,
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// How often this node polls the database for other replicas' writes
    /// (each wait is jittered by ±50 %).
    pub refresh_interval: Duration,
    /// On PostgreSQL an import job writes one batch at a time for this long
    /// after a single write began, leaving a core to single writes, and two
    /// at once otherwise. Zero: always two at once (faster imports, slower
    /// single writes beside them).
    pub import_share_after_write: Duration,
    /// Default per-bank distance threshold for new banks.
    pub default_threshold: u32,
    /// Videos are hashed one frame every this many seconds.
    pub video_every_seconds: f64,
    /// Longest a video may take to decode.
    pub video_timeout: Duration,
    /// Write the first admin key on an empty key table.
    pub bootstrap_admin: bool,
    /// The key-encryption key file (64 hex digits); `None`: `BULWARK_KEK`, else
    /// `data_dir/secrets.kek`, created at first start.
    pub kek_file: Option<PathBuf>,
    /// Vouchers one device may submit per minute (a burst of this many, refilled evenly).
    pub vouchers_per_device_per_minute: u32,
    /// Vouchers one API key may relay per minute.
    pub vouchers_per_key_per_minute: u32,
    /// The HMA-compatible surface (`[hma]`).
    pub hma: crate::api::hma::HmaConfig,
    /// The reviewer console (`[console]`).
    pub console: crate::console::ConsoleConfig,
    /// Extra PDQ hashes banks store for photos added from media (crops,
    /// content region: docs/DETECTION.md); uploads to match compute what
    /// these need ([`bulwark_pdq::KindSet::query_side`]). Empty: plain banks.
    /// The default also stores the pdata variants (`crop-1.5`, `scale-0.3`),
    /// which no match uses: `POST /v1/pdata/build` needs them for the
    /// `expanded` profile (docs/PRIVATE-MATCHING.md).
    pub extra_hashes: bulwark_pdq::KindSet,
}

impl Default for Config {
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("bulwark-data"),
            database: None,
            max_upload_bytes: 64 << 20,
            max_import_bytes: 4 << 30,
            workers,
            max_uploads_in_flight: 2 * workers + 2,
            decode_megapixels: 64,
            queue_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(120),
            header_read_timeout: Duration::from_secs(15),
            max_connections: 4096,
            refresh_interval: Duration::from_secs(2),
            import_share_after_write: bulwark_store::SINGLE_WRITE_WINDOW,
            default_threshold: 31,
            video_every_seconds: 1.0,
            video_timeout: Duration::from_secs(60),
            bootstrap_admin: true,
            kek_file: None,
            vouchers_per_device_per_minute: 600,
            vouchers_per_key_per_minute: 60_000,
            hma: crate::api::hma::HmaConfig::default(),
            console: Default::default(),
            extra_hashes: bulwark_pdq::KindSet::BANK_DEFAULT
                .union(bulwark_pdq::KindSet::PDATA_VARIANTS),
        }
    }
}

/// The configuration file's shape (`bulwark serve --config FILE`); every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See [`Config::listen`].
    pub listen: Option<SocketAddr>,
    /// See [`Config::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// See [`Config::database`].
    pub database: Option<String>,
    /// See [`Config::max_upload_bytes`].
    pub max_upload_bytes: Option<usize>,
    /// See [`Config::max_import_bytes`].
    pub max_import_bytes: Option<u64>,
    /// See [`Config::workers`].
    pub workers: Option<usize>,
    /// See [`Config::max_uploads_in_flight`].
    pub max_uploads_in_flight: Option<usize>,
    /// See [`Config::decode_megapixels`].
    pub decode_megapixels: Option<u32>,
    /// Seconds; see [`Config::queue_timeout`].
    pub queue_timeout_seconds: Option<f64>,
    /// Seconds; see [`Config::request_timeout`].
    pub request_timeout_seconds: Option<f64>,
    /// Seconds; see [`Config::header_read_timeout`].
    pub header_read_timeout_seconds: Option<f64>,
    /// See [`Config::max_connections`].
    pub max_connections: Option<usize>,
    /// Seconds; see [`Config::refresh_interval`].
    pub refresh_interval_seconds: Option<f64>,
    /// Seconds; see [`Config::import_share_after_write`].
    pub import_share_after_write_seconds: Option<f64>,
    /// See [`Config::default_threshold`].
    pub default_threshold: Option<u32>,
    /// See [`Config::video_every_seconds`].
    pub video_every_seconds: Option<f64>,
    /// Seconds; see [`Config::video_timeout`].
    pub video_timeout_seconds: Option<f64>,
    /// See [`Config::kek_file`].
    pub kek_file: Option<PathBuf>,
    /// See [`Config::vouchers_per_device_per_minute`].
    pub vouchers_per_device_per_minute: Option<u32>,
    /// See [`Config::vouchers_per_key_per_minute`].
    pub vouchers_per_key_per_minute: Option<u32>,
    /// See [`Config::hma`].
    pub hma: Option<crate::api::hma::HmaFileConfig>,
    /// See [`Config::console`].
    pub console: Option<crate::console::ConsoleConfig>,
    /// Kind names, e.g. `["region", "centre-90"]`; see [`Config::extra_hashes`].
    pub extra_hashes: Option<Vec<bulwark_pdq::HashKind>>,
}

fn secs(v: f64, key: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v).map_err(|_| anyhow::anyhow!("{key}: {v} is not a duration"))
}

impl FileConfig {
    /// Reads a TOML file.
    pub fn read(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// Applies the file's settings on top of `c`.
    pub fn apply(self, c: &mut Config) -> anyhow::Result<()> {
        if let Some(h) = self.hma {
            h.apply(&mut c.hma)?;
        }
        if let Some(v) = self.listen {
            c.listen = v;
        }
        if let Some(v) = self.data_dir {
            c.data_dir = v;
        }
        if let Some(v) = self.database {
            c.database = Some(v);
        }
        if let Some(v) = self.max_upload_bytes {
            c.max_upload_bytes = v;
        }
        if let Some(v) = self.max_import_bytes {
            c.max_import_bytes = v;
        }
        if let Some(v) = self.workers {
            c.workers = v.max(1);
        }
        if let Some(v) = self.max_uploads_in_flight {
            c.max_uploads_in_flight = v.max(1);
        }
        if let Some(v) = self.decode_megapixels {
            anyhow::ensure!(v > 0, "decode_megapixels must be at least 1");
            c.decode_megapixels = v;
        }
        if let Some(v) = self.queue_timeout_seconds {
            c.queue_timeout = secs(v, "queue_timeout_seconds")?;
        }
        if let Some(v) = self.request_timeout_seconds {
            c.request_timeout = secs(v, "request_timeout_seconds")?;
        }
        if let Some(v) = self.header_read_timeout_seconds {
            c.header_read_timeout = secs(v, "header_read_timeout_seconds")?;
        }
        if let Some(v) = self.max_connections {
            anyhow::ensure!(v > 0, "max_connections must be at least 1");
            c.max_connections = v;
        }
        if let Some(v) = self.refresh_interval_seconds {
            c.refresh_interval = secs(v, "refresh_interval_seconds")?;
        }
        if let Some(v) = self.import_share_after_write_seconds {
            c.import_share_after_write = secs(v, "import_share_after_write_seconds")?;
        }
        if let Some(v) = self.default_threshold {
            anyhow::ensure!(v <= 256, "default_threshold {v} is above 256");
            c.default_threshold = v;
        }
        if let Some(v) = self.video_every_seconds {
            anyhow::ensure!(v >= 0.0 && v.is_finite(), "video_every_seconds must be ≥ 0");
            c.video_every_seconds = v;
        }
        if let Some(v) = self.video_timeout_seconds {
            c.video_timeout = secs(v, "video_timeout_seconds")?;
        }
        if let Some(v) = self.kek_file {
            c.kek_file = Some(v);
        }
        if let Some(v) = self.console {
            c.console = v;
        }
        if let Some(v) = self.extra_hashes {
            anyhow::ensure!(
                !v.contains(&bulwark_pdq::HashKind::Full),
                "extra_hashes: \"full\" is always stored; list only extra kinds"
            );
            c.extra_hashes = v.into_iter().collect();
        }
        for (v, field, name) in [
            (
                self.vouchers_per_device_per_minute,
                &mut c.vouchers_per_device_per_minute,
                "vouchers_per_device_per_minute",
            ),
            (
                self.vouchers_per_key_per_minute,
                &mut c.vouchers_per_key_per_minute,
                "vouchers_per_key_per_minute",
            ),
        ] {
            if let Some(v) = v {
                anyhow::ensure!(v > 0, "{name} must be at least 1");
                *field = v;
            }
        }
        Ok(())
    }
}

impl Config {
    /// The decode pool's share of the settings.
    pub fn pool_options(&self) -> crate::media::PoolOptions {
        crate::media::PoolOptions {
            workers: self.workers,
            max_uploads_in_flight: self.max_uploads_in_flight,
            decode_megapixels: self.decode_megapixels,
            queue_timeout: self.queue_timeout,
            video_every_seconds: self.video_every_seconds,
            video_timeout: self.video_timeout,
            extra_hashes: self.extra_hashes,
        }
    }

    /// The database URL: the configured one, or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database {
            Some(u) => u.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("bulwark.db").display()
            ),
        }
    }
}
