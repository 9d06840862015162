//! What an item's page reads: the item's facts and viewable media
//! ([`detail`]), items that look like it ([`similar`]) and its history
//! ([`history`]). Each read is bounded: an item page never reads a whole
//! table ([`SIMILAR_SCAN`]).

use bulwark_store::Store;
use bulwark_store::console::items::{
    self as store, AccountTimes, AttachmentView, MatchDetail, MessageView, OpenedView, ReportHead,
    ReporterView,
};
use serde_json::Value;

use super::media::{self, StripOptions};
use super::queue::Item;
use crate::error::{Error, Result};

/// An item as its page shows it.
#[derive(Debug, Clone)]
pub struct Detail {
    /// What it is, by kind.
    pub facts: Facts,
    /// Its viewable media (photos, opened voucher derivatives, video
    /// frames), each shown as a grey thumbnail ([`media::shown`]).
    pub media: Vec<Medium>,
    /// Why a video has no frames to show, one line each.
    pub notes: Vec<String>,
    /// Its PDQ hashes (hex): for similar items and adding it to a bank.
    pub pdq: Vec<String>,
    /// The accounts it involves (senders, reporters, the flagged account).
    pub accounts: Vec<String>,
}

/// What an item is, by kind.
#[derive(Debug, Clone)]
pub enum Facts {
    /// A verified report.
    Report {
        /// The report.
        head: ReportHead,
        /// Who reported it.
        reporters: Vec<ReporterView>,
        /// Its messages in order, with their text.
        messages: Vec<Message>,
        /// Its attachments, with their hashes.
        attachments: Vec<Attachment>,
    },
    /// An account flagged by its safety vouchers.
    Account {
        /// When it was flagged.
        times: AccountTimes,
        /// Its opened vouchers.
        opened: Vec<OpenedView>,
    },
    /// A recorded match of the match path.
    Match(MatchDetail),
}

/// A reported message and its text.
#[derive(Debug, Clone)]
pub struct Message {
    /// The message as stored.
    pub view: MessageView,
    /// Its text (empty when its content is not text).
    pub text: String,
}

/// A reported attachment and its hashes.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// The attachment as stored.
    pub view: AttachmentView,
    /// Its hashes (`kind`, `pdq`, `md5`, ...), `null` when it has none.
    pub hashes: Value,
}

/// One viewable medium of an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Medium {
    /// Its media id (what [`media::load`] takes).
    pub id: String,
    /// What it is, in words (its image's alternative text).
    pub label: String,
}

/// The facts and media of `item`. A report's photo attachments are viewable
/// when their decrypted copy is kept; a video (a report's attachment, or a
/// matched upload) shows its frame strip, extracted on first view
/// ([`media::strip`]), or a note why it has none.
pub async fn detail(s: &Store, strips: &StripOptions, item: &Item) -> Result<Detail> {
    let number = || {
        item.id
            .parse::<i64>()
            .map_err(|_| Error::not_found(format!("no such {}", item.kind)))
    };
    let key = item.key();
    let mut d = Parts::default();
    let facts = match item.kind {
        "report" => {
            let id = number()?;
            let head = store::report(s, id).await?;
            let reporters = store::report_reporters(s, id).await?;
            let mut messages = Vec::new();
            for view in store::report_messages(s, id).await? {
                let text = bulwark_franking::content::Content::parse(&view.content)
                    .ok()
                    .and_then(|c| String::from_utf8(c.body).ok())
                    .unwrap_or_default();
                d.accounts.push(view.sender.clone());
                messages.push(Message { view, text });
            }
            let mut attachments = Vec::new();
            for view in store::report_attachments(s, id).await? {
                let (mi, ai) = (view.msg_idx, view.idx);
                let hashes: Value = view
                    .hashes
                    .as_deref()
                    .and_then(|h| serde_json::from_str(h).ok())
                    .unwrap_or(Value::Null);
                if let Some(p) = hashes["pdq"].as_str() {
                    d.pdq.push(p.to_string());
                }
                if view.has_plain && hashes["kind"] == "photo" {
                    d.media.push(Medium {
                        id: format!("{mi}-{ai}"),
                        label: format!("attachment {ai} of message {mi} ({})", view.media_type),
                    });
                }
                if view.has_plain && hashes["kind"] == "video" {
                    let what = format!("video attachment {ai} of message {mi}");
                    let strip =
                        media::strip(s, strips, &key, &format!("{mi}-{ai}"), || async move {
                            Ok(store::attachment_plaintext(s, id, mi, ai).await?)
                        })
                        .await?;
                    push_strip(&mut d, &what, strip);
                }
                attachments.push(Attachment { view, hashes });
            }
            d.accounts
                .extend(reporters.iter().map(|r| r.account.clone()));
            Facts::Report {
                head,
                reporters,
                messages,
                attachments,
            }
        }
        "account" => {
            let a = &item.id;
            d.accounts.push(a.clone());
            let times = store::account(s, a).await?;
            let opened = store::opened(s, a).await?;
            for (n, o) in opened.iter().enumerate() {
                d.pdq.push(o.hash.clone());
                d.media.push(Medium {
                    id: n.to_string(),
                    label: format!("visual derivative {n} (low-resolution grey, from the voucher)"),
                });
            }
            Facts::Account { times, opened }
        }
        _ => {
            let r = store::match_detail(s, number()?).await?;
            d.pdq.extend(r.pdq.clone());
            if r.thumb.is_some() {
                d.media.push(Medium {
                    id: "0".into(),
                    label: "the uploaded file (kept only as a thumbnail)".into(),
                });
            }
            // A video upload: its frame strip, kept when the match was recorded.
            if r.thumb.is_none() && r.pdq.is_none() && r.md5.is_some() {
                let strip = media::strip(s, strips, &key, "0", || async { Ok(None) }).await?;
                push_strip(&mut d, "the uploaded video", strip);
            }
            Facts::Match(r)
        }
    };
    Ok(Detail {
        facts,
        media: d.media,
        notes: d.notes,
        pdq: d.pdq,
        accounts: d.accounts,
    })
}

