//! What a caller may read, on the real Chroma server: each cluster's access rules arrive by
//! `POST /api/v1/access/sync`, a user's grants become a filter inside the store query, and
//! search, ask, count and the cluster list answer only what the rules allow, with full
//! pages and counts that say nothing more; a second server on the same store reads the
//! rules too; a revoked binding hides what it granted; a cluster without rules shows
//! nothing.

mod common;

use std::collections::BTreeSet;

use common::{instance, text_at, Harness};
use ingest::search::{SearchMode, SearchRequest};
use serde_json::{json, Value};
use sync_model::rbac::UserInfo;
use sync_model::search::{CountBody, GroupBy};

async fn sync(h: &Harness, cluster: &str, upserts: Vec<Value>) {
    let (status, body) = h
        .post_sync(&json!({"cluster": cluster, "upserts": upserts, "deletes": []}))
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn post_access(h: &Harness, body: &Value) -> (u16, Value) {
    common::answer(
        h.http
            .post(format!("{}/api/v1/access/sync", h.url))
            .json(body)
            .send()
            .await,
    )
    .await
}

fn types() -> Value {
    json!([
        {"group": "", "plural": "pods", "kind": "Pod", "namespaced": true},
        {"group": "", "plural": "services", "kind": "Service", "namespaced": true},
        {"group": "", "plural": "namespaces", "kind": "Namespace", "namespaced": false},
        {"group": "apps", "plural": "deployments", "kind": "Deployment", "namespaced": true},
    ])
}

/// Cluster `a`: alice may list Deployments in `shop` (a Role), view pods and services in
/// `pay` (a RoleBinding to a ClusterRole), get the `web` Service of `shop` by name; the
/// group `ops` may list everything everywhere.
fn rules_of_a(with_pay_binding: bool) -> Value {
    let mut role_bindings = vec![
        json!({"namespace": "shop", "name": "alice-deploys",
               "roleRef": {"kind": "Role", "name": "deployer", "apiGroup": "rbac.authorization.k8s.io"},
               "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}]}),
        json!({"namespace": "shop", "name": "alice-web",
               "roleRef": {"kind": "Role", "name": "web-only", "apiGroup": "rbac.authorization.k8s.io"},
               "subjects": [{"kind": "User", "name": "alice"}]}),
    ];
    if with_pay_binding {
        role_bindings.push(json!({"namespace": "pay", "name": "alice-view",
            "roleRef": {"kind": "ClusterRole", "name": "viewer", "apiGroup": "rbac.authorization.k8s.io"},
            "subjects": [{"kind": "User", "name": "alice"}]}));
    }
    json!({
        "cluster": "a",
        "roles": [
            {"namespace": "shop", "name": "deployer",
             "rules": [{"verbs": ["get", "list", "watch"], "apiGroups": ["apps"], "resources": ["deployments"]}]},
            {"namespace": "shop", "name": "web-only",
             "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["services"], "resourceNames": ["web"]}]},
        ],
        "clusterRoles": [
            {"name": "viewer", "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["pods", "services"]}]},
            {"name": "everything", "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]},
        ],
        "roleBindings": role_bindings,
        "clusterRoleBindings": [
            {"name": "ops", "roleRef": {"kind": "ClusterRole", "name": "everything"},
             "subjects": [{"kind": "Group", "name": "ops"}]},
        ],
        "types": types(),
    })
}

fn objects() -> Vec<Value> {
    let mut out = Vec::new();
    for ns in ["shop", "pay", "hr"] {
        out.push(instance(
            ns,
            "Deployment",
            &format!("{ns}-api"),
            json!({"app": "api"}),
        ));
        out.push(instance(
            ns,
            "Pod",
            &format!("{ns}-api-1"),
            json!({"app": "api"}),
        ));
        out.push(instance(ns, "Service", "web", json!({"app": "web"})));
        out.push(instance(ns, "Service", "db", json!({"app": "db"})));
    }
    // Cluster-scoped objects are sent in the namespace `_cluster`.
    out.push(instance("_cluster", "Namespace", "shop", json!({})));
    out
}

fn user(name: &str, groups: &[&str]) -> UserInfo {
    let mut groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    groups.push("system:authenticated".into());
    UserInfo {
        name: name.into(),
        groups,
    }
}

fn listing() -> SearchRequest {
    SearchRequest {
        query: String::new(),
        mode: SearchMode::Keyword,
        limit: Some(100),
        ..Default::default()
    }
}

/// `cluster/namespace/kind/name` of every hit of a keyword listing by `who`.
async fn visible(h: &Harness, who: &UserInfo) -> BTreeSet<String> {
    let scope = h.state.scope_of_user(who, None).await;
    let hits = h
        .state
        .searcher_for(scope)
        .search(&listing())
        .await
        .expect("search");
    hits.into_iter()
        .map(|hit| {
            format!(
                "{}/{}/{}/{}",
                hit.cluster, hit.namespace, hit.kind, hit.name
            )
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn each_caller_reads_only_what_their_clusters_rules_grant_and_counts_say_no_more() {
    let h = Harness::start().await;
    sync(&h, "a", objects()).await;
    sync(&h, "b", objects()).await;
    let (status, body) = post_access(&h, &rules_of_a(true)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["objects"], 8, "{body}");

    let alice = user("alice", &[]);
    let expected = set(&[
        "a/shop/Deployment/shop-api",
        "a/shop/Service/web",
        "a/pay/Pod/pay-api-1",
        "a/pay/Service/web",
        "a/pay/Service/db",
    ]);
    assert_eq!(
        visible(&h, &alice).await,
        expected,
        "cluster b has no rules: nothing of it"
    );

    // Ops see everything of a (Namespaces included), nothing of b (no rules there).
    let ops = visible(&h, &user("carol", &["ops"])).await;
    assert_eq!(ops.len(), 13, "{ops:?}");
    assert!(ops.iter().all(|o| o.starts_with("a/")), "{ops:?}");
    assert!(ops.contains("a/_cluster/Namespace/shop"), "{ops:?}");

    // Nobody bound: told so by search and by the cluster list, never an empty answer.
    let nobody = user("mallory", &[]);
    let scope = h.state.scope_of_user(&nobody, None).await;
    let searcher = h.state.searcher_for(scope);
    let err = searcher
        .search(&listing())
        .await
        .expect_err("mallory sees nothing");
    assert!(
        err.to_string().contains("mallory may read nothing"),
        "{err}"
    );
    let err = searcher
        .clusters(std::time::Duration::from_secs(900))
        .await
        .expect_err("no cluster of mallory's");
    assert!(err.to_string().contains("may read nothing"), "{err}");

    // Counts and group-bys count only what alice may see.
    let scope = h.state.scope_of_user(&alice, None).await;
    let searcher = h.state.searcher_for(scope);
    let count = searcher
        .count(&CountBody {
            group_by: Some(GroupBy::Kind),
            ..Default::default()
        })
        .await
        .expect("count");
    assert_eq!(count.total, 5, "{count:?}");
    let clusters = searcher
        .clusters(std::time::Duration::from_secs(900))
        .await
        .expect("clusters");
    let listed: Vec<(String, usize)> = clusters
        .clusters
        .iter()
        .map(|c| (c.id.to_string(), c.objects))
        .collect();
    assert_eq!(listed, vec![("a".to_string(), 5)]);

    // A page is full: the scope is in the store query, not applied to the hits after it.
    let page = searcher
        .search(&SearchRequest {
            query: "web service".into(),
            limit: Some(3),
            ..Default::default()
        })
        .await
        .expect("search");
    assert_eq!(page.len(), 3, "{page:?}");
    assert!(page.iter().all(|hit| expected.contains(&format!(
        "{}/{}/{}/{}",
        hit.cluster, hit.namespace, hit.kind, hit.name
    ))));

    // A cluster alice sees nothing of is unknown to her.
    let err = searcher
        .search(&SearchRequest {
            cluster: Some("b".into()),
            ..listing()
        })
        .await
        .expect_err("b is not hers");
    assert!(err.to_string().contains("unknown cluster"), "{err}");
}

#[tokio::test]
async fn a_revoked_binding_hides_what_it_granted_and_another_server_on_the_store_reads_the_rules() {
    let h = Harness::start().await;
    sync(&h, "a", objects()).await;
    assert_eq!(post_access(&h, &rules_of_a(true)).await.0, 200);
    let alice = user("alice", &[]);
    assert!(visible(&h, &alice).await.contains("a/pay/Pod/pay-api-1"));

    // A second server on the same store: the rules are read from the store.
    let replica = ingest::server::AppState::new(
        ingest::pipeline::Pipeline::new(
            h.store.clone(),
            std::sync::Arc::new(
                ingest::embed::voyage::VoyageEmbedder::new(common::voyage_config(&h.voyage))
                    .expect("voyage client"),
            ),
            common::COLLECTION,
        ),
        Default::default(),
    );
    let replica_sees = async || {
        let scope = replica.scope_of_user(&alice, None).await;
        let searcher = replica.searcher_for(scope);
        searcher
            .search(&listing())
            .await
            .expect("search on the replica")
    };
    let seen = replica_sees().await;
    assert_eq!(seen.len(), 5, "{seen:?}");

    // Revoked: the RoleBinding in pay is gone from the next snapshot.
    assert_eq!(post_access(&h, &rules_of_a(false)).await.0, 200);
    let now = visible(&h, &alice).await;
    assert_eq!(
        now,
        set(&["a/shop/Deployment/shop-api", "a/shop/Service/web"]),
        "{now:?}"
    );
    // The replica reads it within its refresh interval.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let seen = replica_sees().await;
        if seen.len() == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replica still shows {} objects",
            seen.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn malformed_access_rules_are_refused_and_change_nothing() {
    let h = Harness::start().await;
    sync(&h, "a", objects()).await;
    assert_eq!(post_access(&h, &rules_of_a(true)).await.0, 200);
    let (status, body) = post_access(&h, &json!({"cluster": "a", "roles": [{"name": 3}]})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        text_at(&body, "/details/0/field").contains("roles"),
        "{body}"
    );
    let (status, body) = post_access(&h, &json!({"cluster": "Not A Cluster"})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(visible(&h, &user("alice", &[])).await.len(), 5);
}
