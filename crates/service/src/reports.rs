//! Verifiable reports without HTTP: intake ([`submit`]) and review
//! ([`list`], [`get`]). docs/REPORTING.md describes the protocol.
//!
//! A report is verified message by message (franking tag from content, salt
//! and message info, then the service's stamp over tag, sender,
//! conversation, message id, epoch, recipient set, time and stamper);
//! attachments are accepted only when they are one of the parsed references
//! of the verified content, and, sent with their ciphertext, are opened with
//! their committed key, hashed and matched against the banks. A signed
//! reporter must be an enrolled device of an account that was a recipient of
//! every reported message. A report that fails verification is stored as
//! `rejected` with the reason ([`Rejection`]), never silently dropped. The
//! same message reported again is the same report, with one more reporter.

use std::sync::Arc;

use base64::Engine as _;
use bulwark_franking::content::Content;
use bulwark_franking::wire::ReportIn;
use bulwark_pdq::PdqHash;
use bulwark_store::{Store, reports, rfc3339};
use serde::Serialize;
use serde_json::Value;

use crate::catalog::Catalog;
use crate::error::{Error, Kind, Result, snippet};
use crate::keys::{Caller, Role};
use crate::matching::{Match, Matcher};
use crate::media::{Hashed, Pool};
use crate::metrics::Metrics;
use crate::secrets::Kek;
use crate::signals::{
    self, AttachmentRescueMatches, MessageTextSignals, ReportSignals, TextIndexCache,
};

/// Longest reason code, in bytes.
pub const MAX_REASON_BYTES: usize = 200;
/// Longest reporter's text, in bytes.
pub const MAX_TEXT_BYTES: usize = 16 << 10;
/// Reports per page unless the caller asks for another number.
pub const DEFAULT_PAGE: i64 = 100;
/// Most reports per page.
pub const MAX_PAGE: i64 = 1000;

/// What report intake reads and writes: the store and its sealed franking
/// keys, the decode pool that hashes opened attachments, and the matching
/// state they and the messages' texts are matched against.
#[derive(Clone, Copy)]
pub struct Intake<'a> {
    /// The store.
    pub store: &'a Store,
    /// The key-encryption key the franking keys are sealed under.
    pub kek: &'a Kek,
    /// Hashes opened attachments.
    pub media: &'a Pool,
    /// The index.
    pub catalog: &'a Arc<Catalog>,
    /// Match counters.
    pub metrics: &'a Metrics,
    /// The text-hash index and compiled rules.
    pub text_index: &'a TextIndexCache,
}

impl<'a> Intake<'a> {
    fn matcher(&self) -> Matcher<'a> {
        Matcher {
            store: self.store,
            catalog: self.catalog,
            metrics: self.metrics,
        }
    }

    fn signals(&self) -> signals::Context<'a> {
        signals::Context {
            store: self.store,
            catalog: self.catalog,
            metrics: self.metrics,
            text_index: self.text_index,
        }
    }
}

/// Why a report does not verify: the first failed check, stored with the
/// report and shown to its reviewers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// A message's franking tag or the service's stamp does not verify.
    Message {
        /// The message's index in the report.
        message: usize,
        /// Which check failed.
        why: bulwark_franking::Rejection,
    },
    /// An attachment is not one of the parsed references of its message's
    /// content.
    NotReferenced {
        /// The message's index.
        message: usize,
        /// The attachment's index in the message.
        attachment: usize,
    },
    /// An attachment's ciphertext does not open with its committed key.
    DoesNotOpen {
        /// The message's index.
        message: usize,
        /// The attachment's index in the message.
        attachment: usize,
        /// Which check failed.
        why: bulwark_franking::attachment::OpenError,
    },
    /// The report names no reporter.
    Unsigned,
    /// A device key reported as another device.
    NotOwnDevice,
    /// The reporter is not an enrolled device (or it was revoked).
    NotEnrolled {
        /// The account named.
        account: String,
        /// The device named.
        device: String,
    },
    /// The reporter's device signature does not verify.
    BadSignature,
    /// The reporter's account was not a recipient of a reported message.
    NotRecipient {
        /// The message's index.
        message: usize,
        /// The reporter's account.
        account: String,
    },
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Message { message, why } => write!(f, "message {message}: {why}"),
            Rejection::NotReferenced {
                message,
                attachment,
            } => write!(
                f,
                "message {message} attachment {attachment}: not referenced by the franked content"
            ),
            Rejection::DoesNotOpen {
                message,
                attachment,
                why,
            } => write!(f, "message {message} attachment {attachment}: {why}"),
            Rejection::Unsigned => f.write_str(
                "the report is not signed by the reporter's device (reporter is missing)",
            ),
            Rejection::NotOwnDevice => {
                f.write_str("a device key may only report as its own device")
            }
            Rejection::NotEnrolled { account, device } => write!(
                f,
                "reporter device {:?} of account {:?} is not enrolled (or was revoked)",
                snippet(device),
                snippet(account)
            ),
            Rejection::BadSignature => f.write_str("the reporter's signature does not verify"),
            Rejection::NotRecipient { message, account } => write!(
                f,
                "message {message}: the reporter {:?} was not one of its recipients",
                snippet(account)
            ),
        }
    }
}

