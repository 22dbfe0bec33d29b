//! The one client of a cw server's search API in `cw`: `cw search`, `cw ask`, `cw clusters`
//! and `cw mcp` ask a running `cw serve` or `cw run` through it. Its answer's status becomes
//! an [`ApiError`] here and nowhere else, each variant saying what is wrong and what to do.
//! A busy server's 503 (or 429) is asked again after its `Retry-After` ([`retry_wait`]),
//! within [`RETRY_BUDGET`] in all; then the error says the server is overloaded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{ConstantBuilder, Retryable};

use serde::de::DeserializeOwned;
use serde::Serialize;
use sync_model::api::{self, ClustersResponse};
use sync_model::search::{
    AskAnswer, CountAnswer, CountBody, SearchBody, SearchHit, SearchRequest, SearchResults,
};

use crate::credential::{Credential, KubeUser};

/// Longest wait for one answer of the search API (a question embeds its text first).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a server may take to answer its liveness probe before it counts as absent.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one call waits in all for a busy server before it gives up.
pub const RETRY_BUDGET: Duration = Duration::from_secs(30);
/// The wait before asking a busy server again when it does not say (`Retry-After`).
const DEFAULT_RETRY_WAIT: Duration = Duration::from_secs(1);

/// Which cw server a client asks, and with which credential (the first given of
/// `--token`, `--kube-credentials`, `--ingest-token`: [`crate::credential`]).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ApiClientArgs {
    /// The cw server (`cw serve` or `cw run`) to ask, e.g. http://cw.example:8080. Without
    /// it, a server on this machine at `cw serve`'s default port is asked if one answers
    /// there; else the local index is read.
    #[arg(long, env = "CW_SERVER_URL")]
    pub server: Option<String>,
    /// Your own bearer token for the server: an OIDC ID token, a ServiceAccount token or a
    /// user's token of its tokens file. Sent before any other credential.
    #[arg(long, env = "CW_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Send the current kubeconfig context's user credential (its token, tokenFile or exec
    /// plugin, as kubectl would) to the server, when no --token is given. Off unless asked:
    /// a kubeconfig's token is meant for its API server.
    #[arg(long, env = "CW_KUBE_CREDENTIALS")]
    pub kube_credentials: bool,
    /// An operator's or watcher's token (the server's CW_INGEST_TOKEN), sent when neither
    /// --token nor --kube-credentials is given.
    #[arg(
        long,
        visible_alias = "auth-token",
        env = "CW_INGEST_TOKEN",
        hide_env_values = true
    )]
    pub ingest_token: Option<String>,
}

impl ApiClientArgs {
    /// The server named by `--server` / `CW_SERVER_URL`, if any (blank counts as none).
    pub fn named(&self) -> Option<&str> {
        self.server.as_deref().filter(|u| !u.trim().is_empty())
    }

    /// A client of the named server, else of the default address.
    pub fn client(&self) -> anyhow::Result<ApiClient> {
        let default = api::default_server_url();
        Ok(ApiClient::new(self.named().unwrap_or(&default), None)?
            .with_credential(self.credential()?))
    }

    /// The credential sent: `--token`, else the kubeconfig user's when asked
    /// (`--kube-credentials`), else `--ingest-token`.
    pub fn credential(&self) -> anyhow::Result<Credential> {
        use anyhow::Context;
        let own = Credential::token(self.token.as_deref());
        if !matches!(own, Credential::None) {
            return Ok(own);
        }
        if self.kube_credentials {
            let kubeconfig = kube::config::Kubeconfig::read().context(
                "--kube-credentials: reading the kubeconfig (KUBECONFIG or ~/.kube/config)",
            )?;
            let user = KubeUser::current(&kubeconfig).context("--kube-credentials")?;
            return Ok(Credential::Kube(std::sync::Arc::new(user)));
        }
        Ok(Credential::token(self.ingest_token.as_deref()))
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
    #[error(
        "{url} refused the token{}: pass your own with --token (CW_TOKEN) or \
         --kube-credentials, or an operator's with CW_INGEST_TOKEN",
        reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
    )]
    Unauthorized { url: String, reason: Option<String> },
    /// The server cannot send the caller's credential.
    #[error("{0:#}")]
    Credential(std::sync::Arc<anyhow::Error>),
    /// The token is known, but may not do this (the server says what it needs).
    #[error("{url} refused: {message}")]
    Forbidden { url: String, message: String },
    /// The request names a cluster the index holds nothing of.
    #[error("{message}")]
    UnknownCluster { message: String },
    /// The address answers, but not as a cw server (or as one without this endpoint).
    #[error("{url} has no such endpoint: is it a cw server (cw serve or cw run) of this version?")]
    NotCw { url: String },
    /// The server, its store or its embedding provider cannot answer now: try again later.
    #[error("the cw server cannot answer now: {0}")]
    Unavailable(String),
    /// The server stayed too busy for the whole retry budget.
    #[error(
        "the cw server at {url} is overloaded: still busy after {waited_secs} s of retries \
         ({message}); try again later, or raise its CW_MAX_CONCURRENT_READS"
    )]
    Overloaded {
        url: String,
        waited_secs: u64,
        message: String,
    },
    /// The server failed in a way no retry fixes, or answered what this client cannot read.
    #[error("{url} failed: {message}")]
    Failed { url: String, message: String },
}

