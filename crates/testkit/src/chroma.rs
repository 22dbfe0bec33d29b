//! Starts the real Chroma server (installed by `scripts/setup` into the workspace's
//! `.venv`) on a free loopback port with a fresh data directory, and stops it on drop.
//! Tests never skip when it is missing: they fail saying to run `scripts/setup`.

use std::path::{Path, PathBuf};

use crate::python_server::{PythonServer, Spec};

/// A running Chroma server (its URL, stop and restart are [`PythonServer`]'s). Dropping it
/// kills the process; the data directory goes with it.
pub struct ChromaServer(PythonServer);

impl ChromaServer {
    /// Starts Chroma on a free port and waits until `/api/v2/heartbeat` answers.
    /// Panics with what to install when the venv is missing.
    pub fn start() -> ChromaServer {
        let spec = Spec {
            name: "Chroma",
            stem: "chroma",
            health_path: "/api/v2/heartbeat",
            args: Box::new(|dir, port| {
                vec![
                    "-c".into(),
                    "import sys, chromadb_rust_bindings as b; \
                     b.cli(['chroma','run','--path',sys.argv[1],'--host','127.0.0.1','--port',sys.argv[2]])"
                        .into(),
                    dir.join("data").into(),
                    port.to_string().into(),
                ]
            }),
        };
        ChromaServer(PythonServer::start(spec, chroma_python()))
    }
}

crate::python_server::derefs_to_python_server!(ChromaServer);

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
