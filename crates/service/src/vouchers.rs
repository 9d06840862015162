//! Private matching: building and serving pdata releases, taking safety
//! vouchers, and opening an account's vouchers only above the threshold.
//!
//! - [`build`]: a new release from the PDQ hashes that banks of at least
//!   `min_providers` independent providers hold; it is published once the
//!   providers sign its root;
//! - [`Releases::current`]: the newest published release, re-read from the
//!   store every two seconds so replicas follow a new one;
//! - [`submit`]: a voucher signed by an enrolled device; after the
//!   signature, rate, shape and root checks, which depend on the bytes
//!   alone, every voucher is queued alike: nothing is opened on the request
//!   path;
//! - [`process_pending`] (the background [`spawn_worker`]): ingests queued
//!   vouchers into the account's state for that release (one state per
//!   account and release: the release is the epoch), opens states above the
//!   threshold, and flags an account only when at least one real match
//!   decrypts. A flag is sticky: only a reviewer clears it
//!   ([`clear_account`], audited);
//! - [`account_matches`]: nothing at or below the threshold — no count, no
//!   hint — and the opened matches above it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulwark_pdq::PdqHash;
use bulwark_psi::{AccountState, Params, Pdata, Rejection, Root, ServerKeys, ServerTable, Voucher};
use bulwark_store::{self as db, Store, psi};
use serde::Serialize;

use crate::devices;
use crate::error::{Error, Kind, Result};
use crate::secrets::Kek;

/// The `kek` purpose of the sealed PSI server keys.
const KEYS_PURPOSE: &str = "psi_server_keys";

/// One published release, as this node serves it.
pub struct Release {
    /// Its id.
    pub id: i64,
    /// Its root.
    pub root: Root,
    /// The published bytes.
    pub bytes: Vec<u8>,
    /// The parsed pdata.
    pub pdata: Pdata,
    table: ServerTable,
    /// How many banked hashes it holds.
    pub entry_count: i64,
    /// When it was built (ms).
    pub created_at: i64,
}

/// The current release, re-checked against the store every two seconds so
/// replicas follow a new build; the voucher intake limits; the worker's
/// wake-up.
#[derive(Default)]
pub struct Releases {
    current: Mutex<Option<(Arc<Release>, Instant)>>,
    limits: RateLimits,
    wake: tokio::sync::Notify,
}

impl Releases {
    /// Forgets the cached release: the next request reads the store.
    pub fn clear_cache(&self) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The newest published release, if any.
    pub async fn current(&self, store: &Store) -> Result<Option<Arc<Release>>> {
        if let Some((r, at)) = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            && at.elapsed() < Duration::from_secs(2)
        {
            return Ok(Some(Arc::clone(r)));
        }
        let Some(latest) = psi::latest_published_release(store).await? else {
            return Ok(None);
        };
        let cached = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(r, _)| Arc::clone(r));
        let release = match cached {
            Some(r) if r.id == latest => r,
            _ => Arc::new(load_release(psi::release(store, latest).await?).await?),
        };
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Arc::clone(&release), Instant::now()));
        Ok(Some(release))
    }
}

/// Parses a stored release (off the async runtime: the server table is
/// built from every entry).
async fn load_release(row: psi::ReleaseRow) -> Result<Release> {
    let root: Root = row.root.parse().map_err(Error::internal)?;
    let entries = decode_entries(&row.entries).map_err(Error::internal)?;
    let bytes = row.pdata;
    let (pdata, table, bytes) = tokio::task::spawn_blocking(move || {
        let pdata = Pdata::from_bytes(&bytes, &root)?;
        let table = ServerTable::new(&pdata, &entries);
        Ok::<_, bulwark_psi::PdataError>((pdata, table, bytes))
    })
    .await
    .map_err(Error::internal)?
    .map_err(Error::internal)?;
    Ok(Release {
        id: row.id,
        root,
        bytes,
        pdata,
        table,
        entry_count: row.entry_count,
        created_at: row.created_at,
    })
}

