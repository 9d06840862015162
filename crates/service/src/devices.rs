//! Enrolled devices: the messenger backend enrols each device of an account
//! with the device's Ed25519 public key; vouchers and reports are then
//! signed by that key, so no other key can file them in the device's name.

use bulwark_store::{Store, devices};

use crate::error::{Error, Result};

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
