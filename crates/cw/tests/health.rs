//! Health as a user meets it: `cw run` against the simulator, with the Voyage stand-in as
//! the embedding provider (it counts requests). A Deployment going from 1/3 to 3/3
//! available replicas, a failing Job, a Pod in CrashLoopBackOff and a custom resource with
//! Ready=False each show the right health and reason, a search filters on it, and a change
//! of health alone is stored without any embedding request.

mod common;

use common::CwRun;
use kube_sim::{SimConfig, SimServer};
use serde_json::{json, Value};

const NS: &str = "shop";

fn deployment(available: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS, "labels": {"app": "web"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}
        },
        "status": {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3,
                   "readyReplicas": available, "availableReplicas": available}
    })
}

fn failing_job() -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "migrate", "namespace": NS},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "migrate", "image": "shop/migrate:5"}]}}},
        "status": {"failed": 6, "conditions": [{"type": "Failed", "status": "True",
            "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}
    })
}

fn crashing_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "orders-0", "namespace": NS},
        "spec": {"containers": [{"name": "app", "image": "shop/orders:3"},
                                {"name": "db", "image": "postgres:16"}]},
        "status": {"phase": "Running", "containerStatuses": [
            {"name": "app", "ready": true, "restartCount": 0, "image": "shop/orders:3", "imageID": "",
             "state": {"running": {}}},
            {"name": "db", "ready": false, "restartCount": 7, "image": "postgres:16", "imageID": "",
             "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}}}]}
    })
}

fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "caches.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "caches", "singular": "cache", "kind": "Cache", "listKind": "CacheList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    })
}

fn cache(ready: &str) -> Value {
    json!({
        "apiVersion": "example.com/v1", "kind": "Cache",
        "metadata": {"name": "sessions", "namespace": NS},
        "spec": {"size": "1Gi"},
        "status": {"conditions": [{"type": "Ready", "status": ready,
            "reason": "NoQuorum", "message": "1 of 3 members reachable"}]}
    })
}

/// Creates `obj` and then writes its status through the status subresource, as a
/// controller would.
fn create_with_status(sim: &kube_sim::SimHandle, obj: Value) {
    let mut spec_only = obj.clone();
    spec_only.as_object_mut().expect("object").remove("status");
    sim.apply(spec_only).expect("apply");
    sim.update_status(obj).expect("status");
}

