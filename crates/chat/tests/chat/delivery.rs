//! The delivery service on both of its databases: SQLite, and PostgreSQL
//! (the server at `BULWARK_TEST_POSTGRES`, default the local one; skipped
//! with a message when none answers, failed under
//! `BULWARK_TEST_POSTGRES_REQUIRED=1` as in CI), where the matcher and the
//! delivery service share one database. The same scenario on
//! each: a group, a text and an image delivered and verified, a stamp the
//! database holds altered and the message dropped, a report that verifies,
//! acknowledged queues emptied, a removed member cut off, and no plaintext
//! in the delivery service's tables.
#![allow(clippy::unwrap_used, missing_docs)]

use crate::support;

use std::path::PathBuf;

use bulwark_chat::{Attachment, PdataPolicy};

enum Backend {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Backend {
    fn count(&self, sql: &str) -> i64 {
        match self {
            Backend::Sqlite(db) => support::sqlite_count(db, sql),
            Backend::Postgres(url) => support::pg_count(url, sql),
        }
    }

    /// Adds a second to the stamped acceptance time of message `id` in the
    /// queue of `user`.
    fn alter_stamp(&self, user: &str, id: &str) {
        match self {
            Backend::Sqlite(db) => support::sqlite_exec(
                db,
                &format!(
                    "UPDATE chat_queue SET stamp = json_set(stamp, '$.accepted_at', \
                     json_extract(stamp, '$.accepted_at') + 1) \
                     WHERE user_name = '{user}' AND message_id = '{id}'"
                ),
            ),
            Backend::Postgres(url) => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    use sqlx::Connection;
                    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                    let n = sqlx::query(&format!(
                        "UPDATE chat_queue SET stamp = jsonb_set(stamp::jsonb, '{{accepted_at}}', \
                         to_jsonb((stamp::jsonb->>'accepted_at')::bigint + 1))::text \
                         WHERE user_name = '{user}' AND message_id = '{id}'"
                    ))
                    .execute(&mut conn)
                    .await
                    .unwrap()
                    .rows_affected();
                    assert_eq!(n, 1);
                })
            }
        }
    }

    /// Rows of `table` whose `column` (bytes) contains `needle`.
    fn rows_containing(&self, table: &str, column: &str, needle: &[u8]) -> i64 {
        let hex = hex::encode(needle);
        match self {
            Backend::Sqlite(db) => self.count_sqlite(db, table, column, &hex),
            Backend::Postgres(_) => self.count(&format!(
                "SELECT COUNT(*) FROM {table} WHERE position(decode('{hex}', 'hex') in {column}) > 0"
            )),
        }
    }

    fn count_sqlite(&self, db: &std::path::Path, table: &str, column: &str, hex: &str) -> i64 {
        support::sqlite_count(
            db,
            &format!("SELECT COUNT(*) FROM {table} WHERE instr({column}, X'{hex}') > 0"),
        )
    }
}

fn scenario(env: &support::Env, backend: &Backend) {
    let imgs = support::images();
    let pick = |needle: &str| -> Vec<PathBuf> {
        imgs.iter()
            .filter(|p| {
                let s = p.to_string_lossy();
                s.contains(needle) && !s.contains("modes")
            })
            .cloned()
            .collect()
    };
    let banked = pick("reg-test-input");
    let unbanked = pick("misc-images");
    support::banks(env);
    support::bank_file(env, &banked[0]);
    let policy = PdataPolicy {
        providers: support::release(env, 3),
        allow_threshold: Some(3),
    };
    let dev = |user: &str| support::phone(env, &policy, user);
    let mut alice = dev("alice");
    let mut bob = dev("bob");
    let mut carol = dev("carol");
    assert_eq!(backend.count("SELECT COUNT(*) FROM chat_devices"), 3);
    alice.create_group("friends", &["bob", "carol"]).unwrap();
    for c in [&mut bob, &mut carol] {
        assert_eq!(c.receive().unwrap().joined, ["friends"]);
    }
    assert_eq!(
        backend.count("SELECT COUNT(*) FROM chat_members WHERE group_id = 'friends'"),
        3
    );

    let photo = Attachment::from_file(&unbanked[0]).unwrap();
    let sent = alice
        .send("friends", "a plain secret", std::slice::from_ref(&photo))
        .unwrap();
    assert_eq!(sent.voucher_bytes.len(), 1);
    backend.alter_stamp("carol", &sent.message_id);
    let r = bob.receive().unwrap();
    assert!(r.dropped.is_empty(), "{:?}", r.dropped);
    let m = &r.messages[0];
    assert_eq!(m.text, "a plain secret");
    assert_eq!(std::fs::read(&m.attachments[0].path).unwrap(), photo.bytes);
    let r = carol.receive().unwrap();
    assert!(r.messages.is_empty());
    assert!(r.dropped[0].reason.contains("signature"), "{r:?}");
    // Acknowledged: the queues of bob and carol are empty.
    assert_eq!(
        backend.count("SELECT COUNT(*) FROM chat_queue WHERE user_name IN ('bob', 'carol')"),
        0
    );
    // Only ciphertext: neither the text nor the image is in the tables.
    let mid = photo.bytes.len() / 2;
    assert_eq!(
        backend.count("SELECT COUNT(*) FROM chat_attachments"),
        1,
        "the attachment is stored once"
    );
    for (table, column) in [
        ("chat_attachments", "ciphertext"),
        ("chat_queue", "mls"),
        ("chat_key_packages", "key_package"),
    ] {
        for needle in [&b"a plain secret"[..], &photo.bytes[mid..mid + 64]] {
            assert_eq!(backend.rows_containing(table, column, needle), 0, "{table}");
        }
    }
    // Bob's report verifies at the matcher.
    let rep = bob.report(&sent.message_id, Some("spam")).unwrap();
    assert_eq!(rep["status"], "queued", "{rep}");

    // Carol is removed: her devices leave the group's members and she
    // gets nothing later.
    alice.remove("friends", "carol").unwrap();
    assert_eq!(carol.receive().unwrap().left, ["friends"]);
    bob.receive().unwrap();
    alice.send("friends", "after carol", &[]).unwrap();
    assert_eq!(
        backend.count("SELECT COUNT(*) FROM chat_queue WHERE user_name = 'carol'"),
        0
    );
    assert_eq!(bob.receive().unwrap().messages[0].text, "after carol");
}

#[test]
fn delivery_on_sqlite() {
    let env = support::start();
    let db = env.ds_db.clone();
    scenario(&env, &Backend::Sqlite(db));
}

#[test]
fn delivery_on_postgres_sharing_the_matchers_database() {
    let Some((url, name)) = support::postgres_db("delivery") else {
        return;
    };
    {
        let env = support::start_on(Some(url.clone()));
        scenario(&env, &Backend::Postgres(url.clone()));
        // One database holds both services' tables.
        assert!(support::pg_count(&url, "SELECT COUNT(*) FROM banks") >= 2);
        assert_eq!(
            support::pg_count(
                &url,
                "SELECT COUNT(*) FROM chat_meta WHERE key = 'chat_schema' AND value = '1'"
            ),
            1
        );
    }
    support::pg_admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
}
