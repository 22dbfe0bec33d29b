//! The ingest HTTP server: `POST /api/v1/instances/sync`, `GET /api/v1/instances/hashes`,
//! `GET /api/v1/instances/parked`, probes and metrics. Handlers are thin: parse, call the
//! [`Pipeline`], map the error. The API serves at most `max_concurrent_requests` at once
//! and answers 503 with `Retry-After` beyond (load shedding: each request may hold a
//! 16 MiB body and its copies, so queueing them would only move the memory problem).
//! [`router`] returns a plain `Router` so that `cw run` can merge it with others.

mod capabilities;
pub mod credentials;
mod error;
pub mod openapi;
mod schema;
pub mod search;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sync_model::api::{self, HashesQuery, HashesResponse, ParkedResponse};
use sync_model::{BearerToken, ErrorBody, FieldError, SyncPayload, SyncResponse};

use self::credentials::{Access, Credentials, TokensFile};

pub use error::ApiError;

use crate::capabilities::CapabilityPipeline;
use crate::pipeline::Pipeline;
use crate::search::Searcher;

/// The collections' names unless configured otherwise.
pub const DEFAULT_INSTANCES_COLLECTION: &str = "instances";
pub const DEFAULT_CAPABILITIES_COLLECTION: &str = "capabilities";

/// Fits 5,000 instances of about 3 KB of JSON each (labels and a few annotations).
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Four maximum-size syncs at once stay within the chart's 256Mi memory limit (measured in
/// docs/ingest.md, "Load bound").
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 4;

/// What a shed request is told to wait: about one sync's time.
pub const SHED_RETRY_AFTER_SECS: u64 = 2;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Bearer token required on everything but the probes and metrics; `None` for no auth.
    /// It may write every cluster.
    pub auth_token: Option<String>,
    /// Per-cluster tokens (`CW_INGEST_TOKENS_FILE`), beside or instead of the shared one.
    pub tokens_file: Option<Arc<TokensFile>>,
    pub max_body_bytes: usize,
    /// The collection of resource types, searched by `ask` before the instances.
    pub capabilities_collection: String,
    /// API requests served at once; more are answered 503 with `Retry-After`.
    pub max_concurrent_requests: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            auth_token: None,
            tokens_file: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            capabilities_collection: DEFAULT_CAPABILITIES_COLLECTION.into(),
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
        }
    }
}

/// Shared by every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    pipeline: Pipeline,
    capabilities: CapabilityPipeline,
    searcher: Searcher,
    credentials: Credentials,
    max_body_bytes: usize,
    /// One permit per request being served (see [`shed_load`]).
    slots: Arc<tokio::sync::Semaphore>,
    max_concurrent_requests: usize,
    shutting_down: AtomicBool,
}

impl AppState {
    /// The capabilities pipeline is built from `pipeline`'s store and embedder, in
    /// `config.capabilities_collection`, without enrichment.
    pub fn new(pipeline: Pipeline, config: ServerConfig) -> Self {
        let capabilities = CapabilityPipeline::new(
            pipeline.store().clone(),
            pipeline.embedder().clone(),
            config.capabilities_collection.clone(),
        );
        Self::with_capabilities(pipeline, capabilities, config)
    }

    /// With a capabilities pipeline of the caller's (e.g. with an enricher). It shares
    /// `pipeline`'s metrics, so `/metrics` shows both.
    pub fn with_capabilities(
        pipeline: Pipeline,
        capabilities: CapabilityPipeline,
        config: ServerConfig,
    ) -> Self {
        // One default cluster for instances and capabilities: the pipeline's.
        let capabilities = capabilities
            .with_metrics(pipeline.metrics().clone())
            .with_default_cluster(pipeline.default_cluster().clone());
        AppState {
            inner: Arc::new(Inner {
                capabilities,
                searcher: Searcher::new(
                    pipeline.store().clone(),
                    pipeline.embedder().clone(),
                    pipeline.collection(),
                    config.capabilities_collection.clone(),
                ),
                pipeline,
                credentials: Credentials {
                    shared: config.auth_token.as_deref().and_then(BearerToken::new),
                    file: config.tokens_file.clone(),
                },
                max_body_bytes: config.max_body_bytes,
                slots: Arc::new(tokio::sync::Semaphore::new(
                    config.max_concurrent_requests.max(1),
                )),
                max_concurrent_requests: config.max_concurrent_requests.max(1),
                shutting_down: AtomicBool::new(false),
            }),
        }
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.inner.pipeline
    }

