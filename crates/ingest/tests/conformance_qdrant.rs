//! The store conformance suite against the Qdrant-compatible test server (Qdrant's REST
//! models and embedded engine, started on a free port by testkit for each case).

#[macro_use]
mod conformance;

use ingest::store::qdrant::{QdrantConfig, QdrantStore};

async fn qdrant() -> conformance::Harness {
    conformance::Harness::on_server(testkit::QdrantServer::start, |server| {
        QdrantStore::new(QdrantConfig::new(server.url())).expect("Qdrant client")
    })
    .await
}

conformance_suite!(qdrant);
