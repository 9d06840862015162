//! The messenger client: one MLS client per device, state in a directory.
//!
//! Send ([`Client::send`]): each attachment is sealed under a fresh key
//! (key-committing AES-256-GCM, [`bulwark_franking::attachment::seal`]) and
//! its ciphertext uploaded; each image also gets a safety voucher against
//! the verified pdata ([`bulwark_client::voucher::voucher_for_image_seen`]),
//! each video one per key frame ([`video_vouchers`]), signed by the device
//! key; the content (text and attachment references)
//! is franked ([`bulwark_client::franking::frank`]) and MLS-encrypted with
//! the franking tag as authenticated data. The plain image hash never
//! leaves the device.
//!
//! Receive ([`Client::receive`]): after MLS decryption the client checks
//! that the authenticated data is the stamped tag, that the MLS sender, the
//! delivery service's sender and the stamp's sender are one user, that the
//! stamp's epoch is the message's and its recipients the group's users, then
//! the tag and the service's signature
//! ([`bulwark_client::franking::receive`]) and each attachment's digest and
//! key commitment. A message that fails is dropped, with the reason.
//!
//! Report ([`Client::report`]): the message, its attachments' ciphertexts,
//! signed by this device's enrolled key, to the matcher's `POST /v1/reports`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail, ensure};
use base64::Engine as _;
use bulwark_client::franking::{Content, Context, FrankingTag, MessageInfo, Stamp};
use bulwark_client::voucher::{DeviceAccount, Pdata, Policy, ProviderPublic, SeenImages};
use bulwark_franking::attachment::AttachmentRef;
use ed25519_dalek::Signer as _;
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_memory_storage::MemoryStorage;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::OpenMlsProvider;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::http::Http;
use crate::wire::{
    ClaimedKeyPackage, CommitUpload, KeyPackagesUpload, Member, MessageUpload, QueueItem,
    RegisterRequest, RegisterResponse, SignedVoucher, StampJson,
};

/// The MLS cipher suite of every group.
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;
/// Key packages uploaded at registration and topped up after joins.
pub const KEY_PACKAGES: usize = 10;
/// Most vouchers for one video: frames sampled once a second by vPDQ, of
/// PDQ quality at least [`VIDEO_MIN_QUALITY`], each further than the match
/// radius from the others, spread over the video.
pub const VIDEO_VOUCHERS: usize = 4;
/// Frames of lower PDQ quality get no voucher (vPDQ's matching rule ignores
/// them too).
pub const VIDEO_MIN_QUALITY: u32 = 50;
/// Most vouchers in one message (the delivery service's limit).
pub const MAX_VOUCHERS: usize = crate::delivery::MAX_VOUCHERS;
/// Past epochs whose keys are kept, so messages sent just before a commit
/// still decrypt.
const PAST_EPOCHS: usize = 5;

/// The OpenMLS provider: RustCrypto and an in-memory store that the client
/// writes to `mls.json` after every operation.
#[derive(Default)]
struct Provider {
    crypto: RustCrypto,
    storage: MemoryStorage,
}

impl OpenMlsProvider for Provider {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = MemoryStorage;

    fn storage(&self) -> &MemoryStorage {
        &self.storage
    }
    fn crypto(&self) -> &RustCrypto {
        &self.crypto
    }
    fn rand(&self) -> &RustCrypto {
        &self.crypto
    }
}

/// Which pdata the device trusts: the pinned list providers' keys and an
/// optional lower threshold (tests and demos).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PdataPolicy {
    /// Pinned provider public keys (hex); at least two for vouchers.
    pub providers: Vec<String>,
    /// Accept this lower threshold than the default policy's.
    pub allow_threshold: Option<u16>,
}

/// A received, verified message as the client keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    /// The sender's message id.
    pub id: String,
    /// The group (conversation).
    pub group: String,
    /// The sending user (MLS credential, equal to the stamp's sender).
    pub sender: String,
    /// The sending device.
    pub sender_device: String,
    /// The text.
    pub text: String,
    /// Attachments: media type, size, where the plaintext was saved.
    pub attachments: Vec<SavedAttachment>,
    /// The service's acceptance time (seconds).
    pub accepted_at: u64,
    /// The decrypted franking envelope (base64): kept for a report.
    envelope: String,
    /// The franking tag (hex).
    tag: String,
    /// The stamp.
    stamp: StampJson,
}

#[cfg(test)]
impl Message {
    /// A message as if received and verified (UI tests).
    pub(crate) fn for_test(
        group: &str,
        id: &str,
        sender: &str,
        device: &str,
        text: &str,
        stamp: StampJson,
    ) -> Message {
        Message {
            id: id.into(),
            group: group.into(),
            sender: sender.into(),
            sender_device: device.into(),
            text: text.into(),
            attachments: Vec::new(),
            accepted_at: stamp.accepted_at,
            envelope: String::new(),
            tag: String::new(),
            stamp,
        }
    }
}

/// An attachment that opened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedAttachment {
    /// Media type the sender gave.
    pub media_type: String,
    /// Plaintext size.
    pub size: u64,
    /// The decrypted file.
    pub path: PathBuf,
}

/// A queue item the client dropped, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Dropped {
    /// The group.
    pub group: String,
    /// The kind of item.
    pub kind: String,
    /// The message id, when it had one.
    pub message_id: Option<String>,
    /// Why.
    pub reason: String,
}

/// What [`Client::receive`] did.
#[derive(Debug, Default, Serialize)]
pub struct Received {
    /// New verified messages.
    pub messages: Vec<Message>,
    /// Groups joined (welcomes).
    pub joined: Vec<String>,
    /// Groups left (this device was removed).
    pub left: Vec<String>,
    /// Items that did not verify.
    pub dropped: Vec<Dropped>,
}

