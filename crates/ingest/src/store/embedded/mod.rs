//! The embedded vector store: one SQLite file holds every collection durably; an in-memory
//! index mirrors it for search. The default store when no Chroma URL is given.
//!
//! Durability: each `upsert`/`delete` is one SQLite transaction in WAL mode with
//! `synchronous=FULL`, so when a call returns the write is in the WAL and fsynced: a killed
//! process loses nothing acknowledged, and neither does a power cut. (`NORMAL` would survive a
//! killed process too but may lose the last commits on power loss; the watcher would then
//! not resend them until its next resync, so the fsync per batch is worth it.)
//! The file is opened with an exclusive lock: a second process gets a clear error instead of
//! an index that silently diverges from the file. A reader (`cw search` and `cw ask` without
//! a server) opens it read-only with [`EmbeddedStore::open_read_only`], which waits briefly
//! for, then refuses, a file that a writer holds.

mod index;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use self::index::{CollectionIndex, CompiledFilter, Interner, NewEntry};
use super::model_check::{check_dimensions, same_model, CollectionPlace};
use super::{Filter, Hit, Metadata, Record, StoreError, Tally, VectorStore};
use crate::embed::ModelInfo;

/// The store's file name inside a data directory.
pub const STORE_FILE_NAME: &str = "cw-index.sqlite3";

/// `$XDG_DATA_HOME/cw`, else `~/.local/share/cw`; `None` when neither gives an absolute path.
pub fn default_data_dir() -> Option<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let data = absolute("XDG_DATA_HOME")
        .or_else(|| absolute("HOME").map(|h| h.join(".local").join("share")))?;
    Some(data.join("cw"))
}

/// SQLite-backed [`VectorStore`] with exact (brute-force) cosine search in memory.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// The one connection; writers hold it from transaction start until the index is updated,
    /// so the index never runs ahead of or behind the file.
    conn: Mutex<Connection>,
    state: RwLock<State>,
    /// Opened by [`EmbeddedStore::open_read_only`]: every write is refused.
    read_only: bool,
}

#[derive(Default)]
struct State {
    interner: Interner,
    collections: HashMap<String, CollectionIndex>,
}

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

fn unavailable(path: &Path, what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("embedded store {}: {what}: {e}", path.display()))
}

