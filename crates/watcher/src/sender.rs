//! Sender: turns batches into `SyncPayload`s and delivers them through a [`SyncSink`].
//! Retryable failures are retried with exponential backoff and jitter: by the controller
//! until they succeed (the buffer keeps coalescing newer changes meanwhile), by one-shot
//! commands a bounded number of times. A batch refused as invalid or too large is split in
//! halves so that one bad item cannot drop its neighbours, and a refused single item is
//! logged with the server's details, counted and skipped.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use sync_model::SyncPayload;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, error, warn, Instrument};

use crate::change::Change;
use crate::metrics::{Metrics, OpLabels};
use crate::sink::{SinkError, SyncSink};

/// Backoff between retries of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryConfig {
    /// An endless sequence of delays: doubling from `min_delay` up to `max_delay`, with jitter
    /// so that many watchers do not hammer a recovering server in step.
    pub fn delays(&self) -> impl Iterator<Item = Duration> {
        ExponentialBuilder::new()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
    }
}

/// Builds the payload of one batch. Ids within a batch are unique (the buffer keeps one
/// change per object).
pub fn to_payload(batch: Vec<Change>) -> SyncPayload {
    let mut payload = SyncPayload::default();
    for change in batch {
        match change {
            Change::Upsert(i) => payload.upserts.push(i),
            Change::Delete(id) => payload.deletes.push(id),
        }
    }
    payload
}

/// How often a retryable failure is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retries {
    /// Until it succeeds: the controller, whose buffer keeps coalescing newer changes.
    Forever,
    /// At most this many times, then the failure is returned: one-shot commands.
    AtMost(usize),
}

/// Runs `op` until it succeeds or fails for good: a failure `is_retryable` accepts is
/// retried after the next backoff delay, as often as `retries` allows.
pub async fn retrying<T, E, F, Fut>(
    retry: &RetryConfig,
    retries: Retries,
    what: &str,
    is_retryable: impl Fn(&E) -> bool,
    op: F,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let log = |e: &E, delay: Duration| {
        warn!(reason = %e, retry_in_ms = delay.as_millis() as u64, "{what} failed; will retry");
    };
    retry_loop(retry, retries, is_retryable, log, op).await
}

/// [`retrying`], with `on_retry` told of each failure that is retried and the delay before
/// the next attempt.
pub(crate) async fn retry_loop<T, E, F, Fut>(
    retry: &RetryConfig,
    retries: Retries,
    is_retryable: impl Fn(&E) -> bool,
    on_retry: impl Fn(&E, Duration),
    mut op: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut delays = retry.delays();
    let mut retried = 0usize;
    loop {
        match op().await {
            Err(e) if is_retryable(&e) => {
                if matches!(retries, Retries::AtMost(n) if retried >= n) {
                    return Err(e);
                }
                retried += 1;
                let delay = delays.next().unwrap_or(retry.max_delay);
                on_retry(&e, delay);
                tokio::time::sleep(delay).await;
            }
            other => return other,
        }
    }
}

/// How a retried failure of a call to the ingest server is logged: a refusal of the
/// credentials is a state that `access` logs once when it begins and ends, not at every
/// retry of every batch.
pub(crate) fn log_retry(what: &str, e: &SinkError, delay: Duration) {
    let retry_in_ms = delay.as_millis() as u64;
    if e.is_denied() {
        debug!(reason = %e, retry_in_ms, "{what} refused; will retry");
    } else {
        warn!(reason = %e, retry_in_ms, "{what} failed; will retry");
    }
}

