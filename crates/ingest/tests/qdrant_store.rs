//! What the Qdrant store adds beyond the shared conformance suite, checked by reading the
//! test server's REST API directly: collections carry cosine distance, the model and the
//! payload indexes; point ids are UUIDv5 with the cw id in the payload; the API key is sent;
//! collections made by others are adopted only when empty and shaped right; failed calls are
//! retried until the server is back; a collection deleted under cw is recreated.

use std::time::Duration;

use ingest::embed::ModelInfo;
use ingest::retry::RetryPolicy;
use ingest::store::qdrant::{wire, Distribution, QdrantConfig, QdrantStore, WriteOrdering};
use ingest::store::{MetaValue, Record, StoreError, VectorStore};
use serde_json::{json, Value};
use testkit::QdrantServer;

fn model(dimension: usize) -> ModelInfo {
    ModelInfo {
        id: format!("test:qdrant-{dimension}d"),
        dimension,
    }
}

fn record(id: &str, labels: &[(&str, &str)]) -> Record {
    let mut metadata: ingest::store::Metadata = labels
        .iter()
        .map(|(k, v)| (format!("label.{k}"), MetaValue::Str(v.to_string())))
        .collect();
    metadata.insert("kind".into(), MetaValue::Str("Deployment".into()));
    Record {
        id: id.to_string(),
        document: format!("document of {id}"),
        embedding: vec![1.0, 0.0, 0.0, 0.0],
        metadata,
        content_hash: format!("hash-{id}"),
    }
}

async fn start(key: Option<&'static str>) -> QdrantServer {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::task::spawn_blocking(move || QdrantServer::start_with_key(key))
        .await
        .expect("start the Qdrant test server")
}

fn quick_retries(max_retries: usize) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        min_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(400),
        max_retry_after: Duration::from_secs(1),
    }
}

fn store(server: &QdrantServer, key: Option<&str>) -> QdrantStore {
    let mut config = QdrantConfig::new(server.url());
    config.api_key = key.map(str::to_string);
    config.retry = quick_retries(2);
    QdrantStore::new(config).expect("Qdrant client")
}

