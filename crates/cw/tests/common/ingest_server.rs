//! The ingest server as `cw serve` runs it, in the test's own process: the router on a free
//! loopback port over a given store, the real Voyage client embedding with the stand-in.

use std::sync::Arc;
use std::time::Duration;

use ingest::embed::voyage::{VoyageConfig, VoyageEmbedder};
use ingest::pipeline::Pipeline;
use ingest::retry::RetryPolicy;
use ingest::server::{self, AppState, ServerConfig};
use ingest::store::VectorStore;
use testkit::VoyageStandin;

/// The collection of the instances.
pub const COLLECTION: &str = "instances";

/// The Voyage client of the stand-in, with one quick retry.
pub fn voyage_embedder(voyage: &VoyageStandin) -> Arc<VoyageEmbedder> {
    let mut config = VoyageConfig::new("test-key");
    config.base_url = voyage.base_url();
    config.retry = RetryPolicy {
        max_retries: 1,
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        max_retry_after: Duration::from_secs(1),
    };
    Arc::new(VoyageEmbedder::new(config).expect("the Voyage client"))
}

/// Serves the ingest API over `store` (embeddings by `voyage`) until the test ends: its
/// base URL, `http://127.0.0.1:<port>`.
pub async fn serve(
    store: Arc<dyn VectorStore>,
    voyage: &VoyageStandin,
    config: ServerConfig,
) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pipeline = Pipeline::new(store, voyage_embedder(voyage), COLLECTION);
    let state = AppState::new(pipeline, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let base = format!("http://{}", listener.local_addr().expect("its address"));
    tokio::spawn(server::serve(
        listener,
        server::router(state.clone()),
        state,
        std::future::pending::<()>(),
    ));
    base
}