/// What became of a reported attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentStatus {
    /// Its ciphertext was sent and opened with its committed key.
    Opened,
    /// Not referenced by its message, or its ciphertext does not open.
    Rejected,
    /// Referenced, but sent without its ciphertext (or its message did not
    /// verify, so it was not opened).
    NotProvided,
}

impl AttachmentStatus {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentStatus::Opened => "opened",
            AttachmentStatus::Rejected => "rejected",
            AttachmentStatus::NotProvided => "not_provided",
        }
    }
}

/// A reported attachment as intake answers it.
#[derive(Debug, Clone, Serialize)]
pub struct AttachmentSummary {
    /// Its message's index in the report.
    pub message: usize,
    /// Its index in the message.
    pub index: usize,
    /// Blob id.
    pub blob_id: String,
    /// Media type.
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the ciphertext, hex.
    pub ciphertext_sha256: String,
    /// What became of it.
    pub status: AttachmentStatus,
    /// Why it was rejected, or why an opened one could not be hashed.
    pub error: Option<String>,
    /// An opened attachment's hashes (the media pool's summary; a video
    /// without its frame lines).
    pub hashes: Option<Value>,
    /// An opened attachment's matches against the banks.
    pub matches: Option<Vec<Match>>,
}

/// A verified report, stored and queued for review (`201`).
#[derive(Debug, Clone, Serialize)]
pub struct Queued {
    /// The report's id.
    pub id: i64,
    /// Always `queued`.
    pub status: &'static str,
    /// How many messages it holds.
    pub messages: usize,
    /// Its attachments, by message and position.
    pub attachments: Vec<AttachmentSummary>,
}

/// The same verified message was reported before: the reporter was added
/// to that report (`200`).
#[derive(Debug, Clone, Serialize)]
pub struct Duplicate {
    /// The existing report's id.
    pub id: i64,
    /// Always `queued`.
    pub status: &'static str,
    /// Always true.
    pub duplicate: bool,
}

impl Duplicate {
    fn of(id: i64) -> Duplicate {
        Duplicate {
            id,
            status: "queued",
            duplicate: true,
        }
    }
}

/// A report that does not verify, stored as `rejected` (`422`).
#[derive(Debug, Clone)]
pub struct Rejected {
    /// The stored report's id.
    pub report_id: i64,
    /// Why.
    pub reason: Rejection,
}

impl Rejected {
    /// The error a client is answered with: `report_rejected`
    /// ([`Kind::Unprocessable`]), with the reason.
    pub fn error(&self) -> Error {
        Error::new(
            Kind::Unprocessable,
            "report_rejected",
            format!("the report does not verify: {}", self.reason),
        )
    }
}

/// What [`submit`] did with a report. Each outcome is stored: only a
/// malformed or over-long report, or a caller who may not report, is an
/// `Err` and leaves no trace.
#[derive(Debug, Clone)]
pub enum Submitted {
    /// Verified, stored and queued for review.
    Queued(Queued),
    /// The same message was reported before: one more reporter.
    Duplicate(Duplicate),
    /// Does not verify: stored as `rejected`.
    Rejected(Rejected),
}

/// The reporter, once its device signature checked out.
struct CheckedReporter {
    account: String,
    device: String,
    signature: String,
}

