//! Franking end to end: every alteration of a reported message is refused;
//! known answers computed by an independent implementation (Python's hmac and
//! hashlib, from the byte layout documented in the crate) pin the wire format.

use bulwark_franking::{
    Context, FrankingTag, Keyring, Rejection, ReportedMessage, Salt, Stamp, frank, tag_of,
    verify_signature, verify_tag,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn ctx<'a>(sender: &'a [u8], conversation: &'a [u8], t: u64) -> Context<'a> {
    Context {
        sender,
        conversation,
        accepted_at: t,
    }
}

#[test]
fn known_answers_from_an_independent_implementation() {
    let salt = Salt(std::array::from_fn(|i| i as u8));
    let content = b"hello, this is a benign test message";
    let tag = tag_of(&salt, content);
    assert_eq!(
        hex::encode(tag.0),
        "b34034177749916b8d240fbaeda5c27196a3f563164e9f53e67d4de79c1bc988"
    );
    let ring = Keyring::from_keys([(1, [7u8; 32])]);
    let stamp = ring.stamp(&tag, &ctx(b"alice@example", b"group-42", 1_700_000_000));
    assert_eq!(stamp.key_id, 1);
    assert_eq!(
        hex::encode(stamp.mac),
        "ab919017ba6c0b9d8d065e721d330902b3f428b05e4fb4bb196b65ee0dadda3c"
    );
}

struct Sent {
    content: Vec<u8>,
    salt: Salt,
    tag: FrankingTag,
    stamp: Stamp,
}

fn send(ring: &Keyring, rng: &mut ChaCha8Rng, content: &[u8], c: &Context<'_>) -> Sent {
    let (salt, tag) = frank(content, rng);
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
    let c = ctx(b"alice", b"group-1", 1000);
    let m = send(&ring, &mut rng, b"meet at the usual place", &c);
    let other = send(&ring, &mut rng, b"a different message", &c);
    let report =
        |content: &[u8], salt: &Salt, context: Context<'_>, stamp: Stamp| -> Result<_, Rejection> {
            ring.verify_report(&ReportedMessage {
                content,
                salt: salt.clone(),
                context,
                stamp,
            })
        };
    // The receiver's own check, and the genuine report.
    verify_tag(&m.content, &m.salt, &m.tag).expect("tag");
    let ok = report(&m.content, &m.salt, c, m.stamp).expect("genuine report verifies");
    assert_eq!(ok.tag, m.tag);

    let mut content = m.content.clone();
    content[0] ^= 1;
    assert_eq!(
        verify_tag(&content, &m.salt, &m.tag),
        Err(Rejection::TagMismatch)
    );
    assert_eq!(
        report(&content, &m.salt, c, m.stamp),
        Err(Rejection::StampMismatch),
        "content"
    );
    let mut salt = m.salt.clone();
    salt.0[3] ^= 0x80;
    assert_eq!(
        report(&m.content, &salt, c, m.stamp),
        Err(Rejection::StampMismatch),
        "salt"
    );
    assert_eq!(
        report(
            &m.content,
            &m.salt,
            ctx(b"mallory", b"group-1", 1000),
            m.stamp
        ),
        Err(Rejection::StampMismatch),
        "sender"
    );
    assert_eq!(
        report(
            &m.content,
            &m.salt,
            ctx(b"alice", b"group-2", 1000),
            m.stamp
        ),
        Err(Rejection::StampMismatch),
        "replay into another conversation"
    );
    assert_eq!(
        report(
            &m.content,
            &m.salt,
            ctx(b"alice", b"group-1", 1001),
            m.stamp
        ),
        Err(Rejection::StampMismatch),
        "time"
    );
    let mut stamp = m.stamp;
    stamp.mac[31] ^= 1;
    assert_eq!(
        report(&m.content, &m.salt, c, stamp),
        Err(Rejection::StampMismatch),
        "stamp"
    );
    // Swapping stamps between two genuine messages.
    assert_eq!(
        report(&m.content, &m.salt, c, other.stamp),
        Err(Rejection::StampMismatch),
        "swapped stamp"
    );
    assert_eq!(
        report(&other.content, &other.salt, c, m.stamp),
        Err(Rejection::StampMismatch),
        "swapped stamp"
    );
    // Field boundaries are unambiguous: moving a byte from sender to conversation changes the stamp.
    assert_eq!(
        report(
            &m.content,
            &m.salt,
            ctx(b"alic", b"egroup-1", 1000),
            m.stamp
        ),
        Err(Rejection::StampMismatch),
        "boundary"
    );
    // A wrong service key.
    let stranger = Keyring::generate(&mut rng);
    assert_eq!(
        stranger.verify_report(&ReportedMessage {
            content: &m.content,
            salt: m.salt.clone(),
            context: c,
            stamp: m.stamp
        }),
        Err(Rejection::StampMismatch)
    );
    let unknown = Stamp {
        key_id: 99,
        ..m.stamp
    };
    assert_eq!(
        report(&m.content, &m.salt, c, unknown),
        Err(Rejection::UnknownKey(99))
    );
}

#[test]
fn rotation_keeps_old_reports_verifiable_until_retired() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut ring = Keyring::generate(&mut rng);
    let c = ctx(b"bob", b"g", 5);
    let old = send(&ring, &mut rng, b"before rotation", &c);
    let new_id = ring.rotate(&mut rng);
    let new = send(&ring, &mut rng, b"after rotation", &c);
    assert_eq!((old.stamp.key_id, new.stamp.key_id), (1, new_id));
    let verify = |ring: &Keyring, s: &Sent| {
        ring.verify_report(&ReportedMessage {
            content: &s.content,
            salt: s.salt.clone(),
            context: c,
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
    let c = ctx(b"carol", b"g", 9);
    let (_, tag) = frank(b"hi", &mut rng);
    let sig = ring.sign(&tag, &c).expect("signing key set");
    let vk = ring.verifying_key().expect("public key");
    verify_signature(&vk, &tag, &c, &sig).expect("valid");
    assert_eq!(
        verify_signature(&vk, &tag, &ctx(b"carol", b"g", 10), &sig),
        Err(Rejection::BadSignature)
    );
}

#[test]
fn secrets_are_not_printed() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (salt, _) = frank(b"x", &mut rng);
    assert_eq!(format!("{salt:?}"), "Salt(<redacted>)");
    let ring = Keyring::generate(&mut rng);
    assert_eq!(
        format!("{ring:?}"),
        "Keyring { key_ids: [1], signs: false }"
    );
}

#[test]
fn report_wire_format_round_trips_and_refuses_bad_fields() {
    use bulwark_franking::wire::{MessageIn, ReportJson, WireError, message_json, parse_report};
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let ring = Keyring::generate(&mut rng);
    let c = ctx(b"dave", b"g9", 77);
    let s = send(&ring, &mut rng, b"reported text", &c);
    let (att, ct) =
        bulwark_franking::attachment::seal(b"benign bytes", "image/png", "blob-9", &mut rng);
    let m = MessageIn {
        content: s.content.clone(),
        salt: s.salt.clone(),
        sender: "dave".into(),
        conversation: "g9".into(),
        accepted_at: 77,
        stamp: s.stamp,
        attachments: vec![(att, Some(ct))],
    };
    let json = serde_json::to_vec(&ReportJson {
        messages: vec![message_json(&m)],
        reason: Some("spam".into()),
        text: None,
    })
    .expect("json");
    let r = parse_report(&json).expect("parses");
    let back = &r.messages[0];
    ring.verify_report(&back.as_reported())
        .expect("verifies after the round trip");
    let (a, ct) = &back.attachments[0];
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
