//! Matching a query's signals against the banks: PDQ through the index
//! (each bank's threshold and quality floor), exact types through the
//! store, extra hashes under the "both sides" pairing rules
//! (docs/DETECTION.md), and videos under the vPDQ rule, off the async
//! runtime.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bulwark_banks::Signal;
use bulwark_pdq::{HashKind, KindHash, Pairing, PdqHash, Rect};
use bulwark_store::Store;
use serde::Serialize;

use crate::catalog::{Catalog, Hit};
use crate::error::{Error, Result};
use crate::media::Hashed;
use crate::metrics::Metrics;

/// One match, as the API reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Match {
    /// The bank.
    pub bank: String,
    /// The banked content item.
    pub content_id: i64,
    /// `pdq`, `md5`, `sha256`, `vpdq`, …
    pub signal_type: String,
    /// Hamming distance (PDQ and exact types: 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance: Option<u32>,
    /// The banked entry is a frame of a video.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub video_frame: bool,
    /// The query's value that matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_signal: Option<String>,
    /// Through an extra hash: the query's hash kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_kind: Option<&'static str>,
    /// Through an extra hash: the banked hash's kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bank_hash_kind: Option<&'static str>,
    /// A video: percent of the query's frames found in the banked video.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_percent: Option<f64>,
    /// A video: percent of the banked video's frames found in the query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compared_percent: Option<f64>,
}

impl Match {
    fn of_hit(h: &Hit, signal_type: &str, query_signal: String) -> Match {
        Match {
            bank: h.bank.to_string(),
            content_id: h.content_id,
            signal_type: signal_type.to_string(),
            distance: Some(h.distance),
            video_frame: h.video_frame,
            query_signal: Some(query_signal),
            hash_kind: None,
            bank_hash_kind: None,
            query_percent: None,
            compared_percent: None,
        }
    }
}

/// What matching reads and counts: the store (exact types), the index and
/// the match counters.
#[derive(Clone, Copy)]
pub struct Matcher<'a> {
    /// The store.
    pub store: &'a Store,
    /// The index.
    pub catalog: &'a Arc<Catalog>,
    /// The counters.
    pub metrics: &'a Metrics,
}

