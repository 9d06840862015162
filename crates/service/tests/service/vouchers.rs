//! Private matching as service operations, without HTTP: a release built
//! from what two providers agree on, vouchers from an enrolled device, and
//! an account that stays "not flagged" at or below the threshold and shows
//! its matches above it. The HTTP surface is tested in
//! crates/server/tests/server/api.rs (`vouchers_open_only_above_the_threshold`).

#![allow(clippy::unwrap_used)]

use bulwark_pdq::PdqHash;
use bulwark_psi::{DeviceAccount, Pdata, Root};
use bulwark_service::secrets::Kek;
use bulwark_service::vouchers::{self, BuildOptions, IntakeLimits, Releases, Submission};
use bulwark_service::{Error, Kind};
use bulwark_store::Store;
use ed25519_dalek::Signer;
use rand::{Rng, SeedableRng};

fn hash(i: u8) -> PdqHash {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(u64::from(i));
    PdqHash::from_bytes(rng.r#gen())
}

async fn store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    (Store::open(&url).await.unwrap(), dir)
}

/// A bank of `provider` holding `hashes` (as the API would write them).
async fn bank(store: &Store, name: &str, provider: &str, hashes: &[PdqHash]) {
    let id: i64 = sqlx::Row::get(
        &sqlx::query(&store.sql(
            "INSERT INTO banks (name, threshold, enabled, description, provider, created_at, updated_at) \
             VALUES (?, 31, 1, '', ?, 0, 0) RETURNING id",
        ))
        .bind(name)
        .bind(provider)
        .fetch_one(&store.pool)
        .await
        .unwrap(),
        "id",
    );
    let mut tx = store.begin().await.unwrap();
    for h in hashes {
        let c = bulwark_store::NewContent {
            kind: "photo",
            dedup_key: format!("pdq:{h}"),
            note: None,
            metadata: None,
            source: None,
            signals: vec![bulwark_store::SignalRow {
                signal_type: "pdq".into(),
                value: h.to_string(),
                quality: Some(100),
            }],
            frames: Vec::new(),
            frame_extras: Vec::new(),
        };
        bulwark_store::insert_content(store, &mut tx, id, "test", &c)
            .await
            .unwrap()
            .unwrap();
    }
    tx.commit().await.unwrap();
}

/// Publishes a release as enrolled providers' signatures would (the
/// signature path is the providers module's, tested over HTTP).
async fn publish(store: &Store, id: i64) {
    sqlx::query(&store.sql("UPDATE pdata_releases SET published_at = 1 WHERE id = ?"))
        .bind(id)
        .execute(&store.pool)
        .await
        .unwrap();
}

struct Device {
    account: String,
    name: String,
    key: ed25519_dalek::SigningKey,
    psi: DeviceAccount,
}

