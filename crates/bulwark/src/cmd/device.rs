//! `bulwark device ...` and `bulwark pdata ...`: a device for testing and
//! integrating private matching (safety vouchers) against `bulwark serve`.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine as _;
use bulwark_client::voucher::{DeviceAccount, SeenImages, voucher_for_image_seen};

/// Device commands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a device account secret (hex) in FILE (mode 0600), or on stdout.
    Keygen {
        /// Where to write it.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Build safety vouchers for images: JSON lines {"image", "voucher"} on stdout
    /// (no plaintext PDQ hash unless --print-pdq).
    Voucher {
        /// The pdata file (GET /v1/pdata).
        #[arg(long)]
        pdata: PathBuf,
        #[command(flatten)]
        trust: Trust,
        /// The account secret file (from `device keygen`).
        #[arg(long)]
        account: PathBuf,
        /// Accept a pdata whose threshold is as low as this (default policy: 30).
        /// For tests and demos only: a low threshold tells the service about an
        /// account after few matches.
        #[arg(long)]
        allow_threshold: Option<u16>,
        /// Also write each image's PDQ hash next to its voucher. Off by default:
        /// the voucher exists so that the service does not learn the hash of an
        /// image that does not match, and a file of plaintext hashes next to the
        /// vouchers undoes that wherever the file goes.
        #[arg(long)]
        print_pdq: bool,
        /// Images.
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Send vouchers (JSON lines from `device voucher`, FILE or - for stdin) to the service.
    Send {
        /// Service base URL, http://HOST:PORT (plain HTTP: loopback or behind your own TLS).
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        /// API key with the matcher role.
        #[arg(long, env = "BULWARK_KEY", hide_env_values = true)]
        key: String,
        /// The account id the service files the vouchers under.
        #[arg(long = "account-id")]
        account_id: String,
        /// Voucher lines.
        #[arg(default_value = "-")]
        input: PathBuf,
    },
}

/// Pdata commands.
#[derive(clap::Subcommand)]
pub enum PdataCommand {
    /// Check a pdata file against a published root (and the device policy); exit 1 if it does not match.
    Verify {
        /// The pdata file.
        file: PathBuf,
        #[command(flatten)]
        trust: Trust,
        /// Accept a threshold as low as this (default policy: 30); tests and demos only.
        #[arg(long)]
        allow_threshold: Option<u16>,
    },
    /// Create a list provider's Ed25519 signing key in FILE (mode 0600); prints
    /// the public key that devices pin.
    ProviderKeygen {
        /// Where to write the secret key.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// As a list provider: sign a pdata's root and header (after checking the
    /// release is the one you agreed to) and add the signature to a signed-root
    /// file (created if absent). Prints the parameters signed.
    Sign {
        /// The pdata file.
        file: PathBuf,
        /// The provider key (from `pdata provider-keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The signed-root file to create or add to.
        #[arg(long)]
        signed_root: PathBuf,
    },
    /// Download the service's current pdata to FILE and print the root the service claims.
    Fetch {
        /// Service base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        /// Where to write it.
        #[arg(long, short)]
        out: PathBuf,
    },
}

/// How the device trusts a pdata: a signed root and pinned provider keys, or
/// (tests only) a bare root.
#[derive(clap::Args)]
pub struct Trust {
    /// The signed root file (SignedRoot bytes): the pdata is accepted only with
    /// valid signatures by at least two distinct --provider keys.
    #[arg(long, requires = "provider", conflicts_with = "root")]
    signed_root: Option<PathBuf>,
    /// A pinned provider public key (64 hex digits); repeat for each provider.
    #[arg(long)]
    provider: Vec<String>,
    /// A bare root (64 hex digits), checked without provider signatures: for
    /// tests and services that do not publish signed roots yet.
    #[arg(long, required_unless_present = "signed_root")]
    root: Option<String>,
}

fn load_trusted(
    bytes: &[u8],
    trust: &Trust,
    allow_threshold: Option<u16>,
) -> anyhow::Result<bulwark_client::voucher::Pdata> {
    use bulwark_client::voucher::{Policy, ProviderPublic};
    let providers = trust
        .provider
        .iter()
        .map(|p| p.parse::<ProviderPublic>())
        .collect::<Result<Vec<_>, _>>()?;
    let mut policy = Policy::default().pin(providers);
    if let Some(t) = allow_threshold {
        policy = policy.allow_threshold(t);
    }
    Ok(match (&trust.signed_root, &trust.root) {
        (Some(path), _) => {
            let signed =
                std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            bulwark_client::voucher::load_signed_pdata(bytes, &signed, &policy)?
        }
        (None, Some(root)) => {
            eprintln!(
                "bulwark: warning: checking the pdata against a bare root, without provider signatures"
            );
            bulwark_client::voucher::load_pdata_with_policy(bytes, root, &policy)?
        }
        (None, None) => anyhow::bail!("give --signed-root and --provider, or --root"),
    })
}

fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    writeln!(f, "{text}")?;
    Ok(())
}

/// A minimal HTTP/1.1 exchange over plain TCP: (status, headers, body).
fn http(
    server: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &[u8],
) -> anyhow::Result<(u16, String, Vec<u8>)> {
    let hostport = server
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("--server must be http://HOST:PORT (got {server:?})"))?
        .trim_end_matches('/');
    let mut s = TcpStream::connect(hostport)
        .map_err(|e| anyhow::anyhow!("connecting to {hostport}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("malformed HTTP response"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("malformed status line"))?;
    Ok((status, head, raw[split + 4..].to_vec()))
}

pub fn run(c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Keygen { out } => {
            let a = DeviceAccount::generate(&mut rand::rngs::OsRng);
            let hexed = zeroize::Zeroizing::new(hex::encode(a.to_bytes().as_slice()));
            match out {
                Some(p) => {
                    write_secret(&p, &hexed)?;
                    eprintln!("bulwark: device account written to {}", p.display());
                }
                None => println!("{}", hexed.as_str()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Voucher {
            pdata,
            trust,
            account,
            allow_threshold,
            print_pdq,
            images,
        } => {
            let bytes =
                std::fs::read(&pdata).map_err(|e| anyhow::anyhow!("{}: {e}", pdata.display()))?;
            let pdata = load_trusted(&bytes, &trust, allow_threshold)?;
            let secret = zeroize::Zeroizing::new(std::fs::read_to_string(&account)?);
            let secret = zeroize::Zeroizing::new(
                hex::decode(secret.trim())
                    .map_err(|e| anyhow::anyhow!("{}: {e}", account.display()))?,
            );
            let account = DeviceAccount::from_bytes(&secret)?;
            let mut out = std::io::stdout().lock();
            let mut failed = false;
            // Copies of an image already vouchered in this run count once.
            let mut seen = SeenImages::new();
            for img in &images {
                let built = std::fs::read(img)
                    .map_err(anyhow::Error::from)
                    .and_then(|b| {
                        Ok((
                            bulwark_pdq::hash_bytes(
                                &b,
                                bulwark_pdq::Mode::default(),
                                &Default::default(),
                            )?,
                            voucher_for_image_seen(&pdata, &account, &mut seen, &b)?,
                        ))
                    });
                match built {
                    Ok((h, v)) => {
                        let mut line = serde_json::json!({"image": img.display().to_string(),
                            "voucher": base64::engine::general_purpose::STANDARD.encode(v.to_bytes())});
                        if print_pdq {
                            line["pdq"] = serde_json::Value::String(h.hash.to_string());
                        }
                        writeln!(out, "{line}")?
                    }
                    Err(e) => {
                        failed = true;
                        eprintln!("bulwark: {}: {e:#}", img.display());
                    }
                }
            }
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Send {
            server,
            key,
            account_id,
            input,
        } => {
            let reader: Box<dyn BufRead> = if input.as_os_str() == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                Box::new(std::io::BufReader::new(std::fs::File::open(&input)?))
            };
            let (mut ok, mut bad) = (0, 0);
            for (n, line) in reader.lines().enumerate() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                let v: serde_json::Value = serde_json::from_str(&line)
                    .map_err(|e| anyhow::anyhow!("line {}: {e}", n + 1))?;
                let body =
                    serde_json::json!({"account": account_id, "voucher": v["voucher"]}).to_string();
                let (status, _, resp) =
                    http(&server, "POST", "/v1/vouchers", Some(&key), body.as_bytes())?;
                if status == 202 {
                    ok += 1;
                } else {
                    bad += 1;
                    eprintln!(
                        "bulwark: line {}: HTTP {status}: {}",
                        n + 1,
                        String::from_utf8_lossy(&resp)
                    );
                }
            }
            eprintln!("bulwark: {ok} vouchers accepted, {bad} refused");
            Ok(if bad > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

pub fn run_pdata(c: PdataCommand) -> anyhow::Result<ExitCode> {
    match c {
        PdataCommand::Verify {
            file,
            trust,
            allow_threshold,
        } => {
            let bytes =
                std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            match load_trusted(&bytes, &trust, allow_threshold) {
                Ok(p) => {
                    let pr = p.params();
                    let root = p.root();
                    println!(
                        "ok: root {root} matches; epoch {}, {} tables × {} bits, threshold {}, radius {}, {} bytes",
                        p.release().epoch,
                        pr.tables,
                        pr.bits_per_table,
                        pr.threshold,
                        pr.radius,
                        bytes.len()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("bulwark: {}: refused: {e}", file.display());
                    Ok(ExitCode::from(1))
                }
            }
        }
        PdataCommand::ProviderKeygen { out } => {
            let k = bulwark_psi::ProviderKey::generate(&mut rand::rngs::OsRng);
            let hexed = zeroize::Zeroizing::new(hex::encode(k.to_bytes().as_slice()));
            write_secret(&out, &hexed)?;
            eprintln!(
                "bulwark: provider key written to {}; its public key:",
                out.display()
            );
            println!("{}", k.public());
            Ok(ExitCode::SUCCESS)
        }
        PdataCommand::Sign {
            file,
            key,
            signed_root,
        } => {
            let bytes =
                std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let in_ = bulwark_psi::PdataIn::from_bytes(&bytes)?;
            let root = in_.root();
            let pdata = in_.verify(&root)?;
            let secret = zeroize::Zeroizing::new(
                std::fs::read_to_string(&key)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?,
            );
            let secret = zeroize::Zeroizing::new(
                hex::decode(secret.trim())
                    .map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?,
            );
            let k = bulwark_psi::ProviderKey::from_bytes(&secret)?;
            let mut signed = match std::fs::read(&signed_root) {
                Ok(b) => bulwark_psi::SignedRoot::from_bytes(&b)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    bulwark_psi::SignedRoot::new(&pdata)
                }
                Err(e) => anyhow::bail!("{}: {e}", signed_root.display()),
            };
            anyhow::ensure!(
                signed.root == root && signed.header_digest == pdata.header_digest(),
                "{} is for another pdata",
                signed_root.display()
            );
            signed.add(k.sign(&pdata));
            std::fs::write(&signed_root, signed.to_bytes())?;
            let pr = pdata.params();
            println!(
                "signed root {root} as {}: epoch {}, {} bank entries, {} of {} tables × {} bits, threshold {}, min providers {}; {} signature(s) now",
                k.public(),
                pdata.release().epoch,
                pdata.bank_entries(),
                pr.min_tables,
                pr.tables,
                pr.bits_per_table,
                pr.threshold,
                pdata.release().min_providers,
                signed.signatures.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        PdataCommand::Fetch { server, out } => {
            let (status, head, body) = http(&server, "GET", "/v1/pdata", None, b"")?;
            anyhow::ensure!(
                status == 200,
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            );
            std::fs::write(&out, &body)?;
            let root = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("x-bulwark-pdata-root:")
                        .map(|v| v.trim().to_string())
                })
                .unwrap_or_default();
            eprintln!(
                "bulwark: wrote {} bytes to {}; the service says its root is:",
                body.len(),
                out.display()
            );
            println!("{root}");
            eprintln!(
                "bulwark: check it against the root the list providers published before trusting it"
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
