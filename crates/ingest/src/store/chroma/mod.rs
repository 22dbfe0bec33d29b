//! A thin typed client over Chroma's `/api/v2` (tenants, databases, collections addressed
//! by id; https://docs.trychroma.com/reference), implementing [`VectorStore`]. The
//! `chromadb` crate still calls `/api/v1` for its heartbeat (410 on Chroma 1.5) and the
//! official `chroma` crate needs `protoc`, so cw speaks the few calls it needs itself.
//!
//! The rooms: [`client`] makes Chroma's calls and its tenant and database, [`collection`]
//! finds or creates a collection and checks its model, [`writes`] queues the writes made
//! together in one write turn, [`wire`] holds the bodies and answers.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::chunks::{send_in_chunks, Limits, IDS_PER_REQUEST, ROWS_PER_PAGE};
use super::keys::{CONTENT_HASH_KEY, TEXT_HASH_KEY};
use super::model_check::check_dimensions;
use super::remote::{CallError, Http, Prepared};
use super::{tally_json, Filter, Hit, Metadata, Record, StoreError, Tally, VectorStore};
use crate::embed::ModelInfo;

mod client;
mod collection;
mod wire;
mod writes;

use collection::CollectionHandle;
use wire::{hash_of, text_hash_of, to_where, GetResponse, QueryResponse};
use writes::{QueuedWrite, WriteOp};

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

pub struct ChromaStore {
    http: Http,
    config: ChromaConfig,
    /// `{url}/api/v2`.
    api: String,
    /// `{url}/api/v2/tenants/{tenant}/databases/{database}/collections`.
    collections_url: String,
    collections: Prepared<CollectionHandle>,
    database_ready: tokio::sync::OnceCell<()>,
    /// Writes (upserts, deletes and metadata updates) from this client go one at a time.
    /// Chroma applies them one after another anyway, and concurrent ones only wait on each
    /// other inside it: with two batches of 50 in flight each upsert took 212 ms, one at a
    /// time 82 ms. The watcher's initial sync reached 81 % of the direct write rate with two
    /// batches in flight, 94 % with one, and 110 % with two behind this lock
    /// (`BENCH_OBJECTS=20000 BENCH_CRDS=100 BENCH_STORES=chroma scripts/bench-watch`).
    /// Reads stay concurrent, so one batch's hash lookup overlaps another's write. The lock
    /// covers all collections of this client (measured with one collection being written).
    writes: tokio::sync::Mutex<()>,
    /// Writes (upserts and deletes) waiting for the write turn ([`writes`]).
    queued: std::sync::Mutex<Vec<QueuedWrite>>,
}

