//! The capabilities endpoints over the real router on a free port, with the embedded store
//! and the real Voyage client against the stand-in: `POST /api/v1/capabilities/sync`
//! answers like the instances endpoint, skips unchanged types, changes nothing on a bad
//! payload or a failed embedding, and `GET /api/v1/capabilities/hashes` lists what is stored.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::answer;
use ingest::capabilities::CapabilityPipeline;
use ingest::embed::voyage::{VoyageConfig, VoyageEmbedder};
use ingest::pipeline::{Pipeline, SyncError};
use ingest::server::{AppState, ServerConfig};
use ingest::store::embedded::EmbeddedStore;
use ingest::store::{StoreError, VectorStore};
use serde_json::{json, Value};
use sync_model::CapabilitySyncPayload;
use testkit::VoyageStandin;

/// The capabilities' collection (the instances' is [`common::COLLECTION`]).
const COLLECTION: &str = "capabilities";

fn voyage_config(voyage: &VoyageStandin, model: &str) -> VoyageConfig {
    let mut config = common::voyage_config(voyage);
    config.model = model.into();
    config
}

struct Harness {
    _dir: tempfile::TempDir,
    voyage: VoyageStandin,
    store: Arc<EmbeddedStore>,
    url: String,
    http: reqwest::Client,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Harness {
    async fn start(config: ServerConfig) -> Harness {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(EmbeddedStore::open_in_dir(dir.path()).expect("embedded store"));
        let voyage = VoyageStandin::start().await;
        let embedder = Arc::new(
            VoyageEmbedder::new(voyage_config(&voyage, "voyage-3.5")).expect("voyage client"),
        );
        let pipeline = Pipeline::new(store.clone(), embedder, "instances");
        let served = common::serve(AppState::new(pipeline, config)).await;
        Harness {
            _dir: dir,
            voyage,
            store,
            url: served.url,
            http: reqwest::Client::new(),
            _shutdown: served.shutdown,
        }
    }

    async fn post(&self, body: &Value) -> (u16, Value) {
        self.post_raw(&body.to_string(), "application/json", None)
            .await
    }

    /// [`post`](Self::post), which must be answered 200.
    async fn post_ok(&self, body: &Value) {
        let (status, answer) = self.post(body).await;
        assert_eq!(status, 200, "{answer}");
    }

    async fn post_raw(&self, body: &str, content_type: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/api/v1/capabilities/sync", self.url))
            .header("content-type", content_type)
            .body(body.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        answer(req.send().await).await
    }

    /// `GET /api/v1/capabilities/hashes[?cluster=]`: id -> content hash.
    async fn hashes_of(&self, cluster: Option<&str>) -> HashMap<String, String> {
        let query = cluster.map(|c| format!("?cluster={c}")).unwrap_or_default();
        let resp = self
            .http
            .get(format!("{}/api/v1/capabilities/hashes{query}", self.url))
            .send()
            .await;
        let (status, body) = answer(resp).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_value(body["hashes"].clone()).expect("hashes map")
    }

    async fn hashes(&self) -> HashMap<String, String> {
        self.hashes_of(None).await
    }

    /// id -> (document, metadata) of every stored capability.
    async fn stored(&self) -> HashMap<String, (String, HashMap<String, Value>)> {
        self.store
            .get(COLLECTION, None, 1000)
            .await
            .expect("store get")
            .into_iter()
            .map(|h| {
                let meta = h
                    .metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::to_value(v).expect("meta")))
                    .collect();
                (h.id, (h.document, meta))
            })
            .collect()
    }
}

fn cap(plural: &str, group: &str, kind: &str, description: &str) -> Value {
    let id = if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    };
    json!({
        "id": id, "kind": kind, "group": group, "versions": ["v1", "v1beta1"],
        "plural": plural, "namespaced": true, "shortNames": [], "categories": ["all"],
        "description": description, "fields": {"instances": "Number of instances"}
    })
}

fn postgres() -> Value {
    cap(
        "clusters",
        "postgresql.cnpg.io",
        "Cluster",
        "A PostgreSQL database cluster",
    )
}

fn redis() -> Value {
    cap("redis", "redis.opstreelabs.in", "Redis", "A Redis cache")
}

fn content_hash(v: &Value) -> String {
    let c: sync_model::Capability = serde_json::from_value(v.clone()).expect("capability");
    c.content_hash()
}

