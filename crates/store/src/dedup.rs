//! Which content a bank already holds, on SQLite: from memory instead of a
//! unique index.
//!
//! A content row's `(bank_id, dedup_key)` identifies it in its bank (adding
//! the same item again answers the first id). PostgreSQL keeps that rule as
//! a unique index (`ON CONFLICT DO NOTHING`): several replicas may write to
//! one database. On SQLite the index was most of an import's cost: the key
//! is a hash, so every new row lands on a random page of a B-tree larger
//! than a batch, and WAL mode logs each dirtied page whole at every commit
//! (docs/benchmarks/serve.md, "What SQLite itself allows": 14× slower than
//! the same rows without hash-keyed indexes). Since `dedup` v1 the SQLite
//! table has no such index, and this map answers instead.
//!
//! The map holds a 64-bit fingerprint of `(bank_id, dedup_key)` for every
//! row, with its id. A fingerprint that is present is only a candidate: the
//! row is read back by id (the primary key) and its bank and key compared,
//! so a fingerprint collision, a rolled-back insert or deleted content can
//! never make a new item a duplicate, or a duplicate new. What must hold is
//! that the map is never *missing* a committed row:
//!
//! - every write that checks the map first reads the rows committed since
//!   the map last looked (`id` above the highest committed id it has read),
//!   inside its transaction, so under SQLite's write lock (every content
//!   write holds it from its `BEGIN IMMEDIATE`: [`Store::begin`], the import
//!   job's connection); the first such write reads them all. Rows another
//!   `Store` or process wrote are found this way too. The highest committed
//!   id comes from a connection of the map's own, outside the transaction
//!   (one primary-key lookup): inside it the transaction's own uncommitted
//!   rows show, and if it rolled back their ids would be given again to
//!   rows the map had then skipped;
//! - every insert adds its own rows before its transaction commits, still
//!   under the write lock, so a later check in the same transaction finds
//!   them as well;
//! - an entry of a rolled-back insert or of deleted content names a row
//!   that is gone, or whose id now holds another key: the read-back
//!   settles it.
//!
//! Memory: about 16 bytes of payload a row in a `HashMap` (some 25–35 bytes
//! with the table's overhead): about 300 MB at 10M rows.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use sqlx::Row;

use crate::Store;

/// Rows of `content` read per aggregated page while catching up.
const BUILD_PAGE_ROWS: i64 = 100_000;

/// Ids verified per `IN (...)` read.
const VERIFY_CHUNK: usize = 500;

/// The in-memory map (see the module's text).
pub(crate) struct Dedup {
    state: tokio::sync::Mutex<Option<Map>>,
    /// Fingerprint bits kept: all of them, but a test keeps a few to make
    /// every lookup a collision that the read-back must settle.
    mask: u64,
    /// The database, for [`Dedup::reader`].
    url: String,
    /// A connection outside the pool that reads the highest committed id.
    reader: tokio::sync::Mutex<Option<sqlx::AnyConnection>>,
    /// Rows per page while filling ([`BUILD_PAGE_ROWS`]; tests use a few).
    page_rows: i64,
}

#[derive(Default)]
struct Map {
    /// The highest content id read from the table.
    seen: i64,
    /// Every row committed up to some moment has been read, and this
    /// process's inserts since were added: [`Dedup::lookup`] may answer "not
    /// held" from the map. False while [`Dedup::prefill`] is part-way.
    filled: bool,
    one: HashMap<u64, i64>,
    /// Further ids under a fingerprint already in `one` (collisions, and
    /// entries of rows that are gone).
    more: HashMap<u64, Vec<i64>>,
}

impl Map {
    fn add(&mut self, fp: u64, id: i64) {
        match self.one.entry(fp) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(id);
            }
            std::collections::hash_map::Entry::Occupied(o) => {
                if *o.get() != id {
                    let more = self.more.entry(fp).or_default();
                    if !more.contains(&id) {
                        more.push(id);
                    }
                }
            }
        }
    }

    fn candidates(&self, fp: u64, out: &mut Vec<i64>) {
        if let Some(&id) = self.one.get(&fp) {
            out.push(id);
            if let Some(more) = self.more.get(&fp) {
                out.extend(more);
            }
        }
    }
}

impl Dedup {
    /// The map of the SQLite database at `url` (built by the first write).
    pub(crate) fn new(url: &str) -> Dedup {
        Dedup {
            state: tokio::sync::Mutex::new(None),
            mask: u64::MAX,
            url: url.to_string(),
            reader: tokio::sync::Mutex::new(None),
            page_rows: BUILD_PAGE_ROWS,
        }
    }