impl ApiError {
    /// Whether asking again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::Unreachable { .. } | ApiError::Unavailable(_) | ApiError::Overloaded { .. }
        )
    }
}

/// A client of one cw server's search API.
#[derive(Clone, Debug)]
pub struct ApiClient {
    base: String,
    credential: Credential,
    http: reqwest::Client,
    /// How long one call waits in all for a busy server.
    retry_budget: Duration,
}

/// One refused attempt: the error, and whether (and after how long) to ask again.
struct Attempt {
    error: ApiError,
    /// `Some` for a busy server's answer: its `Retry-After`, if it said.
    busy: Option<Option<Duration>>,
}

impl ApiClient {
    /// A client of the server at `server` (its base URL; a sync URL works too).
    pub fn new(server: &str, token: Option<&str>) -> anyhow::Result<Self> {
        use anyhow::Context;
        Ok(ApiClient {
            base: api::base_url(server).to_string(),
            credential: Credential::token(token),
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .context("building the HTTP client")?,
            retry_budget: RETRY_BUDGET,
        })
    }

    /// Sends `credential` as the bearer token.
    pub fn with_credential(mut self, credential: Credential) -> Self {
        self.credential = credential;
        self
    }

    /// Waits at most `budget` in all for a busy server (tests shorten it).
    #[cfg(test)]
    pub fn with_retry_budget(mut self, budget: Duration) -> Self {
        self.retry_budget = budget;
        self
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
        let answer = self.send(|| self.http.get(&url), &url).await?;
        read(answer, &url)
    }

    /// Retires `cluster` (`DELETE /api/v1/clusters/{name}`).
    pub async fn remove_cluster(
        &self,
        cluster: &sync_model::ClusterId,
    ) -> Result<api::ClusterRemoved, ApiError> {
        let url = api::cluster_url(&self.base, cluster);
        let answer = self.send(|| self.http.delete(&url), &url).await?;
        read(answer, &url)
    }

    /// The answer to `body` at `path`, as the server wrote it (what `--output json` prints).
    pub async fn post_value<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<serde_json::Value, ApiError> {
        let url = api::url(&self.base, path);
        self.send(|| self.http.post(&url).json(body), &url).await
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let answer = self.post_value(path, body).await?;
        read(answer, &api::url(&self.base, path))
    }

    /// Sends the request `build` makes with the token and reads its JSON answer, asking a
    /// busy server again (after its `Retry-After`) while the retry budget lasts.
    async fn send(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
        url: &str,
    ) -> Result<serde_json::Value, ApiError> {
        let waited_ms = AtomicU64::new(0);
        let budget = self.retry_budget;
        let attempt = || self.send_once(build(), url);
        let result = attempt
            .retry(ConstantBuilder::default().without_max_times())
            .sleep(tokio::time::sleep)
            .when(|a: &Attempt| a.busy.is_some())
            .adjust(|a: &Attempt, _| {
                let wait = retry_wait(a.busy.flatten());
                let waited = Duration::from_millis(waited_ms.load(Ordering::Relaxed));
                (waited + wait <= budget).then(|| {
                    waited_ms.fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
                    wait
                })
            })
            .notify(|a: &Attempt, wait: Duration| {
                tracing::info!(error = %a.error, ?wait, "the cw server is busy; asking again");
            })
            .await;
        result.map_err(|a| match (a.busy, a.error) {
            (Some(_), ApiError::Unavailable(message)) => ApiError::Overloaded {
                url: url.to_string(),
                waited_secs: waited_ms.load(Ordering::Relaxed) / 1000,
                message,
            },
            (_, error) => error,
        })
    }

    /// One attempt; the one place where a status becomes an [`ApiError`].
    async fn send_once(
        &self,
        mut request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<serde_json::Value, Attempt> {
        let bearer = self.credential.bearer().await.map_err(|e| Attempt {
            error: ApiError::Credential(std::sync::Arc::new(e)),
            busy: None,
        })?;
        if let Some(t) = bearer {
            request = request.bearer_auth(t);
        }
        let resp = request.send().await.map_err(|source| Attempt {
            error: ApiError::Unreachable {
                url: url.to_string(),
                source,
            },
            busy: None,
        })?;
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        let text = resp.text().await.unwrap_or_default();
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| Attempt {
                error: ApiError::Failed {
                    url: url.to_string(),
                    message: format!("its answer is not JSON ({e})"),
                },
                busy: None,
            });
        }
        let busy = matches!(status.as_u16(), 429 | 503).then_some(retry_after);
        Err(Attempt {
            error: status_error(status, &text, url),
            busy,
        })
    }
}

