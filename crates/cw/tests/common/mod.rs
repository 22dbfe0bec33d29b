//! Shared by the tests that run the `cw` binary against the simulator's demo cluster
//! (deploy/demo): starting the cluster, `cw run` as a process, and its HTTP API.
//! Each test binary uses part of it.
#![allow(dead_code)]

pub mod mcp_client;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube_sim::{SimConfig, SimHandle, SimServer};
use serde_json::Value;

/// The cluster id `cw run` is started with in these tests.
pub const DEMO_CLUSTER: &str = "demo";

/// A stored id without its `<cluster>:` prefix: the object's own id.
pub fn unqualified(stored: &str) -> String {
    sync_model::split_stored_id(stored)
        .map(|(_, id)| id)
        .unwrap_or(stored)
        .to_string()
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The model directory, or a failure that says how to get the model.
pub fn model_dir() -> PathBuf {
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
pub struct CwRun {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
    pub http: reqwest::Client,
}

impl Drop for CwRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl CwRun {
    pub fn start(kubeconfig: &Path, data_dir: &Path, work: &Path) -> CwRun {
        Self::start_with(kubeconfig, data_dir, work, &[])
    }

    /// Like [`CwRun::start`], with more environment (set last, so it wins). The local model
    /// is only required when `env` chooses no other CW_EMBEDDING_PROVIDER.
    pub fn start_with(
        kubeconfig: &Path,
        data_dir: &Path,
        work: &Path,
        env: &[(&str, String)],
    ) -> CwRun {
        let port = testkit::free_port();
        let log = work.join("cw-run.log");
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_cw"));
        if !env.iter().any(|(k, _)| *k == "CW_EMBEDDING_PROVIDER") {
            command.env("CW_MODEL_DIR", model_dir());
        }
        let child = command
            .arg("run")
            .env("KUBECONFIG", kubeconfig)
            .env("CW_DATA_DIR", data_dir)
            .env("CW_HOST", "127.0.0.1")
            .env("CW_PORT", port.to_string())
            .env("CW_CLUSTER_ID", DEMO_CLUSTER)
            // Each step shows within a few seconds; the window is long enough that a change
            // made just before SIGTERM is still pending when the signal comes.
            .env("DEBOUNCE_WINDOW_MS", "2000")
            .env("BATCH_FLUSH_INTERVAL_MS", "100")
            .env("LOG_LEVEL", "info")
            .env_remove("CHROMA_URL")
            .env_remove("QDRANT_URL")
            .env_remove("CW_EMBEDDING_PROVIDER")
            .env_remove("CW_INGEST_TOKEN")
            .env_remove("RUST_BACKTRACE")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
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

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the process's log if it has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("cw run exited ({status}); its log:\n{}", self.log_text());
        }
    }

    pub async fn get_status(&self, path: &str) -> Option<u16> {
        let resp = self.http.get(format!("{}{path}", self.base)).send().await;
        resp.ok().map(|r| r.status().as_u16())
    }

    pub async fn get_text(&self, path: &str) -> String {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.text().await.expect("body")
    }

    pub async fn wait_ready(&mut self) {
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

    /// `POST path` with a JSON body; the JSON answer, which must be 200.
    pub async fn post_json(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "POST {path} {body} answered {answer}");
        answer
    }

    /// `POST /api/v1/search`: `namespace/name` of each hit, best first.
    pub async fn search(&self, body: Value) -> Vec<String> {
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

    /// `GET /api/v1/instances/parked`: the parked entries.
    pub async fn parked(&self) -> Vec<Value> {
        let body: Value = serde_json::from_str(&self.get_text("/api/v1/instances/parked").await)
            .expect("parked answer");
        body["parked"].as_array().cloned().unwrap_or_default()
    }

    pub async fn stored_hashes(&self) -> HashMap<String, String> {
        let resp = self
            .http
            .get(format!(
                "{}/api/v1/instances/hashes?cluster={DEMO_CLUSTER}",
                self.base
            ))
            .send()
            .await
            .expect("hashes request");
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.expect("hashes answer");
        serde_json::from_value(body["hashes"].clone()).expect("hashes map")
    }

    /// Polls until `check` holds (for 60 s), or fails naming `what` with cw run's log.
    #[allow(dead_code)] // not every test binary that includes this module polls
    pub async fn wait_until(&mut self, what: &str, check: impl AsyncFn(&CwRun) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.assert_running();
            if check(self).await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not after 60 s; cw run's log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Polls a search until `check` holds on its hits, or fails naming `what`.
    pub async fn wait_search(
        &mut self,
        what: &str,
        body: Value,
        check: impl Fn(&[String]) -> bool,
    ) {
        // The first index embeds every document with the local model on a shared CI core:
        // as long as the readiness wait, not a speed target (those are in the benchmarks).
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            self.assert_running();
            let hits = self.search(body.clone()).await;
            if check(&hits) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: the search {body} still answers {hits:?} after 120 s; cw run's log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
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

pub async fn start_demo_cluster(work: &Path) -> (SimHandle, PathBuf) {
    let sim =
        SimServer::start(SimConfig::default().with_seed_path(workspace_root().join("deploy/demo")))
            .await
            .expect("starting kube-sim with deploy/demo");
    let kubeconfig = work.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    (sim, kubeconfig)
}
