//! The watcher as a whole: wires discovery, one source per type, change detection, the
//! buffer and the sender with channels, follows CRDs as they come and go, runs resyncs,
//! and shuts down by flushing everything pending.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DynamicObject, PartialObjectMeta};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use serde::{Deserialize, Serialize};
use sync_model::{ResourceId, ResourceInstance};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, info_span, warn, Instrument};

use crate::buffer::{run_buffer, BufferConfig, Pending};
use crate::capabilities::{run_capability_sync, sync_capabilities, CapabilityReport};
use crate::change::Change;
use crate::discovery::{self, NamespaceFilter, ResourceType, TypeFilter, TypeKey};
use crate::metrics::Metrics;
use crate::sender::{retrying, run_sender, Retries, RetryConfig};
use crate::sink::SyncSink;
use crate::source::{list_type, watch_type};
use crate::tracker::{Observation, ResyncCounts, Tracker};
use crate::WatchError;

/// Everything the watcher needs besides a Kubernetes client and a sink.
#[derive(Debug, Clone)]
pub struct WatcherSettings {
    pub buffer: BufferConfig,
    pub retry: RetryConfig,
    pub types: TypeFilter,
    pub namespaces: NamespaceFilter,
    pub resync_interval: Duration,
    pub shutdown_timeout: Duration,
}

/// What a resync found and did; the body of `POST /api/v1/resync`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResyncReport {
    pub types: usize,
    pub listed: usize,
    pub unchanged: usize,
    pub upserted: usize,
    pub deleted: usize,
    /// Objects changing while listed; their watches send them.
    pub in_flight: usize,
    pub duration_ms: u64,
    /// The capability records' part; absent when the resync was of instances only (or the
    /// capability sync failed and was left to the background retries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<CapabilityReport>,
}

/// What a resync covers: `POST /api/v1/resync?only=instances|capabilities`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResyncScope {
    #[default]
    All,
    Instances,
    Capabilities,
}

impl ResyncScope {
    fn instances(self) -> bool {
        self != ResyncScope::Capabilities
    }
    fn capabilities(self) -> bool {
        self != ResyncScope::Instances
    }
}

type ResyncRequest = (ResyncScope, oneshot::Sender<ResyncReport>);

/// State shared with the operations endpoints.
#[derive(Debug)]
pub struct Shared {
    pub metrics: Metrics,
    ready: AtomicBool,
    shutting_down: AtomicBool,
    resync_requests: mpsc::Sender<ResyncRequest>,
    resync_inbox: std::sync::Mutex<Option<mpsc::Receiver<ResyncRequest>>>,
}

impl Shared {
    pub fn new(metrics: Metrics) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(4);
        Arc::new(Shared {
            metrics,
            ready: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            resync_requests: tx,
            resync_inbox: std::sync::Mutex::new(Some(rx)),
        })
    }

    /// Every watched type has been listed once, and the watcher is not shutting down.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && !self.shutting_down.load(Ordering::Relaxed)
    }

    /// Asks the running watcher for a resync and waits for its report; `None` when the
    /// watcher is not running.
    pub async fn request_resync(&self) -> Option<ResyncReport> {
        self.request_resync_of(ResyncScope::All).await
    }

    /// Like `request_resync`, of instances or capabilities only.
    pub async fn request_resync_of(&self, scope: ResyncScope) -> Option<ResyncReport> {
        let (tx, rx) = oneshot::channel();
        self.resync_requests.send((scope, tx)).await.ok()?;
        rx.await.ok()
    }
}

/// Messages to change detection, in the order they happened.
#[derive(Debug)]
pub enum Input {
    TypeAdded(TypeKey),
    TypeRemoved(TypeKey),
    /// The API server forbids this type (403): it is dropped like a type that is not watched,
    /// so readiness does not wait for it and its stored documents are removed.
    Forbidden(TypeKey),
    /// Discovery at start-up is complete: once all these types are synced, the watcher is
    /// ready and stored objects of types not watched are deleted.
    InitialTypesRegistered,
    Observed(TypeKey, Observation),
    ResyncPage {
        stored: Arc<HashMap<ResourceId, String>>,
        page: Vec<ResourceInstance>,
        reply: oneshot::Sender<ResyncCounts>,
    },
    ResyncGhosts {
        stored: Arc<HashMap<ResourceId, String>>,
        reply: oneshot::Sender<usize>,
    },
}

