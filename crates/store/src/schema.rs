//! The whole schema in one place, in the order it is applied.
//!
//! The SQL is in `crates/store/schema/*.sql`, one file per version, written
//! once for both backends: `{pk}`, `{real}` and `{blob}` become each
//! backend's column types ([`Store::render`](crate::Store)), and a file
//! named `*.sqlite.sql` / `*.postgres.sql` holds what only one dialect can
//! say (triggers). Each version runs once, in a transaction; a store at a
//! version newer than this binary knows is refused.
//!
//! The service's core tables are versioned by rows of `schema_version`;
//! each feature's tables by `meta.<key>`, apart, so that a feature's
//! migrations never renumber another's. Keys, versions and texts are part
//! of every existing database: a change is a new version at the end, never
//! an edit of an old one (`migrations_are_append_only` checks the texts of
//! the versions shipped so far).

use std::borrow::Cow;

use crate::Backend;

/// The core tables (`schema_version`): banks, content and signals, the
/// change log replicas follow, audit, API keys, pdata releases, franking
/// and reports, and (version 4) trust: device keys and enrolled devices,
/// report reporters and de-duplication, the full stamped context of
/// reported messages, vouchers queued for the opening worker, per-epoch
/// account states, sticky flags, per-bank quality floors, enrolled
/// providers, their signatures on releases and the public log of signed
/// roots.
pub(crate) const CORE: &[&str] = &[
    include_str!("../schema/core_v1.sql"),
    include_str!("../schema/core_v2.sql"),
    include_str!("../schema/core_v3.sql"),
    include_str!("../schema/core_v4.sql"),
];

/// A feature's tables, versioned by `meta.<key>`.
pub(crate) struct Module {
    /// The `meta` key holding the version reached.
    pub key: &'static str,
    /// What the tables are, for messages ("the {what} tables").
    pub what: &'static str,
    /// The versions, in order, in this backend's dialect.
    pub versions: fn(Backend) -> Vec<Cow<'static, str>>,
}

