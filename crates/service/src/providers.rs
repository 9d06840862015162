//! Hash-list providers, their signatures on pdata releases, and the public
//! append-only log of signed roots.
//!
//! A provider is an enrolled Ed25519 key, not a free-text label. A release
//! built by [`crate::vouchers::build`] waits until at least `max(2,
//! min_providers)` distinct enrolled providers have signed its root and
//! header ([`sign`]); only then is its signed root appended to the log and
//! the release served to devices.

use bulwark_psi::log::MerkleLog;
use bulwark_psi::{Pdata, ProviderPublic, RootSignature, SignedRoot};
use bulwark_store::{self as db, Store, providers};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{Error, Kind, Result, snippet};
use crate::vouchers::Releases;

/// A provider to enrol.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProvider {
    /// Unique name: 1–128 bytes without control characters.
    pub name: String,
    /// Ed25519 public key, 64 hex digits.
    pub public_key: String,
}

/// A provider as enrolled.
#[derive(Debug, Clone, Serialize)]
pub struct Enrolled {
    /// Its name.
    pub name: String,
    /// Its key, hex.
    pub public_key: String,
}

/// A provider as listed.
#[derive(Debug, Clone, Serialize)]
pub struct Provider {
    /// Its name.
    pub name: String,
    /// Its key, hex.
    pub public_key: String,
    /// RFC 3339.
    pub enrolled_at: String,
    /// RFC 3339, once revoked.
    pub revoked_at: Option<String>,
}

/// One provider's signature on a release.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureIn {
    /// The provider's key, hex.
    pub public_key: String,
    /// Ed25519 over the release's root and header, 128 hex digits.
    pub signature: String,
}

/// A release's state after a signature.
#[derive(Debug, Clone, Serialize)]
pub struct Signed {
    /// The release's id.
    pub release: i64,
    /// Valid signatures by enrolled providers.
    pub valid_signatures: usize,
    /// How many it needs to be published.
    pub required: usize,
    /// Published (now or before).
    pub published: bool,
    /// Its log index, when this signature published it.
    pub log_index: Option<i64>,
}

/// A release's pdata, pending or published.
#[derive(Debug, Clone)]
pub struct ReleasePdata {
    /// Its root, as text.
    pub root: String,
    /// The pdata bytes.
    pub pdata: Vec<u8>,
    /// Published.
    pub published: bool,
}

/// The log's tree head.
#[derive(Debug, Clone, Serialize)]
pub struct Head {
    /// Leaves.
    pub size: u64,
    /// Merkle root, hex.
    pub root: String,
    /// The release of each leaf, in order.
    pub releases: Vec<i64>,
}

/// An inclusion proof.
#[derive(Debug, Clone, Serialize)]
pub struct Inclusion {
    /// The leaf's index.
    pub index: u64,
    /// The tree size it is proved in.
    pub size: u64,
    /// The proof's hashes, hex.
    pub proof: Vec<String>,
}

/// A consistency proof.
#[derive(Debug, Clone, Serialize)]
pub struct Consistency {
    /// The older tree size.
    pub old: u64,
    /// The newer tree size.
    pub new: u64,
    /// The proof's hashes, hex.
    pub proof: Vec<String>,
}

/// A provider key from 64 hex digits (an Ed25519 key, not small-order).
pub fn parse_key(hexed: &str) -> Result<ProviderPublic> {
    Ok(ProviderPublic(
        crate::devices::parse_public_key(hexed)?.to_bytes(),
    ))
}

/// Enrols a provider (audited).
pub async fn enrol(store: &Store, actor: &str, p: NewProvider) -> Result<Enrolled> {
    if p.name.is_empty() || p.name.len() > 128 || p.name.chars().any(char::is_control) {
        return Err(Error::bad_request(
            "name must be 1–128 bytes without control characters",
        ));
    }
    let key = parse_key(&p.public_key)?;
    let public_key = hex::encode(key.0);
    let mut tx = store.begin().await?;
    if !providers::insert(store, &mut tx, &p.name, &public_key, actor).await? {
        return Err(Error::conflict(format!(
            "a provider named {:?} or with that key is already enrolled",
            snippet(&p.name)
        )));
    }
    db::audit(
        store,
        &mut tx,
        actor,
        "provider.enrol",
        None,
        None,
        json!({"name": p.name, "public_key": public_key}),
    )
    .await?;
    tx.commit().await?;
    Ok(Enrolled {
        name: p.name,
        public_key,
    })
}

/// Every provider, revoked or not, by name.
pub async fn list(store: &Store) -> Result<Vec<Provider>> {
    Ok(providers::list(store)
        .await?
        .into_iter()
        .map(|r| Provider {
            name: r.name,
            public_key: r.public_key,
            enrolled_at: db::rfc3339(r.enrolled_at),
            revoked_at: r.revoked_at.map(db::rfc3339),
        })
        .collect())
}

