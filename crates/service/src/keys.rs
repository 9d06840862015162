//! API keys and roles.
//!
//! A key is `bwk_<id>_<secret>`: the id (12 hex digits) names the key in logs
//! and the audit trail; only SHA-256 of the secret (32 random bytes) is
//! stored, and it is compared in constant time. The HTTP layer takes keys as
//! `Authorization: Bearer KEY`.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bulwark_store::{Store, keys, rfc3339};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Error, Kind, Result};
use crate::secrets::write_secret_file;

/// What a key may do. Matcher, curator and admin are ranked: each can do what
/// the ones below it can. Stamper and device stand apart: no other role
/// includes them and they include no other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Hash and match; relay signed vouchers and reports.
    Matcher,
    /// Also create, change and export banks and their content; read reports.
    Curator,
    /// Also read the audit log, manage keys, build pdata.
    Admin,
    /// The delivery service: stamps messages of the sessions it
    /// authenticated and enrols the devices of those accounts. Nothing else.
    Stamper,
    /// One enrolled device: submits its own signed vouchers and reports.
    Device,
}

impl Role {
    /// The role's name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Matcher => "matcher",
            Role::Curator => "curator",
            Role::Admin => "admin",
            Role::Stamper => "stamper",
            Role::Device => "device",
        }
    }

    /// The rank of the ranked roles; `None` for the roles that stand apart.
    fn rank(self) -> Option<u8> {
        match self {
            Role::Matcher => Some(0),
            Role::Curator => Some(1),
            Role::Admin => Some(2),
            Role::Stamper | Role::Device => None,
        }
    }

    /// Whether a key with this role may do what `needed` allows.
    pub fn allows(self, needed: Role) -> bool {
        match (self.rank(), needed.rank()) {
            (Some(have), Some(need)) => have >= need,
            _ => self == needed,
        }
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "matcher" => Ok(Role::Matcher),
            "curator" => Ok(Role::Curator),
            "admin" => Ok(Role::Admin),
            "stamper" => Ok(Role::Stamper),
            "device" => Ok(Role::Device),
            _ => Err(format!(
                "unknown role {:?} (expected admin, curator, matcher, stamper or device)",
                crate::error::snippet(s)
            )),
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Key id, recorded in the audit log.
    pub key_id: String,
    /// The key's role.
    pub role: Role,
    /// For a device key: the account and device it was enrolled for.
    pub device: Option<(String, String)>,
}

impl Caller {
    /// `forbidden` unless the caller's role allows `role` ([`Role::allows`]).
    pub fn require(&self, role: Role) -> Result<()> {
        if self.role.allows(role) {
            Ok(())
        } else {
            Err(Error::new(
                Kind::Forbidden,
                "forbidden",
                format!(
                    "this needs the {} role; key {} has {}",
                    role.name(),
                    self.key_id,
                    self.role.name()
                ),
            ))
        }
    }
}

#[derive(Clone)]
struct CachedKey {
    secret_sha256: [u8; 32],
    role: Role,
    revoked: bool,
    device: Option<(String, String)>,
}

/// What an unknown key id is compared against, so that an unknown id costs
/// the same hash and comparison as a wrong secret.
const NO_KEY: [u8; 32] = [0xA5; 32];

/// Verified keys, re-read from the database when older than a couple of
/// seconds so that a revocation (by the CLI or another replica) takes effect
/// quickly without a database round trip per request.
pub struct KeyCache {
    keys: Mutex<HashMap<String, (CachedKey, Instant)>>,
}

const KEY_CACHE_TTL: Duration = Duration::from_secs(2);

impl KeyCache {
    /// An empty cache.
    pub fn new() -> KeyCache {
        KeyCache {
            keys: Mutex::new(HashMap::new()),
        }
    }

