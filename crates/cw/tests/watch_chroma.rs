//! The watcher against the whole real chain: kube-sim → watcher → HTTP → the ingest server's
//! router (as `cw serve` runs it) → the real Voyage client against the stand-in → a real
//! Chroma. Every assertion reads Chroma itself, so what is checked is what a search sees.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::ingest_server::COLLECTION;
use common::watch::{self, Watching};
use ingest::server::ServerConfig;
use ingest::store::chroma::{ChromaConfig, ChromaStore};
use ingest::store::{MetaValue, VectorStore};
use kube_sim::{SimConfig, SimHandle, SimServer};
use serde_json::{json, Value};
use testkit::{ChromaServer, VoyageStandin};
use watcher::HttpSink;

/// Debounce window plus embedding and Chroma's write, with room for a loaded machine.
const SOON: Duration = Duration::from_secs(15);

struct Chain {
    sim: SimHandle,
    chroma: ChromaServer,
    _voyage: VoyageStandin,
    store: ChromaStore,
    /// The ingest server's sync URL.
    url: String,
    types: Vec<&'static str>,
    watching: Watching,
}

/// A watcher for `types` sending to `url`, once it is ready.
async fn start_watcher(sim: &SimHandle, url: &str, types: &[&str]) -> Watching {
    let settings = watch::settings(
        types,
        Duration::from_millis(400),
        Duration::from_millis(200),
    );
    let sink = HttpSink::new(url, None, Duration::from_secs(15)).unwrap();
    watch::start(sim, sink, settings).await
}

