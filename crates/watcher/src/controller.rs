//! The watcher as a whole: builds the [`Context`], wires the stages with channels
//! (watches → change detection → buffer → sender), follows CRDs as they come and go, runs
//! resyncs, and shuts down by flushing everything pending.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sync_model::ResourceId;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::access::{ask_while_refused, GuardedSink, IngestAccess, Refusal};
use crate::access_rules::{run_access_rules, AccessRulesConfig};
use crate::availability::UnavailableGroups;
use crate::buffer::{run_buffer, Pending};
use crate::capabilities::{run_capability_sync, WatchedTypes};
use crate::change::Change;
use crate::context::{Context, WatcherSettings};
use crate::deadline::sleep_until_some;
use crate::discovery::DiscoveryScope;
use crate::error::WatchError;
use crate::heartbeat::run_heartbeat;
use crate::metrics::Metrics;
use crate::resync::{resync, ResyncReport, ResyncRequest, ResyncScope};
use crate::sender::{
    log_retry, retry_loop, run_sender, Retries, RetryConfig, StoreGenerations, BATCHES_IN_FLIGHT,
};
use crate::sink::SyncSink;
use crate::sink::{SinkError, StoredHashes};
use crate::source::watch_crds;
use crate::tracker::{run_tracker, Input, Tracker};
use crate::watches::Watches;

/// State shared with the operations endpoints.
#[derive(Debug)]
pub struct Shared {
    pub metrics: Metrics,
    /// Set by change detection once every type of the initial discovery is listed.
    ready: Arc<AtomicBool>,
    /// API groups whose discovery fails, and why.
    unavailable_groups: UnavailableGroups,
    /// Whether the ingest server refuses this watcher's credentials.
    ingest_access: IngestAccess,
    shutting_down: AtomicBool,
    resync_requests: mpsc::Sender<ResyncRequest>,
    resync_inbox: std::sync::Mutex<Option<mpsc::Receiver<ResyncRequest>>>,
}

