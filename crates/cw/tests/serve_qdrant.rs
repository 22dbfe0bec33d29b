//! `cw serve --qdrant-url` as a process: the flags choose the Qdrant store (with its API
//! key), syncs land in Qdrant, and the hashes and search endpoints read them back. Against
//! the Qdrant test server of testkit and the Voyage stand-in.

mod common;

use std::process::Command;

use common::CwProcess;
use serde_json::{json, Value};
use testkit::{QdrantServer, VoyageStandin};

fn instance(kind: &str, name: &str, tier: &str) -> Value {
    json!({
        "id": format!("shop/apps/v1/{kind}/{name}"),
        "namespace": "shop", "name": name, "kind": kind,
        "apiVersion": "apps/v1", "apiGroup": "apps",
        "labels": {"app.kubernetes.io/name": name, "tier": tier},
        "annotations": {}, "createdAt": "2026-02-20T10:00:00Z",
    })
}

#[tokio::test]
async fn cw_serve_with_a_qdrant_url_stores_in_qdrant_with_its_api_key() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let qdrant = tokio::task::spawn_blocking(|| QdrantServer::start_with_key(Some("q-key")))
        .await
        .expect("start the Qdrant test server");
    let voyage = VoyageStandin::start().await;
    let data_dir = tempfile::tempdir().expect("temp dir");
    let work = tempfile::tempdir().expect("temp dir");
    let mut serve = CwProcess::serve(
        work.path(),
        &[
            ("QDRANT_URL", qdrant.url()),
            ("QDRANT_API_KEY", "q-key".into()),
            ("CW_DATA_DIR", data_dir.path().display().to_string()),
            ("CW_EMBEDDING_PROVIDER", "voyage".into()),
            ("VOYAGE_API_KEY", "test".into()),
            ("VOYAGE_BASE_URL", voyage.base_url()),
        ],
    );
    serve.wait_ready().await;

    let payload = json!({"upserts": [
        instance("Deployment", "web", "frontend"),
        instance("StatefulSet", "db", "data"),
    ]});
    serve.post_json("/api/v1/instances/sync", payload).await;

    let hashes = serve.get_json("/api/v1/instances/hashes").await;
    let mut ids: Vec<&str> = hashes["hashes"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["shop/apps/v1/Deployment/web", "shop/apps/v1/StatefulSet/db"]
    );

    let hits = serve
        .post_json(
            "/api/v1/search",
            json!({"query": "database", "labels": ["tier=data"], "mode": "semantic"}),
        )
        .await;
    let found: Vec<&str> = hits["results"]
        .as_array()
        .unwrap_or_else(|| panic!("search answer: {hits}"))
        .iter()
        .filter_map(|h| h["id"].as_str())
        .collect();
    assert_eq!(found, ["shop/apps/v1/StatefulSet/db"]);

    // The documents are in Qdrant, in a collection that records the model; the embedded
    // store's directory stayed empty.
    let info: Value = serve
        .http
        .get(format!("{}/collections/instances", qdrant.url()))
        .header("api-key", "q-key")
        .send()
        .await
        .expect("the Qdrant test server answers")
        .json()
        .await
        .expect("collection info");
    assert_eq!(info["result"]["points_count"], 2, "{info}");
    assert_eq!(
        info["result"]["config"]["metadata"]["cw_embedding_model"],
        "voyage:voyage-3.5"
    );
    assert_eq!(std::fs::read_dir(data_dir.path()).unwrap().count(), 0);
}

#[test]
fn cw_serve_with_both_a_chroma_and_a_qdrant_url_says_to_choose_one() {
    let out = Command::new(env!("CARGO_BIN_EXE_cw"))
        .args(["serve", "--port", "0"])
        .env("CHROMA_URL", "http://127.0.0.1:1")
        .env("QDRANT_URL", "http://127.0.0.1:2")
        .env("CW_EMBEDDING_PROVIDER", "voyage")
        .env("VOYAGE_API_KEY", "test")
        .output()
        .expect("run cw serve");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("choose one store"), "{stderr}");
}
