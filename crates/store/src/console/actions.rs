//! What decisions set off: webhooks and their delivery log, CyberTipline
//! reports, and the reads evidence packages are gathered from.

use sqlx::Row;

use crate::Store;

/// Queues a webhook for a decision; returns its id.
pub async fn insert_webhook(
    store: &Store,
    decision_id: i64,
    url: &str,
    body: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO console_webhooks (decision_id, url, body, status, attempts, created_at) \
         VALUES (?, ?, ?, 'pending', 0, ?) RETURNING id",
    ))
    .bind(decision_id)
    .bind(url)
    .bind(body)
    .bind(crate::now_ms())
    .fetch_one(&store.pool)
    .await?
    .try_get("id")
}

/// A webhook to deliver.
#[derive(Debug, Clone)]
pub struct WebhookRow {
    /// Where it goes.
    pub url: String,
    /// The JSON body.
    pub body: String,
    /// Attempts so far.
    pub attempts: i64,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
}

/// A webhook by id.
pub async fn webhook(store: &Store, id: i64) -> Result<Option<WebhookRow>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT url, body, attempts, status FROM console_webhooks WHERE id = ?"))
        .bind(id)
        .fetch_optional(&store.pool)
        .await?
        .map(|r| {
            Ok(WebhookRow {
                url: r.try_get("url")?,
                body: r.try_get("body")?,
                attempts: r.try_get("attempts")?,
                status: r.try_get("status")?,
            })
        })
        .transpose()
}

/// What one delivery attempt came to.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    /// Attempts so far, this one included.
    pub attempts: i64,
    /// `pending`, `delivered` or `failed`.
    pub status: &'a str,
    /// The HTTP status answered, if any.
    pub last_status: Option<i64>,
    /// Why there was no answer.
    pub last_error: Option<String>,
    /// When it was delivered (ms), if it was.
    pub delivered_at: Option<i64>,
}

/// Records a delivery attempt.
pub async fn record_attempt(store: &Store, id: i64, a: &Attempt<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "UPDATE console_webhooks SET attempts = ?, status = ?, last_status = ?, last_error = ?, \
         delivered_at = ? WHERE id = ?",
    ))
    .bind(a.attempts)
    .bind(a.status)
    .bind(a.last_status)
    .bind(a.last_error.clone())
    .bind(a.delivered_at)
    .bind(id)
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// The ids of webhooks still to deliver.
pub async fn pending_webhooks(store: &Store) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query("SELECT id FROM console_webhooks WHERE status = 'pending'")
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect()
}

/// A line of the delivery log.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    /// Webhook id.
    pub id: i64,
    /// The decision it reports.
    pub decision_id: i64,
    /// Where it goes.
    pub url: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts so far.
    pub attempts: i64,
    /// The last HTTP status answered.
    pub last_status: Option<i64>,
    /// The last error.
    pub last_error: Option<String>,
    /// When it was queued (ms).
    pub created_at: i64,
    /// When it was delivered (ms).
    pub delivered_at: Option<i64>,
}

/// The newest 200 webhooks, newest first.
pub async fn delivery_log(store: &Store) -> Result<Vec<DeliveryRow>, sqlx::Error> {
    sqlx::query(
        "SELECT id, decision_id, url, status, attempts, last_status, last_error, created_at, delivered_at \
         FROM console_webhooks ORDER BY id DESC LIMIT 200",
    )
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(DeliveryRow {
            id: r.try_get("id")?,
            decision_id: r.try_get("decision_id")?,
            url: r.try_get("url")?,
            status: r.try_get("status")?,
            attempts: r.try_get("attempts")?,
            last_status: r.try_get("last_status")?,
            last_error: r.try_get("last_error")?,
            created_at: r.try_get("created_at")?,
            delivered_at: r.try_get("delivered_at")?,
        })
    })
    .collect()
}

