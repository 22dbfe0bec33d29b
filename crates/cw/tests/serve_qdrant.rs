//! `cw serve --qdrant-url` as a process: the flags choose the Qdrant store (with its API
//! key), syncs land in Qdrant, and the hashes and search endpoints read them back. Against
//! the Qdrant test server of testkit and the Voyage stand-in.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::{QdrantServer, VoyageStandin};

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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
    let port = testkit::free_port();
    let mut serve = Serve(
        Command::new(env!("CARGO_BIN_EXE_cw"))
            .arg("serve")
            .env("CW_HOST", "127.0.0.1")
            .env("CW_PORT", port.to_string())
            .env("QDRANT_URL", qdrant.url())
            .env("QDRANT_API_KEY", "q-key")
            .env("CW_DATA_DIR", data_dir.path())
            .env("CW_EMBEDDING_PROVIDER", "voyage")
            .env("VOYAGE_API_KEY", "test")
            .env("VOYAGE_BASE_URL", voyage.base_url())
            .env_remove("CHROMA_URL")
            .env_remove("CW_INGEST_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the cw binary"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = serve.0.try_wait() {
            panic!("cw serve exited: {status}");
        }
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "cw serve never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let payload = json!({"upserts": [
        instance("Deployment", "web", "frontend"),
        instance("StatefulSet", "db", "data"),
    ]});
    let resp = http
        .post(format!("{base}/api/v1/instances/sync"))
        .json(&payload)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.text().await.unwrap_or_default()
    );

    let hashes: Value = http
        .get(format!("{base}/api/v1/instances/hashes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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

    let hits: Value = http
        .post(format!("{base}/api/v1/search"))
        .json(&json!({"query": "database", "labels": ["tier=data"], "mode": "semantic"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let found: Vec<&str> = hits["results"]
        .as_array()
        .unwrap_or_else(|| panic!("search answer: {hits}"))
        .iter()
        .filter_map(|h| h["id"].as_str())
        .collect();
    assert_eq!(found, ["shop/apps/v1/StatefulSet/db"]);

    // The documents are in Qdrant, in a collection that records the model; the embedded
    // store's directory stayed empty.
    let info: Value = http
        .get(format!("{}/collections/instances", qdrant.url()))
        .header("api-key", "q-key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
