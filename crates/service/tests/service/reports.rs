//! Report intake and review as service operations, without HTTP, on a real
//! store (SQLite; PostgreSQL too when `BULWARK_TEST_POSTGRES` is set): a
//! franked report signed by a recipient's enrolled device is verified,
//! its attachment opened with its committed key and hashed, and stored; a
//! report altered after stamping, or signed by the wrong device, is refused
//! with the check that failed and stored as rejected; the same message
//! reported again is the same report with one more reporter. The HTTP
//! surface is tested in crates/server/tests/server/api.rs (`reports`).
//!
//! All data is synthetic: fictitious accounts, benign texts and a generated
//! gradient image.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bulwark_franking::attachment::OpenError;
use bulwark_franking::content::Content;
use bulwark_franking::wire::{MessageIn, ReportIn, Reporter};
use bulwark_franking::{Context, MessageInfo, Stamp};
use bulwark_service::catalog::Catalog;
use bulwark_service::keys::{Caller, Role};
use bulwark_service::media::{Pool, PoolOptions};
use bulwark_service::metrics::Metrics;
use bulwark_service::reports::{
    self, AttachmentStatus, Intake, MAX_REASON_BYTES, Rejected, Rejection, Submitted,
};
use bulwark_service::secrets::Kek;
use bulwark_service::signals::TextIndexCache;
use bulwark_service::{Kind, devices, franking};
use bulwark_store::Store;
use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

use crate::support::TestStore;

/// Who the reported group's messages were delivered to.
const MEMBERS: [&str; 3] = ["alice", "bob", "mallory"];

/// The service's state report intake reads.
struct Service {
    store: Store,
    kek: Kek,
    media: Pool,
    catalog: Arc<Catalog>,
    metrics: Metrics,
    text_index: TextIndexCache,
}

impl Service {
    async fn new(store: Store) -> Service {
        let catalog = Arc::new(Catalog::new());
        catalog.load_full(&store).await.unwrap();
        Service {
            store,
            kek: Kek::generate(),
            media: Pool::new(&PoolOptions {
                workers: 1,
                max_uploads_in_flight: 1,
                decode_megapixels: 16,
                queue_timeout: Duration::from_secs(60),
                video_every_seconds: 1.0,
                video_timeout: Duration::from_secs(60),
                extra_hashes: bulwark_pdq::KindSet::NONE,
            }),
            catalog,
            metrics: Metrics::default(),
            text_index: TextIndexCache::default(),
        }
    }

    fn intake(&self) -> Intake<'_> {
        Intake {
            store: &self.store,
            kek: &self.kek,
            media: &self.media,
            catalog: &self.catalog,
            metrics: &self.metrics,
            text_index: &self.text_index,
        }
    }

    async fn submit(&self, caller: &Caller, report: &ReportIn) -> Submitted {
        reports::submit(self.intake(), caller, report)
            .await
            .unwrap()
    }

    /// A message from `sender` to [`MEMBERS`] as the sender franks it and
    /// the delivery service stamps it, with an attachment (and its
    /// ciphertext) when given.
    async fn franked(&self, text: &str, attachment: Option<&[u8]>, sender: &str) -> MessageIn {
        let mut rng = rand::thread_rng();
        let mut content = Content::text(text);
        let mut attachments = Vec::new();
        if let Some(file) = attachment {
            let (r, ct) = bulwark_franking::attachment::seal(file, "image/bmp", "blob-1", &mut rng);
            content.attachments.push(r.clone());
            attachments.push((r, Some(ct)));
        }
        let content = content.to_bytes();
        let message_id = format!("m-{}", rand::random::<u64>());
        let info = MessageInfo::new(sender, "group-1", &message_id);
        let (salt, tag) = bulwark_franking::frank(&info, &content, &mut rng);
        let recipients: Vec<String> = MEMBERS.iter().map(|m| m.to_string()).collect();
        let st = franking::stamp(
            &self.store,
            &self.kek,
            "stamper-key",
            franking::StampRequest {
                tag: tag.0,
                sender: sender.into(),
                conversation: "group-1".into(),
                message_id,
                epoch: 5,
                recipients: recipients.clone(),
            },
        )
        .await
        .unwrap();
        MessageIn {
            content,
            salt,
            context: Context {
                info,
                epoch: 5,
                recipients,
                accepted_at: st.accepted_at,
                stamper: st.stamper,
            },
            stamp: Stamp {
                key_id: st.key_id,
                mac: st.mac,
            },
            stamp_signature: Some(st.signature),
            attachments,
        }
    }
}

