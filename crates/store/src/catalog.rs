//! What the catalog (bulwark-service's in-memory matching state) reads: the
//! change log replicas follow, and what a full load or a replayed change
//! needs of banks, content, video frames and extra hashes. The catalog's
//! logic stays in bulwark-service; these are its queries.

use futures_util::TryStreamExt;
use sqlx::Row;

use crate::{Backend, BankRow, Store};

/// Rows per [`changes_after`].
pub const CHANGE_PAGE: usize = 20_000;

/// A row of the change log: a bank and/or content item to re-read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeRow {
    /// Sequence number.
    pub seq: i64,
    /// The bank changed (alone: the bank itself; with content: its bank).
    pub bank_id: Option<i64>,
    /// The content item changed.
    pub content_id: Option<i64>,
}

/// The latest change's sequence number (0 when there is none).
pub async fn latest_change(store: &Store) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT COALESCE(MAX(seq), 0) AS s FROM changes")
        .fetch_one(&store.pool)
        .await?
        .try_get("s")
}

/// Up to [`CHANGE_PAGE`] changes after `after`, in sequence order.
pub async fn changes_after(store: &Store, after: i64) -> Result<Vec<ChangeRow>, sqlx::Error> {
    sqlx::query(
        &store.sql(
            "SELECT seq, bank_id, content_id FROM changes WHERE seq > ? ORDER BY seq LIMIT 20000",
        ),
    )
    .bind(after)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(ChangeRow {
            seq: r.try_get("seq")?,
            bank_id: r.try_get("bank_id")?,
            content_id: r.try_get("content_id")?,
        })
    })
    .collect()
}

/// How many changes there are after `seq`.
pub async fn changes_since(store: &Store, seq: i64) -> Result<i64, sqlx::Error> {
    sqlx::query(&store.sql("SELECT COUNT(*) AS n FROM changes WHERE seq > ?"))
        .bind(seq)
        .fetch_one(&store.pool)
        .await?
        .try_get("n")
}

/// A synced write that changes nothing: every change committed before it is
/// durable after it (import batches commit without a sync of their own).
/// It begins as other writers do, so an import job lets it go first
/// between batches (the index journal's writer calls it twice a second and
/// was otherwise kept waiting through a whole import), but unmarked
/// ([`Store::begin_unmarked`]): it is not a single write that an import job
/// on PostgreSQL makes room for.
pub async fn sync(store: &Store) -> Result<(), sqlx::Error> {
    let mut tx = store.begin_unmarked().await?;
    sqlx::query("UPDATE meta SET value = value WHERE key = 'instance'")
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// A bank by id.
pub async fn bank_by_id(store: &Store, id: i64) -> Result<Option<BankRow>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT * FROM banks WHERE id = ?"))
        .bind(id)
        .fetch_optional(&store.pool)
        .await?
        .map(|r| BankRow::from_row(&r))
        .transpose()
}

/// Calls `f(content id, bank id, frame)` for every stored video frame, as
/// the rows stream in (a full load holds no second copy of them).
pub async fn for_each_video_frame(
    store: &Store,
    mut f: impl FnMut(i64, i64, bulwark_vpdq::FrameHash),
) -> Result<(), sqlx::Error> {
    let mut rows = sqlx::query(
        "SELECT f.content_id, c.bank_id, f.frame, f.quality, f.hash, f.ts \
         FROM video_frames f JOIN content c ON c.id = f.content_id",
    )
    .fetch(&store.pool);
    while let Some(r) = rows.try_next().await? {
        f(
            r.try_get("content_id")?,
            r.try_get("bank_id")?,
            crate::frame_from_row(&r)?,
        );
    }
    Ok(())
}

/// Stores one extra hash of a video frame (in the transaction that adds
/// its content).
pub async fn insert_frame_extra(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    bank_id: i64,
    content_id: i64,
    frame: u64,
    e: &bulwark_pdq::KindHash,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO video_frame_extras (content_id, bank_id, frame, kind, quality, hash) \
         VALUES (?, ?, ?, ?, ?, ?)",
    ))
    .bind(content_id)
    .bind(bank_id)
    .bind(frame as i64)
    .bind(e.kind.as_str())
    .bind(i64::from(e.quality))
    .bind(e.hash.to_string())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

