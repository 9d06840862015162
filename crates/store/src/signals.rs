//! Text and entity signals (docs/SIGNALS.md): the banked text hashes the
//! text-hash index follows, banks' keyword/regex rule sets, the rescue
//! photo banks and their reviewers, and the text signals and rescue matches
//! stored with a report. Entities are looked up with
//! [`crate::exact_holders`].

use sqlx::Row;

use crate::Store;

/// A banked text hash: (signal id, bank id, content id, value).
pub type TextHashRow = (i64, i64, i64, String);

/// The banked text hashes of some content items (by the `signals_content`
/// index), 500 ids a statement, unordered.
pub async fn text_hashes_of(
    store: &Store,
    text_hash_type: &str,
    contents: &[i64],
) -> Result<Vec<TextHashRow>, sqlx::Error> {
    let mut out = Vec::new();
    for chunk in contents.chunks(500) {
        // Ids are integers formatted here: no injection.
        let list = chunk
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        // `signal_type || ''` keeps the planner on `signals_content` (the
        // `(signal_type, value)` index would visit every banked text hash).
        let rows = sqlx::query(&store.sql(&format!(
            "SELECT id, bank_id, content_id, value FROM signals WHERE content_id IN ({list}) AND signal_type || '' = ?"
        )))
        .bind(text_hash_type)
        .fetch_all(&store.pool)
        .await?;
        for r in &rows {
            out.push((
                r.try_get("id")?,
                r.try_get("bank_id")?,
                r.try_get("content_id")?,
                r.try_get("value")?,
            ));
        }
    }
    Ok(out)
}

// ---- rules ----

/// A bank's rule set as stored.
#[derive(Debug, Clone)]
pub struct RulesRow {
    /// The `RuleBankSpec` (bulwark-signals), JSON.
    pub spec: String,
    /// Strictly increasing per bank: a compiled copy is current while its
    /// version is.
    pub version: i64,
}

/// The rule set of a bank, if it has one.
pub async fn rules_of(store: &Store, bank_id: i64) -> Result<Option<RulesRow>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT spec, version FROM rule_banks WHERE bank_id = ?"))
        .bind(bank_id)
        .fetch_optional(&store.pool)
        .await?
        .map(|r| {
            Ok(RulesRow {
                spec: r.try_get("spec")?,
                version: r.try_get("version")?,
            })
        })
        .transpose()
}

/// A bank that has rules, with its rules' version.
#[derive(Debug, Clone)]
pub struct RuleBankRef {
    /// Bank id.
    pub id: i64,
    /// Bank name.
    pub name: String,
    /// Matching enabled.
    pub enabled: bool,
    /// The rules' version.
    pub version: i64,
}

/// Every bank with rules, by name.
pub async fn rule_banks(store: &Store) -> Result<Vec<RuleBankRef>, sqlx::Error> {
    sqlx::query(
        "SELECT b.id, b.name, b.enabled, r.version FROM rule_banks r JOIN banks b ON b.id = r.bank_id ORDER BY b.name",
    )
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(RuleBankRef {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            enabled: r.try_get::<i64, _>("enabled")? != 0,
            version: r.try_get("version")?,
        })
    })
    .collect()
}

/// Sets a bank's rules. The version goes up by one, and never below the
/// write's time in ms: rules deleted and set again do not reuse a version
/// a cache holds.
pub async fn put_rules(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    bank_id: i64,
    language: &str,
    spec: &str,
    actor: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO rule_banks (bank_id, language, spec, updated_at, updated_by, version) VALUES (?, ?, ?, ?, ?, ?) \
         ON CONFLICT (bank_id) DO UPDATE SET language = excluded.language, spec = excluded.spec, \
         updated_at = excluded.updated_at, updated_by = excluded.updated_by, \
         version = CASE WHEN rule_banks.version + 1 > excluded.version THEN rule_banks.version + 1 ELSE excluded.version END",
    ))
    .bind(bank_id)
    .bind(language)
    .bind(spec)
    .bind(crate::now_ms())
    .bind(actor)
    .bind(crate::now_ms())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Deletes a bank's rules; whether it had any.