    /// A map that keeps only `bits` bits of each fingerprint (tests).
    #[cfg(test)]
    pub(crate) fn with_bits(url: &str, bits: u32) -> Dedup {
        Dedup {
            mask: (1u64 << bits) - 1,
            ..Dedup::new(url)
        }
    }

    /// The highest content id committed, read on the map's own connection
    /// (opened at first use; under WAL a reader never waits for the writer).
    async fn committed_max(&self) -> Result<Option<i64>, sqlx::Error> {
        use sqlx::Connection;
        let mut reader = self.reader.lock().await;
        if reader.is_none() {
            let mut c = sqlx::AnyConnection::connect(&self.url).await?;
            sqlx::query("PRAGMA busy_timeout = 10000")
                .execute(&mut c)
                .await?;
            *reader = Some(c);
        }
        let c = reader.as_mut().expect("opened above");
        let r = sqlx::query("SELECT MAX(id) AS m FROM content")
            .fetch_one(&mut *c)
            .await;
        match r {
            Ok(row) => row.try_get("m"),
            Err(e) => {
                // A broken connection is opened again next time.
                *reader = None;
                Err(e)
            }
        }
    }

    fn fingerprint(&self, bank_id: i64, key: &str) -> u64 {
        // SipHash-1-3 with fixed keys: stable within a process, which is
        // all the map needs (it is never stored). An adversary who makes
        // keys collide costs read-backs, never a wrong answer.
        let mut h = std::hash::DefaultHasher::new();
        bank_id.hash(&mut h);
        key.hash(&mut h);
        h.finish() & self.mask
    }

