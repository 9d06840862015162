//! Content items of a bank: read one or a page, change, delete. Adding is
//! [`crate::insert_content`] and [`crate::insert_contents`]; an item's
//! signals are [`crate::signals_of`].

use std::collections::HashMap;

use sqlx::Row;

use crate::catalog::{among, fetch_among};
use crate::{ContentRow, SignalRow, Store};

/// Content `id` of bank `bank_id`; `on` is the pool or an open transaction.
pub async fn by_id<'c>(
    store: &Store,
    on: impl sqlx::Executor<'c, Database = sqlx::Any>,
    bank_id: i64,
    id: i64,
) -> Result<Option<ContentRow>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT * FROM content WHERE id = ? AND bank_id = ?"))
        .bind(id)
        .bind(bank_id)
        .fetch_optional(on)
        .await?
        .map(|r| ContentRow::from_row(&r))
        .transpose()
}

/// How many video frames content `id` has.
pub async fn frame_count(store: &Store, id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query(&store.sql("SELECT COUNT(*) AS n FROM video_frames WHERE content_id = ?"))
        .bind(id)
        .fetch_one(&store.pool)
        .await?
        .try_get("n")
}

/// Up to `limit` items of a bank with ids above `after`, by id.
pub async fn page(
    store: &Store,
    bank_id: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<ContentRow>, sqlx::Error> {
    sqlx::query(
        &store.sql("SELECT * FROM content WHERE bank_id = ? AND id > ? ORDER BY id LIMIT ?"),
    )
    .bind(bank_id)
    .bind(after)
    .bind(limit)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(ContentRow::from_row)
    .collect()
}

/// The signals of each of `ids`, in signal order: rows of `signals`, and
/// the PDQ hash of each item that carries it (store module `carried`).
pub async fn signals_of_many(
    store: &Store,
    ids: &[i64],
) -> Result<HashMap<i64, Vec<SignalRow>>, sqlx::Error> {
    let mut out: HashMap<i64, Vec<SignalRow>> = HashMap::new();
    // The ids bound as one parameter (`catalog::among`): one statement
    // for any page length, prepared once per connection. An item's
    // signals are all rows or all carried, so the two reads do not
    // interleave within an item.
    let rows = format!(
        "SELECT content_id, signal_type, value, quality FROM signals WHERE {} ORDER BY id",
        among(store, "content_id")
    );
    let carried = format!(
        "SELECT id AS content_id, 'pdq' AS signal_type, substr(dedup_key, 5) AS value, \
         carried_quality AS quality FROM content WHERE {} AND carried = 1",
        among(store, "id")
    );
    let mut read = fetch_among(store, &rows, ids).await?;
    read.extend(fetch_among(store, &carried, ids).await?);
    for r in read {
        out.entry(r.try_get("content_id")?)
            .or_default()
            .push(SignalRow {
                signal_type: r.try_get("signal_type")?,
                value: r.try_get("value")?,
                quality: r.try_get("quality")?,
            });
    }
    Ok(out)
}

/// The number of video frames of each of `ids` that has any.
pub async fn frame_counts(store: &Store, ids: &[i64]) -> Result<HashMap<i64, i64>, sqlx::Error> {
    let mut out = HashMap::new();
    let sql = format!(
        "SELECT content_id, COUNT(*) AS n FROM video_frames WHERE {} GROUP BY content_id",
        among(store, "content_id")
    );
    for r in fetch_among(store, &sql, ids).await? {
        out.insert(r.try_get("content_id")?, r.try_get("n")?);
    }
    Ok(out)
}

/// Writes an item's state, note, metadata and update time.
pub async fn update(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    c: &ContentRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "UPDATE content SET enabled = ?, disabled_until = ?, note = ?, metadata = ?, updated_at = ? WHERE id = ?",
    ))
    .bind(c.enabled as i64)
    .bind(c.disabled_until)
    .bind(&c.note)
    .bind(&c.metadata)
    .bind(c.updated_at)
    .bind(c.id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Deletes content `id` of bank `bank_id` (its signals and frames by
/// cascade); whether there was one.
pub async fn delete(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    bank_id: i64,
    id: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(&store.sql("DELETE FROM content WHERE id = ? AND bank_id = ?"))
        .bind(id)
        .bind(bank_id)
        .execute(&mut *tx)
        .await?;
    Ok(done.rows_affected() != 0)
}

/// One signal of a bank with its item's state, as a list export reads it.
#[derive(Debug, Clone)]
pub struct ExportRow {
    /// The item's id.
    pub content_id: i64,
    /// Its type name.
    pub signal_type: String,
    /// Its value.
    pub value: String,
    /// PDQ quality.
    pub quality: Option<i64>,
    /// The item's note.
    pub note: Option<String>,
    /// The item's metadata (JSON text).
    pub metadata: Option<String>,
    /// The item is enabled.
    pub enabled: bool,
    /// Disabled until this time (ms).
    pub disabled_until: Option<i64>,
}

/// A page of a bank's export ([`export_page`]).
#[derive(Debug, Clone, Default)]
pub struct ExportPage {
    /// The signals of the page's items, by item id, each item's in signal
    /// order. An item without signals (a video) has none.
    pub rows: Vec<ExportRow>,
    /// The last item id read: where the next page starts. `None` when
    /// there were no items after `after`.
    pub last: Option<i64>,
    /// Whether this is the last page.
    pub done: bool,
}

/// Items per page of [`export_page`].
pub const EXPORT_PAGE: usize = 5000;

/// [`export_page`]'s read of a page of items (bank, after, limit). On
/// PostgreSQL it walks the primary key from `after`, once the planner's
/// statistics know the bank (`imports::analyze_after_import`).
pub const EXPORT_ITEMS: &str = "SELECT id, dedup_key, carried, carried_quality, note, metadata, \
     enabled, disabled_until FROM content WHERE bank_id = ? AND id > ? ORDER BY id LIMIT ?";

/// The signals of up to [`EXPORT_PAGE`] items of a bank with ids above
/// `after`, by item id: each item's rows of `signals`, or the PDQ hash its
/// content row carries (store module `carried`). Paged by item, not by
/// signal row, since carried hashes have no row.
pub async fn export_page(
    store: &Store,
    bank_id: i64,
    after: i64,
) -> Result<ExportPage, sqlx::Error> {
    let items = sqlx::query(&store.sql(EXPORT_ITEMS))
        .bind(bank_id)
        .bind(after)
        .bind(EXPORT_PAGE as i64)
        .fetch_all(&store.pool)
        .await?;
    let mut with_rows = Vec::new();
    for r in &items {
        if r.try_get::<i64, _>("carried")? == 0 {
            with_rows.push(r.try_get::<i64, _>("id")?);
        }
    }
    let signals = if with_rows.is_empty() {
        Vec::new()
    } else {
        let sql = format!(
            "SELECT content_id, signal_type, value, quality FROM signals WHERE {} \
             ORDER BY content_id, id",
            among(store, "content_id")
        );
        fetch_among(store, &sql, &with_rows).await?
    };
    // Both in item order: each item takes its run of signal rows.
    let mut signals = signals.iter().peekable();
    let mut rows = Vec::with_capacity(items.len());
    for r in &items {
        let content_id: i64 = r.try_get("id")?;
        let row = |signal_type: String, value: String, quality: Option<i64>| {
            Ok::<_, sqlx::Error>(ExportRow {
                content_id,
                signal_type,
                value,
                quality,
                note: r.try_get("note")?,
                metadata: r.try_get("metadata")?,
                enabled: r.try_get::<i64, _>("enabled")? != 0,
                disabled_until: r.try_get("disabled_until")?,
            })
        };
        if r.try_get::<i64, _>("carried")? == 1 {
            let key: String = r.try_get("dedup_key")?;
            let value = key.strip_prefix(crate::CARRIED_PREFIX).ok_or_else(|| {
                sqlx::Error::Decode(format!("content {content_id} carries no hash: {key:?}").into())
            })?;
            rows.push(row(
                "pdq".into(),
                value.into(),
                r.try_get("carried_quality")?,
            )?);
            continue;
        }
        while let Some(s) =
            signals.next_if(|s| s.try_get::<i64, _>("content_id").ok() == Some(content_id))
        {
            rows.push(row(
                s.try_get("signal_type")?,
                s.try_get("value")?,
                s.try_get("quality")?,
            )?);
        }
    }
    let last = match items.last() {
        Some(r) => Some(r.try_get("id")?),
        None => None,
    };
    Ok(ExportPage {
        rows,
        last,
        done: items.len() < EXPORT_PAGE,
    })
}