fn frame_extra_of_row(
    r: &sqlx::any::AnyRow,
) -> Result<(i64, u64, bulwark_pdq::KindHash), sqlx::Error> {
    let kind: String = r.try_get("kind")?;
    let hash: String = r.try_get("hash")?;
    let bad = |e: String| sqlx::Error::Decode(format!("stored frame extra: {e}").into());
    Ok((
        r.try_get("content_id")?,
        r.try_get::<i64, _>("frame")? as u64,
        bulwark_pdq::KindHash {
            kind: kind.parse::<bulwark_pdq::HashKind>().map_err(bad)?,
            hash: hash.parse().map_err(|e| bad(format!("{e}")))?,
            quality: r.try_get::<i64, _>("quality")?.clamp(0, 100) as u32,
            rect: bulwark_pdq::Rect {
                x: 0,
                y: 0,
                width: 0,
                height: 0,
            },
        },
    ))
}

/// Calls `f(content id, frame, extra)` for every stored video frame extra
/// hash (a full load).
pub async fn for_each_frame_extra(
    store: &Store,
    mut f: impl FnMut(i64, u64, bulwark_pdq::KindHash),
) -> Result<(), sqlx::Error> {
    let mut rows =
        sqlx::query("SELECT content_id, frame, kind, quality, hash FROM video_frame_extras")
            .fetch(&store.pool);
    while let Some(r) = rows.try_next().await? {
        let (cid, frame, e) = frame_extra_of_row(&r)?;
        f(cid, frame, e);
    }
    Ok(())
}

/// The video frame extra hashes of the content items among `ids`:
/// (content id, frame, extra).
pub async fn frame_extras_of_contents(
    store: &Store,
    ids: &[i64],
) -> Result<Vec<(i64, u64, bulwark_pdq::KindHash)>, sqlx::Error> {
    let sql = format!(
        "SELECT content_id, frame, kind, quality, hash FROM video_frame_extras WHERE {}",
        among(store, "content_id")
    );
    fetch_among(store, &sql, ids)
        .await?
        .iter()
        .map(frame_extra_of_row)
        .collect()
}

/// Every disabled content item: (id, disabled until, ms; `None`: for good).
pub async fn disabled_content(store: &Store) -> Result<Vec<(i64, Option<i64>)>, sqlx::Error> {
    sqlx::query("SELECT id, disabled_until FROM content WHERE enabled = 0")
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("disabled_until")?)))
        .collect()
}

/// A content item as the catalog re-reads it, with its PDQ hash if any.
#[derive(Debug, Clone)]
pub struct IndexedContent {
    /// Content id.
    pub id: i64,
    /// Bank id.
    pub bank_id: i64,
    /// Enabled (else disabled until `disabled_until`, or for good).
    pub enabled: bool,
    /// Milliseconds.
    pub disabled_until: Option<i64>,
    /// Its PDQ signal's value (hex).
    pub pdq: Option<String>,
}

/// `column` is one of the ids bound as one parameter ([`id_param`]): one
/// statement for any number of ids, prepared once per connection. (An
/// `IN (1, 2, …)` list made a new statement per chunk of a replay, each
/// parsed and prepared, and churned the statement cache.)
pub(crate) fn among(store: &Store, column: &str) -> String {
    match store.backend {
        Backend::Sqlite => format!("{column} IN (SELECT value FROM json_each(?))"),
        Backend::Postgres => format!("{column} = ANY(CAST(? AS BIGINT[]))"),
    }
}

/// The rows of `sql`, whose one placeholder is an [`among`], for `ids`.
pub(crate) async fn fetch_among(
    store: &Store,
    sql: &str,
    ids: &[i64],
) -> Result<Vec<sqlx::any::AnyRow>, sqlx::Error> {
    sqlx::query(&store.sql(sql))
        .bind(id_param(store, ids))
        .fetch_all(&store.pool)
        .await
}