/// What [`Client::send`] sent.
#[derive(Debug, Clone, Serialize)]
pub struct Sent {
    /// The message id.
    pub message_id: String,
    /// The group.
    pub group: String,
    /// Bytes of the MLS message.
    pub mls_bytes: usize,
    /// Bytes of each voucher.
    pub voucher_bytes: Vec<usize>,
    /// Device time to hash each image and build and sign its voucher, µs.
    pub voucher_micros: Vec<u64>,
    /// Device time per video: hash its frames (vPDQ), extract the chosen
    /// frames' derivatives, build and sign their vouchers, µs.
    pub video_micros: Vec<u64>,
    /// Bytes of each attachment ciphertext.
    pub attachment_bytes: Vec<usize>,
    /// The stamp the service gave.
    pub stamp: StampJson,
}

/// An attachment to send.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// Its media type (`image/jpeg`, `video/mp4`, ...): images get vouchers.
    pub media_type: String,
}

impl Attachment {
    /// Reads a file, guessing its media type from the extension.
    pub fn from_file(path: &Path) -> anyhow::Result<Attachment> {
        let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let media_type = match ext.as_str() {
            "jpg" | "jpeg" => "image/jpeg",
            "png" => "image/png",
            "gif" => "image/gif",
            "webp" => "image/webp",
            "bmp" => "image/bmp",
            "tif" | "tiff" => "image/tiff",
            "mp4" | "m4v" => "video/mp4",
            "webm" => "video/webm",
            "mov" => "video/quicktime",
            _ => "application/octet-stream",
        }
        .to_string();
        Ok(Attachment { bytes, media_type })
    }
}

impl Attachment {
    /// An image or a video: it gets safety vouchers.
    pub fn is_media(&self) -> bool {
        self.media_type.starts_with("image/") || self.media_type.starts_with("video/")
    }
}

/// The frames of a video that get vouchers: vPDQ hashes one frame a second
/// (ffmpeg in a subprocess), frames below [`VIDEO_MIN_QUALITY`] are
/// skipped, then up to [`VIDEO_VOUCHERS`] frames spread over the video, each
/// further than the match radius from those already chosen.
pub fn video_key_frames(
    frames: &[bulwark_vpdq::FrameHash],
    radius: u32,
) -> Vec<bulwark_vpdq::FrameHash> {
    let mut distinct: Vec<bulwark_vpdq::FrameHash> = Vec::new();
    for f in frames.iter().filter(|f| f.quality >= VIDEO_MIN_QUALITY) {
        if distinct.iter().all(|d| d.hash.distance(&f.hash) > radius) {
            distinct.push(*f);
        }
    }
    if distinct.len() <= VIDEO_VOUCHERS {
        return distinct;
    }
    (0..VIDEO_VOUCHERS)
        .map(|i| distinct[i * distinct.len() / VIDEO_VOUCHERS])
        .collect()
}

/// Safety vouchers for a video: each key frame's vPDQ hash (the hash the
/// service computes for banked videos), with the grey derivative of that
/// frame, through the same voucher path as an image (remembered in `seen`,
/// so a near copy counts once toward the threshold). The plain hashes stay
/// on the device.
pub fn video_vouchers(
    pdata: &Pdata,
    account: &DeviceAccount,
    seen: &mut SeenImages,
    bytes: &[u8],
) -> anyhow::Result<Vec<bulwark_client::voucher::Voucher>> {
    let mut file = tempfile::NamedTempFile::new()?;
    std::io::Write::write_all(&mut file, bytes)?;
    let mut opts = bulwark_vpdq::Options::default();
    opts.every_seconds = Some(1.0);
    opts.timeout = std::time::Duration::from_secs(120);
    let frames = bulwark_vpdq::hash_video(file.path(), &opts).context("hashing the video")?;
    let chosen = video_key_frames(&frames, u32::from(pdata.params().radius));
    ensure!(
        !chosen.is_empty(),
        "the video has no frame of PDQ quality {VIDEO_MIN_QUALITY} or more to voucher"
    );
    let side = (f64::from(pdata.params().derivative_bytes).sqrt() as usize).clamp(1, 64);
    let mut out = Vec::new();
    for f in chosen {
        let png = frame_png(&opts.ffmpeg, file.path(), f.timestamp)?;
        let img = bulwark_pdq::decode(&png, &bulwark_pdq::Limits::default())
            .map_err(|e| anyhow!("frame at {:.3} s: {e}", f.timestamp))?;
        let derivative = bulwark_client::voucher::grey_derivative(&img, side);
        let identity = seen.identity(pdata, &f.hash);
        out.push(
            account
                .voucher_as(
                    pdata,
                    &f.hash,
                    &identity,
                    &derivative,
                    &mut rand::rngs::OsRng,
                )
                .map_err(|e| anyhow!("voucher: {e}"))?,
        );
    }
    Ok(out)
}

