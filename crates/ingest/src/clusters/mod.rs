//! The clusters of the index as records in the store: per cluster, when a sync last
//! changed its objects (`last sync`) and when its watcher was last heard from (`last
//! contact`: a sync, an empty heartbeat sync, a hashes read). The records live in the store,
//! not in a server's memory, so they survive restarts and every `cw serve` replica of one
//! store answers the same; a cluster whose watcher has died goes stale ([`is_stale`]).
//! Retiring a cluster ([`retire`]) removes its record with its documents.
//!
//! Layout: one record per cluster, id = the cluster id, in a collection beside the
//! instances named [`records_collection`] (`instances-clusters` for `instances`). Chroma
//! and Qdrant keep a vector with every document, so each record carries the same
//! one-dimensional unit vector ([`RECORD_VECTOR`], model [`RECORD_MODEL_ID`]); nothing ever
//! searches it by similarity. Times are RFC 3339 strings in UTC.
//!
//! Writes are throttled: one process writes a cluster's contact at most once per
//! [`WRITE_INTERVAL`], and its sync too (a watcher's busy minute costs a couple of dozen
//! small writes, not one per batch); what is held back is written at the end of the
//! interval, so a stored time lags the true one by that much at most. Each record also
//! keeps its cluster's objects by health ([`counts`]), recounted after syncs.

pub mod counts;
pub mod retire;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use sync_model::ClusterId;

use crate::document::CLUSTER_KEY;
use crate::embed::ModelInfo;
use crate::store::{MetaValue, Metadata, Record, StoreError, VectorStore};

/// The time of the latest sync that carried changes.
pub const LAST_SYNC_KEY: &str = "cw_last_sync";
/// The time the cluster's watcher was last heard from.
pub const LAST_CONTACT_KEY: &str = "cw_last_contact";

/// One process writes a cluster's record at most this often.
pub const WRITE_INTERVAL: Duration = Duration::from_secs(5);

/// A cluster not heard from for longer than this is stale, unless the server is told
/// otherwise (`--stale-after-secs`, `CW_STALE_AFTER_SECS`): fifteen of the watcher's
/// default heartbeats (`HEARTBEAT_INTERVAL_SECS`, 60 s), so a server restart or a slow
/// minute never marks a live cluster.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(15 * 60);

/// The "model" of the records' collection: it holds no embeddings.
pub const RECORD_MODEL_ID: &str = "cw:cluster-record";
/// The vector of every record (the stores keep one per document).
pub const RECORD_VECTOR: [f32; 1] = [1.0];
/// The content hash of every record (the stores keep one per document).
const RECORD_HASH: &str = "cw-cluster-record-v1";

/// The collection of the cluster records that describe the instances in `instances`.
pub fn records_collection(instances: &str) -> String {
    format!("{instances}-clusters")
}

fn record_model() -> ModelInfo {
    ModelInfo {
        id: RECORD_MODEL_ID.into(),
        dimension: RECORD_VECTOR.len(),
    }
}

/// The instances collection to count now.
type InstancesNow = Arc<dyn Fn() -> String + Send + Sync>;

/// What was heard from a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// A sync that carried changes: a sync and a contact.
    Sync,
    /// Any other request of its watcher (an empty sync, a hashes read): a contact.
    Contact,
}

/// One cluster's record as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterRecord {
    pub last_sync: Option<DateTime<Utc>>,
    pub last_contact: Option<DateTime<Utc>>,
    /// Its objects by health when last recounted ([`counts`]; `""`: no health).
    pub objects_by_health: Option<BTreeMap<String, usize>>,
}

/// The stale rule: a cluster never heard from, or not for longer than `stale_after`.
pub fn is_stale(
    last_contact: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    stale_after: Duration,
) -> bool {
    match last_contact {
        None => true,
        Some(at) => (now - at).to_std().is_ok_and(|age| age > stale_after),
    }
}

/// Every cluster's record in `collection` (none before the first is written).
pub async fn read_records(
    store: &dyn VectorStore,
    collection: &str,
) -> Result<BTreeMap<ClusterId, ClusterRecord>, StoreError> {
    let count = store.count(collection).await?;
    if count == 0 {
        return Ok(BTreeMap::new());
    }
    let hits = store.get(collection, None, count).await?;
    Ok(hits
        .into_iter()
        .filter_map(|h| {
            let id = ClusterId::new(&h.id).ok()?;
            let time = |key: &str| match h.metadata.get(key) {
                Some(MetaValue::Str(s)) => DateTime::parse_from_rfc3339(s)
                    .ok()
                    .map(|t| t.with_timezone(&Utc)),
                _ => None,
            };
            let record = ClusterRecord {
                last_sync: time(LAST_SYNC_KEY),
                last_contact: time(LAST_CONTACT_KEY),
                objects_by_health: counts::read_counts(&h.metadata),
            };
            Some((id, record))
        })
        .collect())
}

/// Whether `collection` holds a record of `cluster`.
pub async fn has_record(
    store: &dyn VectorStore,
    collection: &str,
    cluster: &str,
) -> Result<bool, StoreError> {
    let hashes = store
        .content_hashes(collection, &[cluster.to_string()])
        .await?;
    Ok(!hashes.is_empty())
}