/// [`retrying`] for calls to the ingest server: a [`SinkError::Unavailable`] is retried
/// (not before the server's `Retry-After`, when it sent one), and so is a
/// [`SinkError::Denied`] when retrying forever (the controller: the batch waits until the
/// token is fixed instead of being lost); each retry is counted in `send_retries` as it
/// starts.
pub async fn with_retries<T, F, Fut>(
    retry: &RetryConfig,
    retries: Retries,
    what: &str,
    metrics: &Metrics,
    mut op: F,
) -> Result<T, SinkError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SinkError>>,
{
    let mut first = true;
    let asked_to_wait = std::sync::Mutex::new(None::<Duration>);
    let is_retryable = |e: &SinkError| {
        if let (SinkError::Unavailable { retry_after, .. }, Ok(mut wait)) =
            (e, asked_to_wait.lock())
        {
            *wait = *retry_after;
        }
        e.is_retryable() || (e.is_denied() && retries == Retries::Forever)
    };
    let log = |e: &SinkError, delay: Duration| log_retry(what, e, delay);
    retry_loop(retry, retries, is_retryable, log, || {
        if !std::mem::take(&mut first) {
            metrics.send_retries.inc();
        }
        let wait = asked_to_wait.lock().ok().and_then(|mut w| w.take());
        let call = op();
        async move {
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
            }
            call.await
        }
    })
    .await
}

/// What the sender does with a payload the sink did not take (vector's `RetryLogic`):
/// the meaning of the failure decides, never a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAction {
    /// Send the same payload again later.
    Retry,
    /// Send each half on its own: a bad or oversized item then holds back none of the others.
    Split,
    /// Skip this single item: it can never be stored as it is.
    Skip,
    /// Stop: no item is at fault and retrying cannot help (credentials, permissions).
    GiveUp,
}

/// The decision for a failure of a payload of `items` items.
pub fn on_failure(e: &SinkError, items: usize) -> RetryAction {
    match e {
        SinkError::Unavailable { .. } => RetryAction::Retry,
        SinkError::Invalid { .. } | SinkError::TooLarge(_) if items > 1 => RetryAction::Split,
        SinkError::Invalid { .. } | SinkError::TooLarge(_) => RetryAction::Skip,
        SinkError::Denied(_) | SinkError::Refused(_) | SinkError::Unsupported(_) => {
            RetryAction::GiveUp
        }
    }
}

/// What became of a delivered payload's items.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub accepted: usize,
    /// Items refused one by one as invalid: logged with the server's details and skipped.
    pub rejected: usize,
    /// The store's generation in the last answer, when the server names it.
    pub generation: Option<String>,
}

/// A delivery that ended short of success.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Still unavailable after the retries allowed.
    #[error("ingest unavailable: {0}")]
    Unavailable(String),
    /// Refused for a reason that no single item explains (credentials, permissions, a
    /// store of another model): splitting would not help, so the delivery stops.
    #[error("ingest refused {items} item(s): {error}")]
    Refused { error: String, items: usize },
}

/// Delivers one payload, obeying [`on_failure`]: unavailable is retried (see
/// [`with_retries`]); a payload refused as invalid or too large is split in halves so that
/// one bad item cannot hold back its neighbours, and a refused single item is logged with
/// the server's details, counted and skipped.
pub async fn deliver_payload(
    sink: &dyn SyncSink,
    payload: SyncPayload,
    retry: &RetryConfig,
    retries: Retries,
    metrics: &Metrics,
) -> Result<Delivered, DeliveryError> {
    let mut delivered = Delivered::default();
    let mut stack = vec![payload];
    while let Some(payload) = stack.pop() {
        let items = payload.len();
        if items == 0 {
            continue;
        }
        match with_retries(retry, retries, "sending a batch", metrics, || {
            sink.send(&payload)
        })
        .await
        {
            Ok(resp) => {
                debug!(
                    upserted = resp.upserted,
                    deleted = resp.deleted,
                    "batch accepted"
                );
                delivered.accepted += items;
                if resp.store_generation.is_some() {
                    delivered.generation = resp.store_generation;
                }
                metrics.batches_sent.inc();
                let ops = [
                    ("upsert", payload.upserts.len()),
                    ("delete", payload.deletes.len()),
                ];
                for (op, n) in ops {
                    metrics
                        .items_sent
                        .get_or_create(&OpLabels { op: op.into() })
                        .inc_by(n as u64);
                }
            }
            Err(e) => match on_failure(&e, items) {
                RetryAction::Retry => return Err(DeliveryError::Unavailable(e.to_string())),
                RetryAction::Skip => {
                    let id = payload
                        .upserts
                        .first()
                        .map(|i| i.id.clone())
                        .or_else(|| payload.deletes.first().cloned());
                    let details = match &e {
                        SinkError::Invalid { details, .. } => details.as_slice(),
                        _ => &[],
                    };
                    error!(error = %e, ?details, ?id, "ingest server rejected an item; skipped");
                    metrics.items_rejected.inc();
                    delivered.rejected += 1;
                }
                RetryAction::Split => {
                    warn!(
                        error = %e,
                        items,
                        "ingest server rejected a batch; splitting it to isolate the bad items"
                    );
                    let (first, second) = split(payload);
                    stack.push(second);
                    stack.push(first);
                }
                RetryAction::GiveUp => {
                    return Err(DeliveryError::Refused {
                        error: e.to_string(),
                        items: items + stack.iter().map(SyncPayload::len).sum::<usize>(),
                    })
                }
            },
        }
    }
    Ok(delivered)
}