/// One frame of a video as PNG, decoded by ffmpeg in a subprocess.
fn frame_png(ffmpeg: &Path, video: &Path, at: f64) -> anyhow::Result<Vec<u8>> {
    let out = std::process::Command::new(ffmpeg)
        .args(["-nostdin", "-v", "error", "-noautorotate", "-ss"])
        .arg(format!("{at:.3}"))
        .arg("-i")
        .arg(video)
        .args(["-frames:v", "1", "-f", "image2pipe", "-c:v", "png", "-"])
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running {}", ffmpeg.display()))?;
    ensure!(
        out.status.success() && !out.stdout.is_empty(),
        "extracting the frame at {at:.3} s: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(out.stdout)
}

#[derive(Serialize, Deserialize)]
struct GroupState {
    /// For a 1:1: the other user.
    dm_with: Option<String>,
}

/// The client's persistent state (`state.json`, mode 0600).
#[derive(Serialize, Deserialize)]
struct State {
    user: String,
    device: String,
    ds_url: String,
    matcher_url: String,
    token: String,
    matcher_key: String,
    /// Ed25519 device key seed (hex): signs vouchers and reports.
    device_key: String,
    /// The MLS signature public key (hex); the pair is in the MLS store.
    mls_public: String,
    /// The voucher account secret (hex).
    voucher_account: String,
    /// The matcher's stamp-signing key (hex), pinned at registration.
    franking_key: String,
    pdata_policy: PdataPolicy,
    seen_epoch: Option<u64>,
    seen: Vec<String>,
    groups: BTreeMap<String, GroupState>,
    inbox: Vec<Message>,
}

/// A messenger device.
pub struct Client {
    dir: PathBuf,
    state: State,
    provider: Provider,
    signer: SignatureKeyPair,
    ds: Http,
    matcher: Http,
    pdata: Option<Pdata>,
}

fn b64e(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn b64d(s: &str) -> anyhow::Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| anyhow!("base64: {e}"))
}

fn random_id() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write as _;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let mut f = o.open(&tmp).with_context(|| tmp.display().to_string())?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| path.display().to_string())?;
    Ok(())
}

/// `user/device` of an MLS credential.
fn identity_of(c: &Credential) -> anyhow::Result<Member> {
    let basic = BasicCredential::try_from(c.clone()).map_err(|e| anyhow!("credential: {e:?}"))?;
    let text = std::str::from_utf8(basic.identity()).context("credential is not UTF-8")?;
    let (user, device) = text
        .split_once('/')
        .ok_or_else(|| anyhow!("credential {text:?} is not user/device"))?;
    Ok(Member {
        user: user.into(),
        device: device.into(),
    })
}

fn group_members(g: &MlsGroup) -> anyhow::Result<Vec<Member>> {
    let mut v = g
        .members()
        .map(|m| identity_of(&m.credential))
        .collect::<anyhow::Result<Vec<_>>>()?;
    v.sort();
    Ok(v)
}

fn group_users(g: &MlsGroup) -> anyhow::Result<Vec<String>> {
    let mut v: Vec<String> = group_members(g)?.into_iter().map(|m| m.user).collect();
    v.dedup();
    Ok(v)
}

fn create_config() -> MlsGroupCreateConfig {
    MlsGroupCreateConfig::builder()
        .ciphersuite(CIPHERSUITE)
        .use_ratchet_tree_extension(true)
        .max_past_epochs(PAST_EPOCHS)
        .build()
}

fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(true)
        .max_past_epochs(PAST_EPOCHS)
        .build()
}

impl Client {
    /// Registers a new device and writes its state to `dir`: device key,
    /// MLS signature key, voucher account, key packages uploaded. A further
    /// device of an existing user needs `link_token`, the delivery-service
    /// token of one of the user's devices.
    pub fn register(
        dir: &Path,
        ds_url: &str,
        matcher_url: &str,
        user: &str,
        device: &str,
        link_token: Option<&str>,
    ) -> anyhow::Result<Client> {
        ensure!(
            !dir.join("state.json").exists(),
            "{} already holds a registered device",
            dir.display()
        );
        std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
        let ds = Http::new(ds_url);
        let matcher = Http::new(matcher_url);
        let device_key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let req = RegisterRequest {
            user: user.into(),
            device: device.into(),
            public_key: hex::encode(device_key.verifying_key().to_bytes()),
        };
        let reply = ds.post_json("/ds/v1/devices", link_token, &serde_json::to_value(&req)?)?;
        reply.ok("registering", &[201])?;
        let r: RegisterResponse = serde_json::from_slice(&reply.body)?;
        let keys = matcher
            .call("GET", "/v1/franking/keys", None, None)?
            .json("GET /v1/franking/keys", &[200])?;
        let franking_key = keys["public_key"]
            .as_str()
            .ok_or_else(|| anyhow!("no public_key in /v1/franking/keys"))?
            .to_string();
        let provider = Provider::default();
        let signer = SignatureKeyPair::new(CIPHERSUITE.signature_algorithm())
            .map_err(|e| anyhow!("MLS signature key: {e:?}"))?;
        signer
            .store(provider.storage())
            .map_err(|e| anyhow!("storing the MLS key: {e:?}"))?;
        let account = DeviceAccount::generate(&mut rand::rngs::OsRng);
        let state = State {
            user: user.into(),
            device: device.into(),
            ds_url: ds_url.into(),
            matcher_url: matcher_url.into(),
            token: r.token,
            matcher_key: r.matcher_key,
            device_key: hex::encode(device_key.to_bytes()),
            mls_public: hex::encode(signer.public()),
            voucher_account: hex::encode(account.to_bytes().as_slice()),
            franking_key,
            pdata_policy: PdataPolicy::default(),
            seen_epoch: None,
            seen: Vec::new(),
            groups: BTreeMap::new(),
            inbox: Vec::new(),
        };
        let mut c = Client {
            dir: dir.to_path_buf(),
            state,
            provider,
            signer,
            ds,
            matcher,
            pdata: None,
        };
        c.upload_key_packages(KEY_PACKAGES)?;
        c.save()?;
        Ok(c)
    }

