//! Shared set-up for the ingest integration tests: a store server (the real Chroma, or the
//! Qdrant test server for test binaries whose name ends in `_qdrant`), the Voyage stand-in,
//! the real Voyage client, and the ingest server on a free port, plus helpers that read the
//! store server directly (not through cw's client) to check what was really stored.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ingest::embed::voyage::{VoyageConfig, VoyageEmbedder};
use ingest::embed::ModelInfo;
use ingest::pipeline::Pipeline;
use ingest::retry::RetryPolicy;
use ingest::server::{self, AppState, ServerConfig};
use ingest::store::chroma::{ChromaConfig, ChromaStore};
use ingest::store::qdrant::{QdrantConfig, QdrantStore};
use ingest::store::{Filter, Hit, Metadata, Record, StoreError, VectorStore};
use serde_json::{json, Value};
use testkit::{ChromaServer, PythonServer, QdrantServer, VoyageStandin};

pub const COLLECTION: &str = "instances";

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Counts the rows written and deleted through the real store client, in the instances
/// collection ([`COLLECTION`]; not the cluster records beside it).
pub struct CountingStore {
    pub inner: Box<dyn VectorStore>,
    pub upserted_rows: AtomicUsize,
    pub upsert_calls: AtomicUsize,
    pub delete_calls: AtomicUsize,
    /// Queries, reads by filter and tallies of the instances collection.
    pub read_calls: AtomicUsize,
}

impl CountingStore {
    pub fn read_calls(&self) -> usize {
        self.read_calls.load(Ordering::SeqCst)
    }