fn split(mut payload: SyncPayload) -> (SyncPayload, SyncPayload) {
    let upserts = payload.upserts.split_off(payload.upserts.len() / 2);
    let deletes = payload.deletes.split_off(payload.deletes.len() / 2);
    let cluster = payload.cluster.clone();
    (
        payload,
        SyncPayload {
            cluster,
            upserts,
            deletes,
        },
    )
}

/// The controller's delivery of one batch: retried until the server answers. A batch
/// refused as a whole (see [`DeliveryError::Refused`]) is logged, counted and dropped: a 4xx
/// is not retried. Returns the store's generation of the last answer, when named.
pub async fn deliver(
    sink: &dyn SyncSink,
    batch: Vec<Change>,
    retry: &RetryConfig,
    metrics: &Metrics,
) -> Option<String> {
    let payload = to_payload(batch);
    match deliver_payload(sink, payload, retry, Retries::Forever, metrics).await {
        Ok(delivered) => delivered.generation,
        Err(e) => {
            let items = match &e {
                DeliveryError::Refused { items, .. } => *items,
                DeliveryError::Unavailable(_) => 0,
            };
            error!(error = %e, items, "ingest server refused a batch; dropped");
            metrics.items_rejected.inc_by(items as u64);
            None
        }
    }
}

/// Follows the store's generation in the ingest server's answers (`storeGeneration`: the
/// Chroma collection's id, or the id cw records in a Qdrant collection). A generation never
/// seen before means the collection was created anew (the store restarted on an empty
/// volume, the collection deleted by hand): what the watcher sent before is gone, and
/// `on_new` asks for a resync of the instances, which sends it again. One seen before is no
/// news: several ingest replicas behind one Service may name the old and the new generation
/// in turn until each notices (a replica addressing Qdrant by name learns it only when it
/// next prepares the collection), and that must not resync at every answer.
#[derive(Clone)]
pub struct StoreGenerations {
    /// The generations seen, oldest first, at most [`SEEN_GENERATIONS`].
    seen: Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
    on_new: Arc<dyn Fn() + Send + Sync>,
}

/// Generations remembered: far more than a store is recreated while one watcher runs.
const SEEN_GENERATIONS: usize = 16;

impl StoreGenerations {
    pub fn new(on_new: impl Fn() + Send + Sync + 'static) -> Self {
        StoreGenerations {
            seen: Arc::default(),
            on_new: Arc::new(on_new),
        }
    }

    /// Records the generation of an answer; true when it is new and not the first one seen
    /// (and `on_new` was called).
    pub fn observe(&self, generation: &str) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.iter().any(|g| g == generation) {
            return false;
        }
        let was = seen.back().cloned();
        if seen.len() == SEEN_GENERATIONS {
            seen.pop_front();
        }
        seen.push_back(generation.to_owned());
        drop(seen);
        let Some(was) = was else { return false };
        warn!(
            was,
            now = generation,
            "the store's collection was created anew (what it held is gone): resyncing"
        );
        (self.on_new)();
        true
    }
}

