//! `cw run` as a user runs it: the built binary against the simulator's demo cluster
//! (deploy/demo), with the embedded store in a temporary data directory and the local
//! model. Searches follow the cluster as objects are created, changed and deleted; SIGTERM
//! flushes what is pending and the store file reopens with everything acknowledged.
//!
//! Needs the local model: `cw model fetch` (or scripts/setup), or CW_MODEL_DIR.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ingest::store::embedded::EmbeddedStore;
use ingest::store::VectorStore;
use kube_sim::{SimConfig, SimHandle, SimServer};
use serde_json::{json, Value};

const DEMO_NAMESPACE: &str = "data";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The model directory, or a failure that says how to get the model.
fn model_dir() -> PathBuf {
    let dir = std::env::var_os("CW_MODEL_DIR")
        .map(PathBuf::from)
        .or_else(ingest::embed::local::default_model_dir)
        .expect("neither CW_MODEL_DIR nor HOME is set");
    let missing: Vec<&str> = ["model.safetensors", "tokenizer.json", "config.json"]
        .into_iter()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "the local embedding model is not in {} (missing {}): run `cw model fetch` \
         (or scripts/setup) first, or set CW_MODEL_DIR",
        dir.display(),
        missing.join(", ")
    );
    dir
}

/// A running `cw run`, killed on drop if the test did not stop it.
struct CwRun {
    child: Child,
    base: String,
    log: PathBuf,
    http: reqwest::Client,
}

impl Drop for CwRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl CwRun {
    fn start(kubeconfig: &Path, data_dir: &Path, work: &Path) -> CwRun {
        let port = testkit::free_port();
        let log = work.join("cw-run.log");
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_cw"))
            .arg("run")
            .env("KUBECONFIG", kubeconfig)
            .env("CW_DATA_DIR", data_dir)
            .env("CW_MODEL_DIR", model_dir())
            .env("CW_HOST", "127.0.0.1")
            .env("CW_PORT", port.to_string())
            // Each step shows within a few seconds; the window is long enough that a change
            // made just before SIGTERM is still pending when the signal comes.
            .env("DEBOUNCE_WINDOW_MS", "2000")
            .env("BATCH_FLUSH_INTERVAL_MS", "100")
            .env("LOG_LEVEL", "info")
            .env_remove("CHROMA_URL")
            .env_remove("CW_EMBEDDING_PROVIDER")
            .env_remove("CW_INGEST_TOKEN")
            .env_remove("RUST_BACKTRACE")
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("starting the cw binary");
        CwRun {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            http: reqwest::Client::new(),
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the process's log if it has exited.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("cw run exited ({status}); its log:\n{}", self.log_text());
        }
    }

    async fn get_status(&self, path: &str) -> Option<u16> {
        let resp = self.http.get(format!("{}{path}", self.base)).send().await;
        resp.ok().map(|r| r.status().as_u16())
    }

    async fn get_text(&self, path: &str) -> String {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.text().await.expect("body")
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            self.assert_running();
            // /readyz: the store answers; /watcher/readyz: the cluster has been listed once.
            if self.get_status("/readyz").await == Some(200)
                && self.get_status("/watcher/readyz").await == Some(200)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cw run did not become ready in 120 s; its log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `POST /api/v1/search`: `namespace/name` of each hit, best first.
    async fn search(&self, body: Value) -> Vec<String> {
        let resp = self
            .http
            .post(format!("{}/api/v1/search", self.base))
            .json(&body)
            .send()
            .await
            .expect("search request");
        assert_eq!(resp.status(), 200, "search {body} failed");
        let answer: Value = resp.json().await.expect("search answer");
        answer["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|hit| format!("{}/{}", hit["namespace"], hit["name"]).replace('"', ""))
            .collect()
    }

    async fn stored_hashes(&self) -> HashMap<String, String> {
        let resp = self
            .http
            .get(format!("{}/api/v1/instances/hashes", self.base))
            .send()
            .await
            .expect("hashes request");
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.expect("hashes answer");
        serde_json::from_value(body["hashes"].clone()).expect("hashes map")
    }

    /// Polls a search until `check` holds on its hits, or fails naming `what`.
    async fn wait_search(&mut self, what: &str, body: Value, check: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.assert_running();
            let hits = self.search(body.clone()).await;
            if check(&hits) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: the search {body} still answers {hits:?} after 30 s; cw run's log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM, then the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "cw run did not exit within 60 s of SIGTERM; its log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn statefulset(name: &str, labels: Value, description: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {
            "name": name, "namespace": DEMO_NAMESPACE, "labels": labels,
            "annotations": {"description": description}
        },
        "spec": {
            "replicas": 1, "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "db", "image": "mongo:7"}]}}
        }
    })
}

