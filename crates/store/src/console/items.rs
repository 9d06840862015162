//! Queues, item pages, safe viewing (reveals, hidden items), decisions,
//! review policies and recorded matches.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Store;

/// Where a queue page starts: after the item with this sort key.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    /// The number part: a report's or match's id; a flagged account's or an
    /// escalated item's queue time.
    pub n: i64,
    /// The text part: a flagged account's name; an escalated item's key.
    pub s: String,
}

/// A queued report's receipt time (ms) and reason, if it is queued.
pub async fn queued_report(
    store: &Store,
    id: i64,
) -> Result<Option<(i64, Option<String>)>, sqlx::Error> {
    sqlx::query(
        &store.sql("SELECT received_at, reason FROM reports WHERE id = ? AND status = 'queued'"),
    )
    .bind(id)
    .fetch_optional(&store.pool)
    .await?
    .map(|r| Ok((r.try_get("received_at")?, r.try_get("reason")?)))
    .transpose()
}

/// The `matches` JSON of each of a report's attachments.
pub async fn attachment_matches(
    store: &Store,
    report_id: i64,
) -> Result<Vec<Option<String>>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT matches FROM report_attachments WHERE report_id = ?"))
        .bind(report_id)
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(|r| r.try_get("matches"))
        .collect()
}

/// When an account was flagged and last updated (ms).
#[derive(Debug, Clone)]
pub struct AccountTimes {
    /// When it was flagged.
    pub flagged_at: Option<i64>,
    /// When its state last changed.
    pub updated_at: i64,
}

fn account_times(r: &AnyRow) -> Result<AccountTimes, sqlx::Error> {
    Ok(AccountTimes {
        flagged_at: r.try_get("flagged_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// A flagged account's times, if it is flagged.
pub async fn flagged_account(
    store: &Store,
    account: &str,
) -> Result<Option<AccountTimes>, sqlx::Error> {
    sqlx::query(
        &store.sql(
            "SELECT flagged_at, updated_at FROM psi_accounts WHERE account = ? AND flagged = 1",
        ),
    )
    .bind(account)
    .fetch_optional(&store.pool)
    .await?
    .map(|r| account_times(&r))
    .transpose()
}

/// An account's times (flagged or not); fails when it has none.
pub async fn account(store: &Store, account: &str) -> Result<AccountTimes, sqlx::Error> {
    let r = sqlx::query(
        &store.sql("SELECT flagged_at, updated_at FROM psi_accounts WHERE account = ?"),
    )
    .bind(account)
    .fetch_one(&store.pool)
    .await?;
    account_times(&r)
}

/// (bank name, distance) of each match opened from an account's vouchers
/// whose content is still banked.
pub async fn opened_distances(
    store: &Store,
    account: &str,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT b.name, o.distance FROM psi_opened o JOIN content c ON c.id = o.content_id \
         JOIN banks b ON b.id = c.bank_id WHERE o.account = ?",
    ))
    .bind(account)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|o| Ok((o.try_get("name")?, o.try_get("distance")?)))
    .collect()
}

/// What a queue line says about a recorded match.
#[derive(Debug, Clone)]
pub struct MatchSummary {
    /// When (ms).
    pub at: i64,
    /// The bank matched.
    pub bank: String,
    /// Distance (0 for exact and rule matches).
    pub distance: i64,
    /// `pdq`, `md5`, `rule`, ...
    pub signal_type: String,
}

/// A recorded match's summary.
pub async fn match_summary(store: &Store, id: i64) -> Result<Option<MatchSummary>, sqlx::Error> {
    sqlx::query(
        &store.sql("SELECT at, bank, distance, signal_type FROM console_matches WHERE id = ?"),
    )
    .bind(id)
    .fetch_optional(&store.pool)
    .await?
    .map(|r| {
        Ok(MatchSummary {
            at: r.try_get("at")?,
            bank: r.try_get("bank")?,
            distance: r.try_get("distance")?,
            signal_type: r.try_get("signal_type")?,
        })
    })
    .transpose()
}

/// An item's latest decision (its rows only, by the `(item, id)` index).
pub async fn latest_decision(store: &Store, item: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query(
        &store
            .sql("SELECT decision FROM console_decisions WHERE item = ? ORDER BY id DESC LIMIT 1"),
    )
    .bind(item)
    .fetch_optional(&store.pool)
    .await?
    .map(|r| r.try_get("decision"))
    .transpose()
}

/// The queue an item is open in, if it is open.
pub async fn open_queue(store: &Store, item: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT queue FROM console_open WHERE item = ?"))
        .bind(item)
        .fetch_optional(&store.pool)
        .await?
        .map(|r| r.try_get("queue"))
        .transpose()
}

/// An open item's sort key in its queue, if it is open.
pub async fn open_cursor(store: &Store, item: &str) -> Result<Option<Cursor>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT n, s FROM console_open WHERE item = ?"))
        .bind(item)
        .fetch_optional(&store.pool)
        .await?
        .map(|r| -> Result<Cursor, sqlx::Error> {
            Ok(Cursor {
                n: r.try_get("n")?,
                s: r.try_get("s")?,
            })
        })
        .transpose()
}