/// Writes what is heard from each cluster into its record, throttled per cluster. Cheap to
/// clone; the clones share the throttle.
#[derive(Clone)]
pub struct ClusterRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn VectorStore>,
    /// The instances the records describe, and the records' collection.
    instances: String,
    collection: String,
    /// Where the instances are now, when an index generation other than the configured
    /// name's may hold them (`Pipeline::with_active`): what a recount counts.
    instances_now: std::sync::OnceLock<InstancesNow>,
    recounts: counts::Recounts,
    /// Whether the collection is prepared in this process (a store writes only to those);
    /// cleared by a failed write, so that a collection lost meanwhile is made again.
    prepared: AtomicBool,
    noted: Mutex<HashMap<ClusterId, Noted>>,
    write_interval: Duration,
}

/// What this process last wrote of a cluster, and what it has heard since.
#[derive(Debug, Default)]
struct Noted {
    /// When a record write (of the contact, and of a sync if one was heard) last went out.
    contact_written: Option<Instant>,
    /// When a write with a sync last went out.
    sync_written: Option<Instant>,
    /// The latest contact heard and not yet written.
    contact: Option<DateTime<Utc>>,
    /// The latest sync heard and not yet written.
    sync: Option<DateTime<Utc>>,
    /// A write of what is pending is scheduled for the end of the interval.
    flush_scheduled: bool,
}

/// One write of a record: the latest contact and, if one was heard since the last write,
/// the latest sync.
#[derive(Debug, Clone, Copy)]
struct Due {
    contact: Option<DateTime<Utc>>,
    sync: Option<DateTime<Utc>>,
}

/// What to do with what was just heard.
enum Next {
    Write(Due),
    /// Write what is pending then (nothing is scheduled yet).
    FlushAt(Instant),
    /// A flush is scheduled already.
    Wait,
}

impl Noted {
    /// Takes what is pending for a write going out `at`.
    fn take(&mut self, at: Instant) -> Due {
        let due = Due {
            contact: self.contact.take(),
            sync: self.sync.take(),
        };
        self.contact_written = Some(at);
        if due.sync.is_some() {
            self.sync_written = Some(at);
        }
        due
    }

    /// After a failed write: `due` is pending again, and the next request writes at once.
    fn restore(&mut self, due: Due) {
        self.contact = self.contact.max(due.contact);
        self.sync = self.sync.max(due.sync);
        self.contact_written = None;
        self.sync_written = None;
    }
}