async fn run_tracker(
    mut tracker: Tracker,
    mut inputs: mpsc::Receiver<Input>,
    changes: mpsc::Sender<Pending>,
    shared: Arc<Shared>,
) {
    let mut initial_registered = false;
    let mut out = Vec::new();
    while let Some(input) = inputs.recv().await {
        // Objects of a (re)list are sent without debounce: they are not a burst of edits.
        let mut immediate = false;
        match input {
            Input::TypeAdded(key) => tracker.watch_type(key),
            Input::TypeRemoved(key) | Input::Forbidden(key) => tracker.unwatch_type(&key, &mut out),
            Input::InitialTypesRegistered => initial_registered = true,
            Input::Observed(key, obs) => {
                immediate = tracker.is_relisting(&key);
                tracker.observe(&key, obs, &mut out)
            }
            Input::ResyncPage {
                stored,
                page,
                reply,
            } => {
                let _ = reply.send(tracker.resync_page(&stored, page, &mut out));
            }
            Input::ResyncGhosts { stored, reply } => {
                let n = if shared.ready.load(Ordering::Relaxed) {
                    tracker.resync_ghosts(&stored, &mut out)
                } else {
                    0
                };
                let _ = reply.send(n);
            }
        }
        if initial_registered && !shared.ready.load(Ordering::Relaxed) && tracker.all_synced() {
            tracker.drop_unwatched(&mut out);
            shared.ready.store(true, Ordering::Relaxed);
            info!(
                types = tracker.watched_types(),
                objects = tracker.len(),
                "initial sync listed every watched type"
            );
        }
        shared
            .metrics
            .watched_types
            .set(tracker.watched_types() as i64);
        for change in out.drain(..) {
            if changes.send(Pending { change, immediate }).await.is_err() {
                return;
            }
        }
    }
}

struct TypeWatch {
    ty: ResourceType,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// How many types may be in their initial list at once. Every page of a list is held in
/// memory until it is processed, so listing 500 types at once would hold every object of
/// the cluster at the same moment; a few at a time keeps the peak small and costs little
/// time (the lists are quick, the store is the bound).
const CONCURRENT_INITIAL_LISTS: usize = 8;

/// The running set of per-type watches.
struct Watches {
    client: kube::Client,
    list_slots: Arc<tokio::sync::Semaphore>,
    namespaces: NamespaceFilter,
    inputs: mpsc::Sender<Input>,
    metrics: Metrics,
    running: BTreeMap<TypeKey, TypeWatch>,
}

impl Watches {
    async fn start(&mut self, ty: ResourceType) {
        let key = ty.key();
        // A watch that ended by itself (its type was forbidden) is started again.
        if self
            .running
            .get(&key)
            .is_some_and(|w| w.ty == ty && !w.task.is_finished())
        {
            return;
        }
        self.stop(&key, false).await;
        if self
            .inputs
            .send(Input::TypeAdded(key.clone()))
            .await
            .is_err()
        {
            return;
        }
        info!(resource_type = %key, plural = %ty.plural, "watching");
        let cancel = CancellationToken::new();
        let task = tokio::spawn(watch_type(
            self.client.clone(),
            self.list_slots.clone(),
            ty.clone(),
            self.namespaces.clone(),
            self.inputs.clone(),
            self.metrics.clone(),
            cancel.clone(),
        ));
        self.running.insert(key, TypeWatch { ty, cancel, task });
    }

    /// Stops a type's watch; with `forget`, its objects leave the store.
    async fn stop(&mut self, key: &TypeKey, forget: bool) {
        if let Some(w) = self.running.remove(key) {
            w.cancel.cancel();
            let _ = w.task.await;
            if forget {
                info!(resource_type = %key, "type gone; removing its instances");
                let _ = self.inputs.send(Input::TypeRemoved(key.clone())).await;
            }
        }
    }

    /// Makes the watched types of `scope` (one group, or all when `None`) equal `types`.
    async fn reconcile(&mut self, scope: Option<&str>, types: Vec<ResourceType>) {
        let wanted: BTreeMap<TypeKey, ResourceType> =
            types.into_iter().map(|t| (t.key(), t)).collect();
        let gone: Vec<TypeKey> = self
            .running
            .iter()
            .filter(|(k, w)| scope.is_none_or(|g| w.ty.group == g) && !wanted.contains_key(*k))
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            self.stop(&key, true).await;
        }
        for ty in wanted.into_values() {
            self.start(ty).await;
        }
    }