/// Checks the reporter: an enrolled, not revoked device of its account whose
/// key signed the report; a device key may only report as itself.
async fn check_reporter(
    store: &Store,
    caller: &Caller,
    report: &ReportIn,
) -> Result<Result<CheckedReporter, Rejection>> {
    let Some(rep) = &report.reporter else {
        return Ok(Err(Rejection::Unsigned));
    };
    if caller.role == Role::Device {
        match &caller.device {
            Some((account, device)) if *account == rep.account && *device == rep.device => {}
            _ => return Ok(Err(Rejection::NotOwnDevice)),
        }
    }
    let Some(public) = crate::devices::public_key(store, &rep.account, &rep.device).await? else {
        return Ok(Err(Rejection::NotEnrolled {
            account: rep.account.clone(),
            device: rep.device.clone(),
        }));
    };
    let sig = ed25519_dalek::Signature::from_bytes(&rep.signature);
    if public
        .verify_strict(&report.signing_input(&rep.account, &rep.device), &sig)
        .is_err()
    {
        return Ok(Err(Rejection::BadSignature));
    }
    Ok(Ok(CheckedReporter {
        account: rep.account.clone(),
        device: rep.device.clone(),
        signature: hex::encode(rep.signature),
    }))
}

/// An attachment's outcome with what is stored but not answered.
struct Outcome {
    summary: AttachmentSummary,
    hashed: Option<Hashed>,
    plaintext: Option<Vec<u8>>,
}