async fn start_demo_cluster(work: &Path) -> (SimHandle, PathBuf) {
    let sim =
        SimServer::start(SimConfig::default().with_seed_path(workspace_root().join("deploy/demo")))
            .await
            .expect("starting kube-sim with deploy/demo");
    let kubeconfig = work.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    (sim, kubeconfig)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cw_run_indexes_the_cluster_follows_changes_and_flushes_on_sigterm() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let work = tempfile::tempdir().expect("temp dir");
    let data_dir = work.path().join("data");
    let (sim, kubeconfig) = start_demo_cluster(work.path()).await;
    let mut cw = CwRun::start(&kubeconfig, &data_dir, work.path());
    cw.wait_ready().await;

    // The demo cluster is searchable: its PostgreSQL StatefulSet answers a database query.
    let databases = json!({"query": "postgres database", "kind": "StatefulSet", "limit": 3});
    cw.wait_search("the demo's PostgreSQL", databases, |hits| {
        hits.first().map(String::as_str) == Some("data/analytics-postgres")
    })
    .await;

    // One port serves both sets of operations endpoints.
    let ingest_metrics = cw.get_text("/metrics").await;
    assert!(
        ingest_metrics.contains("cw_ingest_instances_upserted"),
        "/metrics should be ingest's:\n{ingest_metrics}"
    );
    let watcher_metrics = cw.get_text("/watcher/metrics").await;
    assert!(
        watcher_metrics.contains("cw_watcher_events_seen"),
        "/watcher/metrics should be the watcher's:\n{watcher_metrics}"
    );
    let resync: Value = cw
        .http
        .post(format!("{}/watcher/api/v1/resync", cw.base))
        .send()
        .await
        .expect("resync request")
        .json()
        .await
        .expect("resync report");
    assert!(
        resync["listed"].as_u64().unwrap_or(0) > 30 && resync["deleted"] == 0,
        "a resync right after the start lists the demo cluster and finds nothing to delete: {resync}"
    );

    // Create: a new database appears in the answers.
    let mongo = json!({"query": "mongodb document database", "kind": "StatefulSet", "limit": 3});
    sim.create(statefulset(
        "orders-mongodb",
        json!({"app.kubernetes.io/name": "mongodb", "app.kubernetes.io/component": "database"}),
        "MongoDB replica set holding customer orders",
    ))
    .expect("create orders-mongodb");
    cw.wait_search("a created StatefulSet", mongo.clone(), |hits| {
        hits.iter().any(|h| h == "data/orders-mongodb")
    })
    .await;

    // Change: a new label is searchable by its exact filter.
    let tiered = json!({"query": "database", "labels": ["tier=gold"], "limit": 5});
    assert!(cw.search(tiered.clone()).await.is_empty());
    sim.patch(
        "apps/v1",
        "StatefulSet",
        Some(DEMO_NAMESPACE),
        "orders-mongodb",
        json!({"metadata": {"labels": {"tier": "gold"}}}),
    )
    .expect("label orders-mongodb");
    cw.wait_search("a changed label", tiered, |hits| {
        hits == ["data/orders-mongodb".to_string()]
    })
    .await;

    // Delete: it leaves the answers.
    sim.delete(
        "apps/v1",
        "StatefulSet",
        Some(DEMO_NAMESPACE),
        "orders-mongodb",
    )
    .expect("delete orders-mongodb");
    cw.wait_search("a deleted StatefulSet", mongo, |hits| {
        !hits.iter().any(|h| h == "data/orders-mongodb")
    })
    .await;

    // SIGTERM right after a change: the watcher flushes it into the store before exiting.
    sim.create(statefulset(
        "late-cassandra",
        json!({"app.kubernetes.io/name": "cassandra"}),
        "Cassandra ring created just before shutdown",
    ))
    .expect("create late-cassandra");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acknowledged = cw.stored_hashes().await;
    let late = "data/apps/v1/StatefulSet/late-cassandra";
    assert!(
        !acknowledged.contains_key(late),
        "the late change was stored before SIGTERM, so this run cannot show the flush"
    );
    let status = cw.terminate();
    assert!(
        status.success(),
        "cw run should exit 0 on SIGTERM, got {status}; its log:\n{}",
        cw.log_text()
    );

    let store = EmbeddedStore::open_in_dir(&data_dir).expect("the store file reopens");
    let stored = store.all_hashes("instances").await.expect("stored hashes");
    for (id, hash) in &acknowledged {
        assert_eq!(
            stored.get(id),
            Some(hash),
            "{id} was acknowledged before SIGTERM but is not in the reopened store"
        );
    }
    assert!(
        stored.contains_key(late),
        "the change made just before SIGTERM was not flushed into the store; cw run's log:\n{}",
        cw.log_text()
    );
    assert!(
        !stored.contains_key("data/apps/v1/StatefulSet/orders-mongodb"),
        "the deleted StatefulSet is still stored"
    );
}

#[test]
fn cw_run_without_the_model_says_to_run_cw_model_fetch() {
    let work = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_cw"))
        .arg("run")
        .env("CW_MODEL_DIR", work.path().join("no-model"))
        .env("CW_DATA_DIR", work.path().join("data"))
        .env("CW_PORT", testkit::free_port().to_string())
        .env("KUBECONFIG", work.path().join("no-kubeconfig"))
        .env_remove("CHROMA_URL")
        .env_remove("CW_EMBEDDING_PROVIDER")
        .output()
        .expect("running cw");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "cw run without a model should fail"
    );
    assert!(
        stderr.contains("cw model fetch"),
        "the error should name `cw model fetch`; stderr:\n{stderr}"
    );
}

#[tokio::test]
async fn cw_run_refuses_a_store_filled_by_another_model() {
    let work = tempfile::tempdir().expect("temp dir");
    let data_dir = work.path().join("data");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    {
        let store = EmbeddedStore::open_in_dir(&data_dir).expect("store");
        let other = ingest::embed::ModelInfo {
            id: "voyage:voyage-3.5".into(),
            dimension: 1024,
        };
        store
            .ensure_collection("instances", &other)
            .await
            .expect("collection filled by another model");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_cw"))
        .arg("run")
        .env("CW_MODEL_DIR", model_dir())
        .env("CW_DATA_DIR", &data_dir)
        .env("CW_PORT", testkit::free_port().to_string())
        .env("KUBECONFIG", work.path().join("no-kubeconfig"))
        .env_remove("CHROMA_URL")
        .env_remove("CW_EMBEDDING_PROVIDER")
        .output()
        .expect("running cw");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "cw run should refuse to start; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("voyage:voyage-3.5") && stderr.contains("local:"),
        "the error should name both models; stderr:\n{stderr}"
    );
}
