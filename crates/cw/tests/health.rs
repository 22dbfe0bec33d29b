//! Health as a user meets it: `cw run` against the simulator, with the Voyage stand-in as
//! the embedding provider (it counts requests). A Deployment going from 1/3 to 3/3
//! available replicas, a failing Job, a Pod in CrashLoopBackOff and a custom resource with
//! Ready=False each show the right health and reason, a search filters on it, and a change
//! of health alone is stored without any embedding request. And one vocabulary: the same
//! object reads the same health through `cw search`, `cw ask`, the search API and the MCP
//! tools `search_resources`, `ask` and `get_resource`, and every surface takes the words
//! people type (`unhealthy`, `healthy`, `failing`, `progressing`) and refuses others
//! with the list (the MCP tools need .venv with the Python `mcp` SDK, as tests/mcp.rs).

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::mcp_client::{drive, ok, tool_error};
use common::{ask_instances, CwProcess};
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
    kube_sim::custom_resource_definition("example.com", "Cache", "caches")
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

/// A simulated cluster that serves the `Cache` custom type, and its kubeconfig in `work`.
async fn start_cluster(work: &std::path::Path) -> (kube_sim::SimHandle, std::path::PathBuf) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = SimServer::start(SimConfig::default())
        .await
        .expect("starting kube-sim");
    let kubeconfig = work.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    sim.apply(widget_crd()).expect("CRD");
    (sim, kubeconfig)
}

/// `cw run` against the cluster of `kubeconfig` with the Voyage stand-in as its provider,
/// once it is ready; its data and log in `work`.
async fn start_cw_run(
    kubeconfig: &std::path::Path,
    work: &std::path::Path,
    voyage: &testkit::VoyageStandin,
) -> CwProcess {
    let mut cw = CwProcess::run_with(
        kubeconfig,
        &work.join("data"),
        work,
        &[
            ("CW_EMBEDDING_PROVIDER", "voyage".into()),
            ("VOYAGE_API_KEY", "test-key".into()),
            ("VOYAGE_BASE_URL", voyage.base_url()),
        ],
    );
    cw.wait_ready().await;
    cw
}

