//! Private matching's rows: pdata releases, the PSI server keys (sealed),
//! queued vouchers, per-release account states, flags and opened matches.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Backend, Store};

/// The `meta` key of the sealed PSI server keys.
const SERVER_KEYS: &str = "psi_server_keys";

/// The sealed PSI server keys, if any were created.
pub async fn server_keys(store: &Store) -> Result<Option<String>, sqlx::Error> {
    crate::meta(store, SERVER_KEYS).await
}

/// Stores sealed PSI server keys unless some are stored already (another
/// replica won the race); read them back with [`server_keys`].
pub async fn insert_server_keys(store: &Store, sealed: &str) -> Result<(), sqlx::Error> {
    crate::insert_meta_once(store, SERVER_KEYS, sealed).await
}

/// A stored pdata release.
#[derive(Debug, Clone)]
pub struct ReleaseRow {
    /// Its id.
    pub id: i64,
    /// The root, as text.
    pub root: String,
    /// The published bytes.
    pub pdata: Vec<u8>,
    /// The server's entries: (id, hash) pairs, 40 bytes each.
    pub entries: Vec<u8>,
    /// How many entries.
    pub entry_count: i64,
    /// When it was built (ms).
    pub created_at: i64,
}

/// The newest published release's id.
pub async fn latest_published_release(store: &Store) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query("SELECT MAX(id) AS id FROM pdata_releases WHERE published_at IS NOT NULL")
        .fetch_one(&store.pool)
        .await?
        .try_get("id")
}

/// A release by id.
pub async fn release(store: &Store, id: i64) -> Result<ReleaseRow, sqlx::Error> {
    let row = sqlx::query(&store.sql(
        "SELECT id, root, pdata, entries, entry_count, created_at FROM pdata_releases WHERE id = ?",
    ))
    .bind(id)
    .fetch_one(&store.pool)
    .await?;
    Ok(ReleaseRow {
        id: row.try_get("id")?,
        root: row.try_get("root")?,
        pdata: row.try_get("pdata")?,
        entries: row.try_get("entries")?,
        entry_count: row.try_get("entry_count")?,
        created_at: row.try_get("created_at")?,
    })
}

/// One provider's hold on a PDQ hash.
#[derive(Debug, Clone)]
pub struct Holding {
    /// The hash, hex.
    pub value: String,
    /// The provider of the bank that holds it.
    pub provider: String,
    /// The lowest content id holding it among that provider's banks.
    pub content_id: i64,
}

/// Every (PDQ hash, provider) pair that enabled content in enabled banks
/// with a provider holds: what a release is built from.
pub async fn provider_holdings(store: &Store) -> Result<Vec<Holding>, sqlx::Error> {
    sqlx::query(&store.sql(
        // PDQ signal rows and the hashes content rows carry (store module
        // `carried`).
        "SELECT s.value, b.provider, MIN(s.content_id) AS cid FROM \
         (SELECT value, content_id, bank_id FROM signals WHERE signal_type = 'pdq' \
          UNION ALL SELECT substr(dedup_key, 5), id, bank_id FROM content WHERE carried = 1) s \
         JOIN banks b ON b.id = s.bank_id JOIN content c ON c.id = s.content_id \
         WHERE b.enabled = 1 AND c.enabled = 1 AND b.provider IS NOT NULL \
         GROUP BY s.value, b.provider",
    ))
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(Holding {
            value: r.try_get("value")?,
            provider: r.try_get("provider")?,
            content_id: r.try_get("cid")?,
        })
    })
    .collect()
}

/// The epoch the next release gets: one more than any so far.
pub async fn next_epoch(store: &Store) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT COALESCE(MAX(epoch), 0) + 1 AS e FROM pdata_releases")
        .fetch_one(&store.pool)
        .await?
        .try_get("e")
}

/// A release to store (unpublished until providers sign its root).
pub struct NewRelease<'a> {
    /// The root, as text.
    pub root: &'a str,
    /// Its parameters, JSON text.
    pub params: &'a str,
    /// The pdata bytes.
    pub pdata: &'a [u8],
    /// The server's entries, 40 bytes each.
    pub entries: &'a [u8],
    /// How many entries.
    pub entry_count: i64,
    /// Who built it.
    pub created_by: &'a str,
    /// Its epoch.
    pub epoch: i64,
    /// Providers each hash and the root need.
    pub min_providers: i64,
}

/// Stores a new release; returns its id.
pub async fn insert_release(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    r: &NewRelease<'_>,
) -> Result<i64, sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO pdata_releases (root, params, pdata, entries, entry_count, created_at, created_by, \
         epoch, min_providers) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    ))
    .bind(r.root)
    .bind(r.params)
    .bind(r.pdata)
    .bind(r.entries)
    .bind(r.entry_count)
    .bind(crate::now_ms())
    .bind(r.created_by)
    .bind(r.epoch)
    .bind(r.min_providers)
    .fetch_one(&mut *tx)
    .await?
    .try_get("id")
}

/// Queues a voucher for the opening worker.
pub async fn queue_voucher(
    store: &Store,
    account: &str,
    device: &str,
    release_id: i64,
    voucher: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO psi_pending (account, device, release_id, voucher, received_at) VALUES (?, ?, ?, ?, ?)",
    ))
    .bind(account)
    .bind(device)
    .bind(release_id)
    .bind(voucher)
    .bind(crate::now_ms())
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// A queued voucher.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Queue position.
    pub id: i64,
    /// The account it came from.
    pub account: String,
    /// The release it was made against.
    pub release_id: i64,
    /// Its bytes.
    pub voucher: Vec<u8>,
}

