//! The whole watcher against the Kubernetes API simulator and a stand-in of the ingest
//! endpoints: what a user sees in the store after changes, CRDs, outages, restarts, lost
//! watches and shutdown.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{
    install_crypto, serve_ops, spawn_watcher, start_cluster_and_store, start_watcher, wait_for,
    Running, StandIn,
};
use kube_sim::{SimConfig, SimHandle, SimServer};
use serde_json::{json, Value};
use sync_model::{HealthStatus, ResourceId, ResourceInstance};
use watcher::{HttpSink, WatcherSettings};

const WINDOW: Duration = Duration::from_millis(400);
/// Debounce window plus a little: how long a change may take to reach the store.
const SOON: Duration = Duration::from_secs(5);

fn settings(types: &[&str]) -> WatcherSettings {
    common::settings(types, WINDOW, Duration::from_millis(200))
}

async fn setup(types: &[&str]) -> (SimHandle, StandIn, Running) {
    let (sim, store) = start_cluster_and_store().await;
    let w = start_watcher(&sim, &store, settings(types));
    w.wait_ready().await;
    (sim, store, w)
}

fn deployment(ns: &str, name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    })
}

/// `namespace/name` → labels of every object of a kind in the simulator.
fn cluster_view(
    sim: &SimHandle,
    api_version: &str,
    kind: &str,
) -> BTreeMap<String, BTreeMap<String, String>> {
    sim.labels_by_name(api_version, kind).unwrap()
}

/// The same view of the store's documents of a kind.
fn store_view(
    docs: &BTreeMap<ResourceId, ResourceInstance>,
    kind: &str,
) -> BTreeMap<String, BTreeMap<String, String>> {
    docs.values()
        .filter(|i| i.kind == kind)
        .map(|i| (format!("{}/{}", i.namespace, i.name), i.labels.clone()))
        .collect()
}

