//! The dashboard's reads.

use sqlx::Row;

use crate::Store;

/// A recorded decision, as the dashboard counts it.
#[derive(Debug, Clone)]
pub struct DecisionFigure {
    /// `confirm`, `dismiss`, `clear`, `add_to_bank`, ...
    pub decision: String,
    /// The banks matched, comma-separated.
    pub banks: String,
    /// Distances per bank, JSON text.
    pub distances: Option<String>,
    /// When it was decided (ms).
    pub at: i64,
    /// When its item was queued (ms).
    pub queued_at: i64,
}

/// Decisions made at or after `since` (ms), oldest first.
pub async fn decisions_since(
    store: &Store,
    since: i64,
) -> Result<Vec<DecisionFigure>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT decision, banks, distances, at, queued_at FROM console_decisions WHERE at >= ? ORDER BY id",
    ))
    .bind(since)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(DecisionFigure {
            decision: r.try_get("decision")?,
            banks: r.try_get("banks")?,
            distances: r.try_get("distances")?,
            at: r.try_get("at")?,
            queued_at: r.try_get("queued_at")?,
        })
    })
    .collect()
}
