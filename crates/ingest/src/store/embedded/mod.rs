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
//!
//! The rooms: [`file`] opens the file, loads the index from it and makes each write one
//! transaction; [`index`] is the in-memory mirror that searches read.

mod file;
mod index;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

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

impl State {
    /// Brings the index of `collection` in step with an upsert of `records`, whose metadata
    /// was stored as `metadata_json`. The collection can only be missing if it was deleted
    /// meanwhile, in which case the cascade removed these rows from the file too.
    fn upsert(&mut self, collection: &str, records: &[Record], metadata_json: Vec<String>) {
        let State {
            interner,
            collections,
        } = self;
        let Some(index) = collections.get_mut(collection) else {
            return;
        };
        for (r, metadata_json) in records.iter().zip(metadata_json) {
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

    /// Brings the index of `collection` in step with merged metadata (id, metadata, JSON).
    fn set_metadata(&mut self, collection: &str, merged: Vec<(String, Metadata, String)>) {
        let State {
            interner,
            collections,
        } = self;
        if let Some(index) = collections.get_mut(collection) {
            for (id, metadata, json) in merged {
                index.set_metadata(&id, &metadata, json, interner);
            }
        }
    }
}

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
            inner.transaction(
                "upsert",
                |tx| file::upsert_rows(tx, &collection, &records),
                |state, metadata_json| state.upsert(&collection, &records, metadata_json),
            )
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
            inner.transaction(
                "delete",
                |tx| file::delete_rows(tx, &collection, &ids),
                |state, ()| {
                    if let Some(index) = state.collections.get_mut(&collection) {
                        for id in &ids {
                            index.remove(id);
                        }
                    }
                },
            )
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
            inner.transaction(
                "update metadata",
                |tx| {
                    file::update_metadata_rows(tx, &collection, &merged)?;
                    Ok(merged)
                },
                |state, merged| state.set_metadata(&collection, merged),
            )
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

    /// One probe of the index's text hashes a hash.
    async fn vectors_by_text(
        &self,
        collection: &str,
        text_hashes: &[String],
    ) -> Result<HashMap<String, Vec<f32>>, StoreError> {
        self.read(|s| {
            let Some(index) = s.collections.get(collection) else {
                return HashMap::new();
            };
            text_hashes
                .iter()
                .filter_map(|h| {
                    let vector = index.vector_of_text(s.interner.lookup(h)?)?;
                    Some((h.clone(), vector.to_vec()))
                })
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

    async fn records(&self, collection: &str, ids: &[String]) -> Result<Vec<Record>, StoreError> {
        self.read(|s| {
            let Some(index) = s.collections.get(collection) else {
                return Vec::new();
            };
            ids.iter()
                .filter_map(|id| {
                    let entry = index.entry(id)?;
                    Some(Record {
                        id: entry.id.to_string(),
                        document: entry.document.to_string(),
                        embedding: index.vector_of(id)?.to_vec(),
                        metadata: serde_json::from_str(&entry.metadata_json).unwrap_or_default(),
                        content_hash: entry.content_hash.to_string(),
                    })
                })
                .collect()
        })
    }

    async fn collection_model(&self, collection: &str) -> Result<Option<ModelInfo>, StoreError> {
        self.read(|s| s.collections.get(collection).map(|c| c.model.clone()))
    }

    async fn drop_collection(&self, collection: &str) -> Result<(), StoreError> {
        self.delete_collection(collection).await
    }
}
