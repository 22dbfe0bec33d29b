//! The sync contract end to end: the real ingest router on a free port, a real Chroma (the
//! Qdrant test server when run as sync_api_qdrant), the real Voyage client against the
//! stand-in. Mirrors what the Go controller expects: 200 for
//! valid, empty and mixed payloads; 4xx (no retry) for malformed JSON, schema violations and
//! wrong types; 5xx (retry) while Chroma or the provider is down.

mod common;

use std::time::Duration;

use common::{deployments, id_of, instance, Harness};
use ingest::server::ServerConfig;
use serde_json::{json, Value};
use testkit::Failure;

const GO_PAYLOAD: &str = r#"{"upserts":[{"id":"default/apps/v1/Deployment/nginx","namespace":"default","name":"nginx","kind":"Deployment","apiVersion":"apps/v1","apiGroup":"apps","labels":{"app":"nginx"},"annotations":{"description":"Main web server"},"createdAt":"2026-02-20T10:00:00Z"}],"deletes":["default/apps/v1/Deployment/old-service"]}"#;

#[tokio::test]
async fn the_go_controllers_payload_is_stored_with_its_text_and_metadata() {
    let h = Harness::start().await;
    let (status, body) = h.post_raw(GO_PAYLOAD, "application/json").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"status": "ok", "upserted": 1, "deleted": 1}));

    let stored = h.stored().await;
    let (doc, meta) = &stored["default/apps/v1/Deployment/nginx"];
    assert_eq!(
        doc,
        "Deployment nginx | namespace: default | apiVersion: apps/v1 | labels: app=nginx | Main web server"
    );
    assert_eq!(meta["namespace"], "default");
    assert_eq!(meta["name"], "nginx");
    assert_eq!(meta["kind"], "Deployment");
    assert_eq!(meta["apiVersion"], "apps/v1");
    assert_eq!(meta["apiGroup"], "apps");
    assert_eq!(meta["createdAt"], "2026-02-20T10:00:00Z");
    assert_eq!(meta["label.app"], "nginx");
    let expected: sync_model::SyncPayload = serde_json::from_str(GO_PAYLOAD).unwrap();
    assert_eq!(meta["cw_content_hash"], expected.upserts[0].content_hash());
    assert_eq!(stored.len(), 1);
}

#[tokio::test]
async fn labels_are_filterable_by_key_and_value_in_the_store() {
    let h = Harness::start().await;
    let payload = json!({"upserts": [
        instance("shop", "Deployment", "web", json!({"app": "web", "tier": "frontend"})),
        instance("shop", "StatefulSet", "db", json!({"app": "postgres", "tier": "data"})),
    ], "deletes": []});
    assert_eq!(h.post_sync(&payload).await.0, 200);
    use ingest::store::{Filter, VectorStore};
    let hits = h
        .store
        .get(
            common::COLLECTION,
            Some(&Filter::Eq("label.tier".into(), "data".into())),
            10,
        )
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    // Stored under the default cluster: a payload without `cluster` belongs to it.
    assert_eq!(
        hits[0].id,
        format!("default:{}", id_of("shop", "StatefulSet", "db"))
    );
}

