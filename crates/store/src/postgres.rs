//! PostgreSQL's import statement: a batch's content, signal and change rows
//! in one statement and one round trip ([`insert_fresh`]). A PDQ list line
//! is a content row and a change row: its content row carries its hash
//! (store module `carried`).
//!
//! The rows go in as arrays (`unnest`), each bound as one text parameter in
//! PostgreSQL's array syntax ([`text_array`]), since sqlx's `Any` driver
//! binds no arrays. Until 2026-12-04 a batch was three statements of bound
//! `VALUES` rows (nine parameters a content row), two of them answering a
//! row per inserted row through the driver, and the importing connection
//! waited for each in turn (docs/benchmarks/serve.md, "One statement a
//! batch on PostgreSQL").

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::sync::atomic::Ordering;

use sqlx::Row;

use crate::{NewContent, SignalRow, Store};

/// One statement: the rows (`r`, numbered from 1 by `WITH ORDINALITY`), the
/// content rows the bank does not hold yet (`ins`; its unique index and `ON
/// CONFLICT DO NOTHING` decide, so replicas sharing the database agree; see
/// [`INSERT_FRESH_PLAIN`] for the form tried first), their signals and
/// change rows, in id order (an item's signals in the order given). An item
/// that carries its PDQ hash ([`NewContent::carried`]: each line of a PDQ
/// list) gets no signal row: its content row says so (`carried`,
/// `carried_quality`; store module `carried`). It answers one text, `seq id
/// ord` per new row, where `ord` is the row's number in `r`: one row
/// through the driver instead of one per inserted row.
///
/// A data-modifying `WITH` runs once whether or not the rest reads it, and
/// the check that a signal's content exists (a statement trigger, store
/// module `references`) runs at the end of the statement, when the content
/// rows are there. The change rows are sorted by content id, so their
/// sequence numbers are drawn only once every content row is in: a
/// statement that fails on a held key leaves no gap in the change feed
/// (`import_batches_meeting_held_keys_on_postgres`).
const INSERT_FRESH: &str = "\
WITH r AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
    $13::bigint[], $14::bigint[])
    WITH ORDINALITY AS r (kind, dedup_key, note, metadata, source, carried, carried_quality, ord)),
ins AS (
  INSERT INTO content (bank_id, kind, dedup_key, note, metadata, enabled, disabled_until,
    added_by, source, created_at, updated_at, carried, carried_quality)
  SELECT $6::bigint, kind, dedup_key, note, metadata, 1, NULL, $7::text, source, $8::bigint,
    $8::bigint, carried, carried_quality FROM r ORDER BY ord
  ON CONFLICT (bank_id, dedup_key) DO NOTHING
  RETURNING id, dedup_key),
new AS (SELECT ins.id, r.ord FROM ins JOIN r USING (dedup_key)),
sig AS (
  INSERT INTO signals (content_id, bank_id, signal_type, value, quality)
  SELECT new.id, $6::bigint, s.signal_type, s.value, s.quality
  FROM unnest($9::bigint[], $10::text[], $11::text[], $12::bigint[])
    WITH ORDINALITY AS s (ord, signal_type, value, quality, n)
  JOIN new USING (ord) ORDER BY new.id, s.n),
ch AS (
  INSERT INTO changes (bank_id, content_id, at)
  SELECT $6::bigint, id, $8::bigint FROM new ORDER BY id
  RETURNING seq, content_id)
SELECT COALESCE(string_agg(ch.seq || ' ' || ch.content_id || ' ' || new.ord, ','), '') AS a
FROM ch JOIN new ON new.id = ch.content_id";

/// The conflict clause of [`INSERT_FRESH`].
const ON_CONFLICT: &str = "\n  ON CONFLICT (bank_id, dedup_key) DO NOTHING";

/// [`INSERT_FRESH`] without `ON CONFLICT`: a key the bank holds is an
/// error (unique_violation) instead of a row skipped. With `ON CONFLICT`
/// PostgreSQL searches the unique index twice for every row (a check before
/// the insert, then the insert, which checks again); without it, once. The
/// server alone imports about 1.15x faster so (docs/benchmarks/serve.md,
/// "One search of the unique index a row on PostgreSQL").
static INSERT_FRESH_PLAIN: LazyLock<String> = LazyLock::new(|| {
    debug_assert!(INSERT_FRESH.contains(ON_CONFLICT));
    INSERT_FRESH.replace(ON_CONFLICT, "")
});

/// The unique index [`INSERT_FRESH_PLAIN`] may find a key in.
const DEDUP_INDEX: &str = "content_bank_id_dedup_key_key";

/// Calls that go straight to [`INSERT_FRESH`] after one found a key the
/// bank holds: a list with a few duplicates in every batch would otherwise
/// pay for most of a failed statement each time.
const CONFLICT_CALLS: usize = 8;

