//! Starts the Qdrant-compatible test server (`crates/testkit/qdrant/server.py`: Qdrant's REST
//! models from `qdrant-client` parse each request, Qdrant's embedded engine `qdrant-edge-py`
//! executes it) on a free loopback port with a fresh data directory, and stops it on drop.
//! Both packages are installed by `scripts/setup` into the workspace's `.venv`; tests never
//! skip when they are missing: they fail saying to run `scripts/setup`.

use std::path::{Path, PathBuf};

use crate::chroma::chroma_python;
use crate::python_server::{PythonServer, Spec};

/// A running Qdrant test server (its URL, stop and restart are [`PythonServer`]'s).
/// Dropping it kills the process; the data directory goes with it.
pub struct QdrantServer(PythonServer);

impl QdrantServer {
    /// Starts the server on a free port and waits until `/readyz` answers. Panics with what
    /// to install when the venv lacks the packages.
    pub fn start() -> QdrantServer {
        Self::start_with_key(None)
    }

    /// Like [`QdrantServer::start`], requiring `api_key` in the `api-key` header.
    pub fn start_with_key(api_key: Option<&str>) -> QdrantServer {
        let api_key = api_key.map(str::to_string);
        let spec = Spec {
            name: "the Qdrant test server",
            stem: "qdrant",
            health_path: "/readyz",
            args: Box::new(move |dir, port| {
                let mut args = vec![
                    server_script().into(),
                    "--port".into(),
                    port.to_string().into(),
                    "--data".into(),
                    dir.join("storage").into(),
                ];
                if let Some(key) = &api_key {
                    args.extend(["--api-key".into(), key.into()]);
                }
                args
            }),
        };
        QdrantServer(PythonServer::start(spec, qdrant_python()))
    }
}

crate::python_server::derefs_to_python_server!(QdrantServer);

/// The test server's script, beside this crate's sources.
pub fn server_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("qdrant/server.py")
}

/// The venv's python (as for Chroma: `CW_CHROMA_PYTHON`, else `<workspace>/.venv/bin/python`).
pub fn qdrant_python() -> PathBuf {
    chroma_python()
}