/// The PSI server keys, sealed in the store under the key-encryption key;
/// created on first use when `create` (another replica may win the race:
/// what is stored is used).
pub async fn server_keys(store: &Store, kek: &Kek, create: bool) -> Result<Option<ServerKeys>> {
    if let Some(stored) = psi::server_keys(store).await? {
        let bytes = kek.open(KEYS_PURPOSE, &stored).map_err(Error::internal)?;
        return Ok(Some(
            ServerKeys::from_bytes(&bytes).map_err(Error::internal)?,
        ));
    }
    if !create {
        return Ok(None);
    }
    let keys = ServerKeys::generate(&mut rand::rngs::OsRng);
    psi::insert_server_keys(store, &kek.seal(KEYS_PURPOSE, keys.to_bytes().as_slice())).await?;
    Box::pin(server_keys(store, kek, false)).await
}

/// The server's entries as stored: 8-byte big-endian id, 32-byte hash.
fn encode_entries(e: &[(u64, PdqHash)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(e.len() * 40);
    for (id, h) in e {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(h.as_bytes());
    }
    out
}

fn decode_entries(b: &[u8]) -> std::result::Result<Vec<(u64, PdqHash)>, String> {
    if !b.len().is_multiple_of(40) {
        return Err(format!(
            "stored pdata entries: {} bytes is not a multiple of 40",
            b.len()
        ));
    }
    Ok(b.chunks_exact(40)
        .map(|c| {
            let mut id = [0u8; 8];
            id.copy_from_slice(&c[..8]);
            let mut h = [0u8; 32];
            h.copy_from_slice(&c[8..]);
            (u64::from_be_bytes(id), PdqHash::from_bytes(h))
        })
        .collect())
}

/// What a new release is built with (all optional).
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// `default` (6 tables, 2 must agree), `compact` (3 tables, any one),
    /// `multiprobe` (6 tables, any one, 5 probes per table) or `expanded`
    /// (multiprobe's vouchers at 44 bits per table, with the banked images'
    /// pdata variants in every table: see [`build`]).
    pub profile: Option<String>,
    /// Independent providers a hash must come from and that must sign the
    /// root (default 2; less than 2 is refused).
    pub min_providers: Option<usize>,
    /// Override the threshold t (testing and small deployments; devices
    /// refuse t < 30 under the default policy).
    pub threshold: Option<u16>,
}

/// A release's parameters, as published and audited.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseParams {
    /// Tables.
    pub tables: u16,
    /// Tables that must agree.
    pub min_tables: u16,
    /// Sub-key bits per table.
    pub bits_per_table: u8,
    /// Probes per table.
    pub probes: u8,
    /// The threshold t.
    pub threshold: u16,
    /// Synthetic vouchers per account and epoch, at most.
    pub max_synthetic: u16,
    /// How often a voucher is synthetic.
    pub synthetic_probability: f64,
    /// The match radius.
    pub radius: u16,
    /// Derivative bytes a voucher carries.
    pub derivative_bytes: u16,
    /// Providers each hash and the root need.
    pub min_providers: usize,
    /// The epoch.
    pub epoch: i64,
}

/// The bank-side variants an `expanded` release holds ([`build`]).
#[derive(Debug, Clone, Default, Serialize)]
pub struct VariantCounts {
    /// Variant hashes in the release (besides the entries).
    pub hashes: usize,
    /// Entries with at least one variant.
    pub entries_with: usize,
    /// Entries with none: content banked from hash lists (no pixels to
    /// compute them from), banked before the variants were stored or with
    /// `extra_hashes` leaving them out, or whose variants fewer than
    /// `min_providers` providers hold. Such an entry is in the release with
    /// its plain hash only: crops and small copies of it open as under the
    /// `multiprobe` profile (less often, at 44 bits).
    pub entries_without: usize,
}

