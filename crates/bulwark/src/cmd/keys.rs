//! `bulwark keys create|list|revoke`: API keys, straight in the database (the
//! service need not run; a running service sees changes within seconds).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use bulwark_server::auth::{self, Role};
use bulwark_server::db::Store;

/// Where the keys live.
#[derive(clap::Args)]
pub struct Db {
    /// Data directory of the service [default: ./bulwark-data].
    #[arg(long, env = "BULWARK_DATA_DIR", default_value = "bulwark-data")]
    pub(crate) data_dir: PathBuf,
    /// Database URL, when the service uses PostgreSQL.
    #[arg(long, env = "BULWARK_DATABASE")]
    database: Option<String>,
}

/// Key commands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a key and print it, alone, on stdout.
    Create {
        /// admin, curator, matcher or stamper (device keys come from enrolling a device).
        #[arg(long)]
        role: String,
        /// A name to recognise the key by.
        #[arg(long, default_value = "")]
        name: String,
        #[command(flatten)]
        db: Db,
    },
    /// List keys (ids, roles, names; never secrets).
    List {
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: Db,
    },
    /// Revoke a key by id (or by the key itself).
    Revoke {
        /// Key id (12 hex digits) or the whole key.
        id: String,
        #[command(flatten)]
        db: Db,
    },
}

pub(crate) async fn open(db: &Db) -> anyhow::Result<Store> {
    let url = match &db.database {
        Some(u) => u.clone(),
        None => {
            let path = db.data_dir.join("bulwark.db");
            anyhow::ensure!(
                db.data_dir.is_dir(),
                "no data directory {} (start `bulwark serve --data-dir {}` once, or pass --database)",
                db.data_dir.display(),
                db.data_dir.display()
            );
            format!("sqlite://{}?mode=rwc", path.display())
        }
    };
    Store::open(&url).await
}

pub fn run(c: Command) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match c {
            Command::Create { role, name, db } => {
                let role: Role = role.parse().map_err(|e: String| anyhow::anyhow!(e))?;
                if role == Role::Device {
                    anyhow::bail!(
                        "device keys are made by enrolling a device (POST /v1/devices or `bulwark device enrol`), which binds them to one account and device"
                    );
                }
                let store = open(&db).await?;
                let k = auth::create_key(&store, role, &name).await?;
                let mut out = std::io::stdout().lock();
                writeln!(out, "{}", k.key.as_str())?;
                eprintln!("bulwark: created {} key {}", role.name(), k.id);
                Ok(ExitCode::SUCCESS)
            }
            Command::List { json, db } => {
                let store = open(&db).await?;
                let keys = auth::list_keys(&store).await?;
                let mut out = std::io::stdout().lock();
                for k in keys {
                    if json {
                        writeln!(out, "{}", serde_json::to_string(&k)?)?;
                    } else {
                        writeln!(
                            out,
                            "{}\t{}\t{}\t{}\t{}",
                            k.id,
                            k.role,
                            k.created_at,
                            k.revoked_at
                                .as_deref()
                                .map_or("active".to_string(), |t| format!("revoked {t}")),
                            k.name
                        )?;
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::Revoke { id, db } => {
                let store = open(&db).await?;
                // Given the whole key, name it by its id only: the secret is never printed.
                let shown = auth::key_id_of(&id);
                if auth::revoke_key(&store, &id).await? {
                    eprintln!("bulwark: revoked {shown}");
                    Ok(ExitCode::SUCCESS)
                } else {
                    eprintln!("bulwark: no active key {shown}");
                    Ok(ExitCode::from(1))
                }
            }
        }
    })
}
