//! Enrolled devices: the messenger backend enrols each device of an account
//! with the device's Ed25519 public key; vouchers and reports are then
//! signed by that key, so no other key can file them in the device's name.
//! Enrolling gives the device an API key of the `device` role, bound to its
//! account and device ([`enrol`]); [`revoke`] ends both.

use bulwark_store::{self as db, Store, devices, rfc3339};
use serde::Serialize;
use serde_json::json;

use crate::error::{Error, Result, snippet};
use crate::keys::{self, Role};

/// Longest account or device id.
pub const MAX_ID_BYTES: usize = 256;

/// An account or device id: 1–[`MAX_ID_BYTES`] bytes without control
/// characters.
pub fn check_id(what: &str, v: &str) -> Result<()> {
    if v.is_empty() || v.len() > MAX_ID_BYTES || v.chars().any(char::is_control) {
        return Err(Error::bad_request(format!(
            "{what} must be 1–{MAX_ID_BYTES} bytes without control characters"
        )));
    }
    Ok(())
}

/// An Ed25519 public key from 64 hex digits, refusing small-order keys.
pub fn parse_public_key(hexed: &str) -> Result<ed25519_dalek::VerifyingKey> {
    let mut b = [0u8; 32];
    hex::decode_to_slice(hexed.as_bytes(), &mut b)
        .map_err(|_| Error::bad_request("public_key must be 64 hex digits (Ed25519)"))?;
    let k = ed25519_dalek::VerifyingKey::from_bytes(&b)
        .map_err(|_| Error::bad_request("public_key is not an Ed25519 public key"))?;
    if k.is_weak() {
        return Err(Error::bad_request(
            "public_key is a weak (small-order) Ed25519 key",
        ));
    }
    Ok(k)
}

/// The public key of an enrolled, not revoked device.
pub async fn public_key(
    store: &Store,
    account: &str,
    device: &str,
) -> Result<Option<ed25519_dalek::VerifyingKey>> {
    let Some(hexed) = devices::public_key(store, account, device).await? else {
        return Ok(None);
    };
    parse_public_key(&hexed)
        .map(Some)
        .map_err(|_| Error::internal("a stored device key does not parse"))
}

/// A device just enrolled, with its API key (shown once).
#[derive(Debug, Clone, Serialize)]
pub struct Enrolled {
    /// The account.
    pub account: String,
    /// The device.
    pub device: String,
    /// The device's API key, `bwk_<id>_<secret>`.
    pub key: String,
}

/// Enrols `device` of `account` with its Ed25519 public key (64 hex
/// digits) and creates its `device` API key; audited as `device.enrol` by
/// `actor`. A device id once enrolled, even revoked, is a `conflict`.
pub async fn enrol(
    store: &Store,
    actor: &str,
    account: &str,
    device: &str,
    public_key: &str,
) -> Result<Enrolled> {
    check_id("account", account)?;
    check_id("device", device)?;
    let pk = parse_public_key(public_key)?;
    let mut tx = store.begin().await?;
    if devices::exists(store, &mut tx, account, device).await? {
        return Err(Error::conflict(format!(
            "device {:?} of account {:?} is already enrolled (a revoked device id is not reused)",
            snippet(device),
            snippet(account)
        )));
    }
    let key = keys::create_key_in(
        store,
        &mut tx,
        Role::Device,
        &format!("device {}", snippet(device)),
        Some((account, device)),
    )
    .await
    .map_err(Error::internal)?;
    devices::insert(
        store,
        &mut tx,
        account,
        device,
        &hex::encode(pk.to_bytes()),
        &key.id,
        actor,
    )
    .await?;
    db::audit(
        store,
        &mut tx,
        actor,
        "device.enrol",
        None,
        None,
        json!({"account": account, "device": device, "key_id": key.id}),
    )
    .await?;
    tx.commit().await?;
    Ok(Enrolled {
        account: account.to_string(),
        device: device.to_string(),
        key: key.key.as_str().to_string(),
    })
}

/// Revokes an enrolled device and its API key; audited as `device.revoke`
/// by `actor`. `not_found` when no such device is enrolled.
pub async fn revoke(store: &Store, actor: &str, account: &str, device: &str) -> Result<()> {
    let mut tx = store.begin().await?;
    if !devices::revoke(store, &mut tx, account, device).await? {
        return Err(Error::not_found("no such enrolled device"));
    }
    db::audit(
        store,
        &mut tx,
        actor,
        "device.revoke",
        None,
        None,
        json!({"account": account, "device": device}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A device as listed.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceInfo {
    /// The device id.
    pub device: String,
    /// Its Ed25519 public key, hex.
    pub public_key: String,
    /// RFC 3339.
    pub enrolled_at: String,
    /// RFC 3339, when revoked.
    pub revoked_at: Option<String>,
}

/// An account's devices.
#[derive(Debug, Clone, Serialize)]
pub struct AccountDevices {
    /// The account.
    pub account: String,
    /// Its devices (revoked ones too), by id.
    pub devices: Vec<DeviceInfo>,
}

/// Every device of `account`, revoked ones too.
pub async fn list(store: &Store, account: &str) -> Result<AccountDevices> {
    let devices = devices::of_account(store, account)
        .await?
        .into_iter()
        .map(|d| DeviceInfo {
            device: d.device,
            public_key: d.public_key,
            enrolled_at: rfc3339(d.enrolled_at),
            revoked_at: d.revoked_at.map(rfc3339),
        })
        .collect();
    Ok(AccountDevices {
        account: account.to_string(),
        devices,
    })
}