impl Matcher<'_> {
    /// Exact matches of an MD5 or SHA-256 value.
    pub async fn exact(&self, s: &Signal, banks: Option<&HashSet<String>>) -> Result<Vec<Hit>> {
        let holders =
            bulwark_store::exact_holders(self.store, s.signal_type().name(), &s.value()).await?;
        Ok(self.catalog.filter_exact(holders, banks))
    }

    /// Every match of the given signals; `pdq_quality` is the quality of the
    /// PDQ signals when known (an upload's), checked against each bank's floor.
    pub async fn signals(
        &self,
        signals: &[Signal],
        pdq_quality: Option<u32>,
        banks: Option<&HashSet<String>>,
    ) -> Result<Vec<Match>> {
        let mut out = Vec::new();
        for s in signals {
            let hits = match s {
                Signal::Pdq(h) => self.catalog.search_usable(h, pdq_quality, banks),
                other => self.exact(other, banks).await?,
            };
            for h in &hits {
                self.metrics.matched(&h.bank, 1);
            }
            out.extend(
                hits.iter()
                    .map(|h| Match::of_hit(h, s.signal_type().name(), s.value())),
            );
        }
        Ok(out)
    }

    /// Every match of an uploaded file's hashes: PDQ, MD5, SHA-256 and the
    /// extra hashes for an image; MD5, SHA-256 and the vPDQ rule over its
    /// frames for a video.
    pub async fn hashed(
        &self,
        hashed: &Hashed,
        banks: Option<&HashSet<String>>,
    ) -> Result<Vec<Match>> {
        match hashed {
            Hashed::Photo {
                pdq,
                quality,
                md5,
                sha256,
                extras,
            } => {
                let mut m = self
                    .signals(
                        &[
                            Signal::Pdq(*pdq),
                            Signal::Md5(*md5),
                            Signal::Sha256(*sha256),
                        ],
                        Some(*quality),
                        banks,
                    )
                    .await?;
                let seen = m.iter().map(|m| (m.bank.as_str(), m.content_id)).collect();
                let more = self.extras((*pdq, *quality), extras, &seen, banks);
                m.extend(more);
                Ok(m)
            }
            Hashed::Video {
                frames,
                frame_extras,
                md5,
                sha256,
            } => {
                let mut m = self
                    .signals(&[Signal::Md5(*md5), Signal::Sha256(*sha256)], None, banks)
                    .await?;
                // The vPDQ rule compares every frame pair (rayon inside): a
                // blocking thread, not the async runtime.
                let mut by_frame: HashMap<u64, Vec<KindHash>> = HashMap::new();
                for (f, e) in frame_extras {
                    by_frame.entry(*f).or_default().push(*e);
                }
                let frames: Vec<bulwark_vpdq::FrameExtras> = frames
                    .iter()
                    .map(|f| bulwark_vpdq::FrameExtras {
                        frame: *f,
                        extras: by_frame.remove(&f.frame).unwrap_or_default(),
                    })
                    .collect();
                let (catalog, only) = (Arc::clone(self.catalog), banks.cloned());
                let hits = tokio::task::spawn_blocking(move || {
                    let rule = bulwark_vpdq::MatchRule::default();
                    catalog.match_video(&frames, &rule, only.as_ref())
                })
                .await
                .map_err(Error::internal)?;
                for v in hits {
                    self.metrics.matched(&v.bank, 1);
                    if let Some((q, b)) = v.via {
                        let label = if q == HashKind::Full { b } else { q };
                        self.metrics.matched_extra(&v.bank, label);
                    }
                    m.push(Match {
                        bank: v.bank.to_string(),
                        content_id: v.content_id,
                        signal_type: "vpdq".into(),
                        distance: None,
                        video_frame: false,
                        query_signal: None,
                        // Set only for a match found through frame extras.
                        hash_kind: v.via.map(|(q, _)| q.as_str()),
                        bank_hash_kind: v.via.map(|(_, b)| b.as_str()),
                        query_percent: Some(v.query_percent),
                        compared_percent: Some(v.compared_percent),
                    });
                }
                Ok(m)
            }
        }
    }

    /// Matches of an upload's hashes through extra hashes, on either side,
    /// that are not `seen` (the (bank, content) pairs its plain PDQ, MD5 and
    /// SHA-256 found):
    /// the query's full hash and extras against banked full hashes and
    /// banked extras, under the "both sides" pairing rules; each banked item
    /// once, through its closest pair, with `hash_kind` (the query's kind)
    /// and `bank_hash_kind` (the banked hash's). Each query hash passes the
    /// bank's quality floor with its own quality.
    pub fn extras(
        &self,
        full: (PdqHash, u32),
        extras: &[KindHash],
        seen: &HashSet<(&str, i64)>,
        banks: Option<&HashSet<String>>,
    ) -> Vec<Match> {
        let mut query = Vec::with_capacity(1 + extras.len());
        query.push(KindHash {
            kind: HashKind::Full,
            hash: full.0,
            quality: full.1,
            rect: Rect {
                x: 0,
                y: 0,
                width: 0,
                height: 0,
            },
        });
        query.extend(extras.iter().filter(|e| e.kind != HashKind::Full));
        self.catalog
            .search_multi(&query, Pairing::Both, banks)
            .into_iter()
            .filter(|m| !seen.contains(&(&*m.hit.bank, m.hit.content_id)))
            .filter(|m| (m.query, m.bank_kind) != (HashKind::Full, HashKind::Full))
            .map(|m| {
                self.metrics.matched(&m.hit.bank, 1);
                let label = if m.query == HashKind::Full {
                    m.bank_kind
                } else {
                    m.query
                };
                self.metrics.matched_extra(&m.hit.bank, label);
                Match {
                    hash_kind: Some(m.query.as_str()),
                    bank_hash_kind: Some(m.bank_kind.as_str()),
                    ..Match::of_hit(&m.hit, "pdq", m.query_hash.to_string())
                }
            })
            .collect()
    }
}
