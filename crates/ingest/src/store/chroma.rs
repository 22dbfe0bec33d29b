//! A thin typed client over Chroma's `/api/v2` (tenants, databases, collections addressed
//! by id; https://docs.trychroma.com/reference), implementing [`VectorStore`]. The
//! `chromadb` crate still calls `/api/v1` for its heartbeat (410 on Chroma 1.5) and the
//! official `chroma` crate needs `protoc`, so cw speaks the few calls it needs itself.
//!
//! Writes are split: Chroma 1.5 answered one 2,000-row upsert of 1,024-dimension vectors
//! with 413 although it reports a max batch size of 5,461, so batches are bounded by rows
//! and by bytes, and a 413 halves the batch. Vectors travel as base64 little-endian f32,
//! which Chroma accepts for writes (a quarter of the bytes of JSON floats).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{json, Value};

use super::{tally_json, Filter, Hit, MetaValue, Metadata, Record, StoreError, Tally, VectorStore};
use crate::embed::ModelInfo;

/// Metadata key of each document's content hash (`ResourceInstance::content_hash()`).
pub const CONTENT_HASH_KEY: &str = "cw_content_hash";
/// Collection metadata keys naming the embedding model that filled it.
pub const MODEL_KEY: &str = "cw_embedding_model";
pub const DIMENSION_KEY: &str = "cw_embedding_dimension";

/// Ids per `get`/`delete` call: keeps request bodies and Chroma's answers small.
const IDS_PER_CALL: usize = 1_000;
/// Rows per page when listing every stored hash.
const PAGE_SIZE: usize = 2_000;

#[derive(Debug, Clone)]
pub struct ChromaConfig {
    /// `http://localhost:8000`.
    pub url: String,
    pub tenant: String,
    pub database: String,
    pub timeout: Duration,
    /// Rows per upsert request at most.
    pub max_rows_per_write: usize,
    /// Estimated request bytes per upsert request at most.
    pub max_bytes_per_write: usize,
}

impl ChromaConfig {
    pub fn new(url: impl Into<String>) -> Self {
        ChromaConfig {
            url: url.into(),
            tenant: "default_tenant".into(),
            database: "default_database".into(),
            timeout: Duration::from_secs(30),
            max_rows_per_write: 1_000,
            max_bytes_per_write: 4 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone)]
struct CollectionHandle {
    id: String,
    model: ModelInfo,
}

pub struct ChromaStore {
    http: reqwest::Client,
    config: ChromaConfig,
    /// `{url}/api/v2`.
    api: String,
    /// `{url}/api/v2/tenants/{tenant}/databases/{database}/collections`.
    collections_url: String,
    collections: RwLock<HashMap<String, CollectionHandle>>,
    database_ready: tokio::sync::OnceCell<()>,
    /// Writes (upserts and deletes) from this client go one at a time. Chroma applies them
    /// one after another anyway, and concurrent ones only wait on each other inside it:
    /// with two batches of 50 in flight each upsert took 212 ms, one at a time 82 ms. The
    /// watcher's initial sync reached 81 % of the direct write rate with two batches in
    /// flight, 94 % with one, and 110 % with two behind this lock
    /// (`BENCH_OBJECTS=20000 BENCH_CRDS=100 BENCH_STORES=chroma scripts/bench-watch`).
    /// Reads stay concurrent, so one batch's hash lookup overlaps another's write. The lock
    /// covers all collections of this client (measured with one collection being written).
    writes: tokio::sync::Mutex<()>,
    /// Writes (upserts and deletes) waiting for the write turn. Whoever gets the turn makes
    /// all of them, in the order they came, each run of one kind on one collection in as few
    /// requests as the size limits allow: Chroma's CPU per stored document falls with the
    /// rows per request (`scripts/bench-chroma-writes --batch N`, docs/ingest.md), and the
    /// watcher's two batches in flight, or several clusters' watchers, otherwise write 50 at
    /// a time.
    queued: std::sync::Mutex<Vec<QueuedWrite>>,
}

/// One caller's write, waiting for a write turn ([`ChromaStore::write_queued`]).
struct QueuedWrite {
    collection: String,
    /// `{collections_url}/{collection id}`.
    url: String,
    op: WriteOp,
    done: tokio::sync::oneshot::Sender<Result<(), StoreError>>,
}

enum WriteOp {
    Upsert(Vec<Record>),
    Delete(Vec<String>),
}

impl QueuedWrite {
    /// Whether `next` can go to Chroma in the same requests as this write.
    fn joins(&self, next: &QueuedWrite) -> bool {
        self.url == next.url
            && matches!(
                (&self.op, &next.op),
                (WriteOp::Upsert(_), WriteOp::Upsert(_)) | (WriteOp::Delete(_), WriteOp::Delete(_))
            )
    }
}

/// The rows of several callers' upserts to one collection as one list; where two hold the
/// same id, the later caller's row replaces the earlier one in its place, as writing them
/// one after the other would leave it.
fn merged_rows(run: &[QueuedWrite]) -> Vec<Record> {
    let mut at: HashMap<&str, usize> = HashMap::new();
    let mut rows: Vec<Record> = Vec::new();
    for write in run {
        let WriteOp::Upsert(records) = &write.op else {
            continue;
        };
        for record in records {
            match at.get(record.id.as_str()) {
                Some(&i) => rows[i] = record.clone(),
                None => {
                    at.insert(&record.id, rows.len());
                    rows.push(record.clone());
                }
            }
        }
    }
    rows
}

/// The ids of several callers' deletes from one collection, each once.
fn merged_ids(run: &[QueuedWrite]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    run.iter()
        .flat_map(|w| match &w.op {
            WriteOp::Delete(ids) => ids.as_slice(),
            WriteOp::Upsert(_) => &[],
        })
        .filter(|id| seen.insert(id.as_str()))
        .cloned()
        .collect()
}

/// How one Chroma call went wrong, before it becomes a [`StoreError`].
#[derive(Debug)]
enum CallError {
    Store(StoreError),
    NotFound(String),
    TooLarge,
}

impl From<CallError> for StoreError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Store(e) => e,
            CallError::NotFound(m) => StoreError::Rejected(format!("Chroma: not found: {m}")),
            CallError::TooLarge => StoreError::Rejected("Chroma: request too large (413)".into()),
        }
    }
}