    async fn lookup(&self, store: &Store, id: &str) -> Result<Option<CachedKey>> {
        if let Some((k, at)) = self.keys.lock().unwrap_or_else(|e| e.into_inner()).get(id)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(Some(k.clone()));
        }
        let Some(row) = keys::by_id(store, id).await? else {
            return Ok(None);
        };
        let mut secret_sha256 = [0u8; 32];
        hex::decode_to_slice(&row.secret_sha256, &mut secret_sha256)
            .map_err(|e| Error::internal(format!("stored key hash: {e}")))?;
        let key = CachedKey {
            secret_sha256,
            role: row.role.parse().map_err(Error::internal)?,
            revoked: row.revoked_at.is_some(),
            device: match (row.account, row.device) {
                (Some(a), Some(d)) => Some((a, d)),
                _ => None,
            },
        };
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() > 100_000 {
            keys.clear();
        }
        keys.insert(id.to_string(), (key.clone(), Instant::now()));
        Ok(Some(key))
    }

    /// Checks a presented key. An unknown id, a wrong secret and a revoked
    /// key get the same answer, after the same hash and comparison, so the
    /// answer does not tell which ids exist.
    pub async fn verify(&self, store: &Store, presented: &str) -> Result<Caller> {
        let unauthorized = || {
            Error::new(
                Kind::Unauthorized,
                "unauthorized",
                "invalid or revoked API key",
            )
        };
        let (id, secret) = split_key(presented).ok_or_else(unauthorized)?;
        let key = self.lookup(store, id).await?;
        let expected = key.as_ref().map_or(NO_KEY, |k| k.secret_sha256);
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let secret_ok = bool::from(digest.ct_eq(&expected));
        match key {
            Some(k) if secret_ok && !k.revoked => Ok(Caller {
                key_id: id.to_string(),
                role: k.role,
                device: k.device,
            }),
            _ => Err(unauthorized()),
        }
    }
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache::new()
    }
}

fn split_key(k: &str) -> Option<(&str, &str)> {
    let rest = k.strip_prefix("bwk_")?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 12 && secret.len() == 64).then_some((id, secret))
}

/// A newly created key: the only time its secret exists outside the caller.
pub struct NewKey {
    /// The key id.
    pub id: String,
    /// The whole key, `bwk_<id>_<secret>`.
    pub key: Zeroizing<String>,
}

/// Creates a key with `role`.
pub async fn create_key(store: &Store, role: Role, name: &str) -> anyhow::Result<NewKey> {
    let mut conn = store.pool.acquire().await?;
    create_key_in(store, &mut conn, role, name, None).await
}

/// Creates a key inside a transaction; a device key names its account and device.
pub async fn create_key_in(
    store: &Store,
    conn: &mut sqlx::AnyConnection,
    role: Role,
    name: &str,
    device: Option<(&str, &str)>,
) -> anyhow::Result<NewKey> {
    let mut id_bytes = [0u8; 6];
    let mut secret = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut id_bytes);
    rand::rngs::OsRng.fill_bytes(secret.as_mut());
    let id = hex::encode(id_bytes);
    let secret_hex = Zeroizing::new(hex::encode(secret.as_ref()));
    let digest = hex::encode(Sha256::digest(secret_hex.as_bytes()));
    keys::insert(
        store,
        conn,
        &keys::NewKey {
            id: &id,
            secret_sha256: &digest,
            role: role.name(),
            name,
            device,
        },
    )
    .await?;
    let key = Zeroizing::new(format!("bwk_{id}_{}", secret_hex.as_str()));
    Ok(NewKey { id, key })
}

/// A key as listed (never its secret).
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    /// Key id.
    pub id: String,
    /// Role.
    pub role: String,
    /// Name given at creation.
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, when revoked.
    pub revoked_at: Option<String>,
}

/// Every key.
pub async fn list_keys(store: &Store) -> anyhow::Result<Vec<KeyInfo>> {
    Ok(keys::list(store)
        .await?
        .into_iter()
        .map(|r| KeyInfo {
            id: r.id,
            role: r.role,
            name: r.name,
            created_at: rfc3339(r.created_at),
            revoked_at: r.revoked_at.map(rfc3339),
        })
        .collect())
}

/// The id part of a whole key (`bwk_<id>_<secret>`), or the argument itself
/// when it is not a whole key: what may be printed about a key.
pub fn key_id_of(id_or_key: &str) -> &str {
    split_key(id_or_key).map_or(id_or_key, |(id, _)| id)
}

/// Revokes a key by id (or by the whole key); false when there is no such key.
pub async fn revoke_key(store: &Store, id_or_key: &str) -> anyhow::Result<bool> {
    let id = split_key(id_or_key).map_or(id_or_key, |(id, _)| id);
    Ok(keys::revoke(store, id).await?)
}

/// On a store without keys, creates an admin key and writes it to
/// `data_dir/admin.key` (mode 0600); returns that path when it did.
pub async fn bootstrap_admin(
    store: &Store,
    data_dir: &std::path::Path,
) -> anyhow::Result<Option<std::path::PathBuf>> {
    if keys::any(store).await? {
        return Ok(None);
    }
    let key = create_key(store, Role::Admin, "first admin (created at first start)").await?;
    let path = data_dir.join("admin.key");
    write_secret_file(&path, key.key.as_bytes())?;
    Ok(Some(path))
}