/// How long to wait before asking a busy server again: what it said, else a second.
fn retry_wait(said: Option<Duration>) -> Duration {
    said.unwrap_or(DEFAULT_RETRY_WAIT)
}

/// `Retry-After` in seconds; HTTP dates are not sent by cw's servers and are ignored.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// `answer` as `T`, or what is wrong with it.
pub fn read<T: DeserializeOwned>(answer: serde_json::Value, url: &str) -> Result<T, ApiError> {
    serde_json::from_value(answer).map_err(|e| ApiError::Failed {
        url: url.to_string(),
        message: format!("unexpected answer ({e})"),
    })
}

/// What a refusal means, from its status and the `{"error": ..., "details": [...]}` body
/// cw's servers send.
fn status_error(status: reqwest::StatusCode, body: &str, url: &str) -> ApiError {
    let parsed: Option<sync_model::ErrorBody> = serde_json::from_str(body).ok();
    let error = parsed
        .as_ref()
        .map(|b| b.error.clone())
        .unwrap_or_else(|| body.trim().chars().take(200).collect());
    // The error and what its details add: `unknown cluster "nope": known clusters: a, b`.
    let with_details = || match &parsed {
        Some(b) if !b.details.is_empty() => {
            let details: Vec<&str> = b.details.iter().map(|d| d.message.as_str()).collect();
            format!("{error}: {}", details.join("; "))
        }
        _ => error.clone(),
    };
    match status.as_u16() {
        400 | 422 => ApiError::BadRequest(error),
        401 => ApiError::Unauthorized {
            url: url.to_string(),
            reason: parsed.as_ref().map(|_| with_details()),
        },
        403 if parsed.is_some() => ApiError::Forbidden {
            url: url.to_string(),
            message: error,
        },
        403 => ApiError::Unauthorized {
            url: url.to_string(),
            reason: None,
        },
        // cw's own 404 with a body: a cluster it does not know; else not cw (or too old).
        404 if parsed.is_some() => ApiError::UnknownCluster {
            message: with_details(),
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

    /// A server on a free port that answers each request with the next of `answers`
    /// (status, `Retry-After`, body), the last one again once they run out; and how many
    /// requests it got.
    async fn scripted(
        answers: Vec<(u16, Option<&'static str>, &'static str)>,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::AtomicUsize;
        use std::sync::Arc;
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let app = axum::Router::new().fallback(move || {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let (status, retry_after, body) = answers[n.min(answers.len() - 1)];
            async move {
                let mut resp = axum::response::Response::new(axum::body::Body::from(body));
                *resp.status_mut() = axum::http::StatusCode::from_u16(status).unwrap();
                if let Some(wait) = retry_after {
                    resp.headers_mut()
                        .insert("retry-after", wait.parse().unwrap());
                }
                resp
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, calls)
    }

    const BUSY: &str = r#"{"error":"the server is serving 8 reads, its limit (CW_MAX_CONCURRENT_READS): retry in 1 s","details":[]}"#;

    #[tokio::test]
    async fn a_busy_server_is_asked_again_after_its_retry_after() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (base, calls) = scripted(vec![
            (503, Some("0.2"), BUSY),
            (503, Some("0.2"), BUSY),
            (200, None, r#"{"clusters":[]}"#),
        ])
        .await;
        let client = ApiClient::new(&base, None).unwrap();
        let started = std::time::Instant::now();
        let answer = client.clusters().await.expect("answered after two waits");
        assert!(answer.clusters.is_empty());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(
            started.elapsed() >= Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_server_busy_for_the_whole_budget_is_reported_overloaded() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (base, calls) = scripted(vec![(503, Some("0.3"), BUSY)]).await;
        let client = ApiClient::new(&base, None)
            .unwrap()
            .with_retry_budget(Duration::from_secs(1));
        let started = std::time::Instant::now();
        let err = client
            .search(&SearchRequest::default())
            .await
            .expect_err("still busy");
        assert!(matches!(err, ApiError::Overloaded { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("overloaded") && text.contains(&base),
            "{text}"
        );
        // Three waits of 0.3 s fit the budget of 1 s; a fourth would not.
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_refusal_that_no_wait_fixes_is_not_asked_again() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (base, calls) = scripted(vec![(
            404,
            None,
            r#"{"error":"unknown cluster \"nope\"","details":[{"field":"cluster","message":"known clusters: a, b"}]}"#,
        )])
        .await;
        let client = ApiClient::new(&base, None).unwrap();
        let err = client.search(&SearchRequest::default()).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown cluster \"nope\": known clusters: a, b"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
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