/// An enrolled device: its signing key and the caller its device key is.
struct Device {
    account: String,
    id: String,
    key: SigningKey,
    caller: Caller,
}

async fn enrol(store: &Store, account: &str, id: &str) -> Device {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let enrolled = devices::enrol(
        store,
        "stamper-key",
        account,
        id,
        &hex::encode(key.verifying_key().to_bytes()),
    )
    .await
    .unwrap();
    Device {
        account: account.into(),
        id: id.into(),
        key,
        caller: Caller {
            key_id: bulwark_service::keys::key_id_of(&enrolled.key).to_string(),
            role: Role::Device,
            device: Some((account.into(), id.into())),
        },
    }
}

/// A report of `messages` signed by `by`'s device key.
fn signed(messages: Vec<MessageIn>, by: &Device) -> ReportIn {
    let mut r = ReportIn {
        messages,
        reason: Some("spam".into()),
        text: Some("reported from the app".into()),
        reporter: None,
    };
    let signature = by.key.sign(&r.signing_input(&by.account, &by.id));
    r.reporter = Some(Reporter {
        account: by.account.clone(),
        device: by.id.clone(),
        signature: signature.to_bytes(),
    });
    r
}

/// A 64×64 24-bit BMP of a diagonal gradient with a bright square: an image
/// the decode pool hashes, written here byte by byte.
fn bmp() -> Vec<u8> {
    let (w, h) = (64u32, 64u32);
    let row = (w * 3).div_ceil(4) * 4;
    let size = 54 + row * h;
    let mut b = Vec::with_capacity(size as usize);
    b.extend_from_slice(b"BM");
    b.extend_from_slice(&size.to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&54u32.to_le_bytes());
    b.extend_from_slice(&40u32.to_le_bytes());
    b.extend_from_slice(&w.to_le_bytes());
    b.extend_from_slice(&h.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&24u16.to_le_bytes());
    b.extend_from_slice(&[0; 24]);
    for y in 0..h {
        for x in 0..w {
            let v = if (16..40).contains(&x) && (20..44).contains(&y) {
                255
            } else {
                ((x + y) * 2) as u8
            };
            b.extend_from_slice(&[v, v / 2, 255 - v]);
        }
        b.resize(b.len() + (row - w * 3) as usize, 0);
    }
    b
}

fn curator() -> Caller {
    Caller {
        key_id: "curator-key".into(),
        role: Role::Curator,
        device: None,
    }
}

fn rejected(s: Submitted) -> Rejected {
    match s {
        Submitted::Rejected(r) => r,
        other => panic!("not rejected: {other:?}"),
    }
}

