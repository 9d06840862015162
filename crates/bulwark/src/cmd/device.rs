//! `bulwark device ...` and `bulwark pdata ...`: a device for testing and
//! integrating private matching (safety vouchers) against `bulwark serve`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    /// (no plaintext hash, unless --with-hash).
    Voucher {
        /// The pdata file (`pdata fetch`; its signed root is read from FILE.signed).
        #[arg(long)]
        pdata: PathBuf,
        /// A pinned list provider's public key (64 hex); give at least two.
        /// The pdata is refused unless two of them signed its root.
        #[arg(long = "provider")]
        providers: Vec<String>,
        /// Instead of provider signatures: a root obtained out of band (tests only).
        #[arg(long, conflicts_with = "providers")]
        root: Option<String>,
        /// Also print each image's PDQ hash next to its voucher (debugging only:
        /// the hash is what vouchers exist to keep from the service).
        #[arg(long)]
        with_hash: bool,
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
    /// Check a pdata file: its signed root (FILE.signed) carries signatures of
    /// at least two of the pinned providers, and its parameters are an allowed
    /// profile; exit 1 if not.
    Verify {
        /// The pdata file.
        file: PathBuf,
        /// A pinned provider's public key (64 hex); give at least two.
        #[arg(long = "provider")]
        providers: Vec<String>,
        /// Instead of provider signatures: a root obtained out of band (tests only).
        #[arg(long, conflicts_with = "providers")]
        root: Option<String>,
        /// Accept a threshold as low as this (default policy: 30); tests and demos only.
        #[arg(long)]
        allow_threshold: Option<u16>,
    },
    /// Download the service's current pdata to FILE and its signed root to
    /// FILE.signed; check that the signed root is in the service's public log
    /// and that the log extends the tree head remembered in FILE.loghead (then
    /// remember the new one). Prints the root.
    Fetch {
        /// Service base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        /// Where to write it.
        #[arg(long, short)]
        out: PathBuf,
    },
}

