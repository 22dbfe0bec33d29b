//! Access rules: the cluster's Roles, ClusterRoles, RoleBindings and ClusterRoleBindings,
//! its served resource types and its ServiceAccount token issuer, sent whole to the ingest
//! server as a `sync_model::rbac::AccessSnapshot` (`POST /api/v1/access/sync`) and kept
//! current: the server answers each caller with what the cluster's RBAC lets them read.
//!
//! A small stage beside the instance pipeline (which still indexes these objects as
//! documents): four watches ([`objects`]) → a snapshot built after a short debounce
//! ([`schedule`]) once every kind is listed → a sender that retries until the server takes
//! it, a newer snapshot replacing a pending one, and sends it again at every resync
//! interval. Not to be confused with [`crate::access`], whether the server accepts this
//! watcher.

pub mod convert;
pub mod issuer;
pub mod objects;
pub mod schedule;

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::ResourceExt;
use sync_model::rbac::{AccessSnapshot, ResourceType};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::capabilities::WatchedTypes;
use crate::deadline::sleep_until_some;
use crate::metrics::Metrics;
use crate::sender::{log_retry, RetryConfig};
use crate::sink::{SinkError, SyncSink};

use issuer::{follow_issuer, IssuerState};
use objects::{Keyed, RbacEvent, RbacObjects};
use schedule::SendSchedule;

/// How the access rules are kept current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessRulesConfig {
    /// Trailing debounce after the last change (the watcher's DEBOUNCE_WINDOW_MS) ...
    pub debounce: Duration,
    /// ... but never longer than this after the first change of a burst.
    pub max_delay: Duration,
    pub retry: RetryConfig,
    /// The snapshot is sent again this often (RESYNC_INTERVAL_MIN), in case the server
    /// lost it (a restart with an in-memory store).
    pub resend_interval: Duration,
    pub issuer_refresh: Duration,
}

impl AccessRulesConfig {
    pub fn new(debounce: Duration, retry: RetryConfig, resend_interval: Duration) -> Self {
        AccessRulesConfig {
            debounce,
            max_delay: schedule::MAX_SEND_DELAY,
            retry,
            resend_interval,
            issuer_refresh: issuer::ISSUER_REFRESH,
        }
    }
}

/// Keeps the ingest server's copy of this cluster's access rules current until `cancel`
/// fires. `types` carries the watched types (published by every discovery).
pub async fn run_access_rules(
    client: kube::Client,
    sink: Arc<dyn SyncSink>,
    types: watch::Receiver<WatchedTypes>,
    config: AccessRulesConfig,
    metrics: Metrics,
    cancel: CancellationToken,
) {
    let (issuer_tx, issuer_rx) = watch::channel(IssuerState::default());
    let (snapshot_tx, snapshot_rx) = watch::channel(None);
    let inputs = Inputs {
        rbac: rbac_events(&client),
        types,
        issuer: issuer_rx,
    };
    let cluster = sink.cluster().map(|c| c.to_string());
    tokio::join!(
        follow_issuer(client, config.issuer_refresh, issuer_tx, cancel.clone()),
        collect_snapshots(
            inputs,
            cluster,
            &config,
            snapshot_tx,
            metrics.clone(),
            cancel.clone()
        ),
        send_snapshots(sink, snapshot_rx, &config, metrics, cancel),
    );
}

/// What a snapshot is built from.
pub struct Inputs<S> {
    pub rbac: S,
    pub types: watch::Receiver<WatchedTypes>,
    pub issuer: watch::Receiver<IssuerState>,
}

/// The events of the four RBAC watches, merged. A watch that fails (the API server down, or
/// refusing this watcher: 403) is retried with kube-runtime's backoff; until it lists, no
/// snapshot is sent.
fn rbac_events(client: &kube::Client) -> BoxStream<'static, RbacEvent> {
    futures::stream::select_all([
        watch_kind(client, convert::role, RbacEvent::Role),
        watch_kind(client, convert::cluster_role, RbacEvent::ClusterRole),
        watch_kind(client, convert::role_binding, RbacEvent::RoleBinding),
        watch_kind(
            client,
            convert::cluster_role_binding,
            RbacEvent::ClusterRoleBinding,
        ),
    ])
    .boxed()
}

