//! The watcher sends its cluster's access rules (RBAC objects, served types, token issuer)
//! as whole snapshots, against the simulator and the ingest stand-in.

mod common;

use std::time::Duration;

use common::{start_cluster_and_store, wait_for};
use serde_json::{json, Value};
use sync_model::rbac::AccessSnapshot;
use sync_model::ClusterId;
use watcher::HttpSink;

const SOON: Duration = Duration::from_secs(20);
const RBAC: &str = "rbac.authorization.k8s.io/v1";

fn rbac_objects() -> Vec<Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}),
        json!({"apiVersion": RBAC, "kind": "Role",
               "metadata": {"namespace": "team-a", "name": "reader"},
               "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]}]}),
        json!({"apiVersion": RBAC, "kind": "ClusterRole",
               "metadata": {"name": "monitoring"},
               "aggregationRule": {"clusterRoleSelectors": [
                   {"matchLabels": {"example.com/aggregate-to-monitoring": "true"}}]},
               "rules": []}),
        json!({"apiVersion": RBAC, "kind": "ClusterRole",
               "metadata": {"name": "monitoring-pods",
                            "labels": {"example.com/aggregate-to-monitoring": "true"}},
               "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]}),
        json!({"apiVersion": RBAC, "kind": "RoleBinding",
               "metadata": {"namespace": "team-a", "name": "readers"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
               "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
                            {"kind": "ServiceAccount", "name": "bot", "namespace": "ci"}]}),
        json!({"apiVersion": RBAC, "kind": "ClusterRoleBinding",
               "metadata": {"name": "monitors"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "monitoring"},
               "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "sre"}]}),
    ]
}

fn has_binding(s: &AccessSnapshot, ns: &str, name: &str) -> bool {
    s.role_bindings
        .iter()
        .any(|b| b.namespace == ns && b.name == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_rules_are_sent_whole_and_a_deleted_binding_is_gone_within_seconds() {
    let (sim, store) = start_cluster_and_store().await;
    for obj in rbac_objects() {
        sim.create(obj).expect("created");
    }
    let settings = common::settings(&[], Duration::from_millis(200), Duration::from_millis(100));
    let sink = HttpSink::new(&store.sync_url, None, Duration::from_secs(5))
        .unwrap()
        .with_cluster(ClusterId::new("sim-a").unwrap());
    let w = common::spawn_watcher(&sim, sink, settings);

    wait_for("an access snapshot", SOON, || {
        !store.access_posts().is_empty()
    })
    .await;
    let first = store.access_posts()[0].clone();
    assert_eq!(first.cluster.as_deref(), Some("sim-a"));
    // Whole from the first: every object created before the watcher started.
    let role = first
        .roles
        .iter()
        .find(|r| r.namespace == "team-a" && r.name == "reader")
        .expect("the role");
    assert_eq!(role.rules[0].resources, ["deployments"]);
    let monitoring = first
        .cluster_roles
        .iter()
        .find(|r| r.name == "monitoring")
        .expect("the aggregated cluster role");
    let selectors = &monitoring
        .aggregation_rule
        .as_ref()
        .expect("aggregation")
        .cluster_role_selectors;
    assert_eq!(
        selectors[0].match_labels["example.com/aggregate-to-monitoring"],
        "true"
    );
    let pods = first
        .cluster_roles
        .iter()
        .find(|r| r.name == "monitoring-pods")
        .expect("the aggregated-in cluster role");
    assert_eq!(pods.labels["example.com/aggregate-to-monitoring"], "true");
    assert!(has_binding(&first, "team-a", "readers"));
    let readers = first
        .role_bindings
        .iter()
        .find(|b| b.name == "readers")
        .unwrap();
    assert_eq!(readers.role_ref.name, "reader");
    assert_eq!(readers.subjects[1].namespace, "ci");
    let monitors = first
        .cluster_role_bindings
        .iter()
        .find(|b| b.name == "monitors")
        .expect("the cluster role binding");
    assert_eq!(monitors.subjects[0].name, "sre");
    // The served types, as RBAC rules name them and documents carry them.
    let deployments = first
        .types
        .iter()
        .find(|t| t.group == "apps" && t.plural == "deployments")
        .expect("deployments among the types");
    assert!(deployments.kind == "Deployment" && deployments.namespaced);
    assert!(first
        .types
        .iter()
        .any(|t| t.plural == "clusterroles" && !t.namespaced));

    // The token issuer and its keys, read from the API server itself.
    let issuer = first.issuer.as_ref().expect("the issuer in the snapshot");
    assert_eq!(issuer.issuer, sim.issuer());
    assert_eq!(issuer.jwks, sim.jwks());
    assert!(issuer.jwks["keys"]
        .as_array()
        .is_some_and(|k| !k.is_empty()));
    // The metrics are set once the send returns, just after the server has the snapshot.
    let metrics = &w.shared.metrics;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while metrics.access_snapshots_sent.get() < 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(metrics.access_snapshots_sent.get() >= 1);
    assert_eq!(metrics.access_issuer_known.get(), 1);
    assert!(metrics.access_rbac_objects.get() >= 5);

    // A revoked binding is gone from the next snapshot within a few seconds.
    let posts = store.access_posts().len();
    let revoked = std::time::Instant::now();
    sim.delete(RBAC, "RoleBinding", Some("team-a"), "readers")
        .expect("deleted");
    wait_for(
        "a snapshot without the binding",
        Duration::from_secs(5),
        || {
            let all = store.access_posts();
            all.len() > posts && !has_binding(all.last().unwrap(), "team-a", "readers")
        },
    )
    .await;
    assert!(
        revoked.elapsed() < Duration::from_secs(3),
        "took {:?}",
        revoked.elapsed()
    );
    let last = store.access_posts().last().unwrap().clone();
    assert!(last.roles.iter().any(|r| r.name == "reader"), "still whole");
    assert!(last
        .cluster_role_bindings
        .iter()
        .any(|b| b.name == "monitors"));
    w.stop().await.unwrap();
}
