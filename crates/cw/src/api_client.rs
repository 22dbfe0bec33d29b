//! The one client of a cw server's search API in `cw`: `cw search`, `cw ask`, `cw clusters`
//! and `cw mcp` ask a running `cw serve` or `cw run` through it. Its answer's status becomes
//! an [`ApiError`] here and nowhere else, each variant saying what is wrong and what to do.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sync_model::api::{self, ClustersResponse};
use sync_model::search::{
    AskAnswer, CountAnswer, CountBody, SearchBody, SearchHit, SearchRequest, SearchResults,
};
use watcher::TokenArgs;

/// Longest wait for one answer of the search API (a question embeds its text first).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a server may take to answer its liveness probe before it counts as absent.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Which cw server a client asks, and with which token.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ApiClientArgs {
    /// The cw server (`cw serve` or `cw run`) to ask, e.g. http://cw.example:8080. Without
    /// it, a server on this machine at `cw serve`'s default port is asked if one answers
    /// there; else the local index is read.
    #[arg(long, env = "CW_SERVER_URL")]
    pub server: Option<String>,
    // The bearer token of the server's API.
    #[command(flatten)]
    pub token: TokenArgs,
}

impl ApiClientArgs {
    /// The server named by `--server` / `CW_SERVER_URL`, if any (blank counts as none).
    pub fn named(&self) -> Option<&str> {
        self.server.as_deref().filter(|u| !u.trim().is_empty())
    }

    /// A client of the named server, else of the default address.
    pub fn client(&self) -> anyhow::Result<ApiClient> {
        let default = api::default_server_url();
        ApiClient::new(self.named().unwrap_or(&default), self.token.get())
    }
}

/// Why the search API did not answer as asked.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Nothing answered: the server is down, the address wrong, or it took too long.
    #[error(
        "cannot reach the cw server at {url} ({source}): is `cw serve` or `cw run` running \
         there? (--server / CW_SERVER_URL)"
    )]
    Unreachable { url: String, source: reqwest::Error },
    /// The request itself is wrong (a bad filter, an empty query): the caller fixes it.
    #[error("the search was refused: {0}")]
    BadRequest(String),
    /// The server requires another token.
    #[error("{url} refused the token: set CW_INGEST_TOKEN (or --token) to the server's token")]
    Unauthorized { url: String },
    /// The address answers, but not as a cw server (or as one without this endpoint).
    #[error("{url} has no such endpoint: is it a cw server (cw serve or cw run) of this version?")]
    NotCw { url: String },
    /// The server, its store or its embedding provider cannot answer now: try again later.
    #[error("the cw server cannot answer now: {0}")]
    Unavailable(String),
    /// The server failed in a way no retry fixes, or answered what this client cannot read.
    #[error("{url} failed: {message}")]
    Failed { url: String, message: String },
}

impl ApiError {
    /// Whether asking again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::Unreachable { .. } | ApiError::Unavailable(_)
        )
    }
}