/// Report intake: verifies `report` as `caller` sent it (a device key, or a
/// matcher key relaying for a device: the HTTP layer checks the role),
/// opens, hashes and matches its attachments, matches the verified
/// messages' texts against every bank and opened photos against the rescue
/// banks, and stores it with its messages, attachments, reporter and
/// signals in one transaction.
///
/// `Err` only for a reason over [`MAX_REASON_BYTES`] or a text over
/// [`MAX_TEXT_BYTES`] (`bad_request`), and for faults of the service.
pub async fn submit(cx: Intake<'_>, caller: &Caller, report: &ReportIn) -> Result<Submitted> {
    if report
        .reason
        .as_ref()
        .is_some_and(|r| r.len() > MAX_REASON_BYTES)
        || report
            .text
            .as_ref()
            .is_some_and(|t| t.len() > MAX_TEXT_BYTES)
    {
        return Err(Error::bad_request(
            "reason is at most 200 bytes and text at most 16 KiB",
        ));
    }
    let store = cx.store;
    let ring = crate::franking::keyring(store, cx.kek).await?;
    let mut rejection: Option<Rejection> = None;
    // Per message: why it does not verify.
    let mut unverified = Vec::new();
    let mut contents = Vec::new();
    for (i, m) in report.messages.iter().enumerate() {
        let failed = ring.verify_report(&m.as_reported()).err();
        if let Some(why) = failed {
            rejection.get_or_insert(Rejection::Message { message: i, why });
        }
        unverified.push(failed);
        // Attachments count only as structured references of the content.
        contents.push(Content::parse(&m.content).ok());
    }
    let reporter = match check_reporter(store, caller, report).await? {
        Ok(r) => {
            for (i, m) in report.messages.iter().enumerate() {
                if !m.context.has_recipient(&r.account) {
                    rejection.get_or_insert_with(|| Rejection::NotRecipient {
                        message: i,
                        account: r.account.clone(),
                    });
                }
            }
            Some(r)
        }
        Err(why) => {
            rejection.get_or_insert(why);
            None
        }
    };
    // The same verified message reported again is the same report: one more reporter.
    let message_key = format!(
        "{}:{}",
        report.messages[0].stamp.key_id,
        hex::encode(report.messages[0].stamp.mac)
    );
    if rejection.is_none()
        && let (Some(id), Some(r)) = (
            reports::by_message_key(store, &message_key).await?,
            &reporter,
        )
    {
        add_reporter(store, caller, id, r, report).await?;
        return Ok(Submitted::Duplicate(Duplicate::of(id)));
    }
    // Attachments: opened only when their message verified.
    let mut outcomes = Vec::new();
    for (i, m) in report.messages.iter().enumerate() {
        for (j, (r, ct)) in m.attachments.iter().enumerate() {
            let mut o = Outcome {
                summary: AttachmentSummary {
                    message: i,
                    index: j,
                    blob_id: r.blob_id.clone(),
                    media_type: r.media_type.clone(),
                    size: r.size,
                    ciphertext_sha256: hex::encode(r.ciphertext_sha256),
                    status: AttachmentStatus::NotProvided,
                    error: None,
                    hashes: None,
                    matches: None,
                },
                hashed: None,
                plaintext: None,
            };
            let s = &mut o.summary;
            if !contents[i].as_ref().is_some_and(|c| c.references(r)) {
                s.status = AttachmentStatus::Rejected;
                s.error = Some("not referenced by the franked content".into());
                rejection.get_or_insert(Rejection::NotReferenced {
                    message: i,
                    attachment: j,
                });
            } else if let (Some(ct), None) = (ct, &unverified[i]) {
                match bulwark_franking::attachment::open(r, ct) {
                    Err(why) => {
                        s.status = AttachmentStatus::Rejected;
                        s.error = Some(why.to_string());
                        rejection.get_or_insert(Rejection::DoesNotOpen {
                            message: i,
                            attachment: j,
                            why,
                        });
                    }
                    Ok(plain) => {
                        s.status = AttachmentStatus::Opened;
                        match cx.media.hash(bytes::Bytes::from(plain.clone())).await {
                            Ok(h) => {
                                s.matches = Some(cx.matcher().hashed(&h, None).await?);
                                s.hashes = Some(h.summary_json());
                                o.hashed = Some(h);
                            }
                            Err(e) => s.error = Some(e.message),
                        }
                        o.plaintext = Some(plain);
                    }
                }
            }
            outcomes.push(o);
        }
    }
    // Text signals of the verified messages against every bank, and opened
    // photos against the rescue banks (report intake is the only path that
    // matches rescue banks; docs/SIGNALS.md).
    let texts: Vec<(usize, String)> = contents
        .iter()
        .enumerate()
        .filter(|(i, _)| unverified[*i].is_none())
        .filter_map(|(i, c)| Some((i, String::from_utf8(c.as_ref()?.body.clone()).ok()?)))
        .collect();
    let photos: Vec<(usize, usize, PdqHash, u32)> = outcomes
        .iter()
        .filter_map(|o| match &o.hashed {
            Some(Hashed::Photo { pdq, quality, .. }) => {
                Some((o.summary.message, o.summary.index, *pdq, *quality))
            }
            _ => None,
        })
        .collect();
    let extra = ReportSignals::compute(cx.signals(), &texts, &photos).await?;
    let mut tx = store.begin().await?;
    let rejection_text = rejection.as_ref().map(ToString::to_string);
    let inserted = reports::insert(
        store,
        &mut tx,
        &reports::NewReport {
            submitted_by: &caller.key_id,
            status: if rejection.is_some() {
                "rejected"
            } else {
                "queued"
            },
            reason: report.reason.as_deref(),
            text: report.text.as_deref(),
            rejection: rejection_text.as_deref(),
            message_key: rejection.is_none().then_some(message_key.as_str()),
        },
    )
    .await;
    let id = match inserted {
        Ok(id) => id,
        // A concurrent submission of the same message won: join it.
        Err(_) if rejection.is_none() => {
            drop(tx);
            let id = reports::by_message_key(store, &message_key)
                .await?
                .ok_or_else(|| Error::internal("report insert failed"))?;
            if let Some(r) = &reporter {
                add_reporter(store, caller, id, r, report).await?;
            }
            return Ok(Submitted::Duplicate(Duplicate::of(id)));
        }
        Err(e) => return Err(e.into()),
    };
    for (i, m) in report.messages.iter().enumerate() {
        let c = &m.context;
        let row = reports::MessageRow {
            idx: i as i64,
            sender: c.info.sender.clone(),
            conversation: c.info.conversation.clone(),
            accepted_at: c.accepted_at as i64,
            content: m.content.clone(),
            key_id: i64::from(m.stamp.key_id),
            verified: unverified[i].is_none(),
            rejection: unverified[i].map(|e| e.to_string()),
            message_id: Some(c.info.message_id.clone()),
            epoch: Some(c.epoch as i64),
            recipients: Some(serde_json::to_string(&c.recipients).map_err(Error::internal)?),
            stamper: Some(c.stamper.clone()),
        };
        reports::insert_message(store, &mut tx, id, &row).await?;
    }
    for o in &outcomes {
        let a = &o.summary;
        let row = reports::AttachmentRow {
            msg_idx: a.message as i64,
            idx: a.index as i64,
            blob_id: a.blob_id.clone(),
            media_type: a.media_type.clone(),
            size: a.size as i64,
            ciphertext_sha256: a.ciphertext_sha256.clone(),
            status: a.status.as_str().to_string(),
            error: a.error.clone(),
            hashes: a.hashes.as_ref().map(Value::to_string),
            // Through a `Value`, whose keys are sorted: the text the
            // console shows stays as it was written before matches were
            // typed.
            matches: a
                .matches
                .as_ref()
                .map(|m| serde_json::to_value(m).map(|v| v.to_string()))
                .transpose()
                .map_err(Error::internal)?,
            plaintext: o.plaintext.clone(),
        };
        reports::insert_attachment(store, &mut tx, id, &row).await?;
    }
    if let Some(r) = &reporter {
        insert_reporter(store, &mut tx, caller, id, r, report).await?;
    }
    extra.store(store, &mut tx, id).await?;
    tx.commit().await?;
    Ok(match rejection {
        None => Submitted::Queued(Queued {
            id,
            status: "queued",
            messages: report.messages.len(),
            attachments: outcomes.into_iter().map(|o| o.summary).collect(),
        }),
        Some(reason) => Submitted::Rejected(Rejected {
            report_id: id,
            reason,
        }),
    })
}

