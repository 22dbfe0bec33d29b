//! Each cluster's objects by health, kept in its record, so that the list of clusters
//! (`GET /api/v1/clusters`, `cw clusters`, the overview page) reads a few records instead of
//! every document's metadata: at 250,000 objects a pass over the index takes seconds, a
//! record read milliseconds.
//!
//! A sync marks its cluster for a recount; one task per process recounts the marked
//! clusters one at a time (the store tallies the cluster's objects by health) and merges the
//! counts into the record, resting eight times as long as each recount took, so that
//! counting never takes more than a ninth of the store's time however busy the fleet is (a
//! cluster of 5,000 objects took about 0.4 s to tally on Chroma: docs/scale.md). A reader uses a
//! record's counts only when they add up: this process has no recount pending for the
//! cluster, and the counts of all clusters sum to the instances the store holds (a document
//! outside every record, or counts another replica has not yet refreshed, make the reader
//! count the index itself, as before the records held counts).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use sync_model::ClusterId;

use super::{has_record, Inner};
use crate::document::{CLUSTER_KEY, HEALTH_KEY};
use crate::store::{Filter, MetaValue, Metadata, StoreError, Tally, VectorStore};

/// The record's counts: a JSON object of health (`""` for objects without one) to count.
pub const OBJECTS_BY_HEALTH_KEY: &str = "cw_objects_by_health";
/// When the counts were taken (RFC 3339, UTC).
pub const COUNTED_AT_KEY: &str = "cw_counted_at";

/// The shortest rest between two recounts.
const MIN_REST: Duration = Duration::from_millis(250);
/// The rest after a recount, as a multiple of the time it took.
const REST_FACTOR: u32 = 8;
/// The rest after a failed recount (the cluster stays marked).
const FAILED_REST: Duration = Duration::from_secs(1);

/// The clusters this process has a recount pending or running for.
#[derive(Debug, Default)]
pub(super) struct Recounts {
    state: Mutex<RecountState>,
    wake: Arc<tokio::sync::Notify>,
}

#[derive(Debug, Default)]
struct RecountState {
    marked: BTreeSet<ClusterId>,
    running: Option<ClusterId>,
    worker: bool,
}

impl Recounts {
    /// Whether this process has no recount of `cluster` pending or running.
    pub(super) fn settled(&self, cluster: &ClusterId) -> bool {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        !s.marked.contains(cluster) && s.running.as_ref() != Some(cluster)
    }

    /// Marks `cluster`; true when no worker runs yet (the caller starts one).
    fn mark(&self, cluster: &ClusterId) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.marked.insert(cluster.clone());
        let start = !s.worker;
        s.worker = true;
        drop(s);
        self.wake.notify_one();
        start
    }

    /// Forgets `cluster` (retired): nothing to count.
    pub(super) fn forget(&self, cluster: &ClusterId) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.marked.remove(cluster);
    }

    /// The next marked cluster, now running.
    fn take(&self) -> Option<ClusterId> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let next = s.marked.pop_first();
        s.running = next.clone();
        next
    }

    fn done(&self, cluster: &ClusterId, failed: bool) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.running = None;
        if failed {
            s.marked.insert(cluster.clone());
        }
    }
}

/// Marks `cluster` for a recount, starting this process's recount task if none runs.
pub(super) fn mark(inner: &Arc<Inner>, cluster: &ClusterId) {
    if inner.recounts.mark(cluster) {
        let weak = Arc::downgrade(inner);
        tokio::spawn(recount_forever(weak));
    }
}

/// Recounts marked clusters until the registry is dropped.
async fn recount_forever(inner: Weak<Inner>) {
    loop {
        let Some(registry) = inner.upgrade() else {
            return;
        };
        let Some(cluster) = registry.recounts.take() else {
            let wake = registry.recounts.wake.clone();
            drop(registry);
            // Wake up now and then to notice the registry is gone.
            let _ = tokio::time::timeout(Duration::from_secs(30), wake.notified()).await;
            continue;
        };
        let started = Instant::now();
        let result = recount(&registry, &cluster).await;
        let failed = result.is_err();
        if let Err(e) = result {
            tracing::debug!(%cluster, error = %e, "could not recount the cluster's objects; trying again");
        }
        registry.recounts.done(&cluster, failed);
        drop(registry);
        let rest = if failed {
            FAILED_REST
        } else {
            (started.elapsed() * REST_FACTOR).max(MIN_REST)
        };
        tokio::time::sleep(rest).await;
    }
}

