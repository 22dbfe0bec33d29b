//! A stand-in of the ingest server's endpoints (POST sync and GET hashes, for instances and
//! for capabilities) keeping documents in memory, with switches to answer 503 as if the
//! server were down, to never answer (a hung server), and to lack the hashes endpoints (as
//! the TypeScript cluster-whisperer ingest does). Access snapshots (`POST
//! /api/v1/access/sync`) are recorded as they come.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kube_sim::SimHandle;
use sync_model::rbac::AccessSnapshot;
use sync_model::{
    Capability, CapabilitySyncPayload, ErrorBody, FieldError, ResourceId, ResourceInstance,
    SyncPayload, SyncResponse,
};
use tokio::task::JoinHandle;
use watcher::buffer::BufferConfig;
use watcher::sender::RetryConfig;
use watcher::{
    CancellationToken, HttpSink, Metrics, NamespaceFilter, Shared, TypeFilter, WatchError,
    WatcherSettings,
};

#[derive(Default)]
pub struct StoreState {
    pub docs: BTreeMap<ResourceId, ResourceInstance>,
    pub down: bool,
    /// Requests are accepted and never answered.
    pub hang: bool,
    /// `GET …/hashes` answers 404.
    pub no_hashes: bool,
    pub posts: Vec<SyncPayload>,
    pub token: Option<String>,
    pub capabilities: BTreeMap<String, Capability>,
    pub capability_posts: Vec<CapabilitySyncPayload>,
    pub access_posts: Vec<AccessSnapshot>,
}

#[derive(Clone)]
pub struct StandIn {
    pub sync_url: String,
    pub state: Arc<Mutex<StoreState>>,
}

/// What both sync endpoints answer before storing anything: 503 while down, 400 with the
/// payload's problems.
fn refusal(st: &StoreState, check: Result<(), Vec<FieldError>>) -> Option<Response> {
    if st.down {
        return Some((StatusCode::SERVICE_UNAVAILABLE, "down").into_response());
    }
    let details = check.err()?;
    Some(
        (
            StatusCode::BAD_REQUEST,
            Json(ErrorBody {
                error: "invalid payload".into(),
                details,
            }),
        )
            .into_response(),
    )
}

/// Never returns while the stand-in hangs.
async fn hang_if_asked(s: &Mutex<StoreState>) {
    let hang = s.lock().unwrap().hang;
    if hang {
        std::future::pending::<()>().await;
    }
}

/// The state to store a sync in, once the stand-in answers at all and does not refuse it
/// ([`refusal`]).
async fn admitted(
    s: &Mutex<StoreState>,
    check: Result<(), Vec<FieldError>>,
) -> Result<MutexGuard<'_, StoreState>, Response> {
    hang_if_asked(s).await;
    let st = s.lock().unwrap();
    match refusal(&st, check) {
        Some(refused) => Err(refused),
        None => Ok(st),
    }
}

/// A sync's deletes, then its upserts (keyed by `key`), applied to `stored`.
fn apply<K: Ord, V: Clone>(
    stored: &mut BTreeMap<K, V>,
    deletes: &[K],
    upserts: &[V],
    key: impl Fn(&V) -> K,
) {
    for id in deletes {
        stored.remove(id);
    }
    for v in upserts {
        stored.insert(key(v), v.clone());
    }
}

/// The content hash of each stored value, by its id.
fn hashes_of<K: ToString, V>(
    stored: &BTreeMap<K, V>,
    hash: impl Fn(&V) -> String,
) -> BTreeMap<String, String> {
    stored
        .iter()
        .map(|(id, v)| (id.to_string(), hash(v)))
        .collect()
}

async fn sync(
    State(s): State<Arc<Mutex<StoreState>>>,
    headers: HeaderMap,
    Json(p): Json<SyncPayload>,
) -> Response {
    hang_if_asked(&s).await;
    let mut st = s.lock().unwrap();
    if let Some(t) = &st.token {
        let want = format!("Bearer {t}");
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(want.as_str()) {
            return (
                StatusCode::UNAUTHORIZED,
                Json(ErrorBody {
                    error: "unauthorized".into(),
                    details: vec![],
                }),
            )
                .into_response();
        }
    }
    if let Some(refused) = refusal(&st, p.check()) {
        return refused;
    }
    apply(&mut st.docs, &p.deletes, &p.upserts, |i| i.id.clone());
    st.posts.push(p.clone());
    Json(SyncResponse::ok(p.upserts.len(), p.deletes.len())).into_response()
}