async fn insert_reporter(
    store: &Store,
    conn: &mut sqlx::AnyConnection,
    caller: &Caller,
    id: i64,
    r: &CheckedReporter,
    report: &ReportIn,
) -> Result<()> {
    reports::insert_reporter(
        store,
        conn,
        id,
        &reports::NewReporter {
            account: &r.account,
            device: &r.device,
            signature: &r.signature,
            submitted_by: &caller.key_id,
            reason: report.reason.as_deref(),
            text: report.text.as_deref(),
        },
    )
    .await?;
    Ok(())
}

async fn add_reporter(
    store: &Store,
    caller: &Caller,
    id: i64,
    r: &CheckedReporter,
    report: &ReportIn,
) -> Result<()> {
    let mut conn = store.pool.acquire().await?;
    insert_reporter(store, &mut conn, caller, id, r, report).await
}

// ---- review ----

/// A report as listed.
#[derive(Debug, Clone, Serialize)]
pub struct ReportInfo {
    /// Its id.
    pub id: i64,
    /// When it arrived (RFC 3339).
    pub received_at: String,
    /// The API key that submitted it.
    pub submitted_by: String,
    /// `queued`, `rejected`, …
    pub status: String,
    /// The reporter's reason code.
    pub reason: Option<String>,
    /// The reporter's text.
    pub text: Option<String>,
    /// Why it was rejected.
    pub rejection: Option<String>,
}

impl ReportInfo {
    fn of(r: &reports::ReportRow) -> ReportInfo {
        ReportInfo {
            id: r.id,
            received_at: rfc3339(r.received_at),
            submitted_by: r.submitted_by.clone(),
            status: r.status.clone(),
            reason: r.reason.clone(),
            text: r.text.clone(),
            rejection: r.rejection.clone(),
        }
    }
}

/// A page of reports.
#[derive(Debug, Clone, Serialize)]
pub struct ReportPage {
    /// Oldest first.
    pub items: Vec<ReportInfo>,
    /// The `after` of the next page; `None` on the last.
    pub next_after: Option<i64>,
}

/// Reports after id `after`, oldest first, optionally of one status;
/// `limit` defaults to [`DEFAULT_PAGE`] and is held within 1..=[`MAX_PAGE`].
pub async fn list(
    store: &Store,
    status: Option<&str>,
    after: Option<i64>,
    limit: Option<i64>,
) -> Result<ReportPage> {
    let limit = limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let rows = reports::list(store, status, after.unwrap_or(0), limit).await?;
    let next_after = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(ReportPage {
        items: rows.iter().map(ReportInfo::of).collect(),
        next_after,
    })
}

/// A stored attachment as a reviewer sees it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredAttachment {
    /// Its index in the message.
    pub index: i64,
    /// Blob id.
    pub blob_id: String,
    /// Media type.
    pub media_type: String,
    /// Size in bytes.
    pub size: i64,
    /// SHA-256 of the ciphertext, hex.
    pub ciphertext_sha256: String,
    /// `opened`, `rejected` or `not_provided`.
    pub status: String,
    /// Why it was rejected or could not be hashed.
    pub error: Option<String>,
    /// Its hashes as stored at intake (`null` when none).
    pub hashes: Value,
    /// Its matches as stored at intake (`null` when none).
    pub matches: Value,
}