    pub fn capabilities(&self) -> &CapabilityPipeline {
        &self.inner.capabilities
    }

    pub fn searcher(&self) -> &Searcher {
        &self.inner.searcher
    }

    /// From now on `/readyz` answers 503, so load balancers stop sending new work.
    pub fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }

    /// The bearer-token check as a layer, for other routes served beside these (search).
    pub fn auth_layer<S: Clone + Send + Sync + 'static>(&self, routes: Router<S>) -> Router<S> {
        routes.layer(middleware::from_fn_with_state(self.clone(), require_bearer))
    }
}

/// The whole API: sync and hashes behind the optional bearer token; `/healthz`, `/readyz`
/// and `/metrics` open.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route(
            api::INSTANCES_SYNC,
            post(sync_instances).layer(DefaultBodyLimit::max(state.inner.max_body_bytes)),
        )
        .route(api::INSTANCES_HASHES, get(instance_hashes))
        .route(api::INSTANCES_PARKED, get(parked_instances))
        .route(
            api::CAPABILITIES_SYNC,
            post(capabilities::sync_capabilities)
                .layer(DefaultBodyLimit::max(state.inner.max_body_bytes)),
        )
        .route(
            api::CAPABILITIES_HASHES,
            get(capabilities::capability_hashes),
        )
        .route(api::CLUSTERS, get(search::clusters))
        .route(api::SEARCH, post(search::search))
        .route(api::SEARCH_COUNT, post(search::count))
        .layer(middleware::from_fn_with_state(state.clone(), shed_load));
    // Auth is outside the load bound: a request without the token never takes a slot.
    let api = state.auth_layer(api);
    Router::new()
        .merge(api)
        .route(api::HEALTHZ, get(healthz))
        .route(api::READYZ, get(readyz))
        .route(api::METRICS, get(metrics))
        .route(api::OPENAPI, get(openapi_document))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` completes: then `/readyz` turns 503, the
/// listener stops accepting, and in-flight requests finish before this returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            state.begin_shutdown();
            tracing::info!("shutting down: finishing in-flight requests");
        })
        .await
}

/// 401 without a known token; else the request goes on with its [`Access`], which the
/// sync handlers check against the cluster they would write.
async fn require_bearer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(access) = state.inner.credentials.access(given) else {
        return ApiError::Unauthorized.into_response();
    };
    req.extensions_mut().insert(access);
    next.run(req).await
}

/// 403 unless the request's token may write `cluster` (checked before anything is read
/// from or written to the store).
fn check_write(access: Option<&Access>, cluster: &sync_model::ClusterId) -> Result<(), ApiError> {
    match access {
        Some(a) if !a.may_write(cluster) => Err(ApiError::Forbidden {
            cluster: cluster.to_string(),
            may_write: a.describe(),
        }),
        _ => Ok(()),
    }
}

/// Serves the request if a slot is free, else answers 503 with `Retry-After` at once,
/// before its body is read. The slot is held until the answer is produced.
async fn shed_load(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let inner = &state.inner;
    let Ok(_slot) = inner.slots.clone().try_acquire_owned() else {
        inner.pipeline.metrics().requests_shed.inc();
        tracing::warn!(
            limit = inner.max_concurrent_requests,
            path = %req.uri().path(),
            "at the concurrency limit: request shed with 503"
        );
        return ApiError::Overloaded {
            limit: inner.max_concurrent_requests,
            retry_after_secs: SHED_RETRY_AFTER_SECS,
        }
        .into_response();
    };
    let in_flight = &inner.pipeline.metrics().requests_in_flight;
    in_flight.inc();
    let resp = next.run(req).await;
    in_flight.dec();
    resp
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|essence| {
            let essence = essence.trim().to_ascii_lowercase();
            essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Parses JSON, naming where it broke: `upserts[3].labels: invalid type: ...`.
fn parse_payload(body: &[u8]) -> Result<SyncPayload, ApiError> {
    parse_json(body)
}

/// Parses any sync payload shape, naming where it broke.
fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let payload: T = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "body".to_string()
        } else {
            path
        };
        ApiError::BadRequest {
            error: "request body is not a valid sync payload".into(),
            details: vec![FieldError {
                field,
                message: e.into_inner().to_string(),
            }],
        }
    })?;
    de.end().map_err(|e| ApiError::BadRequest {
        error: "request body is not a valid sync payload".into(),
        details: vec![FieldError {
            field: "body".into(),
            message: e.to_string(),
        }],
    })?;
    Ok(payload)
}

/// Apply a sync payload: validate it whole, embed what changed, delete, then upsert.
#[utoipa::path(
    post,
    path = api::INSTANCES_SYNC,
    tag = "instances",
    request_body = SyncPayload,
    responses(
        (status = 200, description = "Applied; refused objects listed in `parked`", body = SyncResponse),
        (status = 400, description = "Malformed JSON or a payload that breaks the contract; nothing stored", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 403, description = "The token may not write this payload's cluster; nothing stored", body = ErrorBody),
        (status = 413, description = "Body over the size limit", body = ErrorBody),
        (status = 415, description = "Content type other than JSON", body = ErrorBody),
        (status = 500, description = "The collection holds another model's vectors", body = ErrorBody),
        (status = 502, description = "The embedding provider refuses every call (key, model)", body = ErrorBody),
        (status = 503, description = "Store or provider unavailable, or at the concurrency limit: retry", body = ErrorBody),
    )
)]
async fn sync_instances(
    State(state): State<AppState>,
    access: Option<axum::Extension<Access>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SyncResponse>, ApiError> {
    let body = json_body(&state, &headers, body)?;
    let payload = parse_payload(&body)?;
    // Up to 16 MiB that is not needed once parsed (docs/ingest.md, "Load bound").
    drop(body);
    let cluster = state
        .inner
        .pipeline
        .cluster_of(payload.cluster.as_deref())?;
    check_write(access.as_deref(), &cluster)?;
    let outcome = state.inner.pipeline.apply_sync(payload).await?;
    tracing::info!(
        upserted = outcome.upserted,
        deleted = outcome.deleted,
        embedded = outcome.embedded,
        unchanged = outcome.unchanged,
        parked = outcome.parked.len(),
        "sync applied"
    );
    Ok(Json(
        SyncResponse::ok(outcome.upserted, outcome.deleted)
            .with_parked(outcome.parked)
            .with_generation(state.inner.pipeline.generation()),
    ))
}

/// The body of a sync request: 415 unless JSON, 413 beyond the size limit.
fn json_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ApiError> {
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType {
            got: headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        });
    }
    let body = body.map_err(|r| match r {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            ApiError::PayloadTooLarge {
                limit: state.inner.max_body_bytes,
            }
        }
        other => ApiError::BadRequest {
            error: format!("cannot read the request body: {other}"),
            details: vec![],
        },
    })?;
    Ok(body)
}

/// Every instance id of one cluster with the content hash of what is stored.
#[utoipa::path(
    get,
    path = api::INSTANCES_HASHES,
    tag = "instances",
    params(("cluster" = Option<String>, Query, pattern = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", description = "The cluster whose instances are listed; the server's default cluster when absent")),
    responses(
        (status = 200, body = schema::HashesResponse),
        (status = 400, description = "Malformed cluster id", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 500, body = ErrorBody),
        (status = 503, description = "Store unavailable, or at the concurrency limit: retry", body = ErrorBody),
    )
)]
async fn instance_hashes(
    State(state): State<AppState>,
    Query(query): Query<HashesQuery>,
) -> Result<Json<HashesResponse>, ApiError> {
    let pipeline = &state.inner.pipeline;
    let cluster = pipeline.cluster_of(query.cluster.as_deref())?;
    let hashes = pipeline.stored_hashes(&cluster).await?;
    Ok(Json(HashesResponse { hashes }))
}

/// Objects the provider or the store refuses whatever is retried, oldest first.
#[utoipa::path(
    get,
    path = api::INSTANCES_PARKED,
    tag = "instances",
    responses(
        (status = 200, body = ParkedResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "At the concurrency limit: retry", body = ErrorBody),
    )
)]
async fn parked_instances(State(state): State<AppState>) -> Json<ParkedResponse> {
    Json(ParkedResponse {
        parked: state.inner.pipeline.parked(),
    })
}

async fn openapi_document() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi::document())
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.is_shutting_down() {
        return ApiError::Unavailable("shutting down".into()).into_response();
    }
    match state.inner.pipeline.store().ready().await {
        Ok(()) => Json(serde_json::json!({ "status": "ready" })).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.inner.pipeline.metrics().encode(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_recognised_with_parameters() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, v.parse().unwrap());
            is_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(!with("text/plain"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn wrong_types_are_reported_with_their_path() {
        let err = parse_payload(br#"{"upserts":[{"id":1}]}"#).unwrap_err();
        match err {
            ApiError::BadRequest { details, .. } => assert_eq!(details[0].field, "upserts[0].id"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_payload(b"{} x"),
            Err(ApiError::BadRequest { .. })
        ));
    }
}