    /// The watched types, for the capability records.
    fn types(&self) -> Vec<ResourceType> {
        self.running.values().map(|w| w.ty.clone()).collect()
    }

    async fn stop_all(&mut self) {
        for (_, w) in std::mem::take(&mut self.running) {
            w.cancel.cancel();
            let _ = w.task.await;
        }
    }
}

/// Watches CustomResourceDefinitions (metadata only) and reports the group of each one that
/// is created, changed or deleted (a CRD's name is `<plural>.<group>`), or `None` when the
/// CRD watch had to relist (after a 410) and anything may have changed.
async fn watch_crds(
    client: kube::Client,
    groups: mpsc::Sender<Option<String>>,
    cancel: CancellationToken,
) {
    let ty = ResourceType::new(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    );
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client, &ty.api_resource());
    let mut stream =
        std::pin::pin!(watcher::watcher(api, watcher::Config::default()).default_backoff());
    let mut first_list = true;
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            e = stream.next() => e,
        };
        let report = match event {
            None => return,
            // Existing CRDs are covered by the full discovery at start; a later relist
            // may hide any number of changes, so it asks for a full rediscovery.
            Some(Ok(Event::InitDone)) if first_list => {
                first_list = false;
                continue;
            }
            Some(Ok(Event::InitDone)) => None,
            Some(Ok(Event::Init | Event::InitApply(_))) => continue,
            Some(Ok(Event::Apply(obj) | Event::Delete(obj))) => {
                match obj.metadata.name.as_deref().and_then(|n| n.split_once('.')) {
                    Some((_, group)) => Some(group.to_string()),
                    None => continue,
                }
            }
            Some(Err(e)) => {
                warn!(error = %e, "CRD watch failed; resuming");
                continue;
            }
        };
        if groups.send(report).await.is_err() {
            return;
        }
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Retries `f` with backoff until it succeeds (`Some`) or `cancel` fires (`None`).
async fn until_ok<T, E: std::fmt::Display, F, Fut>(
    what: &str,
    cancel: &CancellationToken,
    f: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let every_failure = |_: &E| true;
    let backoff = RetryConfig::default();
    let retried = retrying(&backoff, Retries::Forever, what, every_failure, f);
    cancel.run_until_cancelled(retried).await?.ok()
}

