//! The one error type of the HTTP API: every failure answers `{"error", "details"}` with
//! a status that tells the sender whether to fix the batch (4xx) or retry it (5xx).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sync_model::{ErrorBody, FieldError};

use super::admission::Class;
use crate::access::identity::Refusal;
use crate::pipeline::SyncError;
use crate::store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    /// Malformed JSON or a payload that breaks the contract: fix it, do not retry.
    BadRequest {
        error: String,
        details: Vec<FieldError>,
    },
    /// No token, or one no authenticator accepts: 401 with `WWW-Authenticate: Bearer` and
    /// the reason (never the token).
    Unauthorized(Refusal),
    /// No known token on the agents' route (`/mcp`): 403 without `WWW-Authenticate`, the
    /// message as a JSON-RPC error. MCP clients read any 401 as the start of OAuth (the MCP
    /// authorization spec sends them to discover an authorization server, with or without a
    /// challenge), which cw does not offer: the MCP inspector then fails with "Interactive
    /// OAuth requires a TTY". A 403 is shown as the refusal it is, and the JSON-RPC body is
    /// what the SDKs print (docs/agents.md, "The token").
    AgentUnauthorized(Refusal),
    /// A user's token asks for what only operators' and watchers' tokens may do.
    OperatorsOnly {
        action: String,
        user: String,
    },
    /// A user whose grants hold in no cluster of the index (the message says so).
    NothingVisible(String),
    /// The token is known but may not write this cluster.
    Forbidden {
        cluster: String,
        may_write: String,
    },
    /// The token is known but `action` needs one that may write every cluster.
    NeedsEveryCluster {
        action: String,
        may_write: String,
    },
    /// The request names a cluster the index holds nothing of.
    UnknownCluster {
        cluster: String,
        known: Vec<String>,
    },
    PayloadTooLarge {
        limit: usize,
    },
    UnsupportedMediaType {
        got: Option<String>,
    },
    /// The store or the embedding provider is unavailable: retry later.
    Unavailable(String),
    /// The server is serving as many requests of `class` as it may: retry after
    /// `retry_after_secs` (load shedding; nothing was read of the request).
    Overloaded {
        class: Class,
        limit: usize,
        retry_after_secs: u64,
    },
    /// The embedding provider refused the call (bad key, bad model).
    BadGateway(String),
    /// Everything else, e.g. a collection filled by another embedding model.
    Internal(String),
    /// The request conflicts with work in progress (a reindex running already).
    Conflict(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::AgentUnauthorized(_)
            | ApiError::OperatorsOnly { .. }
            | ApiError::NothingVisible(_)
            | ApiError::Forbidden { .. }
            | ApiError::NeedsEveryCluster { .. } => StatusCode::FORBIDDEN,
            ApiError::UnknownCluster { .. } => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) | ApiError::Overloaded { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
        }
    }

    fn body(self) -> ErrorBody {
        let (error, details) = match self {
            ApiError::BadRequest { error, details } => (error, details),
            ApiError::Unauthorized(refusal) => (
                format!(
                    "missing or wrong bearer token ({refusal}): send Authorization: Bearer \
                     <token> (CW_INGEST_TOKEN, a token of the tokens file, an OIDC ID token or \
                     a ServiceAccount token)"
                ),
                vec![refused_token(&refusal)],
            ),
            ApiError::AgentUnauthorized(refusal) => (
                format!(
                    "missing or wrong bearer token ({refusal}): configure the MCP client to \
                     send the header Authorization: Bearer <token> (CW_INGEST_TOKEN of cw serve \
                     or cw run, or your own token); this server does not offer OAuth"
                ),
                vec![refused_token(&refusal)],
            ),
            ApiError::NothingVisible(m) => (m.clone(), vec![]),
            ApiError::OperatorsOnly { action, user } => (
                format!(
                    "the user {user:?} may not {action}: that needs an operator's or watcher's \
                     token (CW_INGEST_TOKEN or a cluster line of the tokens file)"
                ),
                vec![],
            ),
            ApiError::Forbidden { cluster, may_write } => (
                format!("this token may not write cluster {cluster:?}; it may write: {may_write}. Nothing was changed"),
                vec![FieldError {
                    field: "cluster".into(),
                    message: format!("not a cluster this token may write ({may_write})"),
                }],
            ),
            ApiError::NeedsEveryCluster { action, may_write } => (
                format!("this token may not {action}: that needs the shared token (CW_INGEST_TOKEN) or a `*` line in the tokens file; it may write: {may_write}. Nothing was changed"),
                vec![],
            ),
            ApiError::UnknownCluster { cluster, known } => (
                format!("unknown cluster {cluster:?}"),
                vec![FieldError {
                    field: "cluster".into(),
                    message: crate::search::known_clusters(&known),
                }],
            ),
            ApiError::PayloadTooLarge { limit } => (
                format!("request body is larger than {limit} bytes: send smaller batches (or raise --max-body-bytes)"),
                vec![],
            ),
            ApiError::UnsupportedMediaType { got } => (
                format!(
                    "content type must be application/json, got {}",
                    got.as_deref().unwrap_or("none")
                ),
                vec![],
            ),
            ApiError::Unavailable(m) => (format!("temporarily unavailable, retry later: {m}"), vec![]),
            ApiError::Overloaded { class, limit, retry_after_secs } => (
                format!(
                    "the server is serving {limit} {}, its limit ({}): retry in {retry_after_secs} s",
                    class.plural(),
                    class.setting()
                ),
                vec![],
            ),
            ApiError::BadGateway(m) => (m, vec![]),
            ApiError::Internal(m) => (m, vec![]),
            ApiError::Conflict(m) => (m, vec![]),
        };
        ErrorBody { error, details }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Unavailable(m) => tracing::warn!(%status, "{m}"),
            ApiError::BadGateway(m) | ApiError::Internal(m) => tracing::error!(%status, "{m}"),
            _ => tracing::debug!(%status, "request refused"),
        }
        let unauthorized = matches!(self, ApiError::Unauthorized(_));
        let retry_after = match &self {
            ApiError::Overloaded {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        };
        let agent = matches!(self, ApiError::AgentUnauthorized(_));
        let body = self.body();
        let mut resp = if agent {
            (status, Json(json_rpc_error(body))).into_response()
        } else {
            (status, Json(body)).into_response()
        };
        if unauthorized {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        resp
    }
}