/// Tallies `cluster`'s objects by health and merges them into its record (none is made:
/// a cluster without a record yet is counted when its record is written).
async fn recount(inner: &Inner, cluster: &ClusterId) -> Result<(), StoreError> {
    let store = inner.store.as_ref();
    let instances = match inner.instances_now.get() {
        Some(now) => now(),
        None => inner.instances.clone(),
    };
    let filter = Filter::Eq(CLUSTER_KEY.into(), cluster.to_string());
    let tally = store
        .tally(&instances, Some(&filter), &[HEALTH_KEY])
        .await?;
    if !has_record(store, &inner.collection, cluster.as_str()).await? {
        return Ok(());
    }
    let counted = by_health(tally);
    let mut metadata = Metadata::new();
    metadata.insert(
        OBJECTS_BY_HEALTH_KEY.into(),
        MetaValue::Str(serde_json::to_string(&counted).unwrap_or_default()),
    );
    metadata.insert(
        COUNTED_AT_KEY.into(),
        MetaValue::Str(Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)),
    );
    store
        .merge_metadata(&inner.collection, &[(cluster.to_string(), metadata)])
        .await
}

/// A tally by health as the record keeps it.
pub fn by_health(tally: Tally) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (values, n) in tally {
        let health = values.into_iter().next().flatten().unwrap_or_default();
        *out.entry(health).or_default() += n;
    }
    out
}

/// The counts a record holds, if it holds well-formed ones.
pub(super) fn read_counts(metadata: &Metadata) -> Option<BTreeMap<String, usize>> {
    match metadata.get(OBJECTS_BY_HEALTH_KEY) {
        Some(MetaValue::Str(s)) => serde_json::from_str(s).ok(),
        _ => None,
    }
}

/// One cluster's objects by health, counted by the store now.
pub async fn count_now(
    store: &dyn VectorStore,
    instances: &str,
    cluster: &ClusterId,
) -> Result<BTreeMap<String, usize>, StoreError> {
    let filter = Filter::Eq(CLUSTER_KEY.into(), cluster.to_string());
    Ok(by_health(
        store.tally(instances, Some(&filter), &[HEALTH_KEY]).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recount_is_pending_from_its_mark_until_it_has_run() {
        let recounts = Recounts::default();
        let alpha = ClusterId::new("alpha").unwrap();
        assert!(recounts.settled(&alpha));
        assert!(recounts.mark(&alpha), "the first mark starts the worker");
        assert!(!recounts.mark(&alpha), "one worker per process");
        assert!(!recounts.settled(&alpha));
        assert_eq!(recounts.take(), Some(alpha.clone()));
        // Running: still not settled; a sync meanwhile marks it again.
        assert!(!recounts.settled(&alpha));
        recounts.done(&alpha, false);
        assert!(recounts.settled(&alpha));
        // A failed recount leaves it marked.
        recounts.mark(&alpha);
        recounts.take();
        recounts.done(&alpha, true);
        assert!(!recounts.settled(&alpha));
        assert_eq!(recounts.take(), Some(alpha));
    }

    #[test]
    fn counts_are_kept_as_a_json_object_by_health() {
        let tally: Tally = [
            (vec![Some("Current".to_string())], 3),
            (vec![None], 2),
            (vec![Some("Failed".to_string())], 1),
        ]
        .into_iter()
        .collect();
        let counted = by_health(tally);
        let mut metadata = Metadata::new();
        metadata.insert(
            OBJECTS_BY_HEALTH_KEY.into(),
            MetaValue::Str(serde_json::to_string(&counted).unwrap()),
        );
        let read = read_counts(&metadata).expect("counts");
        assert_eq!(read["Current"], 3);
        assert_eq!(read[""], 2);
        assert_eq!(read["Failed"], 1);
        metadata.insert(OBJECTS_BY_HEALTH_KEY.into(), MetaValue::Str("{".into()));
        assert_eq!(read_counts(&metadata), None);
    }
}