pub async fn delete_rules(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    bank_id: i64,
) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query(&store.sql("DELETE FROM rule_banks WHERE bank_id = ?"))
            .bind(bank_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0,
    )
}

// ---- rescue photo banks ----

/// Whether a key is a designated rescue reviewer.
pub async fn is_rescue_reviewer(store: &Store, key_id: &str) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query(&store.sql("SELECT key_id FROM rescue_reviewers WHERE key_id = ?"))
            .bind(key_id)
            .fetch_optional(&store.pool)
            .await?
            .is_some(),
    )
}

/// A rescue bank to create.
#[derive(Debug, Clone)]
pub struct NewRescueBank<'a> {
    /// Unique name.
    pub name: &'a str,
    /// Free text.
    pub description: &'a str,
    /// The organisation providing the photos.
    pub provider: Option<&'a str>,
    /// Largest PDQ distance that matches.
    pub threshold: i64,
    /// The admin key creating it.
    pub created_by: &'a str,
}

/// Creates a rescue bank; its id. Fails (a constraint error) when the name
/// is taken.
pub async fn insert_rescue_bank(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    b: &NewRescueBank<'_>,
) -> Result<i64, sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO rescue_banks (name, description, provider, threshold, created_at, created_by) \
         VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
    ))
    .bind(b.name)
    .bind(b.description)
    .bind(b.provider)
    .bind(b.threshold)
    .bind(crate::now_ms())
    .bind(b.created_by)
    .fetch_one(&mut *tx)
    .await?
    .try_get("id")
}

/// A rescue bank as listed.
#[derive(Debug, Clone)]
pub struct RescueBankRow {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The organisation providing the photos.
    pub provider: Option<String>,
    /// Largest PDQ distance that matches.
    pub threshold: i64,
    /// Photos held.
    pub photos: i64,
    /// Milliseconds.
    pub created_at: i64,
}

/// Every rescue bank with its photo count, by name.
pub async fn rescue_banks(store: &Store) -> Result<Vec<RescueBankRow>, sqlx::Error> {
    sqlx::query(
        "SELECT b.id, b.name, b.description, b.provider, b.threshold, b.created_at, \
         (SELECT COUNT(*) FROM rescue_photos p WHERE p.bank_id = b.id) AS photos \
         FROM rescue_banks b ORDER BY b.name",
    )
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(RescueBankRow {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            description: r.try_get("description")?,
            provider: r.try_get("provider")?,
            threshold: r.try_get("threshold")?,
            photos: r.try_get("photos")?,
            created_at: r.try_get("created_at")?,
        })
    })
    .collect()
}

/// A rescue bank's id by name.
pub async fn rescue_bank_id(store: &Store, name: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT id FROM rescue_banks WHERE name = ?"))
        .bind(name)
        .fetch_optional(&store.pool)
        .await?
        .map(|r| r.try_get("id"))
        .transpose()
}

/// A photo to add to a rescue bank.
#[derive(Debug, Clone)]
pub struct NewRescuePhoto<'a> {
    /// Rescue bank id.
    pub bank_id: i64,
    /// PDQ hash, hex.
    pub pdq: &'a str,
    /// PDQ quality, when known.
    pub quality: Option<i64>,
    /// Free text.
    pub note: Option<&'a str>,
    /// The key adding it.
    pub added_by: &'a str,
}

/// Adds a photo's hash to a rescue bank; its id, or `None` when the bank
/// holds that hash already.
pub async fn insert_rescue_photo(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    p: &NewRescuePhoto<'_>,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO rescue_photos (bank_id, pdq, quality, note, added_by, created_at) \
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (bank_id, pdq) DO NOTHING RETURNING id",
    ))
    .bind(p.bank_id)
    .bind(p.pdq)
    .bind(p.quality)
    .bind(p.note)
    .bind(p.added_by)
    .bind(crate::now_ms())
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| r.try_get("id"))
    .transpose()
}

