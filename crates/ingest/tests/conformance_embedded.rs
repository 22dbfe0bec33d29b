//! The store conformance suite against the embedded store, each case on a fresh file.

#[macro_use]
mod conformance;

use ingest::store::embedded::EmbeddedStore;

async fn embedded() -> conformance::Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open_in_dir(dir.path()).expect("open the embedded store");
    conformance::Harness {
        store: std::sync::Arc::new(store),
        guard: Box::new(dir),
    }
}

conformance_suite!(embedded);