/// The oldest `limit` queued vouchers.
pub async fn pending(store: &Store, limit: i64) -> Result<Vec<Pending>, sqlx::Error> {
    sqlx::query(
        &store.sql("SELECT id, account, release_id, voucher FROM psi_pending ORDER BY id LIMIT ?"),
    )
    .bind(limit)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(Pending {
            id: r.try_get("id")?,
            account: r.try_get("account")?,
            release_id: r.try_get("release_id")?,
            voucher: r.try_get("voucher")?,
        })
    })
    .collect()
}

/// Takes a queued voucher off the queue; false when another worker took it.
pub async fn take_pending(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    id: i64,
) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query(&store.sql("DELETE FROM psi_pending WHERE id = ?"))
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1,
    )
}

/// An account's state for a release, locked for the transaction on
/// PostgreSQL (SQLite's write transaction already excludes others).
pub async fn account_state_for_update(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    account: &str,
    release_id: i64,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let lock = if store.backend == Backend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    sqlx::query(&store.sql(&format!(
        "SELECT state FROM psi_states WHERE account = ? AND release_id = ?{lock}"
    )))
    .bind(account)
    .bind(release_id)
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| r.try_get("state"))
    .transpose()
}

/// Writes an account's state for a release.
pub async fn save_account_state(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    account: &str,
    release_id: i64,
    state: &[u8],
    entries: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO psi_states (account, release_id, state, entries, updated_at) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (account, release_id) DO UPDATE SET state = excluded.state, entries = excluded.entries, \
         updated_at = excluded.updated_at",
    ))
    .bind(account)
    .bind(release_id)
    .bind(state)
    .bind(entries)
    .bind(crate::now_ms())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A match opened from an account's vouchers.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The banked content it matched.
    pub content_id: i64,
    /// Hamming distance.
    pub distance: i64,
    /// The device's hash, hex.
    pub hash: String,
    /// The derivative the device attached.
    pub derivative: Vec<u8>,
}

/// Flags an account (sticky: only a reviewer clears it) and replaces its
/// opened matches for `release_id` with `opened`.
pub async fn flag_with_matches(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    account: &str,
    release_id: i64,
    opened: &[Opened],
) -> Result<(), sqlx::Error> {
    let now = crate::now_ms();
    sqlx::query(&store.sql(
        "INSERT INTO psi_accounts (account, state, flagged, updated_at, flagged_at) VALUES (?, ?, 1, ?, ?) \
         ON CONFLICT (account) DO UPDATE SET flagged = 1, updated_at = excluded.updated_at, \
         flagged_at = COALESCE(psi_accounts.flagged_at, excluded.flagged_at)",
    ))
    .bind(account)
    .bind(Vec::<u8>::new())
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query(&store.sql("DELETE FROM psi_opened WHERE account = ? AND release_id = ?"))
        .bind(account)
        .bind(release_id)
        .execute(&mut *tx)
        .await?;
    for o in opened {
        sqlx::query(&store.sql(
            "INSERT INTO psi_opened (account, content_id, distance, hash, derivative, opened_at, release_id) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(account)
        .bind(o.content_id)
        .bind(o.distance)
        .bind(&o.hash)
        .bind(&o.derivative)
        .bind(now)
        .bind(release_id)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Unflags a flagged account and drops its opened matches and states;
/// false when it was not flagged.
pub async fn clear_account(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    account: &str,
    actor: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(&store.sql(
        "UPDATE psi_accounts SET flagged = 0, cleared_at = ?, cleared_by = ? WHERE account = ? AND flagged = 1",
    ))
    .bind(crate::now_ms())
    .bind(actor)
    .bind(account)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if done == 0 {
        return Ok(false);
    }
    for table in ["psi_opened", "psi_states"] {
        sqlx::query(&store.sql(&format!("DELETE FROM {table} WHERE account = ?")))
            .bind(account)
            .execute(&mut *tx)
            .await?;
    }
    Ok(true)
}

/// Whether an account is flagged.
pub async fn is_flagged(store: &Store, account: &str) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query(&store.sql("SELECT flagged FROM psi_accounts WHERE account = ?"))
            .bind(account)
            .fetch_optional(&store.pool)
            .await?
            .map(|r| r.try_get::<i64, _>("flagged"))
            .transpose()?
            == Some(1),
    )
}

/// An opened match with the bank that holds its content (if it still does).
#[derive(Debug, Clone)]
pub struct OpenedMatch {
    /// The bank's name.
    pub bank: Option<String>,
    /// The match.
    pub opened: Opened,
}

/// An account's opened matches, closest first.
pub async fn opened_matches(store: &Store, account: &str) -> Result<Vec<OpenedMatch>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT o.content_id, o.distance, o.hash, o.derivative, b.name AS bank FROM psi_opened o \
         LEFT JOIN content c ON c.id = o.content_id LEFT JOIN banks b ON b.id = c.bank_id \
         WHERE o.account = ? ORDER BY o.distance, o.content_id",
    ))
    .bind(account)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(opened_match)
    .collect()
}

fn opened_match(r: &AnyRow) -> Result<OpenedMatch, sqlx::Error> {
    Ok(OpenedMatch {
        bank: r.try_get("bank")?,
        opened: Opened {
            content_id: r.try_get("content_id")?,
            distance: r.try_get("distance")?,
            hash: r.try_get("hash")?,
            derivative: r.try_get("derivative")?,
        },
    })
}
