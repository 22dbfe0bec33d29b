//! Does the index answer questions? `cw run` (embedded store, local model) on the
//! simulator's demo cluster (deploy/demo: web apps, PostgreSQL/MySQL/Redis StatefulSets, a
//! CloudNativePG cluster, RabbitMQ, cert-manager certificates), then the questions a user
//! asks, through `POST /api/v1/search` as `cw search` and `cw ask` send them.
//!
//! Needs the local model: `cw model fetch` (or scripts/setup), or CW_MODEL_DIR.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{start_demo_cluster, CwProcess};
use kube_sim::SimHandle;
use serde_json::{json, Value};

/// The demo's web applications: never an answer to a question about databases.
const WEB_APPS: [&str; 2] = ["shop/storefront", "shop/checkout-api"];

fn where_of(hit: &Value) -> String {
    format!(
        "{}/{}",
        hit["namespace"].as_str().unwrap_or(""),
        hit["name"].as_str().unwrap_or("")
    )
}

/// `namespace/name` of every instance in an `ask` answer, and the type ids.
fn ask_summary(answer: &Value) -> (Vec<String>, Vec<String>) {
    let types = answer["types"].as_array().cloned().unwrap_or_default();
    let ids = types
        .iter()
        .map(|t| t["id"].as_str().unwrap_or("").to_string())
        .collect();
    let instances = types
        .iter()
        .flat_map(|t| t["instances"].as_array().cloned().unwrap_or_default())
        .map(|i| where_of(&i))
        .collect();
    (ids, instances)
}

/// The answer of `question` asked through the search API (ten answers), with its type ids
/// and the `namespace/name` of its instances.
async fn ask(cw: &CwProcess, question: &str) -> (Value, Vec<String>, Vec<String>) {
    let answer = cw
        .post_json(
            "/api/v1/search",
            json!({"query": question, "ask": true, "limit": 10}),
        )
        .await;
    let (types, instances) = ask_summary(&answer);
    (answer, types, instances)
}