/// The open items of a queue that this reviewer has not hidden. Open items
/// only are in `console_open` (see the console's migrations), so a page is
/// one range of its `(queue, n, s)` index: decided items are never read.
/// Only this reviewer's own hidden items are stepped over (a primary-key
/// lookup in `console_hidden` each).
const OPEN_FROM: &str = "FROM console_open o WHERE o.queue = ? \
     AND NOT EXISTS (SELECT 1 FROM console_hidden h WHERE h.reviewer_id = ? AND h.item = o.item)";

/// The SQL of a queue page (SQLite placeholders): queue, reviewer id, with
/// `after` the cursor's n and s (a row-value comparison, a range of the
/// index on both databases), then the limit.
pub fn open_page_sql(after: bool) -> String {
    let keyset = if after {
        " AND (o.n, o.s) > (?, ?)"
    } else {
        ""
    };
    format!("SELECT o.item, o.n, o.s, o.t {OPEN_FROM}{keyset} ORDER BY o.n, o.s LIMIT ?")
}

/// An open item of a queue page.
#[derive(Debug, Clone)]
pub struct OpenRow {
    /// `kind:id`.
    pub item: String,
    /// Its sort key.
    pub cursor: Cursor,
    /// When it entered this queue (ms).
    pub t: i64,
}

/// One page of a queue for a reviewer: at most `limit` open items after
/// `after`, in sort-key order.
pub async fn open_page(
    store: &Store,
    queue: &str,
    reviewer_id: i64,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<OpenRow>, sqlx::Error> {
    let raw = open_page_sql(after.is_some());
    let sql = store.sql(&raw);
    let mut q = sqlx::query(&sql).bind(queue).bind(reviewer_id);
    if let Some(c) = after {
        q = q.bind(c.n).bind(c.s.clone());
    }
    q.bind(limit)
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(OpenRow {
                item: r.try_get("item")?,
                cursor: Cursor {
                    n: r.try_get("n")?,
                    s: r.try_get("s")?,
                },
                t: r.try_get("t")?,
            })
        })
        .collect()
}

/// How many items are open in a queue for a reviewer, and the oldest one's
/// queue time (ms).
pub async fn open_stats(
    store: &Store,
    queue: &str,
    reviewer_id: i64,
) -> Result<(i64, Option<i64>), sqlx::Error> {
    let raw = format!("SELECT COUNT(*) AS c, MIN(o.t) AS oldest {OPEN_FROM}");
    let r = sqlx::query(&store.sql(&raw))
        .bind(queue)
        .bind(reviewer_id)
        .fetch_one(&store.pool)
        .await?;
    Ok((r.try_get("c")?, r.try_get("oldest")?))
}

/// A report as its item page shows it.
#[derive(Debug, Clone)]
pub struct ReportHead {
    /// When it was received (ms).
    pub received_at: i64,
    /// The API key that submitted it.
    pub submitted_by: String,
    /// The reporter's reason.
    pub reason: Option<String>,
    /// The reporter's text.
    pub text: Option<String>,
}

/// A report by id.
pub async fn report(store: &Store, id: i64) -> Result<ReportHead, sqlx::Error> {
    let r = sqlx::query(
        &store.sql("SELECT received_at, submitted_by, reason, text FROM reports WHERE id = ?"),
    )
    .bind(id)
    .fetch_one(&store.pool)
    .await?;
    Ok(ReportHead {
        received_at: r.try_get("received_at")?,
        submitted_by: r.try_get("submitted_by")?,
        reason: r.try_get("reason")?,
        text: r.try_get("text")?,
    })
}

