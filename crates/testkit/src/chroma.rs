//! Starts the real Chroma server (installed by `scripts/setup` into the workspace's
//! `.venv`) on a free loopback port with a fresh data directory, and stops it on drop.
//! Tests never skip when it is missing: they fail saying to run `scripts/setup`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long Chroma may take to answer its heartbeat on a busy 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running Chroma server. Dropping it kills the process; the data directory goes with it.
pub struct ChromaServer {
    child: Option<Child>,
    port: u16,
    python: PathBuf,
    data_dir: tempfile::TempDir,
}

impl ChromaServer {
    /// Starts Chroma on a free port and waits until `/api/v2/heartbeat` answers.
    /// Panics with what to install when the venv is missing.
    pub fn start() -> ChromaServer {
        let python = chroma_python();
        let data_dir = tempfile::Builder::new()
            .prefix("cw-chroma-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a data directory for Chroma: {e}"));
        let mut server = ChromaServer {
            child: None,
            port: 0,
            python,
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
        panic!("Chroma did not start: {last_error}");
    }

    /// `http://127.0.0.1:<port>`, the value for `--chroma-url`.
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
            panic!("Chroma did not restart on port {}: {e}", self.port);
        }
    }

    /// Starts the server again on the same port with no data (a lost volume): everything in
    /// the data directory but the server's log is removed first.
    pub fn restart_empty(&mut self) {
        self.kill();
        let entries = std::fs::read_dir(self.data_dir.path())
            .unwrap_or_else(|e| panic!("cannot read Chroma's data directory: {e}"));
        for entry in entries.flatten() {
            let path = entry.path();
            if path.file_name().is_some_and(|n| n == "chroma.log") {
                continue;
            }
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.unwrap_or_else(|e| panic!("cannot remove {}: {e}", path.display()));
        }
        if let Err(e) = self.spawn_and_wait() {
            panic!("Chroma did not restart on port {}: {e}", self.port);
        }
    }

    /// True while the heartbeat answers 200.
    pub fn is_up(&self) -> bool {
        heartbeat(self.port)
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log_path = self.data_dir.path().join("chroma.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot clone log handle: {e}"))?;
        let data = self.data_dir.path().join("data");
        let child = Command::new(&self.python)
            .arg("-c")
            .arg(
                "import sys, chromadb_rust_bindings as b; \
                 b.cli(['chroma','run','--path',sys.argv[1],'--host','127.0.0.1','--port',sys.argv[2]])",
            )
            .arg(&data)
            .arg(self.port.to_string())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.python.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if heartbeat(self.port) {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "Chroma exited with {status}; log:\n{}",
                        tail(&log_path)
                    ));
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "Chroma did not answer /api/v2/heartbeat on port {} within {START_TIMEOUT:?}; log:\n{}",
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

impl Drop for ChromaServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The venv's python: `CW_CHROMA_PYTHON`, else `<workspace>/.venv/bin/python`.
pub fn chroma_python() -> PathBuf {
    let python = match std::env::var_os("CW_CHROMA_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../.venv/bin/python")
            .components()
            .collect(),
    };
    if !python.exists() {
        panic!(
            "Chroma is not installed ({} is missing): run scripts/setup \
             (or set CW_CHROMA_PYTHON to a python with chromadb installed)",
            python.display()
        );
    }
    python
}

fn heartbeat(port: u16) -> bool {
    answers_200(port, "/api/v2/heartbeat")
}

/// A plain HTTP/1.0 GET of `path` on the loopback `port` answers 200, checked without an
/// HTTP client crate.
pub(crate) fn answers_200(port: u16, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    ) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200")
}

pub(crate) fn tail(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = bytes.len().saturating_sub(2_000);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}
