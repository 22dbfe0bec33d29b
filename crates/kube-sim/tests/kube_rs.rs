//! kube-rs against the simulator: discovery, pagination, `watcher()` with list-watch, streaming
//! lists and metadata-only watches, resumption after dropped watches, 410 after compaction, the
//! CRD lifecycle and the Status codes of bad requests.

mod common;

use std::time::Duration;

use common::{get_json, wait_for};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PartialObjectMeta, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Discovery;
use kube::runtime::watcher::{self, Event};
use kube_sim::{SimConfig, SimHandle, SimServer};
use serde_json::json;
use tokio::sync::mpsc;

async fn sim() -> SimHandle {
    SimServer::start(SimConfig::default().with_bookmark_interval(Duration::from_millis(300)))
        .await
        .expect("the simulator starts")
}

/// The objects of type `K` in namespace `default` of `sim`, through kube-rs.
fn default_namespace<K>(sim: &SimHandle) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    Api::namespaced(sim.client().unwrap(), "default")
}

fn cm(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default", "labels": {"app": "demo"}}, "data": {"k": "v"}})
}

/// The events of a kube-rs watcher of the ConfigMaps in `default`, as text.
fn watch_configmaps(sim: &SimHandle, config: watcher::Config) -> mpsc::UnboundedReceiver<String> {
    spawn_watch(watcher::watcher(
        default_namespace::<ConfigMap>(sim),
        config,
    ))
}

/// A simulator holding ConfigMap `before`, and the events of a watcher of its ConfigMaps
/// (`config`) once it reported `before` among its initial events.
async fn watching_one_configmap(
    config: watcher::Config,
) -> (SimHandle, mpsc::UnboundedReceiver<String>) {
    let sim = sim().await;
    sim.create(cm("before")).unwrap();
    let mut rx = watch_configmaps(&sim, config);
    let seen = wait_for(&mut rx, "initdone").await;
    assert!(seen.contains(&"initapply:before".to_string()), "{seen:?}");
    (sim, rx)
}

/// The watcher's events as text, errors by their message.
fn spawn_watch<K>(
    stream: impl futures::Stream<Item = watcher::Result<Event<K>>> + Send + 'static,
) -> mpsc::UnboundedReceiver<String>
where
    K: kube::Resource + Send + 'static,
{
    common::spawn_watch(stream, |e| e.to_string())
}

#[tokio::test]
async fn discovery_finds_builtin_types_preferred_versions_and_new_crds() {
    let sim = sim().await;
    sim.load_manifests(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/demo"))
        .unwrap();
    let d = Discovery::new(sim.client().unwrap()).run().await.unwrap();
    let groups: Vec<String> = d.groups().map(|g| g.name().to_string()).collect();
    for g in [
        "",
        "apps",
        "batch",
        "autoscaling",
        "postgresql.cnpg.io",
        "cert-manager.io",
    ] {
        assert!(
            groups.contains(&g.to_string()),
            "group {g:?} missing from {groups:?}"
        );
    }
    let autoscaling = d.get("autoscaling").unwrap();
    assert_eq!(autoscaling.preferred_version_or_latest(), "v2");
    let (ar, caps) = d
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(ar, _)| ar.plural == "clusters" && ar.group == "postgresql.cnpg.io")
        .expect("the CloudNativePG Cluster type is discovered");
    assert_eq!(ar.kind, "Cluster");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
}

#[tokio::test]
async fn paginated_lists_return_every_object_once_at_one_resource_version() {
    let sim = sim().await;
    for i in 0..25 {
        sim.create(cm(&format!("cm-{i:02}"))).unwrap();
    }
    let api: Api<ConfigMap> = default_namespace(&sim);
    let first = api.list(&ListParams::default().limit(10)).await.unwrap();
    assert_eq!(first.items.len(), 10);
    // A write between pages must not show up in (or shift) the later pages.
    sim.delete("v1", "ConfigMap", Some("default"), "cm-24")
        .unwrap();
    let mut names: Vec<String> = first
        .items
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    let mut token = first.metadata.continue_.clone();
    while let Some(t) = token.filter(|t| !t.is_empty()) {
        let page = api
            .list(&ListParams::default().limit(10).continue_token(&t))
            .await
            .unwrap();
        assert_eq!(
            page.metadata.resource_version,
            first.metadata.resource_version
        );
        names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        token = page.metadata.continue_;
    }
    let mut sorted = names.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 25, "{names:?}");
}

