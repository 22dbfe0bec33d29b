//! The two ways the MCP server reaches the index: ingest's `Searcher` in this process, or a
//! running server's search API over HTTP. Both only translate errors.

use anyhow::Context;
use async_trait::async_trait;
use ingest::search::{SearchError, Searcher};
use mcp::{Index, IndexError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sync_model::api;
use sync_model::search::{
    AskAnswer, CountAnswer, CountBody, SearchBody, SearchHit, SearchRequest, SearchResults,
};

/// The index of this process's store.
pub struct InProcess(pub Searcher);

#[async_trait]
impl Index for InProcess {
    async fn search(&self, req: &SearchRequest) -> Result<Vec<SearchHit>, IndexError> {
        self.0.search(req).await.map_err(from_search)
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
}

fn from_search(e: SearchError) -> IndexError {
    match e {
        SearchError::BadRequest(m) => IndexError::BadRequest(m),
        e if e.is_transient() => IndexError::Unavailable(e.to_string()),
        e => IndexError::Failed(e.to_string()),
    }
}

/// The index of a running `cw serve` or `cw run`.
pub struct OverHttp {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl OverHttp {
    pub fn new(server: &str, token: Option<&str>) -> anyhow::Result<Self> {
        Ok(OverHttp {
            base: api::base_url(server).to_string(),
            token: token.map(str::to_string),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .context("building the HTTP client")?,
        })
    }

    /// Whether the server answers its liveness probe within two seconds.
    pub async fn answers(&self) -> bool {
        let probe = self
            .http
            .get(api::url(&self.base, api::HEALTHZ))
            .timeout(std::time::Duration::from_secs(2))
            .send()
            .await;
        matches!(probe, Ok(r) if r.status().is_success())
    }

    async fn post<B: Serialize + Sync, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, IndexError> {
        let url = api::url(&self.base, path);
        let mut req = self.http.post(&url).json(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| IndexError::Unavailable(format!("cannot reach {url}: {e}")))?;
        let status = resp.status();
        if status.is_success() {
            return resp
                .json()
                .await
                .map_err(|e| IndexError::Failed(format!("{url} answered unexpected JSON: {e}")));
        }
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let error = body["error"].as_str().unwrap_or("").to_string();
        Err(match status.as_u16() {
            400 => IndexError::BadRequest(error),
            401 | 403 => IndexError::Failed(format!(
                "{url} refused the token ({status}): set CW_INGEST_TOKEN (or --token) to the \
                 server's token"
            )),
            s if s == 429 || s >= 500 => IndexError::Unavailable(format!("{status}: {error}")),
            _ => IndexError::Failed(format!("{status}: {error}")),
        })
    }
}

#[async_trait]
impl Index for OverHttp {
    async fn search(&self, req: &SearchRequest) -> Result<Vec<SearchHit>, IndexError> {
        let body = SearchBody {
            request: req.clone(),
            ask: false,
        };
        let results: SearchResults = self.post(api::SEARCH, &body).await?;
        Ok(results.results)
    }

    async fn ask(
        &self,
        question: &str,
        limit: usize,
        cluster: Option<&str>,
    ) -> Result<AskAnswer, IndexError> {
        let body = SearchBody {
            request: SearchRequest {
                query: question.to_string(),
                limit: Some(limit),
                cluster: cluster.map(str::to_string),
                ..Default::default()
            },
            ask: true,
        };
        self.post(api::SEARCH, &body).await
    }

    async fn count(&self, body: &CountBody) -> Result<CountAnswer, IndexError> {
        self.post(api::SEARCH_COUNT, body).await
    }
}