impl Shared {
    pub fn new(metrics: Metrics) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(4);
        Arc::new(Shared {
            metrics,
            ready: Arc::new(AtomicBool::new(false)),
            unavailable_groups: UnavailableGroups::default(),
            ingest_access: IngestAccess::default(),
            shutting_down: AtomicBool::new(false),
            resync_requests: tx,
            resync_inbox: std::sync::Mutex::new(Some(rx)),
        })
    }

    /// Every watched type has been listed once, the ingest server takes this watcher's
    /// calls, and the watcher is not shutting down.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
            && !self.shutting_down.load(Ordering::Relaxed)
            && self.ingest_refusal().is_none()
    }

    /// Why the ingest server refuses this watcher (a missing or wrong token, or one that may
    /// not write its cluster), while it does.
    pub fn ingest_refusal(&self) -> Option<Refusal> {
        self.ingest_access.refusal()
    }

    /// API groups whose discovery currently fails, with the error: their types are not
    /// watched (and their stored documents are kept) until they answer again.
    pub fn unavailable_groups(&self) -> BTreeMap<String, String> {
        self.unavailable_groups
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default()
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

    /// The resync requests, for the one watcher that runs with this state.
    fn take_resync_inbox(&self) -> Result<mpsc::Receiver<ResyncRequest>, WatchError> {
        self.resync_inbox
            .lock()
            .map_err(|_| WatchError::AlreadyRunning)?
            .take()
            .ok_or(WatchError::AlreadyRunning)
    }
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
    let resync_inbox = shared.take_resync_inbox()?;
    let metrics = shared.metrics.clone();
    // Every stage's calls report whether the server takes this watcher's credentials.
    let sink: Arc<dyn SyncSink> = Arc::new(GuardedSink::new(
        sink,
        shared.ingest_access.clone(),
        metrics.clone(),
    ));
    let shutdown_timeout = settings.shutdown_timeout;
    let (changes, mut stages) = spawn_delivery(&settings, &sink, &metrics, &shared);

    // Start from what the store holds: unchanged objects then cost nothing, and stored
    // objects that no longer exist (deleted while the watcher was down) are deleted.
    let hashes = StoredHashes::default();
    let stored = until_ok(
        "reading stored hashes from the ingest server",
        &shutdown,
        || hashes.read(sink.as_ref()),
    )
    .await;
    // Whether the server lets this watcher write, asked now and again while it refuses.
    let access_check = Background::spawn(&shutdown, |cancel| {
        let (sink, access) = (sink.clone(), shared.ingest_access.clone());
        ask_while_refused(sink, access, settings.retry, cancel)
    });
    let (inputs, input_rx) = mpsc::channel::<Input>(4096);
    let tracker = seeded_tracker(stored.as_ref());
    let ready = shared.ready.clone();
    let detection = run_tracker(tracker, input_rx, changes, ready, metrics.clone());
    stages.push(("change detection", tokio::spawn(detection)));

    // Capabilities follow the watched types: every rediscovery publishes them.
    let (capabilities, published) = watch::channel(WatchedTypes::default());
    let capability_sync = Background::spawn(&shutdown, |cancel| {
        let (client, sink, retry) = (client.clone(), sink.clone(), settings.retry);
        run_capability_sync(client, sink, published, retry, metrics.clone(), cancel)
    });
    // The access rules follow the RBAC objects, and the watched types as they are published.
    let access_rules = Background::spawn(&shutdown, |cancel| {
        let config = AccessRulesConfig::new(
            settings.buffer.debounce,
            settings.retry,
            settings.resync_interval,
        );
        let (client, sink, types) = (client.clone(), sink.clone(), capabilities.subscribe());
        run_access_rules(client, sink, types, config, metrics.clone(), cancel)
    });
    let heartbeat = Background::spawn(&shutdown, |cancel| {
        run_heartbeat(
            sink.clone(),
            settings.heartbeat_interval,
            metrics.clone(),
            cancel,
        )
    });
    let ctx = Context {
        client,
        settings,
        sink,
        inputs,
        metrics: metrics.clone(),
        capabilities,
        unavailable_groups: shared.unavailable_groups.clone(),
        hashes,
    };
    let (crd_reports, crd_groups) = mpsc::channel(256);
    let mut controller = Controller::new(Arc::new(ctx), resync_inbox, crd_groups, shutdown.clone());
    if stored.is_some() {
        // Start-up may wait on a backed-up pipeline: shutdown is heard meanwhile.
        shutdown
            .run_until_cancelled(controller.start(crd_reports))
            .await;
    }
    controller.control().await;

    // Shutdown, whatever was under way, within the shutdown timeout: stop the watches,
    // then let every stage drain: change detection ends when its inputs close, the buffer
    // then flushes everything at once, the sender sends it.
    shared.shutting_down.store(true, Ordering::Relaxed);
    info!("shutting down: stopping watches and flushing pending changes");
    let deadline = Instant::now() + shutdown_timeout;
    let stopped = tokio::time::timeout_at(deadline, async {
        controller.stop_crd_watch().await;
        // Capabilities are level-triggered: whatever is not synced now is at the next start.
        capability_sync.stop().await;
        access_check.stop().await;
        // Whole snapshots: the next start sends the current one.
        access_rules.stop().await;
        heartbeat.stop().await;
        controller.stop_watches().await;
    })
    .await;
    if stopped.is_err() {
        error!("shutdown timeout reached while stopping the watches");
        return Err(WatchError::ShutdownTimeout(shutdown_timeout));
    }
    drain(stages, deadline, shutdown_timeout, &metrics).await
}