/// Batches delivered at once. Two let one batch's work in the ingest server (validation,
/// embedding) overlap the other's store write; batches in flight never share an object, so
/// the order of one object's changes is kept.
pub const BATCHES_IN_FLIGHT: usize = 2;

fn change_id(change: &Change) -> &sync_model::ResourceId {
    match change {
        Change::Upsert(i) => &i.id,
        Change::Delete(id) => id,
    }
}

type Done = Option<Result<(tokio::task::Id, ()), tokio::task::JoinError>>;

/// A delivery task ended: its objects are free again and the buffer may hand over another batch.
fn finished(
    done: Done,
    ids_of: &mut HashMap<tokio::task::Id, Vec<sync_model::ResourceId>>,
    busy: &mut HashSet<sync_model::ResourceId>,
    idle: &tokio::sync::Semaphore,
) {
    let id = match done {
        Some(Ok((id, ()))) => id,
        Some(Err(e)) => {
            error!(error = %e, "a batch delivery task failed");
            e.id()
        }
        None => return,
    };
    for rid in ids_of.remove(&id).unwrap_or_default() {
        busy.remove(&rid);
    }
    idle.add_permits(1);
}

/// Runs the sender until the batch channel closes and every batch taken is delivered.
/// Up to [`BATCHES_IN_FLIGHT`] batches are delivered concurrently, each with its own
/// retries; a batch that shares an object with one in flight waits for it. `idle` gets a
/// permit back after each delivered batch (see `run_buffer`).
pub async fn run_sender(
    sink: Arc<dyn SyncSink>,
    mut batches: mpsc::Receiver<Vec<Change>>,
    idle: Arc<tokio::sync::Semaphore>,
    retry: RetryConfig,
    metrics: Metrics,
    generations: Option<StoreGenerations>,
) {
    let mut in_flight: JoinSet<()> = JoinSet::new();
    let mut ids_of: HashMap<tokio::task::Id, Vec<sync_model::ResourceId>> = HashMap::new();
    let mut busy: HashSet<sync_model::ResourceId> = HashSet::new();
    loop {
        tokio::select! {
            done = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                finished(done, &mut ids_of, &mut busy, &idle);
            }
            batch = batches.recv(), if in_flight.len() < BATCHES_IN_FLIGHT => {
                let Some(batch) = batch else { break };
                while !in_flight.is_empty() && batch.iter().any(|c| busy.contains(change_id(c))) {
                    let done = in_flight.join_next_with_id().await;
                    finished(done, &mut ids_of, &mut busy, &idle);
                }
                let ids: Vec<sync_model::ResourceId> = batch.iter().map(|c| change_id(c).clone()).collect();
                busy.extend(ids.iter().cloned());
                let span = tracing::info_span!("batch", items = batch.len());
                let (sink, metrics, generations) = (sink.clone(), metrics.clone(), generations.clone());
                let handle = in_flight.spawn(
                    async move {
                        let generation = deliver(sink.as_ref(), batch, &retry, &metrics).await;
                        if let (Some(g), Some(generations)) = (generation, generations) {
                            generations.observe(&g);
                        }
                    }
                    .instrument(span),
                );
                ids_of.insert(handle.id(), ids);
            }
        }
    }
    while let Some(done) = in_flight.join_next_with_id().await {
        finished(Some(done), &mut ids_of, &mut busy, &idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::tests::deployment;
    use async_trait::async_trait;
    use std::collections::HashMap;
    use std::sync::Mutex;
    use sync_model::{ResourceId, ResourceInstance, SyncResponse};
    use tokio::time::Instant;

    /// Fails the first `fail` sends retryably, rejects payloads holding a "bad" item.
    #[derive(Default)]
    struct ScriptedSink {
        fail: Mutex<usize>,
        attempts: Mutex<Vec<Instant>>,
        accepted: Mutex<Vec<SyncPayload>>,
    }

    #[async_trait]
    impl SyncSink for ScriptedSink {
        async fn send(&self, payload: &SyncPayload) -> Result<SyncResponse, SinkError> {
            self.attempts.lock().unwrap().push(Instant::now());
            {
                let mut fail = self.fail.lock().unwrap();
                if *fail > 0 {
                    *fail -= 1;
                    return Err(SinkError::unavailable("connection refused"));
                }
            }
            if payload.upserts.iter().any(|i| i.name == "bad") {
                return Err(SinkError::Invalid {
                    error: "invalid".into(),
                    details: vec![],
                });
            }
            self.accepted.lock().unwrap().push(payload.clone());
            Ok(SyncResponse::ok(
                payload.upserts.len(),
                payload.deletes.len(),
            ))
        }
        async fn stored_hashes(&self) -> Result<HashMap<ResourceId, String>, SinkError> {
            Ok(HashMap::new())
        }
    }

    /// Takes 100 ms per send and logs when each payload's first upsert started and ended.
    #[derive(Default)]
    struct SlowSink {
        log: Mutex<Vec<(String, &'static str)>>,
    }

    #[async_trait]
    impl SyncSink for SlowSink {
        async fn send(&self, payload: &SyncPayload) -> Result<SyncResponse, SinkError> {
            let label = |i: &ResourceInstance| format!("{}={}", i.name, i.labels["app"]);
            let first = label(&payload.upserts[0]);
            self.log.lock().unwrap().push((first.clone(), "start"));
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.log.lock().unwrap().push((first, "end"));
            Ok(SyncResponse::ok(payload.upserts.len(), 0))
        }
        async fn stored_hashes(&self) -> Result<HashMap<ResourceId, String>, SinkError> {
            Ok(HashMap::new())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn two_disjoint_batches_go_at_once_but_a_batch_sharing_an_object_waits_for_it() {
        let sink = Arc::new(SlowSink::default());
        let (tx, rx) = mpsc::channel(8);
        let idle = Arc::new(tokio::sync::Semaphore::new(0));
        let batches = [
            vec![Change::Upsert(deployment("web", "v1"))],
            vec![Change::Upsert(deployment("db", "v1"))],
            vec![Change::Upsert(deployment("web", "v2"))],
        ];
        for b in batches {
            tx.send(b).await.unwrap();
        }
        drop(tx);
        run_sender(
            sink.clone(),
            rx,
            idle.clone(),
            RetryConfig::default(),
            Metrics::new(),
            None,
        )
        .await;
        let log = sink.log.lock().unwrap().clone();
        let at = |what: &str, when: &str| {
            log.iter()
                .position(|(w, t)| w == what && *t == when)
                .unwrap_or_else(|| panic!("{what} {when} missing from {log:?}"))
        };
        assert!(
            at("db=v1", "start") < at("web=v1", "end"),
            "not concurrent: {log:?}"
        );
        assert!(
            at("web=v2", "start") > at("web=v1", "end"),
            "order lost: {log:?}"
        );
        assert_eq!(log.len(), 6);
        assert_eq!(
            idle.available_permits(),
            3,
            "one turn back per delivered batch"
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap_and_never_ends() {
        let retry = RetryConfig {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        };
        let delays: Vec<Duration> = retry.delays().take(50).collect();
        assert_eq!(delays.len(), 50);
        // Jitter adds up to one more delay on top of each step; the base doubles.
        assert!(delays[0] >= Duration::from_millis(100) && delays[0] <= Duration::from_millis(200));
        assert!(delays[3] >= Duration::from_millis(800), "{delays:?}");
        assert!(
            delays.iter().all(|d| *d <= Duration::from_secs(4)),
            "{delays:?}"
        );
        let a: Vec<Duration> = retry.delays().take(5).collect();
        let b: Vec<Duration> = retry.delays().take(5).collect();
        assert_ne!(a, b, "no jitter");
    }

    #[tokio::test(start_paused = true)]
    async fn a_retryable_failure_is_retried_with_growing_delays_until_it_succeeds() {
        let sink = ScriptedSink {
            fail: Mutex::new(5),
            ..Default::default()
        };
        let metrics = Metrics::new();
        let retry = RetryConfig {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(60),
        };
        deliver(
            &sink,
            vec![Change::Upsert(deployment("web", "a"))],
            &retry,
            &metrics,
        )
        .await;
        let attempts = sink.attempts.lock().unwrap().clone();
        assert_eq!(attempts.len(), 6);
        let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps[4] > gaps[0] * 4, "{gaps:?}");
        assert_eq!(sink.accepted.lock().unwrap().len(), 1);
        assert_eq!(metrics.send_retries.get(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejected_batch_is_split_so_only_the_bad_item_is_dropped() {
        let sink = ScriptedSink::default();
        let metrics = Metrics::new();
        let mut batch: Vec<Change> = (0..7)
            .map(|i| Change::Upsert(deployment(&format!("ok{i}"), "a")))
            .collect();
        batch.insert(3, Change::Upsert(deployment("bad", "a")));
        batch.push(Change::Delete(deployment("old", "a").id));
        deliver(&sink, batch, &RetryConfig::default(), &metrics).await;
        let accepted = sink.accepted.lock().unwrap();
        let upserts: usize = accepted.iter().map(|p| p.upserts.len()).sum();
        let deletes: usize = accepted.iter().map(|p| p.deletes.len()).sum();
        assert_eq!((upserts, deletes), (7, 1));
        assert_eq!(metrics.items_rejected.get(), 1);
    }

    #[test]
    fn the_meaning_of_a_failure_decides_between_retry_split_skip_and_give_up() {
        let invalid = SinkError::Invalid {
            error: "bad".into(),
            details: vec![],
        };
        assert_eq!(
            on_failure(&SinkError::unavailable("down"), 5),
            RetryAction::Retry
        );
        assert_eq!(on_failure(&invalid, 5), RetryAction::Split);
        assert_eq!(on_failure(&invalid, 1), RetryAction::Skip);
        assert_eq!(
            on_failure(&SinkError::TooLarge("big".into()), 2),
            RetryAction::Split
        );
        assert_eq!(
            on_failure(&SinkError::Refused("401".into()), 5),
            RetryAction::GiveUp
        );
        assert_eq!(
            on_failure(&SinkError::Refused("401".into()), 1),
            RetryAction::GiveUp
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_waits_at_least_as_long_as_the_server_asked() {
        let calls = Mutex::new(Vec::new());
        let metrics = Metrics::new();
        let retry = RetryConfig {
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
        };
        let got: Result<(), SinkError> =
            with_retries(&retry, Retries::AtMost(1), "test", &metrics, || {
                let calls = &calls;
                async move {
                    // A call's work starts when it is polled, after any wait.
                    calls.lock().unwrap().push(Instant::now());
                    Err(SinkError::Unavailable {
                        reason: "full".into(),
                        retry_after: Some(Duration::from_secs(7)),
                    })
                }
            })
            .await;
        assert!(got.is_err());
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 2);
        assert!(
            calls[1] - calls[0] >= Duration::from_secs(7),
            "{:?}",
            calls[1] - calls[0]
        );
    }

    #[test]
    fn a_split_payload_keeps_every_item_once() {
        let p = to_payload(vec![
            Change::Upsert(deployment("a", "x")),
            Change::Upsert(deployment("b", "x")),
            Change::Upsert(deployment("c", "x")),
            Change::Delete(deployment("gone", "x").id),
        ]);
        let (a, b) = split(p.clone());
        assert_eq!(a.len() + b.len(), p.len());
        assert!(!a.is_empty() && !b.is_empty());
    }

    /// Refuses every payload for no item's fault (as for a wrong token).
    struct RefusingSink(Mutex<usize>);

    #[async_trait]
    impl SyncSink for RefusingSink {
        async fn send(&self, _: &SyncPayload) -> Result<SyncResponse, SinkError> {
            *self.0.lock().unwrap() += 1;
            Err(SinkError::Refused("unauthorized".into()))
        }
        async fn stored_hashes(&self) -> Result<HashMap<ResourceId, String>, SinkError> {
            Ok(HashMap::new())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_refused_for_no_item_s_fault_is_not_split_but_counted_and_dropped() {
        let sink = RefusingSink(Mutex::new(0));
        let metrics = Metrics::new();
        let batch: Vec<Change> = (0..8)
            .map(|i| Change::Upsert(deployment(&format!("d{i}"), "a")))
            .collect();
        deliver(&sink, batch, &RetryConfig::default(), &metrics).await;
        assert_eq!(*sink.0.lock().unwrap(), 1, "one attempt, no split");
        assert_eq!(metrics.items_rejected.get(), 8);
    }

    /// Refuses the credentials of the first `denied` sends, then takes them.
    struct TokenFixedLater {
        denied: Mutex<usize>,
        accepted: Mutex<usize>,
    }

    #[async_trait]
    impl SyncSink for TokenFixedLater {
        async fn send(&self, payload: &SyncPayload) -> Result<SyncResponse, SinkError> {
            let mut denied = self.denied.lock().unwrap();
            if *denied > 0 {
                *denied -= 1;
                return Err(SinkError::Denied(
                    "HTTP 403 Forbidden: may not write b".into(),
                ));
            }
            *self.accepted.lock().unwrap() += payload.len();
            Ok(SyncResponse::ok(payload.len(), 0))
        }
        async fn stored_hashes(&self) -> Result<HashMap<ResourceId, String>, SinkError> {
            Ok(HashMap::new())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_refused_for_the_token_waits_until_the_server_takes_it_and_is_not_dropped() {
        let sink = TokenFixedLater {
            denied: Mutex::new(20),
            accepted: Mutex::new(0),
        };
        let metrics = Metrics::new();
        let batch: Vec<Change> = (0..4)
            .map(|i| Change::Upsert(deployment(&format!("d{i}"), "a")))
            .collect();
        deliver(&sink, batch, &RetryConfig::default(), &metrics).await;
        assert_eq!(*sink.accepted.lock().unwrap(), 4, "every item delivered");
        assert_eq!(metrics.items_rejected.get(), 0);

        // A one-shot command gives up at once instead.
        let sink = TokenFixedLater {
            denied: Mutex::new(1),
            accepted: Mutex::new(0),
        };
        let payload = to_payload(vec![Change::Upsert(deployment("web", "a"))]);
        let got = deliver_at_most(&sink, payload, 5, &metrics).await;
        assert!(matches!(got, Err(DeliveryError::Refused { .. })), "{got:?}");
    }

    /// [`deliver_payload`] with the default retry delays, retrying at most `retries` times.
    async fn deliver_at_most(
        sink: &dyn SyncSink,
        payload: SyncPayload,
        retries: usize,
        metrics: &Metrics,
    ) -> Result<Delivered, DeliveryError> {
        let retry = RetryConfig::default();
        deliver_payload(sink, payload, &retry, Retries::AtMost(retries), metrics).await
    }

    #[tokio::test(start_paused = true)]
    async fn bounded_retries_give_up_with_unavailable_after_the_last_one() {
        let sink = ScriptedSink {
            fail: Mutex::new(10),
            ..Default::default()
        };
        let payload = to_payload(vec![Change::Upsert(deployment("web", "a"))]);
        let metrics = Metrics::new();
        let got = deliver_at_most(&sink, payload, 2, &metrics).await;
        assert!(matches!(got, Err(DeliveryError::Unavailable(_))), "{got:?}");
        assert_eq!(sink.attempts.lock().unwrap().len(), 3);
        assert_eq!(metrics.send_retries.get(), 2);
    }

    #[test]
    fn only_a_new_store_generation_asks_for_a_resync() {
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = asked.clone();
        let generations = StoreGenerations::new(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        // The first answer names the generation; repeating it is no news.
        assert!(!generations.observe("collection-a"));
        assert!(!generations.observe("collection-a"));
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 0);
        // The collection created anew: one resync, then quiet again.
        assert!(generations.observe("collection-b"));
        assert!(!generations.observe("collection-b"));
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
        // A replica that has not noticed yet names the old one: no news either way.
        assert!(!generations.observe("collection-a"));
        assert!(!generations.observe("collection-b"));
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Created anew once more: a resync.
        assert!(generations.observe("collection-c"));
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
