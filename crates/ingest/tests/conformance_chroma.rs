//! The store conformance suite against a real Chroma server (from .venv, started on a free
//! port by testkit for each case).

#[macro_use]
mod conformance;

use ingest::store::chroma::{ChromaConfig, ChromaStore};

async fn chroma() -> conformance::Harness {
    conformance::Harness::on_server(testkit::chroma::ChromaServer::start, |server| {
        ChromaStore::new(ChromaConfig::new(server.url())).expect("Chroma client")
    })
    .await
}

conformance_suite!(chroma);
