//! Faults a deployed ingest server meets, end to end: the real router on a free port, a
//! real Chroma, the real Voyage and OpenAI-compatible clients against the stand-in.
//! - An object whose text the provider refuses (a 40 KB description, over the model's
//!   input limit) is parked; the 20 objects sent with it are stored; it is retried when
//!   sent again.
//! - Texts are cut to the configured input limit and requests split by count and budget,
//!   so a provider whose limits are known never refuses them.
//! - At the concurrency limit the server sheds load: 503 with `Retry-After`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{chroma_dump, install_crypto, text_at, voyage_config};
use ingest::embed::openai::{OpenAiConfig, OpenAiEmbedder};
use ingest::embed::voyage::VoyageEmbedder;
use ingest::embed::Embedder;
use ingest::pipeline::Pipeline;
use ingest::retry::RetryPolicy;
use ingest::server::{AppState, ServerConfig};
use ingest::store::chroma::{ChromaConfig, ChromaStore};
use serde_json::{json, Value};
use testkit::{ChromaServer, VoyageStandin};

/// The stand-in refuses inputs longer than this, as a TEI server with a small model would.
const MODEL_MAX_CHARS: usize = 6_000;

/// An ingest server over `chroma`, writing `collection` with `embedder`.
struct Server {
    url: String,
    http: reqwest::Client,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Server {
    async fn start(
        chroma: &ChromaServer,
        embedder: Arc<dyn Embedder>,
        collection: &str,
        config: ServerConfig,
    ) -> Server {
        install_crypto();
        let store = Arc::new(ChromaStore::new(ChromaConfig::new(chroma.url())).expect("chroma"));
        let state = AppState::new(Pipeline::new(store, embedder, collection), config);
        let served = common::serve(state).await;
        Server {
            url: served.url,
            http: reqwest::Client::new(),
            _shutdown: served.shutdown,
        }
    }

    async fn sync(&self, body: &Value) -> (u16, Option<String>, Value) {
        let resp = self
            .http
            .post(format!("{}{}", self.url, sync_model::api::INSTANCES_SYNC))
            .json(body)
            .send()
            .await
            .expect("ingest answers");
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, retry_after, body)
    }

    async fn get(&self, path: &str) -> String {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("ingest answers");
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.text().await.expect("body")
    }

    async fn parked(&self) -> Vec<Value> {
        let body: Value = serde_json::from_str(&self.get(sync_model::api::INSTANCES_PARKED).await)
            .expect("parked json");
        body["parked"].as_array().cloned().unwrap_or_default()
    }
}

fn configmap(name: &str, description: &str) -> Value {
    json!({
        "id": format!("team-a/v1/ConfigMap/{name}"),
        "namespace": "team-a", "name": name, "kind": "ConfigMap",
        "apiVersion": "v1", "apiGroup": "",
        "labels": {"app": name},
        "annotations": {"description": description},
        "createdAt": "2026-02-20T10:00:00Z",
    })
}

/// 20 ordinary ConfigMaps and, in the middle, one whose description is 40 KB.
fn twenty_and_one_huge() -> (Vec<Value>, String) {
    let mut upserts: Vec<Value> = (0..20)
        .map(|i| configmap(&format!("settings-{i}"), "application settings"))
        .collect();
    let huge = "settings for a very chatty team ".repeat(40 * 1024 / 32);
    upserts.insert(10, configmap("huge", &huge));
    (upserts, "team-a/v1/ConfigMap/huge".to_string())
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_retries: 1,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(2),
    }
}

fn openai(standin: &VoyageStandin, configure: impl FnOnce(&mut OpenAiConfig)) -> Arc<dyn Embedder> {
    let mut config = OpenAiConfig::new(standin.openai_base_url(), "text-embedding-3-small");
    config.dimensions = Some(64);
    config.retry = quick_retries();
    configure(&mut config);
    Arc::new(OpenAiEmbedder::new(config).expect("openai client"))
}