/// Banked hashes of different content within the radius of each other
/// ([`build`]): with probing profiles a copy of one image opens two pairs of
/// a table, a signature synthetic vouchers do not imitate.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NearDuplicates {
    /// The radius searched (the release's).
    pub radius: u16,
    /// Distinct pairs of content ids with hashes (entries or variants)
    /// within it.
    pub pairs: usize,
    /// Up to 10 of them: (content id, content id, distance), closest first.
    pub sample: Vec<(i64, i64, u32)>,
}

/// A release just built.
#[derive(Debug, Clone)]
pub struct Built {
    /// Its id.
    pub release: i64,
    /// Its root.
    pub root: String,
    /// Banked hashes in it.
    pub entries: usize,
    /// Its size.
    pub bytes: usize,
    /// Its parameters.
    pub params: ReleaseParams,
    /// How long building took.
    pub build_seconds: f64,
    /// The `expanded` profile's variants; `None` for the other profiles.
    pub variants: Option<VariantCounts>,
    /// Near-duplicate content in the release.
    pub near_duplicates: NearDuplicates,
    /// What an admin should know before asking providers to sign.
    pub warnings: Vec<String>,
}

/// Pairs of different content among `hashes` (content id, hash) within
/// `radius`, found with the exact Hamming index: (pairs, up to 10 closest).
fn near_duplicates(hashes: &[(u64, PdqHash)], radius: u16) -> NearDuplicates {
    let codes: Vec<(u64, [u8; 32])> = hashes
        .iter()
        .enumerate()
        .map(|(i, (_, h))| (i as u64, *h.as_bytes()))
        .collect();
    let index = bulwark_index::Index::build(&codes);
    let queries: Vec<[u8; 32]> = codes.iter().map(|c| c.1).collect();
    let mut pairs: HashMap<(i64, i64), u32> = HashMap::new();
    for (i, found) in index
        .search_batch(&queries, u32::from(radius))
        .into_iter()
        .enumerate()
    {
        let a = hashes[i].0 as i64;
        for m in found {
            let b = hashes[m.id as usize].0 as i64;
            if a < b {
                let d = pairs.entry((a, b)).or_insert(m.distance);
                *d = (*d).min(m.distance);
            }
        }
    }
    let mut sample: Vec<(i64, i64, u32)> = pairs.iter().map(|(&(a, b), &d)| (a, b, d)).collect();
    sample.sort_by_key(|&(a, b, d)| (d, a, b));
    sample.truncate(10);
    NearDuplicates {
        radius,
        pairs: pairs.len(),
        sample,
    }
}

/// The pdata variants of `entries` (plain hash → entry id) that at least
/// `min_providers` distinct providers hold, each under the entry id of its
/// content's plain hash (the lowest, when several contents hold it), skipping
/// variants equal to an entry's hash; and the counts.
fn variants_of(
    holdings: &[crate::extras::VariantHolding],
    entries: &HashMap<String, i64>,
    min_providers: usize,
) -> (Vec<(u64, PdqHash)>, VariantCounts) {
    let mut by_hash: HashMap<PdqHash, (std::collections::HashSet<&str>, i64)> = HashMap::new();
    for v in holdings {
        let Some(&id) = entries.get(&v.plain) else {
            continue;
        };
        let e = by_hash
            .entry(v.hash)
            .or_insert_with(|| (Default::default(), id));
        e.0.insert(&v.provider);
        e.1 = e.1.min(id);
    }
    let plain: std::collections::HashSet<&String> = entries.keys().collect();
    let mut out: Vec<(u64, PdqHash)> = by_hash
        .into_iter()
        .filter(|(h, (providers, _))| {
            providers.len() >= min_providers && !plain.contains(&h.to_string())
        })
        .map(|(h, (_, id))| (id as u64, h))
        .collect();
    out.sort_by_key(|&(id, h)| (id, *h.as_bytes()));
    let with: std::collections::HashSet<u64> = out.iter().map(|v| v.0).collect();
    let counts = VariantCounts {
        hashes: out.len(),
        entries_with: with.len(),
        entries_without: entries.len() - with.len(),
    };
    (out, counts)
}