/// The ids as [`among`]'s parameter: a JSON array for SQLite, an array
/// literal for PostgreSQL (integers formatted here).
fn id_param(store: &Store, ids: &[i64]) -> String {
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    match store.backend {
        Backend::Sqlite => format!("[{list}]"),
        Backend::Postgres => format!("{{{list}}}"),
    }
}

/// [`indexed_content`]'s statement. Its one parameter is the ids: a JSON
/// array on SQLite, an array literal (`{1,2}`) on PostgreSQL.
pub fn indexed_content_sql(store: &Store) -> String {
    // PostgreSQL: a lateral subquery that cannot be pulled up (`OFFSET 0`),
    // so each item's signals are found through `signals_content`. As a plain
    // join, the planner read the whole of `signals` (a hash join, or a
    // nested loop over a materialised scan) whenever its statistics were
    // older than the rows: during a first large import, before autovacuum
    // analysed the table, each single write's apply took 60-200 ms at
    // 200,000 rows and grew with the table. SQLite has no `LATERAL` and no
    // such plan.
    // Content that carries its PDQ hash (store module `carried`) has no
    // signal rows: its hash is the rest of its key. On PostgreSQL the
    // lateral subquery is not run for it (`c.carried = 0` is known before).
    let signals = match store.backend {
        Backend::Sqlite => {
            "LEFT JOIN signals s ON c.carried = 0 AND s.content_id = c.id \
             AND s.signal_type = 'pdq'"
        }
        Backend::Postgres => {
            "LEFT JOIN LATERAL (SELECT value FROM signals WHERE c.carried = 0 \
             AND content_id = c.id AND signal_type = 'pdq' OFFSET 0) s ON TRUE"
        }
    };
    format!(
        "SELECT c.id, c.bank_id, c.kind, c.enabled, c.disabled_until, \
         CASE WHEN c.carried = 1 THEN substr(c.dedup_key, 5) ELSE s.value END AS value \
         FROM content c {signals} WHERE {}",
        among(store, "c.id")
    )
}

/// The content items among `ids` that exist, each with its PDQ hash (one
/// row per PDQ signal; one with `pdq: None` when it has none).
pub async fn indexed_content(
    store: &Store,
    ids: &[i64],
) -> Result<Vec<IndexedContent>, sqlx::Error> {
    let sql = indexed_content_sql(store);
    fetch_among(store, &sql, ids)
        .await?
        .iter()
        .map(|r| {
            Ok(IndexedContent {
                id: r.try_get("id")?,
                bank_id: r.try_get("bank_id")?,
                enabled: r.try_get::<i64, _>("enabled")? != 0,
                disabled_until: r.try_get("disabled_until")?,
                pdq: r.try_get("value")?,
            })
        })
        .collect()
}

/// The video frames of the content items among `ids`: (content id, frame),
/// by content id and frame.
pub async fn frames_of_contents(
    store: &Store,
    ids: &[i64],
) -> Result<Vec<(i64, bulwark_vpdq::FrameHash)>, sqlx::Error> {
    let sql = format!(
        "SELECT content_id, frame, quality, hash, ts FROM video_frames \
         WHERE {} ORDER BY content_id, frame",
        among(store, "content_id")
    );
    fetch_among(store, &sql, ids)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("content_id")?, crate::frame_from_row(r)?)))
        .collect()
}

/// A banked extra hash (a crop or the content region of a photo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraRow {
    /// Content id.
    pub content_id: i64,
    /// Bank id.
    pub bank_id: i64,
    /// Which extra (`HashKind` of bulwark-service's media).
    pub kind: String,
    /// PDQ hash, hex.
    pub value: String,
}

fn extra_rows(rows: &[sqlx::any::AnyRow]) -> Result<Vec<ExtraRow>, sqlx::Error> {
    rows.iter()
        .map(|r| {
            Ok(ExtraRow {
                content_id: r.try_get("content_id")?,
                bank_id: r.try_get("bank_id")?,
                kind: r.try_get("kind")?,
                value: r.try_get("value")?,
            })
        })
        .collect()
}

/// `AND kind NOT IN (…)` with one placeholder per skipped kind.
fn skipping(skip: &[&str]) -> String {
    if skip.is_empty() {
        return String::new();
    }
    format!(" AND kind NOT IN ({})", vec!["?"; skip.len()].join(", "))
}

