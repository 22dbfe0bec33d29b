//! The two ways the MCP server reaches the index: ingest's `Searcher` in this process, or a
//! running server's search API over HTTP ([`ApiClient`]). Both only translate errors.

use std::time::Duration;

use async_trait::async_trait;
use ingest::search::{SearchError, Searcher};
use mcp::{Index, IndexError};
use sync_model::api::ClustersResponse;
use sync_model::search::{
    AskAnswer, CountAnswer, CountBody, SearchHit, SearchRequest, SearchResults,
};

use crate::api_client::{ApiClient, ApiError};

/// The index of this process's store, and when its clusters count as stale (the server's
/// setting, or the default).
pub struct InProcess(pub Searcher, pub Duration);

/// The index of a request that names no caller: it answers nothing (fails closed). The
/// `/mcp` route's own; every authenticated request carries its caller's index instead.
pub struct NoCaller;

#[async_trait]
impl Index for NoCaller {
    async fn search(&self, _: &SearchRequest) -> Result<Vec<SearchHit>, IndexError> {
        Err(no_caller())
    }
    async fn ask(&self, _: &str, _: usize, _: Option<&str>) -> Result<AskAnswer, IndexError> {
        Err(no_caller())
    }
    async fn count(&self, _: &CountBody) -> Result<CountAnswer, IndexError> {
        Err(no_caller())
    }
    async fn clusters(&self) -> Result<ClustersResponse, IndexError> {
        Err(no_caller())
    }
}

fn no_caller() -> IndexError {
    IndexError::Failed("this request names no caller, so nothing is answered".into())
}

#[async_trait]
impl Index for InProcess {
    async fn search(&self, req: &SearchRequest) -> Result<Vec<SearchHit>, IndexError> {
        self.0.search(req).await.map_err(from_search)
    }

    async fn search_page(&self, req: &SearchRequest) -> Result<SearchResults, IndexError> {
        self.0.search_page(req).await.map_err(from_search)
    }

    async fn ask(
        &self,
        question: &str,
        limit: usize,
        cluster: Option<&str>,
    ) -> Result<AskAnswer, IndexError> {
        self.0
            .ask_in(question, Some(limit), cluster, None)
            .await
            .map_err(from_search)
    }

    async fn count(&self, body: &CountBody) -> Result<CountAnswer, IndexError> {
        self.0.count(body).await.map_err(from_search)
    }

    async fn clusters(&self) -> Result<ClustersResponse, IndexError> {
        self.0.clusters(self.1).await.map_err(from_search)
    }
}

fn from_search(e: SearchError) -> IndexError {
    match e {
        SearchError::BadRequest(m) => IndexError::BadRequest(m),
        e @ (SearchError::UnknownCluster { .. } | SearchError::NothingVisible { .. }) => {
            IndexError::BadRequest(e.to_string())
        }
        e if e.is_transient() => IndexError::Unavailable(e.to_string()),
        e => IndexError::Failed(e.to_string()),
    }
}

/// The index of a running `cw serve` or `cw run`, through cw's one client of its API.
pub struct OverHttp(pub ApiClient);

fn from_api(e: ApiError) -> IndexError {
    match e {
        ApiError::BadRequest(m) | ApiError::UnknownCluster { message: m } => {
            IndexError::BadRequest(m)
        }
        e if e.is_transient() => IndexError::Unavailable(e.to_string()),
        e => IndexError::Failed(e.to_string()),
    }
}

#[async_trait]
impl Index for OverHttp {
    async fn search(&self, req: &SearchRequest) -> Result<Vec<SearchHit>, IndexError> {
        self.0.search(req).await.map_err(from_api)
    }

    async fn search_page(&self, req: &SearchRequest) -> Result<SearchResults, IndexError> {
        self.0.search_page(req).await.map_err(from_api)
    }

    async fn ask(
        &self,
        question: &str,
        limit: usize,
        cluster: Option<&str>,
    ) -> Result<AskAnswer, IndexError> {
        let request = SearchRequest {
            query: question.to_string(),
            limit: Some(limit),
            cluster: cluster.map(str::to_string),
            ..Default::default()
        };
        self.0.ask(&request).await.map_err(from_api)
    }

    async fn count(&self, body: &CountBody) -> Result<CountAnswer, IndexError> {
        self.0.count(body).await.map_err(from_api)
    }

    async fn clusters(&self) -> Result<ClustersResponse, IndexError> {
        self.0.clusters().await.map_err(from_api)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_cluster_is_the_callers_to_fix_and_names_the_known_ones() {
        let e = from_search(SearchError::UnknownCluster {
            cluster: "nope".into(),
            known: vec!["gen-a".into(), "gen-b".into()],
        });
        assert!(
            matches!(&e, IndexError::BadRequest(m) if m == "unknown cluster \"nope\": known clusters: gen-a, gen-b"),
            "{e:?}"
        );
        let e = from_api(ApiError::UnknownCluster {
            message: "unknown cluster \"nope\": known clusters: gen-a".into(),
        });
        assert!(matches!(e, IndexError::BadRequest(_)), "{e:?}");
    }
}