/// The poison scenario against one server: the 20 are stored, the huge one is parked and
/// listed, counted and named in the answer; sent again unchanged it is retried and parked
/// again; sent again with a shorter description it is stored and leaves the listing.
async fn the_refused_object_is_parked_and_its_batch_mates_stored(
    server: &Server,
    chroma: &ChromaServer,
    collection: &str,
) {
    let (upserts, huge_id) = twenty_and_one_huge();
    let (status, _, body) = server.sync(&json!({"upserts": upserts})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["upserted"], 20, "{body}");
    assert_eq!(body["parked"][0]["id"], huge_id.as_str(), "{body}");
    assert!(
        text_at(&body, "/parked/0/reason").contains("at most 6000"),
        "the provider's reason is reported: {body}"
    );

    let stored = chroma_dump(&chroma.url(), collection).await;
    assert_eq!(stored.len(), 20, "{:?}", stored.keys());
    assert!(!stored.contains_key(&huge_id));
    for i in 0..20 {
        assert!(stored.contains_key(&format!("team-a/v1/ConfigMap/settings-{i}")));
    }
    let parked = server.parked().await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0]["id"], huge_id.as_str());
    assert_eq!(parked[0]["kind"], "ConfigMap");
    let metrics = server.get("/metrics").await;
    assert!(
        metrics.contains(r#"cw_ingest_instances_parked_total{reason="embed"} 1"#)
            && metrics.contains("cw_ingest_parked 1"),
        "{metrics}"
    );

    // Sent again unchanged (as a resync does: it is missing from the stored hashes), it is
    // retried, refused again and still listed once.
    let hashes: Value =
        serde_json::from_str(&server.get(sync_model::api::INSTANCES_HASHES).await).unwrap();
    assert!(hashes["hashes"].get(&huge_id).is_none());
    let (status, _, body) = server
        .sync(&json!({"upserts": [twenty_and_one_huge().0[10].clone()]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["parked"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(server.parked().await.len(), 1);

    // Its next change fits the model: stored, and no longer parked.
    let (status, _, body) = server
        .sync(&json!({"upserts": [configmap("huge", "now a short description")]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("parked").is_none(), "{body}");
    assert!(server.parked().await.is_empty());
    assert!(chroma_dump(&chroma.url(), collection)
        .await
        .contains_key(&huge_id));
    assert!(server.get("/metrics").await.contains("cw_ingest_parked 0"));
}

/// A Chroma server, and a provider stand-in that refuses inputs longer than the model's
/// limit ([`MODEL_MAX_CHARS`]).
async fn chroma_and_a_provider_with_a_limit() -> (ChromaServer, VoyageStandin) {
    install_crypto();
    let chroma = ChromaServer::start();
    let standin = VoyageStandin::start().await;
    standin.refuse_inputs_longer_than(MODEL_MAX_CHARS);
    (chroma, standin)
}

#[tokio::test]
async fn an_input_the_openai_compatible_server_refuses_is_parked_and_its_20_batch_mates_stored() {
    let (chroma, standin) = chroma_and_a_provider_with_a_limit().await;
    // The client does not know this server's limit (OpenAI's defaults): the provider refuses.
    let server = Server::start(
        &chroma,
        openai(&standin, |_| {}),
        "instances",
        ServerConfig::default(),
    )
    .await;
    the_refused_object_is_parked_and_its_batch_mates_stored(&server, &chroma, "instances").await;
    assert!(standin.stats().refused >= 1);
}

#[tokio::test]
async fn an_input_voyage_refuses_is_parked_and_its_20_batch_mates_stored() {
    let (chroma, standin) = chroma_and_a_provider_with_a_limit().await;
    let mut config = voyage_config(&standin);
    config.retry = quick_retries();
    let embedder = Arc::new(VoyageEmbedder::new(config).expect("voyage client"));
    let server = Server::start(&chroma, embedder, "instances", ServerConfig::default()).await;
    the_refused_object_is_parked_and_its_batch_mates_stored(&server, &chroma, "instances").await;
}

#[tokio::test]
async fn with_the_servers_limits_configured_long_texts_are_cut_and_requests_split() {
    let (chroma, standin) = chroma_and_a_provider_with_a_limit().await;
    // TEI's defaults: 32 inputs a request, 16,384 tokens a batch; this model reads 2,000
    // tokens (about 6,000 bytes by cw's estimate).
    let embedder = openai(&standin, |c| {
        c.max_inputs_per_request = 32;
        c.max_tokens_per_request = 16_384;
        c.max_input_tokens = 2_000;
    });
    let server = Server::start(&chroma, embedder, "instances", ServerConfig::default()).await;
    let (mut upserts, huge_id) = twenty_and_one_huge();
    upserts.extend((0..60).map(|i| configmap(&format!("more-{i}"), "more settings")));
    let (status, _, body) = server.sync(&json!({"upserts": upserts})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["upserted"], 81, "{body}");
    assert!(body.get("parked").is_none(), "{body}");
    let stored = chroma_dump(&chroma.url(), "instances").await;
    assert_eq!(stored.len(), 81);
    // The stored document keeps the whole text; only what the model reads was cut.
    assert!(stored[&huge_id].0.len() > 40_000);
    let stats = standin.stats();
    assert_eq!(stats.refused, 0, "{stats:?}");
    assert!(
        stats.longest_input_chars <= MODEL_MAX_CHARS as u64,
        "{stats:?}"
    );
    assert!(stats.max_inputs_per_request <= 32, "{stats:?}");
    assert!(server.parked().await.is_empty());
}

#[tokio::test]
async fn at_the_concurrency_limit_a_request_is_shed_with_503_and_retry_after() {
    install_crypto();
    let chroma = ChromaServer::start();
    let standin = VoyageStandin::start().await;
    let config = ServerConfig {
        max_concurrent_writes: 1,
        ..ServerConfig::default()
    };
    let server =
        Arc::new(Server::start(&chroma, openai(&standin, |_| {}), "instances", config).await);
    // Warm up (collection created, dimension known), then hold one sync in the provider.
    let (status, _, _) = server
        .sync(&json!({"upserts": [configmap("first", "x")]}))
        .await;
    assert_eq!(status, 200);
    standin.set_delay(Duration::from_millis(1_500));
    let slow = {
        let server = server.clone();
        tokio::spawn(async move {
            server
                .sync(&json!({"upserts": [configmap("slow", "held in the provider")]}))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, retry_after, body) = server
        .sync(&json!({"upserts": [configmap("shed", "turned away")]}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("2"));
    assert!(
        text_at(&body, "/error").contains("CW_MAX_CONCURRENT_WRITES"),
        "{body}"
    );
    // The probes are never shed: the pod stays live and ready while it is busy.
    assert_eq!(
        reqwest::get(format!("{}/readyz", server.url))
            .await
            .unwrap()
            .status(),
        200
    );
    let (status, _, _) = slow.await.unwrap();
    assert_eq!(status, 200, "the request in flight completes");
    standin.set_delay(Duration::ZERO);
    let (status, _, _) = server
        .sync(&json!({"upserts": [configmap("shed", "turned away")]}))
        .await;
    assert_eq!(status, 200, "once the slot is free the retry is served");
    assert!(server
        .get("/metrics")
        .await
        .contains("cw_ingest_requests_shed_total 1"));
    let stored = chroma_dump(&chroma.url(), "instances").await;
    assert_eq!(stored.len(), 3);
}
