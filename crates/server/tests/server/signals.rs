//! Text and entity signals in the service (issue 18): banks holding text
//! hashes and entities, `/v1/match` with text, rule banks with explanations,
//! report intake matching a reported message's text, and rescue photo banks
//! matched only for reported content and shown only to designated reviewers.
//!
//! All data is synthetic and fictitious: phone numbers from the NANP range
//! reserved for fiction (555-0100…0199), names `fictional_seller_NNNN`,
//! example.com/.org domains, benign ads for pets and furniture, and the
//! benign conformance images.

#![allow(clippy::unwrap_used)]

use crate::support;

use axum::http::{Method, StatusCode};
use bulwark_server::auth::Role;
use bulwark_signals::{RuleSpec, TEXT_HASH_RADIUS, TextHash};
use serde_json::{Value, json};
use support::TestApp;

const AD: &str = "Kittens for adoption, 3 months old, vaccinated and litter trained. \
Very playful and healthy, raised indoors with children. Price 50 EUR each. \
Call +1 (415) 555-0142 or Telegram t.me/fictional_seller_0001";
/// The same ad re-posted: new price, a line added, phone re-formatted, leetspeak.
const REPOST: &str = "K1ttens for adoption, 3 months old, vaccinated and litter trained! \
Very playful and healthy, raised indoors with children. Price 35 EUR each. \
Pick up in the city centre. Call +14155550142";
const OTHER_AD: &str = "Grey corner sofa, fabric in good condition, no pets no smoke, \
pick up only, collection this weekend";

fn of_type<'a>(matches: &'a Value, t: &str) -> Vec<&'a Value> {
    matches
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["signal_type"] == t)
        .collect()
}