/// Deletes the ConfigMap `name` and waits until the watcher sees it go.
async fn delete_and_see(sim: &SimHandle, rx: &mut mpsc::UnboundedReceiver<String>, name: &str) {
    sim.delete("v1", "ConfigMap", Some("default"), name)
        .unwrap();
    wait_for(rx, &format!("delete:{name}")).await;
}

#[tokio::test]
async fn watcher_sees_add_modify_delete_with_list_watch() {
    let (sim, mut rx) = watching_one_configmap(watcher::Config::default()).await;
    sim.create(cm("new")).unwrap();
    wait_for(&mut rx, "apply:new").await;
    sim.patch(
        "v1",
        "ConfigMap",
        Some("default"),
        "new",
        json!({"data": {"k": "changed"}}),
    )
    .unwrap();
    wait_for(&mut rx, "apply:new").await;
    delete_and_see(&sim, &mut rx, "new").await;
}

#[tokio::test]
async fn streaming_list_watcher_ends_initial_events_with_the_bookmark() {
    let (sim, mut rx) = watching_one_configmap(watcher::Config::default().streaming_lists()).await;
    assert_eq!(
        sim.request_count("configmaps", "list"),
        0,
        "streaming lists never list"
    );
    sim.create(cm("new")).unwrap();
    wait_for(&mut rx, "apply:new").await;
    delete_and_see(&sim, &mut rx, "new").await;
}

#[tokio::test]
async fn metadata_watcher_gets_partial_object_metadata() {
    let sim = sim().await;
    sim.create(cm("before")).unwrap();
    let api: Api<PartialObjectMeta<ConfigMap>> = default_namespace(&sim);
    let mut rx = spawn_watch(watcher::watcher(api.clone(), watcher::Config::default()));
    wait_for(&mut rx, "initapply:before").await;
    wait_for(&mut rx, "initdone").await;
    sim.create(cm("new")).unwrap();
    wait_for(&mut rx, "apply:new").await;
    let meta = api.get("new").await.unwrap();
    assert_eq!(meta.types.unwrap().kind, "PartialObjectMetadata");
    assert_eq!(meta.metadata.labels.unwrap()["app"], "demo");
}

#[tokio::test]
async fn watcher_resumes_after_dropped_watches_without_missing_events() {
    let sim = sim().await;
    let mut rx = watch_configmaps(&sim, watcher::Config::default());
    wait_for(&mut rx, "initdone").await;
    sim.create(cm("a")).unwrap();
    wait_for(&mut rx, "apply:a").await;
    let watches_before = sim.request_count("configmaps", "watch");
    for round in 0..3 {
        // The watcher reopens its watch after each drop; wait for it before the next one.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while sim.open_watches() == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the watcher never reopened its watch"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(sim.drop_watches() >= 1);
        sim.create(cm(&format!("during-{round}"))).unwrap();
        wait_for(&mut rx, &format!("apply:during-{round}")).await;
    }
    // Three drops: at least the first two reopened watches are counted by now.
    assert!(sim.request_count("configmaps", "watch") >= watches_before + 2);
    assert_eq!(
        sim.request_count("configmaps", "list"),
        1,
        "resumed without relisting"
    );
}

#[tokio::test]
async fn watcher_relists_after_compaction_answers_410() {
    let sim = sim().await;
    let mut rx = watch_configmaps(&sim, watcher::Config::default());
    wait_for(&mut rx, "initdone").await;
    sim.pause();
    sim.drop_watches();
    sim.create(cm("while-away")).unwrap();
    sim.compact();
    sim.resume();
    let seen = wait_for(&mut rx, "initapply:while-away").await;
    assert!(
        seen.iter()
            .any(|l| l.starts_with("error:") && l.contains("xpired")),
        "{seen:?}"
    );
    assert!(seen.contains(&"init".to_string()), "{seen:?}");
    assert!(sim.expired_watches() >= 1);
}

fn widget_crd() -> serde_json::Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "description": "A widget.",
                    "properties": {"spec": {"type": "object", "description": "What the widget does."}}}}}]}})
}