#[tokio::test]
async fn upserted_types_are_stored_with_their_text_metadata_and_hash() {
    let h = Harness::start(ServerConfig::default()).await;
    let (status, body) = h.post(&json!({"upserts": [postgres(), redis()]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"status": "ok", "upserted": 2, "deleted": 0}));

    let stored = h.stored().await;
    assert_eq!(stored.len(), 2);
    let (doc, meta) = &stored["clusters.postgresql.cnpg.io"];
    let c: sync_model::Capability = serde_json::from_value(postgres()).unwrap();
    assert_eq!(doc, &c.document_text());
    assert_eq!(meta["kind"], "Cluster");
    assert_eq!(meta["group"], "postgresql.cnpg.io");
    assert_eq!(meta["plural"], "clusters");
    assert_eq!(meta["namespaced"], "true");
    assert_eq!(meta["versions"], "v1,v1beta1");

    let hashes = h.hashes().await;
    assert_eq!(hashes.len(), 2);
    assert_eq!(
        hashes["clusters.postgresql.cnpg.io"],
        content_hash(&postgres())
    );
    assert_eq!(hashes["redis.redis.opstreelabs.in"], content_hash(&redis()));
}

#[tokio::test]
async fn deletes_remove_types_and_an_id_also_upserted_stays() {
    let h = Harness::start(ServerConfig::default()).await;
    h.post_ok(&json!({"upserts": [postgres(), redis()]})).await;
    let mut changed = postgres();
    changed["description"] = json!("PostgreSQL, now with backups");
    let (status, body) = h
        .post(&json!({
            "upserts": [changed.clone()],
            "deletes": ["redis.redis.opstreelabs.in", "clusters.postgresql.cnpg.io"]
        }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"status": "ok", "upserted": 1, "deleted": 1}));
    let stored = h.stored().await;
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        vec!["clusters.postgresql.cnpg.io"]
    );
    assert!(stored["clusters.postgresql.cnpg.io"]
        .0
        .contains("now with backups"));
}