/// When a report was received (ms).
pub async fn report_received_at(store: &Store, report_id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query(&store.sql("SELECT received_at FROM reports WHERE id = ?"))
        .bind(report_id)
        .fetch_one(&store.pool)
        .await?
        .try_get("received_at")
}

/// A report's senders in the order they first appear in its messages.
pub async fn report_senders(store: &Store, report_id: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT sender FROM report_messages WHERE report_id = ? \
         GROUP BY sender ORDER BY MIN(idx)",
    ))
    .bind(report_id)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| r.try_get("sender"))
    .collect()
}

/// A reported attachment, as evidence.
#[derive(Debug, Clone)]
pub struct EvidenceAttachment {
    /// Its message.
    pub msg_idx: i64,
    /// Position in the message.
    pub idx: i64,
    /// Media type.
    pub media_type: String,
    /// Its hashes, JSON text.
    pub hashes: Option<String>,
    /// Its plaintext, if kept.
    pub plaintext: Option<Vec<u8>>,
}

/// A report's attachments in message order.
pub async fn report_attachments(
    store: &Store,
    report_id: i64,
) -> Result<Vec<EvidenceAttachment>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT msg_idx, idx, media_type, hashes, plaintext FROM report_attachments \
         WHERE report_id = ? ORDER BY msg_idx, idx",
    ))
    .bind(report_id)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|a| {
        Ok(EvidenceAttachment {
            msg_idx: a.try_get("msg_idx")?,
            idx: a.try_get("idx")?,
            media_type: a.try_get("media_type")?,
            hashes: a.try_get("hashes")?,
            plaintext: a.try_get("plaintext")?,
        })
    })
    .collect()
}

/// When an account was flagged (or last updated) (ms).
pub async fn account_flagged_at(store: &Store, account: &str) -> Result<i64, sqlx::Error> {
    sqlx::query(
        &store.sql(
            "SELECT COALESCE(flagged_at, updated_at) AS t FROM psi_accounts WHERE account = ?",
        ),
    )
    .bind(account)
    .fetch_one(&store.pool)
    .await?
    .try_get("t")
}

/// The hashes opened from an account's vouchers, in the order they were opened.
pub async fn opened_hashes(store: &Store, account: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT hash FROM psi_opened WHERE account = ? ORDER BY opened_at"))
        .bind(account)
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(|r| r.try_get("hash"))
        .collect()
}

/// A recorded match, as evidence.
#[derive(Debug, Clone)]
pub struct MatchEvidence {
    /// When (ms).
    pub at: i64,
    /// The upload's PDQ hex.
    pub pdq: Option<String>,
    /// The upload's MD5 hex.
    pub md5: Option<String>,
    /// The upload's SHA-256 hex.
    pub sha256: Option<String>,
}

/// A recorded match by id.
pub async fn match_evidence(store: &Store, id: i64) -> Result<MatchEvidence, sqlx::Error> {
    let r = sqlx::query(
        &store.sql("SELECT at, actor, pdq, md5, sha256 FROM console_matches WHERE id = ?"),
    )
    .bind(id)
    .fetch_one(&store.pool)
    .await?;
    Ok(MatchEvidence {
        at: r.try_get("at")?,
        pdq: r.try_get("pdq")?,
        md5: r.try_get("md5")?,
        sha256: r.try_get("sha256")?,
    })
}

/// The newest confirming decision of an item: (category or "", reviewer, at).
pub async fn confirmation(
    store: &Store,
    item: &str,
) -> Result<Option<(String, String, i64)>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT category, reviewer, at FROM console_decisions WHERE item = ? AND decision = 'confirm' ORDER BY id DESC",
    ))
    .bind(item)
    .fetch_optional(&store.pool)
    .await?
    .map(|r| -> Result<_, sqlx::Error> {
        Ok((
            r.try_get::<Option<String>, _>("category")?.unwrap_or_default(),
            r.try_get("reviewer")?,
            r.try_get("at")?,
        ))
    })
    .transpose()
}

