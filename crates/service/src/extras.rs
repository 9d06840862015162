//! Banked extra PDQ hashes ([`bulwark_pdq::MultiHash`]): the content region,
//! centred and corner crops and small rotations of a banked photo, stored
//! with their kind next to its plain PDQ signal and searched with the
//! "both sides" pairing rules (docs/DETECTION.md).
//!
//! Kept apart from the plain path: the `signals` table, the plain index
//! entries and every HMA export are unchanged; the extras live in their own
//! table (`pdq_extras`, migration key `extras_schema`) and in index entries
//! with their own id layout ([`entry_id`]), which the plain search skips.
//!
//! The *pdata variants* (`crop-1.5`, `scale-0.3`:
//! [`bulwark_pdq::KindSet::PDATA_VARIANTS`]) are stored in the same table but
//! never enter the index: no match compares them. They are read only by
//! `POST /v1/pdata/build` for the `expanded` profile ([`pdata_variants`]).

use std::collections::HashSet;

use bulwark_pdq::{HashKind, KindHash, KindSet, PdqHash};
use bulwark_store::Store;
use bulwark_store::catalog::{self as db, ExtraRow};

/// Marks an index entry as an extra hash.
pub const EXTRA_BIT: u64 = 1 << 63;
const KIND_SHIFT: u32 = 59;
const KIND_MASK: u64 = 0xf;
const BANK_SHIFT: u32 = 40;
/// Extras' ids hold 19 bits of bank id: banks with larger ids keep their
/// extras in the store but not in the index (plain matching is unaffected).
pub const MAX_EXTRA_BANK: i64 = (1 << 19) - 1;
const BANK_MASK: u64 = (1 << 19) - 1;
const CONTENT_MASK: u64 = (1 << 40) - 1;

fn kind_index(kind: HashKind) -> u64 {
    HashKind::ALL
        .iter()
        .position(|&k| k == kind)
        .map_or(0, |i| i as u64)
}

/// The index id of one extra hash: bit 63 set, the kind in bits 59..63, the
/// bank in bits 40..59, the content in bits 0..40 (the plain layout, in
/// `catalog`, never sets bit 63). `None` for a bank id too large to pack,
/// and for the pdata variants, which are not indexed.
pub fn entry_id(kind: HashKind, bank_id: i64, content_id: i64) -> Option<u64> {
    (bank_id <= MAX_EXTRA_BANK && kind != HashKind::Full && !kind.is_pdata_variant()).then(|| {
        EXTRA_BIT
            | (kind_index(kind) << KIND_SHIFT)
            | ((bank_id as u64 & BANK_MASK) << BANK_SHIFT)
            | (content_id as u64 & CONTENT_MASK)
    })
}

/// (kind, bank id, content id) of an extra's index id; `None` for a plain
/// entry.
pub fn unpack(id: u64) -> Option<(HashKind, i64, i64)> {
    if id & EXTRA_BIT == 0 {
        return None;
    }
    let kind = *HashKind::ALL.get(((id >> KIND_SHIFT) & KIND_MASK) as usize)?;
    Some((
        kind,
        ((id >> BANK_SHIFT) & BANK_MASK) as i64,
        (id & CONTENT_MASK) as i64,
    ))
}

/// Every index id an item's extras can have (to remove them all).
pub fn all_ids(bank_id: i64, content_id: i64) -> impl Iterator<Item = u64> {
    KindSet::ALL
        .iter()
        .filter_map(move |k| entry_id(k, bank_id, content_id))
}

/// The extras of `hashes` a bank stores: the configured kinds, at or above
/// the bank's quality floor (the floor its plain hash must meet too).
pub fn to_bank(hashes: &[KindHash], kinds: KindSet, min_quality: i64) -> Vec<KindHash> {
    hashes
        .iter()
        .filter(|k| kinds.contains(k.kind) && i64::from(k.quality) >= min_quality)
        .copied()
        .collect()
}

/// Stores a new item's extra hashes (in the transaction that adds it).
pub async fn insert(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    bank_id: i64,
    content_id: i64,
    extras: &[KindHash],
) -> Result<(), sqlx::Error> {
    let mut seen = HashSet::new();
    for e in extras.iter().filter(|e| seen.insert(e.kind)) {
        db::insert_extra(
            store,
            tx,
            bank_id,
            content_id,
            e.kind.as_str(),
            &e.hash.to_string(),
            i64::from(e.quality),
        )
        .await?;
    }
    Ok(())
}