impl Chain {
    async fn start(types: &[&'static str]) -> Chain {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let sim = SimServer::start(SimConfig::default()).await.unwrap();
        let chroma = tokio::task::spawn_blocking(ChromaServer::start)
            .await
            .unwrap();
        let voyage = VoyageStandin::start().await;
        let chroma_config = || {
            let mut c = ChromaConfig::new(chroma.url());
            c.timeout = Duration::from_secs(10);
            c
        };
        let store = Arc::new(ChromaStore::new(chroma_config()).unwrap());
        let base = common::ingest_server::serve(store, &voyage, ServerConfig::default()).await;
        let url = format!("{base}/api/v1/instances/sync");
        let watching = start_watcher(&sim, &url, types).await;
        Chain {
            sim,
            store: ChromaStore::new(chroma_config()).unwrap(),
            chroma,
            _voyage: voyage,
            url,
            types: types.to_vec(),
            watching,
        }
    }

    /// `namespace/name` → labels of every document of `kind` in Chroma.
    async fn chroma_view(&self, kind: &str) -> BTreeMap<String, BTreeMap<String, String>> {
        let filter = ingest::store::Filter::Eq("kind".into(), kind.into());
        let Ok(hits) = self.store.get(COLLECTION, Some(&filter), 10_000).await else {
            return BTreeMap::new();
        };
        hits.into_iter()
            .map(|h| {
                let text = |k: &str| match h.metadata.get(k) {
                    Some(MetaValue::Str(s)) => s.clone(),
                    _ => String::new(),
                };
                let labels = ingest::document::labels_of(&h.metadata);
                (format!("{}/{}", text("namespace"), text("name")), labels)
            })
            .collect()
    }

    /// The same view of the simulator's objects.
    fn cluster_view(
        &self,
        api_version: &str,
        kind: &str,
    ) -> BTreeMap<String, BTreeMap<String, String>> {
        self.sim.labels_by_name(api_version, kind).unwrap()
    }

    fn create_deployment(&self, name: &str, labels: Value) {
        self.sim.create(deployment(name, labels)).unwrap();
    }

    /// Sets `labels` on Deployment `name` (a JSON merge patch).
    fn label_deployment(&self, name: &str, labels: Value) {
        let patch = json!({"metadata": {"labels": labels}});
        self.sim
            .patch("apps/v1", "Deployment", Some("default"), name, patch)
            .unwrap();
    }

    fn delete_deployment(&self, name: &str) {
        self.sim
            .delete("apps/v1", "Deployment", Some("default"), name)
            .unwrap();
    }

    async fn wait_deployments_in_chroma(&self, what: &str) {
        self.wait_chroma_equals_cluster("apps/v1", "Deployment", what)
            .await;
    }

    async fn wait_chroma_equals_cluster(&self, api_version: &str, kind: &str, what: &str) {
        let deadline = tokio::time::Instant::now() + SOON;
        loop {
            let want = self.cluster_view(api_version, kind);
            let have = self.chroma_view(kind).await;
            if want == have {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("{what}: Chroma never equalled the cluster for {kind}\ncluster: {want:#?}\nChroma: {have:#?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn stop(mut self) {
        self.watching.stop().await;
    }

    /// Stops the watcher (as SIGTERM does: pending changes are flushed), runs `meanwhile`,
    /// then starts a new watcher against the same ingest server and Chroma.
    async fn restart_watcher(&mut self, meanwhile: impl FnOnce(&SimHandle)) {
        self.watching.stop().await;
        meanwhile(&self.sim);
        self.watching = start_watcher(&self.sim, &self.url, &self.types).await;
    }

    /// Ids of the documents of `kind` in Chroma.
    async fn chroma_ids(&self, kind: &str) -> Vec<String> {
        let filter = ingest::store::Filter::Eq("kind".into(), kind.into());
        let hits = self
            .store
            .get(COLLECTION, Some(&filter), 10_000)
            .await
            .unwrap();
        // Stored ids are `<cluster>:<id>`; the watcher here names no cluster (the default).
        let mut ids: Vec<String> = hits
            .into_iter()
            .map(|h| {
                sync_model::split_stored_id(&h.id)
                    .map(|(_, id)| id.to_string())
                    .unwrap_or(h.id)
            })
            .collect();
        ids.sort();
        ids
    }
}

fn deployment(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_reaches_chroma_follows_a_label_change_and_leaves_when_deleted() {
    let chain = Chain::start(&["deployments"]).await;
    chain.create_deployment("web", json!({"app": "web", "tier": "frontend"}));
    chain.wait_deployments_in_chroma("created").await;
    assert_eq!(
        chain.chroma_view("Deployment").await["default/web"]["tier"],
        "frontend"
    );

    chain.label_deployment("web", json!({"tier": "backend"}));
    chain.wait_deployments_in_chroma("label changed").await;
    assert_eq!(
        chain.chroma_view("Deployment").await["default/web"]["tier"],
        "backend"
    );

    chain.delete_deployment("web");
    chain.wait_deployments_in_chroma("deleted").await;
    assert!(chain.chroma_view("Deployment").await.is_empty());
    chain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_of_a_crd_created_after_start_reach_chroma_and_leave_with_the_crd() {
    let chain = Chain::start(&[]).await;
    chain
        .sim
        .create(kube_sim::custom_resource_definition(
            "example.com",
            "Widget",
            "widgets",
        ))
        .unwrap();
    for name in ["a", "b"] {
        let obj = json!({"apiVersion": "example.com/v1", "kind": "Widget",
                         "metadata": {"name": name, "namespace": "default", "labels": {"w": name}}});
        let mut created = false;
        for _ in 0..50 {
            if chain.sim.create(obj.clone()).is_ok() {
                created = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(created, "the simulator never served widgets");
    }
    chain
        .wait_chroma_equals_cluster("example.com/v1", "Widget", "CRD created")
        .await;
    assert_eq!(chain.chroma_view("Widget").await.len(), 2);

    chain
        .sim
        .delete(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
            "widgets.example.com",
        )
        .unwrap();
    let deadline = tokio::time::Instant::now() + SOON;
    while !chain.chroma_view("Widget").await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "widgets stayed in Chroma after their CRD was deleted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    chain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_while_chroma_is_down_are_in_chroma_once_it_is_back() {
    let mut chain = Chain::start(&["deployments"]).await;
    chain.chroma.stop();
    for i in 0..12 {
        chain.create_deployment(&format!("d{i}"), json!({"gen": "1"}));
    }
    for i in 0..4 {
        chain.label_deployment(&format!("d{i}"), json!({"gen": "2"}));
    }
    chain.delete_deployment("d11");
    // The ingest server answers 503 while Chroma is down; the watcher keeps retrying.
    let shared = chain.watching.shared.clone();
    common::wait_for("the sender retrying while Chroma is down", SOON, || {
        shared.metrics.send_retries.get() > 0
    })
    .await;
    tokio::task::block_in_place(|| chain.chroma.restart());
    chain.wait_deployments_in_chroma("after the outage").await;
    assert_eq!(chain.chroma_view("Deployment").await.len(), 11);
    chain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chroma_restarted_on_empty_data_is_filled_again_without_anyone_asking_for_a_resync() {
    let mut chain = Chain::start(&["deployments"]).await;
    for i in 0..6 {
        chain.create_deployment(&format!("d{i}"), json!({"gen": "1"}));
    }
    chain.wait_deployments_in_chroma("before the restart").await;
    tokio::task::block_in_place(|| chain.chroma.restart_empty());
    assert!(chain.chroma_view("Deployment").await.is_empty());
    // The next change finds the collection gone; the server creates it anew, and its answer
    // names a new generation, from which the watcher knows to send everything again.
    chain.create_deployment("after", json!({"gen": "1"}));
    chain
        .wait_deployments_in_chroma("after Chroma lost its data")
        .await;
    assert_eq!(chain.chroma_view("Deployment").await.len(), 7);
    chain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_deleted_while_the_watcher_was_stopped_leave_chroma_after_it_restarts() {
    let mut chain = Chain::start(&["deployments"]).await;
    for name in ["a", "b", "c"] {
        chain.create_deployment(name, json!({"app": name}));
    }
    chain.wait_deployments_in_chroma("created").await;
    chain
        .restart_watcher(|sim| {
            sim.delete("apps/v1", "Deployment", Some("default"), "a")
                .unwrap();
            sim.delete("apps/v1", "Deployment", Some("default"), "b")
                .unwrap();
            sim.create(deployment("d", json!({"app": "d"}))).unwrap();
        })
        .await;
    chain.wait_deployments_in_chroma("after the restart").await;
    assert_eq!(
        chain
            .chroma_view("Deployment")
            .await
            .into_keys()
            .collect::<Vec<_>>(),
        ["default/c", "default/d"]
    );
    chain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_watches_and_compacted_history_during_changes_still_converge_in_chroma() {
    let chain = Chain::start(&["deployments"]).await;
    for round in 0..4 {
        for i in 0..6 {
            let name = format!("r{i}");
            let exists = chain
                .sim
                .get("apps/v1", "Deployment", Some("default"), &name)
                .is_ok();
            if exists && (i + round) % 3 == 0 {
                chain.delete_deployment(&name);
            } else if exists {
                chain.label_deployment(&name, json!({"round": round.to_string()}));
            } else {
                chain.create_deployment(&name, json!({"round": round.to_string()}));
            }
        }
        chain.sim.drop_watches();
        if round % 2 == 1 {
            chain.sim.compact();
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    chain
        .wait_deployments_in_chroma("after drops and compaction")
        .await;
    assert!(
        chain.sim.expired_watches() > 0,
        "no watch was answered 410: the relist path was not exercised"
    );
    chain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_horizontal_pod_autoscaler_served_in_two_versions_is_one_document_in_chroma() {
    let chain = Chain::start(&["horizontalpodautoscalers"]).await;
    chain
        .sim
        .create(json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 1, "maxReplicas": 3}
        }))
        .unwrap();
    chain
        .wait_chroma_equals_cluster("autoscaling/v2", "HorizontalPodAutoscaler", "created")
        .await;
    assert_eq!(
        chain.chroma_ids("HorizontalPodAutoscaler").await,
        ["default/autoscaling/v2/HorizontalPodAutoscaler/web"]
    );
    chain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_pending_at_shutdown_are_in_chroma_when_the_watcher_has_exited() {
    let chain = Chain::start(&["deployments"]).await;
    for i in 0..5 {
        chain.create_deployment(&format!("late{i}"), json!({"app": "late"}));
    }
    // Wait until the watcher holds them inside the debounce window, then stop it.
    let shared = chain.watching.shared.clone();
    common::wait_for("the changes pending", SOON, || {
        shared.metrics.pending_changes.get() >= 5
    })
    .await;
    assert!(chain.chroma_view("Deployment").await.is_empty());
    let mut chain = chain;
    chain.watching.stop().await;
    assert_eq!(
        chain.chroma_view("Deployment").await,
        chain.cluster_view("apps/v1", "Deployment"),
        "changes pending at shutdown were not flushed into Chroma"
    );
}
