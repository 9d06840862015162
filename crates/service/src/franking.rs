//! Message franking on the service side: the keys the delivery service's
//! stamps are made with (sealed in the store, rotated by an admin, old ones
//! still verify), the Ed25519 key stamps are signed with, and stamping.

use bulwark_franking::{Context, FrankingTag, Keyring, MessageInfo};
use bulwark_store::{self as db, Store, reports};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secrets::Kek;

/// The `meta` key (and sealing purpose) of the stamp signing key.
const SIGNING_KEY_NAME: &str = "franking_signing_key";

fn franking_key_name(id: i64) -> String {
    format!("franking_key_{id}")
}

fn random_key() -> Zeroizing<[u8; 32]> {
    let mut k = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(k.as_mut());
    k
}

/// The stamp signing key (created on first use; replicas racing agree on
/// the first one stored); its public half is what receivers check.
pub async fn signing_key(store: &Store, kek: &Kek) -> Result<ed25519_dalek::SigningKey> {
    if db::meta(store, SIGNING_KEY_NAME).await?.is_none() {
        let k = random_key();
        db::insert_meta_once(
            store,
            SIGNING_KEY_NAME,
            &kek.seal(SIGNING_KEY_NAME, k.as_ref()),
        )
        .await?;
    }
    let stored = db::meta(store, SIGNING_KEY_NAME)
        .await?
        .ok_or_else(|| Error::internal("stamp signing key vanished"))?;
    let bytes = kek
        .open(SIGNING_KEY_NAME, &stored)
        .map_err(Error::internal)?;
    let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
        bytes
            .as_slice()
            .try_into()
            .map_err(|_| Error::internal("stamp signing key is not 32 bytes"))?,
    );
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

/// The franking keys (creating the first on an empty table), with the
/// signing key.
pub async fn keyring(store: &Store, kek: &Kek) -> Result<Keyring> {
    let mut rows = reports::franking_keys(store).await?;
    if rows.is_empty() {
        let k = random_key();
        reports::insert_first_franking_key(store, &kek.seal(&franking_key_name(1), k.as_ref()))
            .await?;
        rows = reports::franking_keys(store).await?;
    }
    let mut keys = Vec::new();
    for r in &rows {
        let secret = kek
            .open(&franking_key_name(r.id), &r.sealed)
            .map_err(Error::internal)?;
        let k: [u8; 32] = secret
            .as_slice()
            .try_into()
            .map_err(|_| Error::internal(format!("franking key {} is not 32 bytes", r.id)))?;
        keys.push((r.id as u32, k));
    }
    let ring = Keyring::from_keys(keys.iter().copied());
    for (_, k) in &mut keys {
        zeroize::Zeroize::zeroize(k);
    }
    Ok(ring.with_signing_key(signing_key(store, kek).await?))
}

/// What the delivery service's authenticated session attests of a message.
#[derive(Debug, Clone)]
pub struct StampRequest {
    /// The franking tag.
    pub tag: [u8; 32],
    /// Sender.
    pub sender: String,
    /// Conversation.
    pub conversation: String,
    /// Message id.
    pub message_id: String,
    /// MLS epoch.
    pub epoch: u64,
    /// Recipients.
    pub recipients: Vec<String>,
}

/// A stamp: the MAC under the current franking key and the signature over
/// the same context.
#[derive(Debug, Clone)]
pub struct Stamped {
    /// The franking key's id.
    pub key_id: u32,
    /// The stamp's MAC.
    pub mac: [u8; 32],
    /// The Ed25519 signature.
    pub signature: [u8; 64],
    /// The service's time (seconds).
    pub accepted_at: u64,
    /// The stamping key.
    pub stamper: String,
}

/// Stamps and signs a message's franking tag with sender, conversation,
/// message id, epoch, recipients, the service's time and `stamper`.
pub async fn stamp(store: &Store, kek: &Kek, stamper: &str, r: StampRequest) -> Result<Stamped> {
    let ctx = Context {
        info: MessageInfo {
            sender: r.sender,
            conversation: r.conversation,
            message_id: r.message_id,
        },
        epoch: r.epoch,
        recipients: r.recipients,
        accepted_at: (db::now_ms() / 1000) as u64,
        stamper: stamper.to_string(),
    };
    ctx.validate().map_err(|_| {
        Error::bad_request(format!(
            "sender, conversation, message_id and each recipient must be 1–{} bytes, at most {} recipients",
            bulwark_franking::MAX_ID_BYTES,
            bulwark_franking::MAX_RECIPIENTS
        ))
    })?;
    let ring = keyring(store, kek).await?;
    let tag = FrankingTag(r.tag);
    let st = ring.stamp(&tag, &ctx);
    let sig = ring
        .sign(&tag, &ctx)
        .ok_or_else(|| Error::internal("no stamp signing key"))?;
    Ok(Stamped {
        key_id: st.key_id,
        mac: st.mac,
        signature: sig.to_bytes(),
        accepted_at: ctx.accepted_at,
        stamper: ctx.stamper,
    })
}

/// A new stamping key (old keys still verify); audited as
/// `franking.rotate` by `actor`. Returns its id.
pub async fn rotate(store: &Store, kek: &Kek, actor: &str) -> Result<i64> {
    keyring(store, kek).await?;
    let k = random_key();
    let mut tx = store.begin().await?;
    let id = reports::next_franking_key_id(&mut tx).await?;
    reports::insert_franking_key(
        store,
        &mut tx,
        id,
        &kek.seal(&franking_key_name(id), k.as_ref()),
    )
    .await?;
    db::audit(
        store,
        &mut tx,
        actor,
        "franking.rotate",
        None,
        None,
        serde_json::json!({"key_id": id}),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}