impl ChromaStore {
    /// Builds the client; nothing is called until first use. Needs a rustls crypto
    /// provider installed in the process (for https URLs).
    pub fn new(config: ChromaConfig) -> Result<Self, StoreError> {
        let http = Http::new(&client::CHROMA, &config.url, config.timeout)?;
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
            collections: Prepared::new(),
            database_ready: tokio::sync::OnceCell::new(),
            writes: tokio::sync::Mutex::new(()),
            queued: std::sync::Mutex::new(Vec::new()),
        })
    }

    pub fn config(&self) -> &ChromaConfig {
        &self.config
    }

    /// `POST …/get` of `ids` (those that exist), [`IDS_PER_REQUEST`] a request, with
    /// `include` (`metadatas`, `embeddings`); nothing when the collection does not exist.
    async fn get_by_ids(
        &self,
        collection: &str,
        ids: &[String],
        include: &[&str],
    ) -> Result<Vec<GetResponse>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let Some(id) = self.lookup(collection).await? else {
            return Ok(Vec::new());
        };
        let url = &format!("{}/{id}/get", self.collections_url);
        send_in_chunks(ids, &Limits::items(IDS_PER_REQUEST), |chunk| async move {
            self.post(url, &json!({ "ids": chunk, "include": include }))
                .await
        })
        .await
        .map_err(|e| self.collections.failed(collection, e))
    }

    /// Every id matching `filter` with its metadata (ids alone unless `with_metadata`), a
    /// page of [`ROWS_PER_PAGE`] at a time handed to `visit`: what listings and tallies read,
    /// with no documents or vectors.
    async fn metadata_pages(
        &self,
        collection: &str,
        filter: Option<&Filter>,
        with_metadata: bool,
        mut visit: impl FnMut(Vec<String>, Vec<wire::RawMeta>),
    ) -> Result<(), StoreError> {
        let Some(id) = self.lookup(collection).await? else {
            return Ok(());
        };
        let url = format!("{}/{id}/get", self.collections_url);
        let filter = filter.and_then(to_where);
        let mut offset = 0;
        loop {
            let include: &[&str] = if with_metadata { &["metadatas"] } else { &[] };
            let mut body = json!({ "include": include, "limit": ROWS_PER_PAGE, "offset": offset });
            if let Some(w) = &filter {
                body["where"] = w.clone();
            }
            let resp: GetResponse = self
                .post(&url, &body)
                .await
                .map_err(|e| self.collections.failed(collection, e))?;
            let n = resp.ids.len();
            visit(resp.ids, resp.metadatas.unwrap_or_default());
            if n < ROWS_PER_PAGE {
                return Ok(());
            }
            offset += n;
        }
    }

    /// `POST …/{action}` (`get`, `query`) of `body` with `filter` as its `where`; nothing
    /// when the collection does not exist.
    async fn read<T: DeserializeOwned>(
        &self,
        collection: &str,
        action: &str,
        mut body: Value,
        filter: Option<&Filter>,
    ) -> Result<Option<T>, StoreError> {
        let Some(id) = self.lookup(collection).await? else {
            return Ok(None);
        };
        if let Some(w) = filter.and_then(to_where) {
            body["where"] = w;
        }
        self.post(&format!("{}/{id}/{action}", self.collections_url), &body)
            .await
            .map(Some)
            .map_err(|e| self.collections.failed(collection, e))
    }
}

#[async_trait]
impl VectorStore for ChromaStore {
    async fn ensure_collection(
        &self,
        collection: &str,
        model: &ModelInfo,
    ) -> Result<(), StoreError> {
        self.prepare(collection, model).await
    }

    async fn upsert(&self, collection: &str, records: &[Record]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let handle = self.collections.for_write(collection)?;
        check_dimensions(collection, records, handle.model.dimension)?;
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
        let url = &format!("{}/{id}/update", self.collections_url);
        let _one_write = self.writes.lock().await;
        send_in_chunks(
            updates,
            &Limits::items(IDS_PER_REQUEST),
            |chunk| async move {
                let ids: Vec<&String> = chunk.iter().map(|(id, _)| id).collect();
                let metadatas: Vec<Metadata> = chunk
                    .iter()
                    .map(|(_, m)| {
                        let mut m = m.clone();
                        m.remove(CONTENT_HASH_KEY);
                        m
                    })
                    .collect();
                let body = json!({ "ids": ids, "metadatas": metadatas });
                self.call(self.http.client.post(url).json(&body)).await
            },
        )
        .await
        .map_err(|e| self.collections.failed(collection, e))?;
        Ok(())
    }