/// A reported message as its item page shows it.
#[derive(Debug, Clone)]
pub struct MessageView {
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
    /// Whether it verified.
    pub verified: bool,
    /// Why not.
    pub rejection: Option<String>,
    /// The stamping key.
    pub stamper: Option<String>,
}

/// A report's messages in order.
pub async fn report_messages(store: &Store, id: i64) -> Result<Vec<MessageView>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT idx, sender, conversation, accepted_at, content, verified, rejection, \
         message_id, epoch, stamper FROM report_messages WHERE report_id = ? ORDER BY idx",
    ))
    .bind(id)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|m| {
        Ok(MessageView {
            idx: m.try_get("idx")?,
            sender: m.try_get("sender")?,
            conversation: m.try_get("conversation")?,
            accepted_at: m.try_get("accepted_at")?,
            content: m.try_get("content")?,
            verified: m.try_get::<i64, _>("verified")? != 0,
            rejection: m.try_get("rejection")?,
            stamper: m.try_get("stamper")?,
        })
    })
    .collect()
}

/// Someone who reported a report's messages.
#[derive(Debug, Clone)]
pub struct ReporterView {
    /// Their account.
    pub account: String,
    /// Their device.
    pub device: String,
    /// When they reported it (ms).
    pub at: i64,
}

/// A report's reporters, earliest first.
pub async fn report_reporters(store: &Store, id: i64) -> Result<Vec<ReporterView>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT account, device, reason, at FROM report_reporters WHERE report_id = ? ORDER BY at",
    ))
    .bind(id)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(ReporterView {
            account: r.try_get("account")?,
            device: r.try_get("device")?,
            at: r.try_get("at")?,
        })
    })
    .collect()
}

/// A reported attachment as its item page shows it (not its bytes).
#[derive(Debug, Clone)]
pub struct AttachmentView {
    /// Its message.
    pub msg_idx: i64,
    /// Position in the message.
    pub idx: i64,
    /// Media type.
    pub media_type: String,
    /// What became of it.
    pub status: String,
    /// Its hashes, JSON text.
    pub hashes: Option<String>,
    /// Its matches, JSON text.
    pub matches: Option<String>,
    /// Whether its plaintext is kept.
    pub has_plain: bool,
}

/// A report's attachments in message order.
pub async fn report_attachments(
    store: &Store,
    id: i64,
) -> Result<Vec<AttachmentView>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT msg_idx, idx, media_type, size, status, hashes, matches, \
         CAST(CASE WHEN plaintext IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_plain FROM report_attachments WHERE report_id = ? \
         ORDER BY msg_idx, idx",
    ))
    .bind(id)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|a| {
        Ok(AttachmentView {
            msg_idx: a.try_get("msg_idx")?,
            idx: a.try_get("idx")?,
            media_type: a.try_get("media_type")?,
            status: a.try_get("status")?,
            hashes: a.try_get("hashes")?,
            matches: a.try_get("matches")?,
            has_plain: a.try_get::<Option<i64>, _>("has_plain")?.unwrap_or(0) != 0,
        })
    })
    .collect()
}

/// A reported attachment's plaintext, if kept.
pub async fn attachment_plaintext(
    store: &Store,
    report_id: i64,
    msg_idx: i64,
    idx: i64,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    Ok(sqlx::query(&store.sql(
        "SELECT plaintext FROM report_attachments WHERE report_id = ? AND msg_idx = ? AND idx = ?",
    ))
    .bind(report_id)
    .bind(msg_idx)
    .bind(idx)
    .fetch_optional(&store.pool)
    .await?
    .map(|r| r.try_get::<Option<Vec<u8>>, _>("plaintext"))
    .transpose()?
    .flatten())
}

/// A match opened from an account's vouchers, with where its content is banked.
#[derive(Debug, Clone)]
pub struct OpenedView {
    /// The banked content.
    pub content_id: i64,
    /// Hamming distance.
    pub distance: i64,
    /// The device's hash, hex.
    pub hash: String,
    /// When it was opened (ms).
    pub opened_at: i64,
    /// The release it was opened against.
    pub release_id: Option<i64>,
    /// The bank holding the content, if one still does.
    pub bank: Option<String>,
    /// That bank's provider.
    pub provider: Option<String>,
}

