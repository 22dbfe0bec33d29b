//! The store conformance suite against the Qdrant-compatible test server (Qdrant's REST
//! models and embedded engine, started on a free port by testkit for each case).

#[macro_use]
mod conformance;

use ingest::store::qdrant::{QdrantConfig, QdrantStore};

async fn qdrant() -> conformance::Harness {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Starting the server blocks while it waits for /readyz.
    let server = tokio::task::spawn_blocking(testkit::QdrantServer::start)
        .await
        .expect("start the Qdrant test server");
    let store = QdrantStore::new(QdrantConfig::new(server.url())).expect("Qdrant client");
    conformance::Harness {
        store: std::sync::Arc::new(store),
        guard: Box::new(server),
    }
}

conformance_suite!(qdrant);
