//! Buffer: per-object debounce and batching. Every object has at most one pending change
//! (the last state wins), so memory is bounded by the number of objects however long the
//! sender is held up. An upsert waits out a trailing window counted from its first pending
//! change; a delete cancels a pending upsert and goes out at once. Batches hold at most
//! `max_batch` items; the flush interval bounds how long a change waits to be batched.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use sync_model::ResourceId;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::change::Change;
use crate::deadline::sleep_until_some;
use crate::metrics::Metrics;

/// A change on its way to the buffer. `immediate` skips the debounce window: objects from
/// an initial list or relist are sent as fast as the sender can take them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub change: Change,
    pub immediate: bool,
}

/// Debounce and batching settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferConfig {
    pub debounce: Duration,
    pub flush_interval: Duration,
    /// Items per POST, at least 1.
    pub max_batch: usize,
}

#[derive(Debug)]
enum Slot {
    Waiting { seq: u64 },
    Ready,
}

#[derive(Debug)]
struct Entry {
    change: Change,
    slot: Slot,
    flush_by: Instant,
}

/// The pending changes, one per object.
#[derive(Debug)]
pub struct Buffer {
    config: BufferConfig,
    entries: HashMap<ResourceId, Entry>,
    /// Upserts still inside their window, by due time.
    waiting: BTreeMap<(Instant, u64), ResourceId>,
    /// Changes due, oldest first.
    ready: VecDeque<ResourceId>,
    ready_deletes: usize,
    seq: u64,
}

impl Buffer {
    pub fn new(config: BufferConfig) -> Self {
        Buffer {
            config: BufferConfig {
                max_batch: config.max_batch.max(1),
                ..config
            },
            entries: HashMap::new(),
            waiting: BTreeMap::new(),
            ready: VecDeque::new(),
            ready_deletes: 0,
            seq: 0,
        }
    }

    /// Changes not yet handed to the sender.
    pub fn pending(&self) -> usize {
        self.entries.len()
    }

    pub fn push(&mut self, change: Change, now: Instant) {
        self.push_with(change, now, false)
    }

    /// Changes due but not yet handed to the sender.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Like [`Buffer::push`]; with `immediate` the change is due at once.
    pub fn push_with(&mut self, change: Change, now: Instant, immediate: bool) {
        let id = change.id().clone();
        let is_delete = change.is_delete();
        match self.entries.get_mut(&id) {
            None => {
                let flush_by = if is_delete || immediate {
                    now
                } else {
                    now + self.config.debounce.max(self.config.flush_interval)
                };
                let slot = if is_delete || immediate {
                    self.ready.push_back(id.clone());
                    if is_delete {
                        self.ready_deletes += 1;
                    }
                    Slot::Ready
                } else {
                    self.seq += 1;
                    self.waiting
                        .insert((now + self.config.debounce, self.seq), id.clone());
                    Slot::Waiting { seq: self.seq }
                };
                self.entries.insert(
                    id,
                    Entry {
                        change,
                        slot,
                        flush_by,
                    },
                );
            }
            Some(entry) => {
                let was_delete = entry.change.is_delete();
                entry.change = change;
                match entry.slot {
                    Slot::Ready => match (was_delete, is_delete) {
                        (true, false) => self.ready_deletes -= 1,
                        (false, true) => {
                            self.ready_deletes += 1;
                            entry.flush_by = now;
                        }
                        _ => {}
                    },
                    // The stale `waiting` key is skipped when it comes due (seq mismatch).
                    Slot::Waiting { .. } if is_delete || immediate => {
                        entry.slot = Slot::Ready;
                        entry.flush_by = now;
                        self.ready.push_back(id);
                        if is_delete {
                            self.ready_deletes += 1;
                        }
                    }
                    Slot::Waiting { .. } => {}
                }
            }
        }
    }

    fn promote(&mut self, now: Instant, force: bool) {
        while let Some((&(due, seq), _)) = self.waiting.first_key_value() {
            if due > now && !force {
                break;
            }
            let Some((_, id)) = self.waiting.pop_first() else {
                break;
            };
            if let Some(entry) = self.entries.get_mut(&id) {
                if matches!(entry.slot, Slot::Waiting { seq: s } if s == seq) {
                    entry.slot = Slot::Ready;
                    self.ready.push_back(id);
                }
            }
        }
    }

    /// True when a batch should go now: a full batch is due, a delete is due, the oldest
    /// due change has waited its flush interval, or `force` (shutting down).
    pub fn batch_due(&mut self, now: Instant, force: bool) -> bool {
        self.promote(now, force);
        if self.ready.is_empty() {
            return false;
        }
        force
            || self.ready.len() >= self.config.max_batch
            || self.ready_deletes > 0
            || self
                .ready
                .front()
                .and_then(|id| self.entries.get(id))
                .is_some_and(|e| e.flush_by <= now)
    }