    /// For each of `keys`, the id of the content of `bank_id` holding it, if
    /// any. `tx` holds SQLite's write lock. `committed` is the highest
    /// content id committed, when the caller knows it (read in `tx` before
    /// it wrote anything: [`crate::TxMarks`]); else it is read on the map's
    /// own connection.
    pub(crate) async fn existing(
        &self,
        tx: &mut sqlx::AnyConnection,
        bank_id: i64,
        keys: &[&str],
        committed: Option<i64>,
    ) -> Result<Vec<Option<i64>>, sqlx::Error> {
        let mut state = self.state.lock().await;
        let map = state.get_or_insert_with(Map::default);
        let newest = match committed {
            Some(m) => Some(m),
            None => self.committed_max().await?,
        };
        self.catch_up(map, tx, newest).await?;
        let mut wanted: Vec<(usize, i64)> = Vec::new();
        let mut ids = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            ids.clear();
            map.candidates(self.fingerprint(bank_id, key), &mut ids);
            wanted.extend(ids.iter().map(|&id| (i, id)));
        }
        let mut found = vec![None; keys.len()];
        if wanted.is_empty() {
            return Ok(found);
        }
        let mut rows: HashMap<i64, (i64, String)> = HashMap::new();
        let mut all: Vec<i64> = wanted.iter().map(|&(_, id)| id).collect();
        all.sort_unstable();
        all.dedup();
        for chunk in all.chunks(VERIFY_CHUNK) {
            let sql = format!(
                "SELECT id, bank_id, dedup_key FROM content WHERE id IN ({})",
                chunk
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            );
            for r in sqlx::query(&sql).fetch_all(&mut *tx).await? {
                rows.insert(
                    r.try_get("id")?,
                    (r.try_get("bank_id")?, r.try_get("dedup_key")?),
                );
            }
        }
        for (i, id) in wanted {
            if let Some((b, k)) = rows.get(&id)
                && *b == bank_id
                && k == keys[i]
                && found[i].is_none()
            {
                found[i] = Some(id);
            }
        }
        Ok(found)
    }

    /// Records rows just inserted in `tx` (before its commit): `(key, id)`
    /// of content of `bank_id`. A map not built yet is left to be built
    /// (the first check reads these rows: the write lock is still held).
    pub(crate) async fn added(&self, bank_id: i64, rows: &[(&str, i64)]) {
        let mut state = self.state.lock().await;
        if let Some(map) = state.as_mut() {
            for &(key, id) in rows {
                map.add(self.fingerprint(bank_id, key), id);
            }
        }
    }

    /// After the commit of a transaction whose marks these are: its rows
    /// are committed, and the map holds them all (it read every row up to
    /// `committed` in the transaction, and `added` the transaction's own,
    /// `committed + 1 ..= last`), so the next check need not read them
    /// again. Only when nothing moved the map since (`seen` is still
    /// `committed`); else the next check reads from where it is.
    pub(crate) async fn committed_through(&self, committed: i64, last: i64) {
        let mut state = self.state.lock().await;
        if let Some(map) = state.as_mut()
            && map.seen == committed
            && last > committed
        {
            map.seen = last;
        }
    }

    /// The id of the content of `bank_id` holding `key`, outside a write
    /// transaction: candidates from the map, verified by a read; `None`
    /// means "not known from the map" when the map is not built yet, and
    /// the caller falls back to a query.
    pub(crate) async fn lookup(
        &self,
        store: &Store,
        bank_id: i64,
        key: &str,
    ) -> Result<Option<Option<i64>>, sqlx::Error> {
        let mut ids = Vec::new();
        {
            let state = self.state.lock().await;
            let Some(map) = state.as_ref().filter(|m| m.filled) else {
                return Ok(None);
            };
            map.candidates(self.fingerprint(bank_id, key), &mut ids);
        }
        for id in ids {
            let row = sqlx::query("SELECT bank_id, dedup_key FROM content WHERE id = ?")
                .bind(id)
                .fetch_optional(&store.pool)
                .await?;
            if let Some(r) = row
                && r.try_get::<i64, _>("bank_id")? == bank_id
                && r.try_get::<String, _>("dedup_key")? == key
            {
                return Ok(Some(Some(id)));
            }
        }
        Ok(Some(None))
    }

    /// Fills the map from the committed rows ahead of the first write
    /// (`Store::warm`, in the background at start): without it the first
    /// write after a start reads every row under the write lock (14 s at
    /// 10M rows, docs/benchmarks/serve.md). It reads on a connection of its
    /// own, outside any transaction, up to the highest id committed when it
    /// began; every row at or below that id is committed (SQLite has one
    /// writer, and ids grow). Each page is added under the map's lock only if
    /// the map still ends where the page began: a write that caught up
    /// meanwhile (under the write lock) has read those rows itself, and the
    /// fill goes on from where it stopped.
    pub(crate) async fn prefill(&self) -> Result<(), sqlx::Error> {
        use sqlx::Connection;
        let mut conn = sqlx::AnyConnection::connect(&self.url).await?;
        let Some(newest) = sqlx::query("SELECT MAX(id) AS m FROM content")
            .fetch_one(&mut conn)
            .await?
            .try_get::<Option<i64>, _>("m")?
        else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        loop {
            let after = {
                let mut state = self.state.lock().await;
                let map = state.get_or_insert_with(Map::default);
                if map.seen >= newest {
                    map.filled = true;
                    break;
                }
                map.seen
            };
            let (last, rows) = self
                .page(&mut conn, after, newest)
                .await?
                .unwrap_or((newest, Vec::new()));
            let mut state = self.state.lock().await;
            let map = state.get_or_insert_with(Map::default);
            if map.seen != after {
                continue;
            }
            for (fp, id) in rows {
                map.add(fp, id);
            }
            map.seen = last;
        }
        let _ = conn.close().await;
        tracing::info!(
            "content de-duplication map filled at start: ids to {newest} in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// The committed rows with ids in `(after, newest]`, the first
    /// `page_rows` ([`BUILD_PAGE_ROWS`]) of them in id order, as (fingerprint, id) with the
    /// page's last id; `None` when there are none. One aggregated text per
    /// page (rows cost microseconds each through the driver); each record is
    /// `id,bank,bytes,key` with the key's length in bytes, so a key may hold
    /// any character.
    async fn page(
        &self,
        conn: &mut sqlx::AnyConnection,
        after: i64,
        newest: i64,
    ) -> Result<Option<(i64, Vec<(u64, i64)>)>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT MAX(id) AS last, group_concat(CAST(id AS TEXT) || ',' || CAST(bank_id AS TEXT) \
             || ',' || CAST(length(CAST(dedup_key AS BLOB)) AS TEXT) || ',' || dedup_key, '') AS data \
             FROM (SELECT id, bank_id, dedup_key FROM content WHERE id > ? AND id <= ? \
             ORDER BY id LIMIT ?)",
        )
        .bind(after)
        .bind(newest)
        .bind(self.page_rows)
        .fetch_one(&mut *conn)
        .await?;
        let Some(last) = row.try_get::<Option<i64>, _>("last")? else {
            return Ok(None);
        };
        let data: String = row.try_get("data")?;
        let mut rows = Vec::new();
        let mut rest = data.as_str();
        while !rest.is_empty() {
            let bad =
                || sqlx::Error::Decode(format!("malformed content page at {rest:.40?}").into());
            let mut f = rest.splitn(4, ',');
            let (Some(id), Some(bank), Some(len), Some(tail)) =
                (f.next(), f.next(), f.next(), f.next())
            else {
                return Err(bad());
            };
            let (Ok(id), Ok(bank), Ok(len)) =
                (id.parse::<i64>(), bank.parse::<i64>(), len.parse::<usize>())
            else {
                return Err(bad());
            };
            let Some(key) = tail.get(..len) else {
                return Err(bad());
            };
            rows.push((self.fingerprint(bank, key), id));
            rest = &tail[len..];
        }
        Ok(Some((last, rows)))
    }

    /// Adds the committed rows with ids above the highest read so far, up to
    /// `newest` (the highest committed), in id order, a page at a time
    /// ([`Dedup::page`]), reading in `tx`.
    async fn catch_up(
        &self,
        map: &mut Map,
        tx: &mut sqlx::AnyConnection,
        newest: Option<i64>,
    ) -> Result<(), sqlx::Error> {
        let Some(newest) = newest.filter(|&m| m > map.seen) else {
            map.filled = true;
            return Ok(());
        };
        let first = map.seen == 0;
        let started = std::time::Instant::now();
        let mut after = map.seen;
        while let Some((last, rows)) = self.page(tx, after, newest).await? {
            for (fp, id) in rows {
                map.add(fp, id);
            }
            after = last;
        }
        map.seen = newest;
        map.filled = true;
        if first {
            tracing::info!(
                "content de-duplication map built: {} keys in {:.2} s",
                map.one.len(),
                started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::sync::Arc;

    use rand::{Rng, SeedableRng};
    use sqlx::Row;

    use super::Dedup;
    use crate::{NewContent, SignalRow, Store};

    fn url(dir: &tempfile::TempDir) -> String {
        format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display())
    }

    async fn bank(store: &Store, name: &str) -> i64 {
        sqlx::query(
            "INSERT INTO banks (name, threshold, enabled, description, provider, created_at, updated_at) \
             VALUES (?, 31, 1, '', NULL, 0, 0) RETURNING id",
        )
        .bind(name)
        .fetch_one(&store.pool)
        .await
        .expect("bank")
        .get("id")
    }

    fn item(key: &str) -> NewContent {
        NewContent {
            kind: "signals",
            dedup_key: key.to_string(),
            note: None,
            metadata: None,
            source: None,
            signals: vec![SignalRow {
                signal_type: "md5".into(),
                value: key.to_string(),
                quality: None,
            }],
            frames: Vec::new(),
            frame_extras: Vec::new(),
        }
    }

    /// The marks of `tx`, a write transaction that has written nothing yet.
    async fn marks_of(store: &Store, tx: &mut sqlx::AnyConnection) -> crate::TxMarks {
        crate::TxMarks::read(store, tx)
            .await
            .expect("marks")
            .expect("SQLite has marks")
    }

    /// The table itself: (bank, key) -> ids holding it.
    async fn table(store: &Store) -> HashMap<(i64, String), Vec<i64>> {
        let mut t: HashMap<(i64, String), Vec<i64>> = HashMap::new();
        for r in sqlx::query("SELECT id, bank_id, dedup_key FROM content ORDER BY id")
            .fetch_all(&store.pool)
            .await
            .expect("content")
        {
            t.entry((r.get("bank_id"), r.get("dedup_key")))
                .or_default()
                .push(r.get("id"));
        }
        t
    }

    /// Random writes (batches with repeats, an import job's batches of
    /// several pieces in one transaction with its marks, committed or rolled
    /// back, single adds, rolled-back adds,
    /// deletes, and rows written by a second `Store` on the same file that
    /// this one's map never saw), with the map keeping 2 bits of each
    /// fingerprint, so that nearly every key shares its fingerprint with
    /// others and only the read-back can answer. Each answer is checked
    /// against the table read before the write; the table never holds a
    /// key twice in a bank; `content_by_dedup` agrees with the table.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_match_the_table_under_collisions_rollbacks_and_other_writers() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(&url(&dir)).await.expect("open");
        store.dedup = Arc::new(Dedup::with_bits(&url(&dir), 2));
        let other = Store::open(&url(&dir)).await.expect("open again");
        let banks = [bank(&store, "a").await, bank(&store, "b").await];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let key = |rng: &mut rand::rngs::StdRng| format!("k{}", rng.gen_range(0..40));
        let (mut added, mut dups) = (0, 0);
        for step in 0..300 {
            let b = banks[rng.gen_range(0..2)];
            let before = table(&store).await;
            let held = |k: &str| before.contains_key(&(b, k.to_string()));
            match rng.gen_range(0..12) {
                10..=11 => {
                    // A job's batch: marks read at its start, several
                    // pieces in one transaction (a key may repeat across
                    // them), then a commit that tells the map, or a
                    // rollback that does not.
                    let mut tx = store.begin().await.expect("begin");
                    let mut marks = marks_of(&store, &mut tx).await;
                    let mut seen = HashSet::new();
                    let mut fresh_here = 0;
                    for _ in 0..rng.gen_range(1..4) {
                        let keys: Vec<String> =
                            (0..rng.gen_range(1..8)).map(|_| key(&mut rng)).collect();
                        let items: Vec<NewContent> = keys.iter().map(|k| item(k)).collect();
                        let (ids, changes) = crate::insert_contents(
                            &store,
                            &mut tx,
                            Some(&mut marks),
                            b,
                            "t",
                            &items,
                        )
                        .await
                        .expect("insert with marks");
                        for (k, id) in keys.iter().zip(&ids) {
                            let fresh = !held(k) && seen.insert(k.clone());
                            assert_eq!(id.is_some(), fresh, "step {step}: {k} in bank {b}");
                            fresh_here += usize::from(fresh);
                        }
                        assert_eq!(changes.len(), ids.iter().flatten().count());
                    }
                    if rng.gen_bool(0.3) {
                        tx.rollback().await.expect("rollback");
                    } else {
                        tx.commit().await.expect("commit");
                        marks.committed(&store).await;
                        added += fresh_here;
                    }
                }
                0..=3 => {
                    let keys: Vec<String> =
                        (0..rng.gen_range(1..12)).map(|_| key(&mut rng)).collect();
                    let items: Vec<NewContent> = keys.iter().map(|k| item(k)).collect();
                    let mut tx = store.begin().await.expect("begin");
                    let (ids, changes) =
                        crate::insert_contents(&store, &mut tx, None, b, "t", &items)
                            .await
                            .expect("insert");
                    tx.commit().await.expect("commit");
                    let mut seen = HashSet::new();
                    for (k, id) in keys.iter().zip(&ids) {
                        let fresh = !held(k) && seen.insert(k.clone());
                        assert_eq!(id.is_some(), fresh, "step {step}: {k} in bank {b}");
                        added += usize::from(fresh);
                        dups += usize::from(!fresh);
                    }
                    assert_eq!(changes.len(), ids.iter().flatten().count());
                }
                4..=5 => {
                    let k = key(&mut rng);
                    let mut tx = store.begin().await.expect("begin");
                    let id = crate::insert_content(&store, &mut tx, b, "t", &item(&k))
                        .await
                        .expect("insert");
                    // A second add of the same key in the same transaction.
                    let again = crate::insert_content(&store, &mut tx, b, "t", &item(&k))
                        .await
                        .expect("insert");
                    assert_eq!(again, None, "step {step}");
                    if rng.gen_bool(0.3) {
                        tx.rollback().await.expect("rollback");
                    } else {
                        tx.commit().await.expect("commit");
                        assert_eq!(id.is_some(), !held(&k), "step {step}: {k}");
                    }
                }
                6 => {
                    if let Some((_, ids)) = before.iter().nth(rng.gen_range(0..before.len().max(1)))
                    {
                        sqlx::query("DELETE FROM content WHERE id = ?")
                            .bind(ids[0])
                            .execute(&store.pool)
                            .await
                            .expect("delete");
                    }
                }
                7 => {
                    let k = key(&mut rng);
                    let mut tx = other.begin().await.expect("begin");
                    crate::insert_content(&other, &mut tx, b, "t", &item(&k))
                        .await
                        .expect("insert elsewhere");
                    tx.commit().await.expect("commit");
                }
                _ => {
                    let k = key(&mut rng);
                    let want = before.get(&(b, k.clone())).map(|ids| ids[0]);
                    let got = crate::content_by_dedup(&store, b, &k)
                        .await
                        .expect("lookup");
                    assert_eq!(got, want, "step {step}: lookup {k}");
                }
            }
        }
        let t = table(&store).await;
        assert!(
            t.values().all(|ids| ids.len() == 1),
            "a key twice in a bank"
        );
        assert!(added > 50 && dups > 50, "added {added}, duplicates {dups}");
    }

    /// The fill at start (`Store::warm`) runs a few rows a page on a map of
    /// 3-bit fingerprints while lookups go on, then one write comes in the
    /// middle of it (it catches up under the write lock; the fill goes on
    /// from there), then writes of held and new keys. Every answer agrees
    /// with the table: a lookup does not trust the map part-way, and the
    /// fill leaves no committed row out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fill_at_start_beside_writes_and_lookups_leaves_no_row_out() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = Store::open(&url(&dir)).await.expect("open");
        let b = bank(&first, "a").await;
        let n = 3000;
        for chunk in 0..n / 100 {
            let items: Vec<NewContent> = (0..100)
                .map(|i| item(&format!("k{}", chunk * 100 + i)))
                .collect();
            let mut tx = first.begin().await.expect("begin");
            crate::insert_contents(&first, &mut tx, None, b, "t", &items)
                .await
                .expect("insert");
            tx.commit().await.expect("commit");
        }
        first.pool.close().await;
        // A restart: a new store whose map holds nothing yet.
        let mut store = Store::open(&url(&dir)).await.expect("open again");
        store.dedup = Arc::new(Dedup {
            page_rows: 7,
            ..Dedup::with_bits(&url(&dir), 3)
        });
        let before = table(&store).await;
        let fill = {
            let s = store.clone();
            tokio::spawn(async move { s.warm().await })
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let (mut partial, mut lookups) = (0, 0);
        let mut wrote_during = false;
        while !fill.is_finished() {
            let part_way = matches!(store.dedup.state.lock().await.as_ref(), Some(m) if !m.filled);
            let k = format!("k{}", rng.gen_range(0..n));
            let got = crate::content_by_dedup(&store, b, &k)
                .await
                .expect("lookup");
            assert_eq!(got, before.get(&(b, k.clone())).map(|ids| ids[0]), "{k}");
            partial += usize::from(part_way);
            lookups += 1;
            if partial == 20 && !wrote_during {
                wrote_during = true;
                let k = format!("k{}", rng.gen_range(0..n));
                let mut tx = store.begin().await.expect("begin");
                let (ids, _) = crate::insert_contents(&store, &mut tx, None, b, "t", &[item(&k)])
                    .await
                    .expect("insert");
                tx.commit().await.expect("commit");
                assert_eq!(ids, [None], "{k} is held");
            }
        }
        fill.await.expect("fill task").expect("fill");
        assert!(
            partial > 0,
            "no lookup ran part-way through the fill ({lookups} in all)"
        );
        for step in 0..30 {
            let before = table(&store).await;
            let keys: Vec<String> = (0..rng.gen_range(1..20))
                .map(|_| format!("k{}", rng.gen_range(0..n + 200)))
                .collect();
            let items: Vec<NewContent> = keys.iter().map(|k| item(k)).collect();
            let mut tx = store.begin().await.expect("begin");
            let (ids, _) = crate::insert_contents(&store, &mut tx, None, b, "t", &items)
                .await
                .expect("insert");
            tx.commit().await.expect("commit");
            let mut seen = HashSet::new();
            for (k, id) in keys.iter().zip(&ids) {
                let fresh = !before.contains_key(&(b, k.clone())) && seen.insert(k.clone());
                assert_eq!(id.is_some(), fresh, "step {step}: {k}");
            }
        }
        let t = table(&store).await;
        assert!(t.values().all(|ids| ids.len() == 1), "a key twice");
        let state = store.dedup.state.lock().await;
        let map = state.as_ref().expect("a map");
        let max = t.values().flatten().max().copied().expect("rows");
        assert!(map.filled && map.seen >= max, "seen {} of {max}", map.seen);
    }

    /// A transaction checks the map after its own insert (its row shows
    /// inside it), then rolls back; SQLite gives the rolled-back id to the
    /// next row, here another `Store`'s. The map must still find that row:
    /// it reads the highest id from outside the transaction, so it never
    /// counts the rolled-back row as read.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rolled_back_id_given_to_another_writers_row_is_still_found() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&url(&dir)).await.expect("open");
        let other = Store::open(&url(&dir)).await.expect("open again");
        let b = bank(&store, "a").await;
        let mut tx = store.begin().await.expect("begin");
        crate::insert_content(&store, &mut tx, b, "t", &item("base"))
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
        let mut tx = store.begin().await.expect("begin");
        let gone = crate::insert_content(&store, &mut tx, b, "t", &item("k1"))
            .await
            .expect("insert")
            .expect("new");
        let again = crate::insert_content(&store, &mut tx, b, "t", &item("k1"))
            .await
            .expect("insert");
        assert_eq!(again, None);
        tx.rollback().await.expect("rollback");
        let mut tx = other.begin().await.expect("begin");
        let reused = crate::insert_content(&other, &mut tx, b, "t", &item("k2"))
            .await
            .expect("insert")
            .expect("new");
        tx.commit().await.expect("commit");
        assert_eq!(reused, gone, "the premise: SQLite gives the id again");
        let mut tx = store.begin().await.expect("begin");
        let dup = crate::insert_content(&store, &mut tx, b, "t", &item("k2"))
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
        assert_eq!(dup, None, "k2 is in the bank already");
        assert_eq!(
            crate::content_by_dedup(&store, b, "k2")
                .await
                .expect("lookup"),
            Some(reused)
        );
    }

    /// The same with an import job's batches (marks): a committed batch
    /// tells the map, a rolled-back one does not, so the row another writer
    /// then commits under a rolled-back id is still read, and so is one
    /// committed after a batch that did tell the map.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn marked_batches_leave_no_other_writers_row_out() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&url(&dir)).await.expect("open");
        let other = Store::open(&url(&dir)).await.expect("open again");
        let b = bank(&store, "a").await;
        // A batch of `keys` with marks; its ids; committed or not.
        let batch = async |keys: &[&str], commit: bool| {
            let mut tx = store.begin().await.expect("begin");
            let mut marks = marks_of(&store, &mut tx).await;
            let items: Vec<NewContent> = keys.iter().map(|k| item(k)).collect();
            let (ids, _) =
                crate::insert_contents(&store, &mut tx, Some(&mut marks), b, "t", &items)
                    .await
                    .expect("insert");
            if commit {
                tx.commit().await.expect("commit");
                marks.committed(&store).await;
            } else {
                tx.rollback().await.expect("rollback");
            }
            ids
        };
        let elsewhere = async |key: &str| {
            let mut tx = other.begin().await.expect("begin");
            let id = crate::insert_content(&other, &mut tx, b, "t", &item(key))
                .await
                .expect("insert")
                .expect("new");
            tx.commit().await.expect("commit");
            id
        };
        batch(&["base"], true).await;
        let gone = batch(&["k1"], false).await[0].expect("new");
        let reused = elsewhere("k2").await;
        assert_eq!(reused, gone, "the premise: SQLite gives the id again");
        assert_eq!(batch(&["k2", "k3"], true).await[0], None, "k2 is held");
        elsewhere("k4").await;
        assert_eq!(batch(&["k4", "k3"], true).await, vec![None, None]);
    }

    /// Marks name the rows above them as the transaction's own: content
    /// written in it some other way first makes the marked insert answer
    /// an error, not take that row for one of its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn marks_refuse_content_written_around_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&url(&dir)).await.expect("open");
        let b = bank(&store, "a").await;
        let mut tx = store.begin().await.expect("begin");
        let mut marks = marks_of(&store, &mut tx).await;
        crate::insert_content(&store, &mut tx, b, "t", &item("around"))
            .await
            .expect("insert")
            .expect("new");
        let e = crate::insert_contents(&store, &mut tx, Some(&mut marks), b, "t", &[item("k")])
            .await
            .expect_err("rows above the marks that are not this call's");
        assert!(
            e.to_string().contains("2 content rows read back for 1"),
            "{e}"
        );
    }

    /// A database from before `dedup` v1 (its content under UNIQUE
    /// (bank_id, dedup_key)), with signals, video frames, a disabled row
    /// and a deleted newest row, migrated: the same rows, references,
    /// counters and AUTOINCREMENT counter; no unique index; foreign keys on
    /// again, still cascading; the new indexes used.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_migration_rebuilds_content_and_keeps_everything_else() {
        let dir = tempfile::tempdir().expect("temp dir");
        let old = Store::open_before_module(&url(&dir), "dedup")
            .await
            .expect("open old");
        // The rows below are written by this binary's insert functions,
        // which count inserts themselves (module `insert_counts`): the old
        // schema's insert triggers would count each row twice.
        for t in ["bank_counts_insert", "signal_counts_insert"] {
            sqlx::query(&format!("DROP TRIGGER {t}"))
                .execute(&old.pool)
                .await
                .expect("drop trigger");
        }
        let b = bank(&old, "a").await;
        let mut ids = Vec::new();
        for k in 0..30 {
            let mut c = item(&format!("k{k}"));
            if k == 3 {
                c.frames = vec![bulwark_vpdq::FrameHash {
                    frame: 0,
                    quality: 90,
                    hash: bulwark_pdq::PdqHash::from_bytes([7; 32]),
                    timestamp: 0.0,
                }];
            }
            let mut tx = old.begin().await.expect("begin");
            ids.push(
                crate::insert_content(&old, &mut tx, b, "t", &c)
                    .await
                    .expect("insert")
                    .expect("new"),
            );
            tx.commit().await.expect("commit");
        }
        sqlx::query("UPDATE content SET enabled = 0 WHERE id = ?")
            .bind(ids[5])
            .execute(&old.pool)
            .await
            .expect("disable");
        sqlx::query("DELETE FROM content WHERE id = ?")
            .bind(ids[29])
            .execute(&old.pool)
            .await
            .expect("delete newest");
        let unique = "SELECT COUNT(*) AS n FROM sqlite_master WHERE tbl_name = 'content' AND name LIKE 'sqlite_autoindex%'";
        let count = |s: &Store, q: &'static str| {
            let pool = s.pool.clone();
            async move {
                sqlx::query(q)
                    .fetch_one(&pool)
                    .await
                    .expect(q)
                    .get::<i64, _>("n")
            }
        };
        assert_eq!(
            count(&old, unique).await,
            1,
            "the old schema has the unique index"
        );
        let rows = |s: &Store| {
            let pool = s.pool.clone();
            async move {
                sqlx::query("SELECT * FROM content ORDER BY id")
                    .fetch_all(&pool)
                    .await
                    .expect("rows")
                    .iter()
                    .map(|r| crate::ContentRow::from_row(r).expect("row"))
                    .map(|c| format!("{c:?}"))
                    .collect::<Vec<_>>()
            }
        };
        let before = rows(&old).await;
        let signals_q = "SELECT COUNT(*) AS n FROM signals";
        let frames_q = "SELECT COUNT(*) AS n FROM video_frames";
        let (signals, frames) = (count(&old, signals_q).await, count(&old, frames_q).await);
        let counts = crate::bank_counts(&old, &old.pool, b)
            .await
            .expect("counts");
        assert_eq!(counts, (29, 1));
        old.pool.close().await;

        let new = Store::open(&url(&dir)).await.expect("migrate");
        assert_eq!(count(&new, unique).await, 0, "no unique index after");
        assert_eq!(rows(&new).await, before);
        assert_eq!(
            count(&new, signals_q).await,
            signals,
            "no cascade during the rebuild"
        );
        assert_eq!(count(&new, frames_q).await, frames);
        assert_eq!(
            crate::bank_counts(&new, &new.pool, b)
                .await
                .expect("counts"),
            counts
        );
        let fk: i64 = sqlx::query("PRAGMA foreign_keys")
            .fetch_one(&new.pool)
            .await
            .expect("pragma")
            .get(0);
        assert_eq!(fk, 1, "foreign keys on again");
        // The counter goes on above the deleted newest row; the counter
        // counts it; a deleted row's signals and frames go with it.
        let mut tx = new.begin().await.expect("begin");
        let id = crate::insert_content(&new, &mut tx, b, "t", &item("fresh"))
            .await
            .expect("insert")
            .expect("new");
        let dup = crate::insert_content(&new, &mut tx, b, "t", &item("k0"))
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
        assert!(id > ids[29], "id {id} reuses the deleted row's {}", ids[29]);
        assert_eq!(dup, None, "a key from before the migration");
        assert_eq!(
            crate::bank_counts(&new, &new.pool, b)
                .await
                .expect("counts"),
            (30, 1)
        );
        sqlx::query("DELETE FROM content WHERE id = ?")
            .bind(ids[3])
            .execute(&new.pool)
            .await
            .expect("delete");
        assert_eq!(count(&new, frames_q).await, frames - 1);
        assert_eq!(count(&new, signals_q).await, signals);
        // The new indexes serve what the old one did.
        for (q, index) in [
            (
                "EXPLAIN QUERY PLAN SELECT * FROM content WHERE bank_id = 1 AND id > 0 ORDER BY id LIMIT 10",
                "content_bank",
            ),
            (
                "EXPLAIN QUERY PLAN SELECT bank_id, content_id FROM signals WHERE signal_type = 'md5' \
                 AND value = 'k1' AND signal_type <> 'pdq'",
                "signals_value",
            ),
        ] {
            let plan: Vec<String> = sqlx::query(q)
                .fetch_all(&new.pool)
                .await
                .expect("plan")
                .iter()
                .map(|r| r.get::<String, _>("detail"))
                .collect();
            assert!(plan.iter().any(|d| d.contains(index)), "{q}: {plan:?}");
        }
    }
}
