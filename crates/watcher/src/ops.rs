//! Operations endpoints: `/healthz`, `/readyz`, `/metrics` and `POST /api/v1/resync`
//! (bearer token when configured).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sync_model::ErrorBody;

use crate::controller::{ResyncScope, Shared};

#[derive(Clone)]
struct OpsState {
    shared: Arc<Shared>,
    token: Option<Arc<str>>,
}

pub fn router(shared: Arc<Shared>, token: Option<String>) -> Router {
    let state = OpsState {
        shared,
        token: token.filter(|t| !t.is_empty()).map(Arc::from),
    };
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/resync", post(resync))
        .with_state(state)
}

async fn readyz(State(s): State<OpsState>) -> Response {
    if s.shared.is_ready() {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
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

/// Constant-time comparison, so that response timing does not reveal the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `?only=instances` or `?only=capabilities`; anything else is a bad request.
fn resync_scope(query: Option<&str>) -> Result<ResyncScope, String> {
    let mut scope = ResyncScope::All;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        scope = match pair {
            "only=instances" => ResyncScope::Instances,
            "only=capabilities" => ResyncScope::Capabilities,
            other => {
                return Err(format!(
                    "unknown parameter {other:?}: use only=instances or only=capabilities"
                ))
            }
        };
    }
    Ok(scope)
}

async fn resync(
    State(s): State<OpsState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Some(token) = &s.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same(given.as_bytes(), token.as_bytes()) {
            return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        }
    }
    let scope = match resync_scope(query.as_deref()) {
        Ok(scope) => scope,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    match s.shared.request_resync_of(scope).await {
        Some(report) => Json(report).into_response(),
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the watcher is not running",
        ),
    }
}

/// Why `request_resync` failed.
#[derive(Debug, thiserror::Error)]
pub enum ResyncRequestError {
    #[error("cannot reach the watcher at {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("the watcher answered {status}: {body}")]
    Refused { status: u16, body: String },
}

/// Client side of `POST /api/v1/resync`: asks a running watcher (`base_url` like
/// `http://localhost:8082`) for a resync and returns its report. Needs a rustls crypto
/// provider installed in the process.
pub async fn request_resync(
    base_url: &str,
    token: Option<&str>,
) -> Result<crate::controller::ResyncReport, ResyncRequestError> {
    request_resync_of(base_url, token, ResyncScope::All).await
}

/// Like [`request_resync`], of instances or capabilities only.
pub async fn request_resync_of(
    base_url: &str,
    token: Option<&str>,
    scope: ResyncScope,
) -> Result<crate::controller::ResyncReport, ResyncRequestError> {
    let only = match scope {
        ResyncScope::All => "",
        ResyncScope::Instances => "?only=instances",
        ResyncScope::Capabilities => "?only=capabilities",
    };
    let url = format!("{}/api/v1/resync{only}", base_url.trim_end_matches('/'));
    let unreachable = |source| ResyncRequestError::Unreachable {
        url: url.clone(),
        source,
    };
    let mut req = reqwest::Client::new().post(&url);
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