/// Revokes a provider (audited): its signatures no longer count for new
/// releases.
pub async fn revoke(store: &Store, actor: &str, name: &str) -> Result<()> {
    let mut tx = store.begin().await?;
    if !providers::revoke(store, &mut tx, name).await? {
        return Err(Error::not_found("no such enrolled provider"));
    }
    db::audit(
        store,
        &mut tx,
        actor,
        "provider.revoke",
        None,
        None,
        json!({"name": name}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Enrolled, not revoked provider keys.
async fn enrolled(conn: &mut sqlx::AnyConnection) -> Result<Vec<ProviderPublic>> {
    providers::enrolled_keys(conn)
        .await?
        .iter()
        .map(|h| parse_key(h).map_err(|_| Error::internal("a stored provider key does not parse")))
        .collect()
}

/// The pdata of release `id`, pending or published.
pub async fn release_pdata(store: &Store, id: i64) -> Result<ReleasePdata> {
    let r = providers::release_pdata(store, id)
        .await?
        .ok_or_else(|| Error::not_found(format!("no release {id}")))?;
    Ok(ReleasePdata {
        root: r.root,
        pdata: r.pdata,
        published: r.published_at.is_some(),
    })
}

/// One provider's signature on release `id`; the release is published
/// (its signed root logged, `releases` told) once enough distinct enrolled
/// providers signed.
pub async fn sign(store: &Store, releases: &Releases, id: i64, b: SignatureIn) -> Result<Signed> {
    let key = parse_key(&b.public_key)?;
    let signature: [u8; 64] = hex::decode(&b.signature)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| Error::bad_request("signature must be 128 hex digits"))?;
    let mut tx = store.begin().await?;
    let (release, min_providers) = providers::release_for_signing(store, &mut tx, id)
        .await?
        .ok_or_else(|| Error::not_found(format!("no release {id}")))?;
    let root: bulwark_psi::Root = release.root.parse().map_err(Error::internal)?;
    let pdata = Pdata::from_bytes(&release.pdata, &root).map_err(Error::internal)?;
    let pinned = enrolled(&mut tx).await?;
    if !pinned.contains(&key) {
        return Err(Error::forbidden(
            "that key is not an enrolled provider (POST /v1/providers)",
        ));
    }
    let mut one = SignedRoot::new(&pdata);
    one.add(RootSignature { key, signature });
    if one.valid_signers(&[key]).is_empty() {
        return Err(Error::new(
            Kind::Forbidden,
            "bad_signature",
            "the signature does not verify over this release's root and header",
        ));
    }
    providers::insert_signature(
        store,
        &mut tx,
        id,
        &hex::encode(key.0),
        &hex::encode(signature),
    )
    .await?;
    // Every stored signature by a still-enrolled provider.
    let mut signed = SignedRoot::new(&pdata);
    for (k, sig) in providers::signatures(store, &mut tx, id).await? {
        let k = parse_key(&k)?;
        let sig: [u8; 64] = hex::decode(sig)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| Error::internal("a stored signature does not parse"))?;
        if pinned.contains(&k) {
            signed.add(RootSignature {
                key: k,
                signature: sig,
            });
        }
    }
    let valid = signed.valid_signers(&pinned).len();
    let need = usize::try_from(min_providers.max(2)).unwrap_or(2);
    let already = release.published_at.is_some();
    let mut published = already;
    let mut log_index = None;
    if !already && valid >= need {
        let idx = providers::publish(store, &mut tx, id, &signed.to_bytes()).await?;
        db::audit(
            store,
            &mut tx,
            &format!("provider:{}", &hex::encode(key.0)[..12]),
            "pdata.publish",
            None,
            None,
            json!({"release": id, "root": root.to_string(), "signers": valid, "log_index": idx}),
        )
        .await?;
        published = true;
        log_index = Some(idx);
    }
    tx.commit().await?;
    if published && !already {
        releases.clear_cache();
    }
    Ok(Signed {
        release: id,
        valid_signatures: valid,
        required: need,
        published,
        log_index,
    })
}

/// Every logged leaf, oldest first, and the release of each.
async fn load_log(store: &Store) -> Result<(MerkleLog, Vec<i64>)> {
    let rows = providers::log_leaves(store).await?;
    let mut log = MerkleLog::new();
    let mut releases = Vec::with_capacity(rows.len());
    for (release, leaf) in &rows {
        log.append(leaf);
        releases.push(*release);
    }
    Ok((log, releases))
}

/// The current release's signed root and its log index.
pub async fn signed_root(store: &Store) -> Result<(Vec<u8>, i64)> {
    providers::latest_signed_root(store)
        .await?
        .ok_or_else(|| Error::not_found("no published release yet"))
}

/// The log's tree head.
pub async fn head(store: &Store) -> Result<Head> {
    let (log, releases) = load_log(store).await?;
    let h = log.head();
    Ok(Head {
        size: h.size,
        root: hex::encode(h.root),
        releases,
    })
}

/// A proof that leaf `index` is in the tree of `size` leaves (default: the
/// whole log).
pub async fn inclusion(store: &Store, index: Option<u64>, size: Option<u64>) -> Result<Inclusion> {
    let (log, _) = load_log(store).await?;
    let index = index.ok_or_else(|| Error::bad_request("index is required"))?;
    let size = size.unwrap_or(log.size());
    let proof = log
        .inclusion_proof(index, size)
        .map_err(|e| Error::bad_request(e.to_string()))?;
    Ok(Inclusion {
        index,
        size,
        proof: proof.iter().map(hex::encode).collect(),
    })
}

/// A proof that the tree of `old` leaves is a prefix of that of `new`
/// (default: the whole log).
pub async fn consistency(store: &Store, old: Option<u64>, new: Option<u64>) -> Result<Consistency> {
    let (log, _) = load_log(store).await?;
    let old = old.ok_or_else(|| Error::bad_request("old is required"))?;
    let new = new.unwrap_or(log.size());
    let proof = log
        .consistency_proof(old, new)
        .map_err(|e| Error::bad_request(e.to_string()))?;
    Ok(Consistency {
        old,
        new,
        proof: proof.iter().map(hex::encode).collect(),
    })
}
