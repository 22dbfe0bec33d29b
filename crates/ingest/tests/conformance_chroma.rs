//! The store conformance suite against a real Chroma server (from .venv, started on a free
//! port by testkit for each case).

#[macro_use]
mod conformance;

use ingest::store::chroma::{ChromaConfig, ChromaStore};

async fn chroma() -> conformance::Harness {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Starting Chroma blocks while it waits for the heartbeat.
    let server = tokio::task::spawn_blocking(testkit::chroma::ChromaServer::start)
        .await
        .expect("start Chroma");
    let store = ChromaStore::new(ChromaConfig::new(server.url())).expect("Chroma client");
    conformance::Harness {
        store: std::sync::Arc::new(store),
        guard: Box::new(server),
    }
}

conformance_suite!(chroma);
