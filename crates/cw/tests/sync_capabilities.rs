//! `cw sync-capabilities` as a user runs it: the demo cluster's types into the embedded
//! store with the local model, once, then again with nothing changed.
//!
//! Needs the local model: `cw model fetch` (or scripts/setup), or CW_MODEL_DIR.

mod common;

use std::process::Command;

use common::{model_dir, start_demo_cluster};
use ingest::store::embedded::EmbeddedStore;
use ingest::store::VectorStore;
use serde_json::Value;

fn sync_capabilities(kubeconfig: &std::path::Path, data_dir: &std::path::Path) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_cw"))
        .args(["sync-capabilities", "--output", "json"])
        .env("KUBECONFIG", kubeconfig)
        .env("CW_DATA_DIR", data_dir)
        .env("CW_MODEL_DIR", model_dir())
        .env_remove("CHROMA_URL")
        .env_remove("CW_EMBEDDING_PROVIDER")
        .env_remove("CW_LLM_URL")
        .env_remove("CW_SYNC_ENDPOINT")
        .output()
        .expect("running cw");
    assert!(
        output.status.success(),
        "cw sync-capabilities failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("a JSON summary on stdout")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_clusters_types_are_stored_once_and_an_unchanged_rerun_sends_nothing() {
    let work = tempfile::tempdir().expect("temp dir");
    let data_dir = work.path().join("data");
    let (_sim, kubeconfig) = start_demo_cluster(work.path()).await;

    let first = sync_capabilities(&kubeconfig, &data_dir);
    let types = first["types"].as_u64().expect("types");
    assert!(types >= 20, "the demo serves at least 20 types: {first}");
    assert_eq!(first["upserted"], types, "{first}");
    assert_eq!(
        (&first["new"], &first["changed"]),
        (&first["types"], &serde_json::json!(0)),
        "{first}"
    );

    let again = sync_capabilities(&kubeconfig, &data_dir);
    assert_eq!(
        again["upserted"], 0,
        "an unchanged rerun sent capabilities: {again}"
    );
    assert_eq!(again["unchanged"], types, "{again}");
    assert_eq!(
        (&again["new"], &again["changed"], &again["deleted"]),
        (
            &serde_json::json!(0),
            &serde_json::json!(0),
            &serde_json::json!(0)
        ),
        "{again}"
    );

    let store = EmbeddedStore::open_in_dir(&data_dir).expect("the store opens");
    let stored = store
        .all_hashes("capabilities", None)
        .await
        .expect("hashes");
    assert_eq!(stored.len() as u64, types);
    for id in [
        "clusters.postgresql.cnpg.io",
        "certificates.cert-manager.io",
        "statefulsets.apps",
    ] {
        assert!(
            stored.contains_key(id),
            "{id} missing from {:?}",
            stored.keys()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_fails_with_a_message_saying_so() {
    let work = tempfile::tempdir().expect("temp dir");
    let (_sim, kubeconfig) = start_demo_cluster(work.path()).await;
    // Nothing listens on this port.
    let closed = format!("http://127.0.0.1:{}", testkit::free_port());
    let output = Command::new(env!("CARGO_BIN_EXE_cw"))
        .args(["sync-capabilities", "--retries", "0", "--endpoint", &closed])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("CW_SYNC_ENDPOINT")
        .output()
        .expect("running cw");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "stderr:\n{stderr}");
    assert!(
        stderr.contains("capability sync failed") && stderr.contains("ingest unavailable"),
        "the message says the destination is unreachable:\n{stderr}"
    );
}