impl ChromaStore {
    /// Builds the client; nothing is called until first use. Needs a rustls crypto
    /// provider installed in the process (for https URLs).
    pub fn new(config: ChromaConfig) -> Result<Self, StoreError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| StoreError::Rejected(format!("cannot build an HTTP client: {e}")))?;
        let api = format!("{}/api/v2", config.url.trim_end_matches('/'));
        let collections_url = format!(
            "{api}/tenants/{}/databases/{}/collections",
            config.tenant, config.database
        );
        Ok(ChromaStore {
            http,
            config,
            api,
            collections_url,
            collections: RwLock::new(HashMap::new()),
            database_ready: tokio::sync::OnceCell::new(),
            writes: tokio::sync::Mutex::new(()),
            queued: std::sync::Mutex::new(Vec::new()),
        })
    }

    pub fn config(&self) -> &ChromaConfig {
        &self.config
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Bytes, CallError> {
        let resp = req.send().await.map_err(|e| {
            CallError::Store(StoreError::Unavailable(format!(
                "cannot reach Chroma at {}: {}",
                self.config.url,
                crate::embed::retry::error_chain(&e)
            )))
        })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| {
            CallError::Store(StoreError::Unavailable(format!(
                "reading Chroma's answer: {e}"
            )))
        })?;
        if status.is_success() {
            return Ok(body);
        }
        let message = chroma_message(&body);
        Err(match status.as_u16() {
            404 => CallError::NotFound(message),
            413 => CallError::TooLarge,
            429 | 408 => CallError::Store(StoreError::Unavailable(format!(
                "Chroma answered {status}: {message}"
            ))),
            s if s >= 500 => CallError::Store(StoreError::Unavailable(format!(
                "Chroma answered {status}: {message}"
            ))),
            _ => CallError::Store(StoreError::Rejected(format!(
                "Chroma answered {status}: {message}"
            ))),
        })
    }

    async fn call_json<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, CallError> {
        let body = self.call(req).await?;
        serde_json::from_slice(&body).map_err(|e| {
            CallError::Store(StoreError::Rejected(format!(
                "Chroma answered something unexpected: {e}"
            )))
        })
    }

    async fn post<T: DeserializeOwned>(
        &self,
        url: &str,
        body: &impl Serialize,
    ) -> Result<T, CallError> {
        self.call_json(self.http.post(url).json(body)).await
    }

    /// Creates the tenant and database if they do not exist (Chroma starts with only
    /// `default_tenant`/`default_database`).
    async fn ensure_database(&self) -> Result<(), StoreError> {
        self.database_ready
            .get_or_try_init(|| async {
                let tenant = &self.config.tenant;
                let database = &self.config.database;
                match self
                    .call(self.http.get(format!("{}/tenants/{tenant}", self.api)))
                    .await
                {
                    Ok(_) => {}
                    Err(CallError::NotFound(_)) => {
                        let r = self
                            .call(
                                self.http
                                    .post(format!("{}/tenants", self.api))
                                    .json(&json!({ "name": tenant })),
                            )
                            .await;
                        ignore_conflict(r)?;
                    }
                    Err(e) => return Err(StoreError::from(e)),
                }
                let dbs = format!("{}/tenants/{tenant}/databases", self.api);
                match self.call(self.http.get(format!("{dbs}/{database}"))).await {
                    Ok(_) => {}
                    Err(CallError::NotFound(_)) => {
                        let r = self
                            .call(self.http.post(&dbs).json(&json!({ "name": database })))
                            .await;
                        ignore_conflict(r)?;
                    }
                    Err(e) => return Err(StoreError::from(e)),
                }
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// `POST …/get` of `ids` (those that exist), [`IDS_PER_CALL`] a request, with `include`
    /// (`metadatas`, `embeddings`); nothing when the collection does not exist.
    async fn get_by_ids(
        &self,
        collection: &str,
        ids: &[String],
        include: &str,
    ) -> Result<Vec<GetResponse>, StoreError> {
        let mut pages = Vec::new();
        if ids.is_empty() {
            return Ok(pages);
        }
        let Some(id) = self.lookup(collection).await? else {
            return Ok(pages);
        };
        let url = format!("{}/{id}/get", self.collections_url);
        for chunk in ids.chunks(IDS_PER_CALL) {
            let resp: GetResponse = self
                .post(&url, &json!({ "ids": chunk, "include": [include] }))
                .await
                .map_err(|e| self.collection_error(collection, e))?;
            pages.push(resp);
        }
        Ok(pages)
    }

    /// Every id matching `filter` with its metadata, a page of [`PAGE_SIZE`] at a time
    /// handed to `visit`: what listings and tallies read, with no documents or vectors.
    async fn metadata_pages(
        &self,
        collection: &str,
        filter: Option<&Filter>,
        mut visit: impl FnMut(Vec<String>, Vec<RawMeta>),
    ) -> Result<(), StoreError> {
        let Some(id) = self.lookup(collection).await? else {
            return Ok(());
        };
        let url = format!("{}/{id}/get", self.collections_url);
        let mut offset = 0;
        let filter = filter.and_then(to_where);
        loop {
            let mut body =
                json!({ "include": ["metadatas"], "limit": PAGE_SIZE, "offset": offset });
            if let Some(w) = &filter {
                body["where"] = w.clone();
            }
            let resp: GetResponse = self
                .post(&url, &body)
                .await
                .map_err(|e| self.collection_error(collection, e))?;
            let n = resp.ids.len();
            visit(resp.ids, resp.metadatas.unwrap_or_default());
            if n < PAGE_SIZE {
                return Ok(());
            }
            offset += n;
        }
    }

    fn cached(&self, name: &str) -> Option<CollectionHandle> {
        self.collections
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    fn forget(&self, name: &str) {
        self.collections
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    /// The id of an existing collection, or None (reads of a collection that was never
    /// written find nothing rather than failing).
    async fn lookup(&self, name: &str) -> Result<Option<String>, StoreError> {
        if let Some(h) = self.cached(name) {
            return Ok(Some(h.id));
        }
        match self
            .call_json::<CollectionInfo>(self.http.get(format!("{}/{name}", self.collections_url)))
            .await
        {
            Ok(c) => Ok(Some(c.id)),
            Err(CallError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Maps a failure of a call on collection `name`: a collection that vanished (deleted,
    /// or Chroma restarted on empty data) is forgotten so the next sync recreates it.
    fn collection_error(&self, name: &str, e: CallError) -> StoreError {
        match e {
            CallError::NotFound(m) => {
                self.forget(name);
                StoreError::Unavailable(format!(
                    "Chroma collection {name:?} is gone ({m}); it is recreated on retry"
                ))
            }
            other => other.into(),
        }
    }

    async fn upsert_chunk(&self, url: &str, rows: &[Record]) -> Result<(), CallError> {
        let body = UpsertBody { rows };
        let bytes = serde_json::to_vec(&body).map_err(|e| {
            CallError::Store(StoreError::Rejected(format!("cannot encode records: {e}")))
        })?;
        self.call(
            self.http
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes),
        )
        .await
        .map(|_| ())
    }

    /// Upserts `rows`, halving the batch on 413 until Chroma accepts it.
    async fn upsert_split(&self, url: &str, rows: &[Record]) -> Result<(), CallError> {
        let mut pending = vec![rows];
        while let Some(batch) = pending.pop() {
            match self.upsert_chunk(url, batch).await {
                Ok(()) => {}
                Err(CallError::TooLarge) if batch.len() > 1 => {
                    tracing::debug!(rows = batch.len(), "Chroma answered 413; halving the batch");
                    let (a, b) = batch.split_at(batch.len() / 2);
                    pending.push(b);
                    pending.push(a);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Makes one write: rows upserted in requests of at most `rows_per_write` rows, ids
    /// deleted `IDS_PER_CALL` at a time.
    async fn write(&self, collection: &str, url: &str, op: &WriteOp) -> Result<(), StoreError> {
        match op {
            WriteOp::Upsert(rows) => {
                let Some(first) = rows.first() else {
                    return Ok(());
                };
                let url = format!("{url}/upsert");
                for chunk in rows.chunks(self.rows_per_write(first)) {
                    self.upsert_split(&url, chunk)
                        .await
                        .map_err(|e| self.collection_error(collection, e))?;
                }
            }
            WriteOp::Delete(ids) => {
                let url = format!("{url}/delete");
                for chunk in ids.chunks(IDS_PER_CALL) {
                    self.call(self.http.post(&url).json(&json!({ "ids": chunk })))
                        .await
                        .map_err(|e| self.collection_error(collection, e))?;
                }
            }
        }
        Ok(())
    }

    /// Queues `op` and waits until it is made: in this caller's write turn, with whatever
    /// else waits for it, or in an earlier caller's turn (which answers before it ends).
    async fn queue_write(
        &self,
        collection: &str,
        url: String,
        op: WriteOp,
    ) -> Result<(), StoreError> {
        let (done, mut outcome) = tokio::sync::oneshot::channel();
        self.queued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(QueuedWrite {
                collection: collection.to_string(),
                url,
                op,
                done,
            });
        let cancelled = |_| {
            Err(StoreError::Unavailable(
                "the write holding these changes was cancelled before Chroma answered; retry"
                    .into(),
            ))
        };
        let turn = tokio::select! {
            biased;
            done = &mut outcome => return done.unwrap_or_else(cancelled),
            turn = self.writes.lock() => turn,
        };
        if let Ok(done) = outcome.try_recv() {
            return done;
        }
        self.write_queued().await;
        drop(turn);
        outcome.await.unwrap_or_else(cancelled)
    }

    /// Makes the writes waiting for the write turn (the caller holds it) in the order they
    /// came, each run of one kind on one collection together, and tells each waiting caller
    /// how its write went. A run that Chroma refuses is made again caller by caller, so that
    /// one sync's refused row never fails another's.
    async fn write_queued(&self) {
        let waiting = std::mem::take(&mut *self.queued.lock().unwrap_or_else(|p| p.into_inner()));
        let mut runs: Vec<Vec<QueuedWrite>> = Vec::new();
        for write in waiting {
            match runs.last_mut() {
                Some(run) if run[0].joins(&write) => run.push(write),
                _ => runs.push(vec![write]),
            }
        }
        for run in runs {
            let (collection, url) = (run[0].collection.clone(), run[0].url.clone());
            let result = if run.len() == 1 {
                self.write(&collection, &url, &run[0].op).await
            } else {
                let op = match run[0].op {
                    WriteOp::Upsert(_) => WriteOp::Upsert(merged_rows(&run)),
                    WriteOp::Delete(_) => WriteOp::Delete(merged_ids(&run)),
                };
                tracing::debug!(writes = run.len(), "writes made together");
                match self.write(&collection, &url, &op).await {
                    Err(StoreError::Rejected(reason)) => {
                        tracing::debug!(%reason, "Chroma refused writes made together; making each apart");
                        for write in run {
                            let result = self.write(&collection, &url, &write.op).await;
                            let _ = write.done.send(result);
                        }
                        continue;
                    }
                    other => other,
                }
            };
            for write in run {
                let _ = write.done.send(result.clone());
            }
        }
    }

    fn rows_per_write(&self, sample: &Record) -> usize {
        // base64 of the vector, the document, metadata and JSON punctuation.
        let row_bytes = sample.embedding.len() * 4 * 4 / 3
            + sample.document.len() * 2
            + sample.metadata.keys().map(|k| k.len() + 64).sum::<usize>()
            + 200;
        (self.config.max_bytes_per_write / row_bytes.max(1))
            .clamp(1, self.config.max_rows_per_write.max(1))
    }
}

fn ignore_conflict(r: Result<Bytes, CallError>) -> Result<(), StoreError> {
    match r {
        Ok(_) => Ok(()),
        // Created meanwhile by another process: what we wanted.
        Err(CallError::Store(StoreError::Rejected(m))) if m.contains("already exists") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Chroma's errors are `{"error": "...", "message": "..."}`.
fn chroma_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct E {
        #[serde(default)]
        error: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<E>(body) {
        Ok(e) if !e.message.is_empty() => format!("{}: {}", e.error, e.message),
        _ => String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
    }
}

#[derive(Deserialize)]
struct CollectionInfo {
    id: String,
    #[serde(default)]
    metadata: Option<serde_json::Map<String, Value>>,
}

/// Records serialized as Chroma's column-wise upsert body, the content hash added to each
/// metadata and vectors as base64.
struct UpsertBody<'a> {
    rows: &'a [Record],
}

impl Serialize for UpsertBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Ids<'a>(&'a [Record]);
        struct Embeddings<'a>(&'a [Record]);
        struct Documents<'a>(&'a [Record]);
        struct Metadatas<'a>(&'a [Record]);
        struct WithHash<'a>(&'a Record);
        impl Serialize for Ids<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().map(|r| &r.id))
            }
        }
        impl Serialize for Embeddings<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().map(|r| encode_vector(&r.embedding)))
            }
        }
        impl Serialize for Documents<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().map(|r| &r.document))
            }
        }
        impl Serialize for Metadatas<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().map(WithHash))
            }
        }
        impl Serialize for WithHash<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(self.0.metadata.len() + 1))?;
                for (k, v) in &self.0.metadata {
                    if k != CONTENT_HASH_KEY {
                        m.serialize_entry(k, v)?;
                    }
                }
                m.serialize_entry(CONTENT_HASH_KEY, &self.0.content_hash)?;
                m.end()
            }
        }
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("ids", &Ids(self.rows))?;
        m.serialize_entry("embeddings", &Embeddings(self.rows))?;
        m.serialize_entry("documents", &Documents(self.rows))?;
        m.serialize_entry("metadatas", &Metadatas(self.rows))?;
        m.end()
    }
}

