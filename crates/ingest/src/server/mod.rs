//! The ingest HTTP server: `POST /api/v1/instances/sync`, `GET /api/v1/instances/hashes`,
//! `GET /api/v1/instances/parked`, `DELETE /api/v1/clusters/{name}`, probes and metrics.
//! Handlers are thin: parse, call the [`Pipeline`], map the error. Reads and writes are
//! admitted apart ([`admission`]): writes beyond their limit are shed with 503 and
//! `Retry-After`, reads wait for a slot, and neither takes the other's slots.
//! [`router`] returns a plain `Router` so that `cw run` can merge it with others.

mod access;
pub mod admission;
mod capabilities;
mod error;
pub mod openapi;
pub mod reindex;
mod schema;
pub mod search;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{DefaultBodyLimit, FromRef, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use sync_model::api::{self, ClusterRemoved, HashesQuery, HashesResponse, ParkedResponse};
use sync_model::rbac::UserInfo;
use sync_model::{BearerToken, ClusterId, ErrorBody, FieldError, SyncPayload, SyncResponse};

/// The opaque tokens (the shared token and the tokens file), kept under their old path.
pub use crate::access::identity::credentials;
use crate::access::identity::{
    Access, Authenticator, Caller, Credentials, IdentityConfig, ServiceAccountIssuers, TokensFile,
};

pub use admission::{DEFAULT_MAX_CONCURRENT_READS, DEFAULT_MAX_CONCURRENT_WRITES, READ_QUEUE_WAIT};
pub use error::ApiError;

use self::admission::Admission;
use crate::access::{AccessRules, Scope};
use crate::capabilities::CapabilityPipeline;
use crate::clusters::{Heard, DEFAULT_STALE_AFTER};
use crate::pipeline::Pipeline;
use crate::search::Searcher;

/// The collections' names unless configured otherwise.
pub const DEFAULT_INSTANCES_COLLECTION: &str = "instances";
pub const DEFAULT_CAPABILITIES_COLLECTION: &str = "capabilities";

/// Fits 5,000 instances of about 3 KB of JSON each (labels and a few annotations).
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Bearer token required on everything but the probes and metrics; `None` for no auth.
    /// It may write every cluster.
    pub auth_token: Option<String>,
    /// Per-cluster tokens (`CW_INGEST_TOKENS_FILE`), beside or instead of the shared one.
    pub tokens_file: Option<Arc<TokensFile>>,
    /// OIDC ID tokens and the ServiceAccount tokens' audiences (`crate::access::identity`).
    pub identity: IdentityConfig,
    pub max_body_bytes: usize,
    /// The collection of resource types, searched by `ask` before the instances.
    pub capabilities_collection: String,
    /// Writes (syncs, hashes, cluster removal) served at once; more are answered 503 with
    /// `Retry-After` ([`admission`]).
    pub max_concurrent_writes: usize,
    /// Reads (search, ask, count, clusters, MCP) served at once; more wait for a slot.
    pub max_concurrent_reads: usize,
    /// How long a read waits for a slot before it is answered 503.
    pub read_queue_wait: std::time::Duration,
    /// A cluster not heard from for longer than this is listed as stale.
    pub stale_after: std::time::Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            auth_token: None,
            tokens_file: None,
            identity: IdentityConfig::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            capabilities_collection: DEFAULT_CAPABILITIES_COLLECTION.into(),
            max_concurrent_writes: DEFAULT_MAX_CONCURRENT_WRITES,
            max_concurrent_reads: DEFAULT_MAX_CONCURRENT_READS,
            read_queue_wait: READ_QUEUE_WAIT,
            stale_after: DEFAULT_STALE_AFTER,
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
    /// Each cluster's RBAC, as its watcher sent it: what a scoped caller may read.
    access_rules: AccessRules,
    /// Read from the store once before the first scoped read (rules stored before start).
    access_loaded: tokio::sync::OnceCell<()>,
    /// Who is asking: every request's [`Caller`].
    authenticator: Arc<Authenticator>,
    max_body_bytes: usize,
    /// The read and write slots ([`admission`]).
    admission: Admission,
    read_queue_wait: std::time::Duration,
    stale_after: std::time::Duration,
    shutting_down: AtomicBool,
    /// The running or last reindex started through the API.
    reindex: std::sync::Mutex<Option<Arc<crate::generations::reindex::ReindexProgress>>>,
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
        // One default cluster and one record per cluster for instances and capabilities:
        // the pipeline's.
        // The generation the instances follow, the capabilities follow too.
        let capabilities = match (pipeline.active(), capabilities.active()) {
            (Some(active), None) => capabilities.with_active(active.clone()),
            _ => capabilities,
        };
        let capabilities = capabilities
            .with_metrics(pipeline.metrics().clone())
            .with_default_cluster(pipeline.default_cluster().clone())
            .with_registry(pipeline.registry().clone());
        let authenticator = Arc::new(
            Authenticator::new(
                Credentials {
                    shared: config.auth_token.as_deref().and_then(BearerToken::new),
                    file: config.tokens_file.clone(),
                },
                config.identity.clone(),
            )
            .with_metrics(pipeline.metrics().auth_decisions.clone()),
        );
        let access_rules = AccessRules::new(pipeline.store().clone(), &pipeline.collection());
        // A cluster's ServiceAccount tokens are checked with the issuer and keys its watcher
        // last sent: the registry follows the access rules (a retired cluster's go with it).
        let issuers = authenticator.service_accounts().clone();
        let known = std::sync::Mutex::new(std::collections::BTreeSet::<ClusterId>::new());
        access_rules.on_change(move |all| {
            let mut known = known.lock().unwrap_or_else(|p| p.into_inner());
            for gone in known.iter().filter(|c| !all.contains_key(*c)) {
                issuers.set(gone.clone(), None);
            }
            for (cluster, rules) in all {
                issuers.set(cluster.clone(), rules.issuer.clone());
            }
            *known = all.keys().cloned().collect();
        });
        AppState {
            inner: Arc::new(Inner {
                capabilities,
                searcher: Searcher::new(
                    pipeline.store().clone(),
                    pipeline.embedder().clone(),
                    pipeline.collection(),
                    config.capabilities_collection.clone(),
                )
                .with_registry(pipeline.registry().clone()),
                access_rules,
                access_loaded: tokio::sync::OnceCell::new(),
                authenticator,
                pipeline,
                max_body_bytes: config.max_body_bytes,
                admission: Admission::new(
                    config.max_concurrent_reads,
                    config.max_concurrent_writes,
                ),
                read_queue_wait: config.read_queue_wait,
                stale_after: config.stale_after,
                shutting_down: AtomicBool::new(false),
                reindex: std::sync::Mutex::new(None),
            }),
        }
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.inner.pipeline
    }

    pub fn capabilities(&self) -> &CapabilityPipeline {
        &self.inner.capabilities
    }

    /// The searcher that reads everything, in the active index generation: an operator's,
    /// or that of a server without authentication. A caller's is [`AppState::searcher_for`].
    pub fn searcher(&self) -> Searcher {
        match self.inner.pipeline.active() {
            Some(active) => self.inner.searcher.in_generation(&active.current()),
            None => self.inner.searcher.clone(),
        }
    }

    /// The searcher of a caller with `scope`.
    pub fn searcher_for(&self, scope: Scope) -> Searcher {
        match scope {
            Scope::Everything => self.searcher(),
            limited => self.searcher().scoped(limited),
        }
    }

    /// The index generations this server follows; refused when it was built without.
    pub fn active(&self) -> Result<&crate::generations::ActiveIndex, ApiError> {
        self.inner.pipeline.active().ok_or_else(|| {
            ApiError::Internal(
                "this server does not follow index generations (built without them)".into(),
            )
        })
    }

    /// The running or last reindex started through the API.
    pub fn reindex_progress(&self) -> Option<Arc<crate::generations::reindex::ReindexProgress>> {
        self.inner
            .reindex
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records `progress` as the running reindex; refused while another runs.
    fn begin_reindex(
        &self,
        progress: Arc<crate::generations::reindex::ReindexProgress>,
    ) -> Result<(), ApiError> {
        use crate::generations::reindex::Phase;
        let mut held = self.inner.reindex.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = held.as_ref() {
            if matches!(
                running.phase(),
                Phase::Idle | Phase::Building | Phase::Switching
            ) {
                return Err(ApiError::Conflict(
                    "a reindex is running already: GET /api/v1/reindex shows its progress".into(),
                ));
            }
        }
        *held = Some(progress);
        Ok(())
    }

    /// Each cluster's access rules as this server holds them.
    pub fn access_rules(&self) -> &AccessRules {
        &self.inner.access_rules
    }

    /// What `user` may read, in `clusters` only when given (a ServiceAccount's: the
    /// clusters whose issuer signed its token). The rules stored before this process
    /// started are read first, once; from then on every replica's writes are read every
    /// [`crate::access::rules::REFRESH_INTERVAL`].
    pub async fn scope_of_user(
        &self,
        user: &UserInfo,
        clusters: Option<&std::collections::BTreeSet<ClusterId>>,
    ) -> Scope {
        self.load_access_rules().await;
        Scope::of_user(user, clusters, &self.inner.access_rules.current())
    }

    /// Reads the stored access rules once and keeps reading them in the background.
    pub async fn load_access_rules(&self) {
        let rules = &self.inner.access_rules;
        self.inner
            .access_loaded
            .get_or_init(|| async {
                if let Err(e) = rules.refresh().await {
                    tracing::warn!(error = %e, "could not read the stored access rules; scoped callers see only what watchers send from now on");
                }
                let background = rules.clone();
                tokio::spawn(background.keep_fresh(std::future::pending()));
            })
            .await;
    }

    /// A cluster not heard from for longer than this is listed as stale.
    pub fn stale_after(&self) -> std::time::Duration {
        self.inner.stale_after
    }

    /// Who is asking: turns a bearer token into a [`Caller`].
    pub fn authenticator(&self) -> &Arc<Authenticator> {
        &self.inner.authenticator
    }

    /// The fleet's ServiceAccount issuers, which the access store fills as each cluster's
    /// watcher sends its issuer and keys.
    pub fn service_accounts(&self) -> &ServiceAccountIssuers {
        self.inner.authenticator.service_accounts()
    }

    /// What `caller` may read: the one place where a caller becomes a read scope.
    /// Operators read everything; a user what each cluster's RBAC grants them (in the
    /// clusters their credential holds in).
    pub async fn scope_of(&self, caller: &Caller) -> Scope {
        match caller {
            Caller::Operator(_) => Scope::Everything,
            Caller::User { user, clusters } => {
                let scope = self.scope_of_user(user, clusters.as_ref()).await;
                if let Scope::Limited(limited) = &scope {
                    tracing::debug!(user = %user.name, clusters = limited.clusters.len(), "read scoped by RBAC");
                    let decision = if limited.clusters.is_empty() {
                        "nothing"
                    } else {
                        "scoped"
                    };
                    self.inner.pipeline.metrics().note_read_scope(decision);
                }
                scope
            }
        }
    }

    /// The searcher of `caller`: [`AppState::scope_of`] in every read.
    pub async fn searcher_of(&self, caller: &Caller) -> Searcher {
        self.searcher_for(self.scope_of(caller).await)
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

    /// [`AppState::auth_layer`] for the agents' route (`/mcp`): the same tokens, refused
    /// as MCP clients understand it ([`ApiError::AgentUnauthorized`]).
    pub fn agent_auth_layer<S: Clone + Send + Sync + 'static>(
        &self,
        routes: Router<S>,
    ) -> Router<S> {
        routes.layer(middleware::from_fn_with_state(
            self.clone(),
            require_agent_bearer,
        ))
    }

    /// The read admission as a layer, for read routes served beside these (`/mcp`): they
    /// share the read slots and never take a write's.
    pub fn read_admission<S: Clone + Send + Sync + 'static>(&self, routes: Router<S>) -> Router<S> {
        routes.layer(middleware::from_fn_with_state(
            self.clone(),
            admission::admit_read,
        ))
    }
}

impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(state: &AppState) -> Self {
        state.inner.authenticator.clone()
    }
}

/// The whole API: writes (sync, hashes, cluster removal) and reads (search, count,
/// clusters, parked), each behind its own admission ([`admission`]), all behind the
/// optional bearer token; `/healthz`, `/readyz` and `/metrics` open.
pub fn router(state: AppState) -> Router {
    let writes = Router::new()
        .route(
            api::INSTANCES_SYNC,
            post(sync_instances).layer(DefaultBodyLimit::max(state.inner.max_body_bytes)),
        )
        .route(api::INSTANCES_HASHES, get(instance_hashes))
        .route(
            api::CAPABILITIES_SYNC,
            post(capabilities::sync_capabilities)
                .layer(DefaultBodyLimit::max(state.inner.max_body_bytes)),
        )
        .route(
            api::CAPABILITIES_HASHES,
            get(capabilities::capability_hashes),
        )
        .route(
            api::ACCESS_SYNC,
            post(access::sync_access).layer(DefaultBodyLimit::max(state.inner.max_body_bytes)),
        )
        .route(api::CLUSTER, delete(remove_cluster))
        .route(reindex::REINDEX, post(reindex::start).get(reindex::status))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            admission::admit_write,
        ));
    let reads = Router::new()
        .route(api::INSTANCES_PARKED, get(parked_instances))
        .route(api::CLUSTERS, get(search::clusters))
        .route(api::SEARCH, post(search::search))
        .route(api::SEARCH_COUNT, post(search::count));
    let api = writes.merge(state.read_admission(reads));
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

