//! `bulwark console add-reviewer`: reviewer accounts of the console, straight
//! in the database. There is no default password: each account gets the one
//! given here (from `BULWARK_REVIEWER_PASSWORD` or the first line of stdin).

use std::io::BufRead;
use std::process::ExitCode;

use bulwark_server::console::accounts::{self, ConsoleRole};
use bulwark_server::secrets::Kek;

use super::keys::{Db, open};

/// Console commands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a reviewer account; the password is read from
    /// BULWARK_REVIEWER_PASSWORD or the first line of stdin (at least 12 characters).
    AddReviewer {
        /// Login name.
        #[arg(long)]
        name: String,
        /// reviewer, lead or admin.
        #[arg(long, default_value = "reviewer")]
        role: String,
        /// Enrol a TOTP authenticator: prints its secret (base32) and otpauth URI.
        #[arg(long)]
        totp: bool,
        #[command(flatten)]
        db: Db,
    },
}

pub fn run(c: Command) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match c {
            Command::AddReviewer {
                name,
                role,
                totp,
                db,
            } => {
                let role: ConsoleRole = role.parse().map_err(|e: String| anyhow::anyhow!(e))?;
                let password = match std::env::var("BULWARK_REVIEWER_PASSWORD") {
                    Ok(p) => p,
                    Err(_) => {
                        let mut line = String::new();
                        std::io::stdin().lock().read_line(&mut line)?;
                        line.trim_end_matches(['\r', '\n']).to_string()
                    }
                };
                let store = open(&db).await?;
                let kek = Kek::load(None, &db.data_dir)?;
                let secret =
                    accounts::add_reviewer(&store, &kek, &name, role, &password, totp).await?;
                if let Some(s) = secret {
                    println!("{s}");
                    println!("otpauth://totp/Bulwark:{name}?secret={s}&issuer=Bulwark");
                }
                eprintln!("bulwark: added {} {name}", role.name());
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}
