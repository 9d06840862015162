//! Franking end to end: every alteration of a reported message is refused;
//! known answers computed by an independent implementation (Python's hmac and
//! hashlib, from the byte layout documented in the crate) pin the wire format.

use bulwark_franking::{
    Context, FrankingTag, Keyring, MessageInfo, Rejection, ReportedMessage, Salt, Stamp, frank,
    tag_of, verify_signature, verify_tag,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn ctx(sender: &str, conversation: &str, t: u64) -> Context {
    Context {
        info: MessageInfo::new(sender, conversation, "msg-1"),
        epoch: 3,
        recipients: vec!["alice".into(), "bob".into(), "carol".into()],
        accepted_at: t,
        stamper: "ds-key-1".into(),
    }
}

#[test]
fn known_answers_from_an_independent_implementation() {
    // Python: hmac.new(salt, lp(b"bulwark-franking-tag-v2") + lp(sender) + lp(conv)
    //   + lp(msg_id) + lp(content), sha256), lp = 4-byte big-endian length prefix;
    // recipients digest = sha256(b"bulwark-franking-recipients-v1" + be32(n) + lp(each sorted id));
    // stamp = hmac(key, lp(label) + lp(tag) + lp(sender) + lp(conv) + lp(msg_id)
    //   + lp(be64 epoch) + lp(digest) + lp(be64 time) + lp(stamper)).
    let salt = Salt(std::array::from_fn(|i| i as u8));
    let content = b"hello, this is a benign test message";
    let info = MessageInfo::new("alice@example", "group-42", "msg-0001");
    let tag = tag_of(&salt, &info, content);
    assert_eq!(
        hex::encode(tag.0),
        "46443372089509be6cac8a775874eb034314acc4859254beba127eb5a2811de3"
    );
    let c = Context {
        info,
        epoch: 7,
        // Order and repeats do not matter: the set is bound.
        recipients: [
            "bob@example",
            "alice@example",
            "carol@example",
            "bob@example",
        ]
        .map(String::from)
        .to_vec(),
        accepted_at: 1_700_000_000,
        stamper: "ds-0001".into(),
    };
    assert_eq!(
        hex::encode(c.recipients_digest()),
        "7a77260b6d0b37b0fb6703c2360557d92f3d132eaab99de55c60fa82bd0a485e"
    );
    let ring = Keyring::from_keys([(1, [7u8; 32])]);
    let stamp = ring.stamp(&tag, &c);
    assert_eq!(stamp.key_id, 1);
    assert_eq!(
        hex::encode(stamp.mac),
        "d5b219cf728c2bc3a1bf393063b0fd31650c0fe2376e51f7d0af98be1f378de9"
    );
}

struct Sent {
    content: Vec<u8>,
    salt: Salt,
    tag: FrankingTag,
    stamp: Stamp,
}

fn send(ring: &Keyring, rng: &mut ChaCha8Rng, content: &[u8], c: &Context) -> Sent {
    let (salt, tag) = frank(&c.info, content, rng);
    let stamp = ring.stamp(&tag, c);
    Sent {
        content: content.to_vec(),
        salt,
        tag,
        stamp,
    }
}

#[test]
fn a_genuine_report_verifies_and_every_alteration_is_refused() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let ring = Keyring::generate(&mut rng);
    let c = ctx("alice", "group-1", 1000);
    let m = send(&ring, &mut rng, b"meet at the usual place", &c);
    let other = send(&ring, &mut rng, b"a different message", &c);
    let report = |content: &[u8], salt: &Salt, context: &Context, stamp: Stamp| {
        ring.verify_report(&ReportedMessage {
            content,
            salt: salt.clone(),
            context,
            stamp,
        })
    };
    // The receiver's own check, and the genuine report.
    verify_tag(&c.info, &m.content, &m.salt, &m.tag).expect("tag");
    let ok = report(&m.content, &m.salt, &c, m.stamp).expect("genuine report verifies");
    assert_eq!(ok.tag, m.tag);

    let mut content = m.content.clone();
    content[0] ^= 1;
    assert_eq!(
        verify_tag(&c.info, &content, &m.salt, &m.tag),
        Err(Rejection::TagMismatch)
    );
    assert_eq!(
        report(&content, &m.salt, &c, m.stamp),
        Err(Rejection::StampMismatch),
        "content"
    );
    let mut salt = m.salt.clone();
    salt.0[3] ^= 0x80;
    assert_eq!(
        report(&m.content, &salt, &c, m.stamp),
        Err(Rejection::StampMismatch),
        "salt"
    );
    // Every field of the context, one at a time.
    let altered: Vec<(&str, Context)> = vec![
        ("sender", ctx("mallory", "group-1", 1000)),
        (
            "replay into another conversation",
            ctx("alice", "group-2", 1000),
        ),
        ("time", ctx("alice", "group-1", 1001)),
        (
            "re-targeted at another message id",
            Context {
                info: MessageInfo::new("alice", "group-1", "msg-2"),
                ..c.clone()
            },
        ),
        (
            "epoch",
            Context {
                epoch: 4,
                ..c.clone()
            },
        ),
        (
            "a recipient added (the reporter was not there)",
            Context {
                recipients: vec!["alice".into(), "bob".into(), "carol".into(), "dave".into()],
                ..c.clone()
            },
        ),
        (
            "another stamper",
            Context {
                stamper: "ds-key-2".into(),
                ..c.clone()
            },
        ),
        // Field boundaries are unambiguous: moving a byte from sender to conversation.
        ("boundary", ctx("alic", "egroup-1", 1000)),
    ];
    for (what, a) in &altered {
        assert_eq!(
            report(&m.content, &m.salt, a, m.stamp),
            Err(Rejection::StampMismatch),
            "{what}"
        );
        // The receiver would have dropped it too: the tag commits to sender,
        // conversation and message id.
        if a.info != c.info {
            assert_eq!(
                verify_tag(&a.info, &m.content, &m.salt, &m.tag),
                Err(Rejection::TagMismatch),
                "{what}"
            );
        }
    }
    // The recipient set is a set: order does not matter.
    let reordered = Context {
        recipients: vec!["carol".into(), "alice".into(), "bob".into()],
        ..c.clone()
    };
    report(&m.content, &m.salt, &reordered, m.stamp).expect("same set");
    assert!(c.has_recipient("bob") && !c.has_recipient("dave"));

    let mut stamp = m.stamp;
    stamp.mac[31] ^= 1;
    assert_eq!(
        report(&m.content, &m.salt, &c, stamp),
        Err(Rejection::StampMismatch),
        "stamp"
    );
    // Swapping stamps between two genuine messages.
    assert_eq!(
        report(&m.content, &m.salt, &c, other.stamp),
        Err(Rejection::StampMismatch),
        "swapped stamp"
    );
    assert_eq!(
        report(&other.content, &other.salt, &c, m.stamp),
        Err(Rejection::StampMismatch),
        "swapped stamp"
    );
    // A wrong service key.
    let stranger = Keyring::generate(&mut rng);
    assert_eq!(
        stranger.verify_report(&ReportedMessage {
            content: &m.content,
            salt: m.salt.clone(),
            context: &c,
            stamp: m.stamp
        }),
        Err(Rejection::StampMismatch)
    );
    let unknown = Stamp {
        key_id: 99,
        ..m.stamp
    };
    assert_eq!(
        report(&m.content, &m.salt, &c, unknown),
        Err(Rejection::UnknownKey(99))
    );
    // Empty or oversized fields are refused before any MAC.
    let empty = Context {
        stamper: String::new(),
        ..c.clone()
    };
    assert_eq!(
        report(&m.content, &m.salt, &empty, m.stamp),
        Err(Rejection::BadContext)
    );
}