/// A stored extra: (index id, hash), or `None` when its bank id cannot be
/// packed.
pub fn entry_of(r: &ExtraRow) -> anyhow::Result<Option<(u64, [u8; 32])>> {
    let kind: HashKind = r
        .kind
        .parse()
        .map_err(|e| anyhow::anyhow!("stored extra hash kind: {e}"))?;
    let hash: PdqHash = r
        .value
        .parse()
        .map_err(|e| anyhow::anyhow!("stored extra PDQ hash {:?}: {e}", r.value))?;
    Ok(entry_id(kind, r.bank_id, r.content_id).map(|id| (id, *hash.as_bytes())))
}

fn entries(rows: &[ExtraRow]) -> anyhow::Result<Vec<(u64, [u8; 32])>> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.extend(entry_of(r)?);
    }
    Ok(out)
}

/// Every stored extra as index entries (for a full load).
pub async fn load_all(store: &Store) -> anyhow::Result<Vec<(u64, [u8; 32])>> {
    entries(&db::all_extras(store, &unindexed()).await?)
}

/// The stored kinds that are never indexed (the pdata variants): not read
/// to build the index.
fn unindexed() -> Vec<&'static str> {
    KindSet::PDATA_VARIANTS
        .iter()
        .map(HashKind::as_str)
        .collect()
}

/// The stored extras of these items as index entries.
pub async fn load_of(store: &Store, ids: &[i64]) -> anyhow::Result<Vec<(u64, [u8; 32])>> {
    entries(&db::extras_of_contents(store, ids, &unindexed()).await?)
}

/// One stored pdata variant of enabled content in an enabled bank with a
/// provider, with its content's plain PDQ hash.
#[derive(Debug, Clone)]
pub struct VariantHolding {
    /// The content holding it.
    pub content_id: i64,
    /// The content's plain PDQ hash (hex).
    pub plain: String,
    /// The variant's kind.
    pub kind: HashKind,
    /// The variant hash.
    pub hash: PdqHash,
    /// The bank's provider.
    pub provider: String,
}

/// Every stored pdata variant ([`KindSet::PDATA_VARIANTS`]) that enabled
/// content in enabled banks with a provider holds, with the content's plain
/// hash: what an `expanded` release adds to the entries
/// (`crate::vouchers::build`).
pub async fn pdata_variants(store: &Store) -> anyhow::Result<Vec<VariantHolding>> {
    let kinds: Vec<&str> = KindSet::PDATA_VARIANTS.iter().map(|k| k.as_str()).collect();
    db::pdata_variant_rows(store, &kinds)
        .await?
        .into_iter()
        .map(|r| {
            Ok(VariantHolding {
                content_id: r.content_id,
                kind: r
                    .kind
                    .parse()
                    .map_err(|e| anyhow::anyhow!("stored extra hash kind: {e}"))?,
                hash: r
                    .value
                    .parse()
                    .map_err(|e| anyhow::anyhow!("stored extra PDQ hash {:?}: {e}", r.value))?,
                plain: r.plain,
                provider: r.provider,
            })
        })
        .collect()
}

/// The stored extras of one item (for its JSON): (kind, hex), by kind.
pub async fn of_content(
    store: &Store,
    content_id: i64,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    db::extras_of(store, content_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_ids_round_trip_and_never_look_plain() {
        for k in KindSet::ALL.iter() {
            let id = entry_id(k, MAX_EXTRA_BANK, (1 << 40) - 1).expect("packs");
            assert_eq!(unpack(id), Some((k, MAX_EXTRA_BANK, (1 << 40) - 1)));
            let id = entry_id(k, 3, 12345).expect("packs");
            assert_eq!(unpack(id), Some((k, 3, 12345)));
            assert_ne!(id & EXTRA_BIT, 0);
        }
        assert_eq!(entry_id(HashKind::Region, MAX_EXTRA_BANK + 1, 1), None);
        assert_eq!(entry_id(HashKind::Full, 1, 1), None);
        for k in KindSet::PDATA_VARIANTS.iter() {
            assert_eq!(entry_id(k, 1, 1), None, "{k} is never indexed");
        }
        // The plain layout (frame bit 62, bank bits 40..62) never sets bit 63.
        let plain = crate::catalog::entry_id(true, (1 << 22) - 1, (1 << 40) - 1);
        assert_eq!(unpack(plain), None);
        assert_eq!(all_ids(1, 2).count(), 9);
        let ids: HashSet<u64> = all_ids(1, 2).collect();
        assert_eq!(ids.len(), 9);
    }
}