fn watch_kind<K, T>(
    client: &kube::Client,
    convert: fn(&K) -> T,
    wrap: fn(Event<Keyed<T>>) -> RbacEvent,
) -> BoxStream<'static, RbacEvent>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
    T: Send + 'static,
{
    let api: Api<K> = Api::all(client.clone());
    let keyed = move |obj: K| {
        let key = (obj.namespace().unwrap_or_default(), obj.name_any());
        (key, convert(&obj))
    };
    watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(move |event| async move {
            match event {
                Ok(event) => Some(wrap(map_event(event, keyed))),
                Err(e) => {
                    warn!(
                        kind = K::kind(&()).as_ref(),
                        error = %e,
                        "watching RBAC objects failed (will retry); access rules are not sent \
                         until they are listed: the watcher needs get, list and watch on \
                         rbac.authorization.k8s.io roles, clusterroles, rolebindings and \
                         clusterrolebindings"
                    );
                    None
                }
            }
        })
        .boxed()
}

fn map_event<K, T>(event: Event<K>, f: impl Fn(K) -> T) -> Event<T> {
    match event {
        Event::Apply(o) => Event::Apply(f(o)),
        Event::Delete(o) => Event::Delete(f(o)),
        Event::Init => Event::Init,
        Event::InitApply(o) => Event::InitApply(f(o)),
        Event::InitDone => Event::InitDone,
    }
}

/// Builds a snapshot after each burst of changes (see [`SendSchedule`]) and publishes it to
/// the sender, once every RBAC kind is listed, the types are discovered and the issuer has
/// been asked for: never a partial one.
pub async fn collect_snapshots<S>(
    mut inputs: Inputs<S>,
    cluster: Option<String>,
    config: &AccessRulesConfig,
    snapshots: watch::Sender<Option<Arc<AccessSnapshot>>>,
    metrics: Metrics,
    cancel: CancellationToken,
) where
    S: Stream<Item = RbacEvent> + Unpin,
{
    let mut objects = RbacObjects::default();
    let mut types: Option<Vec<ResourceType>> = None;
    let mut issuer = IssuerState::default();
    let mut schedule = SendSchedule::new(config.debounce, config.max_delay);
    let mut rbac_open = true;
    let mut announced = false;
    loop {
        let complete = objects.listed() && types.is_some() && issuer.asked;
        let due = schedule.due().filter(|_| complete);
        tokio::select! {
            _ = cancel.cancelled() => return,
            event = inputs.rbac.next(), if rbac_open => match event {
                Some(event) => {
                    if objects.observe(event) {
                        schedule.changed(Instant::now());
                    }
                    metrics.access_rbac_objects.set(objects.len() as i64);
                }
                None => rbac_open = false,
            },
            changed = inputs.types.changed() => {
                if changed.is_err() {
                    return;
                }
                let served = served_types(&inputs.types.borrow_and_update());
                if types.as_ref() != Some(&served) {
                    types = Some(served);
                    schedule.changed(Instant::now());
                }
            },
            changed = inputs.issuer.changed() => {
                if changed.is_err() {
                    return;
                }
                issuer = inputs.issuer.borrow_and_update().clone();
                schedule.changed(Instant::now());
            },
            _ = sleep_until_some(due) => {
                schedule.sent();
                let mut snapshot = AccessSnapshot {
                    cluster: cluster.clone(),
                    types: types.clone().unwrap_or_default(),
                    issuer: issuer.issuer.clone(),
                    ..Default::default()
                };
                objects.fill(&mut snapshot);
                metrics.access_issuer_known.set(i64::from(snapshot.issuer.is_some()));
                if !std::mem::replace(&mut announced, true) {
                    info!(
                        rbac_objects = objects.len(),
                        types = snapshot.types.len(),
                        issuer = snapshot.issuer.as_ref().map(|i| i.issuer.as_str()),
                        "access rules complete; sending them to the ingest server"
                    );
                }
                snapshots.send_replace(Some(Arc::new(snapshot)));
            }
        }
    }
}

/// The snapshot's `types`: each served type once, in order.
fn served_types(watched: &WatchedTypes) -> Vec<ResourceType> {
    let mut types: Vec<ResourceType> = watched.types.iter().map(convert::resource_type).collect();
    types.sort();
    types.dedup();
    types
}