/// A stage's task, with its name for the log.
type Stage = (&'static str, JoinHandle<()>);

/// Starts the buffer and the sender; returns the buffer's inbox and their tasks.
fn spawn_delivery(
    settings: &WatcherSettings,
    sink: &Arc<dyn SyncSink>,
    metrics: &Metrics,
    shared: &Shared,
) -> (mpsc::Sender<Pending>, Vec<Stage>) {
    let resync_requests = shared.resync_requests.clone();
    let generations = StoreGenerations::new(move || {
        // Nobody waits for the report; a full queue already holds a resync.
        let (reply, _) = oneshot::channel();
        let _ = resync_requests.try_send((ResyncScope::Instances, reply));
    });
    let (change_tx, change_rx) = mpsc::channel::<Pending>(4096);
    let (batch_tx, batch_rx) = mpsc::channel::<Vec<Change>>(1);
    let sender_idle = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    let sender = tokio::spawn(run_sender(
        sink.clone(),
        batch_rx,
        sender_idle.clone(),
        settings.retry,
        metrics.clone(),
        Some(generations),
    ));
    let buffer = tokio::spawn(run_buffer(
        settings.buffer,
        change_rx,
        batch_tx,
        sender_idle,
        metrics.clone(),
    ));
    (change_tx, vec![("buffer", buffer), ("sender", sender)])
}

/// Change detection that starts from the store's content hashes, when they could be read.
fn seeded_tracker(stored: Option<&HashMap<ResourceId, String>>) -> Tracker {
    let mut tracker = Tracker::new();
    if let Some(stored) = stored {
        info!(stored = stored.len(), "read the store's content hashes");
        tracker.seed(stored);
    }
    tracker
}

/// Waits for the pipeline's stages to flush everything pending, until `deadline` (the end
/// of the shutdown `timeout`).
async fn drain(
    mut stages: Vec<Stage>,
    deadline: Instant,
    timeout: Duration,
    metrics: &Metrics,
) -> Result<(), WatchError> {
    let all = futures::future::join_all(stages.iter_mut().map(|(_, task)| task));
    match tokio::time::timeout_at(deadline, all).await {
        Ok(_) => {
            info!("pending changes flushed");
            Ok(())
        }
        Err(_) => {
            let unfinished: Vec<&str> = stages
                .iter()
                .filter(|(_, task)| !task.is_finished())
                .map(|(name, _)| *name)
                .collect();
            error!(
                pending = metrics.pending_changes.get(),
                ?unfinished,
                "shutdown timeout reached before every pending change was sent"
            );
            Err(WatchError::ShutdownTimeout(timeout))
        }
    }
}

/// The control loop's state: the watches and what makes them change (CRD events, resync
/// requests and the resync timer).
struct Controller {
    watches: Watches,
    shutdown: CancellationToken,
    resync_inbox: mpsc::Receiver<ResyncRequest>,
    /// From the CRD watch: the group of a CRD that changed, or `None` to rediscover all.
    crd_groups: mpsc::Receiver<Option<String>>,
    crd_watch: Option<Background>,
    group_checks: GroupChecks,
}

impl Controller {
    fn new(
        ctx: Arc<Context>,
        resync_inbox: mpsc::Receiver<ResyncRequest>,
        crd_groups: mpsc::Receiver<Option<String>>,
        shutdown: CancellationToken,
    ) -> Self {
        Controller {
            watches: Watches::new(ctx),
            shutdown,
            resync_inbox,
            crd_groups,
            crd_watch: None,
            group_checks: GroupChecks::default(),
        }
    }

    /// Discovers every type and starts watching them (retrying discovery until it answers
    /// or shutdown comes), then starts following CRDs, which reports on `crd_reports`.
    async fn start(&mut self, crd_reports: mpsc::Sender<Option<String>>) {
        if !self.discover_at_start().await {
            return;
        }
        let unavailable = self
            .watches
            .context()
            .unavailable_groups
            .lock()
            .map(|g| g.len())
            .unwrap_or(0);
        info!(
            types = self.watches.len(),
            unavailable_groups = unavailable,
            "discovery done"
        );
        let ctx = self.watches.context().clone();
        let _ = ctx.inputs.send(Input::InitialTypesRegistered).await;
        self.crd_watch = Some(Background::spawn(&self.shutdown, |cancel| {
            watch_crds(ctx.client.clone(), crd_reports, cancel)
        }));
    }

    /// [`Watches::rediscover`] of every type, retried with backoff while the API server
    /// itself does not answer (a single group that fails does not hold it up); false when
    /// shutdown came first.
    async fn discover_at_start(&mut self) -> bool {
        let retry = RetryConfig::default();
        let mut delays = retry.delays();
        loop {
            let attempt = self.watches.rediscover(&DiscoveryScope::All);
            let error = match self.shutdown.run_until_cancelled(attempt).await {
                None => return false,
                Some(Ok(())) => return true,
                Some(Err(e)) => e,
            };
            let delay = delays.next().unwrap_or(retry.max_delay);
            warn!(reason = %error, retry_in_ms = delay.as_millis() as u64, "discovery failed; will retry");
            let wait = tokio::time::sleep(delay);
            if self.shutdown.run_until_cancelled(wait).await.is_none() {
                return false;
            }
        }
    }

    /// Follows CRD events, checks due groups and runs resyncs until shutdown. The work of
    /// each event runs until shutdown at most: a resync or a rediscovery may wait on a
    /// backed-up pipeline (the ingest server down) or an unresponsive server, and SIGTERM
    /// must still end the process in time.
    async fn control(&mut self) {
        let interval = self.watches.context().settings.resync_interval;
        let mut next_resync = Instant::now() + interval;
        let shutdown = self.shutdown.clone();
        loop {
            let next_check = self.group_checks.next_due();
            let next_group_retry = self.watches.next_group_retry();
            let work = tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(group) = self.crd_groups.recv() => Work::CrdChanged(group),
                _ = sleep_until_some(next_check) => Work::CheckDueGroups,
                _ = sleep_until_some(next_group_retry) => Work::RetryUnavailableGroups,
                Some(request) = self.resync_inbox.recv() => Work::Resync(Some(request)),
                _ = tokio::time::sleep_until(next_resync) => Work::Resync(None),
            };
            if matches!(work, Work::Resync(_)) {
                next_resync = Instant::now() + interval;
            }
            if shutdown
                .run_until_cancelled(self.perform(work))
                .await
                .is_none()
            {
                info!("shutdown during the controller's work; it is abandoned");
                break;
            }
        }
    }

    async fn perform(&mut self, work: Work) {
        match work {
            Work::CrdChanged(group) => self.crd_changed(group).await,
            Work::CheckDueGroups => self.check_due_groups().await,
            Work::RetryUnavailableGroups => {
                if let Err(e) = self.watches.retry_unavailable_groups().await {
                    warn!(error = %e, "retrying unavailable API groups failed");
                }
            }
            Work::Resync(Some((scope, reply))) => {
                let _ = reply.send(resync(&mut self.watches, scope).await);
            }
            Work::Resync(None) => {
                resync(&mut self.watches, ResyncScope::All).await;
            }
        }
    }

    /// A CRD of `group` changed: its group is checked soon. `None`: the CRD watch relisted
    /// and anything may have changed, so everything is rediscovered now.
    async fn crd_changed(&mut self, group: Option<String>) {
        match group {
            Some(group) => self.group_checks.schedule(group, Instant::now()),
            None => {
                if let Err(e) = self.watches.rediscover(&DiscoveryScope::All).await {
                    warn!(error = %e, "rediscovery failed");
                }
            }
        }
    }

    async fn check_due_groups(&mut self) {
        let groups = self.group_checks.take_due(Instant::now());
        let scope = DiscoveryScope::Groups(groups);
        if let Err(e) = self.watches.rediscover(&scope).await {
            warn!(error = %e, "group discovery failed");
        }
    }

    async fn stop_crd_watch(&mut self) {
        if let Some(crd_watch) = self.crd_watch.take() {
            crd_watch.stop().await;
        }
    }

    /// Stops every watch and lets go of the context, which closes change detection's inputs.
    async fn stop_watches(mut self) {
        self.watches.stop_all().await;
    }
}