#[tokio::test]
async fn of_duplicate_ids_the_last_one_wins() {
    let h = Harness::start(ServerConfig::default()).await;
    let mut last = postgres();
    last["description"] = json!("the newest description");
    let (status, body) = h.post(&json!({"upserts": [postgres(), last]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["upserted"], 1);
    assert!(h.stored().await["clusters.postgresql.cnpg.io"]
        .0
        .contains("the newest description"));
}

#[tokio::test]
async fn an_unchanged_type_is_not_embedded_again() {
    let h = Harness::start(ServerConfig::default()).await;
    h.post_ok(&json!({"upserts": [postgres(), redis()]})).await;
    assert_eq!(h.voyage.stats().document_inputs, 2);

    let mut changed = redis();
    changed["description"] = json!("A Redis cache with persistence");
    let (status, body) = h.post(&json!({"upserts": [postgres(), changed]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["upserted"], 2);
    // Only the changed type was embedded.
    assert_eq!(h.voyage.stats().document_inputs, 3);
}

#[tokio::test]
async fn a_bad_payload_is_refused_naming_item_and_field_and_changes_nothing() {
    let h = Harness::start(ServerConfig::default()).await;
    assert_eq!(h.post(&json!({"upserts": [postgres()]})).await.0, 200);
    let before = h.stored().await;

    let mut bad = redis();
    bad["id"] = json!("wrong.id");
    let mut changed = postgres();
    changed["description"] = json!("changed");
    let (status, body) = h
        .post(&json!({"upserts": [changed, bad], "deletes": ["clusters.postgresql.cnpg.io"]}))
        .await;
    assert_eq!(status, 400, "{body}");
    let fields: Vec<&str> = body["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert_eq!(fields, vec!["upserts[1].id"], "{body}");
    assert_eq!(h.stored().await, before);

    // Wrong JSON types name their path too.
    let (status, body) = h.post(&json!({"upserts": [{"id": 1}]})).await;
    assert_eq!(status, 400);
    assert_eq!(body["details"][0]["field"], "upserts[0].id", "{body}");
}

#[tokio::test]
async fn an_embedding_failure_answers_503_changes_nothing_and_a_retry_succeeds() {
    let h = Harness::start(ServerConfig::default()).await;
    assert_eq!(h.post(&json!({"upserts": [redis()]})).await.0, 200);
    h.voyage.go_down(500);
    let payload = json!({"upserts": [postgres()], "deletes": ["redis.redis.opstreelabs.in"]});
    let (status, body) = h.post(&payload).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].is_string(), "{body}");
    let stored = h.stored().await;
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        vec!["redis.redis.opstreelabs.in"],
        "the delete must not happen before the embedding succeeded"
    );

    h.voyage.recover();
    let (status, body) = h.post(&payload).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        h.stored().await.keys().collect::<Vec<_>>(),
        vec!["clusters.postgresql.cnpg.io"]
    );
}

#[tokio::test]
async fn the_token_media_type_and_size_rules_match_the_instances_endpoint() {
    let config = ServerConfig {
        auth_token: Some("s3cret".into()),
        max_body_bytes: 2_000,
        ..ServerConfig::default()
    };
    let h = Harness::start(config).await;
    let body = json!({"upserts": [postgres()]}).to_string();
    let (status, _) = h.post_raw(&body, "application/json", None).await;
    assert_eq!(status, 401);
    let resp = h
        .http
        .get(format!("{}/api/v1/capabilities/hashes", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let (status, _) = h.post_raw(&body, "text/plain", Some("s3cret")).await;
    assert_eq!(status, 415);
    let big = json!({"upserts": [postgres()], "deletes": vec!["x".repeat(100); 40]});
    let (status, _) = h
        .post_raw(&big.to_string(), "application/json", Some("s3cret"))
        .await;
    assert_eq!(status, 413);
    let (status, body) = h.post_raw(&body, "application/json", Some("s3cret")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_collection_refuses_a_second_embedding_model() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open_in_dir(dir.path()).unwrap());
    let voyage = VoyageStandin::start().await;
    let first = CapabilityPipeline::new(
        store.clone(),
        Arc::new(VoyageEmbedder::new(voyage_config(&voyage, "voyage-3.5")).unwrap()),
        COLLECTION.to_string(),
    );
    let payload: CapabilitySyncPayload =
        serde_json::from_value(json!({"upserts": [postgres()]})).unwrap();
    first.apply_sync(payload.clone()).await.unwrap();

    let other = CapabilityPipeline::new(
        store.clone(),
        Arc::new(VoyageEmbedder::new(voyage_config(&voyage, "voyage-3-lite")).unwrap()),
        COLLECTION.to_string(),
    );
    let mut changed = payload;
    changed.upserts[0].description = "changed".into();
    let err = other.apply_sync(changed).await.unwrap_err();
    assert!(
        matches!(err, SyncError::Store(StoreError::Rejected(_))),
        "{err:?}"
    );
    assert_eq!(store.count(COLLECTION).await.unwrap(), 1);
}

impl Harness {
    /// `GET /api/v1/capabilities/hashes?cluster=`: the type ids `cluster` serves.
    async fn types_of(&self, cluster: &str) -> Vec<String> {
        let mut ids: Vec<String> = self.hashes_of(Some(cluster)).await.into_keys().collect();
        ids.sort();
        ids
    }
}

#[tokio::test]
async fn one_record_per_type_serves_the_fleet_embedded_once_and_goes_with_its_last_cluster() {
    let h = Harness::start(ServerConfig::default()).await;
    let id = "clusters.postgresql.cnpg.io";
    let (status, body) = h
        .post(&json!({"cluster": "alpha", "upserts": [postgres(), redis()]}))
        .await;
    assert_eq!(status, 200, "{body}");
    let embedded = h.voyage.inputs();
    assert_eq!(embedded, 2);

    // Beta serves the same CRD: it joins the record, and its text is not embedded again.
    let (status, body) = h
        .post(&json!({"cluster": "beta", "upserts": [postgres()]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        h.voyage.inputs(),
        embedded,
        "a type's text is embedded once"
    );
    assert_eq!(h.stored().await.len(), 2, "one record per type");
    assert_eq!(
        h.types_of("alpha").await,
        [id, "redis.redis.opstreelabs.in"]
    );
    assert_eq!(h.types_of("beta").await, [id]);
    assert!(h.types_of("default").await.is_empty());

    // The CRD is removed from alpha: beta's bridge stays.
    let (status, body) = h.post(&json!({"cluster": "alpha", "deletes": [id]})).await;
    assert_eq!(status, 200, "{body}");
    assert!(h.stored().await.contains_key(id), "beta still serves it");
    assert_eq!(h.types_of("alpha").await, ["redis.redis.opstreelabs.in"]);
    assert_eq!(h.types_of("beta").await, [id]);

    // And from beta, the last cluster serving it: the record goes.
    let (status, body) = h.post(&json!({"cluster": "beta", "deletes": [id]})).await;
    assert_eq!(status, 200, "{body}");
    assert!(!h.stored().await.contains_key(id));
    assert!(h.types_of("beta").await.is_empty());
    assert_eq!(
        h.voyage.inputs(),
        embedded,
        "no embedding for membership changes"
    );
}
