//! The messenger end to end: a real matcher service (`bulwark serve`,
//! in-process) and the delivery service, three users in a group (alice with
//! two devices), benign conformance images; vouchers below and above the
//! threshold, a verified report, and forged or re-targeted reports refused.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bulwark_chat::http::Http;
use bulwark_chat::{Attachment, Client, PdataPolicy};
use ed25519_dalek::Signer as _;
use serde_json::{Value, json};

use crate::support;

use support::{
    Env, account_status, bank_file, banks, contains, db_bytes, images, release, sqlite_count,
    sqlite_exec, start,
};

/// Two providers' banks with `banked`, a release at threshold 3 signed by
/// both; returns the providers' public keys.
fn publish_pdata(env: &Env, banked: &[PathBuf]) -> Vec<String> {
    banks(env);
    for img in banked {
        bank_file(env, img);
    }
    release(env, 3)
}

/// Re-signs a report JSON as `account/device` with `key`.
fn resign(body: &mut Value, account: &str, device: &str, key: &ed25519_dalek::SigningKey) {
    let parsed = bulwark_franking::wire::parse_report(&serde_json::to_vec(body).unwrap()).unwrap();
    let stamps: Vec<_> = parsed.messages.iter().map(|m| m.stamp).collect();
    let input = bulwark_franking::wire::report_signing_input(
        account,
        device,
        &stamps,
        parsed.reason.as_deref(),
        parsed.text.as_deref(),
    );
    body["reporter"] = json!({"account": account, "device": device,
        "signature": hex::encode(key.sign(&input).to_bytes())});
}