/// Runs the watcher until `shutdown` fires, then flushes everything pending (within the
/// shutdown timeout) and returns.
pub async fn run(
    settings: WatcherSettings,
    client: kube::Client,
    sink: Arc<dyn SyncSink>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) -> Result<(), WatchError> {
    let metrics = shared.metrics.clone();
    let mut resync_inbox = shared
        .resync_inbox
        .lock()
        .map_err(|_| WatchError::AlreadyRunning)?
        .take()
        .ok_or(WatchError::AlreadyRunning)?;
    let (input_tx, input_rx) = mpsc::channel::<Input>(4096);
    let (change_tx, change_rx) = mpsc::channel::<Pending>(4096);
    let (batch_tx, batch_rx) = mpsc::channel::<Vec<Change>>(1);
    let sender_idle = Arc::new(tokio::sync::Semaphore::new(
        crate::sender::BATCHES_IN_FLIGHT,
    ));
    let sender = tokio::spawn(run_sender(
        sink.clone(),
        batch_rx,
        sender_idle.clone(),
        settings.retry,
        metrics.clone(),
    ));
    let buffer = tokio::spawn(run_buffer(
        settings.buffer,
        change_rx,
        batch_tx,
        sender_idle,
        metrics.clone(),
    ));

    // Start from what the store holds: unchanged objects then cost nothing, and stored
    // objects that no longer exist (deleted while the watcher was down) are deleted.
    let stored = until_ok(
        "reading stored hashes from the ingest server",
        &shutdown,
        || sink.stored_hashes(),
    )
    .await;
    let mut tracker = Tracker::new();
    if let Some(stored) = &stored {
        info!(stored = stored.len(), "read the store's content hashes");
        tracker.seed(stored);
    }
    let tracker_task = tokio::spawn(run_tracker(tracker, input_rx, change_tx, shared.clone()));

    let mut watches = Watches {
        client: client.clone(),
        list_slots: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_INITIAL_LISTS)),
        namespaces: settings.namespaces.clone(),
        inputs: input_tx.clone(),
        metrics: metrics.clone(),
        running: BTreeMap::new(),
    };
    // Capabilities follow the watched types: every reconcile of the watches publishes them.
    let (caps_tx, caps_rx) = tokio::sync::watch::channel(Vec::<ResourceType>::new());
    let caps_cancel = shutdown.child_token();
    let caps_task = tokio::spawn(run_capability_sync(
        client.clone(),
        sink.clone(),
        caps_rx,
        settings.retry,
        metrics.clone(),
        caps_cancel.clone(),
    ));
    let crd_cancel = shutdown.child_token();
    let (group_tx, mut group_rx) = mpsc::channel::<Option<String>>(256);
    let mut crd_task = None;
    if stored.is_some() {
        if let Some(types) = until_ok("discovery", &shutdown, || {
            discovery::discover(&client, &settings.types)
        })
        .await
        {
            info!(types = types.len(), "discovery done");
            watches.reconcile(None, types).await;
            caps_tx.send_replace(watches.types());
            let _ = input_tx.send(Input::InitialTypesRegistered).await;
            crd_task = Some(tokio::spawn(watch_crds(
                client.clone(),
                group_tx,
                crd_cancel.clone(),
            )));
        }
    }

    // A CRD's group is rechecked a few times: discovery serves a new type only once the
    // API server has established it, which takes a moment after the CRD event.
    let mut group_checks: BTreeMap<(Instant, String), ()> = BTreeMap::new();
    let mut next_resync = Instant::now() + settings.resync_interval;
    loop {
        let next_check = group_checks.keys().next().map(|(t, _)| *t);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(group) = group_rx.recv() => match group {
                Some(group) => {
                    let now = Instant::now();
                    for delay_ms in [100u64, 1_000, 3_000] {
                        group_checks.insert((now + Duration::from_millis(delay_ms), group.clone()), ());
                    }
                }
                None => match discovery::discover(&client, &settings.types).await {
                    Ok(types) => {
                        watches.reconcile(None, types).await;
                        caps_tx.send_replace(watches.types());
                    }
                    Err(e) => warn!(error = %e, "rediscovery failed"),
                },
            },
            _ = sleep_until_some(next_check) => {
                let now = Instant::now();
                let mut groups: Vec<String> = Vec::new();
                while let Some(((due, _), ())) = group_checks.first_key_value() {
                    if *due > now {
                        break;
                    }
                    if let Some(((_, group), ())) = group_checks.pop_first() {
                        if !groups.contains(&group) {
                            groups.push(group);
                        }
                    }
                }
                match discovery::discover_groups(&client, &groups, &settings.types).await {
                    Ok(found) => {
                        for (group, types) in found {
                            watches.reconcile(Some(&group), types).await;
                        }
                        // Also when the types stayed: a CRD's schema may have changed.
                        caps_tx.send_replace(watches.types());
                    }
                    Err(e) => warn!(error = %e, "group discovery failed"),
                }
            }
            Some((scope, reply)) = resync_inbox.recv() => {
                let report = resync(scope, &settings, &client, sink.as_ref(), &mut watches, &input_tx, &caps_tx, &metrics).await;
                let _ = reply.send(report);
                next_resync = Instant::now() + settings.resync_interval;
            }
            _ = tokio::time::sleep_until(next_resync) => {
                resync(ResyncScope::All, &settings, &client, sink.as_ref(), &mut watches, &input_tx, &caps_tx, &metrics).await;
                next_resync = Instant::now() + settings.resync_interval;
            }
        }
    }

    // Shutdown: stop the watches, then let every stage drain: change detection ends when
    // its inputs close, the buffer then flushes everything at once, the sender sends it.
    shared.shutting_down.store(true, Ordering::Relaxed);
    info!("shutting down: stopping watches and flushing pending changes");
    crd_cancel.cancel();
    if let Some(t) = crd_task {
        let _ = t.await;
    }
    // Capabilities are level-triggered: whatever is not synced now is at the next start.
    caps_cancel.cancel();
    let _ = caps_task.await;
    watches.stop_all().await;
    drop(watches);
    drop(input_tx);
    let drain = async {
        let _ = tracker_task.await;
        let _ = buffer.await;
        let _ = sender.await;
    };
    match tokio::time::timeout(settings.shutdown_timeout, drain).await {
        Ok(()) => {
            info!("pending changes flushed");
            Ok(())
        }
        Err(_) => {
            error!(
                pending = metrics.pending_changes.get(),
                "shutdown timeout reached before every pending change was sent"
            );
            Err(WatchError::ShutdownTimeout(settings.shutdown_timeout))
        }
    }
}

