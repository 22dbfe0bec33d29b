//! Live details across a fleet: two simulated clusters, a watcher each into one `cw serve`
//! (the binary, on the embedded store and the Voyage stand-in) that holds a kubeconfig for
//! one of them only (`--cluster-kubeconfigs`). After indexing, both clusters' databases
//! become ready, and their watchers are stopped so that the index keeps the old status:
//! `get_resource` over `/mcp` (the Python `mcp` SDK) reads the connected cluster live (the
//! new status), answers for the other from the index (the old status) with a note that says
//! so and how to connect it, and names the known clusters for an unknown one.
//!
//! Needs .venv with `mcp` (scripts/setup).

mod common;

use std::time::Duration;

use common::mcp_client::{drive, ok, tool_error};
use common::watch::{self, Watching};
use common::CwProcess;
use kube_sim::{SimConfig, SimHandle, SimServer};
use serde_json::{json, Value};
use testkit::VoyageStandin;

const TOKEN: &str = "fleet-live-token";
const LEDGER: &str = "data/apps/v1/StatefulSet/ledger";

fn ledger(ready: u64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "ledger", "namespace": "data",
                     "labels": {"app.kubernetes.io/name": "postgres"}},
        "spec": {"replicas": 3, "serviceName": "ledger",
                 "selector": {"matchLabels": {"app": "ledger"}},
                 "template": {"metadata": {"labels": {"app": "ledger"}},
                              "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}}},
        "status": {"replicas": 3, "readyReplicas": ready}
    })
}

/// A watcher of StatefulSets in `sim`, sending to `base` as cluster `id`, once it is ready.
async fn start_watcher(sim: &SimHandle, base: &str, id: &str) -> Watching {
    watch::start_as_cluster(sim, &["statefulsets"], base, TOKEN, id).await
}

/// `cw serve` on the embedded store in `work`, the Voyage stand-in at `voyage` embedding,
/// with the kubeconfigs of `kubeconfigs` for live reads.
fn start_serve(work: &std::path::Path, kubeconfigs: &std::path::Path, voyage: &str) -> CwProcess {
    CwProcess::serve(
        work,
        &[
            ("CW_DATA_DIR", work.join("data").display().to_string()),
            ("CW_EMBEDDING_PROVIDER", "voyage".into()),
            ("VOYAGE_API_KEY", "test".into()),
            ("VOYAGE_BASE_URL", voyage.into()),
            ("CW_INGEST_TOKEN", TOKEN.into()),
            ("CW_CLUSTER_KUBECONFIGS", kubeconfigs.display().to_string()),
        ],
    )
}