/// 401 without a token some authenticator accepts; else the request goes on with its
/// [`Caller`], which the handlers take ([`Caller`]'s extractor).
async fn require_bearer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match authenticated(&state, req).await {
        Ok(req) => next.run(req).await,
        Err(refusal) => ApiError::Unauthorized(refusal).into_response(),
    }
}

/// [`require_bearer`] for `/mcp`: a refused token is [`ApiError::AgentUnauthorized`]. The
/// [`Caller`] goes on in the request's extensions; the route answers each tool call over
/// that caller's index.
async fn require_agent_bearer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match authenticated(&state, req).await {
        Ok(req) => next.run(req).await,
        Err(refusal) => ApiError::AgentUnauthorized(refusal).into_response(),
    }
}

/// The request with its [`Caller`] in its extensions, or why its token is refused.
async fn authenticated(
    state: &AppState,
    mut req: Request,
) -> Result<Request, crate::access::identity::Refusal> {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = state.inner.authenticator.authenticate(given).await?;
    req.extensions_mut().insert(caller);
    Ok(req)
}

/// 403 unless `caller` may write `cluster` (checked before anything is read from or
/// written to the store).
fn check_write(caller: &Caller, cluster: &sync_model::ClusterId) -> Result<(), ApiError> {
    if caller.may_write(cluster) {
        return Ok(());
    }
    Err(ApiError::Forbidden {
        cluster: cluster.to_string(),
        may_write: caller.describe_writes(),
    })
}