/// A client of one cw server's search API.
#[derive(Clone, Debug)]
pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client of the server at `server` (its base URL; a sync URL works too).
    pub fn new(server: &str, token: Option<&str>) -> anyhow::Result<Self> {
        use anyhow::Context;
        Ok(ApiClient {
            base: api::base_url(server).to_string(),
            token: token.map(str::to_string),
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .context("building the HTTP client")?,
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Whether a cw server answers its liveness probe here within [`PROBE_TIMEOUT`].
    pub async fn answers(&self) -> bool {
        let probe = self
            .http
            .get(api::url(&self.base, api::HEALTHZ))
            .timeout(PROBE_TIMEOUT)
            .send()
            .await;
        matches!(probe, Ok(r) if r.status().is_success())
    }

    /// Ranked hits (`POST /api/v1/search`).
    pub async fn search(&self, request: &SearchRequest) -> Result<Vec<SearchHit>, ApiError> {
        Ok(self.search_page(request).await?.results)
    }

    /// Ranked hits and, across a fleet, each cluster's share of them (`POST /api/v1/search`).
    pub async fn search_page(&self, request: &SearchRequest) -> Result<SearchResults, ApiError> {
        let body = SearchBody {
            request: request.clone(),
            ask: false,
        };
        self.post(api::SEARCH, &body).await
    }

    /// The types that answer `request.query`, then their instances (`"ask": true`).
    pub async fn ask(&self, request: &SearchRequest) -> Result<AskAnswer, ApiError> {
        let body = SearchBody {
            request: request.clone(),
            ask: true,
        };
        self.post(api::SEARCH, &body).await
    }

    /// How many objects match, grouped if asked (`POST /api/v1/search/count`).
    pub async fn count(&self, body: &CountBody) -> Result<CountAnswer, ApiError> {
        self.post(api::SEARCH_COUNT, body).await
    }

    /// Every cluster of the index (`GET /api/v1/clusters`).
    pub async fn clusters(&self) -> Result<ClustersResponse, ApiError> {
        let url = api::url(&self.base, api::CLUSTERS);
        let answer = self.send(self.http.get(&url), &url).await?;
        read(answer, &url)
    }

    /// The answer to `body` at `path`, as the server wrote it (what `--output json` prints).
    pub async fn post_value<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<serde_json::Value, ApiError> {
        let url = api::url(&self.base, path);
        self.send(self.http.post(&url).json(body), &url).await
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let answer = self.post_value(path, body).await?;
        read(answer, &api::url(&self.base, path))
    }

    /// Sends `request` with the token and reads its JSON answer; the one place where a
    /// status becomes an [`ApiError`].
    async fn send(
        &self,
        mut request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<serde_json::Value, ApiError> {
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        let resp = request
            .send()
            .await
            .map_err(|source| ApiError::Unreachable {
                url: url.to_string(),
                source,
            })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| ApiError::Failed {
                url: url.to_string(),
                message: format!("its answer is not JSON ({e})"),
            });
        }
        Err(status_error(status, &text, url))
    }
}

/// `answer` as `T`, or what is wrong with it.
pub fn read<T: DeserializeOwned>(answer: serde_json::Value, url: &str) -> Result<T, ApiError> {
    serde_json::from_value(answer).map_err(|e| ApiError::Failed {
        url: url.to_string(),
        message: format!("unexpected answer ({e})"),
    })
}

/// What a refusal means, from its status and the `{"error": ...}` body cw's servers send.
fn status_error(status: reqwest::StatusCode, body: &str, url: &str) -> ApiError {
    let error = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| body.trim().chars().take(200).collect());
    match status.as_u16() {
        400 | 422 => ApiError::BadRequest(error),
        401 | 403 => ApiError::Unauthorized {
            url: url.to_string(),
        },
        404 | 405 => ApiError::NotCw {
            url: url.to_string(),
        },
        408 | 429 | 500..=599 => ApiError::Unavailable(format!("{status}: {error}")),
        _ => ApiError::Failed {
            url: url.to_string(),
            message: format!("{status}: {error}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    #[test]
    fn each_refusal_says_what_is_wrong() {
        let url = "http://cw:8080/api/v1/search";
        let bad = status_error(
            StatusCode::BAD_REQUEST,
            r#"{"error":"limit must be at most 1000","details":[]}"#,
            url,
        );
        assert!(
            matches!(&bad, ApiError::BadRequest(m) if m == "limit must be at most 1000"),
            "{bad:?}"
        );
        let token = status_error(StatusCode::UNAUTHORIZED, "", url).to_string();
        assert!(token.contains("CW_INGEST_TOKEN"), "{token}");
        let elsewhere = status_error(StatusCode::NOT_FOUND, "<html>", url).to_string();
        assert!(elsewhere.contains("is it a cw server"), "{elsewhere}");
        let busy = status_error(StatusCode::SERVICE_UNAVAILABLE, r#"{"error":"busy"}"#, url);
        assert!(
            busy.is_transient() && busy.to_string().contains("busy"),
            "{busy}"
        );
        let teapot = status_error(StatusCode::IM_A_TEAPOT, "short and stout", url);
        assert!(!teapot.is_transient(), "{teapot:?}");
        assert!(teapot.to_string().contains("short and stout"), "{teapot}");
    }

    #[tokio::test]
    async fn an_absent_server_is_unreachable_and_named() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // A port nothing listens on: bind one, note it, let it go.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = ApiClient::new(&format!("http://127.0.0.1:{port}"), None).unwrap();
        assert!(!client.answers().await);
        let err = client.search(&SearchRequest::default()).await.unwrap_err();
        assert!(err.is_transient(), "{err:?}");
        assert!(
            err.to_string().contains(&format!("127.0.0.1:{port}")),
            "{err}"
        );
    }

    #[test]
    fn without_a_named_server_the_default_address_is_asked() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let args = ApiClientArgs::default();
        assert_eq!(args.named(), None);
        assert_eq!(args.client().unwrap().base(), api::default_server_url());
        let blank = ApiClientArgs {
            server: Some("  ".into()),
            ..Default::default()
        };
        assert_eq!(blank.named(), None);
        let named = ApiClientArgs {
            server: Some("http://cw:8080/".into()),
            ..Default::default()
        };
        assert_eq!(named.client().unwrap().base(), "http://cw:8080");
    }
}