/// An account's opened matches, in the order they were opened.
pub async fn opened(store: &Store, account: &str) -> Result<Vec<OpenedView>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT o.content_id, o.distance, o.hash, o.opened_at, o.release_id, b.name AS bank, \
         b.provider FROM psi_opened o LEFT JOIN content c ON c.id = o.content_id \
         LEFT JOIN banks b ON b.id = c.bank_id WHERE o.account = ? ORDER BY o.opened_at",
    ))
    .bind(account)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|o| {
        Ok(OpenedView {
            content_id: o.try_get("content_id")?,
            distance: o.try_get("distance")?,
            hash: o.try_get("hash")?,
            opened_at: o.try_get("opened_at")?,
            release_id: o.try_get("release_id")?,
            bank: o.try_get("bank")?,
            provider: o.try_get("provider")?,
        })
    })
    .collect()
}

/// A recorded match with its bank's provider and threshold.
#[derive(Debug, Clone)]
pub struct MatchDetail {
    /// When (ms).
    pub at: i64,
    /// The API key whose query matched.
    pub actor: String,
    /// The bank matched.
    pub bank: String,
    /// The banked content matched.
    pub content_id: i64,
    /// `pdq`, `md5`, `rule`, ...
    pub signal_type: String,
    /// Distance.
    pub distance: i64,
    /// The upload's PDQ hex.
    pub pdq: Option<String>,
    /// The upload's MD5 hex.
    pub md5: Option<String>,
    /// The upload's SHA-256 hex.
    pub sha256: Option<String>,
    /// The upload's thumbnail (PNG), if it was a photo.
    pub thumb: Option<Vec<u8>>,
    /// The bank's provider (if the bank still exists).
    pub provider: Option<String>,
    /// The bank's threshold (if the bank still exists).
    pub threshold: Option<i64>,
}

/// A recorded match by id.
pub async fn match_detail(store: &Store, id: i64) -> Result<MatchDetail, sqlx::Error> {
    let r = sqlx::query(&store.sql(
        "SELECT m.*, b.provider, b.threshold FROM console_matches m \
         LEFT JOIN banks b ON b.name = m.bank WHERE m.id = ?",
    ))
    .bind(id)
    .fetch_one(&store.pool)
    .await?;
    Ok(MatchDetail {
        at: r.try_get("at")?,
        actor: r.try_get("actor")?,
        bank: r.try_get("bank")?,
        content_id: r.try_get("content_id")?,
        signal_type: r.try_get("signal_type")?,
        distance: r.try_get("distance")?,
        pdq: r.try_get("pdq")?,
        md5: r.try_get("md5")?,
        sha256: r.try_get("sha256")?,
        thumb: r.try_get("thumb")?,
        provider: r.try_get("provider")?,
        threshold: r.try_get("threshold")?,
    })
}

fn id_and_text(r: &AnyRow, id: &str, text: &str) -> Result<(i64, String), sqlx::Error> {
    Ok((r.try_get(id)?, r.try_get(text)?))
}

/// (id, PDQ) of the newest `limit` recorded matches with a PDQ hash.
pub async fn recent_match_pdqs(
    store: &Store,
    limit: i64,
) -> Result<Vec<(i64, String)>, sqlx::Error> {
    sqlx::query(
        &store.sql(
            "SELECT id, pdq FROM console_matches WHERE pdq IS NOT NULL ORDER BY id DESC LIMIT ?",
        ),
    )
    .bind(limit)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| id_and_text(r, "id", "pdq"))
    .collect()
}

/// (id, PDQ) of up to 50 recorded matches with exactly this PDQ hash.
pub async fn matches_with_pdq(store: &Store, pdq: &str) -> Result<Vec<(i64, String)>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT id, pdq FROM console_matches WHERE pdq = ? LIMIT 50"))
        .bind(pdq)
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(|r| id_and_text(r, "id", "pdq"))
        .collect()
}