#[test]
fn rotation_keeps_old_reports_verifiable_until_retired() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut ring = Keyring::generate(&mut rng);
    let c = ctx("bob", "g", 5);
    let old = send(&ring, &mut rng, b"before rotation", &c);
    let new_id = ring.rotate(&mut rng);
    let new = send(&ring, &mut rng, b"after rotation", &c);
    assert_eq!((old.stamp.key_id, new.stamp.key_id), (1, new_id));
    let verify = |ring: &Keyring, s: &Sent| {
        ring.verify_report(&ReportedMessage {
            content: &s.content,
            salt: s.salt.clone(),
            context: &c,
            stamp: s.stamp,
        })
    };
    verify(&ring, &old).expect("old key still verifies");
    verify(&ring, &new).expect("new key verifies");
    ring.retire_before(new_id);
    assert_eq!(verify(&ring, &old), Err(Rejection::UnknownKey(1)));
    verify(&ring, &new).expect("still verifies");
}

#[test]
fn signed_stamps_let_receivers_check_the_service() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let ring =
        Keyring::generate(&mut rng).with_signing_key(ed25519_dalek::SigningKey::generate(&mut rng));
    let c = ctx("carol", "g", 9);
    let (_, tag) = frank(&c.info, b"hi", &mut rng);
    let sig = ring.sign(&tag, &c).expect("signing key set");
    let vk = ring.verifying_key().expect("public key");
    verify_signature(&vk, &tag, &c, &sig).expect("valid");
    // A signature does not carry over to another time, message or recipient set.
    for other in [
        ctx("carol", "g", 10),
        Context {
            info: MessageInfo::new("carol", "g", "msg-9"),
            ..c.clone()
        },
        Context {
            recipients: vec!["alice".into()],
            ..c.clone()
        },
    ] {
        assert_eq!(
            verify_signature(&vk, &tag, &other, &sig),
            Err(Rejection::BadSignature)
        );
    }
}