fn encode_vector(v: &[f32]) -> String {
    let mut bytes = Vec::with_capacity(v.len() * 4);
    for x in v {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The subset of Chroma's `where` that cw uses.
pub fn to_where(filter: &Filter) -> Option<Value> {
    match filter {
        Filter::Eq(k, v) => Some(json!({ k: { "$eq": v } })),
        Filter::In(k, vs) => Some(json!({ k: { "$in": vs } })),
        Filter::And(all) => {
            let mut parts: Vec<Value> = all.iter().filter_map(to_where).collect();
            // Chroma wants at least two operands under $and.
            match parts.len() {
                0 => None,
                1 => parts.pop(),
                _ => Some(json!({ "$and": parts })),
            }
        }
    }
}

fn to_metadata(raw: Option<serde_json::Map<String, Value>>) -> Metadata {
    raw.unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k != CONTENT_HASH_KEY)
        .filter_map(|(k, v)| {
            let v = match v {
                Value::String(s) => MetaValue::Str(s),
                Value::Bool(b) => MetaValue::Bool(b),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => MetaValue::Int(i),
                    None => MetaValue::Float(n.as_f64()?),
                },
                _ => return None,
            };
            Some((k, v))
        })
        .collect()
}

type RawMeta = Option<serde_json::Map<String, Value>>;