/// Polls the search API until `cluster` holds the ledger with `0/3 replicas ready`.
async fn wait_indexed(serve: &mut CwProcess, cluster: &str) {
    let body = json!({"query": "ledger", "mode": "keyword", "cluster": cluster});
    let what = format!("cluster {cluster}'s ledger indexed");
    serve
        .wait_for(&what, Duration::from_secs(30), async |serve: &CwProcess| {
            let (_, answer) = serve.post("/api/v1/search", &body).await;
            let indexed = answer["results"].as_array().is_some_and(|r| {
                r.iter()
                    .any(|h| h["id"] == LEDGER && h["health"]["reason"] == "0/3 replicas ready")
            });
            if indexed {
                Ok(())
            } else {
                Err(format!("the search answers {answer}"))
            }
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_resource_reads_a_connected_cluster_live_and_answers_for_another_from_the_index() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let work = tempfile::tempdir().expect("temp dir");
    let alpha = SimServer::start(SimConfig::default()).await.expect("alpha");
    let beta = SimServer::start(SimConfig::default()).await.expect("beta");
    for sim in [&alpha, &beta] {
        sim.apply(ledger(0)).expect("ledger");
    }
    // A kubeconfig for alpha only, named by its cluster id; beside it what a mounted
    // Secret also holds, which is skipped.
    let kubeconfigs = work.path().join("clusters");
    alpha
        .write_kubeconfig(kubeconfigs.join("alpha"))
        .expect("alpha's kubeconfig");
    std::fs::create_dir(kubeconfigs.join("..data")).expect("..data");
    let voyage = VoyageStandin::start().await;
    let mut serve = start_serve(work.path(), &kubeconfigs, &voyage.base_url());
    serve.wait_ready().await;

    let watch_a = start_watcher(&alpha, &serve.base, "alpha").await;
    let watch_b = start_watcher(&beta, &serve.base, "beta").await;
    wait_indexed(&mut serve, "alpha").await;
    wait_indexed(&mut serve, "beta").await;
    // The watchers stop, so the index keeps 0/3; then both clusters' ledgers become ready.
    for mut watching in [watch_a, watch_b] {
        watching.stop().await;
    }
    for sim in [&alpha, &beta] {
        sim.apply(ledger(3)).expect("ready ledger");
    }

    let long_id = "x".repeat(100_000);
    let plan = json!({"calls": [
        {"tool": "get_resource", "args": {"id": LEDGER, "cluster": "alpha"}},
        {"tool": "get_resource", "args": {"id": format!("beta:{LEDGER}")}},
        {"tool": "get_resource", "args": {"kind": "StatefulSet", "name": "ledger", "namespace": "data", "cluster": "beta"}},
        {"tool": "get_resource", "args": {"id": LEDGER, "cluster": "gamma"}},
        {"tool": "get_resource", "args": {"id": LEDGER}},
        {"tool": "get_resource", "args": {"id": long_id}},
        {"tool": "list_clusters"}
    ]});
    let url = format!("{}/mcp", serve.base);
    let report = drive(&["http", &url, TOKEN], plan, &[]);
    // docs/agents.md shows the answer from the index of this exchange.
    if let Some(path) = std::env::var_os("CW_FLEET_LIVE_TRANSCRIPT") {
        let text = serde_json::to_string_pretty(&report).expect("report");
        std::fs::write(path, text).expect("writing the transcript");
    }
    let text_of = |i: usize| report["calls"][i]["content"].to_string();

    // alpha: read live, so the status changed since indexing shows.
    let live = ok(&report, 0);
    assert_eq!(live["source"], "live", "{live}");
    assert_eq!(live["cluster"], "alpha", "{live}");
    assert!(
        live["healthReason"]
            .as_str()
            .is_some_and(|r| r.starts_with("3/3")),
        "the live status, not the index's: {live}"
    );
    assert!(
        live["status"]
            .as_array()
            .is_some_and(|s| s.iter().any(|l| l == "readyReplicas: 3")),
        "{live}"
    );

    // beta: no connection, so what the index holds, marked as such, with how to connect it.
    for i in [1, 2] {
        let indexed = ok(&report, i);
        assert_eq!(indexed["source"], "index", "{indexed}");
        assert_eq!(indexed["cluster"], "beta", "{indexed}");
        assert_eq!(
            (&indexed["health"], &indexed["healthReason"]),
            (&json!("InProgress"), &json!("0/3 replicas ready")),
            "the index's status, as of the last sync: {indexed}"
        );
        assert_eq!(indexed["images"], json!(["postgres:16"]), "{indexed}");
        assert!(
            indexed["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("StatefulSet ledger")),
            "{indexed}"
        );
        let note = indexed["notes"][0].as_str().unwrap_or_default();
        assert!(
            note.starts_with("From the index, as of the cluster's last sync")
                && note.contains("no connection to cluster beta")
                && note.contains("--cluster-kubeconfigs"),
            "{note}"
        );
    }

    // An unknown cluster names the known ones; an id in two clusters asks for one.
    let unknown = tool_error(&report, 3);
    assert!(
        unknown.contains("unknown cluster gamma") && unknown.contains("alpha, beta"),
        "{unknown}"
    );
    let ambiguous = tool_error(&report, 4);
    assert!(
        ambiguous.contains("several clusters (alpha, beta)"),
        "{ambiguous}"
    );
    // A 100 KB id is refused, cut with its size, not echoed.
    let refused = tool_error(&report, 5);
    assert!(refused.contains("(100000 bytes in all)"), "{refused}");
    assert!(text_of(5).len() < 1_000, "{} bytes", text_of(5).len());

    let clusters = ok(&report, 6)["clusters"]
        .as_array()
        .expect("clusters")
        .clone();
    let live_access = |name: &str| {
        clusters
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["liveAccess"].clone())
    };
    assert_eq!(live_access("alpha"), Some(json!(true)), "{clusters:?}");
    assert_eq!(live_access("beta"), Some(json!(false)), "{clusters:?}");
}