/// A REST call straight to the server (no cw code), answering (status, body).
/// The message of a refusal, which `result` must be.
fn refusal(result: Result<(), StoreError>) -> String {
    match result {
        Err(StoreError::Rejected(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn rest(
    server: &QdrantServer,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let http = reqwest::Client::new();
    let mut req = http.request(
        method.parse().expect("method"),
        format!("{}{path}", server.url()),
    );
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("the test server answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn collections_are_made_with_cosine_distance_the_model_and_keyword_indexes() {
    let server = start(None).await;
    let s = store(&server, None);
    s.ensure_collection("instances", &model(4)).await.unwrap();
    let (status, info) = rest(&server, "GET", "/collections/instances", None).await;
    assert_eq!(status, 200, "{info}");
    let config = &info["result"]["config"];
    assert_eq!(
        config["params"]["vectors"],
        json!({"size": 4, "distance": "Cosine"})
    );
    assert_eq!(config["metadata"]["cw_embedding_model"], "test:qdrant-4d");
    assert_eq!(config["metadata"]["cw_embedding_dimension"], 4);
    // A generation of its own, which sync answers name; another cw (a restart) reads the
    // same one from Qdrant.
    let generation = config["metadata"]["cw_generation"]
        .as_str()
        .expect("a generation is recorded")
        .to_string();
    assert_eq!(s.generation("instances").as_deref(), Some(&*generation));
    let restarted = store(&server, None);
    assert_eq!(restarted.generation("instances"), None, "nothing read yet");
    restarted
        .ensure_collection("instances", &model(4))
        .await
        .unwrap();
    assert_eq!(restarted.generation("instances"), Some(generation));
    let schema = info["result"]["payload_schema"].as_object().unwrap();
    for field in [
        "cluster",
        "namespace",
        "kind",
        "apiGroup",
        "health",
        "cw_labels",
    ] {
        assert_eq!(schema[field]["data_type"], "keyword", "{field}: {schema:?}");
    }
}

#[tokio::test]
async fn collections_are_made_with_the_configured_shards_replication_and_write_consistency() {
    let server = start(None).await;
    // Today's behaviour by default: one shard, one copy.
    store(&server, None)
        .ensure_collection("single", &model(4))
        .await
        .unwrap();
    let (_, info) = rest(&server, "GET", "/collections/single", None).await;
    let params = &info["result"]["config"]["params"];
    assert_eq!(
        (
            &params["shard_number"],
            &params["replication_factor"],
            &params["write_consistency_factor"]
        ),
        (&json!(1), &json!(1), &json!(1)),
        "{info}"
    );

    let mut config = QdrantConfig::new(server.url());
    config.retry = quick_retries(2);
    config.distribution = Distribution {
        shard_number: 6,
        replication_factor: 3,
        write_consistency_factor: 2,
    };
    config.ordering = WriteOrdering::Medium;
    let s = QdrantStore::new(config).expect("Qdrant client");
    s.ensure_collection("spread", &model(4)).await.unwrap();
    let (status, info) = rest(&server, "GET", "/collections/spread", None).await;
    assert_eq!(status, 200, "{info}");
    let params = &info["result"]["config"]["params"];
    assert_eq!(params["shard_number"], 6, "{info}");
    assert_eq!(params["replication_factor"], 3, "{info}");
    assert_eq!(params["write_consistency_factor"], 2, "{info}");
    // Writes carry the ordering, and Qdrant takes them.
    s.upsert("spread", &[record("a", &[])]).await.unwrap();
    s.delete("spread", &["a".to_string()]).await.unwrap();
    assert_eq!(s.count("spread").await.unwrap(), 0);
}

#[test]
fn a_write_consistency_above_the_replication_factor_is_refused_before_any_call() {
    let mut config = QdrantConfig::new("http://127.0.0.1:1");
    config.distribution = Distribution {
        shard_number: 2,
        replication_factor: 1,
        write_consistency_factor: 2,
    };
    let Err(StoreError::Rejected(e)) = QdrantStore::new(config) else {
        panic!("a write consistency factor of 2 with one copy should be refused");
    };
    assert!(e.contains("write consistency factor (2)"), "{e}");
}

#[tokio::test]
async fn point_ids_are_uuids_and_the_payload_keeps_the_id_hash_and_label_pairs() {
    let server = start(None).await;
    let s = store(&server, None);
    s.ensure_collection("instances", &model(4)).await.unwrap();
    let id = "default/apps/v1/Deployment/nginx";
    s.upsert(
        "instances",
        &[record(id, &[("app.kubernetes.io/name", "nginx")])],
    )
    .await
    .unwrap();
    let (status, page) = rest(
        &server,
        "POST",
        "/collections/instances/points/scroll",
        Some(json!({"limit": 10, "with_payload": true})),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let points = page["result"]["points"].as_array().unwrap();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0]["id"], json!(wire::point_id(id)));
    let payload = &points[0]["payload"];
    assert_eq!(payload["cw_id"], id);
    assert_eq!(payload["cw_content_hash"], format!("hash-{id}"));
    assert_eq!(
        payload["cw_labels"],
        json!(["app.kubernetes.io/name=nginx"])
    );
    assert_eq!(payload["label.app.kubernetes.io/name"], "nginx");
}

#[tokio::test]
async fn the_api_key_is_sent_and_a_wrong_one_is_a_clear_refusal() {
    let server = start(Some("s3cret")).await;
    let good = store(&server, Some("s3cret"));
    good.ready().await.expect("ready with the key");
    good.ensure_collection("instances", &model(4))
        .await
        .unwrap();
    good.upsert("instances", &[record("a", &[])]).await.unwrap();
    assert_eq!(good.count("instances").await.unwrap(), 1);

    for bad in [None, Some("wrong")] {
        let s = store(&server, bad);
        match s.ensure_collection("instances", &model(4)).await {
            Err(StoreError::Rejected(m)) => assert!(m.contains("QDRANT_API_KEY"), "{m}"),
            other => panic!("{bad:?}: expected a refusal, got {other:?}"),
        }
        assert!(matches!(s.ready().await, Err(StoreError::Unavailable(_))));
    }
}

#[tokio::test]
async fn a_collection_made_by_someone_else_is_adopted_only_while_empty_and_shaped_right() {
    let server = start(None).await;
    let s = store(&server, None);
    let create = |size: u64, distance: &'static str| json!({"vectors": {"size": size, "distance": distance}});
    // Empty, right shape, no model record: adopted, and the model is recorded.
    assert_eq!(
        rest(
            &server,
            "PUT",
            "/collections/empty",
            Some(create(4, "Cosine"))
        )
        .await
        .0,
        200
    );
    s.ensure_collection("empty", &model(4)).await.unwrap();
    let (_, info) = rest(&server, "GET", "/collections/empty", None).await;
    assert_eq!(
        info["result"]["config"]["metadata"]["cw_embedding_model"],
        "test:qdrant-4d"
    );
    assert_eq!(
        info["result"]["config"]["metadata"]["cw_generation"].as_str(),
        s.generation("empty").as_deref(),
        "{info}"
    );
    assert!(s.generation("empty").is_some());

    // Holding points nobody vouches for: refused.
    assert_eq!(
        rest(
            &server,
            "PUT",
            "/collections/full",
            Some(create(4, "Cosine"))
        )
        .await
        .0,
        200
    );
    let point = json!({"points": [{"id": 1, "vector": [1.0, 0.0, 0.0, 0.0], "payload": {}}]});
    assert_eq!(
        rest(
            &server,
            "PUT",
            "/collections/full/points?wait=true",
            Some(point)
        )
        .await
        .0,
        200
    );
    let m = refusal(s.ensure_collection("full", &model(4)).await);
    assert!(m.contains("does not say which"), "{m}");

    // Another distance: refused, naming what cw needs.
    assert_eq!(
        rest(&server, "PUT", "/collections/dot", Some(create(4, "Dot")))
            .await
            .0,
        200
    );
    let m = refusal(s.ensure_collection("dot", &model(4)).await);
    assert!(m.contains("Cosine"), "{m}");
}

#[tokio::test]
async fn calls_are_retried_until_qdrant_is_back() {
    let mut server = start(None).await;
    let mut config = QdrantConfig::new(server.url());
    // Enough retries (about 10 s of backoff) for the Python test server to restart on a
    // loaded 2-core machine; the assertion is that the call outlives the outage.
    config.retry = quick_retries(30);
    let s = QdrantStore::new(config).unwrap();
    s.ensure_collection("instances", &model(4)).await.unwrap();
    server.stop();
    let restart = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(300));
        server.restart();
        server
    });
    s.upsert("instances", &[record("a", &[]), record("b", &[])])
        .await
        .expect("the upsert succeeds once Qdrant is back");
    let server = restart.await.unwrap();
    assert_eq!(s.count("instances").await.unwrap(), 2);
    drop(server);
}

#[tokio::test]
async fn an_unreachable_qdrant_is_a_transient_error() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = QdrantConfig::new(format!("http://127.0.0.1:{}", testkit::free_port()));
    config.retry = quick_retries(1);
    let s = QdrantStore::new(config).unwrap();
    let err = s
        .ensure_collection("instances", &model(4))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(s.ready().await.unwrap_err().is_transient());
}