/// Hits of a keyword search (no embedding request) by health, as (name, status, reason).
async fn by_health(cw: &CwRun, health: &str) -> Vec<(String, String, String)> {
    let answer = cw
        .post_json(
            "/api/v1/search",
            json!({"query": "", "mode": "keyword", "namespace": NS, "health": health, "limit": 50}),
        )
        .await;
    let mut hits: Vec<(String, String, String)> = answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|h| {
            (
                h["name"].as_str().unwrap_or_default().to_string(),
                h["health"]["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                h["health"]["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    hits.sort();
    hits
}

/// `cw ask` through the API.
async fn ask(cw: &CwRun, question: &str) -> Value {
    cw.post_json(
        "/api/v1/search",
        json!({"query": question, "ask": true, "limit": 10}),
    )
    .await
}

/// The names of an answer's objects, best first for one type, sorted across types when
/// there are several (their order across types is by score, which a stand-in's vectors
/// make arbitrary).
fn answer_names(answer: &Value) -> Vec<String> {
    let types = answer["types"].as_array().cloned().unwrap_or_default();
    let mut names: Vec<String> = types
        .iter()
        .flat_map(|t| t["instances"].as_array().cloned().unwrap_or_default())
        .filter_map(|i| i["name"].as_str().map(str::to_string))
        .collect();
    if types.len() > 1 {
        names.sort();
    }
    names
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_read_filtered_and_a_change_of_health_alone_costs_no_embedding() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let work = tempfile::tempdir().expect("temp dir");
    let sim = SimServer::start(SimConfig::default())
        .await
        .expect("starting kube-sim");
    let kubeconfig = work.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    sim.apply(widget_crd()).expect("CRD");
    create_with_status(&sim, deployment(1));
    create_with_status(&sim, failing_job());
    create_with_status(&sim, crashing_pod());
    create_with_status(&sim, cache("False"));

    let voyage = testkit::VoyageStandin::start().await;
    let mut cw = CwRun::start_with(
        &kubeconfig,
        &work.path().join("data"),
        work.path(),
        &[
            ("CW_EMBEDDING_PROVIDER", "voyage".into()),
            ("VOYAGE_API_KEY", "test-key".into()),
            ("VOYAGE_BASE_URL", voyage.base_url()),
        ],
    );
    cw.wait_ready().await;

    let failed = vec![
        (
            "migrate".to_string(),
            "Failed".to_string(),
            "BackoffLimitExceeded: Job has reached the specified backoff limit".to_string(),
        ),
        (
            "orders-0".to_string(),
            "Failed".to_string(),
            "CrashLoopBackOff: container db".to_string(),
        ),
        (
            "sessions".to_string(),
            "Failed".to_string(),
            "Ready=False: NoQuorum: 1 of 3 members reachable".to_string(),
        ),
    ];
    cw.wait_until("the three failing objects", async |cw: &CwRun| {
        by_health(cw, "failed").await == failed
    })
    .await;
    assert_eq!(
        by_health(&cw, "in-progress").await,
        vec![(
            "web".to_string(),
            "InProgress".to_string(),
            "1/3 replicas available".to_string()
        )]
    );
    // Images are part of the document text, the one an embedding model reads.
    let hits = cw
        .post_json(
            "/api/v1/search",
            json!({"query": "", "mode": "keyword", "namespace": NS, "kind": "Pod"}),
        )
        .await;
    let documents: Vec<&str> = hits["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|h| h["document"].as_str())
        .collect();
    assert!(
        documents
            .iter()
            .any(|d| d.contains("images: postgres:16, shop/orders:3")),
        "{documents:?}"
    );

    // A question about health is answered by the objects of that health that answer it:
    // the crashing PostgreSQL Pod is an unhealthy database; the failing Job, the failing
    // cache and the Deployment rolling out are unhealthy but no databases.
    let answer = ask(&cw, "are any databases unhealthy?").await;
    assert_eq!(
        answer["health"],
        json!(["Failed", "InProgress"]),
        "{answer:#}"
    );
    assert_eq!(answer_names(&answer), ["orders-0"], "{answer:#}");
    // A question that names nothing but health: every unhealthy object.
    let answer = ask(&cw, "is anything failing?").await;
    assert_eq!(
        answer_names(&answer),
        ["migrate", "orders-0", "sessions", "web"],
        "{answer:#}"
    );

    // The fleet's summary counts the same healths, for the one cluster.
    let fleet: Value =
        serde_json::from_str(&cw.get_text("/api/v1/clusters").await).expect("clusters JSON");
    let clusters = fleet["clusters"].as_array().expect("clusters");
    assert_eq!(clusters.len(), 1, "{fleet:#}");
    assert_eq!(clusters[0]["health"]["Failed"], 3, "{fleet:#}");
    assert_eq!(clusters[0]["health"]["InProgress"], 1, "{fleet:#}");
    let counted: u64 = clusters[0]["health"]
        .as_object()
        .expect("health counts")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert!(
        counted <= clusters[0]["objects"].as_u64().expect("objects"),
        "{fleet:#}"
    );

    // Health alone changes: the Deployment becomes available and the cache ready.
    let embedded_before = voyage.inputs();
    let requests_before = voyage.requests();
    sim.update_status(deployment(3)).expect("status");
    sim.update_status(cache("True")).expect("status");
    cw.wait_until("the Deployment current", async |cw: &CwRun| {
        by_health(cw, "current")
            .await
            .iter()
            .any(|(n, _, r)| n == "web" && r == "3/3 replicas available")
    })
    .await;
    cw.wait_until("the cache no longer failing", async |cw: &CwRun| {
        by_health(cw, "failed").await.len() == 2
    })
    .await;
    assert_eq!(
        (voyage.requests(), voyage.inputs()),
        (requests_before, embedded_before),
        "a change of health alone made embedding requests"
    );
    let metrics = cw.get_text("/metrics").await;
    assert!(
        metric(&metrics, "cw_ingest_metadata_updates_total") >= 2.0,
        "both were rewritten with their stored vectors:\n{metrics}"
    );

    // Nothing about nginx is unhealthy any more: the answer says so, with the answers of
    // any health.
    let answer = ask(&cw, "is nginx unhealthy?").await;
    assert_eq!(answer["noneWithHealth"], json!(true), "{answer:#}");
    assert_eq!(
        answer_names(&answer).first().map(String::as_str),
        Some("web"),
        "{answer:#}"
    );

    // A new image is a real change: it is embedded.
    let embedded_before = voyage.inputs();
    let mut upgraded = deployment(3);
    upgraded["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    upgraded.as_object_mut().expect("object").remove("status");
    sim.apply(upgraded).expect("apply");
    cw.wait_until("the new image embedded", async |_: &CwRun| {
        voyage.inputs() > embedded_before
    })
    .await;
    cw.terminate();
}