    fn note_read(&self, c: &str) {
        if c == COLLECTION {
            self.read_calls.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub fn upserted_rows(&self) -> usize {
        self.upserted_rows.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl VectorStore for CountingStore {
    async fn ensure_collection(&self, c: &str, m: &ModelInfo) -> Result<(), StoreError> {
        self.inner.ensure_collection(c, m).await
    }
    async fn upsert(&self, c: &str, r: &[Record]) -> Result<(), StoreError> {
        if c == COLLECTION {
            self.upsert_calls.fetch_add(1, Ordering::SeqCst);
            self.upserted_rows.fetch_add(r.len(), Ordering::SeqCst);
        }
        self.inner.upsert(c, r).await
    }
    async fn delete(&self, c: &str, ids: &[String]) -> Result<(), StoreError> {
        if c == COLLECTION {
            self.delete_calls.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.delete(c, ids).await
    }
    async fn content_hashes(
        &self,
        c: &str,
        ids: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        self.inner.content_hashes(c, ids).await
    }
    async fn vectors(
        &self,
        c: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<f32>>, StoreError> {
        self.inner.vectors(c, ids).await
    }
    async fn vectors_by_text(
        &self,
        c: &str,
        hashes: &[String],
    ) -> Result<HashMap<String, Vec<f32>>, StoreError> {
        self.inner.vectors_by_text(c, hashes).await
    }
    async fn all_hashes(
        &self,
        c: &str,
        filter: Option<&Filter>,
    ) -> Result<HashMap<String, String>, StoreError> {
        self.inner.all_hashes(c, filter).await
    }
    async fn merge_metadata(
        &self,
        c: &str,
        updates: &[(String, Metadata)],
    ) -> Result<(), StoreError> {
        self.inner.merge_metadata(c, updates).await
    }
    async fn query(
        &self,
        c: &str,
        v: &[f32],
        f: Option<&Filter>,
        l: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        self.note_read(c);
        self.inner.query(c, v, f, l).await
    }
    async fn get(&self, c: &str, f: Option<&Filter>, l: usize) -> Result<Vec<Hit>, StoreError> {
        self.note_read(c);
        self.inner.get(c, f, l).await
    }
    async fn count(&self, c: &str) -> Result<usize, StoreError> {
        self.inner.count(c).await
    }
    async fn tally(
        &self,
        c: &str,
        f: Option<&Filter>,
        keys: &[&str],
    ) -> Result<ingest::store::Tally, StoreError> {
        self.note_read(c);
        self.inner.tally(c, f, keys).await
    }
    async fn ready(&self) -> Result<(), StoreError> {
        self.inner.ready().await
    }
    async fn records(&self, c: &str, ids: &[String]) -> Result<Vec<Record>, StoreError> {
        self.inner.records(c, ids).await
    }
    async fn collection_model(&self, c: &str) -> Result<Option<ModelInfo>, StoreError> {
        self.inner.collection_model(c).await
    }
    async fn drop_collection(&self, c: &str) -> Result<(), StoreError> {
        self.inner.drop_collection(c).await
    }
}

/// The store server the tests of one binary run on; its URL, stop and restart are the
/// server process's.
pub enum StoreServer {
    Chroma(ChromaServer),
    Qdrant(QdrantServer),
}

impl StoreServer {
    /// Qdrant for test binaries whose crate name ends in `_qdrant` (e.g. `sync_api_qdrant`,
    /// which runs the cases of sync_api.rs), else Chroma.
    pub fn start_for_this_binary() -> StoreServer {
        if env!("CARGO_CRATE_NAME").ends_with("_qdrant") {
            StoreServer::Qdrant(QdrantServer::start())
        } else {
            StoreServer::Chroma(ChromaServer::start())
        }
    }

    /// A client of this server as cw builds it, with quick retries for Qdrant.
    pub fn client(&self) -> Box<dyn VectorStore> {
        match self {
            StoreServer::Chroma(s) => {
                let mut config = ChromaConfig::new(s.url());
                config.timeout = Duration::from_secs(10);
                Box::new(ChromaStore::new(config).expect("chroma client"))
            }
            StoreServer::Qdrant(s) => {
                let mut config = QdrantConfig::new(s.url());
                config.timeout = Duration::from_secs(10);
                config.retry = RetryPolicy {
                    max_retries: 2,
                    min_delay: Duration::from_millis(20),
                    max_delay: Duration::from_millis(100),
                    max_retry_after: Duration::from_secs(1),
                };
                Box::new(QdrantStore::new(config).expect("qdrant client"))
            }
        }
    }

    /// Every stored document of `collection`, read from the server's own API: id ->
    /// (document, metadata including `cw_content_hash`).
    pub async fn dump(&self, collection: &str) -> HashMap<String, (String, Value)> {
        match self {
            StoreServer::Chroma(s) => chroma_dump(&s.url(), collection).await,
            StoreServer::Qdrant(s) => qdrant_dump(&s.url(), collection).await,
        }
    }

    pub async fn has_collection(&self, collection: &str) -> bool {
        let url = match self {
            StoreServer::Chroma(s) => format!(
                "{}/api/v2/tenants/default_tenant/databases/default_database/collections/{collection}",
                s.url()
            ),
            StoreServer::Qdrant(s) => format!("{}/collections/{collection}", s.url()),
        };
        let status = reqwest::get(url).await.expect("the store answers").status();
        assert!(status.as_u16() == 200 || status.as_u16() == 404, "{status}");
        status.is_success()
    }
}

impl std::ops::Deref for StoreServer {
    type Target = PythonServer;

    fn deref(&self) -> &PythonServer {
        match self {
            StoreServer::Chroma(s) => s,
            StoreServer::Qdrant(s) => s,
        }
    }
}

impl std::ops::DerefMut for StoreServer {
    fn deref_mut(&mut self) -> &mut PythonServer {
        match self {
            StoreServer::Chroma(s) => s,
            StoreServer::Qdrant(s) => s,
        }
    }
}

/// The store server, the stand-in and the ingest server, all on free loopback ports.
pub struct Harness {
    pub store_server: StoreServer,
    pub voyage: VoyageStandin,
    pub store: Arc<CountingStore>,
    pub state: AppState,
    /// `http://127.0.0.1:<port>` of the ingest server.
    pub url: String,
    pub http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub fn voyage_config(voyage: &VoyageStandin) -> VoyageConfig {
    let mut config = VoyageConfig::new("test-key");
    config.base_url = voyage.base_url();
    // Keep failing tests quick: two quick retries.
    config.retry = RetryPolicy {
        max_retries: 2,
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        max_retry_after: Duration::from_secs(5),
    };
    config
}

impl Harness {
    pub async fn start() -> Harness {
        Self::start_with(ServerConfig::default()).await
    }

    pub async fn start_with(config: ServerConfig) -> Harness {
        install_crypto();
        let store_server = StoreServer::start_for_this_binary();
        let voyage = VoyageStandin::start().await;
        let store = Arc::new(CountingStore {
            inner: store_server.client(),
            upserted_rows: AtomicUsize::new(0),
            upsert_calls: AtomicUsize::new(0),
            delete_calls: AtomicUsize::new(0),
            read_calls: AtomicUsize::new(0),
        });
        let embedder =
            Arc::new(VoyageEmbedder::new(voyage_config(&voyage)).expect("voyage client"));
        let pipeline = Pipeline::new(store.clone(), embedder, COLLECTION);
        let state = AppState::new(pipeline, config);
        let served = serve(state.clone()).await;
        Harness {
            store_server,
            voyage,
            store,
            state,
            url: served.url,
            http: reqwest::Client::new(),
            shutdown: Some(served.shutdown),
            server: Some(served.task),
        }
    }

    /// Sends SIGTERM's equivalent to the server.
    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    pub async fn post_sync(&self, body: &Value) -> (u16, Value) {
        self.post_raw(body.to_string(), "application/json").await
    }

    pub async fn post_raw(
        &self,
        body: impl Into<reqwest::Body>,
        content_type: &str,
    ) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/api/v1/instances/sync", self.url))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await;
        answer(resp).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        answer(self.http.get(format!("{}{path}", self.url)).send().await).await
    }

    /// Every stored document, read from the store server directly: id -> (document,
    /// metadata), ids as [`shown_id`] shows them.
    pub async fn stored(&self) -> HashMap<String, (String, Value)> {
        self.store_server.dump(COLLECTION).await
    }

    /// The ids of every stored document, sorted, as [`Harness::stored`] shows them.
    pub async fn stored_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.stored().await.into_keys().collect();
        ids.sort();
        ids
    }
}

/// An ingest server on a free loopback port, until `shutdown` is sent or dropped.
pub struct Served {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    pub shutdown: tokio::sync::oneshot::Sender<()>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Serves the router of `state` as `cw serve` does.
pub async fn serve(state: AppState) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = server::router(state.clone());
    let task = tokio::spawn(server::serve(listener, app, state, async {
        let _ = rx.await;
    }));
    Served {
        url,
        shutdown: tx,
        task,
    }
}

/// The status and the body of an answer of the ingest server: its JSON, or its text as a
/// JSON string when it is not JSON.
pub async fn answer(resp: reqwest::Result<reqwest::Response>) -> (u16, Value) {
    let resp = resp.expect("ingest server answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A stored id as the dumps show it: the default cluster's (`default:<id>`, what a payload
/// without `cluster` stores) as `<id>`; other clusters' keep their prefix.
/// The text at `pointer` (`/details/0/field`) of an answer's JSON body; empty where there
/// is none.
pub fn text_at<'a>(body: &'a Value, pointer: &str) -> &'a str {
    body.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

pub fn shown_id(stored: String) -> String {
    match stored.strip_prefix("default:") {
        Some(plain) => plain.to_string(),
        None => stored,
    }
}

/// Reads a whole collection straight from Chroma's REST API (no cw code involved).
pub async fn chroma_dump(chroma_url: &str, collection: &str) -> HashMap<String, (String, Value)> {
    let http = reqwest::Client::new();
    let base = format!(
        "{chroma_url}/api/v2/tenants/default_tenant/databases/default_database/collections"
    );
    let resp = http
        .get(format!("{base}/{collection}"))
        .send()
        .await
        .expect("chroma answers");
    if resp.status().as_u16() == 404 {
        return HashMap::new();
    }
    let info: Value = resp.json().await.expect("collection json");
    let id = info["id"].as_str().expect("collection id").to_string();
    let got: Value = http
        .post(format!("{base}/{id}/get"))
        .json(&json!({"include": ["documents", "metadatas"], "limit": 100000}))
        .send()
        .await
        .expect("chroma get")
        .json()
        .await
        .expect("get json");
    let ids = got["ids"].as_array().cloned().unwrap_or_default();
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            (
                shown_id(id.as_str().unwrap_or_default().to_string()),
                (
                    got["documents"][i].as_str().unwrap_or_default().to_string(),
                    got["metadatas"][i].clone(),
                ),
            )
        })
        .collect()
}

/// Reads a whole collection straight from Qdrant's REST API (no cw code involved): the
/// payload's `cw_id` and `cw_document`, and the rest of the payload as metadata.
pub async fn qdrant_dump(qdrant_url: &str, collection: &str) -> HashMap<String, (String, Value)> {
    let resp = reqwest::Client::new()
        .post(format!(
            "{qdrant_url}/collections/{collection}/points/scroll"
        ))
        .json(&json!({"limit": 100000, "with_payload": true}))
        .send()
        .await
        .expect("qdrant answers");
    if resp.status().as_u16() == 404 {
        return HashMap::new();
    }
    let page: Value = resp.json().await.expect("scroll json");
    assert!(
        page["result"]["next_page_offset"].is_null(),
        "more than one page"
    );
    page["result"]["points"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let mut meta = p["payload"].clone();
            let payload = meta.as_object_mut().expect("payload object");
            let id = payload
                .remove("cw_id")
                .and_then(|v| v.as_str().map(str::to_string));
            let doc = payload.remove("cw_document");
            payload.remove("cw_labels");
            (
                shown_id(id.expect("every point has its cw id")),
                (
                    doc.and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    meta,
                ),
            )
        })
        .collect()
}

/// A valid instance as the Go controller sends it.
pub fn instance(namespace: &str, kind: &str, name: &str, labels: Value) -> Value {
    let (api_version, api_group) = match kind {
        "Deployment" | "StatefulSet" => ("apps/v1", "apps"),
        _ => ("v1", ""),
    };
    json!({
        "id": format!("{namespace}/{api_version}/{kind}/{name}"),
        "namespace": namespace,
        "name": name,
        "kind": kind,
        "apiVersion": api_version,
        "apiGroup": api_group,
        "labels": labels,
        "annotations": {"description": format!("{name} for the tests")},
        "createdAt": "2026-02-20T10:00:00Z",
    })
}

pub fn id_of(namespace: &str, kind: &str, name: &str) -> String {
    instance(namespace, kind, name, json!({}))["id"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// `n` distinct deployments in namespace `ns`.
pub fn deployments(ns: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            instance(
                ns,
                "Deployment",
                &format!("app-{i}"),
                json!({"app": format!("app-{i}"), "tier": "web"}),
            )
        })
        .collect()
}