/// The feature modules, in the order [`Store::open`](crate::Store::open)
/// applies them (later ones reference earlier tables).
pub(crate) const MODULES: &[Module] = &[
    // Per-bank matching ratios, exchanges, their fetch status and
    // checkpoints, exchange API credentials (sealed), and the follower's map
    // of a leader's content ids to local ones.
    Module {
        key: "hma_schema",
        what: "HMA",
        versions: |_| vec![include_str!("../schema/hma_v1.sql").into()],
    },
    // The reviewer console. v2: video frame strips (extracted once, kept as
    // grey PNGs), the distance of each decided item per bank (false-positive
    // rate per threshold), indexes that keep queue pages and the dashboard
    // from reading whole tables. v3: the open items of every queue, so that a
    // queue page or "next item" is one range of an index that holds open
    // items only. `n`, `s` are the sort key (a report's or match's id and
    // `''`; a flagged account's flag time and name; an escalated item's queue
    // time and key), `t` the time it has waited since. Triggers on the
    // sources add a row when an item enters its queue (a queued report, a
    // recorded match, an account that becomes flagged, again after a clear)
    // and remove it when the source row goes (or the account is unflagged); a
    // final decision removes it and an escalation moves it to the `escalated`
    // queue. Filled from the existing rows, with the rules the queues had
    // before (an item with any decision is not in its kind's queue).
    Module {
        key: "console_schema",
        what: "console",
        versions: |backend| {
            let triggers = dialect(
                backend,
                include_str!("../schema/console_v3_triggers.sqlite.sql"),
                include_str!("../schema/console_v3_triggers.postgres.sql"),
            );
            vec![
                include_str!("../schema/console_v1.sql").into(),
                include_str!("../schema/console_v2.sql").into(),
                format!("{};\n{triggers}", include_str!("../schema/console_v3.sql")).into(),
            ]
        },
    },
    // Per-bank content counters, kept by triggers so that every write path
    // (API, imports, HMA, exchanges, the console) keeps them right and
    // reading a bank never scans its content. SQLite: row triggers;
    // PostgreSQL: statement triggers over transition tables (one upsert per
    // statement, so a 500-row insert costs one counter update). Since
    // `insert_counts` v1, SQLite counts inserts in the store's insert
    // functions instead (a row trigger per inserted row was a tenth of an
    // import).
    // v2: signals per (bank, type), for HMA's per-type sizes. v3
    // (PostgreSQL): an insert leaves its counts to its transaction when
    // `bulwark.defer_counts` is on (an import job's batches, which commit
    // in order from two connections: `imports::add_counts`).
    Module {
        key: "counts",
        what: "bank counter",
        versions: |backend| {
            vec![
                dialect(
                    backend,
                    include_str!("../schema/counts_v1.sqlite.sql"),
                    include_str!("../schema/counts_v1.postgres.sql"),
                ),
                dialect(
                    backend,
                    include_str!("../schema/counts_v2.sqlite.sql"),
                    include_str!("../schema/counts_v2.postgres.sql"),
                ),
                dialect(
                    backend,
                    include_str!("../schema/counts_v3.sqlite.sql"),
                    include_str!("../schema/counts_v3.postgres.sql"),
                ),
            ]
        },
    },
    // Import jobs.
    Module {
        key: "imports",
        what: "import job",
        versions: |_| vec![include_str!("../schema/imports_v1.sql").into()],
    },
    // One row per banked extra hash of a photo (content-region and crop
    // hashes, with their kind).
    Module {
        key: "extras_schema",
        what: "extra hashes",
        versions: |_| vec![include_str!("../schema/extras_v1.sql").into()],
    },
    // Trafficking signals: rule banks, rescue-photo banks and their
    // reviewers, a report's text signals and rescue matches; v2: the
    // explanation of a text/entity/rule match recorded for the console's
    // match queue (only the matched excerpt); v3: a version per rule bank,
    // bumped by every PUT, that compiled rule banks are cached by.
    Module {
        key: "signals_schema",
        what: "signals",
        versions: |_| {
            vec![
                include_str!("../schema/signals_v1.sql").into(),
                include_str!("../schema/signals_v2.sql").into(),
                include_str!("../schema/signals_v3.sql").into(),
            ]
        },
    },
    // What start-up reads besides the signals: an index of disabled content
    // (a module of its own, so that a binary from before it still opens the
    // database).
    Module {
        key: "startup_schema",
        what: "start-up index",
        versions: |_| vec![include_str!("../schema/startup_v1.sql").into()],
    },
    // One row per banked extra hash of a video frame (the content region
    // inside letterbox, caption or screenshot framing), with its kind.
    Module {
        key: "frame_extras",
        what: "video frame extra hashes",
        versions: |_| vec![include_str!("../schema/frame_extras_v1.sql").into()],
    },
    // Content de-duplication from memory on SQLite: v1 rebuilds `content`
    // without its UNIQUE (bank_id, dedup_key) there (foreign keys off for
    // the rebuild: see [`FOREIGN_KEYS_OFF`]); both backends keep the value
    // index of signals for exact types only (see crates/store/src/dedup.rs).
    Module {
        key: "dedup",
        what: "content de-duplication",
        versions: |backend| {
            vec![dialect(
                backend,
                include_str!("../schema/dedup_v1.sqlite.sql"),
                include_str!("../schema/dedup_v1.postgres.sql"),
            )]
        },
    },
    // Counters per insert call on SQLite: the row triggers that counted
    // each inserted content and signal row go, and the store's insert
    // functions add to the counters once per call
    // (`count_inserted` in lib.rs). Nothing on PostgreSQL,
    // whose statement triggers already count once per statement. Last:
    // `dedup` v1 made the content insert trigger again.
    Module {
        key: "insert_counts",
        what: "counters",
        versions: |backend| {
            vec![dialect(
                backend,
                include_str!("../schema/insert_counts_v1.sqlite.sql"),
                include_str!("../schema/insert_counts_v1.postgres.sql"),
            )]
        },
    },
    // PostgreSQL checks content's bank and a signal's content once per
    // statement (triggers over transition tables) instead of by foreign
    // keys, which ran a query per inserted row; deletes cascade by
    // statement triggers. Nothing on SQLite, whose foreign keys stay.
    Module {
        key: "references",
        what: "reference",
        versions: |backend| {
            vec![dialect(
                backend,
                include_str!("../schema/references_v1.sqlite.sql"),
                include_str!("../schema/references_v1.postgres.sql"),
            )]
        },
    },
    // PostgreSQL compares the keys an import probes and inserts by
    // (content's de-duplication key, a signal's type and value) as bytes,
    // whatever the database's collation. Nothing on SQLite, which does so
    // already.
    Module {
        key: "byte_keys",
        what: "key collation",
        versions: |backend| {
            vec![dialect(
                backend,
                include_str!("../schema/byte_keys_v1.sqlite.sql"),
                include_str!("../schema/byte_keys_v1.postgres.sql"),
            )]
        },
    },
    // A content row may carry its one signal, a PDQ hash that is its
    // de-duplication key, instead of a row of `signals` (`carried`,
    // `carried_quality`): what the import writes for each PDQ list line.
    // PostgreSQL's content triggers count a carried hash as a `pdq` signal;
    // on SQLite the insert functions count it and a delete trigger takes
    // it from the counters.
    Module {
        key: "carried",
        what: "carried signals",
        versions: |backend| {
            vec![dialect(
                backend,
                include_str!("../schema/carried_v1.sqlite.sql"),
                include_str!("../schema/carried_v1.postgres.sql"),
            )]
        },
    },
];

