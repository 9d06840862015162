//! Verifiable reports: the franking keys (sealed), reports with their
//! messages, attachments and reporters.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Store;

/// A franking key as stored: its id and sealed secret.
#[derive(Debug, Clone)]
pub struct FrankingKeyRow {
    /// Key id.
    pub id: i64,
    /// The secret, sealed under the key-encryption key.
    pub sealed: String,
}

/// The franking keys not retired, oldest first.
pub async fn franking_keys(store: &Store) -> Result<Vec<FrankingKeyRow>, sqlx::Error> {
    sqlx::query("SELECT id, secret FROM franking_keys WHERE retired_at IS NULL ORDER BY id")
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(FrankingKeyRow {
                id: r.try_get("id")?,
                sealed: r.try_get("secret")?,
            })
        })
        .collect()
}

/// Stores franking key 1 unless some replica stored it first.
pub async fn insert_first_franking_key(store: &Store, sealed: &str) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO franking_keys (id, secret, created_at) VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING",
    ))
    .bind(sealed)
    .bind(crate::now_ms())
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// The id the next franking key gets.
pub async fn next_franking_key_id(tx: &mut sqlx::AnyConnection) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT COALESCE(MAX(id), 0) + 1 AS n FROM franking_keys")
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")
}

/// Stores a new franking key.
pub async fn insert_franking_key(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    id: i64,
    sealed: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql("INSERT INTO franking_keys (id, secret, created_at) VALUES (?, ?, ?)"))
        .bind(id)
        .bind(sealed)
        .bind(crate::now_ms())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The report filed for a verified message (by its stamp), if any.
pub async fn by_message_key(store: &Store, message_key: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT id FROM reports WHERE message_key = ?"))
        .bind(message_key)
        .fetch_optional(&store.pool)
        .await?
        .map(|r| r.try_get("id"))
        .transpose()
}

/// A report to store.
#[derive(Debug, Clone)]
pub struct NewReport<'a> {
    /// The API key that submitted it.
    pub submitted_by: &'a str,
    /// `queued` or `rejected`.
    pub status: &'a str,
    /// The reporter's reason.
    pub reason: Option<&'a str>,
    /// The reporter's text.
    pub text: Option<&'a str>,
    /// Why it was rejected.
    pub rejection: Option<&'a str>,
    /// The verified first message's stamp (the same message is one report).
    pub message_key: Option<&'a str>,
}

/// Stores a report; fails on a `message_key` already filed (a concurrent
/// submission of the same message won).
pub async fn insert(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    r: &NewReport<'_>,
) -> Result<i64, sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO reports (received_at, submitted_by, status, reason, text, rejection, message_key) \
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
    ))
    .bind(crate::now_ms())
    .bind(r.submitted_by)
    .bind(r.status)
    .bind(r.reason)
    .bind(r.text)
    .bind(r.rejection)
    .bind(r.message_key)
    .fetch_one(&mut *tx)
    .await?
    .try_get("id")
}

/// A reported message with its verified context.
#[derive(Debug, Clone)]
pub struct MessageRow {
    /// Position in the report.
    pub idx: i64,
    /// Sender.
    pub sender: String,
    /// Conversation.
    pub conversation: String,
    /// When the delivery service accepted it (seconds).
    pub accepted_at: i64,
    /// The franked content.
    pub content: Vec<u8>,
    /// The franking key id of its stamp.
    pub key_id: i64,
    /// Whether it verified.
    pub verified: bool,
    /// Why not.
    pub rejection: Option<String>,
    /// Message id.
    pub message_id: Option<String>,
    /// MLS epoch.
    pub epoch: Option<i64>,
    /// Recipients, JSON text.
    pub recipients: Option<String>,
    /// The stamping key.
    pub stamper: Option<String>,
}

/// Stores a reported message.
pub async fn insert_message(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    report_id: i64,
    m: &MessageRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO report_messages (report_id, idx, sender, conversation, accepted_at, content, key_id, \
         verified, rejection, message_id, epoch, recipients, stamper) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ))
    .bind(report_id)
    .bind(m.idx)
    .bind(&m.sender)
    .bind(&m.conversation)
    .bind(m.accepted_at)
    .bind(&m.content)
    .bind(m.key_id)
    .bind(i64::from(m.verified))
    .bind(&m.rejection)
    .bind(&m.message_id)
    .bind(m.epoch)
    .bind(&m.recipients)
    .bind(&m.stamper)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A reported attachment and what became of it.
#[derive(Debug, Clone)]
pub struct AttachmentRow {
    /// Its message.
    pub msg_idx: i64,
    /// Position in the message.
    pub idx: i64,
    /// Blob id.
    pub blob_id: String,
    /// Media type.
    pub media_type: String,
    /// Size.
    pub size: i64,
    /// SHA-256 of the ciphertext, hex.
    pub ciphertext_sha256: String,
    /// `opened`, `rejected` or `not_provided`.
    pub status: String,
    /// What went wrong.
    pub error: Option<String>,
    /// Its hashes, JSON text.
    pub hashes: Option<String>,
    /// Its matches, JSON text.
    pub matches: Option<String>,
    /// The opened plaintext (stored only, never listed).
    pub plaintext: Option<Vec<u8>>,
}

/// Stores a reported attachment.
pub async fn insert_attachment(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    report_id: i64,
    a: &AttachmentRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO report_attachments (report_id, msg_idx, idx, blob_id, media_type, size, ciphertext_sha256, \
         status, error, hashes, matches, plaintext) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ))
    .bind(report_id)
    .bind(a.msg_idx)
    .bind(a.idx)
    .bind(&a.blob_id)
    .bind(&a.media_type)
    .bind(a.size)
    .bind(&a.ciphertext_sha256)
    .bind(&a.status)
    .bind(&a.error)
    .bind(&a.hashes)
    .bind(&a.matches)
    .bind(&a.plaintext)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A reporter of a report.