/// A stored message with its verified context.
#[derive(Debug, Clone, Serialize)]
pub struct StoredMessage {
    /// Its index in the report.
    pub index: i64,
    /// Sender.
    pub sender: String,
    /// Conversation.
    pub conversation: String,
    /// Message id.
    pub message_id: Option<String>,
    /// MLS epoch.
    pub epoch: Option<i64>,
    /// Recipients.
    pub recipients: Option<Vec<String>>,
    /// The stamping key.
    pub stamper: Option<String>,
    /// When the delivery service accepted it (RFC 3339).
    pub accepted_at: String,
    /// Whether its tag and stamp verified.
    pub verified: bool,
    /// Why not.
    pub rejection: Option<String>,
    /// The franking key id of its stamp.
    pub key_id: i64,
    /// The franked content, base64.
    pub content_base64: String,
    /// The content's text, when it parses and is UTF-8.
    pub content_text: Option<String>,
    /// Its attachments.
    pub attachments: Vec<StoredAttachment>,
}

/// A reporter of a report.
#[derive(Debug, Clone, Serialize)]
pub struct ReporterInfo {
    /// Account.
    pub account: String,
    /// Device.
    pub device: String,
    /// When (RFC 3339).
    pub at: String,
    /// Reason code.
    pub reason: Option<String>,
}

/// A report as a reviewer reads it: the verified facts, message contents,
/// attachment hashes and matches, reporters and text signals.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What the list shows.
    #[serde(flatten)]
    pub info: ReportInfo,
    /// Its messages, in order.
    pub messages: Vec<StoredMessage>,
    /// Its reporters, first first.
    pub reporters: Vec<ReporterInfo>,
    /// The text signals of its verified messages.
    pub text_signals: Vec<MessageTextSignals>,
    /// Its photos' rescue matches: only for a designated rescue reviewer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rescue_matches: Option<Vec<AttachmentRescueMatches>>,
}

/// Report `id` as `caller` may see it (rescue matches only for a designated
/// rescue reviewer); `not_found` when there is none.
pub async fn get(store: &Store, caller: &Caller, id: i64) -> Result<Report> {
    let row = reports::get(store, id)
        .await?
        .ok_or_else(|| Error::not_found(format!("no report {id}")))?;
    let atts = reports::attachments(store, id).await?;
    let parse = |t: &Option<String>| -> Value {
        t.as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null)
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let messages = reports::messages(store, id)
        .await?
        .into_iter()
        .map(|m| StoredMessage {
            attachments: atts
                .iter()
                .filter(|a| a.msg_idx == m.idx)
                .map(|a| StoredAttachment {
                    index: a.idx,
                    blob_id: a.blob_id.clone(),
                    media_type: a.media_type.clone(),
                    size: a.size,
                    ciphertext_sha256: a.ciphertext_sha256.clone(),
                    status: a.status.clone(),
                    error: a.error.clone(),
                    hashes: parse(&a.hashes),
                    matches: parse(&a.matches),
                })
                .collect(),
            index: m.idx,
            recipients: m
                .recipients
                .as_deref()
                .and_then(|t| serde_json::from_str(t).ok()),
            accepted_at: rfc3339(m.accepted_at * 1000),
            content_base64: b64.encode(&m.content),
            content_text: Content::parse(&m.content)
                .ok()
                .and_then(|c| String::from_utf8(c.body).ok()),
            sender: m.sender,
            conversation: m.conversation,
            message_id: m.message_id,
            epoch: m.epoch,
            stamper: m.stamper,
            verified: m.verified,
            rejection: m.rejection,
            key_id: m.key_id,
        })
        .collect();
    let reporters = reports::reporters(store, id)
        .await?
        .into_iter()
        .map(|r| ReporterInfo {
            at: rfc3339(r.at),
            account: r.account,
            device: r.device,
            reason: r.reason,
        })
        .collect();
    let stored = signals::report_signals(store, caller, id).await?;
    Ok(Report {
        info: ReportInfo::of(&row),
        messages,
        reporters,
        text_signals: stored.text_signals,
        rescue_matches: stored.rescue_matches,
    })
}