/// What [`detail`] gathers besides the facts.
#[derive(Default)]
struct Parts {
    media: Vec<Medium>,
    notes: Vec<String>,
    pdq: Vec<String>,
    accounts: Vec<String>,
}

/// A video's frames as media ("frame 2 of 4, at 3.5 s, of ..."), or the
/// note why there are none.
fn push_strip(d: &mut Parts, what: &str, strip: std::result::Result<media::Strip, String>) {
    match strip {
        Ok(frames) => {
            let n = frames.len();
            for (k, (id, at)) in frames.into_iter().enumerate() {
                d.media.push(Medium {
                    id,
                    label: format!(
                        "frame {} of {n}, at {:.1} s, of {what}",
                        k + 1,
                        at as f64 / 1000.0
                    ),
                });
            }
        }
        Err(why) => d.notes.push(format!("{what}: {why}")),
    }
}

/// Rows of each source an item page compares hashes with (the most recent).
pub const SIMILAR_SCAN: i64 = 2000;

/// Largest PDQ distance at which two items count as similar.
pub const SIMILAR_DISTANCE: u32 = 31;

/// Most of an item's own PDQ hashes looked up exactly among recorded
/// matches of any age.
const EXACT_LOOKUPS: usize = 16;

/// An item like another one, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Similar {
    /// Its key (`kind:id`).
    pub key: String,
    /// Why: `PDQ distance N` or `same account A`.
    pub why: String,
}

impl Similar {
    /// Its page in the console.
    pub fn href(&self) -> String {
        let (kind, id) = self.key.split_once(':').unwrap_or(("", &self.key));
        format!("/console/item/{kind}/{id}")
    }
}

/// The items that share a hash (PDQ within [`SIMILAR_DISTANCE`] bits of one
/// of `pdq`) or an account (one of `accounts`) with item `me`, once each
/// (the first reason in order), sorted by key, `me` left out. Near hashes
/// are sought among the most recent [`SIMILAR_SCAN`] recorded matches,
/// hashed report attachments and flagged accounts' opened vouchers, and
/// exact PDQ matches among recorded matches of any age (by their index).
pub async fn similar(
    s: &Store,
    me: &str,
    pdq: &[String],
    accounts: &[String],
) -> Result<Vec<Similar>> {
    let mine: Vec<bulwark_pdq::PdqHash> = pdq.iter().filter_map(|h| h.parse().ok()).collect();
    let near = |h: &str| -> Option<u32> {
        let h: bulwark_pdq::PdqHash = h.parse().ok()?;
        mine.iter()
            .map(|m| m.distance(&h))
            .min()
            .filter(|d| *d <= SIMILAR_DISTANCE)
    };
    let mut out = Vec::new();
    let mut push = |key: String, why: String| out.push(Similar { key, why });
    let mut recent = store::recent_match_pdqs(s, SIMILAR_SCAN).await?;
    for h in pdq.iter().take(EXACT_LOOKUPS) {
        recent.extend(store::matches_with_pdq(s, h).await?);
    }
    for (id, p) in recent {
        if let Some(dist) = near(&p) {
            push(format!("match:{id}"), format!("PDQ distance {dist}"));
        }
    }
    for (id, h) in store::recent_attachment_hashes(s, SIMILAR_SCAN).await? {
        let v: Value = serde_json::from_str(&h).unwrap_or(Value::Null);
        if let Some(dist) = v["pdq"].as_str().and_then(near) {
            push(format!("report:{id}"), format!("PDQ distance {dist}"));
        }
    }
    for (a, hash) in store::recent_flagged_hashes(s, SIMILAR_SCAN).await? {
        if let Some(dist) = near(&hash) {
            push(format!("account:{a}"), format!("PDQ distance {dist}"));
        }
    }
    for a in accounts {
        for id in store::reports_of_account(s, a, SIMILAR_SCAN).await? {
            push(format!("report:{id}"), format!("same account {a}"));
        }
        if store::account_known(s, a).await? {
            push(format!("account:{a}"), format!("same account {a}"));
        }
    }
    out.retain(|x| x.key != me);
    out.sort();
    out.dedup_by(|a, b| a.key == b.key);
    Ok(out)
}

/// One entry of an item's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When (ms).
    pub at: i64,
    /// Who (`console:NAME`).
    pub actor: String,
    /// What (`console.*`).
    pub action: String,
    /// Its detail, JSON text.
    pub detail: String,
}

/// The console's audit entries about item `key` (their detail's `item` is
/// `key`), oldest first. The store finds them by a `LIKE` pattern; an
/// account name may hold `%` or `_`, which `LIKE` takes as wildcards, so
/// each candidate's `item` is checked exactly before it is shown.
pub async fn history(s: &Store, key: &str) -> Result<Vec<Entry>> {
    let needle = format!(
        "%\"item\":{}%",
        serde_json::to_string(key).map_err(crate::error::Error::internal)?
    );
    Ok(store::history(s, &needle)
        .await?
        .into_iter()
        .filter(|r| {
            serde_json::from_str::<Value>(&r.detail).is_ok_and(|d| d["item"].as_str() == Some(key))
        })
        .map(|r| Entry {
            at: r.at,
            actor: r.actor,
            action: r.action,
            detail: r.detail,
        })
        .collect())
}