/// The detail of a refused token: what is wrong with it, under `Authorization`.
fn refused_token(refusal: &Refusal) -> FieldError {
    FieldError {
        field: "Authorization".into(),
        message: format!("{}: {refusal}", refusal.outcome()),
    }
}

/// A refused token, as the extractor of [`crate::access::identity::Caller`] answers it.
impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        ApiError::Unauthorized(self).into_response()
    }
}

/// JSON-RPC's error code for a request refused for its credentials (the range -32000 to
/// -32099 is left to servers).
const JSON_RPC_UNAUTHORIZED: i64 = -32001;

/// `body` as the JSON-RPC error an MCP client reads from a refused request (its id unknown,
/// hence null), the details under `data`.
fn json_rpc_error(body: ErrorBody) -> serde_json::Value {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {
            "code": JSON_RPC_UNAUTHORIZED,
            "message": body.error,
            "data": {"details": body.details},
        },
    })
}

impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> Self {
        let transient = e.is_transient();
        match e {
            SyncError::Invalid(details) => ApiError::BadRequest {
                error: format!(
                    "invalid sync payload: {} problem(s); nothing was stored",
                    details.len()
                ),
                details,
            },
            e if transient => ApiError::Unavailable(e.to_string()),
            SyncError::Embed(e) => ApiError::BadGateway(e.to_string()),
            SyncError::Store(e) => ApiError::from(e),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_transient() {
            ApiError::Unavailable(e.to_string())
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}