fn rfc3339(t: DateTime<Utc>) -> MetaValue {
    MetaValue::Str(t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

impl ClusterRegistry {
    /// The records of the clusters whose instances are in `instances`.
    pub fn new(store: Arc<dyn VectorStore>, instances: &str) -> Self {
        Self::with_write_interval(store, instances, WRITE_INTERVAL)
    }

    /// Writing a cluster's record at most once per `interval` (tests shorten it).
    pub fn with_write_interval(
        store: Arc<dyn VectorStore>,
        instances: &str,
        interval: Duration,
    ) -> Self {
        ClusterRegistry {
            inner: Arc::new(Inner {
                store,
                instances: instances.to_string(),
                collection: records_collection(instances),
                instances_now: std::sync::OnceLock::new(),
                recounts: counts::Recounts::default(),
                prepared: AtomicBool::new(false),
                noted: Mutex::new(HashMap::new()),
                write_interval: interval,
            }),
        }
    }

    pub fn collection(&self) -> &str {
        &self.inner.collection
    }

    /// Every cluster's record.
    pub async fn records(&self) -> Result<BTreeMap<ClusterId, ClusterRecord>, StoreError> {
        read_records(self.inner.store.as_ref(), &self.inner.collection).await
    }

    /// Notes what was heard from `cluster` now. Its record is written at once unless this
    /// process wrote it less than the write interval ago; a sync is written at once unless
    /// one was written less than the interval ago. What is held back is written at the end
    /// of the interval (a task of its own), so a burst ends recorded without waiting for the
    /// next request. A failed write is logged, not returned: the request that was heard
    /// succeeded, and the next one writes again.
    pub async fn heard(&self, cluster: &ClusterId, what: Heard) {
        match self.next(cluster, what) {
            Next::Write(due) => self.write_logged(cluster, due).await,
            Next::FlushAt(at) => {
                let (registry, cluster) = (self.clone(), cluster.clone());
                tokio::spawn(async move {
                    tokio::time::sleep_until(at.into()).await;
                    registry.flush(&cluster).await;
                });
            }
            Next::Wait => {}
        }
        if what == Heard::Sync {
            counts::mark(&self.inner, cluster);
        }
    }

    /// Counts each cluster's objects in the collection `now` names at the time of the count
    /// (the active index generation's), instead of the configured one. Set once.
    pub fn count_in(&self, now: impl Fn() -> String + Send + Sync + 'static) {
        let _ = self.inner.instances_now.set(Arc::new(now));
    }

    /// Whether this process has no recount of `cluster`'s objects pending: the counts in
    /// its record include every sync this process applied.
    pub fn counts_settled(&self, cluster: &ClusterId) -> bool {
        self.inner.recounts.settled(cluster)
    }

    /// What to do now that `what` was heard from `cluster`.
    fn next(&self, cluster: &ClusterId, what: Heard) -> Next {
        let now = Utc::now();
        let at = Instant::now();
        let interval = self.inner.write_interval;
        let recent = |t: Option<Instant>| t.is_some_and(|t| at.duration_since(t) < interval);
        let mut noted = self.inner.noted.lock().unwrap_or_else(|p| p.into_inner());
        let n = noted.entry(cluster.clone()).or_default();
        n.contact = Some(now);
        if what == Heard::Sync {
            n.sync = Some(now);
        }
        if !recent(n.contact_written) || (n.sync.is_some() && !recent(n.sync_written)) {
            return Next::Write(n.take(at));
        }
        if n.flush_scheduled {
            return Next::Wait;
        }
        n.flush_scheduled = true;
        // Every write sets `contact_written`, so a pending sync is due first.
        let since = if n.sync.is_some() {
            n.sync_written
        } else {
            n.contact_written
        };
        Next::FlushAt(since.unwrap_or(at) + interval)
    }

    /// Writes what was held back of `cluster`, if anything still is.
    async fn flush(&self, cluster: &ClusterId) {
        let due = {
            let mut noted = self.inner.noted.lock().unwrap_or_else(|p| p.into_inner());
            let Some(n) = noted.get_mut(cluster) else {
                return; // forgotten meanwhile (the cluster was retired)
            };
            n.flush_scheduled = false;
            if n.contact.is_none() && n.sync.is_none() {
                return;
            }
            n.take(Instant::now())
        };
        self.write_logged(cluster, due).await;
    }

    async fn write_logged(&self, cluster: &ClusterId, due: Due) {
        if let Err(e) = self.write(cluster, due).await {
            self.inner.prepared.store(false, Ordering::Relaxed);
            tracing::warn!(%cluster, error = %e, "could not record the cluster's last contact; the next request tries again");
            let mut noted = self.inner.noted.lock().unwrap_or_else(|p| p.into_inner());
            noted.entry(cluster.clone()).or_default().restore(due);
        }
    }

    /// Merges the times into the stored record, or creates it.
    async fn write(&self, cluster: &ClusterId, due: Due) -> Result<(), StoreError> {
        let store = self.inner.store.as_ref();
        let collection = &self.inner.collection;
        let mut metadata = Metadata::new();
        if let Some(contact) = due.contact {
            metadata.insert(LAST_CONTACT_KEY.into(), rfc3339(contact));
        }
        if let Some(sync) = due.sync {
            metadata.insert(LAST_SYNC_KEY.into(), rfc3339(sync));
        }
        // Only the keys heard are merged: a replica that heard a contact never overwrites
        // the sync another one recorded.
        if has_record(store, collection, cluster.as_str()).await? {
            return store
                .merge_metadata(collection, &[(cluster.to_string(), metadata)])
                .await;
        }
        if !self.inner.prepared.load(Ordering::Relaxed) {
            store.ensure_collection(collection, &record_model()).await?;
            self.inner.prepared.store(true, Ordering::Relaxed);
        }
        metadata.insert(CLUSTER_KEY.into(), MetaValue::Str(cluster.to_string()));
        let record = Record {
            id: cluster.to_string(),
            document: format!("cluster {cluster}"),
            embedding: RECORD_VECTOR.to_vec(),
            metadata,
            content_hash: RECORD_HASH.into(),
        };
        store.upsert(collection, &[record]).await
    }

    /// Deletes `cluster`'s record, and forgets what this process wrote of it (its next
    /// contact writes a new one); whether there was one.
    pub async fn forget(&self, cluster: &ClusterId) -> Result<bool, StoreError> {
        if let Ok(mut noted) = self.inner.noted.lock() {
            noted.remove(cluster);
        }
        self.inner.recounts.forget(cluster);
        let store = self.inner.store.as_ref();
        let collection = &self.inner.collection;
        let existed = has_record(store, collection, cluster.as_str()).await?;
        if existed {
            store.delete(collection, &[cluster.to_string()]).await?;
        }
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_is_stale_when_never_heard_from_or_not_for_longer_than_the_threshold() {
        let now = Utc::now();
        let limit = Duration::from_secs(900);
        assert!(is_stale(None, now, limit));
        assert!(!is_stale(
            Some(now - chrono::Duration::seconds(899)),
            now,
            limit
        ));
        assert!(is_stale(
            Some(now - chrono::Duration::seconds(901)),
            now,
            limit
        ));
        // A contact a replica with a clock ahead wrote is not stale.
        assert!(!is_stale(
            Some(now + chrono::Duration::seconds(5)),
            now,
            limit
        ));
    }

    #[test]
    fn records_live_beside_the_instances_they_describe() {
        assert_eq!(records_collection("instances"), "instances-clusters");
    }
}
