//! `cw serve` and `cw reindex` as an operator runs them when changing the embedding model:
//! the built binary, the embedded store in a temporary data directory, the Voyage stand-in
//! (in this process) as the provider of two models of the same dimension.

mod common;

use std::process::Command;

use common::CwProcess;
use serde_json::{json, Value};
use testkit::VoyageStandin;

/// The environment of a command on `data` embedding with Voyage model `model` of `voyage`.
fn env(voyage: &VoyageStandin, data: &std::path::Path, model: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CW_EMBEDDING_PROVIDER", "voyage".into()),
        ("VOYAGE_API_KEY", "test-key".into()),
        ("VOYAGE_BASE_URL", voyage.base_url()),
        ("VOYAGE_MODEL", model.into()),
        ("CW_DATA_DIR", data.display().to_string()),
    ]
}

/// `cw <args>` with `env`; its status and its output (stdout then stderr).
fn cw(args: &[&str], env: &[(&'static str, String)]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_cw"))
        .args(args)
        .env("CW_PORT", testkit::free_port().to_string())
        .env("LOG_LEVEL", "warn")
        .env_remove("CHROMA_URL")
        .env_remove("QDRANT_URL")
        .env_remove("RUST_BACKTRACE")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("running cw");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn instance(namespace: &str, kind: &str, name: &str, app: &str) -> Value {
    json!({
        "id": format!("{namespace}/v1/{kind}/{name}"),
        "namespace": namespace, "name": name, "kind": kind,
        "apiVersion": "v1", "apiGroup": "", "labels": {"app": app},
        "createdAt": "2026-02-20T10:00:00Z",
    })
}

// Several workers: the stand-in answers while this thread waits for a cw command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_change_is_refused_at_start_until_cw_reindex_builds_the_index_for_it() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let voyage = VoyageStandin::start().await;
    let work = tempfile::tempdir().expect("temp dir");
    let data = work.path().join("data");
    let old = env(&voyage, &data, "voyage-3.5");
    let new = env(&voyage, &data, "voyage-3-large");

    let mut serve = CwProcess::serve(work.path(), &old);
    serve.wait_ready().await;
    let sync = json!({"cluster": "prod", "upserts": [
        instance("shop", "Service", "db", "postgres"),
        instance("shop", "ConfigMap", "web", "nginx"),
    ]});
    serve.post_json("/api/v1/instances/sync", sync).await;
    assert!(serve.terminate().success());

    // Another model id of the same dimension: refused at start, naming both and the command.
    let (started, text) = cw(&["serve"], &new);
    assert!(!started, "cw serve must refuse to start: {text}");
    assert!(
        text.contains("voyage:voyage-3.5 (1024 dimensions)"),
        "{text}"
    );
    assert!(
        text.contains("voyage:voyage-3-large (1024 dimensions)"),
        "{text}"
    );
    assert!(text.contains("cw reindex"), "{text}");

    let (done, text) = cw(&["reindex"], &new);
    assert!(done, "{text}");
    assert!(
        text.contains("generation 2 (voyage:voyage-3-large) is active"),
        "{text}"
    );
    assert!(text.contains("2 documents, 2 embedded"), "{text}");
    let (_, status) = cw(&["reindex", "--status"], &new);
    assert!(
        status.contains("active    generation 2 · voyage:voyage-3-large"),
        "{status}"
    );
    assert!(
        status.contains("previous  generation 1 · voyage:voyage-3.5"),
        "{status}"
    );

    let mut serve = CwProcess::serve(work.path(), &new);
    serve.wait_ready().await;
    let hits = serve.search(json!({"query": "postgres", "limit": 1})).await;
    assert_eq!(hits, vec!["shop/db"]);
    assert!(serve.terminate().success());
    let (started, text) = cw(&["serve"], &old);
    assert!(!started && text.contains("voyage:voyage-3-large"), "{text}");

    // Undone, then dropped.
    let (undone, text) = cw(&["reindex", "--activate", "1"], &old);
    assert!(undone, "{text}");
    let (_, status) = cw(&["reindex", "--status"], &old);
    assert!(
        status.contains("active    generation 1 · voyage:voyage-3.5"),
        "{status}"
    );
    let (dropped, text) = cw(&["reindex", "--drop-previous"], &old);
    assert!(dropped && text.contains("dropped generation 2"), "{text}");
    let (_, status) = cw(&["reindex", "--status"], &old);
    assert!(!status.contains("previous"), "{status}");
}

/// Polls `/readyz` of `cw` until it answers `status` (for 30 s); its body.
async fn readyz_until(cw: &CwProcess, status: u16) -> String {
    for _ in 0..300 {
        if let Ok(resp) = cw.http.get(format!("{}/readyz", cw.base)).send().await {
            if resp.status().as_u16() == status {
                return resp.text().await.unwrap_or_default();
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("/readyz never answered {status}; log:\n{}", cw.log_text());
}

/// The documented procedure on Chroma (docs/deploy.md): `cw reindex` beside a running server
/// of the old model; a server of the new model started during the build waits unready; at the
/// switch the old one turns unready, naming the new model, and the new one serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_follow_a_switch_made_by_cw_reindex_beside_them() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let voyage = VoyageStandin::start().await;
    let chroma = testkit::ChromaServer::start();
    let work = tempfile::tempdir().expect("temp dir");
    let on_chroma = |model: &str| {
        let mut env = env(&voyage, &work.path().join("unused"), model);
        env.push(("CHROMA_URL", chroma.url()));
        env
    };
    let (old, new) = (on_chroma("voyage-3.5"), on_chroma("voyage-3-large"));
    let old_dir = work.path().join("old");
    let new_dir = work.path().join("new");
    std::fs::create_dir_all(&old_dir).unwrap();
    std::fs::create_dir_all(&new_dir).unwrap();

    let mut serving = CwProcess::serve(&old_dir, &old);
    serving.wait_ready().await;
    let upserts: Vec<Value> = (0..120)
        .map(|i| instance("shop", "ConfigMap", &format!("cm-{i}"), &format!("app-{i}")))
        .collect();
    serving
        .post_json(
            "/api/v1/instances/sync",
            json!({"cluster": "prod", "upserts": upserts}),
        )
        .await;

    // A slow provider and small pages: the build lasts a few seconds.
    voyage.set_delay(std::time::Duration::from_millis(300));
    let mut reindex = Command::new(env!("CARGO_BIN_EXE_cw"));
    reindex
        .args(["reindex", "--page", "10"])
        .env("LOG_LEVEL", "warn")
        .env_remove("RUST_BACKTRACE")
        .envs(new.iter().map(|(k, v)| (*k, v.as_str())));
    let reindex = reindex.spawn().expect("cw reindex");

    // The new model's server starts during the build and waits, unready.
    let mut waiting = None;
    for _ in 0..100 {
        let (_, status) = cw(&["reindex", "--status"], &new);
        if status.contains("building") {
            waiting = Some(CwProcess::serve(&new_dir, &new));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut waiting = waiting.expect("the build was seen under way");
    let why = readyz_until(&waiting, 503).await;
    assert!(why.contains("voyage:voyage-3.5"), "{why}");
    assert_eq!(serving.get_status("/readyz").await, Some(200));

    let finished = tokio::task::spawn_blocking(move || {
        let mut reindex = reindex;
        reindex.wait().expect("cw reindex ran")
    })
    .await
    .unwrap();
    assert!(finished.success(), "cw reindex failed");
    voyage.set_delay(std::time::Duration::ZERO);

    readyz_until(&waiting, 200).await;
    let why = readyz_until(&serving, 503).await;
    assert!(why.contains("voyage:voyage-3-large"), "{why}");
    let hits = waiting.search(json!({"query": "app-7", "limit": 1})).await;
    assert_eq!(hits, vec!["shop/cm-7"]);
    waiting.assert_running();
    assert!(waiting.terminate().success());
}