async fn text_and_entity_banks(app: &TestApp) {
    let (s, j) = app.post("/v1/banks", json!({"name": "ads"})).await;
    assert_eq!(s, StatusCode::CREATED, "{j}");
    let (s, _) = app.post("/v1/banks", json!({"name": "other"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let ad_hash = TextHash::of_text(AD).unwrap();
    let list = format!(
        "# a fictitious list\n\
         text_hash {ad_hash}\n\
         phone +1-415-555-0142 'Example NGO' POSITIVE_CLASS ads\n\
         telegram_user @Fictional_Seller_0001\n\
         url https://EXAMPLE.com/ads/7?utm_source=x#top\n\
         domain listings.example.org\n\
         phone 12\n\
         eth_address 0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\n"
    );
    let r = app.import_list("ads", "lines", &list).await;
    assert_eq!(r["added"], 5, "{r}");
    assert_eq!(r["rejected_count"], 2, "{r}");
    let lines: Vec<i64> = r["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["line"].as_i64().unwrap())
        .collect();
    assert_eq!(lines, [7, 8], "a bad phone and a bad EIP-55 checksum");
    // Importing again adds nothing: same canonical values.
    let again = app
        .import_list("ads", "lines", "phone +14155550142\n")
        .await;
    assert_eq!(
        (again["added"].clone(), again["duplicates"].clone()),
        (json!(0), json!(1))
    );

    // Export: canonical values, type-prefixed lines; JSON lines round-trip.
    let (s, _, text) = app
        .raw(Method::GET, "/v1/banks/ads/export?format=lines", Vec::new())
        .await;
    assert_eq!(s, StatusCode::OK);
    let mut got: Vec<&str> = text.lines().collect();
    got.sort_unstable();
    let hash_line = format!("text_hash {ad_hash}");
    let mut want = vec![
        "domain example.org",
        "phone +14155550142",
        "telegram_user fictional_seller_0001",
        hash_line.as_str(),
        "url https://example.com/ads/7",
    ];
    want.sort_unstable();
    assert_eq!(got, want);
    let (_, _, jl) = app
        .raw(Method::GET, "/v1/banks/ads/export?format=jsonl", Vec::new())
        .await;
    let r = app.import_list("other", "jsonl", &jl).await;
    assert_eq!(r["added"], 5, "{r}");
    let (_, _, csv) = app
        .raw(Method::GET, "/v1/banks/ads/export?format=csv", Vec::new())
        .await;
    assert_eq!(csv.trim(), "hash,quality,note", "CSV holds PDQ only");

    // The re-post matches by text hash and by phone, with explanations.
    let matcher = app.key(Role::Matcher).await;
    let (s, m) = app
        .call(
            Method::POST,
            "/v1/match",
            Some(&matcher),
            Some(json!({"text": REPOST, "banks": ["ads"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{m}");
    let repost_hash = TextHash::of_text(REPOST).unwrap();
    let d = ad_hash.distance(&repost_hash);
    assert!(d <= TEXT_HASH_RADIUS, "independent distance {d}");
    let th = of_type(&m["matches"], "text_hash");
    assert_eq!(th.len(), 1, "{m}");
    assert_eq!(th[0]["distance"], d);
    assert_eq!(th[0]["query_signal"], repost_hash.to_string());
    let ph = of_type(&m["matches"], "phone");
    assert_eq!(ph.len(), 1, "{m}");
    assert_eq!(ph[0]["query_signal"], "+14155550142");
    let span = &ph[0]["explanation"]["span"];
    let (a, b) = (
        span[0].as_u64().unwrap() as usize,
        span[1].as_u64().unwrap() as usize,
    );
    assert_eq!(&REPOST[a..b], "+14155550142");
    assert_eq!(ph[0]["explanation"]["text"], "+14155550142");
    assert_eq!(m["text_signals"]["text_hash"], repost_hash.to_string());
    // Only the "ads" bank was asked: nothing from "other".
    assert!(
        m["matches"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["bank"] == "ads")
    );

    // The original ad also matches its Telegram name; a different ad nothing.
    let (_, m) = app
        .call(
            Method::POST,
            "/v1/match",
            Some(&matcher),
            Some(json!({"text": AD, "banks": "ads"})),
        )
        .await;
    assert_eq!(of_type(&m["matches"], "telegram_user").len(), 1, "{m}");
    assert_eq!(of_type(&m["matches"], "text_hash")[0]["distance"], 0);
    let (_, m) = app
        .call(
            Method::POST,
            "/v1/match",
            Some(&matcher),
            Some(json!({"text": OTHER_AD})),
        )
        .await;
    assert_eq!(m["matches"], json!([]), "{m}");
    assert!(
        ad_hash.distance(&TextHash::of_text(OTHER_AD).unwrap()) > TEXT_HASH_RADIUS,
        "the unrelated ad is far by the crate's own distance"
    );

    // Explicit entity signals, canonicalised; bad values are 400.
    let (s, m) = app
        .call(
            Method::POST,
            "/v1/match",
            Some(&matcher),
            Some(
                json!({"signals": {"phone": ["+1 415 555 0142", "+1 415 555 0199"],
                                    "url": "https://example.com/ads/7#x"}}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{m}");
    let mut got: Vec<(String, String)> = m["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["bank"].as_str().unwrap().into(),
                x["signal_type"].as_str().unwrap().into(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("ads".into(), "phone".into()),
            ("ads".into(), "url".into()),
            ("other".into(), "phone".into()),
            ("other".into(), "url".into())
        ]
    );
    for bad in [
        json!({"signals": {"phone": "12"}}),
        json!({"signals": {"fax": "1"}}),
        json!({"text": 5}),
        json!({"text": "x", "region": "Narnia"}),
    ] {
        let (s, j) = app
            .call(Method::POST, "/v1/match", Some(&matcher), Some(bad.clone()))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {j}");
    }
    // Text/entity signals added one item at a time, canonicalised.
    let (s, c) = app
        .post(
            "/v1/banks/other/content",
            json!({"signals": {"telegram_user": "@Fictional_Seller_0002", "phone": "+1 415 555 0177"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let (_, m) = app
        .call(
            Method::POST,
            "/v1/match",
            Some(&matcher),
            Some(
                json!({"signals": {"telegram_user": "fictional_seller_0002"}, "banks": ["other"]}),
            ),
        )
        .await;
    assert_eq!(m["matches"].as_array().unwrap().len(), 1, "{m}");
    assert_eq!(m["matches"][0]["content_id"], c["id"]);
    let (s, _) = app
        .post(
            "/v1/banks/other/content",
            json!({"signals": {"phone": "12"}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // A national number is read in the region given.
    let (_, m) = app
        .call(
            Method::POST,
            "/v1/match",
            Some(&matcher),
            Some(json!({"text": "call (415) 555-0142", "region": "US", "banks": ["ads"]})),
        )
        .await;
    assert_eq!(of_type(&m["matches"], "phone").len(), 1, "{m}");
    // The text-hash index follows writes: a text hash added to a bank
    // matches at once; after its item is deleted it no longer does (its
    // entries are marked dead, nothing is rebuilt), and one added after
    // that matches.
    let third = "Wooden bookshelf, five shelves, light oak, assembled, collect from the flat";
    let th = TextHash::of_text(third).unwrap();
    let lookup =
        |banks: &'static str| json!({"signals": {"text_hash": th.to_string()}, "banks": [banks]});
    app.post("/v1/banks", json!({"name": "shelves"})).await;
    let (s, c1) = app
        .post(
            "/v1/banks/shelves/content",
            json!({"signals": {"text_hash": th.to_string()}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c1}");
    let (_, m) = app
        .call(
            Method::POST,
            "/v1/match",
            Some(&matcher),
            Some(lookup("shelves")),
        )
        .await;
    assert_eq!(of_type(&m["matches"], "text_hash").len(), 1, "{m}");
    assert_eq!(m["matches"][0]["content_id"], c1["id"]);
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/banks/shelves/content/{}", c1["id"]),
            Some(&app.admin.clone()),
            None,
        )
        .await;
    assert!(s.is_success(), "{s}");
    let (_, m) = app
        .call(
            Method::POST,
            "/v1/match",
            Some(&matcher),
            Some(lookup("shelves")),
        )
        .await;
    assert_eq!(m["matches"], json!([]), "deleted: {m}");
    let (_, c2) = app
        .post(
            "/v1/banks/shelves/content",
            json!({"signals": {"text_hash": th.to_string()}}),
        )
        .await;
    let (_, m) = app
        .call(
            Method::POST,
            "/v1/match",
            Some(&matcher),
            Some(lookup("shelves")),
        )
        .await;
    assert_eq!(m["matches"].as_array().unwrap().len(), 1, "{m}");
    assert_eq!(m["matches"][0]["content_id"], c2["id"]);
    assert_eq!(m["matches"][0]["distance"], 0);
    // A disabled bank matches nothing.
    let (s, _) = app
        .call(
            Method::PATCH,
            "/v1/banks/ads",
            Some(&app.admin),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, m) = app
        .call(
            Method::POST,
            "/v1/match",
            Some(&matcher),
            Some(json!({"text": AD, "banks": ["ads"]})),
        )
        .await;
    assert_eq!(m["matches"], json!([]), "{m}");

    // Every signal type is listed.
    let (s, t) = app
        .call(Method::GET, "/v1/signal_types", Some(&matcher), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = t["signal_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    for n in [
        "pdq",
        "md5",
        "sha256",
        "text_hash",
        "phone",
        "telegram_user",
        "btc_address",
        "url",
        "domain",
    ] {
        assert!(names.contains(&n), "{n}: {names:?}");
    }
}

async fn rule_banks_explain_for_reviewers(app: &TestApp) {
    let (s, _) = app.post("/v1/banks", json!({"name": "pets-en"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let curator = app.key(Role::Curator).await;
    let matcher = app.key(Role::Matcher).await;
    let rules = json!({"language": "en", "rules": [
        RuleSpec::keyword("kitten", "kitten"),
        {"id": "price", "pattern": r"\d+ EUR", "raw": true, "description": "a price"},
    ]});
    let (s, _) = app
        .call(
            Method::PUT,
            "/v1/banks/pets-en/rules",
            Some(&matcher),
            Some(rules.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, j) = app
        .call(
            Method::PUT,
            "/v1/banks/pets-en/rules",
            Some(&curator),
            Some(rules),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    assert_eq!(j["language"], "en");
    for bad in [
        json!({"language": "en", "rules": [{"id": "x", "pattern": "("}]}),
        json!({"language": "", "rules": []}),
        json!({"language": "en", "rules": [{"id": "a", "pattern": "a"}, {"id": "a", "pattern": "b"}]}),
    ] {
        let (s, e) = app
            .call(
                Method::PUT,
                "/v1/banks/pets-en/rules",
                Some(&curator),
                Some(bad.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {e}");
    }
    let (s, g) = app
        .call(Method::GET, "/v1/banks/pets-en/rules", Some(&curator), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        g["rules"].as_array().unwrap().len(),
        2,
        "the bad PUTs changed nothing"
    );

    let text = "A K1tt3n for adoption, 40 EUR";
    let (s, m) = app
        .call(
            Method::POST,
            "/v1/match",
            Some(&matcher),
            Some(json!({"text": text})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{m}");
    let rules = of_type(&m["matches"], "rule");
    let got: Vec<(String, String)> = rules
        .iter()
        .map(|r| {
            let e = &r["explanation"];
            let (a, b) = (
                e["span"][0].as_u64().unwrap() as usize,
                e["span"][1].as_u64().unwrap() as usize,
            );
            assert_eq!(e["text"], &text[a..b]);
            assert_eq!(e["language"], "en");
            assert_eq!(r["review_only"], true);
            assert_eq!(r["bank"], "pets-en");
            (e["rule"].as_str().unwrap().into(), text[a..b].to_string())
        })
        .collect();
    assert_eq!(
        got,
        [
            ("kitten".into(), "K1tt3n".into()),
            ("price".into(), "40 EUR".into())
        ],
        "{m}"
    );
    // A bank's language decides which texts its rules run on: an Arabic
    // bank whose price rule would match the English text does not run on
    // it, unless the caller declares the text Arabic; the English bank does
    // not run on Arabic-script text, nor on text declared Italian.
    let (s, _) = app.post("/v1/banks", json!({"name": "pets-ar"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, j) = app
        .call(
            Method::PUT,
            "/v1/banks/pets-ar/rules",
            Some(&curator),
            Some(json!({"language": "ar", "rules": [
                RuleSpec::keyword("cat", "قطة"),
                {"id": "price-any", "pattern": r"\d+ EUR", "raw": true},
            ]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    let rules_of = |m: &Value| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = of_type(&m["matches"], "rule")
            .iter()
            .map(|r| {
                (
                    r["bank"].as_str().unwrap().to_string(),
                    r["explanation"]["rule"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let arabic = "قِطَّـة للتبني، 40 يورو";
    let pair = |b: &str, r: &str| (b.to_string(), r.to_string());
    for (body, want) in [
        (
            json!({"text": text}),
            vec![pair("pets-en", "kitten"), pair("pets-en", "price")],
        ),
        (
            json!({"text": text, "language": "ar"}),
            vec![pair("pets-ar", "price-any")],
        ),
        (
            json!({"text": text, "language": ["it", "en-GB"]}),
            vec![pair("pets-en", "kitten"), pair("pets-en", "price")],
        ),
        (json!({"text": text, "language": "it"}), vec![]),
        (json!({"text": arabic}), vec![pair("pets-ar", "cat")]),
    ] {
        let (s, m) = app
            .call(
                Method::POST,
                "/v1/match",
                Some(&matcher),
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}: {m}");
        assert_eq!(rules_of(&m), want, "{body}: {m}");
    }
    for bad in [
        json!(5),
        json!("e n"),
        json!([""]),
        Value::Array(vec![json!("en"); 17]),
    ] {
        let (s, e) = app
            .call(
                Method::POST,
                "/v1/match",
                Some(&matcher),
                Some(json!({"text": text, "language": bad})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {e}");
    }
    let (s, _) = app
        .call(
            Method::DELETE,
            "/v1/banks/pets-ar/rules",
            Some(&curator),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // Rules of a bank not asked for do not run; deleted rules neither.
    let (_, m) = app
        .call(
            Method::POST,
            "/v1/match",
            Some(&matcher),
            Some(json!({"text": text, "banks": []})),
        )
        .await;
    assert_eq!(m["matches"], json!([]));
    let (s, _) = app
        .call(
            Method::DELETE,
            "/v1/banks/pets-en/rules",
            Some(&curator),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, m) = app
        .call(
            Method::POST,
            "/v1/match",
            Some(&matcher),
            Some(json!({"text": text})),
        )
        .await;
    assert_eq!(m["matches"], json!([]));
}

mod reports {
    use super::*;
    use base64::Engine as _;
    use bulwark_franking::content::Content;
    use bulwark_franking::wire::{
        AttachmentJson, MessageJson, ReportJson, ReporterJson, StampJson, report_signing_input,
    };
    use bulwark_franking::{MessageInfo, Stamp};

    const MEMBERS: [&str; 3] = ["alice", "bob", "carol"];

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    pub struct Device {
        account: String,
        id: String,
        key: ed25519_dalek::SigningKey,
        pub api_key: String,
    }

    pub async fn enrol(app: &TestApp, account: &str, id: &str) -> Device {
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let st = app.key(Role::Stamper).await;
        let (s, j) = app
            .call(
                Method::POST,
                "/v1/devices",
                Some(&st),
                Some(json!({"account": account, "device": id,
                    "public_key": hex::encode(key.verifying_key().to_bytes())})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{j}");
        Device {
            account: account.into(),
            id: id.into(),
            key,
            api_key: j["key"].as_str().unwrap().to_string(),
        }
    }

    /// A message from alice to the group, stamped by the service.
    pub async fn franked(app: &TestApp, text: &str, attachment: Option<&[u8]>) -> MessageJson {
        let mut rng = rand::thread_rng();
        let mut content = Content::text(text);
        let mut att = Vec::new();
        if let Some(file) = attachment {
            let (r, ct) =
                bulwark_franking::attachment::seal(file, "image/jpeg", "blob-1", &mut rng);
            att.push(AttachmentJson {
                blob_id: r.blob_id.clone(),
                key: hex::encode(r.key.0),
                commitment: hex::encode(r.commitment.0),
                ciphertext_sha256: hex::encode(r.ciphertext_sha256),
                size: r.size,
                media_type: r.media_type.clone(),
                ciphertext: Some(b64(&ct)),
            });
            content.attachments.push(r);
        }
        let content = content.to_bytes();
        let message_id = format!("m-{}", rand::random::<u64>());
        let info = MessageInfo::new("alice", "group-1", &message_id);
        let (salt, tag) = bulwark_franking::frank(&info, &content, &mut rng);
        let st_key = app.key(Role::Stamper).await;
        let (s, st) = app
            .call(
                Method::POST,
                "/v1/franking/stamp",
                Some(&st_key),
                Some(
                    json!({"tag": hex::encode(tag.0), "sender": "alice", "conversation": "group-1",
                    "message_id": message_id, "epoch": 5, "recipients": MEMBERS}),
                ),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{st}");
        MessageJson {
            content: b64(&content),
            salt: hex::encode(salt.0),
            sender: "alice".into(),
            conversation: "group-1".into(),
            message_id,
            epoch: 5,
            recipients: MEMBERS.iter().map(|m| m.to_string()).collect(),
            accepted_at: st["accepted_at"].as_u64().unwrap(),
            stamper: st["stamper"].as_str().unwrap().into(),
            stamp: StampJson {
                key_id: st["key_id"].as_u64().unwrap() as u32,
                mac: st["mac"].as_str().unwrap().into(),
                signature: Some(st["signature"].as_str().unwrap().into()),
            },
            attachments: att,
        }
    }

    /// Submits a report of `messages`, signed by `by`, with its device key.
    pub async fn submit(app: &TestApp, messages: Vec<MessageJson>, by: &Device) -> Value {
        use ed25519_dalek::Signer;
        let stamps: Vec<Stamp> = messages
            .iter()
            .map(|m| {
                let mut mac = [0u8; 32];
                hex::decode_to_slice(&m.stamp.mac, &mut mac).unwrap();
                Stamp {
                    key_id: m.stamp.key_id,
                    mac,
                }
            })
            .collect();
        let (reason, text) = (Some("spam"), Some("reported from the app"));
        let input = report_signing_input(&by.account, &by.id, &stamps, reason, text);
        let r = ReportJson {
            messages,
            reason: reason.map(Into::into),
            text: text.map(Into::into),
            reporter: Some(ReporterJson {
                account: by.account.clone(),
                device: by.id.clone(),
                signature: hex::encode(by.key.sign(&input).to_bytes()),
            }),
        };
        let (s, j) = app
            .call(
                Method::POST,
                "/v1/reports",
                Some(&by.api_key),
                Some(serde_json::to_value(&r).unwrap()),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{j}");
        j
    }
}

async fn reported_message_text_is_matched(app: &TestApp) {
    let (s, _) = app.post("/v1/banks", json!({"name": "ads"})).await;
    assert_eq!(s, StatusCode::CREATED);
    app.import_list("ads", "lines", "phone +14155550142\ndomain example.com\n")
        .await;
    let bob = reports::enrol(app, "bob", "bob-phone").await;
    let m1 = reports::franked(app, REPOST, None).await;
    let m2 = reports::franked(app, "see you at https://shop.example.com/x later", None).await;
    let m3 = reports::franked(app, "hello", None).await;
    let r = reports::submit(app, vec![m1, m2, m3], &bob).await;
    let id = r["id"].as_i64().unwrap();
    let curator = app.key(Role::Curator).await;
    let (s, g) = app
        .call(
            Method::GET,
            &format!("/v1/reports/{id}"),
            Some(&curator),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{g}");
    let ts = g["text_signals"].as_array().unwrap();
    assert_eq!(ts.len(), 3, "{g}");
    assert_eq!(ts[0]["message"], 0);
    assert_eq!(
        ts[0]["text_hash"],
        TextHash::of_text(REPOST).unwrap().to_string()
    );
    let ph = of_type(&ts[0]["matches"], "phone");
    assert_eq!(ph.len(), 1, "{g}");
    assert_eq!(ph[0]["bank"], "ads");
    assert_eq!(ph[0]["explanation"]["text"], "+14155550142");
    let dm = of_type(&ts[1]["matches"], "domain");
    assert_eq!(dm.len(), 1, "the URL's registrable domain: {g}");
    assert_eq!(dm[0]["query_signal"], "example.com");
    assert_eq!(ts[2]["matches"], json!([]));
    assert_eq!(ts[2]["entities"], json!([]));
}

async fn rescue_banks_reported_content_only(app: &TestApp) {
    let bridge = support::image("reg-test-input/dih/bridge-1-original.jpg");
    let pen = support::image("reg-test-input/pen-and-coaster.png");
    let curator = app.key(Role::Curator).await;
    let designated =
        bulwark_server::auth::create_key(&app.service.state.store, Role::Curator, "ngo-reviewer")
            .await
            .unwrap();
    let dkey = designated.key.to_string();
    let matcher = app.key(Role::Matcher).await;

    // Only an admin creates rescue banks and designates reviewers.
    let (s, _) = app
        .call(
            Method::POST,
            "/v1/rescue/banks",
            Some(&curator),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    for (name, provider) in [("ngo-a", "provider-a"), ("ngo-b", "provider-b")] {
        let (s, j) = app
            .post(
                "/v1/rescue/banks",
                json!({"name": name, "provider": provider,
                "description": "fictional NGO test bank"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{j}");
        let (s, j) = app
            .upload(
                &format!("/v1/rescue/banks/{name}/photos"),
                &app.admin,
                &bridge,
                &[("note", "case 1")],
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{j}");
    }
    let (s, _) = app
        .call(
            Method::POST,
            "/v1/rescue/reviewers",
            Some(&curator),
            Some(json!({"key_id": designated.id})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let matcher_id = matcher.split('_').nth(1).unwrap();
    let (s, j) = app
        .post("/v1/rescue/reviewers", json!({"key_id": matcher_id}))
        .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "a matcher cannot read reports: {j}"
    );
    let (s, j) = app
        .post("/v1/rescue/reviewers", json!({"key_id": designated.id}))
        .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    let (s, _) = app
        .call(Method::GET, "/v1/rescue/banks", Some(&curator), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, l) = app
        .call(Method::GET, "/v1/rescue/banks", Some(&dkey), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(l["items"][0]["photos"], 1);

    // Ordinary banks of two providers hold another image.
    for (name, provider) in [("n-a", "provider-a"), ("n-b", "provider-b")] {
        let (s, _) = app
            .post("/v1/banks", json!({"name": name, "provider": provider}))
            .await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, j) = app
            .upload(&format!("/v1/banks/{name}/content"), &app.admin, &pen, &[])
            .await;
        assert_eq!(s, StatusCode::CREATED, "{j}");
    }

    // Upload path: the rescue photo (and a resized copy) match nothing.
    let copy = support::resized_copy(&bridge);
    for file in [&bridge, &copy] {
        let (s, m) = app.upload("/v1/match", &matcher, file, &[]).await;
        assert_eq!(s, StatusCode::OK, "{m}");
        assert_eq!(m["matches"], json!([]), "{m}");
        assert!(!m.to_string().contains("ngo-"), "{m}");
    }
    let bridge_pdq =
        bulwark_pdq::hash_bytes(&bridge, Default::default(), &bulwark_pdq::Limits::default())
            .unwrap()
            .hash
            .to_string();
    let (_, m) = app
        .call(
            Method::POST,
            "/v1/match",
            Some(&matcher),
            Some(json!({"signals": {"pdq": bridge_pdq}})),
        )
        .await;
    assert_eq!(m["matches"], json!([]), "{m}");
    let (_, m) = app
        .call(
            Method::GET,
            &format!("/m/raw_lookup?signal_type=pdq&signal={bridge_pdq}"),
            Some(&matcher),
            None,
        )
        .await;
    assert!(!m.to_string().contains("ngo-"), "{m}");
    // Voucher path: the pdata devices match against holds only the hash two
    // ordinary providers agree on, though two providers' rescue banks hold
    // the bridge.
    let (s, b) = app
        .post(
            "/v1/pdata/build",
            json!({"profile": "compact", "threshold": 2}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["entries"], 1, "only the ordinary banks' hash: {b}");

    // Report path: a reported resized copy matches the rescue banks.
    let bob = reports::enrol(app, "bob", "bob-phone").await;
    let m = reports::franked(app, "look", Some(&copy)).await;
    let r = reports::submit(app, vec![m], &bob).await;
    assert!(
        !r.to_string().contains("ngo-"),
        "the reporter sees no rescue match: {r}"
    );
    let id = r["id"].as_i64().unwrap();
    let path = format!("/v1/reports/{id}");
    let (s, g) = app.call(Method::GET, &path, Some(&dkey), None).await;
    assert_eq!(s, StatusCode::OK);
    let rm = g["rescue_matches"].as_array().unwrap();
    assert_eq!(rm.len(), 1, "{g}");
    let banks: Vec<&str> = rm[0]["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            assert!(x["distance"].as_u64().unwrap() <= 31);
            x["rescue_bank"].as_str().unwrap()
        })
        .collect();
    assert_eq!(banks, ["ngo-a", "ngo-b"]);
    // A reviewer who was not designated, and an admin, do not see them.
    for key in [&curator, &app.admin] {
        let (s, g) = app.call(Method::GET, &path, Some(key), None).await;
        assert_eq!(s, StatusCode::OK);
        assert!(g.get("rescue_matches").is_none(), "{g}");
        assert!(!g.to_string().contains("ngo-"), "{g}");
    }
    // Revoked: no longer.
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/rescue/reviewers/{}", designated.id),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, g) = app.call(Method::GET, &path, Some(&dkey), None).await;
    assert!(g.get("rescue_matches").is_none(), "{g}");
}

/// Compiled rule banks are cached by the bank's rule version: an edited
/// bank takes effect on the next match, also when the rules are deleted
/// and set again at once (the version is never reused), and other banks'
/// cached rules are unaffected.
async fn edited_rule_banks_take_effect(app: &TestApp) {
    for b in ["edit-en", "steady-en"] {
        let (s, _) = app.post("/v1/banks", json!({"name": b})).await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let curator = app.key(Role::Curator).await;
    let matcher = app.key(Role::Matcher).await;
    let put = |bank: &'static str, word: &'static str| {
        let body = json!({"language": "en", "rules": [RuleSpec::keyword(word, word)]});
        let (app, curator) = (app, curator.clone());
        async move {
            let (s, j) = app
                .call(
                    Method::PUT,
                    &format!("/v1/banks/{bank}/rules"),
                    Some(&curator),
                    Some(body),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{j}");
        }
    };
    let rules_hit = |text: &'static str| {
        let (app, matcher) = (app, matcher.clone());
        async move {
            let (s, m) = app
                .call(
                    Method::POST,
                    "/v1/match",
                    Some(&matcher),
                    Some(json!({"text": text, "language": "en"})),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{m}");
            let mut got: Vec<(String, String)> = of_type(&m["matches"], "rule")
                .iter()
                .map(|r| {
                    (
                        r["bank"].as_str().unwrap().to_string(),
                        r["explanation"]["rule"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            got.sort();
            got
        }
    };
    let pair = |b: &str, r: &str| (b.to_string(), r.to_string());
    put("edit-en", "kitten").await;
    put("steady-en", "sofa").await;
    let text = "A kitten and a puppy, also a parrot and a sofa";
    assert_eq!(
        rules_hit(text).await,
        vec![pair("edit-en", "kitten"), pair("steady-en", "sofa")]
    );
    // Edited twice in a row (within the same millisecond, likely): the last
    // edit is what runs.
    put("edit-en", "puppy").await;
    put("edit-en", "parrot").await;
    assert_eq!(
        rules_hit(text).await,
        vec![pair("edit-en", "parrot"), pair("steady-en", "sofa")]
    );
    // Deleted and set again at once: not the rules cached before.
    let (s, _) = app
        .call(
            Method::DELETE,
            "/v1/banks/edit-en/rules",
            Some(&curator),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    put("edit-en", "kitten").await;
    assert_eq!(
        rules_hit(text).await,
        vec![pair("edit-en", "kitten"), pair("steady-en", "sofa")]
    );
    // The same again (cached now) gives the same answer.
    assert_eq!(
        rules_hit(text).await,
        vec![pair("edit-en", "kitten"), pair("steady-en", "sofa")]
    );
}

both_databases!(
    text_and_entity_banks,
    rule_banks_explain_for_reviewers,
    edited_rule_banks_take_effect,
    reported_message_text_is_matched,
    rescue_banks_reported_content_only,
);

/// The HMA surface: text and entity types are listed by `/c/signal_type` when
/// `[hma] signal_types` names them (as HMA lists the types its configuration
/// enables), and banked, looked up and compared through HMA's routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hma_surface_lists_and_looks_up_text_signals() {
    let listed = [
        "pdq",
        "video_md5",
        "text_hash",
        "phone",
        "url",
        "xmr_address",
    ];
    let app = TestApp::sqlite_with(|c| {
        c.hma.signal_types = listed.map(String::from).to_vec();
    })
    .await;
    let matcher = app.key(Role::Matcher).await;
    let (s, t) = app
        .call(Method::GET, "/c/signal_type", Some(&matcher), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    let names: Vec<&str> = t
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            assert_eq!(x["enabled_ratio"], 1.0);
            x["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(names, listed);
    let (_, ct) = app.get("/c/content_type").await;
    assert!(
        ct.as_array().unwrap().iter().any(|c| c["name"] == "text"),
        "{ct}"
    );

    // Banking through HMA's curation route: canonicalised, checked.
    let (s, j) = app.post("/c/banks", json!({"name": "ADS"})).await;
    assert_eq!(s, StatusCode::CREATED, "{j}");
    let (s, p) = app
        .post("/c/bank/ADS/signal", json!({"phone": "+1 (415) 555-0142"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["signals"]["phone"], "+14155550142");
    let phone_id = p["id"].as_i64().unwrap();
    let ad_hash = TextHash::of_text(AD).unwrap();
    let (s, h) = app
        .post(
            "/c/bank/ADS/signal",
            json!({"text_hash": ad_hash.to_string()}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{h}");
    let hash_id = h["id"].as_i64().unwrap();
    for bad in [json!({"phone": "12"}), json!({"fax": "1"})] {
        let (s, e) = app.post("/c/bank/ADS/signal", bad.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {e}");
        assert!(e["message"].is_string(), "HMA's error body: {e}");
    }
    let (_, c) = app
        .get(&format!(
            "/c/bank/ADS/content/{phone_id}?include_signals=true"
        ))
        .await;
    assert_eq!(c["signals"]["phone"], "+14155550142", "{c}");

    // Lookups: the phone however it is written; the re-post by its text hash
    // at the distance the signals crate computes; another number nothing.
    for written in ["%2B14155550142", "%2B1%20415%20555%200142"] {
        let (s, m) = app
            .call(
                Method::GET,
                &format!("/m/lookup?signal_type=phone&signal={written}&bypass_coinflip=true"),
                Some(&matcher),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{m}");
        assert_eq!(
            m,
            json!({"ADS": [{"bank_content_id": phone_id, "distance": "0"}]})
        );
    }
    let repost = TextHash::of_text(REPOST).unwrap();
    let d = ad_hash.distance(&repost);
    assert!(d > 0 && d <= TEXT_HASH_RADIUS);
    let (_, m) = app
        .call(
            Method::GET,
            &format!("/m/lookup?signal_type=text_hash&signal={repost}&bypass_coinflip=true"),
            Some(&matcher),
            None,
        )
        .await;
    assert_eq!(
        m,
        json!({"ADS": [{"bank_content_id": hash_id, "distance": d.to_string()}]})
    );
    let (_, m) = app
        .call(
            Method::GET,
            &format!(
                "/m/raw_lookup?signal_type=text_hash&signal={}&include_distance=true",
                TextHash::of_text(OTHER_AD).unwrap()
            ),
            Some(&matcher),
            None,
        )
        .await;
    assert_eq!(m, json!({"matches": []}), "an unrelated ad");
    let (_, m) = app
        .call(
            Method::GET,
            "/m/raw_lookup?signal_type=phone&signal=%2B14155550142",
            Some(&matcher),
            None,
        )
        .await;
    assert_eq!(m, json!({"matches": [phone_id]}));
    let (_, m) = app
        .call(
            Method::GET,
            "/m/lookup?signal_type=phone&signal=%2B14155550199&bypass_coinflip=true",
            Some(&matcher),
            None,
        )
        .await;
    assert_eq!(m, json!({}));
    let (s, e) = app
        .call(
            Method::GET,
            "/m/lookup?signal_type=phone&signal=12",
            Some(&matcher),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");

    // Index status and compare for the listed text types.
    let (_, idx) = app
        .call(
            Method::GET,
            "/c/signal_type/index?signal_type=phone",
            Some(&matcher),
            None,
        )
        .await;
    assert_eq!(idx["phone"]["db_size"], 1, "{idx}");
    let (_, cmp) = app
        .call(
            Method::POST,
            "/m/compare",
            Some(&matcher),
            Some(
                json!({"text_hash": [ad_hash.to_string(), repost.to_string()],
                        "phone": ["+1 415 555 0142", "+14155550142"]}),
            ),
        )
        .await;
    assert_eq!(
        cmp,
        json!({"text_hash": [true, {"distance": d}], "phone": [true, {"distance": 0}]})
    );
    app.cleanup().await;

    // HMA's default configuration lists HMA's default types only; lookups
    // by a text type still answer (as sha256, Bulwark's own, does).
    let plain = TestApp::sqlite().await;
    let (_, t) = plain.get("/c/signal_type").await;
    assert_eq!(
        t,
        json!([{"name": "pdq", "enabled_ratio": 1.0}, {"name": "video_md5", "enabled_ratio": 1.0}])
    );
    let (s, _) = plain
        .get("/m/lookup?signal_type=phone&signal=%2B14155550142")
        .await;
    assert_eq!(s, StatusCode::OK);
    plain.cleanup().await;
}

/// Figures for docs/SIGNALS.md (not run by default: it banks 10^6 random
/// text hashes directly in SQLite): the text-hash index's first load at
/// start (the aggregated read and the build), and what following a removal
/// and an addition costs afterwards (no rebuild, no count).
/// `BULWARK_TEXT_FIGURES_N=1000000 cargo test --features bulwark/full --test server -- --ignored signals::text_index_start_figures --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn text_index_start_figures() {
    use bulwark_server::api::signals::TextIndexCache;
    use sqlx::Row;
    let n: i64 = std::env::var("BULWARK_TEXT_FIGURES_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let app = TestApp::sqlite().await;
    let (s, _) = app.post("/v1/banks", json!({"name": "bulk"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let st = &app.service.state.store;
    let t = std::time::Instant::now();
    for sql in [
        format!(
            "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {n}) \
             INSERT INTO content (bank_id, kind, dedup_key, enabled, added_by, created_at, updated_at) \
             SELECT (SELECT id FROM banks WHERE name = 'bulk'), 'signals', 'k' || i, 1, 'figures', 0, 0 FROM k"
        ),
        "INSERT INTO signals (content_id, bank_id, signal_type, value) \
         SELECT id, bank_id, 'text_hash', lower(hex(randomblob(32))) FROM content WHERE added_by = 'figures'"
            .to_string(),
    ] {
        sqlx::query(&sql).execute(&st.pool).await.unwrap();
    }
    eprintln!(
        "inserted {n} text hashes in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let cache = TextIndexCache::default();
    let catalog = &app.service.state.catalog;
    let t = std::time::Instant::now();
    let len = cache.current(st, catalog).await.unwrap().len();
    eprintln!(
        "first load (read + build): {len} entries in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(len as i64, n);
    // A removal and an addition through the service, then the next search.
    let (_, c) = app
        .post(
            "/v1/banks/bulk/content",
            json!({"signals": {"text_hash": "ab".repeat(32)}}),
        )
        .await;
    let victim: i64 = sqlx::query("SELECT MIN(id) AS i FROM content WHERE added_by = 'figures'")
        .fetch_one(&st.pool)
        .await
        .unwrap()
        .try_get("i")
        .unwrap();
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/banks/bulk/content/{victim}"),
            Some(&app.admin.clone()),
            None,
        )
        .await;
    assert!(s.is_success());
    let t = std::time::Instant::now();
    let len = cache.current(st, catalog).await.unwrap().len();
    eprintln!(
        "after one removal and one addition: {len} live entries, brought up to date in {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(len as i64, n);
    assert!(c["id"].is_i64());
    let t = std::time::Instant::now();
    let _ = cache.current(st, catalog).await.unwrap();
    eprintln!("unchanged: {:.2} ms", t.elapsed().as_secs_f64() * 1e3);
}