/// Hits of a keyword search (no embedding request) by health, as (name, status, reason).
async fn by_health(cw: &CwProcess, health: &str) -> Vec<(String, String, String)> {
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
async fn ask(cw: &CwProcess, question: &str) -> Value {
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
    let work = tempfile::tempdir().expect("temp dir");
    let (sim, kubeconfig) = start_cluster(work.path()).await;
    create_with_status(&sim, deployment(1));
    create_with_status(&sim, failing_job());
    create_with_status(&sim, crashing_pod());
    create_with_status(&sim, cache("False"));

    let voyage = testkit::VoyageStandin::start().await;
    let mut cw = start_cw_run(&kubeconfig, work.path(), &voyage).await;

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
    cw.wait_until("the three failing objects", async |cw: &CwProcess| {
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
    cw.wait_until("the Deployment current", async |cw: &CwProcess| {
        by_health(cw, "current")
            .await
            .iter()
            .any(|(n, _, r)| n == "web" && r == "3/3 replicas available")
    })
    .await;
    cw.wait_until("the cache no longer failing", async |cw: &CwProcess| {
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
    cw.wait_until("the new image embedded", async |_: &CwProcess| {
        voyage.inputs() > embedded_before
    })
    .await;
    cw.terminate();
}

fn statefulset(ready: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "ledger", "namespace": NS},
        "spec": {
            "replicas": 1, "serviceName": "ledger",
            "selector": {"matchLabels": {"app": "ledger"}},
            "template": {"metadata": {"labels": {"app": "ledger"}},
                         "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}}
        },
        "status": {"replicas": 1, "readyReplicas": ready,
                   "currentRevision": "ledger-1", "updateRevision": "ledger-1"}
    })
}

/// Name → (status, reason), as every surface must say it.
type Healths = BTreeMap<String, (String, String)>;

fn healths(entries: &[(&str, &str, &str)]) -> Healths {
    entries
        .iter()
        .map(|(n, s, r)| (n.to_string(), (s.to_string(), r.to_string())))
        .collect()
}

/// The healths of search hits, which carry `{"status", "reason"}` (the API and the CLI).
fn of_hits<'a>(hits: impl Iterator<Item = &'a Value>) -> Healths {
    hits.map(|h| {
        let text = |k: &str| h["health"][k].as_str().unwrap_or_default().to_string();
        (
            h["name"].as_str().unwrap_or_default().to_string(),
            (text("status"), text("reason")),
        )
    })
    .collect()
}

/// The healths of MCP hit lines, which carry `"Status: reason"`.
fn of_lines<'a>(hits: impl Iterator<Item = &'a Value>) -> Healths {
    hits.map(|h| {
        let line = h["health"].as_str().unwrap_or_default();
        let (status, reason) = line.split_once(": ").unwrap_or((line, ""));
        (
            h["name"].as_str().unwrap_or_default().to_string(),
            (status.to_string(), reason.to_string()),
        )
    })
    .collect()
}

/// `cw ARGS --server BASE --output json`: its JSON answer, or its stderr when it fails.
fn cw_cli(base: &str, args: &[&str]) -> Result<Value, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_cw"))
        .args(args)
        .args(["--server", base, "--output", "json"])
        .env_remove("CW_INGEST_TOKEN")
        .env_remove("CW_SEARCH_LOCAL")
        .env("LOG_LEVEL", "warn")
        .output()
        .expect("running the cw binary");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    Ok(serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("cw {args:?} printed {stdout}: {e}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_object_reads_the_same_health_on_every_surface_and_filters_take_peoples_words() {
    let work = tempfile::tempdir().expect("temp dir");
    let (sim, kubeconfig) = start_cluster(work.path()).await;
    create_with_status(&sim, deployment(3));
    create_with_status(&sim, statefulset(0));
    create_with_status(&sim, failing_job());
    create_with_status(&sim, cache("False"));

    let voyage = testkit::VoyageStandin::start().await;
    let mut cw = start_cw_run(&kubeconfig, work.path(), &voyage).await;

    let unhealthy = healths(&[
        ("ledger", "InProgress", "0/1 replicas ready"),
        (
            "migrate",
            "Failed",
            "BackoffLimitExceeded: Job has reached the specified backoff limit",
        ),
        (
            "sessions",
            "Failed",
            "Ready=False: NoQuorum: 1 of 3 members reachable",
        ),
    ]);
    let healthy = healths(&[("web", "Current", "3/3 replicas available")]);
    let as_tuples = |h: &Healths| -> Vec<(String, String, String)> {
        h.iter()
            .map(|(n, (s, r))| (n.clone(), s.clone(), r.clone()))
            .collect()
    };
    cw.wait_until(
        "every object indexed with its health",
        async |cw: &CwProcess| {
            by_health(cw, "unhealthy").await == as_tuples(&unhealthy)
                && by_health(cw, "healthy").await == as_tuples(&healthy)
        },
    )
    .await;

    // The search API: the words people type, each the statuses it names.
    let only = |names: &[&str]| -> Vec<(String, String, String)> {
        as_tuples(&unhealthy)
            .into_iter()
            .chain(as_tuples(&healthy))
            .filter(|(n, _, _)| names.contains(&n.as_str()))
            .collect()
    };
    assert_eq!(
        by_health(&cw, "failing").await,
        only(&["migrate", "sessions"])
    );
    assert_eq!(by_health(&cw, "progressing").await, only(&["ledger"]));
    assert_eq!(by_health(&cw, "in-progress").await, only(&["ledger"]));
    assert_eq!(by_health(&cw, "Current").await, only(&["web"]));
    let refused = cw
        .http
        .post(format!("{}/api/v1/search", cw.base))
        .json(&json!({"query": "", "mode": "keyword", "health": "sick"}))
        .send()
        .await
        .expect("search");
    assert_eq!(refused.status(), 400);
    let refused: Value = refused.json().await.expect("error body");
    assert!(
        refused
            .to_string()
            .contains("unhealthy (Failed or InProgress)"),
        "the error lists the accepted words: {refused}"
    );

    // `cw search` and `cw ask` (through the server, as a user runs them).
    for (word, want) in [("unhealthy", &unhealthy), ("healthy", &healthy)] {
        let searched = cw_cli(
            &cw.base,
            &[
                "search",
                "",
                "--mode",
                "keyword",
                "--namespace",
                NS,
                "--health",
                word,
            ],
        )
        .expect("cw search");
        assert_eq!(
            &of_hits(searched["results"].as_array().unwrap().iter()),
            want,
            "cw search --health {word}"
        );
    }
    let asked = cw_cli(
        &cw.base,
        &["ask", "is anything unhealthy?", "--health", "unhealthy"],
    )
    .expect("cw ask");
    assert_eq!(
        of_hits(ask_instances(&asked).into_iter()),
        unhealthy,
        "{asked:#}"
    );
    assert_eq!(
        asked["health"],
        json!(["Failed", "InProgress"]),
        "{asked:#}"
    );
    let err = cw_cli(&cw.base, &["search", "x", "--health", "sick"]).expect_err("a bad word");
    assert!(err.contains("unhealthy (Failed or InProgress)"), "{err}");

    // The MCP tools, over Streamable HTTP at cw run's /mcp.
    let plan = json!({"calls": [
        {"tool": "search_resources", "args": {"namespace": NS, "health": "unhealthy"}},
        {"tool": "search_resources", "args": {"namespace": NS, "health": "healthy"}},
        {"tool": "ask", "args": {"question": "is anything unhealthy?", "health": "unhealthy"}},
        {"tool": "get_resource", "args": {"id": format!("{NS}/apps/v1/Deployment/web")}},
        {"tool": "get_resource", "args": {"id": format!("{NS}/apps/v1/StatefulSet/ledger")}},
        {"tool": "get_resource", "args": {"id": format!("{NS}/batch/v1/Job/migrate")}},
        {"tool": "get_resource", "args": {"id": format!("{NS}/example.com/v1/Cache/sessions")}},
        {"tool": "search_resources", "args": {"namespace": NS, "health": "sick"}},
        {"tool": "search_resources", "args": {"namespace": NS, "health": "failing", "mode": "count"}}
    ]});
    let report = drive(&["http", &format!("{}/mcp", cw.base)], plan, &[]);
    let lines = |i: usize| of_lines(ok(&report, i)["results"].as_array().unwrap().iter());
    assert_eq!(lines(0), unhealthy);
    assert_eq!(lines(1), healthy);
    let asked = ok(&report, 2);
    assert_eq!(
        of_lines(ask_instances(asked).into_iter()),
        unhealthy,
        "{asked}"
    );
    let live: Healths = (3..=6)
        .map(|i| {
            let d = ok(&report, i);
            let text = |k: &str| d[k].as_str().unwrap_or_default().to_string();
            (text("name"), (text("health"), text("healthReason")))
        })
        .collect();
    let mut everything = unhealthy.clone();
    everything.extend(healthy.clone());
    assert_eq!(live, everything, "get_resource says what the index holds");
    let err = tool_error(&report, 7);
    assert!(err.contains("unhealthy (Failed or InProgress)"), "{err}");
    assert_eq!(ok(&report, 8)["total"], 2);
    cw.terminate();
}