/// Sends each snapshot published to `latest` until the server takes it, retrying with
/// backoff (a refused token too, quietly: [`crate::access`] reports it); a newer snapshot
/// replaces one still being retried, which nothing is lost by, as each is whole. The last
/// one is sent again every `resend_interval`.
pub async fn send_snapshots(
    sink: Arc<dyn SyncSink>,
    mut latest: watch::Receiver<Option<Arc<AccessSnapshot>>>,
    config: &AccessRulesConfig,
    metrics: Metrics,
    cancel: CancellationToken,
) {
    let retry = config.retry;
    let mut unsupported = false;
    'snapshots: loop {
        let Some(snapshot) = latest.borrow_and_update().clone() else {
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = latest.changed() => if changed.is_err() { return },
            }
            continue;
        };
        let mut delays = retry.delays();
        loop {
            let Some(sent) = cancel
                .run_until_cancelled(sink.send_access(&snapshot))
                .await
            else {
                return;
            };
            let error = match sent {
                Ok(()) => {
                    metrics.access_snapshots_sent.inc();
                    unsupported = false;
                    debug!(
                        roles = snapshot.roles.len(),
                        cluster_roles = snapshot.cluster_roles.len(),
                        role_bindings = snapshot.role_bindings.len(),
                        cluster_role_bindings = snapshot.cluster_role_bindings.len(),
                        "access rules sent"
                    );
                    break;
                }
                Err(e) => e,
            };
            if !(error.is_retryable() || error.is_denied()) {
                match &error {
                    SinkError::Unsupported(_) if std::mem::replace(&mut unsupported, true) => {}
                    SinkError::Unsupported(_) => warn!(
                        error = %error,
                        "the ingest server does not take access rules: it cannot tell who may \
                         see what of this cluster (sent again at the next change or resend)"
                    ),
                    _ => {
                        error!(error = %error, "access rules refused; sent again at the next change or resend")
                    }
                }
                break;
            }
            let delay = delays.next().unwrap_or(retry.max_delay);
            log_retry("sending access rules", &error, delay);
            metrics.send_retries.inc();
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
                // A newer snapshot: send it instead.
                changed = latest.changed() => {
                    if changed.is_err() { return }
                    continue 'snapshots;
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = latest.changed() => if changed.is_err() { return },
            // The same snapshot again.
            _ = tokio::time::sleep(config.resend_interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use sync_model::{ResourceId, SyncPayload, SyncResponse};
    use tokio::sync::mpsc;

    use crate::discovery;
    use objects::tests::{listed_with, role};

    const MS: Duration = Duration::from_millis(1);

    /// Records the snapshots it accepts; fails the first `failures` calls as unavailable.
    #[derive(Default)]
    struct Recording {
        accepted: Mutex<Vec<AccessSnapshot>>,
        calls: Mutex<usize>,
        failures: usize,
    }

    impl Recording {
        fn accepted(&self) -> Vec<AccessSnapshot> {
            self.accepted.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl SyncSink for Recording {
        async fn send(&self, _: &SyncPayload) -> Result<SyncResponse, SinkError> {
            Ok(SyncResponse::ok(0, 0))
        }
        async fn stored_hashes(&self) -> Result<HashMap<ResourceId, String>, SinkError> {
            Ok(HashMap::new())
        }
        async fn send_access(&self, snapshot: &AccessSnapshot) -> Result<(), SinkError> {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            if *calls <= self.failures {
                return Err(SinkError::unavailable("down"));
            }
            self.accepted.lock().unwrap().push(snapshot.clone());
            Ok(())
        }
    }

    fn config() -> AccessRulesConfig {
        AccessRulesConfig {
            debounce: 500 * MS,
            max_delay: 2000 * MS,
            retry: RetryConfig {
                min_delay: 100 * MS,
                max_delay: 100 * MS,
            },
            resend_interval: Duration::from_secs(3600),
            issuer_refresh: Duration::from_secs(600),
        }
    }

    /// The stage without Kubernetes: events, types and the issuer fed by the test.
    struct Stage {
        events: mpsc::UnboundedSender<RbacEvent>,
        types: watch::Sender<WatchedTypes>,
        issuer: watch::Sender<IssuerState>,
        sink: Arc<Recording>,
        metrics: Metrics,
        cancel: CancellationToken,
    }

    fn start(sink: Recording, config: AccessRulesConfig) -> Stage {
        let (events, rx) = mpsc::unbounded_channel();
        let rbac = Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|e| (e, rx))
        }));
        let (types, types_rx) = watch::channel(WatchedTypes::default());
        let (issuer, issuer_rx) = watch::channel(IssuerState::default());
        let (snapshots, latest) = watch::channel(None);
        let sink = Arc::new(sink);
        let (metrics, cancel) = (Metrics::new(), CancellationToken::new());
        let inputs = Inputs {
            rbac,
            types: types_rx,
            issuer: issuer_rx,
        };
        let (m, c) = (metrics.clone(), cancel.clone());
        tokio::spawn(async move {
            collect_snapshots(inputs, Some("prod".into()), &config, snapshots, m, c).await
        });
        let (s, m, c): (Arc<dyn SyncSink>, _, _) = (sink.clone(), metrics.clone(), cancel.clone());
        tokio::spawn(async move { send_snapshots(s, latest, &config, m, c).await });
        Stage {
            events,
            types,
            issuer,
            sink,
            metrics,
            cancel,
        }
    }

    fn names(s: &AccessSnapshot) -> Vec<String> {
        s.roles.iter().map(|r| r.name.clone()).collect()
    }

    fn apply(name: &str) -> RbacEvent {
        RbacEvent::Role(Event::Apply(role("a", name)))
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_sent_until_every_kind_is_listed_the_types_known_and_the_issuer_asked() {
        let stage = start(Recording::default(), config());
        let mut events = listed_with(vec![role("a", "r1")]);
        let last = events.pop().expect("events");
        for e in events {
            stage.events.send(e).unwrap();
        }
        let deploy = discovery::ResourceType::new("apps", "v1", "Deployment", "deployments", true);
        stage.types.send_replace(WatchedTypes::all(vec![deploy]));
        stage.issuer.send_replace(IssuerState {
            asked: true,
            issuer: None,
        });
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(
            stage.sink.accepted().is_empty(),
            "a partial snapshot was sent"
        );
        stage.events.send(last).unwrap();
        tokio::time::sleep(600 * MS).await;
        let sent = stage.sink.accepted();
        assert_eq!(sent.len(), 1);
        assert_eq!(names(&sent[0]), ["r1"]);
        assert_eq!(sent[0].cluster.as_deref(), Some("prod"));
        assert_eq!(sent[0].types[0].plural, "deployments");
        assert_eq!(sent[0].issuer, None);
        assert_eq!(stage.metrics.access_snapshots_sent.get(), 1);
        assert_eq!(stage.metrics.access_rbac_objects.get(), 1);
        assert_eq!(stage.metrics.access_issuer_known.get(), 0);
        stage.cancel.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_changes_is_coalesced_and_sent_within_the_cap_of_its_first_change() {
        let stage = start(Recording::default(), config());
        for e in listed_with(vec![]) {
            stage.events.send(e).unwrap();
        }
        stage.types.send_replace(WatchedTypes::default());
        stage.issuer.send_replace(IssuerState {
            asked: true,
            issuer: None,
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(stage.sink.accepted().len(), 1, "the first, empty snapshot");
        // A change every 300 ms for 3 s: the debounce alone would never fire.
        for i in 0..10 {
            stage.events.send(apply(&format!("r{i}"))).unwrap();
            tokio::time::sleep(300 * MS).await;
        }
        let sent = stage.sink.accepted();
        assert_eq!(sent.len(), 2, "one snapshot 2 s into the burst: {sent:?}");
        assert_eq!(names(&sent[1]).len(), 7, "the changes of the first 2 s");
        // The burst ends: its last changes follow one debounce window later, together.
        tokio::time::sleep(300 * MS).await;
        let sent = stage.sink.accepted();
        assert_eq!(sent.len(), 3);
        assert_eq!(names(&sent[2]).len(), 10);
        // A deletion, alone, is sent one debounce window later.
        let delete = RbacEvent::Role(Event::Delete(role("a", "r3")));
        stage.events.send(delete).unwrap();
        tokio::time::sleep(400 * MS).await;
        assert_eq!(stage.sink.accepted().len(), 3);
        tokio::time::sleep(200 * MS).await;
        let sent = stage.sink.accepted();
        assert_eq!(sent.len(), 4);
        assert!(!names(&sent[3]).contains(&"r3".to_string()));
        // An event that changes nothing sends nothing.
        stage.events.send(apply("r1")).unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(stage.sink.accepted().len(), 4);
        stage.cancel.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_newer_snapshot_replaces_one_being_retried_and_the_last_is_sent_again_later() {
        // Failing for longer (20 calls, each 100-200 ms apart with jitter) than the newer
        // snapshot takes to come (1.2 s).
        let sink = Recording {
            failures: 20,
            ..Default::default()
        };
        let config = AccessRulesConfig {
            resend_interval: Duration::from_secs(60),
            ..config()
        };
        let stage = start(sink, config);
        for e in listed_with(vec![role("a", "old")]) {
            stage.events.send(e).unwrap();
        }
        stage.types.send_replace(WatchedTypes::default());
        stage.issuer.send_replace(IssuerState {
            asked: true,
            issuer: None,
        });
        // The first snapshot goes out at 500 ms and fails, retried every 100-200 ms.
        tokio::time::sleep(700 * MS).await;
        stage.events.send(apply("new")).unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let sent = stage.sink.accepted();
        assert_eq!(sent.len(), 1, "only the newest snapshot: {sent:?}");
        assert_eq!(names(&sent[0]), ["new", "old"]);
        assert_eq!(stage.metrics.send_retries.get(), 20);
        tokio::time::sleep(Duration::from_secs(60)).await;
        let sent = stage.sink.accepted();
        assert_eq!(sent.len(), 2, "sent again after the resend interval");
        assert_eq!(sent[1], sent[0]);
        stage.cancel.cancel();
    }
}
