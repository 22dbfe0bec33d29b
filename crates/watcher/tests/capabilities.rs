//! The watcher keeps the capability records (one per watched type) equal to the cluster's
//! types, against the simulator and the ingest stand-in's capability endpoints.

mod common;

use std::time::Duration;

use common::{
    install_crypto, serve_ops, start_cluster_and_store, start_watcher, wait_for, Running, StandIn,
};
use kube_sim::SimHandle;
use serde_json::{json, Value};
use watcher::{HttpSink, ResyncScope, SyncSink};

const SOON: Duration = Duration::from_secs(15);

/// A watcher of every type the watcher watches by default, once it is ready.
async fn start(sim: &SimHandle, store: &StandIn) -> Running {
    let settings = common::settings(&[], Duration::from_millis(200), Duration::from_millis(100));
    let w = start_watcher(sim, store, settings);
    w.wait_ready().await;
    w
}

/// `plural.group` (or `plural`) of every type the watcher watches by default.
fn served_ids(sim: &SimHandle) -> Vec<String> {
    let excluded = [
        "events",
        "leases",
        "endpointslices",
        "componentstatuses",
        "secrets",
    ];
    let mut ids: Vec<String> = sim
        .served_types()
        .into_iter()
        .filter(|(_, _, plural, _)| !excluded.contains(&plural.as_str()))
        .map(
            |(api_version, _, plural, _)| match api_version.split_once('/') {
                Some((group, _)) => format!("{plural}.{group}"),
                None => plural,
            },
        )
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn gadget_crd(description: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget",
                      "listKind": "GadgetList", "shortNames": ["gdg"]},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "description": description,
                    "properties": {"spec": {"type": "object", "properties": {
                        "engine": {"type": "string", "description": "Which database engine runs. More text."}}}}}}}]
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_follow_the_watched_types_and_crds_as_they_come_change_and_go() {
    let (sim, store) = start_cluster_and_store().await;
    let w = start(&sim, &store).await;

    // At start: one record per watched type, built-ins with cw's own descriptions.
    let want = served_ids(&sim);
    store
        .wait_for_capabilities("every watched type", SOON, |c| {
            c.keys().cloned().collect::<Vec<_>>() == want
        })
        .await;
    let sts = &store.capabilities()["statefulsets.apps"];
    assert!(sts.description.contains("databases"), "{sts:?}");

    // A CRD created after start: its record, with the schema's descriptions and names.
    sim.create(gadget_crd("Gadget runs a managed database."))
        .unwrap();
    store
        .wait_for_capabilities("the gadget type", SOON, |c| {
            c.contains_key("gadgets.example.com")
        })
        .await;
    let gadget = &store.capabilities()["gadgets.example.com"];
    assert_eq!(gadget.kind, "Gadget");
    assert_eq!(gadget.description, "Gadget runs a managed database.");
    assert_eq!(gadget.fields["engine"], "Which database engine runs");
    assert_eq!(gadget.short_names, ["gdg"]);

    // Its schema changes: the record follows.
    let mut changed = gadget_crd("Gadget runs a managed cache.");
    let rv = sim
        .get(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
            "gadgets.example.com",
        )
        .unwrap()["metadata"]["resourceVersion"]
        .clone();
    changed["metadata"]["resourceVersion"] = rv;
    sim.update(changed).unwrap();
    store
        .wait_for_capabilities("the changed description", SOON, |c| {
            c.get("gadgets.example.com")
                .is_some_and(|g| g.description == "Gadget runs a managed cache.")
        })
        .await;

    // Deleted: the record goes.
    sim.delete(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        None,
        "gadgets.example.com",
    )
    .unwrap();
    store
        .wait_for_capabilities("no gadget type", SOON, |c| {
            !c.contains_key("gadgets.example.com")
        })
        .await;

    // A resync of capabilities only restores a lost record and removes a ghost.
    {
        let mut st = store.state.lock().unwrap();
        st.capabilities.remove("deployments.apps");
        let mut ghost = st.capabilities["statefulsets.apps"].clone();
        ghost.id = "ghosts.example.com".into();
        st.capabilities.insert(ghost.id.clone(), ghost);
    }
    // Through the operations endpoint, as `cw resync --only capabilities` does.
    let (base, ops_stop) = serve_ops(&w, None).await;
    let bogus = reqwest::Client::new()
        .post(format!("{base}/api/v1/resync?only=everything"))
        .send()
        .await
        .unwrap();
    assert_eq!(bogus.status(), 400, "an unknown scope is refused");
    let report = watcher::ops::request_resync_of(
        &base,
        None,
        ResyncScope::Capabilities,
        watcher::ops::DEFAULT_RESYNC_TIMEOUT,
    )
    .await
    .expect("resync report");
    ops_stop.cancel();
    let caps = report
        .capabilities
        .clone()
        .expect("capability part of the report");
    assert_eq!((caps.upserted, caps.deleted), (1, 1), "{caps:?}");
    assert_eq!(
        (caps.new, caps.changed),
        (1, 0),
        "the lost record is new: {caps:?}"
    );
    assert!(
        w.shared.metrics.capability_records_sent.get() >= want.len() as u64 + 2,
        "the records sent are counted"
    );
    assert_eq!(report.listed, 0, "instances were not relisted: {report:?}");
    assert_eq!(
        store.capabilities().keys().cloned().collect::<Vec<_>>(),
        want
    );

    // A restart with nothing changed sends no capability.
    w.stop().await.unwrap();
    let posts_before = store.state.lock().unwrap().capability_posts.len();
    let again = start(&sim, &store).await;
    wait_for("a capability sync after the restart", SOON, || {
        again.shared.metrics.capability_syncs.get() > 0
    })
    .await;
    assert_eq!(
        store.state.lock().unwrap().capability_posts.len(),
        posts_before,
        "an unchanged restart re-sent capabilities"
    );
    again.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capability_changes_made_while_the_ingest_server_is_down_arrive_once_it_is_back() {
    let (sim, store) = start_cluster_and_store().await;
    let w = start(&sim, &store).await;
    store
        .wait_for_capabilities("the built-in types", SOON, |c| c.len() > 10)
        .await;
    store.set_down(true);
    sim.create(gadget_crd("Gadget created during an outage."))
        .unwrap();
    wait_for("a capability sync tried while down", SOON, || {
        w.shared.metrics.capability_sync_failures.get() > 0
    })
    .await;
    store.set_down(false);
    store
        .wait_for_capabilities("the gadget type after the outage", SOON, |c| {
            c.contains_key("gadgets.example.com")
        })
        .await;
    w.stop().await.unwrap();
}

#[tokio::test]
async fn the_http_sink_builds_the_capability_urls_from_the_servers_base_url() {
    install_crypto();
    let store = StandIn::start().await;
    // The Go controller's full sync URL and the bare base URL name the same server.
    let base = store
        .sync_url
        .strip_suffix(sync_model::api::INSTANCES_SYNC)
        .expect("the stand-in's sync URL ends in the sync path");
    for endpoint in [store.sync_url.as_str(), base] {
        let sink = HttpSink::new(endpoint, None, Duration::from_secs(5)).unwrap();
        assert!(sink.stored_capability_hashes().await.unwrap().is_empty());
    }
    // A server without these routes (404): unsupported, which no retry can change.
    let other = HttpSink::new(&format!("{base}/elsewhere"), None, Duration::from_secs(5)).unwrap();
    let err = other.stored_capability_hashes().await.unwrap_err();
    assert!(matches!(err, watcher::SinkError::Unsupported(_)), "{err}");
    assert!(!err.is_retryable(), "{err}");
}
