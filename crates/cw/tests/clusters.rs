//! Clusters as an operator meets them, with the real binary: `cw serve` on the embedded
//! store (the Voyage stand-in embeds), two clusters synced over HTTP. `cw clusters` says
//! how long ago each was synced and heard from, and still does after `cw serve` restarts;
//! `cw search --cluster nope` names the known clusters instead of "No results."; `cw
//! clusters remove` retires one cluster and leaves the other; and with the server down the
//! local index tells the same.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::CwProcess;
use serde_json::{json, Value};
use testkit::VoyageStandin;

fn cw(data_dir: &Path, voyage: &VoyageStandin) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cw"));
    c.env("CW_DATA_DIR", data_dir)
        .env("CW_EMBEDDING_PROVIDER", "voyage")
        .env("VOYAGE_API_KEY", "test")
        .env("VOYAGE_BASE_URL", voyage.base_url())
        .env_remove("CHROMA_URL")
        .env_remove("QDRANT_URL")
        .env_remove("CW_SERVER_URL")
        .env_remove("CW_INGEST_TOKEN");
    c
}

/// `cw serve` on `port` with the store in `data_dir`, once it is ready; its log in `work`.
async fn serve(work: &Path, data_dir: &Path, voyage: &VoyageStandin, port: u16) -> CwProcess {
    let mut serve = CwProcess::serve_on(
        port,
        work,
        &[
            ("CW_DATA_DIR", data_dir.display().to_string()),
            ("CW_EMBEDDING_PROVIDER", "voyage".into()),
            ("VOYAGE_API_KEY", "test".into()),
            ("VOYAGE_BASE_URL", voyage.base_url()),
        ],
    );
    serve.wait_ready().await;
    serve
}

fn instance(name: &str) -> Value {
    json!({
        "id": format!("shop/apps/v1/Deployment/{name}"),
        "namespace": "shop", "name": name, "kind": "Deployment",
        "apiVersion": "apps/v1", "apiGroup": "apps",
        "labels": {"app": name}, "annotations": {}, "createdAt": "2026-02-20T10:00:00Z",
        "health": {"status": "Current"},
    })
}

/// Runs `cw` with `args` (off the async runtime: it may ask the server this test runs).
async fn run(mut command: Command, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || command.args(&args).output().expect("running cw"))
        .await
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The table's row of `cluster`, split into its cells (two spaces apart at least).
fn row(table: &str, cluster: &str) -> Option<Vec<String>> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(cluster))
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_keeps_its_last_sync_across_restarts_and_leaves_with_one_command() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let voyage = VoyageStandin::start().await;
    let data = tempfile::tempdir().expect("temp dir");
    let work = tempfile::tempdir().expect("temp dir");
    let port = testkit::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = serve(work.path(), data.path(), &voyage, port).await;
    for (cluster, names) in [("alpha", vec!["web"]), ("beta", vec!["api", "db", "cache"])] {
        let upserts: Vec<Value> = names.iter().map(|n| instance(n)).collect();
        let body = json!({"cluster": cluster, "upserts": upserts});
        server.post_json("/api/v1/instances/sync", body).await;
    }

    let listed = run(cw(data.path(), &voyage), &["clusters", "--server", &url]).await;
    let table = stdout(&listed);
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert_eq!(
        table
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["CLUSTER", "OBJECTS", "LAST", "SYNC", "LAST", "CONTACT", "STATE", "HEALTH"],
        "{table}"
    );
    let beta = row(&table, "beta").unwrap_or_else(|| panic!("{table}"));
    assert_eq!(beta[1], "3", "{table}");
    assert!(
        beta[2].ends_with("s ago") && beta[3].ends_with("s ago"),
        "{table}"
    );
    assert_eq!(beta[4], "ok", "{table}");

    // A restart forgets nothing: the times are in the store.
    server.terminate();
    let mut server = serve(work.path(), data.path(), &voyage, port).await;
    let listed = run(
        cw(data.path(), &voyage),
        &["clusters", "--server", &url, "--output", "json"],
    )
    .await;
    let answer: Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    for c in answer["clusters"].as_array().unwrap() {
        assert!(
            c["lastSync"].is_string() && c["lastContact"].is_string(),
            "{c}"
        );
        assert_eq!(c["stale"], false, "{c}");
    }

    // An unknown cluster is an error that names the known ones.
    let nope = run(
        cw(data.path(), &voyage),
        &["search", "web", "--cluster", "nope", "--server", &url],
    )
    .await;
    assert!(!nope.status.success(), "{}", stdout(&nope));
    assert!(
        stderr(&nope).contains("unknown cluster \"nope\": known clusters: alpha, beta"),
        "{}",
        stderr(&nope)
    );
    assert!(!stdout(&nope).contains("No results"));

    // Retire beta: one command, and alpha is as it was.
    let removed = run(
        cw(data.path(), &voyage),
        &["clusters", "remove", "beta", "--server", &url],
    )
    .await;
    assert!(removed.status.success(), "{}", stderr(&removed));
    assert!(
        stdout(&removed).starts_with("Removed cluster beta: 3 objects deleted"),
        "{}",
        stdout(&removed)
    );
    let listed = stdout(&run(cw(data.path(), &voyage), &["clusters", "--server", &url]).await);
    assert!(row(&listed, "beta").is_none(), "{listed}");
    assert_eq!(row(&listed, "alpha").unwrap()[1], "1", "{listed}");
    let again = run(
        cw(data.path(), &voyage),
        &["clusters", "remove", "beta", "--server", &url],
    )
    .await;
    assert!(again.status.success());
    assert!(
        stdout(&again).contains("nothing to remove"),
        "{}",
        stdout(&again)
    );

    // With the server down, the local index tells the same.
    server.terminate();
    let local = run(cw(data.path(), &voyage), &["clusters", "--local"]).await;
    let table = stdout(&local);
    assert!(local.status.success(), "{}", stderr(&local));
    let alpha = row(&table, "alpha").unwrap_or_else(|| panic!("{table}"));
    assert!(alpha[2].ends_with(" ago"), "{table}");
    assert!(row(&table, "beta").is_none(), "{table}");
    let nope = run(
        cw(data.path(), &voyage),
        &["search", "web", "--cluster", "beta", "--local"],
    )
    .await;
    assert!(
        stderr(&nope).contains("unknown cluster \"beta\": known clusters: alpha"),
        "{}",
        stderr(&nope)
    );
}