#[test]
fn secrets_are_not_printed() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (salt, _) = frank(&MessageInfo::new("a", "b", "c"), b"x", &mut rng);
    assert_eq!(format!("{salt:?}"), "Salt(<redacted>)");
    let ring = Keyring::generate(&mut rng);
    assert_eq!(
        format!("{ring:?}"),
        "Keyring { key_ids: [1], signs: false }"
    );
}

#[test]
fn report_wire_format_round_trips_and_refuses_bad_fields() {
    use bulwark_franking::content::Content;
    use bulwark_franking::wire::{MessageIn, ReportJson, WireError, message_json, parse_report};
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let ring = Keyring::generate(&mut rng);
    let c = ctx("dave", "g9", 77);
    let (att, ct) =
        bulwark_franking::attachment::seal(b"benign bytes", "image/png", "blob-9", &mut rng);
    let content = Content {
        body: b"reported text".to_vec(),
        attachments: vec![att.clone()],
    }
    .to_bytes();
    let s = send(&ring, &mut rng, &content, &c);
    let m = MessageIn {
        content: s.content.clone(),
        salt: s.salt.clone(),
        context: c.clone(),
        stamp: s.stamp,
        stamp_signature: None,
        attachments: vec![(att, Some(ct))],
    };
    let json = serde_json::to_vec(&ReportJson {
        messages: vec![message_json(&m)],
        reason: Some("spam".into()),
        text: None,
        reporter: None,
    })
    .expect("json");
    let r = parse_report(&json).expect("parses");
    let back = &r.messages[0];
    ring.verify_report(&back.as_reported())
        .expect("verifies after the round trip");
    let (a, ct) = &back.attachments[0];
    assert!(
        Content::parse(&back.content)
            .expect("content")
            .references(a)
    );
    assert_eq!(
        bulwark_franking::attachment::open(a, ct.as_deref().expect("ciphertext")).expect("opens"),
        b"benign bytes"
    );

    let text = String::from_utf8(json).expect("utf8");
    let bad_salt = text.replace(&hex::encode(s.salt.0), "zz");
    assert!(matches!(
        parse_report(bad_salt.as_bytes()),
        Err(WireError::Field { field: "salt", .. })
    ));
    let no_stamper = text.replace("\"stamper\":\"ds-key-1\"", "\"stamper\":\"\"");
    assert!(matches!(
        parse_report(no_stamper.as_bytes()),
        Err(WireError::Field { .. })
    ));
    assert!(matches!(
        parse_report(b"{\"messages\": []}"),
        Err(WireError::Malformed(_))
    ));
    assert!(matches!(
        parse_report(b"not json"),
        Err(WireError::Malformed(_))
    ));
    let many = format!(
        "{{\"messages\": [{}]}}",
        vec![serde_json::to_string(&message_json(&m)).expect("m"); 101].join(",")
    );
    assert!(matches!(
        parse_report(many.as_bytes()),
        Err(WireError::TooLarge(_))
    ));
}