    /// Takes up to `max_batch` due changes, oldest first, if a batch is due.
    pub fn take_batch(&mut self, now: Instant, force: bool) -> Option<Vec<Change>> {
        if !self.batch_due(now, force) {
            return None;
        }
        let mut batch = Vec::with_capacity(self.config.max_batch.min(self.ready.len()));
        while batch.len() < self.config.max_batch {
            let Some(id) = self.ready.pop_front() else {
                break;
            };
            if let Some(entry) = self.entries.remove(&id) {
                if entry.change.is_delete() {
                    self.ready_deletes -= 1;
                }
                batch.push(entry.change);
            }
        }
        Some(batch)
    }

    /// When something next becomes due or must be flushed; `None` when nothing is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        let waiting = self.waiting.first_key_value().map(|(&(due, _), _)| due);
        let ready = self
            .ready
            .front()
            .and_then(|id| self.entries.get(id))
            .map(|e| e.flush_by);
        match (waiting, ready) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Runs the buffer between change detection and the sender. Hands a batch over only when
/// the sender is free (`sender_idle` has a permit; the sender adds one back after each
/// delivered batch), so that while it retries, newer changes keep coalescing here. While
/// more than a high-water mark of changes are due and unsent (an initial sync of many
/// objects, or a long outage), it stops taking new changes, which holds back the watches
/// upstream instead of piling objects up in memory. When `changes` closes (shutdown),
/// everything pending goes out at once, in capped batches.
pub async fn run_buffer(
    config: BufferConfig,
    mut changes: mpsc::Receiver<Pending>,
    batches: mpsc::Sender<Vec<Change>>,
    sender_idle: Arc<Semaphore>,
    metrics: Metrics,
) {
    let high_water = (config.max_batch * 20).max(1_000);
    let mut buffer = Buffer::new(config);
    // A batch goes only when the sender is idle (it holds no turn); until then changes keep
    // arriving here, so the next batch takes everything due (up to the cap) instead of
    // whatever was due the moment the sender picked up its previous batch.
    let mut my_turn: Option<OwnedSemaphorePermit> = None;
    loop {
        let now = Instant::now();
        let due = buffer.batch_due(now, false);
        let deadline = if due { None } else { buffer.next_deadline() };
        tokio::select! {
            biased;
            turn = sender_idle.clone().acquire_owned(), if due && my_turn.is_none() => {
                let Ok(turn) = turn else { return };
                my_turn = Some(turn);
            }
            permit = batches.reserve(), if due && my_turn.is_some() => {
                let Ok(permit) = permit else { return };
                if let Some(batch) = buffer.take_batch(Instant::now(), false) {
                    permit.send(batch);
                    // The sender gives the turn back once this batch is delivered.
                    if let Some(turn) = my_turn.take() {
                        turn.forget();
                    }
                }
            }
            change = changes.recv(), if buffer.ready_len() < high_water => match change {
                Some(p) => buffer.push_with(p.change, Instant::now(), p.immediate),
                None => break,
            },
            _ = sleep_until_some(deadline) => {}
        }
        metrics.pending_changes.set(buffer.pending() as i64);
    }
    while let Some(batch) = buffer.take_batch(Instant::now(), true) {
        metrics.pending_changes.set(buffer.pending() as i64);
        if batches.send(batch).await.is_err() {
            return;
        }
    }
    metrics.pending_changes.set(0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_model::ResourceInstance;

    fn deployment(name: &str, app: &str) -> ResourceInstance {
        sync_model::fixtures::deployment("default", name, app)
    }

    const WINDOW: Duration = Duration::from_secs(10);

    /// A sender that is always idle: only the channel's one slot holds batches back.
    fn idle() -> Arc<Semaphore> {
        Arc::new(Semaphore::new(Semaphore::MAX_PERMITS))
    }

    fn config(max_batch: usize) -> BufferConfig {
        BufferConfig {
            debounce: WINDOW,
            flush_interval: Duration::from_secs(5),
            max_batch,
        }
    }

    fn upsert(name: &str, app: &str) -> Change {
        Change::Upsert(deployment(name, app))
    }

    fn pending(change: Change) -> Pending {
        Pending {
            change,
            immediate: false,
        }
    }

    fn delete(name: &str) -> Change {
        Change::Delete(deployment(name, "x").id)
    }

    #[tokio::test(start_paused = true)]
    async fn an_upsert_waits_its_window_and_the_last_state_wins() {
        let mut b = Buffer::new(config(50));
        let t0 = Instant::now();
        b.push(upsert("web", "v1"), t0);
        b.push(upsert("web", "v2"), t0 + Duration::from_secs(3));
        b.push(upsert("web", "v3"), t0 + Duration::from_secs(6));
        assert_eq!(b.pending(), 1);
        assert!(b
            .take_batch(t0 + Duration::from_millis(9_999), false)
            .is_none());
        assert_eq!(b.next_deadline(), Some(t0 + WINDOW));
        let batch = b.take_batch(t0 + WINDOW, false).unwrap();
        assert_eq!(batch, vec![upsert("web", "v3")]);
        assert_eq!(b.pending(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_delete_cancels_a_pending_upsert_and_goes_out_at_once() {
        let mut b = Buffer::new(config(50));
        let t0 = Instant::now();
        b.push(upsert("web", "v1"), t0);
        b.push(delete("web"), t0 + Duration::from_secs(1));
        let batch = b.take_batch(t0 + Duration::from_secs(1), false).unwrap();
        assert_eq!(batch, vec![delete("web")]);
        // The cancelled upsert does not come back when its window would have ended.
        assert!(b.take_batch(t0 + WINDOW, false).is_none());
        assert_eq!(b.pending(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_re_create_after_a_pending_delete_is_an_upsert() {
        let mut b = Buffer::new(config(50));
        let t0 = Instant::now();
        b.push(delete("web"), t0);
        b.push(upsert("web", "again"), t0);
        let batch = b.take_batch(t0 + WINDOW, false).unwrap();
        assert_eq!(batch, vec![upsert("web", "again")]);
    }

    #[tokio::test(start_paused = true)]
    async fn listed_objects_skip_the_window_but_still_coalesce() {
        let mut b = Buffer::new(config(50));
        let t0 = Instant::now();
        b.push(upsert("web", "v1"), t0);
        b.push_with(upsert("web", "v2"), t0, true);
        b.push_with(upsert("db", "v1"), t0, true);
        let batch = b.take_batch(t0, false).unwrap();
        assert_eq!(batch, vec![upsert("web", "v2"), upsert("db", "v1")]);
        assert!(b.take_batch(t0 + WINDOW, false).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn batches_never_exceed_the_cap() {
        let mut b = Buffer::new(config(50));
        let t0 = Instant::now();
        for i in 0..120 {
            b.push(upsert(&format!("d{i}"), "a"), t0);
        }
        let sizes: Vec<usize> = std::iter::from_fn(|| b.take_batch(t0 + WINDOW, false))
            .map(|batch| batch.len())
            .collect();
        assert_eq!(sizes, vec![50, 50, 20]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_flush_interval_bounds_the_wait_when_there_is_no_debounce() {
        let mut b = Buffer::new(BufferConfig {
            debounce: Duration::ZERO,
            flush_interval: Duration::from_secs(5),
            max_batch: 50,
        });
        let t0 = Instant::now();
        b.push(upsert("a", "a"), t0);
        b.push(upsert("b", "a"), t0 + Duration::from_secs(2));
        assert!(b.take_batch(t0 + Duration::from_secs(4), false).is_none());
        assert_eq!(
            b.take_batch(t0 + Duration::from_secs(5), false)
                .unwrap()
                .len(),
            2
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_flushes_everything_without_waiting_for_windows() {
        let (tx, rx) = mpsc::channel(16);
        let (btx, mut brx) = mpsc::channel(1);
        let task = tokio::spawn(run_buffer(config(2), rx, btx, idle(), Metrics::default()));
        for i in 0..3 {
            tx.send(pending(upsert(&format!("d{i}"), "a")))
                .await
                .unwrap();
        }
        let t0 = Instant::now();
        drop(tx);
        let mut got = Vec::new();
        while let Some(batch) = brx.recv().await {
            assert!(batch.len() <= 2);
            got.extend(batch);
        }
        task.await.unwrap();
        assert_eq!(got.len(), 3);
        assert!(
            Instant::now() - t0 < Duration::from_secs(1),
            "shutdown waited for the window"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn changes_coalesce_while_the_sender_is_busy() {
        let (tx, rx) = mpsc::channel(16);
        let (btx, mut brx) = mpsc::channel(1);
        tokio::spawn(run_buffer(config(50), rx, btx, idle(), Metrics::default()));
        tx.send(pending(upsert("a", "v1"))).await.unwrap();
        let first = brx.recv().await.unwrap();
        assert_eq!(first, vec![upsert("a", "v1")]);
        // The sender holds the channel's one slot: nothing more is handed over...
        tx.send(pending(upsert("b", "v1"))).await.unwrap();
        tokio::time::sleep(WINDOW * 2).await;
        // ...and while it is busy, later states of the same object replace earlier ones.
        tx.send(pending(upsert("c", "v1"))).await.unwrap();
        tx.send(pending(upsert("c", "v2"))).await.unwrap();
        tokio::time::sleep(WINDOW * 2).await;
        let mut rest = Vec::new();
        while rest.len() < 2 {
            rest.extend(brx.recv().await.unwrap());
        }
        assert_eq!(rest.len(), 2);
        assert!(rest.contains(&upsert("c", "v2")));
        assert!(!rest.contains(&upsert("c", "v1")));
    }
}
