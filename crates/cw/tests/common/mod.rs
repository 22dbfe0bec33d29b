//! Shared by the tests of the `cw` binary: the simulator's demo cluster (deploy/demo),
//! `cw run` and `cw serve` as processes and their HTTP API, and (`watch`, `ingest`) the
//! watcher and the ingest server as `cw watch` and `cw serve` run them, in the test's own
//! process. Each test binary uses part of it.
#![allow(dead_code)]

pub mod ingest_server;
pub mod mcp_client;
pub mod watch;

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

/// The instances of an `ask` answer (of the API or MCP), type by type.
pub fn ask_instances(answer: &Value) -> Vec<&Value> {
    answer["types"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["instances"].as_array().into_iter().flatten())
        .collect()
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

/// A running `cw run` or `cw serve`, killed on drop if the test did not stop it.
pub struct CwProcess {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
    pub http: reqwest::Client,
    /// `run` or `serve`, as messages name the process.
    subcommand: &'static str,
    /// The bearer token its API wants (`CW_INGEST_TOKEN`), sent with the searches below.
    token: Option<String>,
}

impl Drop for CwProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polled this often by the waits below.
const POLL: Duration = Duration::from_millis(200);

impl CwProcess {
    pub fn run(kubeconfig: &Path, data_dir: &Path, work: &Path) -> CwProcess {
        Self::run_with(kubeconfig, data_dir, work, &[])
    }

    /// `cw run` against the cluster of `kubeconfig`, as cluster [`DEMO_CLUSTER`], with more
    /// environment (set last, so it wins). The local model is only required when `env`
    /// chooses no other CW_EMBEDDING_PROVIDER.
    pub fn run_with(
        kubeconfig: &Path,
        data_dir: &Path,
        work: &Path,
        env: &[(&str, String)],
    ) -> CwProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cw"));
        if !env.iter().any(|(k, _)| *k == "CW_EMBEDDING_PROVIDER") {
            command.env("CW_MODEL_DIR", model_dir());
        }
        command
            .env("KUBECONFIG", kubeconfig)
            .env("CW_DATA_DIR", data_dir)
            .env("CW_CLUSTER_ID", DEMO_CLUSTER)
            // Each step shows within a few seconds; the window is long enough that a change
            // made just before SIGTERM is still pending when the signal comes.
            .env("DEBOUNCE_WINDOW_MS", "2000")
            .env("BATCH_FLUSH_INTERVAL_MS", "100");
        Self::spawn("run", command, testkit::free_port(), work, env)
    }

    /// `cw serve` with `env` (its store, its provider) on a free port, its log in `work`.
    pub fn serve(work: &Path, env: &[(&str, String)]) -> CwProcess {
        Self::serve_on(testkit::free_port(), work, env)
    }

    /// [`CwProcess::serve`] on `port` (a restart on the port of the last one).
    pub fn serve_on(port: u16, work: &Path, env: &[(&str, String)]) -> CwProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cw"));
        command.env_remove("KUBECONFIG");
        Self::spawn("serve", command, port, work, env)
    }

    /// Starts `cw <subcommand>` on `port` with `command`'s environment, then `env`, after
    /// clearing what could leak in from the caller's environment.
    fn spawn(
        subcommand: &'static str,
        mut command: Command,
        port: u16,
        work: &Path,
        env: &[(&str, String)],
    ) -> CwProcess {
        let log = work.join(format!("cw-{subcommand}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = command
            .arg(subcommand)
            .env("CW_HOST", "127.0.0.1")
            .env("CW_PORT", port.to_string())
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
        let token = env
            .iter()
            .find(|(k, _)| *k == "CW_INGEST_TOKEN")
            .map(|(_, v)| v.clone());
        CwProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            http: reqwest::Client::new(),
            subcommand,
            token,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the process's log if it has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "cw {} exited ({status}); its log:\n{}",
                self.subcommand,
                self.log_text()
            );
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

    /// `GET path`: the JSON answer, which must be 200.
    pub async fn get_json(&self, path: &str) -> Value {
        let text = self.get_text(path).await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path} answered {text}: {e}"))
    }

    /// Until the API answers (`/readyz`: the store answers) and, for `cw run`, the cluster
    /// has been listed once (`/watcher/readyz`).
    pub async fn wait_ready(&mut self) {
        let run = self.subcommand == "run";
        self.wait_for("ready", Duration::from_secs(120), async |cw: &CwProcess| {
            let ready = cw.get_status("/readyz").await == Some(200)
                && (!run || cw.get_status("/watcher/readyz").await == Some(200));
            if ready {
                Ok(())
            } else {
                Err("not ready".to_string())
            }
        })
        .await;
    }

    /// Polls until `check` holds (for 60 s), or fails naming `what` with the process's log.
    pub async fn wait_until(&mut self, what: &str, check: impl AsyncFn(&CwProcess) -> bool) {
        self.wait_for(what, Duration::from_secs(60), async |cw: &CwProcess| {
            if check(cw).await {
                Ok(())
            } else {
                Err("not yet".to_string())
            }
        })
        .await;
    }

    /// Polls `check` until it answers `Ok` (for `within`), or fails naming `what` with what
    /// the last `Err` said and the process's log.
    pub async fn wait_for(
        &mut self,
        what: &str,
        within: Duration,
        check: impl AsyncFn(&CwProcess) -> Result<(), String>,
    ) {
        let deadline = Instant::now() + within;
        loop {
            self.assert_running();
            let last = match check(self).await {
                Ok(()) => return,
                Err(last) => last,
            };
            assert!(
                Instant::now() < deadline,
                "{what}: {last} after {within:?}; cw {}'s log:\n{}",
                self.subcommand,
                self.log_text()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// `POST path` with a JSON body; the JSON answer, which must be 200.
    pub async fn post_json(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.post(path, &body).await;
        assert_eq!(status, 200, "POST {path} {body} answered {answer}");
        answer
    }

    /// `POST path` with a JSON body (and the token, if the process has one): the status
    /// and the JSON answer (null when it is not JSON).
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let resp = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// `POST /api/v1/search`: `namespace/name` of each hit, best first.
    pub async fn search(&self, body: Value) -> Vec<String> {
        let answer = self.post_json("/api/v1/search", body).await;
        answer["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|hit| format!("{}/{}", hit["namespace"], hit["name"]).replace('"', ""))
            .collect()
    }

    /// `GET /api/v1/instances/parked`: the parked entries.
    pub async fn parked(&self) -> Vec<Value> {
        let body = self.get_json("/api/v1/instances/parked").await;
        body["parked"].as_array().cloned().unwrap_or_default()
    }

    pub async fn stored_hashes(&self) -> HashMap<String, String> {
        let body = self
            .get_json(&format!("/api/v1/instances/hashes?cluster={DEMO_CLUSTER}"))
            .await;
        serde_json::from_value(body["hashes"].clone()).expect("hashes map")
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
        let within = Duration::from_secs(120);
        self.wait_for(what, within, async |cw: &CwProcess| {
            let hits = cw.search(body.clone()).await;
            if check(&hits) {
                Ok(())
            } else {
                Err(format!("the search {body} still answers {hits:?}"))
            }
        })
        .await;
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
                "cw {} did not exit within 60 s of SIGTERM; its log:\n{}",
                self.subcommand,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The simulator serving deploy/demo, and its kubeconfig in `work`. Installs the crypto
/// provider the HTTP clients of the test need.
pub async fn start_demo_cluster(work: &Path) -> (SimHandle, PathBuf) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim =
        SimServer::start(SimConfig::default().with_seed_path(workspace_root().join("deploy/demo")))
            .await
            .expect("starting kube-sim with deploy/demo");
    let kubeconfig = work.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    (sim, kubeconfig)
}

/// Polls `check` until it holds, or fails naming `what` after `within`.
pub async fn wait_for(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not after {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