/// (report id, hashes JSON) of the newest `limit` hashed attachments.
pub async fn recent_attachment_hashes(
    store: &Store,
    limit: i64,
) -> Result<Vec<(i64, String)>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT report_id, hashes FROM report_attachments WHERE hashes IS NOT NULL \
         ORDER BY report_id DESC LIMIT ?",
    ))
    .bind(limit)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| id_and_text(r, "report_id", "hashes"))
    .collect()
}

/// (account, hash) of the opened matches of the `limit` most recently
/// flagged accounts' rows.
pub async fn recent_flagged_hashes(
    store: &Store,
    limit: i64,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT o.account, o.hash FROM psi_opened o JOIN psi_accounts a ON a.account = o.account \
         WHERE a.flagged = 1 ORDER BY COALESCE(a.flagged_at, a.updated_at) DESC LIMIT ?",
    ))
    .bind(limit)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("account")?, r.try_get("hash")?)))
    .collect()
}

/// The newest `limit` reports an account sent a message of or reported.
pub async fn reports_of_account(
    store: &Store,
    account: &str,
    limit: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT report_id FROM (SELECT DISTINCT report_id FROM report_messages WHERE sender = ? \
         UNION SELECT DISTINCT report_id FROM report_reporters WHERE account = ?) x \
         ORDER BY report_id DESC LIMIT ?",
    ))
    .bind(account)
    .bind(account)
    .bind(limit)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| r.try_get("report_id"))
    .collect()
}

/// Whether private matching knows this account (flagged or not).
pub async fn account_known(store: &Store, account: &str) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query(&store.sql("SELECT 1 AS x FROM psi_accounts WHERE account = ?"))
            .bind(account)
            .fetch_optional(&store.pool)
            .await?
            .is_some(),
    )
}

/// The media of an item a reviewer revealed on `day`.
pub async fn revealed(
    store: &Store,
    reviewer_id: i64,
    item: &str,
    day: i64,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query(
        &store.sql(
            "SELECT media FROM console_reveals WHERE reviewer_id = ? AND item = ? AND day = ?",
        ),
    )
    .bind(reviewer_id)
    .bind(item)
    .bind(day)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| r.try_get("media"))
    .collect()
}

/// How many reveals a reviewer used on `day`.
pub async fn reveals_on(store: &Store, reviewer_id: i64, day: i64) -> Result<i64, sqlx::Error> {
    sqlx::query(
        &store.sql("SELECT COUNT(*) AS n FROM console_reveals WHERE reviewer_id = ? AND day = ?"),
    )
    .bind(reviewer_id)
    .bind(day)
    .fetch_one(&store.pool)
    .await?
    .try_get("n")
}

/// A console audit entry about an item.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    /// When (ms).
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What (`console.*`).
    pub action: String,
    /// Its detail, JSON text.
    pub detail: String,
}

/// The console's audit entries whose detail is like `needle`, oldest first.
pub async fn history(store: &Store, needle: &str) -> Result<Vec<HistoryRow>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT at, actor, action, detail FROM audit WHERE action LIKE 'console.%' AND detail LIKE ? ORDER BY id",
    ))
    .bind(needle)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(HistoryRow {
            at: r.try_get("at")?,
            actor: r.try_get("actor")?,
            action: r.try_get("action")?,
            detail: r.try_get("detail")?,
        })
    })
    .collect()
}

/// The visual derivatives opened from an account's vouchers, in the order
/// they were opened.
pub async fn derivatives(store: &Store, account: &str) -> Result<Vec<Vec<u8>>, sqlx::Error> {
    sqlx::query(
        &store.sql("SELECT derivative FROM psi_opened WHERE account = ? ORDER BY opened_at"),
    )
    .bind(account)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| r.try_get("derivative"))
    .collect()
}

/// A recorded match's thumbnail, if it has one.
pub async fn match_thumb(store: &Store, id: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
    Ok(
        sqlx::query(&store.sql("SELECT thumb FROM console_matches WHERE id = ?"))
            .bind(id)
            .fetch_optional(&store.pool)
            .await?
            .map(|r| r.try_get::<Option<Vec<u8>>, _>("thumb"))
            .transpose()?
            .flatten(),
    )
}