#[derive(Deserialize)]
struct GetResponse {
    ids: Vec<String>,
    #[serde(default)]
    documents: Option<Vec<Option<String>>>,
    #[serde(default)]
    embeddings: Option<Vec<Option<Vec<f32>>>>,
    #[serde(default)]
    metadatas: Option<Vec<RawMeta>>,
}

#[derive(Deserialize)]
struct QueryResponse {
    ids: Vec<Vec<String>>,
    #[serde(default)]
    documents: Option<Vec<Vec<Option<String>>>>,
    #[serde(default)]
    metadatas: Option<Vec<Vec<RawMeta>>>,
    #[serde(default)]
    distances: Option<Vec<Vec<Option<f32>>>>,
}

fn hash_of(meta: &RawMeta) -> Option<String> {
    match meta.as_ref()?.get(CONTENT_HASH_KEY)? {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn model_mismatch(
    name: &str,
    stored: &str,
    stored_dim: Option<u64>,
    model: &ModelInfo,
) -> StoreError {
    let dim = stored_dim
        .map(|d| format!(" ({d} dimensions)"))
        .unwrap_or_default();
    StoreError::Rejected(format!(
        "Chroma collection {name:?} holds vectors of model {stored}{dim}, but this server embeds \
         with {} ({} dimensions); vectors of different models cannot be compared. Configure \
         the same embedding provider and model, use another collection name \
         (--instances-collection / --capabilities-collection), or delete the collection to \
         re-index with the new model",
        model.id, model.dimension
    ))
}

#[async_trait]
impl VectorStore for ChromaStore {
    async fn ensure_collection(
        &self,
        collection: &str,
        model: &ModelInfo,
    ) -> Result<(), StoreError> {
        if let Some(h) = self.cached(collection) {
            if h.model == *model {
                return Ok(());
            }
            return Err(model_mismatch(
                collection,
                &h.model.id,
                Some(h.model.dimension as u64),
                model,
            ));
        }
        self.ensure_database().await?;
        let info: CollectionInfo = self
            .post(
                &self.collections_url,
                &json!({
                    "name": collection,
                    "get_or_create": true,
                    "configuration": { "hnsw": { "space": "cosine" } },
                    "metadata": { MODEL_KEY: model.id, DIMENSION_KEY: model.dimension },
                }),
            )
            .await
            .map_err(StoreError::from)?;
        let meta = info.metadata.clone().unwrap_or_default();
        let stored_model = meta.get(MODEL_KEY).and_then(Value::as_str);
        let stored_dim = meta.get(DIMENSION_KEY).and_then(Value::as_u64);
        match stored_model {
            Some(m) if m == model.id && stored_dim == Some(model.dimension as u64) => {}
            Some(m) => return Err(model_mismatch(collection, m, stored_dim, model)),
            None => {
                // Created by someone else without a model record: adopt it only if empty.
                let count: usize = self
                    .call_json(
                        self.http
                            .get(format!("{}/{}/count", self.collections_url, info.id)),
                    )
                    .await
                    .map_err(StoreError::from)?;
                if count > 0 {
                    return Err(StoreError::Rejected(format!(
                        "Chroma collection {collection:?} holds {count} documents but does not say \
                         which embedding model made them; delete it or choose another collection name"
                    )));
                }
                let mut new_meta = meta.clone();
                new_meta.insert(MODEL_KEY.into(), json!(model.id));
                new_meta.insert(DIMENSION_KEY.into(), json!(model.dimension));
                self.call(
                    self.http
                        .put(format!("{}/{}", self.collections_url, info.id))
                        .json(&json!({ "new_metadata": new_meta })),
                )
                .await
                .map_err(StoreError::from)?;
            }
        }
        self.collections
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                collection.to_string(),
                CollectionHandle {
                    id: info.id,
                    model: model.clone(),
                },
            );
        Ok(())
    }

    async fn upsert(&self, collection: &str, records: &[Record]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let Some(handle) = self.cached(collection) else {
            return Err(StoreError::Rejected(format!(
                "collection {collection:?} was not prepared with ensure_collection"
            )));
        };
        if let Some(bad) = records
            .iter()
            .find(|r| r.embedding.len() != handle.model.dimension)
        {
            return Err(StoreError::Rejected(format!(
                "record {} has a vector of {} dimensions; collection {collection:?} holds {}",
                bad.id,
                bad.embedding.len(),
                handle.model.dimension
            )));
        }
        let url = format!("{}/{}", self.collections_url, handle.id);
        self.queue_write(collection, url, WriteOp::Upsert(records.to_vec()))
            .await
    }

    async fn delete(&self, collection: &str, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let Some(id) = self.lookup(collection).await? else {
            return Ok(());
        };
        let url = format!("{}/{id}", self.collections_url);
        self.queue_write(collection, url, WriteOp::Delete(ids.to_vec()))
            .await
    }

    /// Chroma's `update` with metadatas only: it merges the given keys into the stored
    /// metadata and skips unknown ids.
    async fn merge_metadata(
        &self,
        collection: &str,
        updates: &[(String, Metadata)],
    ) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        let Some(id) = self.lookup(collection).await? else {
            return Ok(());
        };
        let url = format!("{}/{id}/update", self.collections_url);
        let _one_write = self.writes.lock().await;
        for chunk in updates.chunks(IDS_PER_CALL) {
            let ids: Vec<&String> = chunk.iter().map(|(id, _)| id).collect();
            let metadatas: Vec<Metadata> = chunk
                .iter()
                .map(|(_, m)| {
                    let mut m = m.clone();
                    m.remove(CONTENT_HASH_KEY);
                    m
                })
                .collect();
            self.call(
                self.http
                    .post(&url)
                    .json(&json!({ "ids": ids, "metadatas": metadatas })),
            )
            .await
            .map_err(|e| self.collection_error(collection, e))?;
        }
        Ok(())
    }

    async fn content_hashes(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        let mut out = HashMap::with_capacity(ids.len());
        for resp in self.get_by_ids(collection, ids, "metadatas").await? {
            let metas = resp.metadatas.unwrap_or_default();
            for (id, meta) in resp.ids.into_iter().zip(metas) {
                if let Some(h) = hash_of(&meta) {
                    out.insert(id, h);
                }
            }
        }
        Ok(out)
    }

    async fn vectors(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<f32>>, StoreError> {
        let mut out = HashMap::with_capacity(ids.len());
        for resp in self.get_by_ids(collection, ids, "embeddings").await? {
            let vectors = resp.embeddings.unwrap_or_default();
            for (id, v) in resp.ids.into_iter().zip(vectors) {
                if let Some(v) = v {
                    out.insert(id, v);
                }
            }
        }
        Ok(out)
    }

    async fn all_hashes(
        &self,
        collection: &str,
        filter: Option<&Filter>,
    ) -> Result<HashMap<String, String>, StoreError> {
        let mut out = HashMap::new();
        self.metadata_pages(collection, filter, |ids, metas| {
            for (id, meta) in ids.into_iter().zip(metas) {
                out.insert(id, hash_of(&meta).unwrap_or_default());
            }
        })
        .await?;
        Ok(out)
    }

    async fn query(
        &self,
        collection: &str,
        vector: &[f32],
        filter: Option<&Filter>,
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        let Some(id) = self.lookup(collection).await? else {
            return Ok(vec![]);
        };
        let mut body = json!({
            "query_embeddings": [vector],
            "n_results": limit,
            "include": ["documents", "metadatas", "distances"],
        });
        if let Some(w) = filter.and_then(to_where) {
            body["where"] = w;
        }
        let resp: QueryResponse = self
            .post(&format!("{}/{id}/query", self.collections_url), &body)
            .await
            .map_err(|e| self.collection_error(collection, e))?;
        let ids = resp.ids.into_iter().next().unwrap_or_default();
        let mut docs = resp
            .documents
            .and_then(|d| d.into_iter().next())
            .unwrap_or_default()
            .into_iter();
        let mut metas = resp
            .metadatas
            .and_then(|d| d.into_iter().next())
            .unwrap_or_default()
            .into_iter();
        let mut dists = resp
            .distances
            .and_then(|d| d.into_iter().next())
            .unwrap_or_default()
            .into_iter();
        Ok(ids
            .into_iter()
            .map(|id| Hit {
                id,
                document: docs.next().flatten().unwrap_or_default(),
                metadata: to_metadata(metas.next().flatten()),
                distance: dists.next().flatten().unwrap_or(f32::MAX),
            })
            .collect())
    }

    async fn get(
        &self,
        collection: &str,
        filter: Option<&Filter>,
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        let Some(id) = self.lookup(collection).await? else {
            return Ok(vec![]);
        };
        let mut body = json!({ "include": ["documents", "metadatas"], "limit": limit });
        if let Some(w) = filter.and_then(to_where) {
            body["where"] = w;
        }
        let resp: GetResponse = self
            .post(&format!("{}/{id}/get", self.collections_url), &body)
            .await
            .map_err(|e| self.collection_error(collection, e))?;
        let mut docs = resp.documents.unwrap_or_default().into_iter();
        let mut metas = resp.metadatas.unwrap_or_default().into_iter();
        Ok(resp
            .ids
            .into_iter()
            .map(|id| Hit {
                id,
                document: docs.next().flatten().unwrap_or_default(),
                metadata: to_metadata(metas.next().flatten()),
                // No vector was compared: a filter-only read.
                distance: 0.0,
            })
            .collect())
    }

    async fn count(&self, collection: &str) -> Result<usize, StoreError> {
        let Some(id) = self.lookup(collection).await? else {
            return Ok(0);
        };
        self.call_json(
            self.http
                .get(format!("{}/{id}/count", self.collections_url)),
        )
        .await
        .map_err(|e| self.collection_error(collection, e))
    }

    async fn tally(
        &self,
        collection: &str,
        filter: Option<&Filter>,
        keys: &[&str],
    ) -> Result<Tally, StoreError> {
        let mut counts = Tally::new();
        self.metadata_pages(collection, filter, |_, metas| {
            for meta in metas {
                tally_json(&mut counts, keys, meta.as_ref());
            }
        })
        .await?;
        Ok(counts)
    }

    fn generation(&self, collection: &str) -> Option<String> {
        self.cached(collection).map(|h| h.id)
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.call(self.http.get(format!("{}/heartbeat", self.api)))
            .await
            .map(|_| ())
            .map_err(|e| match StoreError::from(e) {
                StoreError::Rejected(m) => StoreError::Unavailable(m),
                other => other,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_translate_to_chromas_where() {
        let f = Filter::And(vec![
            Filter::Eq("kind".into(), "Deployment".into()),
            Filter::In("namespace".into(), vec!["a".into(), "b".into()]),
        ]);
        assert_eq!(
            to_where(&f).unwrap(),
            json!({"$and": [{"kind": {"$eq": "Deployment"}}, {"namespace": {"$in": ["a", "b"]}}]})
        );
        // A one-operand $and is refused by Chroma: it is unwrapped.
        let one = Filter::And(vec![Filter::Eq("kind".into(), "Pod".into())]);
        assert_eq!(to_where(&one).unwrap(), json!({"kind": {"$eq": "Pod"}}));
        assert_eq!(to_where(&Filter::And(vec![])), None);
    }

    #[test]
    fn upsert_bodies_are_columns_with_base64_vectors_and_the_content_hash() {
        let r = Record {
            id: "a".into(),
            document: "doc".into(),
            embedding: vec![1.0, 0.0],
            metadata: [("kind".to_string(), MetaValue::Str("Pod".into()))].into(),
            content_hash: "h1".into(),
        };
        let body = serde_json::to_value(UpsertBody { rows: &[r] }).unwrap();
        assert_eq!(
            body,
            json!({
                "ids": ["a"],
                "embeddings": [encode_vector(&[1.0, 0.0])],
                "documents": ["doc"],
                "metadatas": [{"kind": "Pod", "cw_content_hash": "h1"}],
            })
        );
    }
}
