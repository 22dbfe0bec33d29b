//! One Python server process of the tests (Chroma, the Qdrant test server): started from the
//! workspace's `.venv` on a free loopback port with a fresh data directory, ready once a GET
//! of its health path answers 200, killed on drop. Its output goes to a log file in the data
//! directory, whose tail each start-up error quotes. [`crate::ChromaServer`] and
//! [`crate::QdrantServer`] are this process with their own arguments, and answer its
//! methods (`url`, `stop`, `restart`, ...) through `Deref`.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `Deref` and `DerefMut` to the [`PythonServer`] a newtype `$server(PythonServer)` wraps.
macro_rules! derefs_to_python_server {
    ($server:ident) => {
        impl std::ops::Deref for $server {
            type Target = $crate::python_server::PythonServer;

            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        impl std::ops::DerefMut for $server {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.0
            }
        }
    };
}
pub(crate) use derefs_to_python_server;

/// How long a server may take to answer its health path on a busy 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The python arguments of a server, given its data directory and port.
pub(crate) type Args = dyn Fn(&Path, u16) -> Vec<OsString> + Send + Sync;

/// What differs between the servers.
pub(crate) struct Spec {
    /// As error messages name it: "Chroma", "the Qdrant test server".
    pub name: &'static str,
    /// The data directory's prefix and the log's stem: `cw-<stem>-…/<stem>.log`.
    pub stem: &'static str,
    pub health_path: &'static str,
    /// The python arguments, given the data directory and the port.
    pub args: Box<Args>,
}

pub struct PythonServer {
    spec: Spec,
    child: Option<Child>,
    port: u16,
    python: PathBuf,
    data_dir: tempfile::TempDir,
}

impl PythonServer {
    /// Starts the server on a free port and waits until it is ready; panics with the log's
    /// tail (and what to install) when it does not start.
    pub(crate) fn start(spec: Spec, python: PathBuf) -> PythonServer {
        let data_dir = tempfile::Builder::new()
            .prefix(&format!("cw-{}-", spec.stem))
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a data directory for {}: {e}", spec.name));
        let mut server = PythonServer {
            spec,
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
        panic!("{} did not start: {last_error}", server.spec.name);
    }

    /// `http://127.0.0.1:<port>`, the value for `--chroma-url` or `--qdrant-url`.
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

    /// True while the health path answers 200.
    pub fn is_up(&self) -> bool {
        answers_200(self.port, self.spec.health_path)
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.path().join(format!("{}.log", self.spec.stem))
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
                "{} did not restart on port {}: {e}",
                self.spec.name, self.port
            );
        }
    }

    /// Starts the server again on the same port with no data (a lost volume): everything in
    /// the data directory but the server's log is removed first.
    pub fn restart_empty(&mut self) {
        self.kill();
        self.wipe_data();
        self.restart();
    }

    /// Removes everything in the data directory but the log (a lost volume).
    fn wipe_data(&self) {
        let log = self.log_path();
        let entries = std::fs::read_dir(self.data_dir.path())
            .unwrap_or_else(|e| panic!("cannot read {}'s data directory: {e}", self.spec.name));
        for entry in entries.flatten() {
            let path = entry.path();
            if path == log {
                continue;
            }
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.unwrap_or_else(|e| panic!("cannot remove {}: {e}", path.display()));
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let name = self.spec.name;
        let log_path = self.log_path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot clone log handle: {e}"))?;
        let child = Command::new(&self.python)
            .args((self.spec.args)(self.data_dir.path(), self.port))
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
                        " (a Python package is missing: run scripts/setup)"
                    } else {
                        ""
                    };
                    return Err(format!("{name} exited with {status}{hint}; log:\n{log}"));
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "{name} did not answer {} on port {} within {START_TIMEOUT:?}; log:\n{}",
            self.spec.health_path,
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

impl Drop for PythonServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A plain HTTP/1.0 GET of `path` on the loopback `port` answers 200, checked without an
/// HTTP client crate.
fn answers_200(port: u16, path: &str) -> bool {
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

fn tail(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = bytes.len().saturating_sub(2_000);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}
