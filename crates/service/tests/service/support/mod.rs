//! Stores for the service's tests: SQLite in a temporary directory, and a
//! fresh PostgreSQL database when `BULWARK_TEST_POSTGRES` is set.

#![allow(dead_code, clippy::unwrap_used)]

use bulwark_store::Store;

/// A store and what to drop after it.
pub struct TestStore {
    /// The store.
    pub store: Store,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestStore {
    /// A new SQLite store.
    pub async fn sqlite() -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        TestStore {
            store: Store::open(&url).await.unwrap(),
            _dir: Some(dir),
            postgres: None,
        }
    }

    /// A store on a new PostgreSQL database named after `test`, or `None`
    /// (with a message) when `BULWARK_TEST_POSTGRES` is not set.
    pub async fn postgres(test: &str) -> Option<TestStore> {
        use sqlx::Connection;
        let Ok(base) = std::env::var("BULWARK_TEST_POSTGRES") else {
            eprintln!("SKIPPED (set BULWARK_TEST_POSTGRES to run on PostgreSQL)");
            return None;
        };
        let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
        let name = format!("bulwark_service_{test}_{}", std::process::id());
        for sql in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::query(&sql).execute(&mut conn).await.unwrap();
        }
        let (prefix, _) = base.rsplit_once('/').unwrap();
        Some(TestStore {
            store: Store::open(&format!("{prefix}/{name}")).await.unwrap(),
            _dir: None,
            postgres: Some((base, name)),
        })
    }

    /// Closes the store and drops its PostgreSQL database.
    pub async fn cleanup(self) {
        use sqlx::Connection;
        self.store.pool.close().await;
        if let Some((base, name)) = self.postgres {
            let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
}