/// Re-discovers and re-lists everything, and makes the store equal the cluster: changed or
/// missing documents are re-sent and documents of objects that no longer exist are deleted.
#[allow(clippy::too_many_arguments)]
async fn resync(
    scope: ResyncScope,
    settings: &WatcherSettings,
    client: &kube::Client,
    sink: &dyn SyncSink,
    watches: &mut Watches,
    inputs: &mpsc::Sender<Input>,
    caps: &tokio::sync::watch::Sender<Vec<ResourceType>>,
    metrics: &Metrics,
) -> ResyncReport {
    let started = Instant::now();
    let span = info_span!("resync", ?scope);
    async {
        let mut report = ResyncReport::default();
        if scope.capabilities() {
            match discovery::discover(client, &settings.types).await {
                Ok(types) => watches.reconcile(None, types).await,
                Err(e) => warn!(error = %e, "resync: discovery failed; using the known types"),
            }
            let types = watches.types();
            match sync_capabilities(client, sink, &types).await {
                Ok(c) => {
                    metrics.capability_syncs.inc();
                    metrics
                        .capability_records_sent
                        .inc_by((c.upserted + c.deleted) as u64);
                    report.capabilities = Some(c);
                }
                Err(e) => {
                    warn!(error = %e, "resync: capability sync failed; retrying in the background");
                    caps.send_replace(types);
                }
            }
            if !scope.instances() {
                report.types = watches.running.len();
                report.duration_ms = started.elapsed().as_millis() as u64;
                return report;
            }
        }
        let stored = match sink.stored_hashes().await {
            Ok(s) => Arc::new(s),
            Err(e) => {
                warn!(error = %e, "resync: cannot read the store's hashes");
                return report;
            }
        };
        if !scope.capabilities() {
            match discovery::discover(client, &settings.types).await {
                Ok(types) => {
                    watches.reconcile(None, types).await;
                    caps.send_replace(watches.types());
                }
                Err(e) => warn!(error = %e, "resync: discovery failed; listing the known types"),
            }
        }
        let types: Vec<ResourceType> = watches.running.values().map(|w| w.ty.clone()).collect();
        report.types = types.len();
        let counts = std::sync::Mutex::new(ResyncCounts::default());
        for ty in &types {
            let listed = list_type(client, ty, &settings.namespaces, 500, |page| {
                let stored = stored.clone();
                let counts = &counts;
                async move {
                    let (tx, rx) = oneshot::channel();
                    if inputs
                        .send(Input::ResyncPage {
                            stored,
                            page,
                            reply: tx,
                        })
                        .await
                        .is_ok()
                    {
                        if let (Ok(c), Ok(mut total)) = (rx.await, counts.lock()) {
                            total.unchanged += c.unchanged;
                            total.upserted += c.upserted;
                            total.in_flight += c.in_flight;
                        }
                    }
                }
            })
            .await;
            match listed {
                Ok(n) => report.listed += n,
                Err(e) => warn!(resource_type = %ty.key(), error = %e, "resync: listing failed"),
            }
        }
        let counts = counts.into_inner().unwrap_or_default();
        report.unchanged = counts.unchanged;
        report.upserted = counts.upserted;
        report.in_flight = counts.in_flight;
        let (tx, rx) = oneshot::channel();
        if inputs
            .send(Input::ResyncGhosts { stored, reply: tx })
            .await
            .is_ok()
        {
            report.deleted = rx.await.unwrap_or(0);
        }
        report.duration_ms = started.elapsed().as_millis() as u64;
        metrics
            .resync_seconds
            .observe(started.elapsed().as_secs_f64());
        info!(?report, "resync done");
        report
    }
    .instrument(span)
    .await
}