/// `GET …/hashes` of the instances or the capabilities, as `uri` asks: 404 as a server
/// without the endpoint would, 503 while down, else the hash of each stored id.
async fn hashes(State(s): State<Arc<Mutex<StoreState>>>, uri: Uri) -> Response {
    hang_if_asked(&s).await;
    let st = s.lock().unwrap();
    if st.no_hashes {
        return (StatusCode::NOT_FOUND, format!("Cannot GET {}", uri.path())).into_response();
    }
    if st.down {
        return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    let hashes = if uri.path().starts_with("/api/v1/capabilities/") {
        hashes_of(&st.capabilities, Capability::content_hash)
    } else {
        hashes_of(&st.docs, ResourceInstance::content_hash)
    };
    Json(serde_json::json!({ "hashes": hashes })).into_response()
}

async fn sync_capabilities(
    State(s): State<Arc<Mutex<StoreState>>>,
    Json(p): Json<CapabilitySyncPayload>,
) -> Result<Response, Response> {
    let mut st = admitted(&s, p.check()).await?;
    let id = |c: &Capability| c.id.clone();
    apply(&mut st.capabilities, &p.deletes, &p.upserts, id);
    st.capability_posts.push(p.clone());
    Ok(Json(SyncResponse::ok(p.upserts.len(), p.deletes.len())).into_response())
}

async fn sync_access(
    State(s): State<Arc<Mutex<StoreState>>>,
    Json(snapshot): Json<AccessSnapshot>,
) -> Result<Response, Response> {
    let mut st = admitted(&s, Ok(())).await?;
    st.access_posts.push(snapshot);
    Ok(Json(serde_json::json!({})).into_response())
}

impl StandIn {
    /// The access snapshots received, oldest first.
    pub fn access_posts(&self) -> Vec<AccessSnapshot> {
        self.state.lock().unwrap().access_posts.clone()
    }

    pub fn capabilities(&self) -> BTreeMap<String, Capability> {
        self.state.lock().unwrap().capabilities.clone()
    }

    /// Waits until `check` holds on the stored capabilities, or panics with `what`.
    pub async fn wait_for_capabilities(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&BTreeMap<String, Capability>) -> bool,
    ) {
        let ids = |c: &BTreeMap<String, Capability>| -> Vec<String> { c.keys().cloned().collect() };
        poll(
            what,
            timeout,
            || self.capabilities(),
            check,
            ids,
            "capabilities",
        )
        .await
    }

    pub async fn start() -> StandIn {
        let state = Arc::new(Mutex::new(StoreState::default()));
        let app = Router::new()
            .route("/api/v1/instances/sync", post(sync))
            .route("/api/v1/instances/hashes", get(hashes))
            .route("/api/v1/capabilities/sync", post(sync_capabilities))
            .route("/api/v1/capabilities/hashes", get(hashes))
            .route("/api/v1/access/sync", post(sync_access))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        StandIn {
            sync_url: format!("http://{addr}/api/v1/instances/sync"),
            state,
        }
    }

    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    pub fn docs(&self) -> BTreeMap<ResourceId, ResourceInstance> {
        self.state.lock().unwrap().docs.clone()
    }

    pub fn names_of_kind(&self, kind: &str) -> Vec<String> {
        self.docs()
            .values()
            .filter(|i| i.kind == kind)
            .map(|i| format!("{}/{}", i.namespace, i.name))
            .collect()
    }

    /// Waits until `check` holds on the stored documents, or panics with `what` after `timeout`.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&BTreeMap<ResourceId, ResourceInstance>) -> bool,
    ) {
        let names = |d: &BTreeMap<ResourceId, ResourceInstance>| -> Vec<String> {
            d.keys().map(|k| k.to_string()).collect()
        };
        poll(what, timeout, || self.docs(), check, names, "store holds").await
    }
}

