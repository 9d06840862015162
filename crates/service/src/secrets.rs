//! Secrets at rest: envelope encryption under a key-encryption key (KEK).
//!
//! The service's own secrets (franking MAC keys, the stamp signing key, the
//! PSI server keys) are stored in the database only as
//! `bwse1:` ‖ base64(nonce₁ ‖ AES-256-GCM_KEK(DEK, aad = name) ‖ nonce₂ ‖
//! AES-256-GCM_DEK(secret, aad = name)): a fresh data-encryption key (DEK)
//! per secret, wrapped by the KEK, and the secret's name as associated data
//! so a stored value cannot be moved to another name. A database dump, a
//! backup or a PostgreSQL replica holds no usable secret without the KEK.
//!
//! The KEK comes from `BULWARK_KEK` (64 hex digits), else from the configured
//! file, else from `DATA_DIR/secrets.kek`, created (mode 0600) at first start.
//! Plaintexts live in [`Zeroizing`] buffers only.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use rand::RngCore;
use zeroize::Zeroizing;

const PREFIX: &str = "bwse1:";

/// The key-encryption key. Zeroized on drop; never printed.
pub struct Kek(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(<redacted>)")
    }
}

/// Why a stored secret does not open.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Not a value this module wrote.
    #[error("stored secret {0:?} is not in the bwse1 format")]
    Format(String),
    /// Wrong KEK, or the value was altered or moved to another name.
    #[error(
        "stored secret {0:?} does not decrypt: wrong key-encryption key (BULWARK_KEK / secrets.kek) or altered data"
    )]
    Decrypt(String),
}

fn parse_hex_key(text: &str, from: &str) -> anyhow::Result<Kek> {
    let mut k = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim().as_bytes(), k.as_mut())
        .map_err(|_| anyhow::anyhow!("{from}: the key-encryption key must be 64 hex digits"))?;
    Ok(Kek(k))
}

impl Kek {
    /// A random KEK (tests).
    pub fn generate() -> Kek {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(k.as_mut());
        Kek(k)
    }

    /// `BULWARK_KEK`, else `file`, else `data_dir/secrets.kek` (created 0600).
    pub fn load(file: Option<&Path>, data_dir: &Path) -> anyhow::Result<Kek> {
        if let Ok(v) = std::env::var("BULWARK_KEK") {
            let v = Zeroizing::new(v);
            return parse_hex_key(&v, "BULWARK_KEK");
        }
        let path = file.map_or_else(|| data_dir.join("secrets.kek"), Path::to_path_buf);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                parse_hex_key(&text, &path.display().to_string())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && file.is_none() => {
                let k = Kek::generate();
                let hexed = Zeroizing::new(hex::encode(k.0.as_ref()));
                write_secret_file(&path, hexed.as_bytes())?;
                tracing::info!(
                    "created the key-encryption key {} (keep it apart from database backups)",
                    path.display()
                );
                Ok(k)
            }
            Err(e) => Err(anyhow::anyhow!(
                "reading the key-encryption key {}: {e}",
                path.display()
            )),
        }
    }

    /// Encrypts `secret` for storage under `name`.
    pub fn seal(&self, name: &str, secret: &[u8]) -> String {
        let mut dek = Zeroizing::new([0u8; 32]);
        let (mut n1, mut n2) = ([0u8; 12], [0u8; 12]);
        rand::rngs::OsRng.fill_bytes(dek.as_mut());
        rand::rngs::OsRng.fill_bytes(&mut n1);
        rand::rngs::OsRng.fill_bytes(&mut n2);
        let aad = name.as_bytes();
        // 32-byte keys and 12-byte nonces: these cannot fail.
        let wrap = Aes256Gcm::new_from_slice(self.0.as_ref()).unwrap_or_else(|_| unreachable!());
        let wrapped = wrap
            .encrypt(
                Nonce::from_slice(&n1),
                Payload {
                    msg: dek.as_ref(),
                    aad,
                },
            )
            .unwrap_or_else(|_| unreachable!());
        let data = Aes256Gcm::new_from_slice(dek.as_ref()).unwrap_or_else(|_| unreachable!());
        let ct = data
            .encrypt(Nonce::from_slice(&n2), Payload { msg: secret, aad })
            .unwrap_or_else(|_| unreachable!());
        let mut v = Vec::with_capacity(12 + wrapped.len() + 12 + ct.len());
        v.extend_from_slice(&n1);
        v.extend_from_slice(&wrapped);
        v.extend_from_slice(&n2);
        v.extend_from_slice(&ct);
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(v)
        )
    }

    /// Decrypts a value [`Kek::seal`] stored under `name`.
    pub fn open(&self, name: &str, stored: &str) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        let raw = stored
            .strip_prefix(PREFIX)
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .filter(|v| v.len() >= 12 + 48 + 12 + 16)
            .ok_or_else(|| SecretError::Format(name.to_string()))?;
        let (n1, rest) = raw.split_at(12);
        let (wrapped, rest) = rest.split_at(48);
        let (n2, ct) = rest.split_at(12);
        let aad = name.as_bytes();
        let bad = || SecretError::Decrypt(name.to_string());
        let wrap = Aes256Gcm::new_from_slice(self.0.as_ref()).map_err(|_| bad())?;
        let dek = Zeroizing::new(
            wrap.decrypt(Nonce::from_slice(n1), Payload { msg: wrapped, aad })
                .map_err(|_| bad())?,
        );
        let data = Aes256Gcm::new_from_slice(&dek).map_err(|_| bad())?;
        Ok(Zeroizing::new(
            data.decrypt(Nonce::from_slice(n2), Payload { msg: ct, aad })
                .map_err(|_| bad())?,
        ))
    }
}

/// Writes a secret to `path`, readable by its owner only (0600), synced.
pub fn write_secret_file(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    f.write_all(bytes)?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_kek_and_under_their_name() {
        let k = Kek::generate();
        let stored = k.seal("franking_key_1", b"top secret bytes");
        assert!(!stored.contains(&hex::encode(b"top secret bytes")));
        assert_eq!(
            k.open("franking_key_1", &stored).expect("opens").as_slice(),
            b"top secret bytes"
        );
        assert!(matches!(
            k.open("franking_key_2", &stored),
            Err(SecretError::Decrypt(_))
        ));
        assert!(matches!(
            Kek::generate().open("franking_key_1", &stored),
            Err(SecretError::Decrypt(_))
        ));
        assert!(matches!(
            k.open("franking_key_1", "00ff"),
            Err(SecretError::Format(_))
        ));
        assert_eq!(format!("{k:?}"), "Kek(<redacted>)");
    }
}