/// A rescue photo with its bank, as report intake matches it.
#[derive(Debug, Clone)]
pub struct RescuePhotoRow {
    /// Photo id.
    pub id: i64,
    /// PDQ hash, hex.
    pub pdq: String,
    /// Free text.
    pub note: Option<String>,
    /// The bank's name.
    pub bank: String,
    /// The bank's threshold.
    pub threshold: i64,
    /// The bank's provider.
    pub provider: Option<String>,
}

/// Every rescue photo, by id.
pub async fn rescue_photos(store: &Store) -> Result<Vec<RescuePhotoRow>, sqlx::Error> {
    sqlx::query(
        "SELECT p.id, p.pdq, p.note, b.name, b.threshold, b.provider FROM rescue_photos p \
         JOIN rescue_banks b ON b.id = p.bank_id ORDER BY p.id",
    )
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(RescuePhotoRow {
            id: r.try_get("id")?,
            pdq: r.try_get("pdq")?,
            note: r.try_get("note")?,
            bank: r.try_get("name")?,
            threshold: r.try_get("threshold")?,
            provider: r.try_get("provider")?,
        })
    })
    .collect()
}

/// The role of a key that is not revoked.
pub async fn live_key_role(store: &Store, key_id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query(&store.sql("SELECT role FROM api_keys WHERE id = ? AND revoked_at IS NULL"))
        .bind(key_id)
        .fetch_optional(&store.pool)
        .await?
        .map(|r| r.try_get("role"))
        .transpose()
}

/// Designates a key as a rescue reviewer (again: no change).
pub async fn grant_rescue_reviewer(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    key_id: &str,
    granted_by: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO rescue_reviewers (key_id, granted_by, granted_at) VALUES (?, ?, ?) \
         ON CONFLICT (key_id) DO NOTHING",
    ))
    .bind(key_id)
    .bind(granted_by)
    .bind(crate::now_ms())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Ends a key's designation; whether it was one.
pub async fn revoke_rescue_reviewer(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    key_id: &str,
) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query(&store.sql("DELETE FROM rescue_reviewers WHERE key_id = ?"))
            .bind(key_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0,
    )
}

// ---- reports ----

/// Stores the signals (JSON) and matches (a JSON array) of one message of a
/// report, in the report's transaction.
pub async fn insert_report_text_signals(
    store: &Store,
    conn: &mut sqlx::AnyConnection,
    report_id: i64,
    msg_idx: i64,
    signals: &str,
    matches: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO report_text_signals (report_id, msg_idx, signals, matches) VALUES (?, ?, ?, ?)",
    ))
    .bind(report_id)
    .bind(msg_idx)
    .bind(signals)
    .bind(matches)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Stores the rescue matches (a JSON array) of one attachment of a report,
/// in the report's transaction.
pub async fn insert_report_rescue_matches(
    store: &Store,
    conn: &mut sqlx::AnyConnection,
    report_id: i64,
    msg_idx: i64,
    idx: i64,
    matches: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO report_rescue_matches (report_id, msg_idx, idx, matches) VALUES (?, ?, ?, ?)",
    ))
    .bind(report_id)
    .bind(msg_idx)
    .bind(idx)
    .bind(matches)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A report's text signals: (message index, signals JSON, matches JSON), by
/// message.
pub async fn report_text_signals(
    store: &Store,
    report_id: i64,
) -> Result<Vec<(i64, String, String)>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT msg_idx, signals, matches FROM report_text_signals WHERE report_id = ? ORDER BY msg_idx",
    ))
    .bind(report_id)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| {
        Ok((
            r.try_get("msg_idx")?,
            r.try_get("signals")?,
            r.try_get("matches")?,
        ))
    })
    .collect()
}

/// A report's rescue matches: (message index, attachment index, matches
/// JSON), by message and attachment.
pub async fn report_rescue_matches(
    store: &Store,
    report_id: i64,
) -> Result<Vec<(i64, i64, String)>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT msg_idx, idx, matches FROM report_rescue_matches WHERE report_id = ? ORDER BY msg_idx, idx",
    ))
    .bind(report_id)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("msg_idx")?, r.try_get("idx")?, r.try_get("matches")?)))
    .collect()
}