#[tokio::test]
async fn crd_lifecycle_serves_instances_then_deletes_them_with_events() {
    let sim = sim().await;
    let client = sim.client().unwrap();
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let crd: DynamicObject = serde_json::from_value(widget_crd()).unwrap();
    let created = crds.create(&PostParams::default(), &crd).await.unwrap();
    let conditions = created.data["status"]["conditions"]
        .as_array()
        .unwrap()
        .clone();
    for c in ["Established", "NamesAccepted"] {
        assert!(
            conditions
                .iter()
                .any(|x| x["type"] == c && x["status"] == "True"),
            "{c}"
        );
    }
    assert_eq!(
        created.data["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["description"],
        "A widget."
    );
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let mut rx = spawn_watch(watcher::watcher(
        widgets.clone(),
        watcher::Config::default(),
    ));
    wait_for(&mut rx, "initdone").await;
    for n in ["w1", "w2"] {
        let w: DynamicObject =
            serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": n}, "spec": {"size": 1}}))
            .unwrap();
        widgets.create(&PostParams::default(), &w).await.unwrap();
        wait_for(&mut rx, &format!("apply:{n}")).await;
    }
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let seen = wait_for(&mut rx, "delete:w1").await;
    let rest = wait_for(&mut rx, "delete:w2").await;
    assert!(!seen.iter().chain(&rest).any(|l| l.starts_with("apply")));
    let err = widgets.list(&ListParams::default()).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404),
        "{err:?}"
    );
    let d = Discovery::new(client).run().await.unwrap();
    assert!(d.get("example.com").is_none(), "the group left discovery");
}

#[tokio::test]
async fn bad_requests_get_the_right_status_codes() {
    let sim = sim().await;
    let client = sim.client().unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let code = |e: kube::Error| match e {
        kube::Error::Api(s) => (s.code, s.reason),
        other => panic!("not a Status: {other:?}"),
    };
    assert_eq!(
        code(api.get("missing").await.unwrap_err()),
        (404, "NotFound".into())
    );
    let c: ConfigMap = serde_json::from_value(cm("x")).unwrap();
    let first = api.create(&PostParams::default(), &c).await.unwrap();
    assert_eq!(
        code(api.create(&PostParams::default(), &c).await.unwrap_err()),
        (409, "AlreadyExists".into())
    );
    let mut stale = first.clone();
    api.replace("x", &PostParams::default(), &first)
        .await
        .unwrap();
    stale.data = Some([("k".to_string(), "new".to_string())].into());
    sim.patch(
        "v1",
        "ConfigMap",
        Some("default"),
        "x",
        json!({"data": {"z": "1"}}),
    )
    .unwrap();
    assert_eq!(
        code(
            api.replace("x", &PostParams::default(), &stale)
                .await
                .unwrap_err()
        ),
        (409, "Conflict".into())
    );
    let bad_selector = ListParams::default().labels("app in (a");
    assert_eq!(code(api.list(&bad_selector).await.unwrap_err()).0, 400);
    let bad_field = ListParams::default().fields("spec.nodeName=x");
    assert_eq!(code(api.list(&bad_field).await.unwrap_err()).0, 400);
    let unnamed: ConfigMap = serde_json::from_value(json!({"metadata": {}})).unwrap();
    assert_eq!(
        code(
            api.create(&PostParams::default(), &unnamed)
                .await
                .unwrap_err()
        ),
        (422, "Invalid".into())
    );
    // A continue token from before compaction is expired.
    for i in 0..5 {
        sim.create(cm(&format!("p{i}"))).unwrap();
    }
    let page = api.list(&ListParams::default().limit(2)).await.unwrap();
    sim.compact();
    let next = ListParams::default()
        .limit(2)
        .continue_token(page.metadata.continue_.as_deref().unwrap());
    assert_eq!(
        code(api.list(&next).await.unwrap_err()),
        (410, "Expired".into())
    );
    // POST on a named object path is not allowed.
    let req = http::Request::post("/api/v1/namespaces/default/configmaps/x")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&cm("x")).unwrap())
        .unwrap();
    let err = client.request::<ConfigMap>(req).await.unwrap_err();
    assert_eq!(code(err).0, 405);
}

#[tokio::test]
async fn admin_http_api_injects_faults_and_reports_counters() {
    let sim = sim().await;
    let client = sim.client().unwrap();
    let fault = json!({"resource": "configmaps", "verb": "list", "errorCode": 403, "times": 1});
    // (403, not 503: kube-rs retries 503 by itself.)
    let req = http::Request::post("/_sim/faults")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&fault).unwrap())
        .unwrap();
    client.request_text(req).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let err = api.list(&ListParams::default()).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403 && s.reason == "Forbidden"),
        "{err:?}"
    );
    api.list(&ListParams::default())
        .await
        .expect("the fault applied once only");
    let counters: serde_json::Value = get_json(&client, "/_sim/counters").await;
    assert_eq!(counters["configmaps/list"], 2);
    let stats: serde_json::Value = get_json(&client, "/_sim/stats").await;
    assert_eq!(stats["objects"], 4, "the four standard namespaces");
}