/// Polls `read` every 50 ms until `check` holds on it, or panics with `what` and, under
/// `label`, the `ids` of what was read last, after `timeout`.
async fn poll<T>(
    what: &str,
    timeout: Duration,
    read: impl Fn() -> T,
    check: impl Fn(&T) -> bool,
    ids: impl Fn(&T) -> Vec<String>,
    label: &str,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check(&read()) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let ids = ids(&read());
            panic!("timed out after {timeout:?} waiting for: {what}\n{label}: {ids:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A simulated cluster and the ingest stand-in, each on a free port.
pub async fn start_cluster_and_store() -> (SimHandle, StandIn) {
    install_crypto();
    let sim = kube_sim::SimServer::start(kube_sim::SimConfig::default())
        .await
        .expect("the simulator starts");
    (sim, StandIn::start().await)
}

/// A Deployment `ns/name` labelled `app=<label>`.
#[allow(unused_imports)] // not every test binary uses it
pub use sync_model::fixtures::deployment as instance;

/// Watches `types` (plural names; none: every type not excluded by default), debouncing for
/// `debounce` and flushing every `flush_interval`; retries from 50 to 500 ms, an hourly
/// resync and no heartbeat.
pub fn settings(types: &[&str], debounce: Duration, flush_interval: Duration) -> WatcherSettings {
    WatcherSettings {
        buffer: BufferConfig {
            debounce,
            flush_interval,
            max_batch: 50,
        },
        retry: RetryConfig {
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(500),
        },
        types: TypeFilter::new::<&str>(types, &[]),
        namespaces: NamespaceFilter::default(),
        resync_interval: Duration::from_secs(3600),
        shutdown_timeout: Duration::from_secs(10),
        group_discovery_timeout: Duration::from_secs(2),
        forbidden_grace: Duration::from_secs(600),
        heartbeat_interval: Duration::ZERO,
    }
}

/// A running watcher.
pub struct Running {
    pub shared: Arc<Shared>,
    pub stop: CancellationToken,
    pub task: JoinHandle<Result<(), WatchError>>,
}

impl Running {
    /// Stops it as SIGTERM does: what it ended with.
    pub async fn stop(self) -> Result<(), WatchError> {
        self.stop.cancel();
        self.task.await.expect("the watcher task")
    }

    /// Until every type has been listed once (20 s at most).
    pub async fn wait_ready(&self) {
        let shared = self.shared.clone();
        wait_for("the watcher ready", Duration::from_secs(20), || {
            shared.is_ready()
        })
        .await;
    }
}

/// Starts the watcher of `sim` with `settings`, sending to `sink`.
pub fn spawn_watcher(sim: &SimHandle, sink: HttpSink, settings: WatcherSettings) -> Running {
    let shared = Shared::new(Metrics::new());
    let stop = CancellationToken::new();
    let task = tokio::spawn(watcher::run(
        settings,
        sim.client().expect("the simulator's client"),
        Arc::new(sink),
        shared.clone(),
        stop.clone(),
    ));
    Running { shared, stop, task }
}

/// Starts the watcher of `sim` with `settings`, sending to `store`.
pub fn start_watcher(sim: &SimHandle, store: &StandIn, settings: WatcherSettings) -> Running {
    let sink = HttpSink::new(&store.sync_url, None, Duration::from_secs(5)).expect("the sink");
    spawn_watcher(sim, sink, settings)
}

/// Polls `check` until it holds, or fails naming `what` after `within`. Often (every 5 ms):
/// some states, a refusal's gauge, last only until the watcher's next retry.
pub async fn wait_for(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The watcher's operations endpoints (`/readyz`, `/metrics`, `/api/v1/resync`, with
/// `token` if given) on a free port: their base URL, and what stops them.
pub async fn serve_ops(w: &Running, token: Option<&str>) -> (String, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let base = format!("http://{}", listener.local_addr().expect("its address"));
    let stop = CancellationToken::new();
    tokio::spawn(watcher::ops::serve(
        listener,
        w.shared.clone(),
        token.map(str::to_string),
        stop.clone(),
    ));
    (base, stop)
}
