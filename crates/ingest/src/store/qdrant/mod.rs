//! A thin client over Qdrant's REST API (https://api.qdrant.tech/api-reference), implementing
//! [`VectorStore`]: the official Rust client speaks only gRPC, and cw needs a dozen calls.
//!
//! Collections are created on first use with the model's dimension, cosine distance, the
//! model recorded in the collection's metadata (Qdrant 1.16+) and keyword indexes on the
//! fields searches filter on. Point ids are UUIDv5 of cw's ids, the id kept in the payload
//! ([`wire`] has the layout). Every call is retried with backoff on 5xx, 429, 408, timeouts
//! and connection failures; writes are idempotent (upserts and deletes by id), so a retried
//! write that had been applied changes nothing.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use async_trait::async_trait;
use backon::Retryable;
use bytes::Bytes;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::chunks::{send_in_chunks, write_in_chunks, Limits, IDS_PER_REQUEST, ROWS_PER_PAGE};
use super::keys::{CONTENT_HASH_KEY, DIMENSION_KEY, GENERATION_KEY, ID_KEY, MODEL_KEY};
use super::model_check::{check_dimensions, model_mismatch, same_model, CollectionPlace};
use super::{tally_json, Filter, Hit, Metadata, Record, StoreError, Tally, VectorStore};
use crate::embed::ModelInfo;
use crate::retry::{error_chain, RetryPolicy};

pub mod wire;

use wire::{CollectionInfo, CountAnswer, Envelope, PointIn, QueryAnswer, ScrollPage};

#[derive(Debug, Clone)]
pub struct QdrantConfig {
    /// `http://localhost:6333` (the REST port).
    pub url: String,
    /// Sent as the `api-key` header when set.
    pub api_key: Option<String>,
    /// One HTTP call's timeout (a timed-out call is retried).
    pub timeout: Duration,
    /// Points per upsert request at most.
    pub max_points_per_write: usize,
    /// Estimated request bytes per upsert request at most. Qdrant refuses bodies over its
    /// `service.max_request_size_mb` (32 MiB by default) with 413, which halves the batch.
    pub max_bytes_per_write: usize,
    pub retry: RetryPolicy,
}

impl QdrantConfig {
    pub fn new(url: impl Into<String>) -> Self {
        QdrantConfig {
            url: url.into(),
            api_key: None,
            timeout: Duration::from_secs(30),
            max_points_per_write: 500,
            max_bytes_per_write: 8 * 1024 * 1024,
            retry: RetryPolicy::default(),
        }
    }
}

/// How one Qdrant call went wrong, before it becomes a [`StoreError`].
#[derive(Debug)]
enum CallError {
    Store(StoreError),
    /// 404: the collection does not exist.
    NotFound(String),
    /// 409: the collection already exists (a concurrent create).
    Conflict,
    TooLarge,
}

impl CallError {
    fn is_transient(&self) -> bool {
        matches!(self, CallError::Store(e) if e.is_transient())
    }

    fn is_too_large(&self) -> bool {
        matches!(self, CallError::TooLarge)
    }
}

impl From<CallError> for StoreError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Store(e) => e,
            CallError::NotFound(m) => StoreError::Rejected(format!("Qdrant: not found: {m}")),
            CallError::Conflict => StoreError::Rejected("Qdrant: conflict (409)".into()),
            CallError::TooLarge => StoreError::Rejected("Qdrant: request too large (413)".into()),
        }
    }
}

pub struct QdrantStore {
    http: reqwest::Client,
    config: QdrantConfig,
    base: String,
    /// Collections prepared by `ensure_collection`, with the model they hold.
    collections: RwLock<HashMap<String, Prepared>>,
}

