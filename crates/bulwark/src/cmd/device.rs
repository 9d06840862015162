//! `bulwark device ...` and `bulwark pdata ...`: a device for testing and
//! integrating private matching (safety vouchers) against `bulwark serve`.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine as _;
use bulwark_client::voucher::{DeviceAccount, voucher_for_image};

/// Device commands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a device account secret (hex) in FILE (mode 0600), or on stdout.
    Keygen {
        /// Where to write it.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Build safety vouchers for images: JSON lines {"image", "pdq", "voucher"} on stdout.
    Voucher {
        /// The pdata file (GET /v1/pdata).
        #[arg(long)]
        pdata: PathBuf,
        /// The published root (64 hex digits); a pdata with another root is refused.
        #[arg(long)]
        root: String,
        /// The account secret file (from `device keygen`).
        #[arg(long)]
        account: PathBuf,
        /// Accept a pdata whose threshold is as low as this (default policy: 30).
        /// For tests and demos only: a low threshold tells the service about an
        /// account after few matches.
        #[arg(long)]
        allow_threshold: Option<u16>,
        /// Images.
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Enrol this device for an account (as the messenger backend does, with a
    /// stamper key): makes an Ed25519 device key, registers its public half and
    /// writes the device identity (ids, signing key, device API key) to FILE (0600).
    Enrol {
        /// Service base URL, http://HOST:PORT.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        /// API key with the stamper role (the delivery service's).
        #[arg(long, env = "BULWARK_KEY", hide_env_values = true)]
        key: String,
        /// The account the device belongs to.
        #[arg(long = "account-id")]
        account_id: String,
        /// This device's id within the account.
        #[arg(long = "device-id")]
        device_id: String,
        /// Where to write the device identity.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Send vouchers (JSON lines from `device voucher`, FILE or - for stdin) to
    /// the service, each signed by the enrolled device key.
    Send {
        /// Service base URL, http://HOST:PORT (plain HTTP: loopback or behind your own TLS).
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        /// The device identity file from `device enrol`.
        #[arg(long)]
        device: PathBuf,
        /// Voucher lines.
        #[arg(default_value = "-")]
        input: PathBuf,
    },
}

/// An enrolled device as `device enrol` stores it.
struct DeviceIdentity {
    account: String,
    device: String,
    signing: ed25519_dalek::SigningKey,
    api_key: zeroize::Zeroizing<String>,
}

impl DeviceIdentity {
    fn read(path: &Path) -> anyhow::Result<DeviceIdentity> {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        );
        let bad = || {
            anyhow::anyhow!(
                "{}: not a device identity from `bulwark device enrol`",
                path.display()
            )
        };
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|_| bad())?;
        let field = |k: &str| v[k].as_str().map(str::to_string).ok_or_else(bad);
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(field("signing_key")?.as_bytes(), seed.as_mut()).map_err(|_| bad())?;
        Ok(DeviceIdentity {
            account: field("account")?,
            device: field("device")?,
            signing: ed25519_dalek::SigningKey::from_bytes(&seed),
            api_key: zeroize::Zeroizing::new(field("api_key")?),
        })
    }
}

/// Pdata commands.
#[derive(clap::Subcommand)]
pub enum PdataCommand {
    /// Check a pdata file against a published root (and the device policy); exit 1 if it does not match.
    Verify {
        /// The pdata file.
        file: PathBuf,
        /// The published root, 64 hex digits.
        #[arg(long)]
        root: String,
        /// Accept a threshold as low as this (default policy: 30); tests and demos only.
        #[arg(long)]
        allow_threshold: Option<u16>,
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
            root,
            account,
            allow_threshold,
            images,
        } => {
            let bytes =
                std::fs::read(&pdata).map_err(|e| anyhow::anyhow!("{}: {e}", pdata.display()))?;
            let mut policy = bulwark_client::voucher::Policy::default();
            if let Some(t) = allow_threshold {
                policy.min_threshold = t;
            }
            let pdata = bulwark_client::voucher::load_pdata_with_policy(&bytes, &root, &policy)?;
            let secret = zeroize::Zeroizing::new(std::fs::read_to_string(&account)?);
            let secret = zeroize::Zeroizing::new(
                hex::decode(secret.trim())
                    .map_err(|e| anyhow::anyhow!("{}: {e}", account.display()))?,
            );
            let account = DeviceAccount::from_bytes(&secret)?;
            let mut out = std::io::stdout().lock();
            let mut failed = false;
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
                            voucher_for_image(&pdata, &account, &b)?,
                        ))
                    });
                match built {
                    Ok((h, v)) => writeln!(
                        out,
                        "{}",
                        serde_json::json!({"image": img.display().to_string(), "pdq": h.hash.to_string(),
                            "voucher": base64::engine::general_purpose::STANDARD.encode(v.to_bytes())})
                    )?,
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
        Command::Enrol {
            server,
            key,
            account_id,
            device_id,
            out,
        } => {
            let signing = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
            let body = serde_json::json!({"account": account_id, "device": device_id,
                "public_key": hex::encode(signing.verifying_key().to_bytes())})
            .to_string();
            let (status, _, resp) =
                http(&server, "POST", "/v1/devices", Some(&key), body.as_bytes())?;
            if status != 201 {
                anyhow::bail!(
                    "enrolling the device: HTTP {status}: {}",
                    String::from_utf8_lossy(&resp)
                );
            }
            let r: serde_json::Value = serde_json::from_slice(&resp)?;
            let seed = zeroize::Zeroizing::new(hex::encode(signing.to_bytes()));
            let identity = zeroize::Zeroizing::new(
                serde_json::json!({"account": account_id, "device": device_id,
                    "signing_key": seed.as_str(), "api_key": r["key"]})
                .to_string(),
            );
            write_secret(&out, &identity)?;
            eprintln!(
                "bulwark: device {device_id} of account {account_id} enrolled; identity in {}",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Send {
            server,
            device,
            input,
        } => {
            use ed25519_dalek::Signer;
            let id = DeviceIdentity::read(&device)?;
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
                let voucher = v["voucher"]
                    .as_str()
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .ok_or_else(|| anyhow::anyhow!("line {}: no base64 `voucher`", n + 1))?;
                let sig = id.signing.sign(&bulwark_psi::envelope::signing_input(
                    &id.account,
                    &id.device,
                    &voucher,
                ));
                let body = serde_json::json!({"account": id.account, "device": id.device,
                    "voucher": v["voucher"], "signature": hex::encode(sig.to_bytes())})
                .to_string();
                let (status, _, resp) = http(
                    &server,
                    "POST",
                    "/v1/vouchers",
                    Some(&id.api_key),
                    body.as_bytes(),
                )?;
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
            root,
            allow_threshold,
        } => {
            let bytes =
                std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let mut policy = bulwark_client::voucher::Policy::default();
            if let Some(t) = allow_threshold {
                policy.min_threshold = t;
            }
            match bulwark_client::voucher::load_pdata_with_policy(&bytes, &root, &policy) {
                Ok(p) => {
                    let pr = p.params();
                    println!(
                        "ok: root {root} matches; {} tables × {} bits, threshold {}, radius {}, {} bytes",
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