/// List-provider commands (what a child-safety organisation runs).
#[derive(clap::Subcommand)]
pub enum ProvidersCommand {
    /// Create a provider signing key in FILE (mode 0600); prints its public key.
    Keygen {
        /// Where to write it.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Fetch a release's pdata, show its parameters, sign its root and header.
    Sign {
        /// Service base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        /// The provider key file (from `providers keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The release id (from `POST /v1/pdata/build`).
        #[arg(long)]
        release: i64,
    },
}

/// The device policy from the command line.
fn policy(
    providers: &[String],
    allow_threshold: Option<u16>,
) -> anyhow::Result<bulwark_client::voucher::Policy> {
    let mut pinned = Vec::new();
    for p in providers {
        pinned.push(
            p.parse::<bulwark_psi::ProviderPublic>()
                .map_err(|e| anyhow::anyhow!("--provider {p:?}: {e}"))?,
        );
    }
    let mut policy = bulwark_client::voucher::Policy::default().pin(pinned);
    if let Some(t) = allow_threshold {
        policy = policy.allow_threshold(t);
    }
    Ok(policy)
}

fn signed_path(pdata: &Path) -> PathBuf {
    let mut p = pdata.as_os_str().to_owned();
    p.push(".signed");
    PathBuf::from(p)
}

/// Reads and checks a pdata file: with providers, against FILE.signed; with a
/// root, against that root.
fn load(
    pdata: &Path,
    providers: &[String],
    root: Option<&str>,
    allow_threshold: Option<u16>,
) -> anyhow::Result<(bulwark_client::voucher::Pdata, usize)> {
    let bytes = std::fs::read(pdata).map_err(|e| anyhow::anyhow!("{}: {e}", pdata.display()))?;
    let policy = policy(providers, allow_threshold)?;
    let p = match root {
        Some(r) => bulwark_client::voucher::load_pdata_with_policy(&bytes, r, &policy)?,
        None => {
            anyhow::ensure!(
                providers.len() >= 2,
                "give the public keys of at least two list providers (--provider HEX --provider HEX)"
            );
            let sp = signed_path(pdata);
            let signed =
                std::fs::read(&sp).map_err(|e| anyhow::anyhow!("{}: {e}", sp.display()))?;
            let signed = bulwark_psi::SignedRoot::from_bytes(&signed)?;
            bulwark_psi::Pdata::from_signed(&bytes, &signed, &policy)?
        }
    };
    Ok((p, bytes.len()))
}

fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn get_json(server: &str, path: &str) -> anyhow::Result<serde_json::Value> {
    let (status, _, body) = http(server, "GET", path, None, b"")?;
    anyhow::ensure!(
        status == 200,
        "GET {path}: HTTP {status}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok(serde_json::from_slice(&body)?)
}

fn hashes(v: &serde_json::Value) -> anyhow::Result<Vec<[u8; 32]>> {
    v.as_array()
        .ok_or_else(|| anyhow::anyhow!("malformed proof"))?
        .iter()
        .map(|h| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(h.as_str().unwrap_or_default(), &mut out)
                .map_err(|_| anyhow::anyhow!("malformed proof hash"))?;
            Ok(out)
        })
        .collect()
}

fn tree_head(v: &serde_json::Value) -> anyhow::Result<bulwark_psi::log::TreeHead> {
    let mut root = [0u8; 32];
    hex::decode_to_slice(v["root"].as_str().unwrap_or_default(), &mut root)
        .map_err(|_| anyhow::anyhow!("malformed tree head"))?;
    Ok(bulwark_psi::log::TreeHead {
        size: v["size"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("malformed tree head"))?,
        root,
    })
}

pub fn run_providers(c: ProvidersCommand) -> anyhow::Result<ExitCode> {
    match c {
        ProvidersCommand::Keygen { out } => {
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
        ProvidersCommand::Sign {
            server,
            key,
            release,
        } => {
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(&key)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?,
            );
            let raw = zeroize::Zeroizing::new(
                hex::decode(text.trim()).map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?,
            );
            let k = bulwark_psi::ProviderKey::from_bytes(&raw)?;
            let (status, head, body) = http(
                &server,
                "GET",
                &format!("/v1/pdata/releases/{release}"),
                None,
                b"",
            )?;
            anyhow::ensure!(
                status == 200,
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            );
            let root = header_value(&head, "x-bulwark-pdata-root").unwrap_or_default();
            let p = bulwark_client::voucher::load_pdata_with_policy(
                &body,
                &root,
                &bulwark_client::voucher::Policy::default().allow_threshold(1),
            )?;
            let (pr, rel) = (p.params(), p.release());
            eprintln!(
                "bulwark: release {release}: root {root}, epoch {}, {} tables × {} bits, {} of them to open, threshold {}, radius {}, {} providers required",
                rel.epoch,
                pr.tables,
                pr.bits_per_table,
                pr.min_tables,
                pr.threshold,
                pr.radius,
                rel.min_providers
            );
            let sig = k.sign(&p);
            let req = serde_json::json!({"public_key": sig.key.to_string(),
                "signature": hex::encode(sig.signature)})
            .to_string();
            let (status, _, resp) = http(
                &server,
                "POST",
                &format!("/v1/pdata/releases/{release}/signatures"),
                None,
                req.as_bytes(),
            )?;
            anyhow::ensure!(
                status == 200,
                "HTTP {status}: {}",
                String::from_utf8_lossy(&resp)
            );
            println!("{}", String::from_utf8_lossy(&resp));
            Ok(ExitCode::SUCCESS)
        }
    }
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

/// One exchange with the service through the workspace's HTTP client:
/// (status, headers as `name: value` lines, body).
fn http(
    server: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &[u8],
) -> anyhow::Result<(u16, String, Vec<u8>)> {
    anyhow::ensure!(
        server.starts_with("http://") || server.starts_with("https://"),
        "--server must be http://HOST:PORT (got {server:?})"
    );
    let client = bulwark_chat::http::Http::new(server);
    let r = client.call(method, path, key, Some(("application/json", body)))?;
    let head = r
        .headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("\r\n");
    Ok((r.status, head, r.body))
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
            providers,
            root,
            with_hash,
            account,
            allow_threshold,
            images,
        } => {
            let (pdata, _) = load(&pdata, &providers, root.as_deref(), allow_threshold)?;
            let secret = zeroize::Zeroizing::new(std::fs::read_to_string(&account)?);
            let secret = zeroize::Zeroizing::new(
                hex::decode(secret.trim())
                    .map_err(|e| anyhow::anyhow!("{}: {e}", account.display()))?,
            );
            let account = DeviceAccount::from_bytes(&secret)?;
            let mut out = std::io::stdout().lock();
            let mut failed = false;
            // Copies of an image already vouchered in this run (re-encodes,
            // resizes) reuse its share and count once toward the threshold.
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
                        if with_hash {
                            line["pdq"] = serde_json::json!(h.hash.to_string());
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
            providers,
            root,
            allow_threshold,
        } => match load(&file, &providers, root.as_deref(), allow_threshold) {
            Ok((p, n)) => {
                let pr = p.params();
                println!(
                    "ok: root {} verified; epoch {}, {} tables × {} bits, threshold {}, radius {}, {n} bytes",
                    p.root(),
                    p.release().epoch,
                    pr.tables,
                    pr.bits_per_table,
                    pr.threshold,
                    pr.radius,
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("bulwark: {}: refused: {e}", file.display());
                Ok(ExitCode::from(1))
            }
        },
        PdataCommand::Fetch { server, out } => {
            let (status, head, body) = http(&server, "GET", "/v1/pdata", None, b"")?;
            anyhow::ensure!(
                status == 200,
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            );
            let root = header_value(&head, "x-bulwark-pdata-root").unwrap_or_default();
            // The signed root, and proof that it is in the public log.
            let (status, shead, signed) = http(&server, "GET", "/v1/pdata/signed", None, b"")?;
            anyhow::ensure!(
                status == 200,
                "GET /v1/pdata/signed: HTTP {status}: {}",
                String::from_utf8_lossy(&signed)
            );
            let sr = bulwark_psi::SignedRoot::from_bytes(&signed)?;
            anyhow::ensure!(
                sr.root.to_string() == root,
                "the signed root is not the root of the pdata served"
            );
            let index: u64 = header_value(&shead, "x-bulwark-log-index")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("no X-Bulwark-Log-Index"))?;
            let h = get_json(&server, "/v1/pdata/log")?;
            let head_now = tree_head(&h)?;
            let proof = get_json(
                &server,
                &format!(
                    "/v1/pdata/log/inclusion?index={index}&size={}",
                    head_now.size
                ),
            )?;
            if let Err(e) = sr.check_logged(index, &head_now, &hashes(&proof["proof"])?) {
                eprintln!("bulwark: refused: {e}");
                return Ok(ExitCode::from(1));
            }
            let mut remembered_path = out.as_os_str().to_owned();
            remembered_path.push(".loghead");
            let remembered_path = PathBuf::from(remembered_path);
            if let Ok(text) = std::fs::read_to_string(&remembered_path) {
                let old = tree_head(&serde_json::from_str(&text)?)?;
                let c = get_json(
                    &server,
                    &format!(
                        "/v1/pdata/log/consistency?old={}&new={}",
                        old.size, head_now.size
                    ),
                )?;
                if let Err(e) = head_now.check_extends(&old, &hashes(&c["proof"])?) {
                    eprintln!("bulwark: refused: the log was rewritten: {e}");
                    return Ok(ExitCode::from(1));
                }
            }
            std::fs::write(&out, &body)?;
            std::fs::write(signed_path(&out), &signed)?;
            std::fs::write(
                &remembered_path,
                serde_json::json!({"size": head_now.size, "root": hex::encode(head_now.root)})
                    .to_string(),
            )?;
            eprintln!(
                "bulwark: wrote {} bytes to {} and its signed root (in the public log at {index}); root:",
                body.len(),
                out.display()
            );
            println!("{root}");
            eprintln!(
                "bulwark: `pdata verify --provider KEY --provider KEY` checks the providers' signatures"
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