#[tokio::test]
async fn a_collection_deleted_under_cw_is_recreated_on_the_next_sync() {
    let server = start(None).await;
    let s = store(&server, None);
    s.ensure_collection("instances", &model(4)).await.unwrap();
    let first = s.generation("instances").expect("a generation");
    s.upsert("instances", &[record("a", &[])]).await.unwrap();
    assert_eq!(
        rest(&server, "DELETE", "/collections/instances", None)
            .await
            .0,
        200
    );
    // Reads find nothing, a write says to retry...
    assert_eq!(s.count("instances").await.unwrap(), 0);
    assert!(s.all_hashes("instances", None).await.unwrap().is_empty());
    s.ensure_collection("instances", &model(4)).await.unwrap();
    assert_eq!(
        rest(&server, "DELETE", "/collections/instances", None)
            .await
            .0,
        200
    );
    let err = s
        .upsert("instances", &[record("b", &[])])
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    // ...and the retried sync recreates the collection, under a new generation: what
    // tells a watcher that what it sent before is gone.
    s.ensure_collection("instances", &model(4)).await.unwrap();
    s.upsert("instances", &[record("b", &[])]).await.unwrap();
    assert_eq!(s.count("instances").await.unwrap(), 1);
    let last = s.generation("instances").expect("a generation");
    assert_ne!(first, last);
}
