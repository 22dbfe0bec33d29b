//! The embedded store's SQLite file: opened with an exclusive lock in WAL mode with
//! `synchronous=FULL` (or read-only, for searches), its schema, the index loaded from it at
//! start-up, and the writes, each one transaction committed before the index follows it.
//! Vectors are stored as little-endian f32 blobs.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use rusqlite::{params, Connection, Transaction, TransactionBehavior};

use super::index::{CollectionIndex, NewEntry};
use super::{poisoned, unavailable, EmbeddedStore, Inner, State};
use crate::embed::ModelInfo;
use crate::store::{Metadata, Record, StoreError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS collections (
    name TEXT PRIMARY KEY,
    model_id TEXT NOT NULL,
    dimension INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    collection TEXT NOT NULL REFERENCES collections(name) ON DELETE CASCADE,
    id TEXT NOT NULL,
    document TEXT NOT NULL,
    metadata TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    -- little-endian f32s, as given (the index normalises its own copy)
    embedding BLOB NOT NULL,
    PRIMARY KEY (collection, id)
);
PRAGMA user_version = 1;
";

impl EmbeddedStore {
    /// Opens (creating if needed) the store file at `path` and loads its index into memory.
    /// Blocking (about a second per 100,000 documents): call it at start-up or inside
    /// `spawn_blocking`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| unavailable(path, "cannot create its directory", e))?;
        }
        let conn = Connection::open(path).map_err(|e| unavailable(path, "cannot open", e))?;
        let busy = |e: rusqlite::Error| {
            if matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy)
            ) {
                StoreError::Unavailable(format!(
                    "embedded store {} is in use by another cw process; stop it or use another --data-dir",
                    path.display()
                ))
            } else {
                unavailable(path, "cannot open", e)
            }
        };
        conn.busy_timeout(std::time::Duration::from_secs(2))
            .map_err(busy)?;
        // EXCLUSIVE before WAL: SQLite then keeps the WAL index in process memory (no -shm
        // file) and holds the lock for the connection's life.
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(busy)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(busy)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(unavailable(path, "cannot switch to WAL mode", mode));
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(busy)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(busy)?;
        conn.execute_batch(SCHEMA).map_err(busy)?;
        let state = load_state(&conn).map_err(|e| unavailable(path, "cannot read", e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                conn: Mutex::new(conn),
                state: RwLock::new(state),
                read_only: false,
            }),
        })
    }

    /// Opens an existing store file for reading only (searches; every write is refused) and
    /// loads its index. Fails with a clear message when the file does not exist or another
    /// process (`cw run`, `cw serve`, a running `cw sync-instances`) holds it. Blocking, like
    /// [`EmbeddedStore::open`].
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Unavailable(format!(
                "there is no index at {} yet: run `cw sync-instances` (and `cw sync-capabilities`) \
                 first, or point --data-dir at it",
                path.display()
            )));
        }
        // Read-write without create, made read-only by `query_only` below: SQLite cannot read
        // a WAL-mode file through a read-only connection unless a shared-memory (-shm) file
        // exists, which the writer's exclusive locking mode never makes ("disk I/O error").
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| unavailable(path, "cannot open", e))?;
        let busy = |e: rusqlite::Error| {
            if matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ) {
                StoreError::Unavailable(format!(
                    "the index {} is in use by another cw process (cw run, cw serve or a sync); \
                     ask that server with --server, or wait for the sync to finish",
                    path.display()
                ))
            } else {
                unavailable(path, "cannot read", e)
            }
        };
        conn.busy_timeout(std::time::Duration::from_secs(2))
            .map_err(busy)?;
        conn.pragma_update(None, "query_only", "ON").map_err(busy)?;
        // The writer keeps the WAL index in its own memory (exclusive locking mode, no -shm
        // file), so the reader does too; it holds the file until it closes.
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(busy)?;
        let state = load_state(&conn).map_err(busy)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                conn: Mutex::new(conn),
                state: RwLock::new(state),
                read_only: true,
            }),
        })
    }
}