    /// Opens a registered device's state.
    pub fn open(dir: &Path) -> anyhow::Result<Client> {
        let path = dir.join("state.json");
        let text = Zeroizing::new(std::fs::read_to_string(&path).with_context(|| {
            format!("{}: not registered (run `chat register`)", path.display())
        })?);
        let state: State = serde_json::from_str(&text).context("state.json")?;
        let mls = Zeroizing::new(std::fs::read(dir.join("mls.json")).context("mls.json")?);
        let pairs: Vec<(String, String)> = serde_json::from_slice(&mls).context("mls.json")?;
        let mut map = std::collections::HashMap::new();
        for (k, v) in pairs {
            map.insert(b64d(&k)?, b64d(&v)?);
        }
        let provider = Provider {
            crypto: RustCrypto::default(),
            storage: MemoryStorage {
                values: std::sync::RwLock::new(map),
            },
        };
        let public = hex::decode(&state.mls_public)?;
        let signer = SignatureKeyPair::read(
            provider.storage(),
            &public,
            CIPHERSUITE.signature_algorithm(),
        )
        .ok_or_else(|| anyhow!("the MLS signature key is missing from mls.json"))?;
        Ok(Client {
            dir: dir.to_path_buf(),
            ds: Http::new(&state.ds_url),
            matcher: Http::new(&state.matcher_url),
            state,
            provider,
            signer,
            pdata: None,
        })
    }

    /// Writes `state.json` and `mls.json` (both 0600: they hold keys).
    pub fn save(&self) -> anyhow::Result<()> {
        let pairs: Vec<(String, String)> = {
            let values = self
                .provider
                .storage
                .values
                .read()
                .map_err(|_| anyhow!("MLS store lock poisoned"))?;
            values.iter().map(|(k, v)| (b64e(k), b64e(v))).collect()
        };
        write_private(
            &self.dir.join("mls.json"),
            &Zeroizing::new(serde_json::to_vec(&pairs)?),
        )?;
        write_private(
            &self.dir.join("state.json"),
            &Zeroizing::new(serde_json::to_vec_pretty(&self.state)?),
        )
    }

    /// This device's user.
    pub fn user(&self) -> &str {
        &self.state.user
    }

    /// This device's name.
    pub fn device(&self) -> &str {
        &self.state.device
    }

    /// The delivery-service token (to link a further device of this user).
    pub fn token(&self) -> &str {
        &self.state.token
    }

    /// The matcher service's device-role API key of this device.
    pub fn matcher_key(&self) -> &str {
        &self.state.matcher_key
    }