async fn wait_store_equals_cluster(
    sim: &SimHandle,
    store: &StandIn,
    api_version: &str,
    kind: &str,
    timeout: Duration,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let want = cluster_view(sim, api_version, kind);
        let have = store_view(&store.docs(), kind);
        if want == have {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "store never equalled the cluster for {kind}\ncluster: {want:#?}\nstore: {have:#?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_is_indexed_updated_and_removed_as_it_changes() {
    // Every type is watched here, as in production.
    let (sim, store, w) = setup(&[]).await;
    let mut d = deployment("default", "web", json!({"app": "web"}));
    d["metadata"]["annotations"] = json!({
        "description": "Main web server",
        "kubectl.kubernetes.io/last-applied-configuration": "{\"secret\":\"hunter2\"}"
    });
    sim.create(d).unwrap();
    let id = ResourceId::new(Some("default"), "apps/v1", "Deployment", "web");
    store
        .wait_for("the deployment is indexed", SOON, |docs| {
            docs.contains_key(&id)
        })
        .await;
    let doc = store.docs()[&id].clone();
    assert_eq!(
        doc.annotations.get("description").map(String::as_str),
        Some("Main web server")
    );
    assert_eq!(
        doc.annotations.len(),
        1,
        "only description annotations: {:?}",
        doc.annotations
    );
    assert!(!doc.created_at.is_empty() && doc.created_at.ends_with('Z'));

    sim.patch(
        "apps/v1",
        "Deployment",
        Some("default"),
        "web",
        json!({"metadata": {"labels": {"tier": "frontend"}}}),
    )
    .unwrap();
    store
        .wait_for("the new label is indexed", SOON, |docs| {
            docs.get(&id)
                .is_some_and(|d| d.labels.get("tier").map(String::as_str) == Some("frontend"))
        })
        .await;

    sim.delete("apps/v1", "Deployment", Some("default"), "web")
        .unwrap();
    store
        .wait_for("the deployment is gone", SOON, |docs| {
            !docs.contains_key(&id)
        })
        .await;
    // Default exclusions hold and built-in namespaces are indexed.
    let docs = store.docs();
    assert!(docs
        .values()
        .any(|i| i.kind == "Namespace" && i.name == "kube-system"));
    assert!(!docs
        .values()
        .any(|i| i.kind == "Event" || i.kind == "Lease"));
    w.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_that_changes_nothing_indexed_sends_nothing() {
    let (sim, store, w) = setup(&["configmaps"]).await;
    sim.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default", "labels": {"a": "1"}}, "data": {"k": "v"}})).unwrap();
    store
        .wait_for("the configmap is indexed", SOON, |d| {
            d.values().any(|i| i.name == "c")
        })
        .await;
    let posts_before = store.state.lock().unwrap().posts.len();
    for v in 0..5 {
        sim.patch(
            "v1",
            "ConfigMap",
            Some("default"),
            "c",
            json!({"data": {"k": format!("v{v}")}}),
        )
        .unwrap();
    }
    tokio::time::sleep(WINDOW * 4).await;
    assert_eq!(
        store.state.lock().unwrap().posts.len(),
        posts_before,
        "data changes are not indexed and must send nothing"
    );
    w.stop().await.unwrap();
}

/// A Deployment's status as its controller writes it: `available` of 3 replicas, the
/// conditions' times given (a controller rewrites them on every status update).
fn deployment_status(available: i64, heartbeat: &str) -> Value {
    let mut d = deployment("default", "web", json!({"app": "web"}));
    d["spec"]["replicas"] = json!(3);
    d["status"] = json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3,
        "readyReplicas": available, "availableReplicas": available,
        "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                        "lastUpdateTime": heartbeat, "lastTransitionTime": heartbeat}]});
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_sent_when_its_value_or_reason_changes_and_status_heartbeats_send_nothing() {
    let (sim, store, w) = setup(&["deployments.apps"]).await;
    let mut spec_only = deployment_status(0, "2026-02-20T10:00:00Z");
    spec_only.as_object_mut().unwrap().remove("status");
    sim.apply(spec_only).unwrap();
    sim.update_status(deployment_status(1, "2026-02-20T10:00:00Z"))
        .unwrap();
    let health = |d: &BTreeMap<ResourceId, ResourceInstance>| {
        d.values()
            .find(|i| i.name == "web")
            .and_then(|i| i.health.clone())
            .map(|h| (h.status, h.reason))
    };
    store
        .wait_for("1/3 available", SOON, |d| {
            health(d) == Some((HealthStatus::InProgress, "1/3 replicas available".into()))
        })
        .await;
    assert_eq!(
        store
            .docs()
            .values()
            .find(|i| i.name == "web")
            .unwrap()
            .images,
        ["nginx"]
    );
    // Five status updates that change only the conditions' times: nothing to send.
    let posts_before = store.state.lock().unwrap().posts.len();
    for minute in 1..=5 {
        let t = format!("2026-02-20T10:0{minute}:00Z");
        sim.update_status(deployment_status(1, &t)).unwrap();
    }
    tokio::time::sleep(WINDOW * 4).await;
    assert_eq!(
        store.state.lock().unwrap().posts.len(),
        posts_before,
        "status heartbeats that leave health alone must send nothing"
    );
    // 2/3 then 3/3 within the debounce window: one change, the last state.
    sim.update_status(deployment_status(2, "2026-02-20T10:06:00Z"))
        .unwrap();
    sim.update_status(deployment_status(3, "2026-02-20T10:06:01Z"))
        .unwrap();
    store
        .wait_for("3/3 available", SOON, |d| {
            health(d) == Some((HealthStatus::Current, "3/3 replicas available".into()))
        })
        .await;
    tokio::time::sleep(WINDOW * 2).await;
    assert_eq!(
        store.state.lock().unwrap().posts.len(),
        posts_before + 1,
        "the two health changes inside one debounce window are one post"
    );
    w.stop().await.unwrap();
}

fn widget_crd() -> Value {
    kube_sim::custom_resource_definition("example.com", "Widget", "widgets")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_created_after_start_has_its_instances_indexed_and_deleting_it_removes_them() {
    let (sim, store, w) = setup(&[]).await;
    let types_before = w.shared.metrics.watched_types.get();
    sim.create(widget_crd()).unwrap();
    // Instances created right away, before the watcher has noticed the new type.
    for name in ["a", "b", "c"] {
        let mut created = false;
        for _ in 0..50 {
            let obj = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name, "namespace": "default", "labels": {"w": name}}});
            if sim.create(obj).is_ok() {
                created = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(created, "the simulator never served widgets");
    }
    store
        .wait_for("three widgets indexed", SOON * 2, |d| {
            d.values().filter(|i| i.kind == "Widget").count() == 3
        })
        .await;
    let w_id = ResourceId::new(Some("default"), "example.com/v1", "Widget", "a");
    assert!(store.docs().contains_key(&w_id));
    assert_eq!(w.shared.metrics.watched_types.get(), types_before + 1);

    sim.delete(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        None,
        "widgets.example.com",
    )
    .unwrap();
    store
        .wait_for("no widget left", SOON * 2, |d| {
            !d.values().any(|i| i.kind == "Widget")
        })
        .await;
    // And the type is no longer watched.
    wait_for("the widget watch stopped", SOON, || {
        w.shared.metrics.watched_types.get() == types_before
    })
    .await;
    w.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_while_the_ingest_server_is_down_arrive_once_it_is_back() {
    let (sim, store, w) = setup(&["deployments"]).await;
    store.set_down(true);
    for i in 0..30 {
        sim.create(deployment("default", &format!("d{i}"), json!({"gen": "1"})))
            .unwrap();
    }
    for i in 0..10 {
        sim.patch(
            "apps/v1",
            "Deployment",
            Some("default"),
            &format!("d{i}"),
            json!({"metadata": {"labels": {"gen": "2"}}}),
        )
        .unwrap();
    }
    for i in 20..25 {
        sim.delete("apps/v1", "Deployment", Some("default"), &format!("d{i}"))
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(store.docs().is_empty());
    assert!(
        w.shared.metrics.send_retries.get() > 0,
        "the sender never retried"
    );
    store.set_down(false);
    wait_store_equals_cluster(&sim, &store, "apps/v1", "Deployment", SOON * 2).await;
    w.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_deleted_while_the_watcher_was_stopped_are_gone_after_it_restarts() {
    let (sim, store, w) = setup(&["deployments"]).await;
    for name in ["keep", "drop1", "drop2"] {
        sim.create(deployment("default", name, json!({"app": name})))
            .unwrap();
    }
    wait_store_equals_cluster(&sim, &store, "apps/v1", "Deployment", SOON).await;
    w.stop().await.unwrap();

    sim.delete("apps/v1", "Deployment", Some("default"), "drop1")
        .unwrap();
    sim.delete("apps/v1", "Deployment", Some("default"), "drop2")
        .unwrap();
    sim.patch(
        "apps/v1",
        "Deployment",
        Some("default"),
        "keep",
        json!({"metadata": {"labels": {"v": "2"}}}),
    )
    .unwrap();
    sim.create(deployment("default", "new", json!({"app": "new"})))
        .unwrap();
    let posts_before = store.state.lock().unwrap().posts.len();

    let w = start_watcher(&sim, &store, settings(&["deployments"]));
    wait_store_equals_cluster(&sim, &store, "apps/v1", "Deployment", SOON).await;
    // Only what changed was sent: no re-send of unchanged objects on restart.
    let sent: usize = store.state.lock().unwrap().posts[posts_before..]
        .iter()
        .map(|p| p.upserts.len())
        .sum();
    assert_eq!(
        sent, 2,
        "expected only `keep` (relabelled) and `new` to be upserted"
    );
    w.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_watches_and_compacted_history_during_changes_still_converge() {
    let (sim, store, w) = setup(&["deployments"]).await;
    for round in 0..6 {
        for i in 0..8 {
            let name = format!("r{}-{i}", round % 3);
            if sim
                .get("apps/v1", "Deployment", Some("default"), &name)
                .is_ok()
            {
                if i % 2 == 0 {
                    sim.delete("apps/v1", "Deployment", Some("default"), &name)
                        .unwrap();
                } else {
                    sim.patch(
                        "apps/v1",
                        "Deployment",
                        Some("default"),
                        &name,
                        json!({"metadata": {"labels": {"round": round.to_string()}}}),
                    )
                    .unwrap();
                }
            } else {
                sim.create(deployment(
                    "default",
                    &name,
                    json!({"round": round.to_string()}),
                ))
                .unwrap();
            }
        }
        sim.drop_watches();
        if round % 2 == 1 {
            // Changes after the drop, then history forgotten: resuming gets 410 and relists.
            sim.delete(
                "apps/v1",
                "Deployment",
                Some("default"),
                &format!("r{}-1", round % 3),
            )
            .ok();
            sim.compact();
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    wait_store_equals_cluster(&sim, &store, "apps/v1", "Deployment", SOON * 2).await;
    assert!(
        sim.expired_watches() > 0,
        "no watch was ever answered 410: the relist path was not exercised"
    );
    assert!(
        w.shared
            .metrics
            .watch_errors
            .get_or_create(&watcher::metrics::TypeLabels {
                resource_type: "apps/v1/Deployment".into()
            })
            .get()
            > 0
    );
    w.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_horizontal_pod_autoscaler_served_in_two_versions_is_one_document() {
    let (sim, store, w) = setup(&[]).await;
    sim.create(json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 3}
    }))
    .unwrap();
    store
        .wait_for("the HPA is indexed", SOON, |d| {
            d.values().any(|i| i.kind == "HorizontalPodAutoscaler")
        })
        .await;
    tokio::time::sleep(WINDOW * 3).await;
    let hpas: Vec<String> = store
        .docs()
        .keys()
        .filter(|k| k.as_str().contains("HorizontalPodAutoscaler"))
        .map(|k| k.to_string())
        .collect();
    assert_eq!(hpas, ["default/autoscaling/v2/HorizontalPodAutoscaler/web"]);
    w.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_shutdown_pending_changes_are_sent_at_once_before_exit() {
    let (sim, store) = start_cluster_and_store().await;
    let mut s = settings(&["deployments"]);
    s.buffer.debounce = Duration::from_secs(600);
    s.buffer.flush_interval = Duration::from_secs(600);
    let w = start_watcher(&sim, &store, s);
    w.wait_ready().await;
    for i in 0..120 {
        sim.create(deployment(
            "default",
            &format!("p{i}"),
            json!({"i": i.to_string()}),
        ))
        .unwrap();
    }
    wait_for("the changes in the buffer", SOON, || {
        w.shared.metrics.pending_changes.get() >= 120
    })
    .await;
    assert!(
        store.docs().is_empty(),
        "nothing should be sent inside a 10 minute window"
    );
    let started = tokio::time::Instant::now();
    w.stop().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(store.docs().len(), 120);
    let st = store.state.lock().unwrap();
    assert!(
        st.posts.iter().all(|p| p.len() <= 50),
        "batches exceed BATCH_MAX_SIZE"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_restores_lost_documents_and_deletes_ghosts_through_the_ops_endpoint() {
    let (sim, store, w) = setup(&["deployments"]).await;
    for name in ["a", "b"] {
        sim.create(deployment("default", name, json!({"app": name})))
            .unwrap();
    }
    wait_store_equals_cluster(&sim, &store, "apps/v1", "Deployment", SOON).await;
    // The store loses one document and gains one the cluster never had.
    {
        let mut st = store.state.lock().unwrap();
        st.docs.remove(&ResourceId::new(
            Some("default"),
            "apps/v1",
            "Deployment",
            "a",
        ));
        let ghost = common::instance("default", "ghost", "x");
        st.docs.insert(ghost.id.clone(), ghost);
    }
    let (base, ops_stop) = serve_ops(&w, Some("tok")).await;
    assert!(
        watcher::ops::request_resync(&base, None).await.is_err(),
        "resync must need the token"
    );
    let report = watcher::ops::request_resync(&base, Some("tok"))
        .await
        .unwrap();
    assert_eq!(
        (report.upserted, report.deleted, report.unchanged),
        (1, 1, 1),
        "{report:?}"
    );
    wait_store_equals_cluster(&sim, &store, "apps/v1", "Deployment", SOON).await;

    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("cw_watcher_items_sent_total"), "{metrics}");
    assert!(
        metrics.contains("cw_watcher_resync_duration_seconds_count 1"),
        "{metrics}"
    );
    w.stop().await.unwrap();
    ops_stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_the_api_server_forbids_is_not_indexed_and_the_watcher_still_becomes_ready() {
    install_crypto();
    let sim = SimServer::start(SimConfig::default()).await.unwrap();
    // RBAC without secrets, as the chart's least-privilege default: every list answers 403.
    sim.inject_fault(
        kube_sim::Fault::error(403)
            .on_resource("secrets")
            .on_verb("list"),
    );
    sim.create(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db-password", "namespace": "default"},
        "stringData": {"password": "hunter2"}
    }))
    .unwrap();
    let store = StandIn::start().await;
    let w = start_watcher(&sim, &store, settings(&["deployments", "secrets"]));
    w.wait_ready().await;
    sim.create(deployment("default", "web", json!({"app": "web"})))
        .unwrap();
    wait_store_equals_cluster(&sim, &store, "apps/v1", "Deployment", SOON).await;
    assert!(
        store.docs().values().all(|i| i.kind != "Secret"),
        "a forbidden type must not reach the store"
    );
    let forbidden_errors = w
        .shared
        .metrics
        .watch_errors
        .get_or_create(&watcher::metrics::TypeLabels {
            resource_type: "v1/Secret".into(),
        })
        .get();
    assert!(forbidden_errors > 0, "the 403 is counted as a watch error");
    w.stop().await.unwrap();
}

/// A Widget instance as the watcher indexes it.
fn widget_instance(name: &str) -> ResourceInstance {
    ResourceInstance {
        id: ResourceId::new(Some("default"), "example.com/v1", "Widget", name),
        namespace: "default".into(),
        name: name.into(),
        kind: "Widget".into(),
        api_version: "example.com/v1".into(),
        api_group: "example.com".into(),
        labels: Default::default(),
        annotations: Default::default(),
        created_at: "2026-02-20T10:00:00Z".into(),
        health: None,
        images: Vec::new(),
        owner: None,
    }
}

async fn readyz(base: &str) -> (u16, String) {
    let resp = reqwest::get(format!("{base}/readyz")).await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_whose_discovery_fails_holds_nothing_up_keeps_its_documents_and_is_watched_once_it_answers(
) {
    install_crypto();
    let sim = SimServer::start(SimConfig::default()).await.unwrap();
    sim.create(widget_crd()).unwrap();
    // The store holds a widget that still exists and one deleted while the watcher was down,
    // and the widgets' capability record.
    let store = StandIn::start().await;
    {
        let mut st = store.state.lock().unwrap();
        let record = sync_model::Capability {
            id: "widgets.example.com".into(),
            kind: "Widget".into(),
            group: "example.com".into(),
            versions: vec!["v1".into()],
            plural: "widgets".into(),
            namespaced: true,
            short_names: vec![],
            categories: vec![],
            description: String::new(),
            fields: Default::default(),
            enrichment: None,
        };
        st.capabilities.insert(record.id.clone(), record);
        for name in ["kept", "deleted-meanwhile"] {
            let w = widget_instance(name);
            st.docs.insert(w.id.clone(), w);
        }
    }
    let mut created = false;
    for _ in 0..50 {
        let obj = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "kept", "namespace": "default"}});
        if sim.create(obj).is_ok() {
            created = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(created, "the simulator never served widgets");
    // The group's discovery answers 503 (as an aggregated API whose backend is down) for a
    // few seconds; kube's client retries 503 itself, so only the discovery timeout ends it.
    sim.inject_fault(
        kube_sim::Fault::error(503)
            .on_group("example.com")
            .for_duration(Duration::from_secs(4)),
    );
    let mut s = settings(&["deployments", "widgets"]);
    s.group_discovery_timeout = Duration::from_millis(800);
    let w = start_watcher(&sim, &store, s);
    let (base, ops_stop) = serve_ops(&w, None).await;

    // Ready without the group, and the rest of the cluster is indexed.
    w.wait_ready().await;
    sim.create(deployment("default", "web", json!({"app": "web"})))
        .unwrap();
    wait_store_equals_cluster(&sim, &store, "apps/v1", "Deployment", SOON).await;
    let (status, body) = readyz(&base).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("unavailable API groups") && body.contains("example.com"),
        "/readyz names the unavailable group: {body}"
    );
    assert_eq!(w.shared.metrics.unavailable_api_groups.get(), 1);
    assert_eq!(
        store.names_of_kind("Widget").len(),
        2,
        "documents of an unavailable group are kept"
    );
    wait_for("a capability sync", SOON, || {
        w.shared.metrics.capability_syncs.get() > 0
    })
    .await;
    assert!(
        store.capabilities().contains_key("widgets.example.com"),
        "the capability record of an unavailable group is kept"
    );

    // Once the group answers, its types are watched and its ghosts removed.
    sim.create(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "new", "namespace": "default"}}))
        .unwrap();
    store
        .wait_for(
            "the widgets equal the cluster's",
            Duration::from_secs(30),
            |docs| {
                let mut names: Vec<&str> = docs
                    .values()
                    .filter(|i| i.kind == "Widget")
                    .map(|i| i.name.as_str())
                    .collect();
                names.sort();
                names == ["kept", "new"]
            },
        )
        .await;
    assert_eq!(w.shared.metrics.unavailable_api_groups.get(), 0);
    let (status, body) = readyz(&base).await;
    assert_eq!((status, body.as_str()), (200, "ready"));
    w.stop().await.unwrap();
    ops_stop.cancel();
}

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default", "labels": {"app": name}}})
}

fn forbidden_types(w: &Running) -> i64 {
    w.shared.metrics.forbidden_types.get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_403_on_a_watch_reconnect_removes_no_document_and_the_watch_goes_on() {
    let (sim, store, w) = setup(&["configmaps"]).await;
    sim.create(configmap("before")).unwrap();
    wait_store_equals_cluster(&sim, &store, "v1", "ConfigMap", SOON).await;
    let stored_before = store.names_of_kind("ConfigMap").len();
    sim.inject_fault(
        kube_sim::Fault::error(403)
            .on_resource("configmaps")
            .on_verb("watch")
            .times(1),
    );
    sim.drop_watches();
    wait_for("the watch reconnected", SOON, || sim.faults().is_empty()).await;
    // The watcher counts the refusal once it has handled the error, a moment after the
    // simulator served it; the gauge stays up until the watch's retry succeeds.
    wait_for("the refusal visible as a metric", SOON, || {
        forbidden_types(&w) == 1
    })
    .await;
    tokio::time::sleep(WINDOW * 3).await;
    assert_eq!(
        store.names_of_kind("ConfigMap").len(),
        stored_before,
        "a 403 must not delete the type's documents"
    );
    sim.create(configmap("after")).unwrap();
    wait_store_equals_cluster(&sim, &store, "v1", "ConfigMap", SOON).await;
    assert_eq!(forbidden_types(&w), 0);
    w.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_that_outlasts_the_grace_period_removes_the_type_and_access_regained_restores_it()
{
    let (sim, store) = start_cluster_and_store().await;
    let mut s = settings(&["configmaps", "deployments"]);
    s.forbidden_grace = Duration::from_secs(3);
    let w = start_watcher(&sim, &store, s);
    w.wait_ready().await;
    for name in ["a", "b"] {
        sim.create(configmap(name)).unwrap();
    }
    wait_store_equals_cluster(&sim, &store, "v1", "ConfigMap", SOON).await;
    let stored = store.names_of_kind("ConfigMap").len();

    // RBAC loses configmaps: every list and watch answers 403 until the rules come back.
    sim.inject_fault(kube_sim::Fault::error(403).on_resource("configmaps"));
    sim.drop_watches();
    let refused_at = tokio::time::Instant::now();
    wait_for("the refusal noticed", SOON, || forbidden_types(&w) > 0).await;
    assert_eq!(
        store.names_of_kind("ConfigMap").len(),
        stored,
        "documents are kept within the grace period"
    );
    store
        .wait_for("the refused type's documents are removed", SOON * 3, |d| {
            !d.values().any(|i| i.kind == "ConfigMap")
        })
        .await;
    assert!(
        refused_at.elapsed() >= Duration::from_secs(3),
        "removed before the grace period ended"
    );
    // Other types go on meanwhile.
    sim.create(deployment("default", "web", json!({"app": "web"})))
        .unwrap();
    wait_store_equals_cluster(&sim, &store, "apps/v1", "Deployment", SOON).await;

    // The rules come back: the type is listed afresh and every document returns.
    sim.clear_faults();
    sim.create(configmap("c")).unwrap();
    wait_store_equals_cluster(&sim, &store, "v1", "ConfigMap", SOON * 6).await;
    assert_eq!(forbidden_types(&w), 0);
    w.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_hashes_endpoint_the_watcher_runs_and_sends_everything_as_upserts() {
    install_crypto();
    let sim = SimServer::start(SimConfig::default()).await.unwrap();
    for name in ["a", "b"] {
        sim.create(deployment("default", name, json!({"app": name})))
            .unwrap();
    }
    let store = StandIn::start().await;
    store.state.lock().unwrap().no_hashes = true;
    let w = start_watcher(&sim, &store, settings(&["deployments"]));
    w.wait_ready().await;
    wait_store_equals_cluster(&sim, &store, "apps/v1", "Deployment", SOON).await;
    sim.create(deployment("default", "c", json!({"app": "c"})))
        .unwrap();
    wait_store_equals_cluster(&sim, &store, "apps/v1", "Deployment", SOON).await;

    // A resync cannot diff: it re-sends every object and deletes nothing.
    let report = w
        .shared
        .request_resync_of(watcher::ResyncScope::Instances)
        .await
        .unwrap();
    assert_eq!(
        (report.listed, report.upserted, report.deleted),
        (3, 3, 0),
        "{report:?}"
    );
    wait_store_equals_cluster(&sim, &store, "apps/v1", "Deployment", SOON).await;
    w.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_a_resync_with_a_hung_ingest_server_ends_within_the_shutdown_timeout() {
    let (sim, store) = start_cluster_and_store().await;
    // The production request timeout: a hung server holds each call for two minutes.
    let sink = HttpSink::new(&store.sync_url, None, Duration::from_secs(120)).unwrap();
    let mut s = settings(&["deployments"]);
    s.shutdown_timeout = Duration::from_secs(3);
    let w = spawn_watcher(&sim, sink, s);
    w.wait_ready().await;
    sim.create(deployment("default", "web", json!({"app": "web"})))
        .unwrap();
    wait_store_equals_cluster(&sim, &store, "apps/v1", "Deployment", SOON).await;

    store.state.lock().unwrap().hang = true;
    let resync = tokio::spawn({
        let shared = w.shared.clone();
        async move { shared.request_resync().await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!resync.is_finished(), "the resync waits on the hung server");
    let started = tokio::time::Instant::now();
    let stopped = w.stop().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "shutdown took {took:?}, beyond the 3 s shutdown timeout"
    );
    assert!(stopped.is_ok(), "nothing was pending: {stopped:?}");
    assert!(
        resync.await.unwrap().is_none(),
        "the abandoned resync has no report"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_request_gives_up_after_its_timeout() {
    install_crypto();
    // A watcher that accepts the connection and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            open.push(conn);
        }
    });
    let started = tokio::time::Instant::now();
    let err = watcher::ops::request_resync_of(
        &base,
        None,
        watcher::ResyncScope::All,
        Duration::from_secs(1),
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        matches!(err, watcher::ops::ResyncRequestError::TimedOut { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("did not answer within"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_never_reaches_the_store_unless_secrets_are_included() {
    install_crypto();
    let sim = SimServer::start(SimConfig::default()).await.unwrap();
    sim.create(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db-password", "namespace": "default", "labels": {"app": "db"}},
        "stringData": {"password": "hunter2"}
    }))
    .unwrap();
    sim.create(configmap("db-config")).unwrap();
    let store = StandIn::start().await;
    // Every type, as in production.
    let w = start_watcher(&sim, &store, settings(&[]));
    w.wait_ready().await;
    wait_store_equals_cluster(&sim, &store, "v1", "ConfigMap", SOON).await;
    sim.create(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "created-later", "namespace": "default"},
        "stringData": {"token": "t"}
    }))
    .unwrap();
    sim.create(configmap("created-later")).unwrap();
    wait_store_equals_cluster(&sim, &store, "v1", "ConfigMap", SOON).await;
    assert!(
        store.names_of_kind("Secret").is_empty(),
        "a Secret reached the store: {:?}",
        store.names_of_kind("Secret")
    );
    w.stop().await.unwrap();

    let mut asked = settings(&[]);
    asked.types = asked.types.including_secrets();
    let w = start_watcher(&sim, &store, asked);
    w.wait_ready().await;
    wait_store_equals_cluster(&sim, &store, "v1", "Secret", SOON).await;
    assert_eq!(store.names_of_kind("Secret").len(), 2);
    let doc = store
        .docs()
        .into_values()
        .find(|i| i.name == "db-password")
        .unwrap();
    assert!(
        !serde_json::to_string(&doc).unwrap().contains("hunter2"),
        "only metadata is indexed"
    );
    w.stop().await.unwrap();
}