fn submit(env: &Env, key: &str, body: &Value) -> (u16, Value) {
    let r = Http::new(&env.matcher)
        .post_json("/v1/reports", Some(key), body)
        .unwrap();
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

#[test]
fn three_users_exchange_images_vouchers_flag_only_above_threshold_reports_verify() {
    let env = start();
    let imgs = images();
    let banked: Vec<PathBuf> = imgs
        .iter()
        .filter(|p| {
            let s = p.to_string_lossy();
            s.contains("reg-test-input") && !s.contains("bridge-1-original")
        })
        .cloned()
        .collect();
    let unbanked: Vec<PathBuf> = imgs
        .iter()
        .filter(|p| {
            let s = p.to_string_lossy();
            s.contains("misc-images") && !s.contains("modes")
        })
        .cloned()
        .collect();
    assert!(banked.len() >= 5 && unbanked.len() >= 2, "{unbanked:?}");
    let pins = publish_pdata(&env, &banked);
    let policy = PdataPolicy {
        providers: pins,
        allow_threshold: Some(3),
    };
    let dev = |user: &str, device: &str, link: Option<&str>| {
        let mut c = Client::register(
            &env.root.join(format!("{user}-{device}")),
            &env.ds,
            &env.matcher,
            user,
            device,
            link,
        )
        .unwrap();
        c.set_pdata_policy(policy.clone()).unwrap();
        c
    };
    let mut alice = dev("alice", "phone", None);
    let mut alice2 = dev("alice", "laptop", Some(alice.token()));
    let mut bob = dev("bob", "phone", None);
    let mut carol = dev("carol", "phone", None);
    let mut dave = dev("dave", "phone", None);
    // Nobody adds a device to someone else's account.
    assert!(
        Client::register(
            &env.root.join("mallory"),
            &env.ds,
            &env.matcher,
            "bob",
            "evil",
            Some(carol.token())
        )
        .is_err()
    );

    // A group of three users, four devices.
    alice.create_group("friends", &["bob", "carol"]).unwrap();
    for c in [&mut alice2, &mut bob, &mut carol] {
        let r = c.receive().unwrap();
        assert_eq!(r.joined, vec!["friends".to_string()], "{r:?}");
    }
    assert_eq!(alice.members("friends").unwrap().len(), 4);

    // Text, franked and stamped; every other device verifies it.
    let hello = alice.send("friends", "hello friends", &[]).unwrap();
    // The delivery service alters the stamp it queued for carol (a later
    // acceptance time): carol's client drops the message, as the service's
    // signature no longer verifies; the others get it.
    sqlite_exec(
        &env.ds_db,
        "UPDATE chat_queue SET stamp = json_set(stamp, '$.accepted_at', \
         json_extract(stamp, '$.accepted_at') + 1) WHERE user_name = 'carol' AND kind = 'message'",
    );
    let r = carol.receive().unwrap();
    assert!(r.messages.is_empty());
    assert_eq!(r.dropped.len(), 1, "{r:?}");
    assert!(r.dropped[0].reason.contains("signature"), "{r:?}");
    for c in [&mut alice2, &mut bob] {
        let r = c.receive().unwrap();
        assert!(r.dropped.is_empty(), "{:?}", r.dropped);
        assert_eq!(r.messages.len(), 1);
        let m = &r.messages[0];
        assert_eq!(
            (m.sender.as_str(), m.sender_device.as_str(), m.text.as_str()),
            ("alice", "phone", "hello friends")
        );
        assert_eq!(m.id, hello.message_id);
    }

    // Unbanked images: delivered intact, vouchers sent, nothing learned.
    let atts: Vec<Attachment> = unbanked
        .iter()
        .take(2)
        .map(|p| Attachment::from_file(p).unwrap())
        .collect();
    let sent = alice.send("friends", "holiday pics", &atts).unwrap();
    assert_eq!(sent.voucher_bytes.len(), 2);
    for c in [&mut bob, &mut carol] {
        let r = c.receive().unwrap();
        assert!(r.dropped.is_empty(), "{:?}", r.dropped);
        let m = &r.messages[0];
        assert_eq!(m.attachments.len(), 2);
        for (a, want) in m.attachments.iter().zip(&atts) {
            assert_eq!(std::fs::read(&a.path).unwrap(), want.bytes);
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    let st = account_status(&env, "alice");
    assert_eq!(st["status"], "not flagged", "{st}");
    let server_db = env.server_dir.join("bulwark.db");
    assert_eq!(
        sqlite_count(
            &server_db,
            "SELECT COUNT(*) FROM psi_opened WHERE account = 'alice'"
        ),
        0
    );
    // The delivery service stored only ciphertext: no text, no image bytes,
    // no PDQ hash (raw or hex) anywhere in its database.
    let ds_bytes = db_bytes(&env.ds_db);
    assert!(!contains(&ds_bytes, b"hello friends"));
    assert!(!contains(&ds_bytes, b"holiday pics"));
    for a in &atts {
        let mid = a.bytes.len() / 2;
        assert!(!contains(&ds_bytes, &a.bytes[mid..mid + 64]));
        let h =
            bulwark_pdq::hash_bytes(&a.bytes, bulwark_pdq::Mode::default(), &Default::default())
                .unwrap()
                .hash;
        assert!(!contains(&ds_bytes, h.to_string().as_bytes()));
        assert!(!contains(&ds_bytes, h.as_bytes()));
        // Nor did the matcher store the plain hash with the vouchers.
        assert!(!contains(&db_bytes(&server_db), h.to_string().as_bytes()));
    }
    assert_eq!(
        sqlite_count(&env.ds_db, "SELECT COUNT(*) FROM chat_attachments"),
        2
    );

    // A 1:1 is a two-user group.
    let dm = bob.direct("alice").unwrap();
    bob.send(&dm, "hi alice, just you", &[]).unwrap();
    let r = alice.receive().unwrap();
    assert_eq!(r.joined, vec![dm.clone()]);
    assert_eq!(r.messages[0].text, "hi alice, just you");
    assert!(carol.receive().unwrap().messages.is_empty());

    // Banked images: over the threshold of 3, the account is flagged. With
    // the pdata's probability (1 %) a device sends a synthetic voucher for
    // an image, which carries no real share; four real shares are needed, so
    // take four images this device sends real vouchers for (otherwise the
    // test fails about once in 25 runs).
    let atts: Vec<Attachment> = banked
        .iter()
        .map(|p| Attachment::from_file(p).unwrap())
        .filter(|a| !alice.sends_synthetic_for(a).unwrap())
        .take(4)
        .collect();
    assert_eq!(atts.len(), 4);
    let bad = alice.send("friends", "look", &atts).unwrap();
    // Costs for docs/MESSENGER.md (`--nocapture` shows them).
    eprintln!(
        "costs: text message {} MLS bytes; image message {} MLS bytes, vouchers {:?} bytes, \
         voucher device time {:?} µs, attachments {:?} bytes (plaintext {:?})",
        hello.mls_bytes,
        bad.mls_bytes,
        bad.voucher_bytes,
        bad.voucher_micros,
        bad.attachment_bytes,
        atts.iter().map(|a| a.bytes.len()).collect::<Vec<_>>()
    );
    assert_eq!(bad.voucher_bytes.len(), 4);
    let t = Instant::now();
    let mut st = account_status(&env, "alice");
    while st["status"] != "flagged" && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(200));
        st = account_status(&env, "alice");
    }
    assert_eq!(st["status"], "flagged", "{st}");
    assert!(st["matches"].as_array().unwrap().len() >= 3, "{st}");

    // Bob reports it: verified, with the images opened and matched.
    let r = bob.receive().unwrap();
    assert!(r.dropped.is_empty(), "{:?}", r.dropped);
    let (code, rep) = {
        let v = bob.report(&bad.message_id, Some("csam")).unwrap();
        (201, v)
    };
    assert_eq!(code, 201);
    assert_eq!(rep["status"], "queued", "{rep}");
    let id = rep["id"].as_i64().unwrap();
    let got = Http::new(&env.matcher)
        .call("GET", &format!("/v1/reports/{id}"), Some(&env.admin), None)
        .unwrap()
        .json("report", &[200])
        .unwrap();
    let text = got.to_string();
    assert!(text.contains("\"alice\""), "{text}");
    assert!(text.contains(&bad.message_id), "{text}");

    // Forgeries. The delivery service holds the stamper key and every
    // device's matcher API key, but no device's signing key.
    let good: Value =
        serde_json::from_slice(&bob.report_body(&bad.message_id, None).unwrap()).unwrap();
    let bob_matcher_key = bob.matcher_key().to_string();
    // (a) It cannot file reports with the stamper key.
    assert_eq!(submit(&env, &env.stamper, &good).0, 403);
    // (b) It fabricates a message "from alice", has it stamped, and files it
    // as bob with bob's API key and a key of its own.
    let info = bulwark_franking::MessageInfo::new("alice", "friends", "forged-1");
    let fake = bulwark_client::franking::frank(
        &info,
        &bulwark_franking::content::Content::text("alice said something terrible"),
    );
    let st = Http::new(&env.matcher)
        .post_json(
            "/v1/franking/stamp",
            Some(&env.stamper),
            &json!({"tag": hex::encode(fake.tag.0), "sender": "alice", "conversation": "friends",
                "message_id": "forged-1", "epoch": 1, "recipients": ["alice", "bob", "carol"]}),
        )
        .unwrap()
        .json("stamp", &[200])
        .unwrap();
    let mut forged = good.clone();
    let m = &mut forged["messages"][0];
    m["content"] = json!(base64_of(&fake.plaintext[17..]));
    m["salt"] = json!(hex::encode(&fake.plaintext[1..17]));
    m["message_id"] = json!("forged-1");
    m["epoch"] = json!(1);
    m["accepted_at"] = st["accepted_at"].clone();
    m["attachments"] = json!([]);
    m["stamp"] = json!({"key_id": st["key_id"], "mac": st["mac"], "signature": st["signature"]});
    let ds_key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    resign(&mut forged, "bob", "phone", &ds_key);
    let (code, v) = submit(&env, &bob_matcher_key, &forged);
    assert_eq!(code, 422, "{v}");
    assert!(v.to_string().contains("signature"), "{v}");
    // (c) Another user: carol files bob's report as bob with her own key,
    // and dave (no recipient) files it as himself.
    let mut as_bob = good.clone();
    resign(&mut as_bob, "bob", "phone", &carol.device_key().unwrap());
    assert_eq!(submit(&env, carol.matcher_key(), &as_bob).0, 422);
    let mut by_dave = good.clone();
    resign(&mut by_dave, "dave", "phone", &dave.device_key().unwrap());
    let (code, v) = submit(&env, dave.matcher_key(), &by_dave);
    assert_eq!(code, 422, "{v}");
    assert!(v.to_string().contains("recipients"), "{v}");
    // (d) Re-targeted: bob's genuine report of "look" pointed at the
    // "hello" message's id (bob signs it himself) fails verification.
    let mut moved = good.clone();
    moved["messages"][0]["message_id"] = json!(hello.message_id);
    resign(&mut moved, "bob", "phone", &bob.device_key().unwrap());
    let (code, v) = submit(&env, &bob_matcher_key, &moved);
    assert_eq!(code, 422, "{v}");
    // The genuine report, re-signed by bob, still verifies (the forgeries
    // failed for the reasons above, not for a broken harness).
    let mut again = good.clone();
    resign(&mut again, "bob", "phone", &bob.device_key().unwrap());
    assert!(submit(&env, &bob_matcher_key, &again).0 < 300);

    // The delivery service serves registered devices only, and a group's
    // members only: dave can neither send to "friends" nor commit to it.
    let ds = Http::new(&env.ds);
    assert_eq!(
        ds.call("GET", "/ds/v1/queue", None, None).unwrap().status,
        401
    );
    assert_eq!(
        ds.call("GET", "/ds/v1/queue", Some("not-a-token"), None)
            .unwrap()
            .status,
        401
    );
    let msg = json!({"message_id": "x1", "epoch": 1, "tag": hex::encode([0u8; 32]),
        "mls": "AAAA", "vouchers": []});
    assert_eq!(
        ds.post_json("/ds/v1/groups/friends/messages", Some(dave.token()), &msg)
            .unwrap()
            .status,
        403
    );
    let commit = json!({"commit": "AAAA", "welcome": null, "epoch": 9,
        "members": [{"user": "dave", "device": "phone"}]});
    assert_eq!(
        ds.post_json("/ds/v1/groups/friends/commits", Some(dave.token()), &commit)
            .unwrap()
            .status,
        403
    );

    // Carol leaves: she is removed and sees no later message.
    alice.remove("friends", "carol").unwrap();
    let r = carol.receive().unwrap();
    assert_eq!(r.left, vec!["friends".to_string()]);
    for c in [&mut alice2, &mut bob] {
        c.receive().unwrap();
    }
    alice.send("friends", "after carol", &[]).unwrap();
    assert!(carol.receive().unwrap().messages.is_empty());
    let r = bob.receive().unwrap();
    assert_eq!(r.messages[0].text, "after carol");
    let _ = dave.receive().unwrap();
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}