impl Device {
    async fn enrol(store: &Store, account: &str) -> Device {
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let mut tx = store.begin().await.unwrap();
        bulwark_store::devices::insert(
            store,
            &mut tx,
            account,
            "phone",
            &hex::encode(key.verifying_key().to_bytes()),
            "key-1",
            "stamper",
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        Device {
            account: account.into(),
            name: "phone".into(),
            key,
            psi: DeviceAccount::generate(&mut rand::thread_rng()),
        }
    }

    fn voucher(&self, pdata: &Pdata, h: &PdqHash) -> Vec<u8> {
        self.psi
            .voucher(pdata, h, &[7u8; 1024], &mut rand::thread_rng())
            .unwrap()
            .to_bytes()
    }

    fn sign(&self, voucher: &[u8]) -> String {
        let input = bulwark_psi::envelope::signing_input(&self.account, &self.name, voucher);
        hex::encode(self.key.sign(&input).to_bytes())
    }
}

const LIMITS: IntakeLimits = IntakeLimits {
    per_device_per_minute: 1000,
    per_key_per_minute: 1000,
};

async fn submit(
    store: &Store,
    releases: &Releases,
    d: &Device,
    voucher: &[u8],
    signature: &str,
) -> Result<(), Error> {
    vouchers::submit(
        store,
        releases,
        LIMITS,
        Submission {
            account: &d.account,
            device: &d.name,
            voucher,
            signature,
            key_id: "key-1",
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_opens_only_above_the_threshold() {
    let (store, dir) = store().await;
    let kek = Kek::load(None, dir.path()).unwrap();
    let agreed: Vec<PdqHash> = (1..=6).map(hash).collect();
    bank(&store, "a", "org-a", &agreed).await;
    bank(&store, "b", "org-b", &agreed).await;
    // One provider only: never in a release.
    bank(&store, "a2", "org-a", &[hash(7)]).await;
    bank(&store, "a3", "org-a", &[hash(7)]).await;

    let one = vouchers::build(
        &store,
        &kek,
        "admin",
        BuildOptions {
            min_providers: Some(1),
            ..BuildOptions::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(one.kind, Kind::BadRequest, "{one}");
    let built = vouchers::build(
        &store,
        &kek,
        "admin",
        BuildOptions {
            profile: Some("compact".into()),
            threshold: Some(2),
            ..BuildOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(built.entries, 6, "only the hashes two providers agree on");
    assert_eq!(built.params.min_providers, 2);

    let releases = Releases::default();
    assert!(
        releases.current(&store).await.unwrap().is_none(),
        "not published yet"
    );
    publish(&store, built.release).await;
    let release = releases.current(&store).await.unwrap().unwrap();
    assert_eq!(release.id, built.release);
    let root: Root = built.root.parse().unwrap();
    let pdata = Pdata::from_bytes(&release.bytes, &root).unwrap();

    let d = Device::enrol(&store, "acct-1").await;
    // Hashes whose vouchers are real (a device sends a synthetic one for a few).
    let real: Vec<PdqHash> = agreed
        .iter()
        .copied()
        .filter(|h| !d.psi.sends_synthetic_for(&pdata, h))
        .collect();
    assert!(real.len() >= 4);

    // Forged: another key's signature, an unenrolled device, a stale root.
    let v = d.voucher(&pdata, &real[0]);
    let other = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let forged = hex::encode(
        other
            .sign(&bulwark_psi::envelope::signing_input(
                &d.account, &d.name, &v,
            ))
            .to_bytes(),
    );
    let e = submit(&store, &releases, &d, &v, &forged)
        .await
        .unwrap_err();
    assert_eq!((e.kind, e.code), (Kind::Forbidden, "bad_signature"));
    let stranger = Device {
        account: "acct-2".into(),
        ..Device::enrol(&store, "acct-9").await
    };
    let sv = stranger.voucher(&pdata, &real[0]);
    let e = submit(&store, &releases, &stranger, &sv, &stranger.sign(&sv))
        .await
        .unwrap_err();
    assert_eq!((e.kind, e.code), (Kind::Forbidden, "bad_signature"));
    let e = submit(
        &store,
        &releases,
        &d,
        b"not a voucher",
        &d.sign(b"not a voucher"),
    )
    .await
    .unwrap_err();
    assert_eq!((e.kind, e.code), (Kind::BadRequest, "bad_voucher"));

    // A non-matching image, two matching ones and a duplicate: at the
    // threshold (t = 2) the account is "not flagged", like an unknown one.
    for h in [hash(99), real[0], real[1], real[1]] {
        let v = d.voucher(&pdata, &h);
        submit(&store, &releases, &d, &v, &d.sign(&v))
            .await
            .unwrap();
        vouchers::process_pending(&store, &kek, &releases, 100)
            .await
            .unwrap();
        assert!(
            vouchers::account_matches(&store, "acct-1")
                .await
                .unwrap()
                .is_none()
        );
    }
    assert!(
        vouchers::account_matches(&store, "nobody")
            .await
            .unwrap()
            .is_none()
    );
    // A third distinct match: over the threshold, the matches open.
    let v = d.voucher(&pdata, &real[2]);
    submit(&store, &releases, &d, &v, &d.sign(&v))
        .await
        .unwrap();
    vouchers::process_pending(&store, &kek, &releases, 100)
        .await
        .unwrap();
    let opened = vouchers::account_matches(&store, "acct-1")
        .await
        .unwrap()
        .expect("flagged above the threshold");
    let mut hashes: Vec<String> = opened.iter().map(|m| m.opened.hash.clone()).collect();
    hashes.sort();
    let mut want: Vec<String> = real[..3].iter().map(ToString::to_string).collect();
    want.sort();
    assert_eq!(hashes, want, "exactly the three real matches open");
    assert!(opened.iter().all(|m| m.opened.distance == 0));

    // Only a reviewer clears it, once; audited.
    vouchers::clear_account(&store, "reviewer", "acct-1", Some("checked".into()))
        .await
        .unwrap();
    assert!(
        vouchers::account_matches(&store, "acct-1")
            .await
            .unwrap()
            .is_none()
    );
    let e = vouchers::clear_account(&store, "reviewer", "acct-1", None)
        .await
        .unwrap_err();
    assert_eq!(e.kind, Kind::NotFound);
    let audit = bulwark_store::audit_list(&store, 0, 100, None)
        .await
        .unwrap();
    assert!(audit.iter().any(|a| a.action == "account.clear"));
    assert!(audit.iter().any(|a| a.action == "pdata.build"));
}