/// An audit entry, as an evidence trail lists it.
#[derive(Debug, Clone)]
pub struct TrailRow {
    /// Audit id.
    pub id: i64,
    /// When (ms).
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// Its detail, JSON text.
    pub detail: String,
}

/// The audit entries whose detail is like `needle`, oldest first.
pub async fn audit_trail(store: &Store, needle: &str) -> Result<Vec<TrailRow>, sqlx::Error> {
    sqlx::query(
        &store
            .sql("SELECT id, at, actor, action, detail FROM audit WHERE detail LIKE ? ORDER BY id"),
    )
    .bind(needle)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(TrailRow {
            id: r.try_get("id")?,
            at: r.try_get("at")?,
            actor: r.try_get("actor")?,
            action: r.try_get("action")?,
            detail: r.try_get("detail")?,
        })
    })
    .collect()
}

/// A decision on an item.
#[derive(Debug, Clone)]
pub struct DecisionRow {
    /// `confirm`, `dismiss`, ...
    pub decision: String,
    /// Its category.
    pub category: Option<String>,
    /// The reviewer's note.
    pub note: Option<String>,
    /// Who decided.
    pub reviewer: String,
    /// When (ms).
    pub at: i64,
}

/// An item's decisions, oldest first.
pub async fn decisions_of(store: &Store, item: &str) -> Result<Vec<DecisionRow>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT decision, category, note, reviewer, at FROM console_decisions WHERE item = ? ORDER BY id",
    ))
    .bind(item)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(DecisionRow {
            decision: r.try_get("decision")?,
            category: r.try_get("category")?,
            note: r.try_get("note")?,
            reviewer: r.try_get("reviewer")?,
            at: r.try_get("at")?,
        })
    })
    .collect()
}

/// Stores a built CyberTipline report; returns its id.
pub async fn insert_cybertip(
    store: &Store,
    item: &str,
    xml: &str,
    created_by: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO console_cybertips (item, xml, created_by, created_at) VALUES (?, ?, ?, ?) RETURNING id",
    ))
    .bind(item)
    .bind(xml)
    .bind(created_by)
    .bind(crate::now_ms())
    .fetch_one(&store.pool)
    .await?
    .try_get("id")
}

/// A stored CyberTipline report.
#[derive(Debug, Clone)]
pub struct CybertipRow {
    /// The item it reports (`kind:id`).
    pub item: String,
    /// The report XML.
    pub xml: String,
    /// When it was submitted (ms).
    pub submitted_at: Option<i64>,
    /// The id NCMEC gave it.
    pub ncmec_report_id: Option<String>,
}

/// A stored CyberTipline report by id.
pub async fn cybertip(store: &Store, id: i64) -> Result<Option<CybertipRow>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT * FROM console_cybertips WHERE id = ?"))
        .bind(id)
        .fetch_optional(&store.pool)
        .await?
        .map(|r| {
            Ok(CybertipRow {
                item: r.try_get("item")?,
                xml: r.try_get("xml")?,
                submitted_at: r.try_get("submitted_at")?,
                ncmec_report_id: r.try_get("ncmec_report_id")?,
            })
        })
        .transpose()
}

/// A stored CyberTipline report's item and XML.
pub async fn cybertip_xml(store: &Store, id: i64) -> Result<(String, String), sqlx::Error> {
    let row = sqlx::query(&store.sql("SELECT item, xml FROM console_cybertips WHERE id = ?"))
        .bind(id)
        .fetch_one(&store.pool)
        .await?;
    Ok((row.try_get("item")?, row.try_get("xml")?))
}

/// Records a report's submission.
pub async fn cybertip_submitted(
    store: &Store,
    id: i64,
    ncmec_report_id: &str,
    response: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "UPDATE console_cybertips SET submitted_at = ?, ncmec_report_id = ?, response = ? WHERE id = ?",
    ))
    .bind(crate::now_ms())
    .bind(ncmec_report_id)
    .bind(response)
    .bind(id)
    .execute(&store.pool)
    .await?;
    Ok(())
}