/// Records a reveal (at `at` ms, on `day`).
pub async fn insert_reveal(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    reviewer_id: i64,
    item: &str,
    media: &str,
    day: i64,
    at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO console_reveals (reviewer_id, item, media, day, at) VALUES (?, ?, ?, ?, ?)",
    ))
    .bind(reviewer_id)
    .bind(item)
    .bind(media)
    .bind(day)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Hides an item from a reviewer's queues (once).
pub async fn hide(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    reviewer_id: i64,
    item: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO console_hidden (reviewer_id, item, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
    ))
    .bind(reviewer_id)
    .bind(item)
    .bind(crate::now_ms())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A decision to record.
#[derive(Debug, Clone)]
pub struct NewDecision<'a> {
    /// `kind:id`.
    pub item: &'a str,
    /// `confirm`, `dismiss`, `escalate`, ...
    pub decision: &'a str,
    /// Its category.
    pub category: Option<&'a str>,
    /// The reviewer's note.
    pub note: Option<&'a str>,
    /// The banks the item matched, comma-separated.
    pub banks: String,
    /// Who decided.
    pub reviewer: &'a str,
    /// When (ms).
    pub at: i64,
    /// When the item was queued (ms).
    pub queued_at: i64,
    /// Distances per bank, JSON text.
    pub distances: String,
}

/// Records a decision; returns its id.
pub async fn insert_decision(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    d: &NewDecision<'_>,
) -> Result<i64, sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO console_decisions (item, decision, category, note, banks, reviewer, at, queued_at, distances) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    ))
    .bind(d.item)
    .bind(d.decision)
    .bind(d.category)
    .bind(d.note)
    .bind(&d.banks)
    .bind(d.reviewer)
    .bind(d.at)
    .bind(d.queued_at)
    .bind(&d.distances)
    .fetch_one(&mut *tx)
    .await?
    .try_get("id")
}

/// Takes an item off the queues.
pub async fn close(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    item: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql("DELETE FROM console_open WHERE item = ?"))
        .bind(item)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Moves an open item to the leads' queue, in the order of the time it was
/// queued (unless it is there already).
pub async fn escalate(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    item: &str,
    queued_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "UPDATE console_open SET queue = 'escalated', n = ?, s = item, t = ? \
         WHERE item = ? AND queue <> 'escalated'",
    ))
    .bind(queued_at)
    .bind(queued_at)
    .bind(item)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Sets (or with `None` removes) a bank's review policy, in the caller's
/// transaction.
pub async fn set_policy(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    bank: &str,
    max_distance: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql("DELETE FROM console_policy WHERE bank = ?"))
        .bind(bank)
        .execute(&mut *tx)
        .await?;
    if let Some(d) = max_distance {
        sqlx::query(&store.sql("INSERT INTO console_policy (bank, max_distance) VALUES (?, ?)"))
            .bind(bank)
            .bind(d)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Every review policy: (bank, max distance).
pub async fn policies(store: &Store) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query("SELECT bank, max_distance FROM console_policy")
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("bank")?, r.try_get("max_distance")?)))
        .collect()
}

/// A match to record for review.
#[derive(Debug, Clone)]
pub struct NewMatch<'a> {
    /// When (ms).
    pub at: i64,
    /// The API key whose query matched.
    pub actor: &'a str,
    /// The bank matched.
    pub bank: &'a str,
    /// The banked content matched.
    pub content_id: i64,
    /// `pdq`, `md5`, `rule`, ...
    pub signal_type: &'a str,
    /// Distance.
    pub distance: i64,
    /// The upload's PDQ hex.
    pub pdq: Option<&'a str>,
    /// The upload's MD5 hex.
    pub md5: Option<&'a str>,
    /// The upload's SHA-256 hex.
    pub sha256: Option<&'a str>,
    /// The upload's thumbnail (PNG).
    pub thumb: Option<Vec<u8>>,
}

/// Records a match; returns its id.
pub async fn insert_match(store: &Store, m: &NewMatch<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO console_matches (at, actor, bank, content_id, signal_type, distance, pdq, md5, sha256, thumb) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    ))
    .bind(m.at)
    .bind(m.actor)
    .bind(m.bank)
    .bind(m.content_id)
    .bind(m.signal_type)
    .bind(m.distance)
    .bind(m.pdq)
    .bind(m.md5)
    .bind(m.sha256)
    .bind(m.thumb.clone())
    .fetch_one(&store.pool)
    .await?
    .try_get("id")
}
