//! Starts the Qdrant-compatible test server (`crates/testkit/qdrant/server.py`: Qdrant's REST
//! models from `qdrant-client` parse each request, Qdrant's embedded engine `qdrant-edge-py`
//! executes it) on a free loopback port with a fresh data directory, and stops it on drop.
//! Both packages are installed by `scripts/setup` into the workspace's `.venv`; tests never
//! skip when they are missing: they fail saying to run `scripts/setup`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::chroma::{answers_200, chroma_python, tail};

/// How long the server may take to answer `/readyz` on a busy 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running Qdrant test server. Dropping it kills the process; the data directory goes
/// with it.
pub struct QdrantServer {
    child: Option<Child>,
    port: u16,
    python: PathBuf,
    api_key: Option<String>,
    data_dir: tempfile::TempDir,
}

impl QdrantServer {
    /// Starts the server on a free port and waits until `/readyz` answers. Panics with what
    /// to install when the venv lacks the packages.
    pub fn start() -> QdrantServer {
        Self::start_with_key(None)
    }

    /// Like [`QdrantServer::start`], requiring `api_key` in the `api-key` header.
    pub fn start_with_key(api_key: Option<&str>) -> QdrantServer {
        let python = qdrant_python();
        let data_dir = tempfile::Builder::new()
            .prefix("cw-qdrant-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a data directory for Qdrant: {e}"));
        let mut server = QdrantServer {
            child: None,
            port: 0,
            python,
            api_key: api_key.map(str::to_string),
            data_dir,
        };
        let mut last_error = String::new();
        // The free port may be taken between picking and binding: try a few.
        for _ in 0..3 {
            server.port = crate::free_port();
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(e) => {
                    last_error = e;
                    server.kill();
                }
            }
        }
        panic!("the Qdrant test server did not start: {last_error}");
    }

    /// `http://127.0.0.1:<port>`, the value for `--qdrant-url`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Process id of the running server (for RSS and CPU figures in benchmarks).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Kills the server (SIGKILL) and waits for it; the data directory stays.
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Starts the server again on the same port with the same data.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.spawn_and_wait() {
            panic!(
                "the Qdrant test server did not restart on port {}: {e}",
                self.port
            );
        }
    }

    /// True while `/readyz` answers 200.
    pub fn is_up(&self) -> bool {
        answers_200(self.port, "/readyz")
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log_path = self.data_dir.path().join("qdrant.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot clone log handle: {e}"))?;
        let mut cmd = Command::new(&self.python);
        cmd.arg(server_script())
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--data")
            .arg(self.data_dir.path().join("storage"));
        if let Some(key) = &self.api_key {
            cmd.arg("--api-key").arg(key);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.python.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.is_up() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    let log = tail(&log_path);
                    let hint = if log.contains("ModuleNotFoundError") {
                        " (qdrant-client or qdrant-edge-py missing: run scripts/setup)"
                    } else {
                        ""
                    };
                    return Err(format!(
                        "the Qdrant test server exited with {status}{hint}; log:\n{log}"
                    ));
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "the Qdrant test server did not answer /readyz on port {} within {START_TIMEOUT:?}; log:\n{}",
            self.port,
            tail(&log_path)
        ))
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for QdrantServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The test server's script, beside this crate's sources.
pub fn server_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("qdrant/server.py")
}

/// The venv's python (as for Chroma: `CW_CHROMA_PYTHON`, else `<workspace>/.venv/bin/python`).
pub fn qdrant_python() -> PathBuf {
    chroma_python()
}