/// What the control loop does next.
enum Work {
    /// From the CRD watch: the group of a CRD that changed, or `None` to rediscover all.
    CrdChanged(Option<String>),
    CheckDueGroups,
    RetryUnavailableGroups,
    /// A requested resync (with where its report goes), or the periodic one.
    Resync(Option<ResyncRequest>),
}

/// When to check CRD groups again. A CRD's group is checked a few times: discovery serves
/// a new type only once the API server has established it, which takes a moment after the
/// CRD event.
#[derive(Debug, Default)]
struct GroupChecks {
    due: BTreeSet<(Instant, String)>,
}

/// How long after a CRD event its group is checked.
const GROUP_CHECK_DELAYS: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_secs(1),
    Duration::from_secs(3),
];

impl GroupChecks {
    fn schedule(&mut self, group: String, now: Instant) {
        for delay in GROUP_CHECK_DELAYS {
            self.due.insert((now + delay, group.clone()));
        }
    }

    fn next_due(&self) -> Option<Instant> {
        self.due.first().map(|(t, _)| *t)
    }

    /// The groups due at `now`, each once, in the order they fell due.
    fn take_due(&mut self, now: Instant) -> Vec<String> {
        let mut groups: Vec<String> = Vec::new();
        while self.next_due().is_some_and(|due| due <= now) {
            if let Some((_, group)) = self.due.pop_first() {
                if !groups.contains(&group) {
                    groups.push(group);
                }
            }
        }
        groups
    }
}