    async fn content_hashes(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        let mut out = HashMap::with_capacity(ids.len());
        for resp in self.get_by_ids(collection, ids, &["metadatas"]).await? {
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
        for resp in self.get_by_ids(collection, ids, &["embeddings"]).await? {
            let vectors = resp.embeddings.unwrap_or_default();
            for (id, v) in resp.ids.into_iter().zip(vectors) {
                if let Some(v) = v {
                    out.insert(id, v);
                }
            }
        }
        Ok(out)
    }

    /// `get` where `cw_text_hash` is `$in` a chunk of the hashes, with vectors, a page as
    /// long as the hashes still wanted: Chroma cannot answer one row per value, so each
    /// page asks again for those not found yet. Copies of a text written one after another
    /// (each cluster's sync in turn) come back one per hash in the first page; however the
    /// copies lie, each page finds at least one more.
    async fn vectors_by_text(
        &self,
        collection: &str,
        text_hashes: &[String],
    ) -> Result<HashMap<String, Vec<f32>>, StoreError> {
        let mut out: HashMap<String, Vec<f32>> = HashMap::new();
        if text_hashes.is_empty() {
            return Ok(out);
        }
        let Some(id) = self.lookup(collection).await? else {
            return Ok(out);
        };
        let url = format!("{}/{id}/get", self.collections_url);
        for chunk in Limits::items(IDS_PER_REQUEST).chunks(text_hashes) {
            let mut wanted: Vec<&String> = chunk.iter().collect();
            while !wanted.is_empty() {
                let body = json!({
                    "where": { TEXT_HASH_KEY: { "$in": wanted } },
                    "include": ["embeddings", "metadatas"],
                    "limit": wanted.len(),
                });
                let page: GetResponse = self
                    .post(&url, &body)
                    .await
                    .map_err(|e| self.collections.failed(collection, e))?;
                let (rows, before) = (page.ids.len(), out.len());
                let metas = page.metadatas.unwrap_or_default();
                let vectors = page.embeddings.unwrap_or_default();
                for (meta, vector) in metas.iter().zip(vectors) {
                    if let (Some(h), Some(v)) = (text_hash_of(meta), vector) {
                        out.entry(h.to_string()).or_insert(v);
                    }
                }
                if rows < wanted.len() || out.len() == before {
                    break;
                }
                wanted.retain(|h| !out.contains_key(*h));
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
        self.metadata_pages(collection, filter, true, |ids, metas| {
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
        let body = json!({
            "query_embeddings": [vector],
            "n_results": limit,
            "include": ["documents", "metadatas", "distances"],
        });
        let answer: Option<QueryResponse> = self.read(collection, "query", body, filter).await?;
        Ok(answer.map_or_else(Vec::new, QueryResponse::into_hits))
    }

    async fn get(
        &self,
        collection: &str,
        filter: Option<&Filter>,
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        let body = json!({ "include": ["documents", "metadatas"], "limit": limit });
        let answer: Option<GetResponse> = self.read(collection, "get", body, filter).await?;
        Ok(answer.map_or_else(Vec::new, GetResponse::into_hits))
    }

    async fn count(&self, collection: &str) -> Result<usize, StoreError> {
        let Some(id) = self.lookup(collection).await? else {
            return Ok(0);
        };
        self.call_json(
            self.http
                .client
                .get(format!("{}/{id}/count", self.collections_url)),
        )
        .await
        .map_err(|e| self.collections.failed(collection, e))
    }

    async fn tally(
        &self,
        collection: &str,
        filter: Option<&Filter>,
        keys: &[&str],
    ) -> Result<Tally, StoreError> {
        let mut counts = Tally::new();
        // A plain count reads ids alone.
        let with_metadata = !keys.is_empty();
        self.metadata_pages(collection, filter, with_metadata, |ids, metas| {
            if !with_metadata {
                *counts.entry(vec![]).or_default() += ids.len();
                return;
            }
            for meta in metas {
                tally_json(&mut counts, keys, meta.as_ref());
            }
        })
        .await?;
        Ok(counts)
    }

    fn generation(&self, collection: &str) -> Option<String> {
        self.collections.get(collection).map(|h| h.id)
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.call(self.http.client.get(format!("{}/heartbeat", self.api)))
            .await
            .map(|_| ())
            .map_err(CallError::not_ready)
    }
    async fn records(&self, collection: &str, ids: &[String]) -> Result<Vec<Record>, StoreError> {
        let include = ["documents", "metadatas", "embeddings"];
        let mut out = Vec::with_capacity(ids.len());
        for resp in self.get_by_ids(collection, ids, &include).await? {
            out.extend(resp.into_records());
        }
        Ok(out)
    }

    async fn collection_model(&self, collection: &str) -> Result<Option<ModelInfo>, StoreError> {
        let url = format!("{}/{collection}", self.collections_url);
        let found = self
            .call_json::<wire::CollectionInfo>(self.http.client.get(url))
            .await;
        let Some(info) = self.collections.read(collection, found)? else {
            return Ok(None);
        };
        Ok(info.model())
    }

    async fn drop_collection(&self, collection: &str) -> Result<(), StoreError> {
        let url = format!("{}/{collection}", self.collections_url);
        let gone = self.call(self.http.client.delete(url)).await.map(|_| ());
        self.collections.forget(collection);
        self.collections.read(collection, gone).map(|_| ())
    }
}
