//! `cw run` as a user runs it: the built binary against the simulator's demo cluster
//! (deploy/demo), with the embedded store in a temporary data directory and the local
//! model. Searches follow the cluster as objects are created, changed and deleted; SIGTERM
//! flushes what is pending and the store file reopens with everything acknowledged.
//!
//! Needs the local model: `cw model fetch` (or scripts/setup), or CW_MODEL_DIR.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{model_dir, start_demo_cluster, CwProcess};
use ingest::store::embedded::EmbeddedStore;
use ingest::store::VectorStore;
use serde_json::{json, Value};

const DEMO_NAMESPACE: &str = "data";

fn statefulset(name: &str, labels: Value, description: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {
            "name": name, "namespace": DEMO_NAMESPACE, "labels": labels,
            "annotations": {"description": description}
        },
        "spec": {
            "replicas": 1, "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "db", "image": "mongo:7"}]}}
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cw_run_indexes_the_cluster_follows_changes_and_flushes_on_sigterm() {
    let work = tempfile::tempdir().expect("temp dir");
    let data_dir = work.path().join("data");
    let (sim, kubeconfig) = start_demo_cluster(work.path()).await;
    let mut cw = CwProcess::run(&kubeconfig, &data_dir, work.path());
    cw.wait_ready().await;

    // The demo cluster is searchable: its PostgreSQL StatefulSet answers a database query.
    let databases = json!({"query": "postgres database", "kind": "StatefulSet", "limit": 3});
    cw.wait_search("the demo's PostgreSQL", databases, |hits| {
        hits.first().map(String::as_str) == Some("data/analytics-postgres")
    })
    .await;

    // One port serves both sets of operations endpoints.
    let ingest_metrics = cw.get_text("/metrics").await;
    assert!(
        ingest_metrics.contains("cw_ingest_instances_upserted"),
        "/metrics should be ingest's:\n{ingest_metrics}"
    );
    let watcher_metrics = cw.get_text("/watcher/metrics").await;
    assert!(
        watcher_metrics.contains("cw_watcher_events_seen"),
        "/watcher/metrics should be the watcher's:\n{watcher_metrics}"
    );
    let resync: Value = cw
        .http
        .post(format!("{}/watcher/api/v1/resync", cw.base))
        .send()
        .await
        .expect("resync request")
        .json()
        .await
        .expect("resync report");
    assert!(
        resync["listed"].as_u64().unwrap_or(0) > 30 && resync["deleted"] == 0,
        "a resync right after the start lists the demo cluster and finds nothing to delete: {resync}"
    );

    // Create: a new database appears in the answers.
    let mongo = json!({"query": "mongodb document database", "kind": "StatefulSet", "limit": 3});
    sim.create(statefulset(
        "orders-mongodb",
        json!({"app.kubernetes.io/name": "mongodb", "app.kubernetes.io/component": "database"}),
        "MongoDB replica set holding customer orders",
    ))
    .expect("create orders-mongodb");
    cw.wait_search("a created StatefulSet", mongo.clone(), |hits| {
        hits.iter().any(|h| h == "data/orders-mongodb")
    })
    .await;

    // Change: a new label is searchable by its exact filter.
    let tiered = json!({"query": "database", "labels": ["tier=gold"], "limit": 5});
    assert!(cw.search(tiered.clone()).await.is_empty());
    sim.patch(
        "apps/v1",
        "StatefulSet",
        Some(DEMO_NAMESPACE),
        "orders-mongodb",
        json!({"metadata": {"labels": {"tier": "gold"}}}),
    )
    .expect("label orders-mongodb");
    cw.wait_search("a changed label", tiered, |hits| {
        hits == ["data/orders-mongodb".to_string()]
    })
    .await;

    // Delete: it leaves the answers.
    sim.delete(
        "apps/v1",
        "StatefulSet",
        Some(DEMO_NAMESPACE),
        "orders-mongodb",
    )
    .expect("delete orders-mongodb");
    cw.wait_search("a deleted StatefulSet", mongo, |hits| {
        !hits.iter().any(|h| h == "data/orders-mongodb")
    })
    .await;

    // SIGTERM right after a change: the watcher flushes it into the store before exiting.
    sim.create(statefulset(
        "late-cassandra",
        json!({"app.kubernetes.io/name": "cassandra"}),
        "Cassandra ring created just before shutdown",
    ))
    .expect("create late-cassandra");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acknowledged = cw.stored_hashes().await;
    let late = "data/apps/v1/StatefulSet/late-cassandra";
    assert!(
        !acknowledged.contains_key(late),
        "the late change was stored before SIGTERM, so this run cannot show the flush"
    );
    let status = cw.terminate();
    assert!(
        status.success(),
        "cw run should exit 0 on SIGTERM, got {status}; its log:\n{}",
        cw.log_text()
    );

    let store = EmbeddedStore::open_in_dir(&data_dir).expect("the store file reopens");
    let stored: std::collections::HashMap<String, String> = store
        .all_hashes("instances", None)
        .await
        .expect("stored hashes")
        .into_iter()
        .map(|(id, hash)| (common::unqualified(&id), hash))
        .collect();
    for (id, hash) in &acknowledged {
        assert_eq!(
            stored.get(id),
            Some(hash),
            "{id} was acknowledged before SIGTERM but is not in the reopened store"
        );
    }
    assert!(
        stored.contains_key(late),
        "the change made just before SIGTERM was not flushed into the store; cw run's log:\n{}",
        cw.log_text()
    );
    assert!(
        !stored.contains_key("data/apps/v1/StatefulSet/orders-mongodb"),
        "the deleted StatefulSet is still stored"
    );
}

fn configmap(name: &str, description: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": DEMO_NAMESPACE,
                     "annotations": {"description": description}},
        "data": {"k": "v"}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cw_run_parks_an_object_the_provider_refuses_and_stores_the_20_created_with_it() {
    let work = tempfile::tempdir().expect("temp dir");
    let (sim, kubeconfig) = start_demo_cluster(work.path()).await;
    // An OpenAI-compatible server that refuses inputs over 6,000 characters, which cw's
    // OpenAI defaults (8,191 tokens an input) do not know.
    let provider = testkit::VoyageStandin::start().await;
    provider.refuse_inputs_longer_than(6_000);
    let mut cw = CwProcess::run_with(
        &kubeconfig,
        &work.path().join("data"),
        work.path(),
        &[
            ("CW_EMBEDDING_PROVIDER", "openai".into()),
            ("OPENAI_BASE_URL", provider.openai_base_url()),
            ("OPENAI_EMBEDDING_MODEL", "standin".into()),
        ],
    );
    cw.wait_ready().await;

    // 20 ConfigMaps and, created with them, one whose description is 40 KB.
    let huge = "settings for a very chatty team ".repeat(40 * 1024 / 32);
    for i in 0..10 {
        sim.create(configmap(&format!("settings-{i}"), "application settings"))
            .expect("create");
    }
    sim.create(configmap("huge", &huge)).expect("create huge");
    for i in 10..20 {
        sim.create(configmap(&format!("settings-{i}"), "application settings"))
            .expect("create");
    }
    let huge_id = format!("{DEMO_NAMESPACE}/v1/ConfigMap/huge");
    let settings = |hashes: &std::collections::HashMap<String, String>| {
        (0..20)
            .filter(|i| hashes.contains_key(&format!("{DEMO_NAMESPACE}/v1/ConfigMap/settings-{i}")))
            .count()
    };
    cw.wait_until("the 20 ConfigMaps stored", async |cw: &CwProcess| {
        settings(&cw.stored_hashes().await) == 20
    })
    .await;
    cw.wait_until("the huge ConfigMap parked", async |cw: &CwProcess| {
        let parked = cw.parked().await;
        parked.iter().any(|p| p["id"] == huge_id.as_str())
    })
    .await;
    assert!(!cw.stored_hashes().await.contains_key(&huge_id));
    assert!(
        cw.get_text("/metrics").await.contains("cw_ingest_parked 1"),
        "the parked gauge counts it"
    );
    assert!(
        !cw.log_text().contains("dropped"),
        "no batch was dropped; cw run's log:\n{}",
        cw.log_text()
    );

    // Its next change fits the model: stored, and no longer parked.
    sim.patch(
        "v1",
        "ConfigMap",
        Some(DEMO_NAMESPACE),
        "huge",
        json!({"metadata": {"annotations": {"description": "now short"}}}),
    )
    .expect("shorten the description");
    cw.wait_until("the shortened ConfigMap stored", async |cw: &CwProcess| {
        cw.stored_hashes().await.contains_key(&huge_id) && cw.parked().await.is_empty()
    })
    .await;
    assert!(cw.terminate().success());
}

/// Runs `cw run` with the model in `model_dir` and the store in `data_dir` (no cluster):
/// it must refuse to start; its stderr.
fn refused_cw_run(work: &Path, model_dir: &Path, data_dir: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_cw"))
        .arg("run")
        .env("CW_MODEL_DIR", model_dir)
        .env("CW_DATA_DIR", data_dir)
        .env("CW_PORT", testkit::free_port().to_string())
        .env("KUBECONFIG", work.join("no-kubeconfig"))
        .env_remove("CHROMA_URL")
        .env_remove("CW_EMBEDDING_PROVIDER")
        .output()
        .expect("running cw");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "cw run should refuse to start; stderr:\n{stderr}"
    );
    stderr
}

#[test]
fn cw_run_without_the_model_says_to_run_cw_model_fetch() {
    let work = tempfile::tempdir().expect("temp dir");
    let stderr = refused_cw_run(
        work.path(),
        &work.path().join("no-model"),
        &work.path().join("data"),
    );
    assert!(
        stderr.contains("cw model fetch"),
        "the error should name `cw model fetch`; stderr:\n{stderr}"
    );
}

#[tokio::test]
async fn cw_run_refuses_a_store_filled_by_another_model() {
    let work = tempfile::tempdir().expect("temp dir");
    let data_dir = work.path().join("data");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    {
        let store = EmbeddedStore::open_in_dir(&data_dir).expect("store");
        let other = ingest::embed::ModelInfo {
            id: "voyage:voyage-3.5".into(),
            dimension: 1024,
        };
        store
            .ensure_collection("instances", &other)
            .await
            .expect("collection filled by another model");
    }
    let stderr = refused_cw_run(work.path(), &model_dir(), &data_dir);
    assert!(
        stderr.contains("voyage:voyage-3.5") && stderr.contains("local:"),
        "the error should name both models; stderr:\n{stderr}"
    );
}