    /// The device's Ed25519 key (signs vouchers and reports).
    pub fn device_key(&self) -> anyhow::Result<ed25519_dalek::SigningKey> {
        let mut seed = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(self.state.device_key.as_bytes(), seed.as_mut())?;
        Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// Verified messages received so far.
    pub fn inbox(&self) -> &[Message] {
        &self.state.inbox
    }

    /// Groups this device is in.
    pub fn groups(&self) -> Vec<String> {
        self.state.groups.keys().cloned().collect()
    }

    /// Users of a group, from this device's MLS view.
    pub fn members(&self, group: &str) -> anyhow::Result<Vec<Member>> {
        group_members(&self.load_group(group)?)
    }

    /// Sets which pdata to trust for vouchers; with at least two providers,
    /// every image sent carries a voucher (sending fails without pdata).
    pub fn set_pdata_policy(&mut self, p: PdataPolicy) -> anyhow::Result<()> {
        self.state.pdata_policy = p;
        self.pdata = None;
        self.save()
    }

    fn policy(&self) -> anyhow::Result<Policy> {
        let mut pins = Vec::new();
        for p in &self.state.pdata_policy.providers {
            pins.push(
                p.parse::<ProviderPublic>()
                    .map_err(|e| anyhow!("provider key {p:?}: {e}"))?,
            );
        }
        let mut policy = Policy::default().pin(pins);
        if let Some(t) = self.state.pdata_policy.allow_threshold {
            policy = policy.allow_threshold(t);
        }
        Ok(policy)
    }

    /// Downloads the current pdata and its signed root from the matcher and
    /// verifies them (two pinned provider signatures, an allowed profile).
    pub fn refresh_pdata(&mut self) -> anyhow::Result<()> {
        let policy = self.policy()?;
        let pdata = self.matcher.call("GET", "/v1/pdata", None, None)?;
        pdata.ok("GET /v1/pdata", &[200])?;
        let signed = self.matcher.call("GET", "/v1/pdata/signed", None, None)?;
        signed.ok("GET /v1/pdata/signed", &[200])?;
        let p = bulwark_client::voucher::load_signed_pdata(&pdata.body, &signed.body, &policy)?;
        self.pdata = Some(p);
        Ok(())
    }

    /// Whether this device's voucher for `image` under the current pdata is
    /// synthetic: with the pdata's small probability (decided by the
    /// device's secret and the image's hash, so a repeat decides the same)
    /// a voucher carries no real share, which is what keeps the server from
    /// counting matches below the threshold. Only the device can know this;
    /// tests use it to pick images that do count.
    pub fn sends_synthetic_for(&mut self, image: &Attachment) -> anyhow::Result<bool> {
        if self.pdata.is_none() {
            self.refresh_pdata()?;
        }
        let p = self.pdata.as_ref().ok_or_else(|| anyhow!("no pdata"))?;
        let account =
            DeviceAccount::from_bytes(&Zeroizing::new(hex::decode(&self.state.voucher_account)?))?;
        let img = bulwark_pdq::decode(&image.bytes, &bulwark_pdq::Limits::default())?;
        let hash = bulwark_pdq::hash_image(&img, bulwark_pdq::Mode::default()).hash;
        Ok(account.sends_synthetic_for(p, &hash))
    }

    fn upload_key_packages(&mut self, n: usize) -> anyhow::Result<()> {
        let cwk = self.credential();
        let mut kps = Vec::new();
        for _ in 0..n {
            let b = KeyPackage::builder()
                .build(CIPHERSUITE, &self.provider, &self.signer, cwk.clone())
                .map_err(|e| anyhow!("key package: {e:?}"))?;
            kps.push(b64e(&b.key_package().tls_serialize_detached()?));
        }
        let body = serde_json::to_value(KeyPackagesUpload { key_packages: kps })?;
        self.ds
            .post_json("/ds/v1/key_packages", Some(&self.state.token), &body)?
            .ok("uploading key packages", &[200])
    }

    fn credential(&self) -> CredentialWithKey {
        let id = format!("{}/{}", self.state.user, self.state.device);
        CredentialWithKey {
            credential: BasicCredential::new(id.into_bytes()).into(),
            signature_key: self.signer.public().into(),
        }
    }

    fn load_group(&self, group: &str) -> anyhow::Result<MlsGroup> {
        MlsGroup::load(
            self.provider.storage(),
            &GroupId::from_slice(group.as_bytes()),
        )
        .map_err(|e| anyhow!("loading group {group}: {e:?}"))?
        .ok_or_else(|| anyhow!("this device is not in group {group:?}"))
    }

    /// Claims a key package of every device of `user`.
    fn claim(&self, user: &str) -> anyhow::Result<Vec<KeyPackage>> {
        let reply = self.ds.call(
            "POST",
            &format!("/ds/v1/users/{user}/key_packages"),
            Some(&self.state.token),
            Some(("application/json", b"{}")),
        )?;
        reply.ok(&format!("key packages of {user}"), &[200])?;
        let claimed: Vec<ClaimedKeyPackage> = serde_json::from_slice(&reply.body)?;
        let mut out = Vec::new();
        for c in claimed {
            let kp = KeyPackageIn::tls_deserialize_exact(b64d(&c.key_package)?)
                .map_err(|e| anyhow!("key package of {user}/{}: {e:?}", c.device))?
                .validate(self.provider.crypto(), ProtocolVersion::Mls10)
                .map_err(|e| anyhow!("key package of {user}/{}: {e:?}", c.device))?;
            let who = identity_of(kp.leaf_node().credential())?;
            ensure!(
                who.user == user && who.device == c.device,
                "the delivery service handed out a key package of {}/{} for {user}/{}",
                who.user,
                who.device,
                c.device
            );
            out.push(kp);
        }
        Ok(out)
    }

    /// Creates group `group` with this device, this user's other devices
    /// and every device of `users`.
    pub fn create_group(&mut self, group: &str, users: &[&str]) -> anyhow::Result<()> {
        ensure!(
            !self.state.groups.contains_key(group),
            "group {group} exists already"
        );
        let mut g = MlsGroup::new_with_group_id(
            &self.provider,
            &self.signer,
            &create_config(),
            GroupId::from_slice(group.as_bytes()),
            self.credential(),
        )
        .map_err(|e| anyhow!("creating group: {e:?}"))?;
        // Register the group at the delivery service with this device alone.
        let me = Member {
            user: self.state.user.clone(),
            device: self.state.device.clone(),
        };
        let body = serde_json::to_value(CommitUpload {
            commit: None,
            welcome: None,
            members: vec![me],
            epoch: g.epoch().as_u64(),
        })?;
        let r = self.ds.post_json(
            &format!("/ds/v1/groups/{group}/commits"),
            Some(&self.state.token),
            &body,
        )?;
        if let Err(e) = r.ok("creating the group", &[200]) {
            let _ = g.delete(self.provider.storage());
            return Err(e);
        }
        self.state
            .groups
            .insert(group.to_string(), GroupState { dm_with: None });
        let own = self.state.user.clone();
        let mut add: Vec<&str> = vec![own.as_str()];
        add.extend(users.iter().filter(|u| **u != own));
        self.add_to(&mut g, group, &add)?;
        self.save()
    }

    /// Adds every device of `users` to `group`.
    pub fn add(&mut self, group: &str, users: &[&str]) -> anyhow::Result<()> {
        let mut g = self.load_group(group)?;
        self.add_to(&mut g, group, users)?;
        self.save()
    }

    fn add_to(&mut self, g: &mut MlsGroup, group: &str, users: &[&str]) -> anyhow::Result<()> {
        let present = group_members(g)?;
        let mut kps = Vec::new();
        for u in users {
            for kp in self.claim(u)? {
                let who = identity_of(kp.leaf_node().credential())?;
                if !present.contains(&who) {
                    kps.push(kp);
                }
            }
        }
        if kps.is_empty() {
            return Ok(());
        }
        let mut after = present.clone();
        for kp in &kps {
            after.push(identity_of(kp.leaf_node().credential())?);
        }
        after.sort();
        let (commit, welcome, _) = g
            .add_members(&self.provider, &self.signer, &kps)
            .map_err(|e| anyhow!("adding members: {e:?}"))?;
        self.post_commit(
            g,
            group,
            &commit,
            Some(&welcome.tls_serialize_detached()?),
            after,
        )
    }

    fn post_commit(
        &mut self,
        g: &mut MlsGroup,
        group: &str,
        commit: &MlsMessageOut,
        welcome: Option<&[u8]>,
        members: Vec<Member>,
    ) -> anyhow::Result<()> {
        let body = serde_json::to_value(CommitUpload {
            commit: Some(b64e(&commit.tls_serialize_detached()?)),
            welcome: welcome.map(b64e),
            members,
            epoch: g.epoch().as_u64() + 1,
        })?;
        let r = self.ds.post_json(
            &format!("/ds/v1/groups/{group}/commits"),
            Some(&self.state.token),
            &body,
        )?;
        if let Err(e) = r.ok("posting the commit", &[200]) {
            g.clear_pending_commit(self.provider.storage())
                .map_err(|e| anyhow!("{e:?}"))?;
            return Err(e);
        }
        g.merge_pending_commit(&self.provider)
            .map_err(|e| anyhow!("merging the commit: {e:?}"))?;
        Ok(())
    }

    /// Removes every device of `user` from `group`.
    pub fn remove(&mut self, group: &str, user: &str) -> anyhow::Result<()> {
        let mut g = self.load_group(group)?;
        let mut idx = Vec::new();
        let mut after = Vec::new();
        for m in g.members() {
            let who = identity_of(&m.credential)?;
            if who.user == user {
                idx.push(m.index);
            } else {
                after.push(who);
            }
        }
        ensure!(!idx.is_empty(), "{user} is not in group {group}");
        after.sort();
        let (commit, _, _) = g
            .remove_members(&self.provider, &self.signer, &idx)
            .map_err(|e| anyhow!("removing {user}: {e:?}"))?;
        self.post_commit(&mut g, group, &commit, None, after)?;
        self.save()
    }

    /// The 1:1 group with `user` (created on first use): a two-user group.
    pub fn direct(&mut self, user: &str) -> anyhow::Result<String> {
        if let Some((g, _)) = self
            .state
            .groups
            .iter()
            .find(|(_, s)| s.dm_with.as_deref() == Some(user))
        {
            return Ok(g.clone());
        }
        let mut pair = [self.state.user.as_str(), user];
        pair.sort();
        let group = format!("dm.{}.{}", pair[0], pair[1]);
        if !self.state.groups.contains_key(&group) {
            self.create_group(&group, &[user])?;
        }
        if let Some(s) = self.state.groups.get_mut(&group) {
            s.dm_with = Some(user.to_string());
        }
        self.save()?;
        Ok(group)
    }

    /// Sends `text` with `attachments` to `group`: franked, each image with
    /// a safety voucher, attachments sealed and uploaded as ciphertext.
    pub fn send(
        &mut self,
        group: &str,
        text: &str,
        attachments: &[Attachment],
    ) -> anyhow::Result<Sent> {
        let mut g = self.load_group(group)?;
        let device_key = self.device_key()?;
        let need_vouchers = self.state.pdata_policy.providers.len() >= 2;
        if need_vouchers && self.pdata.is_none() && attachments.iter().any(Attachment::is_media) {
            self.refresh_pdata()?;
        }
        let mut refs: Vec<AttachmentRef> = Vec::new();
        let mut vouchers = Vec::new();
        let (mut voucher_bytes, mut attachment_bytes) = (Vec::new(), Vec::new());
        let (mut voucher_micros, mut video_micros) = (Vec::new(), Vec::new());
        for a in attachments {
            if a.is_media()
                && let Some(p) = &self.pdata
            {
                let t = std::time::Instant::now();
                let account = DeviceAccount::from_bytes(&Zeroizing::new(hex::decode(
                    &self.state.voucher_account,
                )?))?;
                let mut seen = self.seen()?;
                let made = if a.media_type.starts_with("video/") {
                    video_vouchers(p, &account, &mut seen, &a.bytes)?
                } else {
                    vec![bulwark_client::voucher::voucher_for_image_seen(
                        p, &account, &mut seen, &a.bytes,
                    )?]
                };
                self.remember(&seen);
                ensure!(
                    vouchers.len() + made.len() <= MAX_VOUCHERS,
                    "a message carries at most {MAX_VOUCHERS} vouchers: send these attachments in several messages"
                );
                for v in made {
                    let bytes = v.to_bytes();
                    let sig = device_key.sign(&bulwark_psi::envelope::signing_input(
                        &self.state.user,
                        &self.state.device,
                        &bytes,
                    ));
                    voucher_bytes.push(bytes.len());
                    vouchers.push(SignedVoucher {
                        voucher: b64e(&bytes),
                        signature: hex::encode(sig.to_bytes()),
                    });
                }
                let micros = t.elapsed().as_micros() as u64;
                if a.media_type.starts_with("video/") {
                    video_micros.push(micros);
                } else {
                    voucher_micros.push(micros);
                }
            }
            let blob = random_id();
            let (r, ct) = bulwark_franking::attachment::seal(
                &a.bytes,
                &a.media_type,
                &blob,
                &mut rand::rngs::OsRng,
            );
            self.ds
                .call(
                    "PUT",
                    &format!("/ds/v1/attachments/{blob}"),
                    Some(&self.state.token),
                    Some(("application/octet-stream", &ct)),
                )?
                .ok("uploading an attachment", &[201])?;
            attachment_bytes.push(ct.len());
            refs.push(r);
        }
        let content = Content {
            body: text.as_bytes().to_vec(),
            attachments: refs,
        };
        content
            .check()
            .map_err(|e| anyhow!("message content: {}", e.0))?;
        let message_id = random_id();
        let info = MessageInfo::new(&self.state.user, group, &message_id);
        let franked = bulwark_client::franking::frank(&info, &content);
        g.set_aad(franked.tag.0.to_vec());
        let out = g
            .create_message(&self.provider, &self.signer, &franked.plaintext)
            .map_err(|e| anyhow!("encrypting: {e:?}"))?;
        let mls = out.tls_serialize_detached()?;
        let body = serde_json::to_value(MessageUpload {
            message_id: message_id.clone(),
            epoch: g.epoch().as_u64(),
            tag: hex::encode(franked.tag.0),
            mls: b64e(&mls),
            vouchers,
        })?;
        // The ratchet advanced: persist before the network call.
        self.save()?;
        let reply = self
            .ds
            .post_json(
                &format!("/ds/v1/groups/{group}/messages"),
                Some(&self.state.token),
                &body,
            )?
            .json("sending", &[200])?;
        let stamp: StampJson = serde_json::from_value(reply["stamp"].clone())?;
        Ok(Sent {
            message_id,
            group: group.into(),
            mls_bytes: mls.len(),
            voucher_bytes,
            voucher_micros,
            video_micros,
            attachment_bytes,
            stamp,
        })
    }

    fn seen(&self) -> anyhow::Result<SeenImages> {
        let mut hashes = Vec::new();
        for h in &self.state.seen {
            hashes.push(
                h.parse()
                    .map_err(|e| anyhow!("remembered image hash: {e:?}"))?,
            );
        }
        Ok(SeenImages::restore(self.state.seen_epoch, hashes))
    }

    fn remember(&mut self, seen: &SeenImages) {
        let (epoch, hashes) = seen.remembered();
        self.state.seen_epoch = epoch;
        self.state.seen = hashes.iter().map(|h| h.to_string()).collect();
    }

    /// Fetches this device's queue, processes welcomes, commits and
    /// messages in order, acknowledges them, and returns what happened.
    pub fn receive(&mut self) -> anyhow::Result<Received> {
        let reply = self
            .ds
            .call("GET", "/ds/v1/queue", Some(&self.state.token), None)?;
        reply.ok("reading the queue", &[200])?;
        let items: Vec<QueueItem> = serde_json::from_slice(&reply.body)?;
        let mut out = Received::default();
        let mut last = None;
        let mut joined_any = false;
        for it in items {
            last = Some(it.seq);
            let r = match it.kind.as_str() {
                "welcome" => self.on_welcome(&it).map(|g| {
                    joined_any = true;
                    out.joined.push(g)
                }),
                "commit" => self.on_commit(&it).map(|left| {
                    if left {
                        out.left.push(it.group.clone())
                    }
                }),
                "message" => self.on_message(&it).map(|m| {
                    self.state.inbox.push(m.clone());
                    out.messages.push(m)
                }),
                k => Err(anyhow!("unknown queue item kind {k:?}")),
            };
            if let Err(e) = r {
                out.dropped.push(Dropped {
                    group: it.group.clone(),
                    kind: it.kind.clone(),
                    message_id: it.message_id.clone(),
                    reason: format!("{e:#}"),
                });
            }
        }
        self.save()?;
        if let Some(upto) = last {
            self.ds
                .post_json(
                    "/ds/v1/queue/ack",
                    Some(&self.state.token),
                    &serde_json::json!({"upto": upto}),
                )?
                .ok("acknowledging", &[200])?;
        }
        if joined_any {
            self.upload_key_packages(out.joined.len())?;
        }
        Ok(out)
    }

    fn on_welcome(&mut self, it: &QueueItem) -> anyhow::Result<String> {
        let msg = MlsMessageIn::tls_deserialize_exact(b64d(&it.mls)?)
            .map_err(|e| anyhow!("welcome: {e:?}"))?;
        let MlsMessageBodyIn::Welcome(w) = msg.extract() else {
            bail!("not a welcome");
        };
        let g = StagedWelcome::new_from_welcome(&self.provider, &join_config(), w, None)
            .map_err(|e| anyhow!("welcome: {e:?}"))?
            .into_group(&self.provider)
            .map_err(|e| anyhow!("welcome: {e:?}"))?;
        let id = String::from_utf8(g.group_id().as_slice().to_vec())?;
        ensure!(id == it.group, "welcome for {id} delivered as {}", it.group);
        let users = group_users(&g)?;
        let dm_with = if id.starts_with("dm.") && users.len() == 2 {
            users.iter().find(|u| **u != self.state.user).cloned()
        } else {
            None
        };
        self.state.groups.insert(id.clone(), GroupState { dm_with });
        Ok(id)
    }

    /// Applies a commit; `true` when it removed this device.
    fn on_commit(&mut self, it: &QueueItem) -> anyhow::Result<bool> {
        let mut g = self.load_group(&it.group)?;
        let msg = MlsMessageIn::tls_deserialize_exact(b64d(&it.mls)?)
            .map_err(|e| anyhow!("commit: {e:?}"))?;
        let pm = msg
            .try_into_protocol_message()
            .map_err(|e| anyhow!("commit: {e:?}"))?;
        let processed = g
            .process_message(&self.provider, pm)
            .map_err(|e| anyhow!("commit: {e:?}"))?;
        match processed.into_content() {
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                g.merge_staged_commit(&self.provider, *staged)
                    .map_err(|e| anyhow!("merging: {e:?}"))?;
            }
            _ => bail!("not a commit"),
        }
        if !g.is_active() {
            self.state.groups.remove(&it.group);
            return Ok(true);
        }
        Ok(false)
    }