/// Builds a new release (a new epoch) from the PDQ hashes that banks of at
/// least `min_providers` distinct providers hold (enabled banks and
/// content); an entry's id is the lowest content id holding it. Audited as
/// `pdata.build` by `actor`. It is served once providers sign its root.
///
/// The `expanded` profile also puts, in every table, the pdata variants
/// (`crop-1.5`, `scale-0.3`) stored for photos banked from media
/// ([`crate::extras::pdata_variants`]), with
/// [`Pdata::build_with_variants`]: a variant enters under its image's entry
/// id when its image's plain hash is an entry and at least `min_providers`
/// distinct providers hold that variant hash — the same rule as for plain
/// hashes, so one provider cannot add a hash through a variant. Content
/// banked from hash lists has no variants and enters with its plain hash
/// only ([`VariantCounts::entries_without`]). The server's stored entries
/// hold the variants too, so an opened voucher near a variant names its
/// image's content.
///
/// Every build looks for near-duplicates: hashes (entries and variants) of
/// different content within the release's radius ([`NearDuplicates`]);
/// with a probing profile each gives a warning.
pub async fn build(store: &Store, kek: &Kek, actor: &str, opts: BuildOptions) -> Result<Built> {
    let expanded = opts.profile.as_deref() == Some("expanded");
    let mut params = match opts.profile.as_deref() {
        None | Some("default") => Params::default(),
        Some("compact") => Params::compact(),
        Some("multiprobe") => Params::multiprobe(),
        Some("expanded") => Params::expanded(),
        Some(p) => {
            return Err(Error::bad_request(format!(
                "unknown profile {p:?} (default, compact, multiprobe or expanded)"
            )));
        }
    };
    if let Some(t) = opts.threshold {
        params.threshold = t;
    }
    params
        .validate()
        .map_err(|e| Error::bad_request(e.to_string()))?;
    let min_providers = opts.min_providers.unwrap_or(2);
    if !(2..=16).contains(&min_providers) {
        return Err(Error::bad_request(
            "min_providers must be 2..=16: devices only use hashes, and roots, that at least two independent providers vouch for",
        ));
    }
    let mut by_hash: HashMap<String, (usize, i64)> = HashMap::new();
    for h in psi::provider_holdings(store).await? {
        let e = by_hash.entry(h.value).or_insert((0, h.content_id));
        e.0 += 1;
        e.1 = e.1.min(h.content_id);
    }
    let mut entries: Vec<(u64, PdqHash)> = by_hash
        .into_iter()
        .filter(|(_, (n, _))| *n >= min_providers)
        .map(|(v, (_, cid))| v.parse::<PdqHash>().map(|h| (cid as u64, h)))
        .collect::<std::result::Result<_, _>>()
        .map_err(Error::internal)?;
    entries.sort_by_key(|e| e.0);
    if entries.is_empty() {
        return Err(Error::bad_request(format!(
            "no PDQ hash is held by banks of {min_providers} or more distinct providers (set each bank's `provider`)"
        )));
    }
    let (variants, variant_counts) = if expanded {
        let ids: HashMap<String, i64> = entries
            .iter()
            .map(|(id, h)| (h.to_string(), *id as i64))
            .collect();
        let holdings = crate::extras::pdata_variants(store)
            .await
            .map_err(Error::internal)?;
        let (v, c) = variants_of(&holdings, &ids, min_providers);
        (v, Some(c))
    } else {
        (Vec::new(), None)
    };
    let keys = server_keys(store, kek, true)
        .await?
        .ok_or_else(|| Error::internal("no PSI keys"))?;
    let n = entries.len();
    let started = Instant::now();
    // The epoch: one per release, so every device secret is derived anew.
    let epoch = psi::next_epoch(store).await?;
    let release = bulwark_psi::Release {
        epoch: epoch as u64,
        min_providers: min_providers as u16,
    };
    let (pdata, entries, near) = tokio::task::spawn_blocking(move || {
        let tables = if variants.is_empty() {
            0
        } else {
            params.tables
        };
        let (pdata, _) = Pdata::build_with_variants(
            &keys,
            &params,
            release,
            &entries,
            &variants,
            tables,
            &mut rand::rngs::OsRng,
        )?;
        // The server's entries: the bank's hashes, then the variants (every
        // table holds them, so `ServerTable::new` over both is the build's).
        let mut all = entries;
        all.extend(variants);
        let near = near_duplicates(&all, params.radius);
        Ok::<_, bulwark_psi::PdataError>((pdata, all, near))
    })
    .await
    .map_err(Error::internal)?
    .map_err(|e| Error::bad_request(e.to_string()))?;
    let mut warnings = Vec::new();
    if let Some(c) = &variant_counts
        && c.entries_without > 0
    {
        warnings.push(format!(
            "{} of {n} entries have no bank-side variants (banked from hash lists, before the \
             variants were stored, with extra_hashes leaving them out, or their variants are \
             held by fewer than {min_providers} providers): they are in the release with their \
             plain hash only",
            c.entries_without
        ));
    }
    if near.pairs > 0 && params.probes > 1 {
        warnings.push(format!(
            "{} pairs of different banked content are within {} bits of each other (e.g. content \
             {}): a copy of one can open two pairs of a table, which synthetic vouchers do not \
             imitate; consider removing the duplicates",
            near.pairs,
            near.radius,
            near.sample
                .iter()
                .map(|(a, b, _)| format!("{a} and {b}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let root = pdata.root().to_string();
    let params = ReleaseParams {
        tables: params.tables,
        min_tables: params.min_tables,
        bits_per_table: params.bits_per_table,
        probes: params.probes,
        threshold: params.threshold,
        max_synthetic: params.max_synthetic,
        synthetic_probability: params.synthetic_probability,
        radius: params.radius,
        derivative_bytes: params.derivative_bytes,
        min_providers,
        epoch,
    };
    let params_json = serde_json::to_value(&params).map_err(Error::internal)?;
    let mut tx = store.begin().await?;
    let id = psi::insert_release(
        store,
        &mut tx,
        &psi::NewRelease {
            root: &root,
            params: &params_json.to_string(),
            pdata: &pdata.to_bytes(),
            entries: &encode_entries(&entries),
            entry_count: n as i64,
            created_by: actor,
            epoch,
            min_providers: min_providers as i64,
        },
    )
    .await?;
    db::audit(
        store,
        &mut tx,
        actor,
        "pdata.build",
        None,
        None,
        serde_json::json!({"release": id, "root": root, "entries": n, "params": params_json,
            "variants": variant_counts, "near_duplicate_pairs": near.pairs}),
    )
    .await?;
    tx.commit().await?;
    Ok(Built {
        release: id,
        root,
        entries: n,
        bytes: pdata.byte_len(),
        params,
        build_seconds: started.elapsed().as_secs_f64(),
        variants: variant_counts,
        near_duplicates: near,
        warnings,
    })
}

/// Token buckets for voucher intake, per device and per relaying key.
#[derive(Default)]
pub struct RateLimits {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimits {
    /// Takes one token from `key`'s bucket (`per_minute` capacity, refilled
    /// evenly); false when empty.
    fn take(&self, key: &str, per_minute: u32) -> bool {
        let cap = f64::from(per_minute.max(1));
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if b.len() > 100_000 {
            b.retain(|_, (_, at)| at.elapsed() < Duration::from_secs(120));
        }
        let now = Instant::now();
        let (tokens, at) = b.entry(key.to_string()).or_insert((cap, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * cap / 60.0).min(cap);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Voucher intake limits (the service's settings).
#[derive(Debug, Clone, Copy)]
pub struct IntakeLimits {
    /// Vouchers per device and minute.
    pub per_device_per_minute: u32,
    /// Vouchers per relaying API key and minute.
    pub per_key_per_minute: u32,
}

/// A voucher as a device (or a key relaying for it) sends it.
#[derive(Debug, Clone, Copy)]
pub struct Submission<'a> {
    /// The account.
    pub account: &'a str,
    /// The device.
    pub device: &'a str,
    /// The voucher's bytes.
    pub voucher: &'a [u8],
    /// Ed25519 over `bulwark_psi::envelope::signing_input`, hex.
    pub signature: &'a str,
    /// The API key that sent it.
    pub key_id: &'a str,
}

fn too_many(what: &str) -> Error {
    Error::new(
        Kind::RateLimited,
        "rate_limited",
        format!("too many vouchers from this {what}; slow down"),
    )
}

/// Takes a voucher: checks the enrolled device's signature, the intake
/// limits, and the voucher's shape against the current release — all from
/// the bytes alone — then queues it. Every voucher that passes gets the same
/// answer, whatever opening it later shows.
pub async fn submit(
    store: &Store,
    releases: &Releases,
    limits: IntakeLimits,
    v: Submission<'_>,
) -> Result<()> {
    devices::check_id("account", v.account)?;
    devices::check_id("device", v.device)?;
    // Who: an enrolled device's signature, before anything else is looked at.
    let forbidden = |m: &str| Error::new(Kind::Forbidden, "bad_signature", m);
    let public = devices::public_key(store, v.account, v.device)
        .await?
        .ok_or_else(|| forbidden("the device is not enrolled for this account (or was revoked)"))?;
    let sig = hex::decode(v.signature)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| ed25519_dalek::Signature::from_bytes(&b))
        .ok_or_else(|| Error::bad_request("signature must be 128 hex digits"))?;
    public
        .verify_strict(
            &bulwark_psi::envelope::signing_input(v.account, v.device, v.voucher),
            &sig,
        )
        .map_err(|_| forbidden("the voucher's signature does not verify with the device's key"))?;
    if !releases.limits.take(
        &format!("d\u{0}{}\u{0}{}", v.account, v.device),
        limits.per_device_per_minute,
    ) {
        return Err(too_many("device"));
    }
    if !releases
        .limits
        .take(&format!("k\u{0}{}", v.key_id), limits.per_key_per_minute)
    {
        return Err(too_many("key"));
    }
    // Form: from the bytes and the published pdata alone.
    let voucher = Voucher::from_bytes(v.voucher)
        .map_err(|e| Error::new(Kind::BadRequest, "bad_voucher", e.to_string()))?;
    let release = releases
        .current(store)
        .await?
        .ok_or_else(|| Error::not_found("no pdata release yet"))?;
    match bulwark_psi::envelope::check_shape(&voucher, &release.pdata) {
        Ok(()) => {}
        Err(Rejection::WrongPdata) => {
            return Err(Error::new(
                Kind::Conflict,
                "stale_pdata",
                format!(
                    "the voucher was made against another pdata; fetch /v1/pdata (root {})",
                    release.root
                ),
            ));
        }
        Err(e) => return Err(Error::new(Kind::BadRequest, "bad_voucher", e.to_string())),
    }
    // Queued: whatever happens when it is opened, the answer is this one.
    psi::queue_voucher(store, v.account, v.device, release.id, v.voucher).await?;
    releases.wake.notify_one();
    Ok(())
}

/// Ingests queued vouchers (up to `batch`), opening and flagging accounts
/// above the threshold. Returns how many queued vouchers it took. Run by
/// the background worker; tests call it to drain the queue.
pub async fn process_pending(
    store: &Store,
    kek: &Kek,
    releases: &Releases,
    batch: i64,
) -> Result<usize> {
    let queued = psi::pending(store, batch).await?;
    if queued.is_empty() {
        return Ok(0);
    }
    let keys = server_keys(store, kek, false)
        .await?
        .ok_or_else(|| Error::internal("no PSI keys"))?;
    let keys = Arc::new(keys);
    let mut n = 0;
    for q in queued {
        let release = releases.current(store).await?;
        let mut tx = store.begin().await?;
        let took = psi::take_pending(store, &mut tx, q.id).await?;
        n += 1;
        // Another replica took it, or it belongs to a release no longer current.
        let Some(release) = release.filter(|r| took && r.id == q.release_id) else {
            tx.commit().await?;
            continue;
        };
        let st =
            match psi::account_state_for_update(store, &mut tx, &q.account, q.release_id).await? {
                Some(bytes) => AccountState::from_bytes(&bytes).map_err(Error::internal)?,
                None => AccountState::new(),
            };
        let params = *release.pdata.params();
        if st.len() >= params.max_entries_per_epoch() {
            tracing::debug!("account state at its cap; voucher dropped");
            tx.commit().await?;
            continue;
        }
        let (k, r2, bytes) = (Arc::clone(&keys), Arc::clone(&release), q.voucher);
        let (result, st, opened) = tokio::task::spawn_blocking(move || {
            let mut st = st;
            let Ok(voucher) = Voucher::from_bytes(&bytes) else {
                return (Err(Rejection::Malformed("stored voucher")), st, None);
            };
            let res = st.ingest(&k, &r2.pdata, &voucher);
            let opened = if res.is_ok() && st.len() > usize::from(r2.pdata.params().threshold) {
                st.open(&r2.pdata, &r2.table)
            } else {
                None
            };
            (res, st, opened)
        })
        .await
        .map_err(Error::internal)?;
        if let Err(e) = result {
            tracing::debug!("queued voucher refused: {e}");
            tx.commit().await?;
            continue;
        }
        psi::save_account_state(
            store,
            &mut tx,
            &q.account,
            q.release_id,
            &st.to_bytes(),
            st.len() as i64,
        )
        .await?;
        // Flag only on a real match that decrypted; never unflag here.
        if let Some(opened) = opened.filter(|o| !o.is_empty()) {
            let rows: Vec<psi::Opened> = opened
                .iter()
                .map(|o| psi::Opened {
                    content_id: o.content_id as i64,
                    distance: o.distance as i64,
                    hash: o.hash.to_string(),
                    derivative: o.derivative.clone(),
                })
                .collect();
            psi::flag_with_matches(store, &mut tx, &q.account, q.release_id, &rows).await?;
        }
        tx.commit().await?;
    }
    Ok(n)
}

/// Runs [`process_pending`] whenever vouchers are queued (and every second,
/// for vouchers queued by other replicas).
pub fn spawn_worker(
    store: Store,
    kek: Arc<Kek>,
    releases: Arc<Releases>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match process_pending(&store, &kek, &releases, 64).await {
                Ok(64) => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!("voucher worker: {}", e.message),
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), releases.wake.notified()).await;
        }
    })
}

/// Unflags an account: its opened vouchers and epoch states are deleted and
/// the clearing is audited, in one transaction. The one way to clear, for
/// the API and the reviewer console alike.
pub async fn clear_account(
    store: &Store,
    actor: &str,
    account: &str,
    note: Option<String>,
) -> Result<()> {
    if note.as_ref().is_some_and(|n| n.len() > 4096) {
        return Err(Error::bad_request("note is at most 4096 bytes"));
    }
    let mut tx = store.begin().await?;
    if !psi::clear_account(store, &mut tx, account, actor).await? {
        return Err(Error::not_found("no flagged account with that id"));
    }
    db::audit(
        store,
        &mut tx,
        actor,
        "account.clear",
        None,
        None,
        serde_json::json!({"account": account, "note": note}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A flagged account's opened matches, closest first; `None` when it is not
/// flagged — the same for an unknown account, one with no matches, and one
/// with any number of matches at or below the threshold.
pub async fn account_matches(
    store: &Store,
    account: &str,
) -> Result<Option<Vec<psi::OpenedMatch>>> {
    if !psi::is_flagged(store, account).await? {
        return Ok(None);
    }
    Ok(Some(psi::opened_matches(store, account).await?))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bulwark_pdq::PdqHash;

    use super::RateLimits;

    #[test]
    fn a_device_gets_its_burst_then_is_refused() {
        let l = RateLimits::default();
        let granted = (0..100).filter(|_| l.take("d\0alice\0phone", 10)).count();
        assert_eq!(
            granted, 10,
            "a burst of the per-minute budget, then refusals"
        );
        // Another device has its own bucket.
        assert!(l.take("d\0bob\0phone", 10));
    }

    fn flipped(h: &PdqHash, bits: std::ops::Range<usize>) -> PdqHash {
        let mut b = *h.as_bytes();
        for i in bits {
            b[i / 8] ^= 1 << (i % 8);
        }
        PdqHash::from_bytes(b)
    }

    /// Pairs of different content within the radius, counted once per pair
    /// of content (however many of their hashes are near), closest first;
    /// hashes of one content never pair.
    #[test]
    fn near_duplicates_count_pairs_of_different_content() {
        let a = PdqHash::from_bytes([0x5a; 32]);
        let b = PdqHash::from_bytes([0xc3; 32]);
        let hashes = [
            (1, a),
            (1, flipped(&a, 0..20)),    // a's variant: same content
            (2, flipped(&a, 100..131)), // 31 bits from a: a pair
            (2, flipped(&a, 0..25)),    // and 5 from a's variant: still one pair
            (3, flipped(&a, 100..132)), // 32 from a, 1 from content 2
            (4, b),
        ];
        let nd = super::near_duplicates(&hashes, 31);
        assert_eq!(nd.pairs, 2, "{nd:?}");
        assert_eq!(nd.sample, vec![(2, 3, 1), (1, 2, 5)]);
        assert_eq!(super::near_duplicates(&hashes[..2], 31).pairs, 0);
    }

    /// A variant enters under its image's entry id only when enough
    /// providers hold it; entries without one are counted.
    #[test]
    fn variants_need_as_many_providers_as_entries() {
        use crate::extras::VariantHolding;
        use bulwark_pdq::HashKind;
        let (p1, p2) = (PdqHash::from_bytes([1; 32]), PdqHash::from_bytes([2; 32]));
        let (v1, v2) = (PdqHash::from_bytes([3; 32]), PdqHash::from_bytes([4; 32]));
        let held = |cid: i64, plain: &PdqHash, hash: PdqHash, provider: &str| VariantHolding {
            content_id: cid,
            plain: plain.to_string(),
            kind: HashKind::Crop15,
            hash,
            provider: provider.into(),
        };
        let holdings = [
            held(10, &p1, v1, "org-a"),
            held(11, &p1, v1, "org-b"),
            held(12, &p2, v2, "org-a"), // one provider only
            held(13, &p2, p1, "org-a"), // equal to an entry's hash
            held(14, &p2, p1, "org-b"),
            held(15, &PdqHash::from_bytes([9; 32]), v2, "org-b"), // not an entry
        ];
        let entries: HashMap<String, i64> = [(p1.to_string(), 10), (p2.to_string(), 12)].into();
        let (v, c) = super::variants_of(&holdings, &entries, 2);
        assert_eq!(v, vec![(10, v1)]);
        assert_eq!((c.hashes, c.entries_with, c.entries_without), (1, 1, 1));
        let (v, _) = super::variants_of(&holdings, &entries, 3);
        assert!(v.is_empty());
    }
}
