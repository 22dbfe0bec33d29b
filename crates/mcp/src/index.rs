//! How the MCP server reaches the index: a trait, so that cw can answer from ingest's
//! `Searcher` in the same process (`cw run`, `cw serve`, `cw mcp` on the embedded store) or
//! from a running server's search API over HTTP (`cw mcp --server`).

use async_trait::async_trait;
use sync_model::api::ClustersResponse;
use sync_model::search::{
    AskAnswer, CountAnswer, CountBody, SearchHit, SearchRequest, SearchResults,
};

/// The search API as the tools use it.
#[async_trait]
pub trait Index: Send + Sync {
    /// Ranked hits, as `POST /api/v1/search` answers them.
    async fn search(&self, req: &SearchRequest) -> Result<Vec<SearchHit>, IndexError>;
    /// Ranked hits and, across a fleet, each cluster's share of them and its total.
    async fn search_page(&self, req: &SearchRequest) -> Result<SearchResults, IndexError> {
        Ok(SearchResults {
            results: self.search(req).await?,
            clusters: vec![],
        })
    }
    /// The semantic bridge: the types that answer `question`, then up to `limit` instances
    /// of each; among one cluster's objects when `cluster` is given.
    async fn ask(
        &self,
        question: &str,
        limit: usize,
        cluster: Option<&str>,
    ) -> Result<AskAnswer, IndexError>;
    /// How many objects match the filters, grouped if asked.
    async fn count(&self, body: &CountBody) -> Result<CountAnswer, IndexError>;
    /// Every cluster of the index: objects by health, last sync, last contact and whether
    /// it is stale, as `GET /api/v1/clusters` answers.
    async fn clusters(&self) -> Result<ClustersResponse, IndexError>;
}

/// Why the index did not answer. Each becomes a tool error whose message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The request itself is wrong (a bad filter, an empty query, a cluster the index does
    /// not know): the caller fixes it.
    #[error("{0}")]
    BadRequest(String),
    /// The index (server, store or embedding provider) cannot be reached now: try later.
    #[error("the index is unavailable: {0}")]
    Unavailable(String),
    /// Anything else the index answered.
    #[error("the index failed: {0}")]
    Failed(String),
}
