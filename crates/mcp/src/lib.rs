//! cw for agents: a Model Context Protocol server whose tools search the index, count it,
//! ask it questions and read objects live from their clusters, with answers sized for a
//! model's context. It reaches the index through the [`Index`] trait and each cluster it
//! has a connection to through [`LiveCluster`] ([`ClusterAccess`]); the `cw` binary implements both and serves this over stdio
//! (`cw mcp`) or Streamable HTTP (`/mcp` on `cw serve` and `cw run`). See docs/agents.md.

mod cluster;
mod cursor;
mod index;
mod prompt;
mod resource;
mod server;
mod tools;
mod untrusted;

use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::ServiceExt;

pub use cluster::{ClusterAccess, ClusterError, Connections, LiveCluster, LiveClusters, ObjectRef};
pub use index::{Index, IndexError};
pub use resource::{from_index, summarise, Condition, EventLine, ResourceDetails, Source};
pub use server::{CallerIndex, CwMcp};
pub use tokio_util::sync::CancellationToken;
pub use tools::{GetResourceParams, DEFAULT_PAGE, MAX_ANSWER_BYTES, MAX_PAGE, RANKING_WINDOW};

#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("the MCP session could not start: {0}")]
    Start(String),
    #[error("the MCP session ended with an error: {0}")]
    Session(String),
}

/// Serves `server` on this process's stdin and stdout until the client closes them.
pub async fn serve_stdio(server: CwMcp) -> Result<(), McpError> {
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| McpError::Start(e.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|e| McpError::Session(e.to_string()))?;
    Ok(())
}

/// The HTTP service of the Streamable HTTP transport, a tower service to nest at
/// [`sync_model::api::MCP`].
pub type HttpService = StreamableHttpService<CwMcp, LocalSessionManager>;

/// `server` over Streamable HTTP. `stop` ends open sessions and their event streams (cancel
/// it when the HTTP server shuts down, or open streams would hold the shutdown).
/// `loopback_only` keeps rmcp's check that the Host header names this machine, which stops
/// DNS-rebinding pages in a local browser; a server listening on other addresses is reached
/// by names the operator chooses, and is guarded by the bearer token instead.
pub fn http_service(server: CwMcp, stop: CancellationToken, loopback_only: bool) -> HttpService {
    let mut config = StreamableHttpServerConfig::default().with_cancellation_token(stop);
    if !loopback_only {
        config = config.disable_allowed_hosts();
    }
    StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}