/// A verified report is queued with its attachment opened and hashed; the
/// same message reported again, by another recipient or by the same one,
/// is that report with one more reporter (once per account).
async fn a_verified_report_is_stored_and_a_resubmission_joins_it(svc: &Service) {
    let bob = enrol(&svc.store, "bob", "bob-phone").await;
    let alice = enrol(&svc.store, "alice", "alice-laptop").await;
    let image = bmp();
    let m1 = svc.franked("hello", None, "mallory").await;
    let m2 = svc.franked("see this", Some(&image), "mallory").await;
    let Submitted::Queued(q) = svc
        .submit(&bob.caller, &signed(vec![m2.clone(), m1.clone()], &bob))
        .await
    else {
        panic!("a verified report was not queued");
    };
    assert_eq!((q.status, q.messages), ("queued", 2));
    assert_eq!(q.attachments.len(), 1);
    let att = &q.attachments[0];
    assert_eq!((att.message, att.index), (0, 0));
    assert_eq!(att.status, AttachmentStatus::Opened, "{att:?}");
    assert_eq!(att.error, None);
    let hashes = att.hashes.as_ref().unwrap();
    assert_eq!(hashes["kind"], "photo");
    // Hashed from the plaintext the committed key opened, not the ciphertext.
    assert_eq!(hashes["sha256"], hex::encode(Sha256::digest(&image)));
    assert_eq!(att.matches.as_deref().map(<[_]>::len), Some(0));

    let g = reports::get(&svc.store, &curator(), q.id).await.unwrap();
    assert_eq!(g.info.status, "queued");
    assert_eq!(g.info.rejection, None);
    assert_eq!(g.info.reason.as_deref(), Some("spam"));
    assert_eq!(g.messages.len(), 2);
    assert_eq!(g.messages[0].content_text.as_deref(), Some("see this"));
    assert_eq!(g.messages[1].content_text.as_deref(), Some("hello"));
    assert_eq!(g.messages[0].sender, "mallory");
    assert_eq!(
        g.messages[0].message_id.as_deref(),
        Some(m2.context.info.message_id.as_str())
    );
    assert_eq!(
        g.messages[0].recipients.as_deref(),
        Some(&MEMBERS.map(String::from)[..])
    );
    assert!(
        g.messages
            .iter()
            .all(|m| m.verified && m.rejection.is_none())
    );
    assert_eq!(g.messages[0].attachments[0].status, "opened");
    assert_eq!(g.messages[0].attachments[0].hashes, *hashes);
    assert_eq!(g.reporters.len(), 1);
    assert_eq!(
        (
            g.reporters[0].account.as_str(),
            g.reporters[0].device.as_str()
        ),
        ("bob", "bob-phone")
    );
    // Text signals were computed for both verified messages' texts.
    assert_eq!(g.text_signals.len(), 2, "{:?}", g.text_signals);
    assert!(g.rescue_matches.is_none(), "not a rescue reviewer");

    // Alice, another recipient, through a relaying matcher key: a duplicate.
    let relay = Caller {
        key_id: "matcher-key".into(),
        role: Role::Matcher,
        device: None,
    };
    let Submitted::Duplicate(d) = svc.submit(&relay, &signed(vec![m2.clone()], &alice)).await
    else {
        panic!("the same message was not a duplicate");
    };
    assert_eq!((d.id, d.status, d.duplicate), (q.id, "queued", true));
    // Bob again: the same report, and still one entry per account.
    let Submitted::Duplicate(d) = svc.submit(&bob.caller, &signed(vec![m2, m1], &bob)).await else {
        panic!("a resubmission was not a duplicate");
    };
    assert_eq!(d.id, q.id);
    let g = reports::get(&svc.store, &curator(), q.id).await.unwrap();
    let mut who: Vec<&str> = g.reporters.iter().map(|r| r.account.as_str()).collect();
    who.sort_unstable();
    assert_eq!(who, ["alice", "bob"]);
    let queued = reports::list(&svc.store, Some("queued"), None, None)
        .await
        .unwrap();
    assert_eq!(queued.items.len(), 1);
    assert_eq!(queued.items[0].id, q.id);
}