/// Inserts `items[i]` for each `i` of `fresh` (no key twice) into bank
/// `bank_id` with their signals and a change row each; content the bank
/// holds already is skipped. Answers `(seq, content id, i)` for each new
/// row, in sequence order. Video frames are not written here.
///
/// Takes a savepoint (a subtransaction) unless a recent call met a key the
/// bank holds; callers make one call a transaction (an import batch), well
/// below the 64 subtransactions a PostgreSQL transaction keeps in memory.
pub(crate) async fn insert_fresh(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    bank_id: i64,
    actor: &str,
    now: i64,
    items: &[NewContent],
    fresh: &[usize],
) -> Result<Vec<(i64, i64, usize)>, sqlx::Error> {
    debug_assert_eq!(store.backend, crate::Backend::Postgres);
    let column =
        |f: fn(&NewContent) -> Option<&str>| text_array(fresh.iter().map(|&i| f(&items[i])));
    // What each item carries (`None`: its signals are rows).
    let carried: Vec<Option<Option<i64>>> = fresh.iter().map(|&i| items[i].carried()).collect();
    // Each signal row with the number (from 1) of its item in `fresh`.
    let signals: Vec<(i64, &SignalRow)> = fresh
        .iter()
        .zip(&carried)
        .zip(1..)
        .filter(|((_, c), _)| c.is_none())
        .flat_map(|((&i, _), n)| items[i].signals.iter().map(move |s| (n, s)))
        .collect();
    let run = |sql: &'static str| {
        sqlx::query(sql)
            .bind(column(|c| Some(c.kind)))
            .bind(column(|c| Some(c.dedup_key.as_str())))
            .bind(column(|c| c.note.as_deref()))
            .bind(column(|c| c.metadata.as_deref()))
            .bind(column(|c| c.source.as_deref()))
            .bind(bank_id)
            .bind(actor)
            .bind(now)
            .bind(int_array(signals.iter().map(|&(n, _)| Some(n))))
            .bind(text_array(
                signals.iter().map(|(_, s)| Some(s.signal_type.as_str())),
            ))
            .bind(text_array(
                signals.iter().map(|(_, s)| Some(s.value.as_str())),
            ))
            .bind(int_array(signals.iter().map(|(_, s)| s.quality)))
            .bind(int_array(
                carried.iter().map(|c| Some(i64::from(c.is_some()))),
            ))
            .bind(int_array(carried.iter().map(|c| c.flatten())))
    };
    // Most batches meet no key the bank holds: the statement without `ON
    // CONFLICT` first, inside a savepoint; if it meets one, back to the
    // savepoint and the statement with it.
    let plain = store
        .conflict_calls
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_err();
    let mut answer = None;
    if plain {
        sqlx::query("SAVEPOINT bulwark_fresh")
            .execute(&mut *tx)
            .await?;
        match run(INSERT_FRESH_PLAIN.as_str()).fetch_one(&mut *tx).await {
            Ok(row) => answer = Some(row),
            Err(sqlx::Error::Database(e))
                if e.is_unique_violation() && e.constraint() == Some(DEDUP_INDEX) =>
            {
                sqlx::query("ROLLBACK TO SAVEPOINT bulwark_fresh")
                    .execute(&mut *tx)
                    .await?;
                store
                    .conflict_calls
                    .store(CONFLICT_CALLS, Ordering::Relaxed);
            }
            Err(e) => return Err(e),
        }
    }
    let answer = match answer {
        Some(row) => row,
        None => run(INSERT_FRESH).fetch_one(&mut *tx).await?,
    };
    let text: String = answer.try_get("a")?;
    let mut out = Vec::with_capacity(fresh.len());
    for row in text.split(',').filter(|r| !r.is_empty()) {
        let mut f = row.split(' ').map(str::parse::<i64>);
        let (Some(Ok(seq)), Some(Ok(id)), Some(Ok(ord)), None) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            return Err(sqlx::Error::Protocol(format!(
                "import statement answered {row:?}"
            )));
        };
        let i = usize::try_from(ord - 1)
            .ok()
            .and_then(|n| fresh.get(n))
            .ok_or_else(|| sqlx::Error::Protocol(format!("import statement answered row {ord}")))?;
        out.push((seq, id, *i));
    }
    out.sort_unstable();
    Ok(out)
}

/// `values` as a PostgreSQL array literal (`{a,b,NULL}`), each element
/// written by `element`; `None` is an SQL `NULL`.
fn array<T>(
    values: impl IntoIterator<Item = Option<T>>,
    mut element: impl FnMut(&mut String, T),
) -> String {
    let mut out = String::from("{");
    for (n, v) in values.into_iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        match v {
            None => out.push_str("NULL"),
            Some(v) => element(&mut out, v),
        }
    }
    out.push('}');
    out
}

/// `values` as a PostgreSQL array literal of text (`{"a","b",NULL}`): each
/// element quoted, with `"` and `\` escaped by a backslash.
pub(crate) fn text_array<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> String {
    array(values, |out, v| {
        out.push('"');
        for c in v.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    })
}

/// `values` as a PostgreSQL array literal of integers (`{1,2,NULL}`).
pub(crate) fn int_array(values: impl IntoIterator<Item = Option<i64>>) -> String {
    array(values, |out, v| {
        let _ = write!(out, "{v}");
    })
}