/// `namespace/name` of every demo object of a type, from the simulator itself.
fn cluster_objects(sim: &SimHandle, api_version: &str, kind: &str) -> BTreeSet<String> {
    sim.list(api_version, kind, None)
        .expect("listing the simulator")
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["metadata"]["namespace"].as_str().unwrap_or("_cluster"),
                o["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// Waits until every demo object and the demo's custom types are indexed.
async fn wait_indexed(cw: &mut CwProcess, sim: &SimHandle) {
    let want_instances = cluster_objects(sim, "apps/v1", "StatefulSet").len()
        + cluster_objects(sim, "postgresql.cnpg.io/v1", "Cluster").len();
    let within = Duration::from_secs(180);
    cw.wait_for(
        "the demo cluster indexed",
        within,
        async |cw: &CwProcess| {
            let databases = cw
                .search(
                    json!({"query": "", "mode": "keyword", "kind": "StatefulSet", "limit": 1000}),
                )
                .await
                .len()
                + cw.search(
                    json!({"query": "", "mode": "keyword", "kind": "Cluster", "limit": 1000}),
                )
                .await
                .len();
            let capability = cw
                .search(
                    json!({"query": "", "mode": "keyword", "collection": "capabilities",
                           "kind": "Certificate", "limit": 10}),
                )
                .await;
            if databases == want_instances && !capability.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{databases} of {want_instances} database objects, certificate type \
                 {capability:?}"
                ))
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn questions_about_the_demo_cluster_find_the_right_types_and_instances() {
    let work = tempfile::tempdir().expect("temp dir");
    let (sim, kubeconfig) = start_demo_cluster(work.path()).await;
    let mut cw = CwProcess::run(&kubeconfig, &work.path().join("data"), work.path());
    cw.wait_ready().await;
    wait_indexed(&mut cw, &sim).await;

    // "What databases are running?" through ask: PostgreSQL (StatefulSet and the
    // CloudNativePG cluster) and MySQL. (The Redis StatefulSet, described as a session cache,
    // answers "caches": tests/relevance/demo.yaml.)
    let (answer, types, instances) = ask(&cw, "what databases are running?").await;
    assert!(
        types.iter().any(|t| t == "clusters.postgresql.cnpg.io"),
        "the CloudNativePG Cluster type should answer a question about databases: {types:?}"
    );
    for db in [
        "data/orders-db",
        "data/analytics-postgres",
        "data/catalog-mysql",
    ] {
        assert!(
            instances.iter().any(|i| i == db),
            "{db} missing from the answer to \"what databases are running?\": {instances:?}\n{answer:#}"
        );
    }
    for web in WEB_APPS {
        assert!(
            !instances.iter().any(|i| i == web),
            "the web app {web} should not answer a question about databases: {instances:?}"
        );
    }

    // The same question as a plain (hybrid) search, without the bridge: the three databases
    // lead in some order (the PostgreSQL and MySQL StatefulSets, labelled
    // component=database, and the CloudNativePG cluster, a PostgreSQL database by its
    // type), and no web app is in the top 8.
    let top = cw
        .search(json!({"query": "what databases are running?", "limit": 8}))
        .await;
    let mut first_three = top[..3.min(top.len())].to_vec();
    first_three.sort();
    assert_eq!(
        first_three,
        ["data/analytics-postgres", "data/catalog-mysql", "data/orders-db"],
        "the PostgreSQL, MySQL and CloudNativePG databases should lead a plain search for databases: {top:?}"
    );
    assert!(
        !top.iter().any(|h| WEB_APPS.contains(&h.as_str())),
        "no web app in the top 8 for databases: {top:?}"
    );

    // "Certificates": cert-manager's types first, then their instances.
    let (_, types, instances) = ask(&cw, "certificates").await;
    assert_eq!(
        types.first().map(String::as_str),
        Some("certificates.cert-manager.io"),
        "the certificate type should lead: {types:?}"
    );
    for cert in cluster_objects(&sim, "cert-manager.io/v1", "Certificate") {
        assert!(
            instances.contains(&cert),
            "certificate {cert} missing from {instances:?}"
        );
    }
    let capabilities = cw
        .post_json(
            "/api/v1/search",
            json!({"query": "TLS certificates", "collection": "capabilities", "limit": 3}),
        )
        .await;
    let first = capabilities["results"][0]["kind"].as_str().unwrap_or("");
    assert_eq!(first, "Certificate", "capability search: {capabilities:#}");

    // Exact filters return exactly the matching instances, whatever the query.
    let services = cluster_objects(&sim, "v1", "Service");
    let found: BTreeSet<String> = cw
        .search(json!({"query": "", "mode": "keyword", "kind": "Service", "limit": 1000}))
        .await
        .into_iter()
        .collect();
    assert_eq!(found, services, "kind = Service");
    let in_data: BTreeSet<String> = cw
        .search(
            json!({"query": "database", "kind": "StatefulSet", "namespace": "data",
                       "limit": 1000}),
        )
        .await
        .into_iter()
        .collect();
    let want: BTreeSet<String> = cluster_objects(&sim, "apps/v1", "StatefulSet")
        .into_iter()
        .filter(|o| o.starts_with("data/"))
        .collect();
    assert_eq!(in_data, want, "kind = StatefulSet, namespace = data");
    // A label filter: every indexed object carrying the label, whatever its type, and
    // nothing else (the simulator says which objects carry it).
    let (key, value) = ("app.kubernetes.io/instance", "catalog-mysql");
    // The default exclusions: the demo's labelled Secret is not indexed unless asked.
    let excluded = [
        "events",
        "leases",
        "endpointslices",
        "componentstatuses",
        "secrets",
    ];
    let want: BTreeSet<String> = sim
        .served_types()
        .into_iter()
        .filter(|(_, _, plural, _)| !excluded.contains(&plural.as_str()))
        .flat_map(|(api_version, kind, _, _)| {
            sim.list(&api_version, &kind, None)
                .expect("list")
                .into_iter()
                .filter(|o| o["metadata"]["labels"][key].as_str() == Some(value))
                .map(move |o| format!("{kind} {}", o["metadata"]["name"].as_str().unwrap_or("")))
        })
        .collect();
    assert!(
        want.len() >= 2,
        "the demo labels the MySQL StatefulSet and Service (and a Secret, not indexed): {want:?}"
    );
    let answer = cw
        .post_json(
            "/api/v1/search",
            json!({"query": "anything", "labels": [format!("{key}={value}")], "limit": 1000}),
        )
        .await;
    let found: BTreeSet<String> = answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|h| {
            format!(
                "{} {}",
                h["kind"].as_str().unwrap_or(""),
                h["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(found, want, "label {key}={value}");
}