/// An operator's access, or 403 for a user: `action` (hashes, parked objects) reads
/// beyond any RBAC scope, for operators and watchers only.
fn operators_only<'c>(caller: &'c Caller, action: &str) -> Result<&'c Access, ApiError> {
    match caller {
        Caller::Operator(access) => Ok(access),
        Caller::User { user, .. } => Err(ApiError::OperatorsOnly {
            action: action.into(),
            user: user.name.clone(),
        }),
    }
}

/// Records a request of `cluster`'s watcher as its contact, when the token may write it
/// (a read-only token's hashes read is nobody's contact).
async fn heard_from(state: &AppState, caller: &Caller, cluster: &ClusterId) {
    if caller.may_write(cluster) {
        state
            .inner
            .pipeline
            .registry()
            .heard(cluster, Heard::Contact)
            .await;
    }
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
        (status = 401, description = "Missing, unknown, expired, wrongly signed or wrong-audience bearer token; `details` says which (never the token)", body = ErrorBody),
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
    caller: Caller,
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
    check_write(&caller, &cluster)?;
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
        (status = 401, description = "Missing, unknown, expired, wrongly signed or wrong-audience bearer token; `details` says which (never the token)", body = ErrorBody),
        (status = 403, description = "A user's token: hashes are for operators' and watchers' tokens", body = ErrorBody),
        (status = 500, body = ErrorBody),
        (status = 503, description = "Store unavailable, or at the concurrency limit: retry", body = ErrorBody),
    )
)]
async fn instance_hashes(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<HashesQuery>,
) -> Result<Json<HashesResponse>, ApiError> {
    operators_only(&caller, "read the stored hashes")?;
    let pipeline = &state.inner.pipeline;
    let cluster = pipeline.cluster_of(query.cluster.as_deref())?;
    let hashes = pipeline.stored_hashes(&cluster).await?;
    heard_from(&state, &caller, &cluster).await;
    Ok(Json(HashesResponse { hashes }))
}

