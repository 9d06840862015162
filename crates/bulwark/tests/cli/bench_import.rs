//! `bulwark bench import`, small: it runs end to end, every line of its list
//! is added (the command fails otherwise), and `--write-every-ms 0` makes no
//! single writes during the import; `--fresh-database` runs in a database
//! of its own on the PostgreSQL server and drops it.
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn bench_import_alone_adds_every_line_and_makes_no_single_writes_beside_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args([
            "bench",
            "import",
            "--lines",
            "3000",
            "--reference-lines",
            "100",
            "--write-every-ms",
            "0",
            "--json",
        ])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["backend"], "sqlite", "{v}");
    assert_eq!(v["lines"], 3000, "{v}");
    assert_eq!(v["single_writes"], 0, "{v}");
    assert_eq!(v["single_write_errors"], 0, "{v}");
    assert!(v["lines_per_s"].as_f64().unwrap() > 0.0, "{v}");
    // The writes before the import still ran, to measure a write alone.
    assert!(v["alone_p50_ms"].as_f64().unwrap() > 0.0, "{v}");
}

/// A connection to the PostgreSQL server at `base`, or `None` (with a
/// visible message) when none answers, unless
/// `BULWARK_TEST_POSTGRES_REQUIRED=1` (CI), which panics.
async fn postgres(base: &str) -> Option<sqlx::PgConnection> {
    use sqlx::Connection;
    match tokio::time::timeout(
        std::time::Duration::from_secs(3),
        sqlx::PgConnection::connect(base),
    )
    .await
    {
        Ok(Ok(c)) => Some(c),
        other => {
            let why = format!("{other:?}");
            if std::env::var("BULWARK_TEST_POSTGRES_REQUIRED").as_deref() == Ok("1") {
                panic!("PostgreSQL required but not reachable at {base}: {why}");
            }
            eprintln!("SKIPPED (PostgreSQL not reachable at {base}: {why})");
            None
        }
    }
}

#[test]
fn bench_import_fresh_database_runs_in_its_own_database_and_drops_it() {
    use sqlx::Connection;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let base = std::env::var("BULWARK_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let Some(mut admin) = rt.block_on(postgres(&base)) else {
        return;
    };
    // The database named on the command line: it must stay untouched.
    let given = format!("bulwark_test_bench_given_{}", std::process::id());
    let (prefix, _) = base.rsplit_once('/').unwrap();
    let given_url = format!("{prefix}/{given}");
    rt.block_on(async {
        for sql in [
            format!("DROP DATABASE IF EXISTS {given}"),
            format!("CREATE DATABASE {given}"),
        ] {
            sqlx::query(&sql).execute(&mut admin).await.unwrap();
        }
    });

    let child = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args([
            "bench",
            "import",
            "--lines",
            "2000",
            "--reference-lines",
            "100",
            "--write-every-ms",
            "0",
            "--json",
            "--fresh-database",
            "--database",
            &given_url,
        ])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stderr.contains("could not drop"), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(v["backend"], "postgresql", "{v}");
    assert_eq!(v["lines"], 2000, "{v}");

    rt.block_on(async {
        // Its own database is gone.
        let (left,): (i64,) = sqlx::query_as("SELECT count(*) FROM pg_database WHERE datname = $1")
            .bind(format!("bulwark_bench_{pid}"))
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert_eq!(left, 0, "bulwark_bench_{pid} was not dropped");
        // And the given one holds no table: nothing was written there.
        let mut conn = sqlx::PgConnection::connect(&given_url).await.unwrap();
        let (tables,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(tables, 0, "the bench wrote into the database it was given");
        conn.close().await.unwrap();
        sqlx::query(&format!("DROP DATABASE IF EXISTS {given} WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .unwrap();
    });
}
