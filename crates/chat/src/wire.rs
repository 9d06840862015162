//! The JSON the messenger client and the delivery service exchange. Binary
//! fields (MLS messages, vouchers) are standard base64; keys, tags and MACs
//! are hex.

use serde::{Deserialize, Serialize};

/// `POST /ds/v1/devices`: register a device (a new user's first device
/// without authentication; a further device of an existing user with the
/// bearer token of one of its devices).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The user (account) name.
    pub user: String,
    /// The device's name within the account.
    pub device: String,
    /// The device's Ed25519 public key (64 hex): it signs vouchers and reports.
    pub public_key: String,
}

/// The answer to [`RegisterRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// Bearer token for the delivery service.
    pub token: String,
    /// The matcher service's device-role API key (reports go there directly).
    pub matcher_key: String,
}

/// `POST /ds/v1/key_packages`: upload key packages of the calling device.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPackagesUpload {
    /// TLS-serialised MLS key packages, base64.
    pub key_packages: Vec<String>,
}

/// One claimed key package (`GET /ds/v1/users/{user}/key_packages`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimedKeyPackage {
    /// The device it belongs to.
    pub device: String,
    /// TLS-serialised key package, base64.
    pub key_package: String,
}

/// A (user, device) pair: one MLS member (leaf).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Member {
    /// The user.
    pub user: String,
    /// The device.
    pub device: String,
}

/// `POST /ds/v1/groups/{group}/commits`: fan out a commit (and a welcome
/// for added devices). The first commit of a group creates it at the
/// delivery service with the caller as its only member before.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitUpload {
    /// The MLS commit, base64 (none when a group is created alone).
    pub commit: Option<String>,
    /// The MLS welcome for added devices, base64.
    pub welcome: Option<String>,
    /// Members after the commit.
    pub members: Vec<Member>,
    /// The group's epoch after the commit.
    pub epoch: u64,
}

/// A safety voucher for one image, signed by the sending device
/// (`bulwark_psi::envelope::signing_input`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedVoucher {
    /// The voucher, base64.
    pub voucher: String,
    /// Ed25519 signature by the device key, hex.
    pub signature: String,
}

/// `POST /ds/v1/groups/{group}/messages`: an application message.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageUpload {
    /// The sender's message id (random, unique in the conversation).
    pub message_id: String,
    /// The group epoch the message is encrypted in.
    pub epoch: u64,
    /// The franking tag (also the MLS authenticated data), hex.
    pub tag: String,
    /// The MLS private message, base64.
    pub mls: String,
    /// Vouchers for the images attached, forwarded to the matcher service.
    pub vouchers: Vec<SignedVoucher>,
}

/// The stamp the matcher service gave the delivery service for a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StampJson {
    /// Franking key id.
    pub key_id: u32,
    /// The stamp MAC, hex.
    pub mac: String,
    /// The service's Ed25519 signature over the stamp input, hex.
    pub signature: String,
    /// Server time (seconds) the message was accepted.
    pub accepted_at: u64,
    /// The stamping key's id.
    pub stamper: String,
    /// Recipient users the stamp binds, as sent to the stamp endpoint.
    pub recipients: Vec<String>,
    /// Sender user (the delivery service's authenticated session).
    pub sender: String,
    /// The epoch the stamp binds.
    pub epoch: u64,
}

/// One item of a device's queue (`GET /ds/v1/queue`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueItem {
    /// Position in the queue; acknowledge with `POST /ds/v1/queue/ack`.
    pub seq: i64,
    /// `welcome`, `commit` or `message`.
    pub kind: String,
    /// The group.
    pub group: String,
    /// Who sent it (delivery-service view).
    pub from: Member,
    /// The MLS message, base64.
    pub mls: String,
    /// For messages: id, tag and stamp.
    pub message_id: Option<String>,
    /// For messages: the franking tag, hex.
    pub tag: Option<String>,
    /// For messages: the stamp.
    pub stamp: Option<StampJson>,
}

/// `POST /ds/v1/queue/ack`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    /// Delete every item up to and including this one.
    pub upto: i64,
}