    fn on_message(&mut self, it: &QueueItem) -> anyhow::Result<Message> {
        let mut g = self.load_group(&it.group)?;
        let (Some(message_id), Some(tag_hex), Some(stamp)) = (&it.message_id, &it.tag, &it.stamp)
        else {
            bail!("a message without id, tag or stamp");
        };
        let msg = MlsMessageIn::tls_deserialize_exact(b64d(&it.mls)?)
            .map_err(|e| anyhow!("message: {e:?}"))?;
        let pm = msg
            .try_into_protocol_message()
            .map_err(|e| anyhow!("message: {e:?}"))?;
        let processed = g
            .process_message(&self.provider, pm)
            .map_err(|e| anyhow!("decrypting: {e:?}"))?;
        let sender = identity_of(processed.credential())?;
        let aad = processed.aad().to_vec();
        let epoch = processed.epoch().as_u64();
        let ProcessedMessageContent::ApplicationMessage(app) = processed.into_content() else {
            bail!("not an application message");
        };
        let plaintext = app.into_bytes();
        let mut tag = [0u8; 32];
        hex::decode_to_slice(tag_hex.as_bytes(), &mut tag).context("tag")?;
        ensure!(
            aad == tag,
            "the stamped tag is not the message's authenticated data"
        );
        ensure!(
            sender.user == stamp.sender && sender == it.from,
            "the MLS sender {}/{} is not who the delivery service says ({}/{}, stamped {})",
            sender.user,
            sender.device,
            it.from.user,
            it.from.device,
            stamp.sender
        );
        ensure!(
            stamp.epoch == epoch,
            "stamped epoch {} but the message is of epoch {epoch}",
            stamp.epoch
        );
        if epoch == g.epoch().as_u64() {
            ensure!(
                stamp.recipients == group_users(&g)?,
                "the stamp's recipients are not the group's users"
            );
        }
        ensure!(
            stamp.recipients.contains(&self.state.user),
            "this user is not among the stamp's recipients"
        );
        let checked = self.check(&plaintext, &tag, message_id, &it.group, stamp)?;
        let content = checked.content().clone();
        let dir = self.dir.join("attachments");
        let mut saved = Vec::new();
        for (i, a) in content.attachments.iter().enumerate() {
            let ct = self.download(&a.blob_id)?;
            let plain = bulwark_franking::attachment::open(a, &ct)
                .map_err(|e| anyhow!("attachment {i}: {e}"))?;
            std::fs::create_dir_all(&dir)?;
            let path = dir.join(format!("{message_id}-{i}"));
            write_private(&path, &plain)?;
            saved.push(SavedAttachment {
                media_type: a.media_type.clone(),
                size: a.size,
                path,
            });
        }
        Ok(Message {
            id: message_id.clone(),
            group: it.group.clone(),
            sender: sender.user,
            sender_device: sender.device,
            text: String::from_utf8_lossy(&content.body).into_owned(),
            attachments: saved,
            accepted_at: stamp.accepted_at,
            envelope: b64e(&plaintext),
            tag: tag_hex.clone(),
            stamp: stamp.clone(),
        })
    }