fn poisoned(path: &Path) -> StoreError {
    unavailable(path, "internal lock", "a previous operation panicked")
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `dir/cw-index.sqlite3`.
    pub fn open_in_dir(dir: &Path) -> Result<Self, StoreError> {
        Self::open(&dir.join(STORE_FILE_NAME))
    }

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

    fn refuse_if_read_only(&self) -> Result<(), StoreError> {
        if self.inner.read_only {
            return Err(StoreError::Rejected(format!(
                "the embedded store {} was opened read-only",
                self.inner.path.display()
            )));
        }
        Ok(())
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Removes a collection with all its documents (e.g. to re-index with another model).
    pub async fn delete_collection(&self, collection: &str) -> Result<(), StoreError> {
        self.refuse_if_read_only()?;
        let collection = collection.to_string();
        self.blocking(move |inner| {
            let conn = inner.conn.lock().map_err(|_| poisoned(&inner.path))?;
            conn.execute("DELETE FROM collections WHERE name = ?1", [&collection])
                .map_err(|e| unavailable(&inner.path, "delete collection", e))?;
            let mut state = inner.state.write().map_err(|_| poisoned(&inner.path))?;
            state.collections.remove(&collection);
            Ok(())
        })
        .await
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| unavailable(&self.inner.path, "task", e))?
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> Result<T, StoreError> {
        let state = self
            .inner
            .state
            .read()
            .map_err(|_| poisoned(&self.inner.path))?;
        Ok(f(&state))
    }
}

fn load_state(conn: &Connection) -> rusqlite::Result<State> {
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

fn to_hit(entry: &index::Entry, distance: f32) -> Hit {
    Hit {
        id: entry.id.to_string(),
        document: entry.document.to_string(),
        metadata: serde_json::from_str(&entry.metadata_json).unwrap_or_default(),
        distance,
    }
}

fn place<'a>(path: &'a Path, collection: &'a str) -> CollectionPlace<'a> {
    CollectionPlace::File { path, collection }
}

#[async_trait]
impl VectorStore for EmbeddedStore {
    async fn ensure_collection(
        &self,
        collection: &str,
        model: &ModelInfo,
    ) -> Result<(), StoreError> {
        let known = self.read(|s| s.collections.get(collection).map(|c| c.model.clone()))?;
        if let Some(stored) = known {
            return same_model(place(&self.inner.path, collection), &stored, model);
        }
        self.refuse_if_read_only()?;
        if model.dimension == 0 {
            return Err(StoreError::Rejected(format!(
                "model {} reports 0 dimensions",
                model.id
            )));
        }
        let (collection, model) = (collection.to_string(), model.clone());
        self.blocking(move |inner| {
            let conn = inner.conn.lock().map_err(|_| poisoned(&inner.path))?;
            // Re-check under the writer lock: another task may have created it meanwhile.
            let stored: Option<(String, i64)> = conn
                .query_row(
                    "SELECT model_id, dimension FROM collections WHERE name = ?1",
                    [&collection],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(|e| unavailable(&inner.path, "read collections", e))?;
            if let Some((id, dimension)) = stored {
                let stored = ModelInfo {
                    id,
                    dimension: dimension as usize,
                };
                return same_model(place(&inner.path, &collection), &stored, &model);
            }
            conn.execute(
                "INSERT INTO collections (name, model_id, dimension) VALUES (?1, ?2, ?3)",
                params![collection, model.id, model.dimension as i64],
            )
            .map_err(|e| unavailable(&inner.path, "create collection", e))?;
            let mut state = inner.state.write().map_err(|_| poisoned(&inner.path))?;
            state
                .collections
                .insert(collection, CollectionIndex::new(model));
            Ok(())
        })
        .await
    }

    async fn upsert(&self, collection: &str, records: &[Record]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        self.refuse_if_read_only()?;
        let dimension = self.read(|s| s.collections.get(collection).map(|c| c.dimension()))?;
        let Some(dimension) = dimension else {
            return Err(StoreError::Rejected(format!(
                "collection '{collection}' does not exist in {}; ensure_collection creates it",
                self.inner.path.display()
            )));
        };
        check_dimensions(collection, records, dimension)?;
        let collection = collection.to_string();
        let records = records.to_vec();
        self.blocking(move |inner| {
            let mut conn = inner.conn.lock().map_err(|_| poisoned(&inner.path))?;
            let mut json = Vec::with_capacity(records.len());
            let write = |conn: &mut Connection, json: &mut Vec<String>| -> rusqlite::Result<()> {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                {
                    let mut stmt = tx.prepare(
                        "INSERT INTO records (collection, id, document, metadata, content_hash, embedding)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                         ON CONFLICT (collection, id) DO UPDATE SET
                           document = excluded.document, metadata = excluded.metadata,
                           content_hash = excluded.content_hash, embedding = excluded.embedding",
                    )?;
                    for r in &records {
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
                        json.push(metadata);
                    }
                }
                tx.commit()
            };
            write(&mut conn, &mut json).map_err(|e| unavailable(&inner.path, "upsert", e))?;
            let mut state = inner.state.write().map_err(|_| poisoned(&inner.path))?;
            let State {
                interner,
                collections,
            } = &mut *state;
            // The collection was checked above; it can only be missing if deleted meanwhile,
            // in which case the cascade already removed these rows too.
            if let Some(index) = collections.get_mut(&collection) {
                for (r, metadata_json) in records.iter().zip(json) {
                    index.upsert(
                        NewEntry {
                            id: &r.id,
                            document: &r.document,
                            metadata: &r.metadata,
                            metadata_json,
                            content_hash: &r.content_hash,
                            embedding: &r.embedding,
                        },
                        interner,
                    );
                }
            }
            Ok(())
        })
        .await
    }

    async fn delete(&self, collection: &str, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.refuse_if_read_only()?;
        let collection = collection.to_string();
        let ids = ids.to_vec();
        self.blocking(move |inner| {
            let mut conn = inner.conn.lock().map_err(|_| poisoned(&inner.path))?;
            let write = |conn: &mut Connection| -> rusqlite::Result<()> {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                {
                    let mut stmt =
                        tx.prepare("DELETE FROM records WHERE collection = ?1 AND id = ?2")?;
                    for id in &ids {
                        stmt.execute(params![collection, id])?;
                    }
                }
                tx.commit()
            };
            write(&mut conn).map_err(|e| unavailable(&inner.path, "delete", e))?;
            let mut state = inner.state.write().map_err(|_| poisoned(&inner.path))?;
            if let Some(index) = state.collections.get_mut(&collection) {
                for id in &ids {
                    index.remove(id);
                }
            }
            Ok(())
        })
        .await
    }

    async fn merge_metadata(
        &self,
        collection: &str,
        updates: &[(String, Metadata)],
    ) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        self.refuse_if_read_only()?;
        // The merged metadata of each existing id, from what the index holds.
        let merged: Vec<(String, Metadata, String)> = self.read(|s| {
            let Some(index) = s.collections.get(collection) else {
                return Vec::new();
            };
            updates
                .iter()
                .filter_map(|(id, changes)| {
                    let entry = index.entry(id)?;
                    let mut metadata: Metadata =
                        serde_json::from_str(&entry.metadata_json).unwrap_or_default();
                    metadata.extend(changes.iter().map(|(k, v)| (k.clone(), v.clone())));
                    let json = serde_json::to_string(&metadata).ok()?;
                    Some((id.clone(), metadata, json))
                })
                .collect()
        })?;
        if merged.is_empty() {
            return Ok(());
        }
        let collection = collection.to_string();
        self.blocking(move |inner| {
            let mut conn = inner.conn.lock().map_err(|_| poisoned(&inner.path))?;
            let write = |conn: &mut Connection| -> rusqlite::Result<()> {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                {
                    let mut stmt = tx.prepare(
                        "UPDATE records SET metadata = ?3 WHERE collection = ?1 AND id = ?2",
                    )?;
                    for (id, _, json) in &merged {
                        stmt.execute(params![collection, id, json])?;
                    }
                }
                tx.commit()
            };
            write(&mut conn).map_err(|e| unavailable(&inner.path, "update metadata", e))?;
            let mut state = inner.state.write().map_err(|_| poisoned(&inner.path))?;
            let State {
                interner,
                collections,
            } = &mut *state;
            if let Some(index) = collections.get_mut(&collection) {
                for (id, metadata, json) in merged {
                    index.set_metadata(&id, &metadata, json, interner);
                }
            }
            Ok(())
        })
        .await
    }

    async fn content_hashes(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        self.read(|s| {
            let Some(index) = s.collections.get(collection) else {
                return HashMap::new();
            };
            ids.iter()
                .filter_map(|id| {
                    index
                        .entry(id)
                        .map(|e| (id.clone(), e.content_hash.to_string()))
                })
                .collect()
        })
    }

    async fn vectors(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<f32>>, StoreError> {
        self.read(|s| {
            let Some(index) = s.collections.get(collection) else {
                return HashMap::new();
            };
            ids.iter()
                .filter_map(|id| Some((id.clone(), index.vector_of(id)?.to_vec())))
                .collect()
        })
    }

    async fn all_hashes(
        &self,
        collection: &str,
        filter: Option<&Filter>,
    ) -> Result<HashMap<String, String>, StoreError> {
        self.read(|s| {
            let Some(index) = s.collections.get(collection) else {
                return HashMap::new();
            };
            match filter {
                None => index
                    .entries()
                    .map(|e| (e.id.to_string(), e.content_hash.to_string()))
                    .collect(),
                Some(f) => {
                    let compiled = CompiledFilter::compile(f, &s.interner);
                    index
                        .matching(Some(&compiled), usize::MAX)
                        .into_iter()
                        .map(|e| (e.id.to_string(), e.content_hash.to_string()))
                        .collect()
                }
            }
        })
    }

    async fn query(
        &self,
        collection: &str,
        vector: &[f32],
        filter: Option<&Filter>,
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        let (collection, vector, filter) =
            (collection.to_string(), vector.to_vec(), filter.cloned());
        // A scan of 100,000 vectors takes milliseconds: off the async threads.
        self.blocking(move |inner| {
            let state = inner.state.read().map_err(|_| poisoned(&inner.path))?;
            let Some(index) = state.collections.get(&collection) else {
                return Ok(Vec::new());
            };
            if vector.len() != index.dimension() {
                return Err(StoreError::Rejected(format!(
                    "query vector has {} dimensions but collection '{collection}' holds {} ({}); \
                     search with the embedding provider that filled it",
                    vector.len(),
                    index.dimension(),
                    index.model.id
                )));
            }
            let compiled = filter.map(|f| CompiledFilter::compile(&f, &state.interner));
            Ok(index
                .nearest(&vector, compiled.as_ref(), limit)
                .into_iter()
                .map(|(distance, e)| to_hit(e, distance))
                .collect())
        })
        .await
    }

    /// Ordered by id; `distance` is 0 (there is no query vector).
    async fn get(
        &self,
        collection: &str,
        filter: Option<&Filter>,
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        let (collection, filter) = (collection.to_string(), filter.cloned());
        self.blocking(move |inner| {
            let state = inner.state.read().map_err(|_| poisoned(&inner.path))?;
            let Some(index) = state.collections.get(&collection) else {
                return Ok(Vec::new());
            };
            let compiled = filter.map(|f| CompiledFilter::compile(&f, &state.interner));
            Ok(index
                .matching(compiled.as_ref(), limit)
                .into_iter()
                .map(|e| to_hit(e, 0.0))
                .collect())
        })
        .await
    }

    async fn count(&self, collection: &str) -> Result<usize, StoreError> {
        self.read(|s| s.collections.get(collection).map_or(0, |c| c.len()))
    }

    async fn tally(
        &self,
        collection: &str,
        filter: Option<&Filter>,
        keys: &[&str],
    ) -> Result<Tally, StoreError> {
        let (collection, filter) = (collection.to_string(), filter.cloned());
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        self.blocking(move |inner| {
            let state = inner.state.read().map_err(|_| poisoned(&inner.path))?;
            let Some(index) = state.collections.get(&collection) else {
                return Ok(Tally::new());
            };
            let compiled = filter.map(|f| CompiledFilter::compile(&f, &state.interner));
            let key_symbols: Vec<Option<u32>> =
                keys.iter().map(|k| state.interner.lookup(k)).collect();
            let counts = index.tally(compiled.as_ref(), &key_symbols);
            let seen: HashSet<u32> = counts.keys().flatten().flatten().copied().collect();
            let strings = state.interner.strings_of(&seen);
            Ok(counts
                .into_iter()
                .map(|(values, n)| {
                    let values = values
                        .into_iter()
                        .map(|v| v.and_then(|v| strings.get(&v)).map(|s| s.to_string()))
                        .collect();
                    (values, n)
                })
                .collect())
        })
        .await
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let _state = self.read(|_| ())?;
        Ok(())
    }
}