/// A version written once per dialect: `sqlite` on SQLite, `postgres` on
/// PostgreSQL.
fn dialect(backend: Backend, sqlite: &'static str, postgres: &'static str) -> Cow<'static, str> {
    match backend {
        Backend::Sqlite => sqlite,
        Backend::Postgres => postgres,
    }
    .into()
}

/// A version whose text holds this line runs on SQLite with foreign keys
/// off for its connection (set outside its transaction, where SQLite takes
/// it), is checked with `PRAGMA foreign_key_check` before it commits, and
/// turns them on again after: what rebuilding a table that others
/// reference takes (dropping it with foreign keys on would cascade).
pub(crate) const FOREIGN_KEYS_OFF: &str = "-- bulwark: foreign keys off";

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn digest(text: &str) -> String {
        hex::encode(&Sha256::digest(text.as_bytes())[..8])
    }

    /// Shipped versions never change: a database that ran one is not
    /// migrated again, so an edit would give new stores a schema old ones
    /// lack. The digests are those of the texts as they shipped (before
    /// they moved here from the modules that own the tables); a new version
    /// is appended with its digest.
    #[test]
    fn migrations_are_append_only() {
        let core: Vec<String> = CORE.iter().map(|m| digest(m)).collect();
        assert_eq!(
            core,
            [
                "053ed9243e7d9ee2",
                "ca0dfbddc469e5cd",
                "ebf2b5082c69f10c",
                "bef97cc2cba21167"
            ]
        );
        let shipped: &[(&str, Backend, &[&str])] = &[
            ("hma_schema", Backend::Sqlite, &["c752b36b7a865d39"]),
            (
                "console_schema",
                Backend::Sqlite,
                &["4b36db5ef23a1121", "3c7d1c8240345868", "0ab43a8ed00a1811"],
            ),
            (
                "console_schema",
                Backend::Postgres,
                &["4b36db5ef23a1121", "3c7d1c8240345868", "45550f43ef5b2112"],
            ),
            (
                "counts",
                Backend::Sqlite,
                &["f51e69e891597afc", "d7a791258bc50027", "51072c335c0be2dc"],
            ),
            (
                "counts",
                Backend::Postgres,
                &["b0dc5c00f9dd3b4b", "85b0af5daa36d2be", "7d119f05073bf0bc"],
            ),
            ("imports", Backend::Sqlite, &["6ecd9895e0347add"]),
            ("extras_schema", Backend::Sqlite, &["141d5053d2bd2a0a"]),
            ("frame_extras", Backend::Sqlite, &["fedd637208e62d9f"]),
            ("dedup", Backend::Sqlite, &["82a272b75f4ac2ec"]),
            ("dedup", Backend::Postgres, &["d7e2f98f88cc0e5f"]),
            ("references", Backend::Sqlite, &["11410dfa9e63b77f"]),
            ("references", Backend::Postgres, &["b4006202a9948f56"]),
            ("byte_keys", Backend::Sqlite, &["8f303c73e66e2cd9"]),
            ("byte_keys", Backend::Postgres, &["fa813400870a3f76"]),
            (
                "signals_schema",
                Backend::Sqlite,
                &["f1ef6369cf3f603d", "e5acf65e2446b311", "fd3eae25b9933371"],
            ),
        ];
        for (key, backend, digests) in shipped {
            let module = MODULES
                .iter()
                .find(|m| m.key == *key)
                .unwrap_or_else(|| panic!("module {key} is gone"));
            let have: Vec<String> = (module.versions)(*backend)
                .iter()
                .map(|v| digest(v))
                .collect();
            assert!(
                have.len() >= digests.len() && have[..digests.len()] == digests[..],
                "{key} ({backend:?}): shipped {digests:?}, now {have:?}"
            );
        }
        // Every module runs the same number of versions on both backends.
        for m in MODULES {
            assert_eq!(
                (m.versions)(Backend::Sqlite).len(),
                (m.versions)(Backend::Postgres).len(),
                "{}",
                m.key
            );
        }
        let order: Vec<&str> = MODULES.iter().map(|m| m.key).collect();
        assert_eq!(
            order,
            [
                "hma_schema",
                "console_schema",
                "counts",
                "imports",
                "extras_schema",
                "signals_schema",
                "startup_schema",
                "frame_extras",
                "dedup",
                "insert_counts",
                "references",
                "byte_keys",
                "carried"
            ]
        );
    }
}