/// A background task and the token that stops it.
struct Background {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Background {
    /// Spawns `task` with a child token of `parent`: it stops with the parent or alone.
    fn spawn<F>(parent: &CancellationToken, task: impl FnOnce(CancellationToken) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let cancel = parent.child_token();
        let task = tokio::spawn(task(cancel.clone()));
        Background { cancel, task }
    }

    async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

/// Retries a call to the ingest server with backoff until it succeeds (`Some`) or `cancel`
/// fires (`None`).
async fn until_ok<T, F, Fut>(what: &str, cancel: &CancellationToken, f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SinkError>>,
{
    let every_failure = |_: &SinkError| true;
    let log = |e: &SinkError, delay: Duration| log_retry(what, e, delay);
    let backoff = RetryConfig::default();
    let retried = retry_loop(&backoff, Retries::Forever, every_failure, log, f);
    cancel.run_until_cancelled(retried).await?.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_crd_group_is_checked_three_times_then_no_more() {
        let t0 = Instant::now();
        let mut checks = GroupChecks::default();
        checks.schedule("example.com".into(), t0);
        assert_eq!(checks.next_due(), Some(t0 + Duration::from_millis(100)));
        assert!(checks.take_due(t0 + Duration::from_millis(99)).is_empty());
        for delay in GROUP_CHECK_DELAYS {
            assert_eq!(checks.take_due(t0 + delay), ["example.com"]);
        }
        assert_eq!(checks.next_due(), None);
    }

    #[test]
    fn groups_due_together_are_checked_once_each() {
        let t0 = Instant::now();
        let mut checks = GroupChecks::default();
        checks.schedule("a.example.com".into(), t0);
        checks.schedule("b.example.com".into(), t0 + Duration::from_millis(50));
        checks.schedule("a.example.com".into(), t0 + Duration::from_millis(60));
        let due = checks.take_due(t0 + Duration::from_secs(1) + Duration::from_millis(60));
        assert_eq!(due, ["a.example.com", "b.example.com"]);
        assert_eq!(checks.take_due(t0 + Duration::from_secs(10)).len(), 2);
        assert_eq!(checks.next_due(), None);
    }
}