/// Retire a cluster: its instances, its place on the lists of the resource types it
/// served (a type only it served is deleted) and its record, in one call. Idempotent: a
/// cluster the index does not hold answers 200 with zeros. Stop its watcher first, or its
/// next sync puts it back.
#[utoipa::path(
    delete,
    path = api::CLUSTER,
    tag = "clusters",
    params(("name" = String, Path, pattern = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", description = "The cluster to remove, as `GET /api/v1/clusters` lists it")),
    responses(
        (status = 200, description = "Removed, with what went; zeros when the index held nothing of it", body = ClusterRemoved),
        (status = 400, description = "Malformed cluster id", body = ErrorBody),
        (status = 401, description = "Missing, unknown, expired, wrongly signed or wrong-audience bearer token; `details` says which (never the token)", body = ErrorBody),
        (status = 403, description = "The token may not write every cluster (only the shared token or a `*` token may remove one); nothing changed", body = ErrorBody),
        (status = 500, body = ErrorBody),
        (status = 503, description = "Store unavailable, or at the write limit: retry (what was removed stays removed)", body = ErrorBody),
    )
)]
async fn remove_cluster(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<ClusterRemoved>, ApiError> {
    let cluster = ClusterId::new(&name).map_err(|e| ApiError::BadRequest {
        error: e.to_string(),
        details: vec![FieldError {
            field: "name".into(),
            message: "not a cluster id".into(),
        }],
    })?;
    if caller.operator() != Some(&Access::All) {
        return Err(ApiError::NeedsEveryCluster {
            action: format!("remove cluster {cluster:?}"),
            may_write: caller.describe_writes(),
        });
    }
    let removed =
        crate::clusters::retire::retire(&state.inner.pipeline, &state.inner.capabilities, &cluster)
            .await?;
    // Its rules go with it: a cluster added again under the name starts with none.
    state.inner.access_rules.remove(&cluster).await?;
    // This replica lists it no more at once (others within the list's few seconds).
    state.inner.searcher.cluster_list.invalidate();
    Ok(Json(removed))
}

/// Objects the provider or the store refuses whatever is retried, oldest first.
#[utoipa::path(
    get,
    path = api::INSTANCES_PARKED,
    tag = "instances",
    responses(
        (status = 200, body = ParkedResponse),
        (status = 401, description = "Missing, unknown, expired, wrongly signed or wrong-audience bearer token; `details` says which (never the token)", body = ErrorBody),
        (status = 403, description = "A user's token: parked objects are for operators' tokens", body = ErrorBody),
        (status = 503, description = "At the concurrency limit, or the store is unavailable: retry", body = ErrorBody),
    )
)]
async fn parked_instances(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ParkedResponse>, ApiError> {
    operators_only(&caller, "list the parked objects")?;
    Ok(Json(ParkedResponse {
        parked: state.inner.pipeline.parked().await?,
    }))
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
    if let Some(why) = state.pipeline().active().and_then(|a| a.stranded()) {
        return ApiError::Unavailable(why).into_response();
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
