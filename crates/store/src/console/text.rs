//! Text/entity/rule matches: their explanations kept for recorded matches,
//! and a report's stored text signals.

use sqlx::Row;

use crate::Store;

const TEXT_MATCH_TABLE: &str = "console_text_matches";

/// A recorded match's explanation to keep.
#[derive(Debug, Clone)]
pub struct NewTextMatch {
    /// The recorded match.
    pub match_id: i64,
    /// The query's signal (cut by the caller).
    pub query_signal: Option<String>,
    /// The explanation, JSON text.
    pub explanation: String,
    /// A rule match: review only.
    pub review_only: bool,
}

/// Keeps a recorded match's explanation.
pub async fn insert_text_match(store: &Store, m: &NewTextMatch) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(&format!(
        "INSERT INTO {TEXT_MATCH_TABLE} (match_id, query_signal, explanation, review_only) VALUES (?, ?, ?, ?)"
    )))
    .bind(m.match_id)
    .bind(m.query_signal.clone())
    .bind(m.explanation.clone())
    .bind(i64::from(m.review_only))
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// A recorded text match with its explanation.
#[derive(Debug, Clone)]
pub struct TextMatchRow {
    /// The query's signal.
    pub query_signal: Option<String>,
    /// The explanation, JSON text.
    pub explanation: String,
    /// A rule match: review only.
    pub review_only: bool,
    /// The bank matched.
    pub bank: String,
    /// The banked content matched.
    pub content_id: i64,
    /// Its signal type.
    pub signal_type: String,
    /// Distance.
    pub distance: i64,
}

/// A recorded match's text explanation, if it has one.
pub async fn text_match(store: &Store, match_id: i64) -> Result<Option<TextMatchRow>, sqlx::Error> {
    sqlx::query(&store.sql(&format!(
        "SELECT t.query_signal, t.explanation, t.review_only, m.bank, m.content_id, m.signal_type, m.distance \
         FROM {TEXT_MATCH_TABLE} t JOIN console_matches m ON m.id = t.match_id WHERE t.match_id = ?"
    )))
    .bind(match_id)
    .fetch_optional(&store.pool)
    .await?
    .map(|r| {
        Ok(TextMatchRow {
            query_signal: r.try_get("query_signal")?,
            explanation: r.try_get("explanation")?,
            review_only: r.try_get::<i64, _>("review_only")? != 0,
            bank: r.try_get("bank")?,
            content_id: r.try_get("content_id")?,
            signal_type: r.try_get("signal_type")?,
            distance: r.try_get("distance")?,
        })
    })
    .transpose()
}

/// A reported message's stored text signals.
#[derive(Debug, Clone)]
pub struct TextSignalsRow {
    /// The message.
    pub msg_idx: i64,
    /// Its signals, JSON text.
    pub signals: String,
    /// Their matches, JSON text.
    pub matches: String,
}

/// A report's stored text signals, in message order.
pub async fn report_text_signals(
    store: &Store,
    report_id: i64,
) -> Result<Vec<TextSignalsRow>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT msg_idx, signals, matches FROM report_text_signals WHERE report_id = ? ORDER BY msg_idx",
    ))
    .bind(report_id)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(TextSignalsRow {
            msg_idx: r.try_get("msg_idx")?,
            signals: r.try_get("signals")?,
            matches: r.try_get("matches")?,
        })
    })
    .collect()
}
