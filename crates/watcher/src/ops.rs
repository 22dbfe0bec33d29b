//! Operations endpoints: `/healthz`, `/readyz`, `/metrics` and `POST /api/v1/resync`
//! (bearer token when configured).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sync_model::api;
use sync_model::{BearerToken, ErrorBody};

use crate::controller::Shared;
use crate::resync::{ResyncReport, ResyncScope};

#[derive(Clone)]
struct OpsState {
    shared: Arc<Shared>,
    token: Option<BearerToken>,
}

pub fn router(shared: Arc<Shared>, token: Option<String>) -> Router {
    let state = OpsState {
        shared,
        token: token.as_deref().and_then(BearerToken::new),
    };
    Router::new()
        .route(api::HEALTHZ, get(|| async { "ok" }))
        .route(api::READYZ, get(readyz))
        .route(api::METRICS, get(metrics))
        .route(api::RESYNC, post(resync))
        .with_state(state)
}

/// 200 `ready` once every available type is listed and the ingest server takes this
/// watcher's token; else 503 `not ready`, with the server's refusal (its status, message and
/// the cluster) when it refuses the token. The unavailable API groups, if any, follow on
/// their own lines (their types are not watched yet, so the index may lack them).
async fn readyz(State(s): State<OpsState>) -> Response {
    let (status, mut body) = if s.shared.is_ready() {
        (StatusCode::OK, String::from("ready"))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, String::from("not ready"))
    };
    if let Some(refusal) = s.shared.ingest_refusal() {
        body.push_str(&format!(
            "\n{refusal}\n  (batches are kept and retried; set the token this watcher sends, \
             CW_INGEST_TOKEN, to one the server's tokens file lets write this cluster)"
        ));
    }
    let unavailable = s.shared.unavailable_groups();
    if !unavailable.is_empty() {
        body.push_str(
            "\nunavailable API groups (not watched, stored documents kept, retried in the background):",
        );
        for (group, reason) in unavailable {
            body.push_str(&format!("\n  {group}: {reason}"));
        }
    }
    (status, body).into_response()
}

async fn metrics(State(s): State<OpsState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.shared.metrics.encode(),
    )
        .into_response()
}

fn error(status: StatusCode, msg: &str) -> Response {
    (
        status,
        Json(ErrorBody {
            error: msg.into(),
            details: vec![],
        }),
    )
        .into_response()
}

/// `?only=instances` or `?only=capabilities`; anything else is a bad request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResyncQuery {
    only: Option<ResyncScope>,
}

async fn resync(
    State(s): State<OpsState>,
    headers: HeaderMap,
    query: Result<Query<ResyncQuery>, QueryRejection>,
) -> Response {
    if let Some(token) = &s.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !token.authorizes(given) {
            return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        }
    }
    let scope = match query {
        Ok(Query(q)) => q.only.unwrap_or_default(),
        Err(e) => {
            let message = format!("{}: use only=instances or only=capabilities", e.body_text());
            return error(StatusCode::BAD_REQUEST, &message);
        }
    };
    match s.shared.request_resync_of(scope).await {
        Some(report) => Json(report).into_response(),
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the watcher is not running",
        ),
    }
}

/// How long `cw resync` waits for the report by default: a resync of 100,000 objects takes
/// about a minute; one that waits on an ingest server that is down may never end.
pub const DEFAULT_RESYNC_TIMEOUT: Duration = Duration::from_secs(600);

/// Why `request_resync` failed.
#[derive(Debug, thiserror::Error)]
pub enum ResyncRequestError {
    #[error("cannot reach the watcher at {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("the watcher at {url} did not answer within {after:?} (the resync may still be running; see its log)")]
    TimedOut { url: String, after: Duration },
    #[error("the watcher answered {status}: {body}")]
    Refused { status: u16, body: String },
}

/// Client side of `POST /api/v1/resync`: asks a running watcher (`base_url` like
/// `http://localhost:8082`) for a resync and returns its report. Needs a rustls crypto
/// provider installed in the process.
pub async fn request_resync(
    base_url: &str,
    token: Option<&str>,
) -> Result<ResyncReport, ResyncRequestError> {
    request_resync_of(base_url, token, ResyncScope::All, DEFAULT_RESYNC_TIMEOUT).await
}

/// Like [`request_resync`], of instances or capabilities only, waiting at most `timeout`.
pub async fn request_resync_of(
    base_url: &str,
    token: Option<&str>,
    scope: ResyncScope,
    timeout: Duration,
) -> Result<ResyncReport, ResyncRequestError> {
    let only = match scope {
        ResyncScope::All => "",
        ResyncScope::Instances => "?only=instances",
        ResyncScope::Capabilities => "?only=capabilities",
    };
    let url = format!("{}{}{only}", base_url.trim_end_matches('/'), api::RESYNC);
    let unreachable = |source: reqwest::Error| {
        if source.is_timeout() {
            ResyncRequestError::TimedOut {
                url: url.clone(),
                after: timeout,
            }
        } else {
            ResyncRequestError::Unreachable {
                url: url.clone(),
                source,
            }
        }
    };
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(unreachable)?;
    let mut req = client.post(&url);
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.map_err(unreachable)?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        return Err(ResyncRequestError::Refused {
            status: status.as_u16(),
            body,
        });
    }
    resp.json().await.map_err(unreachable)
}

/// Serves the operations endpoints on `listener` until `stop` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    token: Option<String>,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(shared, token))
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}