#[derive(Debug, Clone)]
pub struct NewReporter<'a> {
    /// The reporter's account.
    pub account: &'a str,
    /// Its device.
    pub device: &'a str,
    /// The device's signature over the report, hex.
    pub signature: &'a str,
    /// The API key that sent it.
    pub submitted_by: &'a str,
    /// Reason.
    pub reason: Option<&'a str>,
    /// Text.
    pub text: Option<&'a str>,
}

/// Adds a reporter to a report (once per account).
pub async fn insert_reporter(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    report_id: i64,
    r: &NewReporter<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO report_reporters (report_id, account, device, signature, submitted_by, reason, text, at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (report_id, account) DO NOTHING",
    ))
    .bind(report_id)
    .bind(r.account)
    .bind(r.device)
    .bind(r.signature)
    .bind(r.submitted_by)
    .bind(r.reason)
    .bind(r.text)
    .bind(crate::now_ms())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A report as stored.
#[derive(Debug, Clone)]
pub struct ReportRow {
    /// Its id.
    pub id: i64,
    /// When it arrived (ms).
    pub received_at: i64,
    /// The API key that submitted it.
    pub submitted_by: String,
    /// `queued`, `rejected`, …
    pub status: String,
    /// Reason.
    pub reason: Option<String>,
    /// Text.
    pub text: Option<String>,
    /// Why it was rejected.
    pub rejection: Option<String>,
}

fn report_row(r: &AnyRow) -> Result<ReportRow, sqlx::Error> {
    Ok(ReportRow {
        id: r.try_get("id")?,
        received_at: r.try_get("received_at")?,
        submitted_by: r.try_get("submitted_by")?,
        status: r.try_get("status")?,
        reason: r.try_get("reason")?,
        text: r.try_get("text")?,
        rejection: r.try_get("rejection")?,
    })
}

/// Reports after id `after`, oldest first, optionally of one status.
pub async fn list(
    store: &Store,
    status: Option<&str>,
    after: i64,
    limit: i64,
) -> Result<Vec<ReportRow>, sqlx::Error> {
    let rows = match status {
        Some(st) => {
            sqlx::query(
                &store.sql("SELECT * FROM reports WHERE status = ? AND id > ? ORDER BY id LIMIT ?"),
            )
            .bind(st)
            .bind(after)
            .bind(limit)
            .fetch_all(&store.pool)
            .await?
        }
        None => {
            sqlx::query(&store.sql("SELECT * FROM reports WHERE id > ? ORDER BY id LIMIT ?"))
                .bind(after)
                .bind(limit)
                .fetch_all(&store.pool)
                .await?
        }
    };
    rows.iter().map(report_row).collect()
}

/// A report by id.
pub async fn get(store: &Store, id: i64) -> Result<Option<ReportRow>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT * FROM reports WHERE id = ?"))
        .bind(id)
        .fetch_optional(&store.pool)
        .await?
        .map(|r| report_row(&r))
        .transpose()
}

/// A report's messages, in order.
pub async fn messages(store: &Store, report_id: i64) -> Result<Vec<MessageRow>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT * FROM report_messages WHERE report_id = ? ORDER BY idx"))
        .bind(report_id)
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(|m| {
            Ok(MessageRow {
                idx: m.try_get("idx")?,
                sender: m.try_get("sender")?,
                conversation: m.try_get("conversation")?,
                accepted_at: m.try_get("accepted_at")?,
                content: m.try_get("content")?,
                key_id: m.try_get("key_id")?,
                verified: m.try_get::<i64, _>("verified")? != 0,
                rejection: m.try_get("rejection")?,
                message_id: m.try_get("message_id")?,
                epoch: m.try_get("epoch")?,
                recipients: m.try_get("recipients")?,
                stamper: m.try_get("stamper")?,
            })
        })
        .collect()
}

/// A report's attachments (without their plaintext), by message and position.
pub async fn attachments(store: &Store, report_id: i64) -> Result<Vec<AttachmentRow>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT msg_idx, idx, blob_id, media_type, size, ciphertext_sha256, status, error, hashes, matches \
         FROM report_attachments WHERE report_id = ? ORDER BY msg_idx, idx",
    ))
    .bind(report_id)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|a| {
        Ok(AttachmentRow {
            msg_idx: a.try_get("msg_idx")?,
            idx: a.try_get("idx")?,
            blob_id: a.try_get("blob_id")?,
            media_type: a.try_get("media_type")?,
            size: a.try_get("size")?,
            ciphertext_sha256: a.try_get("ciphertext_sha256")?,
            status: a.try_get("status")?,
            error: a.try_get("error")?,
            hashes: a.try_get("hashes")?,
            matches: a.try_get("matches")?,
            plaintext: None,
        })
    })
    .collect()
}

/// A reporter as listed.
#[derive(Debug, Clone)]
pub struct ReporterRow {
    /// Account.
    pub account: String,
    /// Device.
    pub device: String,
    /// When (ms).
    pub at: i64,
    /// Reason.
    pub reason: Option<String>,
}

/// A report's reporters, first first.
pub async fn reporters(store: &Store, report_id: i64) -> Result<Vec<ReporterRow>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT account, device, at, reason FROM report_reporters WHERE report_id = ? ORDER BY at, account",
    ))
    .bind(report_id)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(ReporterRow {
            account: r.try_get("account")?,
            device: r.try_get("device")?,
            at: r.try_get("at")?,
            reason: r.try_get("reason")?,
        })
    })
    .collect()
}