impl Inner {
    /// One write: `write` in one IMMEDIATE transaction, committed (in the WAL and fsynced)
    /// before `apply` brings the index in step with what it returned, both under the
    /// connection lock so that the index never runs ahead of or behind the file.
    pub(super) fn transaction<T>(
        &self,
        what: &str,
        write: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
        apply: impl FnOnce(&mut State, T),
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.lock().map_err(|_| poisoned(&self.path))?;
        let run = || -> rusqlite::Result<T> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let written = write(&tx)?;
            tx.commit()?;
            Ok(written)
        };
        let written = run().map_err(|e| unavailable(&self.path, what, e))?;
        let mut state = self.state.write().map_err(|_| poisoned(&self.path))?;
        apply(&mut state, written);
        Ok(())
    }
}

/// Inserts or replaces `records`; their metadata as stored (JSON), for the index.
pub(super) fn upsert_rows(
    tx: &Transaction<'_>,
    collection: &str,
    records: &[Record],
) -> rusqlite::Result<Vec<String>> {
    let mut stmt = tx.prepare(
        "INSERT INTO records (collection, id, document, metadata, content_hash, embedding)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (collection, id) DO UPDATE SET
           document = excluded.document, metadata = excluded.metadata,
           content_hash = excluded.content_hash, embedding = excluded.embedding",
    )?;
    let mut stored = Vec::with_capacity(records.len());
    for r in records {
        let metadata = serde_json::to_string(&r.metadata)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        stmt.execute(params![
            collection,
            r.id,
            r.document,
            metadata,
            r.content_hash,
            encode_vector(&r.embedding)
        ])?;
        stored.push(metadata);
    }
    Ok(stored)
}

pub(super) fn delete_rows(
    tx: &Transaction<'_>,
    collection: &str,
    ids: &[String],
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare("DELETE FROM records WHERE collection = ?1 AND id = ?2")?;
    for id in ids {
        stmt.execute(params![collection, id])?;
    }
    Ok(())
}

/// Stores merged metadata: (id, metadata, its JSON).
pub(super) fn update_metadata_rows(
    tx: &Transaction<'_>,
    collection: &str,
    merged: &[(String, Metadata, String)],
) -> rusqlite::Result<()> {
    let mut stmt =
        tx.prepare("UPDATE records SET metadata = ?3 WHERE collection = ?1 AND id = ?2")?;
    for (id, _, json) in merged {
        stmt.execute(params![collection, id, json])?;
    }
    Ok(())
}

pub(super) fn load_state(conn: &Connection) -> rusqlite::Result<State> {
    let mut state = State::default();
    let mut stmt = conn.prepare("SELECT name, model_id, dimension FROM collections")?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (name, id, dimension) = row?;
        let model = ModelInfo {
            id,
            dimension: dimension as usize,
        };
        state.collections.insert(name, CollectionIndex::new(model));
    }
    let mut stmt = conn.prepare(
        "SELECT collection, id, document, metadata, content_hash, embedding FROM records",
    )?;
    let mut rows = stmt.query([])?;
    let mut embedding = Vec::new();
    while let Some(row) = rows.next()? {
        let collection: String = row.get(0)?;
        let Some(index) = state.collections.get_mut(&collection) else {
            continue;
        };
        let id: String = row.get(1)?;
        let document: String = row.get(2)?;
        let metadata_json: String = row.get(3)?;
        let content_hash: String = row.get(4)?;
        let blob = row.get_ref(5)?.as_blob()?;
        decode_vector(blob, &mut embedding);
        if embedding.len() != index.dimension() {
            continue;
        }
        let metadata: Metadata = serde_json::from_str(&metadata_json).unwrap_or_default();
        index.upsert(
            NewEntry {
                id: &id,
                document: &document,
                metadata: &metadata,
                metadata_json,
                content_hash: &content_hash,
                embedding: &embedding,
            },
            &mut state.interner,
        );
    }
    Ok(state)
}

fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn decode_vector(blob: &[u8], out: &mut Vec<f32>) {
    out.clear();
    out.extend(
        blob.chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
    );
}