    /// The franking check of a decrypted envelope against a stamp.
    fn check(
        &self,
        plaintext: &[u8],
        tag: &[u8; 32],
        message_id: &str,
        group: &str,
        stamp: &StampJson,
    ) -> anyhow::Result<bulwark_client::franking::Received> {
        let mut mac = [0u8; 32];
        hex::decode_to_slice(stamp.mac.as_bytes(), &mut mac).context("stamp mac")?;
        let mut sig = [0u8; 64];
        hex::decode_to_slice(stamp.signature.as_bytes(), &mut sig).context("stamp signature")?;
        let mut vk = [0u8; 32];
        hex::decode_to_slice(self.state.franking_key.as_bytes(), &mut vk)?;
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&vk)?;
        let ctx = Context {
            info: MessageInfo::new(&stamp.sender, group, message_id),
            epoch: stamp.epoch,
            recipients: stamp.recipients.clone(),
            accepted_at: stamp.accepted_at,
            stamper: stamp.stamper.clone(),
        };
        bulwark_client::franking::receive(
            plaintext,
            &FrankingTag(*tag),
            Stamp {
                key_id: stamp.key_id,
                mac,
            },
            &ed25519_dalek::Signature::from_bytes(&sig),
            &vk,
            ctx,
        )
        .map_err(|e| anyhow!("franking: {e}"))
    }

    fn download(&self, blob: &str) -> anyhow::Result<Vec<u8>> {
        let r = self.ds.call(
            "GET",
            &format!("/ds/v1/attachments/{blob}"),
            Some(&self.state.token),
            None,
        )?;
        r.ok("downloading an attachment", &[200])?;
        Ok(r.body)
    }

    /// The JSON body of a report of received message `message_id`, with its
    /// attachments' ciphertexts, signed by this device.
    pub fn report_body(&self, message_id: &str, reason: Option<&str>) -> anyhow::Result<Vec<u8>> {
        let m = self
            .state
            .inbox
            .iter()
            .find(|m| m.id == message_id)
            .ok_or_else(|| anyhow!("no received message {message_id}"))?;
        let mut tag = [0u8; 32];
        hex::decode_to_slice(m.tag.as_bytes(), &mut tag)?;
        let received = self.check(&b64d(&m.envelope)?, &tag, &m.id, &m.group, &m.stamp)?;
        let mut cts = Vec::new();
        for (i, a) in received.content().attachments.iter().enumerate() {
            cts.push((i, self.download(&a.blob_id)?));
        }
        let key = self.device_key()?;
        Ok(bulwark_client::franking::report_with_attachments(
            &[(&received, cts)],
            reason,
            None,
            Some((&self.state.user, &self.state.device, &key)),
        ))
    }

    /// Reports received message `message_id` to the matcher service; returns
    /// its answer (`{"id", "status", ...}`).
    pub fn report(
        &self,
        message_id: &str,
        reason: Option<&str>,
    ) -> anyhow::Result<serde_json::Value> {
        let body = self.report_body(message_id, reason)?;
        self.matcher
            .call(
                "POST",
                "/v1/reports",
                Some(&self.state.matcher_key),
                Some(("application/json", &body)),
            )?
            .json("reporting", &[200, 201])
    }
}