/// Every alteration after stamping, and every reporter who is not the
/// signing recipient, is refused with the check that failed, answered as
/// `report_rejected` and stored as rejected with that reason. An over-long
/// reason is a bad request and stores nothing.
async fn forged_or_altered_reports_are_refused_and_recorded(svc: &Service) {
    // Bob's second device reports; the message went to his account.
    let bob = enrol(&svc.store, "bob", "bob-tablet").await;
    let good = svc.franked("the real message", None, "mallory").await;
    let other = svc.franked("another message", None, "mallory").await;
    let stamp_mismatch = Rejection::Message {
        message: 0,
        why: bulwark_franking::Rejection::StampMismatch,
    };
    let mut cases: Vec<(&str, ReportIn, &Device, Rejection)> = Vec::new();
    let alter = |f: &dyn Fn(&mut MessageIn)| {
        let mut m = good.clone();
        f(&mut m);
        m
    };
    for (what, m) in [
        (
            "content",
            alter(&|m| m.content = Content::text("a different message").to_bytes()),
        ),
        ("salt", alter(&|m| m.salt.0 = [7; 16])),
        ("sender", alter(&|m| m.context.info.sender = "alice".into())),
        (
            "conversation",
            alter(&|m| m.context.info.conversation = "other-group".into()),
        ),
        ("epoch", alter(&|m| m.context.epoch += 1)),
        (
            "recipients",
            alter(&|m| m.context.recipients.push("eve".into())),
        ),
        ("stamper", alter(&|m| m.context.stamper = "another".into())),
        ("time", alter(&|m| m.context.accepted_at += 1)),
        (
            "stamp from another message",
            alter(&|m| m.stamp = other.stamp),
        ),
    ] {
        cases.push((what, signed(vec![m], &bob), &bob, stamp_mismatch.clone()));
    }
    cases.push((
        "unknown service key",
        signed(vec![alter(&|m| m.stamp.key_id = 99)], &bob),
        &bob,
        Rejection::Message {
            message: 0,
            why: bulwark_franking::Rejection::UnknownKey(99),
        },
    ));
    // Attachments: one its message never referenced, and one whose
    // ciphertext was swapped for another's.
    let with = svc.franked("x", Some(&bmp()), "mallory").await;
    let mut unreferenced = good.clone();
    unreferenced.attachments = with.attachments.clone();
    cases.push((
        "unreferenced attachment",
        signed(vec![unreferenced], &bob),
        &bob,
        Rejection::NotReferenced {
            message: 0,
            attachment: 0,
        },
    ));
    let mut swapped = svc.franked("y", Some(b"another file"), "mallory").await;
    swapped.attachments[0].1 = with.attachments[0].1.clone();
    cases.push((
        "swapped ciphertext",
        signed(vec![swapped], &bob),
        &bob,
        Rejection::DoesNotOpen {
            message: 0,
            attachment: 0,
            why: OpenError::DigestMismatch,
        },
    ));
    // Reporters: not a recipient, a bad signature, none, another device's
    // key, a device never enrolled.
    let eve = enrol(&svc.store, "eve", "eve-phone").await;
    cases.push((
        "not a recipient",
        signed(vec![good.clone()], &eve),
        &eve,
        Rejection::NotRecipient {
            message: 0,
            account: "eve".into(),
        },
    ));
    let mut bad_sig = signed(vec![good.clone()], &bob);
    bad_sig.reporter.as_mut().unwrap().signature = eve.key.sign(b"anything").to_bytes();
    cases.push(("bad signature", bad_sig, &bob, Rejection::BadSignature));
    let mut unsigned = signed(vec![good.clone()], &bob);
    unsigned.reporter = None;
    cases.push(("unsigned", unsigned, &bob, Rejection::Unsigned));
    cases.push((
        "a device key as another device",
        signed(vec![good.clone()], &bob),
        &eve,
        Rejection::NotOwnDevice,
    ));
    let ghost = Device {
        account: "bob".into(),
        id: "never-enrolled".into(),
        key: SigningKey::generate(&mut rand::rngs::OsRng),
        caller: Caller {
            key_id: "matcher-key".into(),
            role: Role::Matcher,
            device: None,
        },
    };
    cases.push((
        "not enrolled",
        signed(vec![good.clone()], &ghost),
        &ghost,
        Rejection::NotEnrolled {
            account: "bob".into(),
            device: "never-enrolled".into(),
        },
    ));

    let before = reports::list(&svc.store, Some("rejected"), None, None)
        .await
        .unwrap()
        .items
        .len();
    let n = cases.len();
    for (what, report, by, why) in cases {
        let r = rejected(svc.submit(&by.caller, &report).await);
        assert_eq!(r.reason, why, "{what}");
        let e = r.error();
        assert_eq!(
            (e.kind, e.code),
            (Kind::Unprocessable, "report_rejected"),
            "{what}"
        );
        let g = reports::get(&svc.store, &curator(), r.report_id)
            .await
            .unwrap();
        assert_eq!(g.info.status, "rejected", "{what}");
        assert_eq!(g.info.rejection, Some(why.to_string()), "{what}");
    }
    let after = reports::list(&svc.store, Some("rejected"), None, None)
        .await
        .unwrap();
    assert_eq!(after.items.len(), before + n);

    // A rejected report does not hold the message: the genuine one is queued.
    assert!(matches!(
        svc.submit(&bob.caller, &signed(vec![good.clone()], &bob))
            .await,
        Submitted::Queued(_)
    ));
    // Over-long reasons are refused before anything is stored.
    let mut long = signed(vec![good], &bob);
    long.reason = Some("r".repeat(MAX_REASON_BYTES + 1));
    let e = reports::submit(svc.intake(), &bob.caller, &long)
        .await
        .unwrap_err();
    assert_eq!(e.kind, Kind::BadRequest, "{e}");
    let all = reports::list(&svc.store, None, None, Some(1000))
        .await
        .unwrap();
    assert_eq!(all.items.len(), before + n + 2, "{:?}", all.items);
    let e = reports::get(&svc.store, &curator(), 1_000_000)
        .await
        .unwrap_err();
    assert_eq!(e.kind, Kind::NotFound);
}

async fn exercise(store: Store) {
    let svc = Service::new(store).await;
    a_verified_report_is_stored_and_a_resubmission_joins_it(&svc).await;
    forged_or_altered_reports_are_refused_and_recorded(&svc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_on_sqlite() {
    let t = TestStore::sqlite().await;
    exercise(t.store.clone()).await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_on_postgres() {
    let Some(t) = TestStore::postgres("reports").await else {
        return;
    };
    exercise(t.store.clone()).await;
    t.cleanup().await;
}