#[tokio::test]
async fn deletes_remove_documents() {
    let h = Harness::start().await;
    let docs = deployments("team-a", 3);
    assert_eq!(h.post_sync(&json!({"upserts": docs})).await.0, 200);
    assert_eq!(h.stored().await.len(), 3);
    let gone = docs[1]["id"].clone();
    let (status, body) = h.post_sync(&json!({"deletes": [gone]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deleted"], 1);
    let stored = h.stored().await;
    assert_eq!(stored.len(), 2);
    assert!(!stored.contains_key(gone.as_str().unwrap()));
}

#[tokio::test]
async fn delete_then_upsert_of_the_same_id_in_one_payload_leaves_it_present() {
    let h = Harness::start().await;
    let web = instance("shop", "Deployment", "web", json!({"app": "web"}));
    assert_eq!(h.post_sync(&json!({"upserts": [web.clone()]})).await.0, 200);

    // Recreated with a new label: it is deleted and upserted in the same batch.
    let recreated = instance("shop", "Deployment", "web", json!({"app": "web", "v": "2"}));
    let (status, body) = h
        .post_sync(&json!({"upserts": [recreated], "deletes": [web["id"]]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"status": "ok", "upserted": 1, "deleted": 0}));
    let stored = h.stored().await;
    assert_eq!(stored[web["id"].as_str().unwrap()].1["label.v"], "2");

    // Unchanged and both deleted and upserted: still present.
    let same = instance("shop", "Deployment", "web", json!({"app": "web", "v": "2"}));
    assert_eq!(
        h.post_sync(&json!({"upserts": [same], "deletes": [web["id"]]}))
            .await
            .0,
        200
    );
    assert!(h.stored().await.contains_key(web["id"].as_str().unwrap()));
}

#[tokio::test]
async fn of_duplicate_ids_in_one_batch_the_last_one_wins() {
    let h = Harness::start().await;
    let first = instance("shop", "Deployment", "web", json!({"version": "1"}));
    let last = instance("shop", "Deployment", "web", json!({"version": "2"}));
    let (status, body) = h.post_sync(&json!({"upserts": [first, last]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["upserted"], 1);
    let stored = h.stored().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[&id_of("shop", "Deployment", "web")].1["label.version"],
        "2"
    );
}

#[tokio::test]
async fn null_labels_annotations_and_lists_are_accepted() {
    let h = Harness::start().await;
    let body = r#"{"upserts":[{"id":"_cluster/v1/Node/worker-1","namespace":"_cluster","name":"worker-1","kind":"Node","apiVersion":"v1","apiGroup":"","labels":null,"annotations":null,"createdAt":"2026-02-20T10:00:00Z"}],"deletes":null}"#;
    let (status, resp) = h.post_raw(body, "application/json").await;
    assert_eq!(status, 200, "{resp}");
    let stored = h.stored().await;
    assert_eq!(
        stored["_cluster/v1/Node/worker-1"].0,
        "Node worker-1 | cluster-scoped | apiVersion: v1"
    );
    let (status, _) = h
        .post_raw(r#"{"upserts":null,"deletes":null}"#, "application/json")
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_empty_payload_answers_200_without_embedding_or_instance_writes() {
    let h = Harness::start().await;
    for body in [r#"{}"#, r#"{"upserts":[],"deletes":[]}"#] {
        let (status, resp) = h.post_raw(body, "application/json").await;
        assert_eq!(status, 200, "{resp}");
        assert_eq!(resp, json!({"status": "ok", "upserted": 0, "deleted": 0}));
    }
    assert_eq!(h.voyage.requests(), 0);
    assert_eq!(
        h.store
            .upsert_calls
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    // An empty payload is a watcher's heartbeat: it records the cluster's last contact.
    let records = h.store_server.dump("instances-clusters").await;
    assert!(
        records["default"].1["cw_last_contact"].is_string(),
        "{records:?}"
    );
    assert_eq!(
        h.store
            .delete_calls
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    // Not even the collection was created.
    assert!(!h.store_server.has_collection(common::COLLECTION).await);
}

#[tokio::test]
async fn an_unchanged_resend_makes_zero_embedding_requests_and_zero_vector_writes() {
    let h = Harness::start().await;
    let payload = json!({"upserts": deployments("prod", 120)});
    assert_eq!(h.post_sync(&payload).await.0, 200);
    assert_eq!(h.voyage.inputs(), 120);
    assert_eq!(
        h.voyage.requests(),
        1,
        "120 changed documents are embedded in one call"
    );
    assert_eq!(h.store.upserted_rows(), 120);

    h.voyage.reset_stats();
    let (status, body) = h.post_sync(&payload).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["upserted"], 120);
    assert_eq!(
        h.voyage.requests(),
        0,
        "an unchanged re-send must not call the provider"
    );
    assert_eq!(
        h.store.upserted_rows(),
        120,
        "and must not rewrite any vector"
    );

    // One changed label: exactly one document is embedded and written again.
    let mut changed = deployments("prod", 120);
    changed[7]["labels"]["tier"] = json!("api");
    assert_eq!(h.post_sync(&json!({"upserts": changed})).await.0, 200);
    assert_eq!(h.voyage.inputs(), 1);
    assert_eq!(h.store.upserted_rows(), 121);
}

#[tokio::test]
async fn changed_documents_are_embedded_in_as_few_calls_as_voyages_limit_allows() {
    let h = Harness::start().await;
    let (status, body) = h
        .post_sync(&json!({"upserts": deployments("big", 2_500)}))
        .await;
    assert_eq!(status, 200, "{body}");
    let stats = h.voyage.stats();
    assert_eq!(stats.inputs, 2_500);
    assert_eq!(stats.requests, 3, "1,000 inputs per request at most");
    assert_eq!(stats.max_inputs_per_request, 1_000);
    assert_eq!(stats.base64_requests, 3);
    assert_eq!(stats.document_inputs, 2_500);
    assert_eq!(h.stored().await.len(), 2_500);
}

#[tokio::test]
async fn malformed_json_is_a_400_naming_the_problem() {
    let h = Harness::start().await;
    let (status, body) = h
        .post_raw(r#"{"upserts": [ {"id": "#, "application/json")
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not a valid sync payload"),
        "{body}"
    );
    assert!(!body["details"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn wrong_types_are_a_400_naming_the_field() {
    let h = Harness::start().await;
    let mut bad = instance("shop", "Deployment", "web", json!({}));
    bad["labels"] = json!(["not", "a", "map"]);
    let (status, body) = h.post_sync(&json!({"upserts": [bad]})).await;
    assert_eq!(status, 400);
    assert_eq!(body["details"][0]["field"], "upserts[0].labels", "{body}");
    let (status, _) = h.post_raw(r#"{"deletes": [42]}"#, "application/json").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_schema_violation_is_a_400_that_leaves_the_store_exactly_as_it_was() {
    let h = Harness::start().await;
    assert_eq!(
        h.post_sync(&json!({"upserts": deployments("keep", 5)}))
            .await
            .0,
        200
    );
    let before = h.stored().await;
    h.voyage.reset_stats();

    let mut upserts = deployments("new", 3);
    upserts[2]["namespace"] = json!("Not_A_Namespace");
    let keep0 = deployments("keep", 1)[0]["id"].clone();
    let (status, body) = h
        .post_sync(&json!({"upserts": upserts, "deletes": [keep0, "nonsense"]}))
        .await;
    assert_eq!(status, 400, "{body}");
    let fields: Vec<&str> = body["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert!(fields.contains(&"upserts[2].namespace"), "{fields:?}");
    assert!(fields.contains(&"deletes[1]"), "{fields:?}");
    assert_eq!(h.stored().await, before, "nothing may change on a 400");
    assert_eq!(h.voyage.requests(), 0);
}

#[tokio::test]
async fn a_wrong_content_type_is_a_415_and_stores_nothing() {
    let h = Harness::start().await;
    let (status, body) = h.post_raw(GO_PAYLOAD, "text/plain").await;
    assert_eq!(status, 415, "{body}");
    assert!(body["error"].as_str().unwrap().contains("application/json"));
    let (status, _) = h
        .post_raw(GO_PAYLOAD, "application/x-www-form-urlencoded")
        .await;
    assert_eq!(status, 415);
    assert!(h.stored().await.is_empty());
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_and_the_default_fits_5000_instances() {
    let h = Harness::start_with(ServerConfig {
        max_body_bytes: 4_096,
        ..ServerConfig::default()
    })
    .await;
    let (status, body) = h.post_sync(&json!({"upserts": deployments("x", 40)})).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("4096"));

    // 5,000 realistic instances, each with a few labels and a description.
    let many: Vec<Value> = (0..5_000)
        .map(|i| {
            instance(
                "payments",
                "Deployment",
                &format!("service-{i}"),
                json!({"app.kubernetes.io/name": format!("service-{i}"), "app.kubernetes.io/part-of": "payments", "team": "checkout", "environment": "production"}),
            )
        })
        .collect();
    let size = json!({"upserts": many}).to_string().len();
    assert!(
        size < ingest::server::DEFAULT_MAX_BODY_BYTES,
        "{size} bytes"
    );
}

#[tokio::test]
async fn while_the_store_is_down_syncs_answer_503_and_the_same_payload_is_accepted_once_it_is_back()
{
    let mut h = Harness::start().await;
    assert_eq!(
        h.post_sync(&json!({"upserts": deployments("a", 2)}))
            .await
            .0,
        200
    );

    h.store_server.stop();
    let payload =
        json!({"upserts": deployments("b", 3), "deletes": [id_of("a", "Deployment", "app-0")]});
    let (status, body) = h.post_sync(&payload).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].as_str().unwrap().contains("retry"), "{body}");
    assert_eq!(h.get("/readyz").await.0, 503);
    assert_eq!(h.get("/healthz").await.0, 200);

    h.store_server.restart();
    assert_eq!(h.get("/readyz").await.0, 200);
    let (status, body) = h.post_sync(&payload).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        h.stored_ids().await,
        [
            id_of("a", "Deployment", "app-1"),
            id_of("b", "Deployment", "app-0"),
            id_of("b", "Deployment", "app-1"),
            id_of("b", "Deployment", "app-2"),
        ]
    );
}

#[tokio::test]
async fn a_failing_provider_answers_503_changes_nothing_and_a_retry_leaves_exactly_the_intended_state(
) {
    let h = Harness::start().await;
    let old = deployments("a", 2);
    assert_eq!(h.post_sync(&json!({"upserts": old})).await.0, 200);
    let before = h.stored().await;

    h.voyage.go_down(503);
    let payload =
        json!({"upserts": deployments("b", 2), "deletes": [id_of("a", "Deployment", "app-0")]});
    let (status, body) = h.post_sync(&payload).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        h.stored().await,
        before,
        "embeddings are computed before any write"
    );

    h.voyage.recover();
    assert_eq!(h.post_sync(&payload).await.0, 200);
    assert_eq!(
        h.stored_ids().await,
        [
            id_of("a", "Deployment", "app-1"),
            id_of("b", "Deployment", "app-0"),
            id_of("b", "Deployment", "app-1"),
        ]
    );
}

#[tokio::test]
async fn rate_limits_are_retried_after_the_providers_retry_after() {
    let h = Harness::start().await;
    h.voyage.fail_next(
        1,
        Failure::RateLimited {
            retry_after_secs: 1,
        },
    );
    let started = std::time::Instant::now();
    let (status, body) = h.post_sync(&json!({"upserts": deployments("a", 2)})).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );
    assert_eq!(h.voyage.stats().failed, 1);
    assert_eq!(h.voyage.stats().requests, 2);
}

#[tokio::test]
async fn hashes_lists_every_stored_id_with_its_content_hash() {
    let h = Harness::start().await;
    let docs = deployments("a", 3);
    assert_eq!(h.post_sync(&json!({"upserts": docs.clone()})).await.0, 200);
    let (status, body) = h.get("/api/v1/instances/hashes").await;
    assert_eq!(status, 200, "{body}");
    let hashes = body["hashes"].as_object().unwrap();
    assert_eq!(hashes.len(), 3);
    for d in docs {
        let i: sync_model::ResourceInstance = serde_json::from_value(d).unwrap();
        assert_eq!(hashes[i.id.as_str()], i.content_hash());
    }
}

#[tokio::test]
async fn with_a_token_everything_but_the_probes_needs_the_bearer() {
    let h = Harness::start_with(ServerConfig {
        auth_token: Some("s3cret".into()),
        ..ServerConfig::default()
    })
    .await;
    let (status, body) = h.post_raw(GO_PAYLOAD, "application/json").await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].as_str().unwrap().contains("bearer"));
    assert_eq!(h.get("/api/v1/instances/hashes").await.0, 401);
    for (token, want) in [("s3cre", 401), ("s3cret", 200)] {
        let answer = h
            .http
            .post(format!("{}/api/v1/instances/sync", h.url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(GO_PAYLOAD)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), want, "token {token}");
    }
    assert_eq!(h.get("/healthz").await.0, 200);
    assert_eq!(h.get("/readyz").await.0, 200);
}

#[tokio::test]
async fn on_shutdown_readiness_fails_and_in_flight_syncs_finish() {
    let mut h = Harness::start().await;
    assert_eq!(h.get("/readyz").await.0, 200);
    h.voyage.set_delay(Duration::from_millis(1_500));
    let http = h.http.clone();
    let url = format!("{}/api/v1/instances/sync", h.url);
    let in_flight = tokio::spawn(async move {
        http.post(url)
            .header("content-type", "application/json")
            .body(json!({"upserts": deployments("late", 2)}).to_string())
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.trigger_shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(h.state.is_shutting_down());
    assert_eq!(
        in_flight.await.unwrap().unwrap(),
        200,
        "the in-flight sync completes"
    );
    let server = h.server.take().unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server exits after draining")
        .unwrap()
        .unwrap();
    assert_eq!(h.stored().await.len(), 2);
    assert!(
        h.http
            .get(format!("{}/healthz", h.url))
            .send()
            .await
            .is_err(),
        "no new connections after shutdown"
    );
}

#[tokio::test]
async fn metrics_count_embeddings_requested_and_skipped() {
    let h = Harness::start().await;
    let payload = json!({"upserts": deployments("m", 4)});
    assert_eq!(h.post_sync(&payload).await.0, 200);
    assert_eq!(h.post_sync(&payload).await.0, 200);
    let (status, metrics) = h.get("/metrics").await;
    assert_eq!(status, 200);
    let text = metrics.as_str().expect("the metrics as text");
    assert!(
        text.contains("cw_ingest_embeddings_requested_total 4"),
        "{text}"
    );
    assert!(
        text.contains("cw_ingest_embeddings_skipped_total 4"),
        "{text}"
    );
    assert!(
        text.contains("cw_ingest_sync_requests_total{outcome=\"ok\"} 2"),
        "{text}"
    );
}

/// `POST /api/v1/instances/sync` with `token`: the status and the JSON answer.
async fn sync_as(h: &Harness, token: &str, body: &Value) -> (u16, Value) {
    let resp = h
        .http
        .post(format!("{}/api/v1/instances/sync", h.url))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_clusters_token_writes_only_its_cluster_and_the_file_is_reread_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens");
    std::fs::write(
        &path,
        "# token  may write\ntok-alpha alpha\ntok-beta beta\ntok-search read-only\n",
    )
    .unwrap();
    let file = ingest::server::credentials::TokensFile::open(&path).unwrap();
    let h = Harness::start_with(ServerConfig {
        tokens_file: Some(std::sync::Arc::new(file)),
        ..ServerConfig::default()
    })
    .await;
    let nginx = instance("default", "Deployment", "nginx", json!({"app": "nginx"}));
    let upsert = |cluster: &str| json!({"cluster": cluster, "upserts": [nginx.clone()]});
    assert_eq!(sync_as(&h, "tok-alpha", &upsert("alpha")).await.0, 200);
    assert_eq!(sync_as(&h, "tok-beta", &upsert("beta")).await.0, 200);
    let before = h.stored().await;
    assert_eq!(before.len(), 2);

    // Alpha's token writing or deleting beta's object: 403, nothing changed.
    let mut changed = nginx.clone();
    changed["labels"] = json!({"app": "hijacked"});
    let (status, body) = sync_as(
        &h,
        "tok-alpha",
        &json!({"cluster": "beta", "upserts": [changed]}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("\"beta\""),
        "{body}"
    );
    let id = id_of("default", "Deployment", "nginx");
    let (status, _) = sync_as(
        &h,
        "tok-alpha",
        &json!({"cluster": "beta", "deletes": [id]}),
    )
    .await;
    assert_eq!(status, 403);
    // Without a cluster the payload is the default cluster's, which alpha may not write.
    let (status, _) = sync_as(&h, "tok-alpha", &json!({"deletes": [id]})).await;
    assert_eq!(status, 403);
    // The read-only token searches but writes nothing; an unknown token is 401.
    let (status, _) = sync_as(&h, "tok-search", &upsert("alpha")).await;
    assert_eq!(status, 403);
    let search = h
        .http
        .post(format!("{}/api/v1/search", h.url))
        .bearer_auth("tok-search")
        .json(&json!({"query": "nginx", "mode": "keyword"}))
        .send()
        .await
        .unwrap();
    assert_eq!(search.status().as_u16(), 200);
    assert_eq!(sync_as(&h, "tok-gamma", &upsert("gamma")).await.0, 401);
    assert_eq!(
        h.stored().await,
        before,
        "no refused request changed the store"
    );

    // A token added to the file works at once; a removed one no longer does.
    std::fs::write(&path, "tok-alpha alpha\ntok-gamma gamma\n").unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(later)
        .unwrap();
    assert_eq!(sync_as(&h, "tok-gamma", &upsert("gamma")).await.0, 200);
    assert_eq!(sync_as(&h, "tok-beta", &upsert("beta")).await.0, 401);
    // The owner deletes its own object.
    let (status, body) = sync_as(
        &h,
        "tok-alpha",
        &json!({"cluster": "alpha", "deletes": [id]}),
    )
    .await;
    assert_eq!((status, body["deleted"].clone()), (200, json!(1)));
    let after = h.stored().await;
    assert!(after.contains_key(&format!("beta:{id}")));
    assert!(!after.contains_key(&format!("alpha:{id}")));
}