impl QdrantStore {
    /// Builds the client; nothing is called until first use. Needs a rustls crypto provider
    /// installed in the process (for https URLs).
    pub fn new(config: QdrantConfig) -> Result<Self, StoreError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| StoreError::Rejected(format!("cannot build an HTTP client: {e}")))?;
        Ok(QdrantStore {
            http,
            base: config.url.trim_end_matches('/').to_string(),
            config,
            collections: RwLock::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &QdrantConfig {
        &self.config
    }

    fn collection_url(&self, name: &str, rest: &str) -> String {
        format!("{}/collections/{}{rest}", self.base, escape_segment(name))
    }

    /// One attempt of a call.
    async fn attempt(
        &self,
        method: &Method,
        url: &str,
        body: Option<&Bytes>,
    ) -> Result<Bytes, CallError> {
        let mut req = self.http.request(method.clone(), url);
        if let Some(key) = &self.config.api_key {
            req = req.header("api-key", key);
        }
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let resp = req.send().await.map_err(|e| {
            CallError::Store(StoreError::Unavailable(format!(
                "cannot reach Qdrant at {}: {}",
                self.config.url,
                error_chain(&e)
            )))
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| {
            CallError::Store(StoreError::Unavailable(format!(
                "reading Qdrant's answer: {e}"
            )))
        })?;
        if status.is_success() {
            return Ok(bytes);
        }
        let message = wire::error_message(&bytes);
        Err(match status.as_u16() {
            404 => CallError::NotFound(message),
            409 => CallError::Conflict,
            413 => CallError::TooLarge,
            401 | 403 => CallError::Store(StoreError::Rejected(format!(
                "Qdrant refused the API key ({status}: {message}); set QDRANT_API_KEY"
            ))),
            s if s == 408 || s == 429 || s >= 500 => CallError::Store(StoreError::Unavailable(
                format!("Qdrant answered {status}: {message}"),
            )),
            _ => CallError::Store(StoreError::Rejected(format!(
                "Qdrant answered {status}: {message}"
            ))),
        })
    }

    /// A call, retried with exponential backoff while it fails transiently.
    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<Bytes>,
    ) -> Result<Bytes, CallError> {
        let policy = self.config.retry;
        (|| self.attempt(&method, url, body.as_ref()))
            .retry(policy.backoff())
            .sleep(tokio::time::sleep)
            .when(CallError::is_transient)
            .notify(|e: &CallError, wait: Duration| {
                tracing::warn!(error = ?e, ?wait, url, "Qdrant call failed; retrying");
            })
            .await
    }

    /// A call whose answer's `result` is read as `T`.
    async fn call_result<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<T, CallError> {
        let body = body.map(|b| Bytes::from(b.to_string()));
        let bytes = self.call(method, url, body).await?;
        serde_json::from_slice::<Envelope<T>>(&bytes)
            .map(|e| e.result)
            .map_err(|e| {
                CallError::Store(StoreError::Rejected(format!(
                    "Qdrant answered something unexpected: {e}"
                )))
            })
    }

    async fn post<T: DeserializeOwned>(
        &self,
        collection: &str,
        rest: &str,
        body: &Value,
    ) -> Result<T, CallError> {
        self.call_result(
            Method::POST,
            &self.collection_url(collection, rest),
            Some(body),
        )
        .await
    }

    fn cached(&self, name: &str) -> Option<ModelInfo> {
        self.collections
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .map(|p| p.model.clone())
    }

    fn forget(&self, name: &str) {
        self.collections
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    /// A failed write on `name`: a collection that vanished (deleted, or Qdrant restarted
    /// on empty storage) is forgotten so the retried sync recreates it.
    fn write_error(&self, name: &str, e: CallError) -> StoreError {
        match e {
            CallError::NotFound(m) => {
                self.forget(name);
                StoreError::Unavailable(format!(
                    "Qdrant collection {name:?} is gone ({m}); it is recreated on retry"
                ))
            }
            other => other.into(),
        }
    }

    /// The points of `ids` that exist, [`IDS_PER_REQUEST`] a request, with the payload keys
    /// asked for and their vectors if `with_vector`; none when the collection is missing.
    async fn points_by_ids(
        &self,
        collection: &str,
        ids: &[String],
        payload: &[&str],
        with_vector: bool,
    ) -> Result<Vec<PointIn>, StoreError> {
        let pages = send_in_chunks(ids, &Limits::items(IDS_PER_REQUEST), |chunk| async move {
            let points: Vec<String> = chunk.iter().map(|id| wire::point_id(id)).collect();
            let body = json!({
                "ids": points,
                "with_payload": payload,
                "with_vector": with_vector,
            });
            self.post::<Vec<PointIn>>(collection, "/points", &body)
                .await
        })
        .await;
        let pages = self.read_result(collection, pages)?.unwrap_or_default();
        Ok(pages.into_iter().flatten().collect())
    }

    /// A read of a collection that does not exist finds nothing rather than failing.
    fn read_result<T>(&self, name: &str, r: Result<T, CallError>) -> Result<Option<T>, StoreError> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(CallError::NotFound(_)) => {
                self.forget(name);
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn info(&self, name: &str) -> Result<Option<CollectionInfo>, StoreError> {
        let r = self
            .call_result(Method::GET, &self.collection_url(name, ""), None)
            .await;
        self.read_result(name, r)
    }

    async fn create(&self, name: &str, model: &ModelInfo) -> Result<(), StoreError> {
        let body = json!({
            "vectors": { "size": model.dimension, "distance": "Cosine" },
            "metadata": {
                MODEL_KEY: model.id,
                DIMENSION_KEY: model.dimension,
                GENERATION_KEY: new_generation(),
            },
        });
        match self
            .call_result::<Value>(Method::PUT, &self.collection_url(name, ""), Some(&body))
            .await
        {
            // Created by a concurrent writer: checked like any existing collection.
            Ok(_) | Err(CallError::Conflict) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates the keyword indexes of [`wire::INDEXED_FIELDS`] the collection lacks.
    async fn create_indexes(&self, name: &str, info: &CollectionInfo) -> Result<(), StoreError> {
        for field in wire::INDEXED_FIELDS {
            if info.payload_schema.contains_key(field) {
                continue;
            }
            self.call_result::<Value>(
                Method::PUT,
                &self.collection_url(name, "/index?wait=true"),
                Some(&json!({ "field_name": field, "field_schema": "keyword" })),
            )
            .await
            .map_err(StoreError::from)?;
        }
        Ok(())
    }

    /// Checks an existing collection holds `model`'s vectors; one without a model record is
    /// adopted only while empty and shaped for the model.
    async fn check_model(
        &self,
        name: &str,
        info: &CollectionInfo,
        model: &ModelInfo,
    ) -> Result<(), StoreError> {
        let shape = info.unnamed_vector();
        match info.recorded_model() {
            Some((id, dim)) if id == model.id && dim == Some(model.dimension as u64) => {}
            Some((id, dim)) => return Err(model_mismatch(place(name), &id, dim, model)),
            None => {
                let count = info.points_count.unwrap_or(0);
                if count > 0 {
                    return Err(StoreError::Rejected(format!(
                        "Qdrant collection {name:?} holds {count} points but does not say which \
                         embedding model made them; delete it or choose another collection name"
                    )));
                }
                self.call_result::<Value>(
                    Method::PATCH,
                    &self.collection_url(name, ""),
                    Some(&json!({ "metadata": {
                        MODEL_KEY: model.id, DIMENSION_KEY: model.dimension
                    }})),
                )
                .await
                .map_err(StoreError::from)?;
            }
        }
        match shape {
            Some((size, distance)) if size == model.dimension as u64 && distance == "Cosine" => {
                Ok(())
            }
            Some((size, distance)) => Err(StoreError::Rejected(format!(
                "Qdrant collection {name:?} stores vectors of {size} dimensions with {distance} \
                 distance; cw needs {} dimensions ({}) with Cosine distance. Delete it or choose \
                 another collection name",
                model.dimension, model.id
            ))),
            None => Err(StoreError::Rejected(format!(
                "Qdrant collection {name:?} uses named vectors; cw needs one unnamed vector. \
                 Choose another collection name"
            ))),
        }
    }

    async fn upsert_request(&self, url: &str, records: &[Record]) -> Result<(), CallError> {
        let body = wire::upsert_body(records).map_err(CallError::Store)?;
        self.call(Method::PUT, url, Some(Bytes::from(body)))
            .await
            .map(|_| ())
    }

    /// Pages of a scroll over `collection` (Qdrant's `next_page_offset` cursor, so points
    /// written or deleted meanwhile cannot shift a page) until `limit` points or the end.
    async fn scroll(
        &self,
        collection: &str,
        filter: Option<&Filter>,
        with_payload: Value,
        limit: usize,
    ) -> Result<Vec<PointIn>, StoreError> {
        let mut out = Vec::new();
        self.scroll_pages(collection, filter, with_payload, limit, |page| {
            out.extend(page)
        })
        .await?;
        Ok(out)
    }

    /// [`Self::scroll`] a page at a time: each page is handed to `visit` and dropped.
    async fn scroll_pages(
        &self,
        collection: &str,
        filter: Option<&Filter>,
        with_payload: Value,
        limit: usize,
        mut visit: impl FnMut(Vec<PointIn>),
    ) -> Result<(), StoreError> {
        let filter = filter.map(wire::to_filter).transpose()?;
        let mut read = 0;
        if limit == 0 {
            // Qdrant refuses a page of 0 points.
            return Ok(());
        }
        let mut offset: Option<Value> = None;
        loop {
            let page_size = (limit - read).min(ROWS_PER_PAGE);
            let mut body = json!({
                "limit": page_size,
                "with_payload": with_payload,
                "with_vector": false,
            });
            if let Some(f) = &filter {
                body["filter"] = f.clone();
            }
            if let Some(o) = &offset {
                body["offset"] = o.clone();
            }
            let r = self
                .post::<ScrollPage>(collection, "/points/scroll", &body)
                .await;
            let Some(page) = self.read_result(collection, r)? else {
                return Ok(());
            };
            read += page.points.len();
            visit(page.points);
            match page.next_page_offset {
                Some(next) if !next.is_null() && read < limit => offset = Some(next),
                _ => return Ok(()),
            }
        }
    }
}

/// A collection name as one URL path segment: names are cw's flags, so only the few
/// characters that would break the URL are escaped.
fn escape_segment(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '/' | '?' | '#' | '%' | ' ' => format!("%{:02X}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

fn place(collection: &str) -> CollectionPlace<'_> {
    CollectionPlace::Server {
        store: "Qdrant",
        collection,
    }
}

/// How much one upsert request may carry.
fn write_limits(config: &QdrantConfig) -> Limits<Record> {
    Limits {
        max_items: config.max_points_per_write,
        max_bytes: config.max_bytes_per_write,
        bytes_of: wire::estimated_point_bytes,
    }
}

fn to_hit(p: PointIn, distance: f32) -> Option<Hit> {
    Some(Hit {
        id: p.cw_id()?.to_string(),
        document: p.document().to_string(),
        metadata: p.metadata(),
        distance,
    })
}

/// A collection `ensure_collection` checked: the model it holds and its generation.
struct Prepared {
    model: ModelInfo,
    generation: String,
}

fn new_generation() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[async_trait]
impl VectorStore for QdrantStore {
    async fn ensure_collection(
        &self,
        collection: &str,
        model: &ModelInfo,
    ) -> Result<(), StoreError> {
        if let Some(cached) = self.cached(collection) {
            return same_model(place(collection), &cached, model);
        }
        let info = match self.info(collection).await? {
            Some(info) => info,
            None => {
                self.create(collection, model).await?;
                self.info(collection).await?.ok_or_else(|| {
                    StoreError::Unavailable(format!(
                        "Qdrant collection {collection:?} vanished right after it was created"
                    ))
                })?
            }
        };
        self.check_model(collection, &info, model).await?;
        self.create_indexes(collection, &info).await?;
        let generation = match info.recorded_generation() {
            Some(g) => g,
            // Made by an older cw, or adopted: given a generation now (Qdrant merges
            // metadata keys), so that a collection made anew later is told apart.
            None => {
                let g = new_generation();
                self.call_result::<Value>(
                    Method::PATCH,
                    &self.collection_url(collection, ""),
                    Some(&json!({ "metadata": { GENERATION_KEY: g } })),
                )
                .await
                .map_err(StoreError::from)?;
                g
            }
        };
        self.collections
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                collection.to_string(),
                Prepared {
                    model: model.clone(),
                    generation,
                },
            );
        Ok(())
    }

    async fn upsert(&self, collection: &str, records: &[Record]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let Some(model) = self.cached(collection) else {
            return Err(StoreError::Rejected(format!(
                "collection {collection:?} was not prepared with ensure_collection"
            )));
        };
        check_dimensions(collection, records, model.dimension)?;
        let url = &self.collection_url(collection, "/points?wait=true");
        write_in_chunks(
            records,
            &write_limits(&self.config),
            |part| self.upsert_request(url, part),
            CallError::is_too_large,
        )
        .await
        .map_err(|e| self.write_error(collection, e))
    }

    /// One `set_payload` call per distinct change (Qdrant sets one payload on many points),
    /// on the ids that exist: Qdrant refuses the whole call for an unknown point. Not for
    /// `label.*` keys, whose `cw_labels` array it would leave stale.
    async fn merge_metadata(
        &self,
        collection: &str,
        updates: &[(String, Metadata)],
    ) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = updates.iter().map(|(id, _)| id.clone()).collect();
        let existing = self.content_hashes(collection, &ids).await?;
        let mut by_change: Vec<(&Metadata, Vec<String>)> = Vec::new();
        for (id, changes) in updates.iter().filter(|(id, _)| existing.contains_key(id)) {
            match by_change.iter_mut().find(|(c, _)| *c == changes) {
                Some((_, points)) => points.push(wire::point_id(id)),
                None => by_change.push((changes, vec![wire::point_id(id)])),
            }
        }
        let url = &self.collection_url(collection, "/points/payload?wait=true");
        for (changes, points) in by_change {
            send_in_chunks(
                &points,
                &Limits::items(IDS_PER_REQUEST),
                |chunk| async move {
                    let body = json!({ "payload": changes, "points": chunk });
                    self.call_result::<Value>(Method::POST, url, Some(&body))
                        .await
                },
            )
            .await
            .map_err(|e| self.write_error(collection, e))?;
        }
        Ok(())
    }

    async fn delete(&self, collection: &str, ids: &[String]) -> Result<(), StoreError> {
        let url = &self.collection_url(collection, "/points/delete?wait=true");
        let deleted = send_in_chunks(ids, &Limits::items(IDS_PER_REQUEST), |chunk| async move {
            let points: Vec<String> = chunk.iter().map(|id| wire::point_id(id)).collect();
            self.call_result::<Value>(Method::POST, url, Some(&json!({ "points": points })))
                .await
        })
        .await;
        // Nothing to delete from a collection that does not exist.
        self.read_result(collection, deleted)?;
        Ok(())
    }

    async fn content_hashes(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        let points = self
            .points_by_ids(collection, ids, &[ID_KEY, CONTENT_HASH_KEY], false)
            .await?;
        Ok(points
            .iter()
            .filter_map(|p| Some((p.cw_id()?.to_string(), p.content_hash()?.to_string())))
            .collect())
    }

    async fn vectors(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<f32>>, StoreError> {
        let points = self.points_by_ids(collection, ids, &[ID_KEY], true).await?;
        Ok(points
            .into_iter()
            .filter_map(|p| Some((p.cw_id()?.to_string(), p.vector?)))
            .collect())
    }

    async fn all_hashes(
        &self,
        collection: &str,
        filter: Option<&Filter>,
    ) -> Result<HashMap<String, String>, StoreError> {
        let points = self
            .scroll(
                collection,
                filter,
                json!([ID_KEY, CONTENT_HASH_KEY]),
                usize::MAX,
            )
            .await?;
        Ok(points
            .iter()
            .filter_map(|p| {
                Some((
                    p.cw_id()?.to_string(),
                    p.content_hash().unwrap_or_default().to_string(),
                ))
            })
            .collect())
    }

    async fn query(
        &self,
        collection: &str,
        vector: &[f32],
        filter: Option<&Filter>,
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        if limit == 0 {
            return Ok(vec![]);
        }
        let mut body = json!({ "query": vector, "limit": limit, "with_payload": true });
        if let Some(f) = filter {
            body["filter"] = wire::to_filter(f)?;
        }
        let r = self
            .post::<QueryAnswer>(collection, "/points/query", &body)
            .await;
        let Some(answer) = self.read_result(collection, r)? else {
            return Ok(vec![]);
        };
        Ok(answer
            .points
            .into_iter()
            .filter_map(|p| {
                // Qdrant's cosine score is the similarity; cw's distance is 1 − similarity,
                // as Chroma reports in cosine space.
                let distance = p.score.map_or(f32::MAX, |s| 1.0 - s);
                to_hit(p, distance)
            })
            .collect())
    }

    async fn get(
        &self,
        collection: &str,
        filter: Option<&Filter>,
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        let points = self.scroll(collection, filter, json!(true), limit).await?;
        // No vector was compared: a filter-only read.
        Ok(points.into_iter().filter_map(|p| to_hit(p, 0.0)).collect())
    }

    async fn count(&self, collection: &str) -> Result<usize, StoreError> {
        let r = self
            .post::<CountAnswer>(collection, "/points/count", &json!({ "exact": true }))
            .await;
        Ok(self.read_result(collection, r)?.map_or(0, |c| c.count))
    }

    async fn tally(
        &self,
        collection: &str,
        filter: Option<&Filter>,
        keys: &[&str],
    ) -> Result<Tally, StoreError> {
        let mut counts = Tally::new();
        let payload = if keys.is_empty() {
            json!(false)
        } else {
            json!(keys)
        };
        self.scroll_pages(collection, filter, payload, usize::MAX, |points| {
            for p in points {
                tally_json(&mut counts, keys, p.payload.as_ref());
            }
        })
        .await?;
        Ok(counts)
    }

    /// The collection's `cw_generation`, as read when it was last prepared.
    fn generation(&self, collection: &str) -> Option<String> {
        self.collections
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(collection)
            .map(|p| p.generation.clone())
    }

    async fn ready(&self) -> Result<(), StoreError> {
        // Listing collections proves both that Qdrant answers and that it takes the key;
        // not retried, the probe itself is asked again.
        self.attempt(&Method::GET, &format!("{}/collections", self.base), None)
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
    use crate::store::MetaValue;

    fn record(i: usize, dim: usize) -> Record {
        Record {
            id: format!("ns/v1/ConfigMap/cm-{i}"),
            document: "ConfigMap".into(),
            embedding: vec![0.5; dim],
            metadata: [("kind".to_string(), MetaValue::Str("ConfigMap".into()))].into(),
            content_hash: "h".into(),
        }
    }

    fn sizes(batches: Vec<&[Record]>) -> Vec<usize> {
        batches.iter().map(|b| b.len()).collect()
    }

    fn write_batches(records: &[Record], max_points: usize, max_bytes: usize) -> Vec<&[Record]> {
        let mut config = QdrantConfig::new("http://localhost:6333");
        config.max_points_per_write = max_points;
        config.max_bytes_per_write = max_bytes;
        write_limits(&config).chunks(records)
    }

    #[test]
    fn writes_are_split_by_points_and_by_bytes() {
        let records: Vec<Record> = (0..7).map(|i| record(i, 4)).collect();
        assert_eq!(sizes(write_batches(&records, 3, usize::MAX)), [3, 3, 1]);

        let big: Vec<Record> = (0..10).map(|i| record(i, 1024)).collect();
        let max_bytes = 3 * wire::estimated_point_bytes(&big[0]);
        assert_eq!(sizes(write_batches(&big, 1_000, max_bytes)), [3, 3, 3, 1]);
        // One point over the limit still goes, alone.
        assert_eq!(sizes(write_batches(&big[..2], 1_000, 1)), [1, 1]);
        // A body's real size stays under the estimate.
        let real = wire::upsert_body(&big[..3]).unwrap().len();
        assert!(real <= 3 * wire::estimated_point_bytes(&big[0]), "{real}");
    }

    #[test]
    fn collection_names_are_escaped_in_urls() {
        assert_eq!(escape_segment("team a/instances"), "team%20a%2Finstances");
        assert_eq!(escape_segment("instances-prod_1"), "instances-prod_1");
    }
}