/// Every banked extra hash but those of the `skip` kinds (for a full load).
pub async fn all_extras(store: &Store, skip: &[&str]) -> Result<Vec<ExtraRow>, sqlx::Error> {
    extras_where(store, "1 = 1", None, skip).await
}

/// The extra hashes of the content items among `ids`, but those of the
/// `skip` kinds.
pub async fn extras_of_contents(
    store: &Store,
    ids: &[i64],
    skip: &[&str],
) -> Result<Vec<ExtraRow>, sqlx::Error> {
    let filter = among(store, "content_id");
    extras_where(store, &filter, Some(id_param(store, ids)), skip).await
}

/// The extras rows matching `filter` (SQL with `param` bound to its one
/// placeholder, if any), but those of the `skip` kinds.
async fn extras_where(
    store: &Store,
    filter: &str,
    param: Option<String>,
    skip: &[&str],
) -> Result<Vec<ExtraRow>, sqlx::Error> {
    let sql = format!(
        "SELECT content_id, bank_id, kind, value FROM pdq_extras WHERE {filter}{}",
        skipping(skip)
    );
    let sql = store.sql(&sql);
    let mut q = sqlx::query(&sql);
    if let Some(p) = param {
        q = q.bind(p);
    }
    for k in skip {
        q = q.bind(*k);
    }
    extra_rows(&q.fetch_all(&store.pool).await?)
}

/// The extra hashes of one content item: (kind, hex), by kind.
pub async fn extras_of(
    store: &Store,
    content_id: i64,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows = sqlx::query(
        &store.sql("SELECT kind, value FROM pdq_extras WHERE content_id = ? ORDER BY kind"),
    )
    .bind(content_id)
    .fetch_all(&store.pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("kind")?, r.try_get("value")?)))
        .collect()
}

/// A stored pdata variant with what a release needs of its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantRow {
    /// Content id.
    pub content_id: i64,
    /// Which variant.
    pub kind: String,
    /// Its PDQ hash, hex.
    pub value: String,
    /// The content's plain PDQ hash, hex.
    pub plain: String,
    /// The bank's provider.
    pub provider: String,
}

/// Every stored extra of these `kinds` (the pdata variants) that enabled
/// content in an enabled bank with a provider holds, with the content's
/// plain PDQ hash.
pub async fn pdata_variant_rows(
    store: &Store,
    kinds: &[&str],
) -> Result<Vec<VariantRow>, sqlx::Error> {
    if kinds.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; kinds.len()].join(", ");
    let sql = format!(
        "SELECT e.content_id, e.kind, e.value, \
         CASE WHEN c.carried = 1 THEN substr(c.dedup_key, 5) ELSE s.value END AS plain, \
         b.provider FROM pdq_extras e \
         JOIN banks b ON b.id = e.bank_id JOIN content c ON c.id = e.content_id \
         LEFT JOIN signals s ON c.carried = 0 AND s.content_id = e.content_id \
         AND s.signal_type = 'pdq' \
         WHERE e.kind IN ({marks}) AND b.enabled = 1 AND c.enabled = 1 AND b.provider IS NOT NULL \
         AND (c.carried = 1 OR s.value IS NOT NULL)"
    );
    let sql = store.sql(&sql);
    let mut q = sqlx::query(&sql);
    for k in kinds {
        q = q.bind(*k);
    }
    q.fetch_all(&store.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(VariantRow {
                content_id: r.try_get("content_id")?,
                kind: r.try_get("kind")?,
                value: r.try_get("value")?,
                plain: r.try_get("plain")?,
                provider: r.try_get("provider")?,
            })
        })
        .collect()
}

/// Stores one extra hash of a new item (in the transaction that adds it).
pub async fn insert_extra(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    bank_id: i64,
    content_id: i64,
    kind: &str,
    value: &str,
    quality: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO pdq_extras (content_id, bank_id, kind, value, quality) VALUES (?, ?, ?, ?, ?)",
    ))
    .bind(content_id)
    .bind(bank_id)
    .bind(kind)
    .bind(value)
    .bind(quality)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
