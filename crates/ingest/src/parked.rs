//! Parked instances: upserts that the embedding provider or the store refuses whatever is
//! retried, while their batch-mates were stored. Each is logged once, counted, and listed
//! by `GET /api/v1/instances/parked` until the same id is stored (its next change, or the
//! next resync, which finds it missing from the stored hashes and sends it again) or
//! deleted. Kept in the store, not in a server's memory: every `cw serve` replica of one
//! store lists the same entries, an object parked by one replica and stored through another
//! leaves the list, and a restart keeps them.
//!
//! Layout: one record per parked object in a collection beside the instances,
//! [`parked_collection`] (`instances-parked` for `instances`), id = the object's stored
//! (cluster-qualified) id, document = the entry as JSON (the API's answer), metadata = its
//! cluster and parking time, content hash = that of the refused version. Like the cluster
//! records (`crate::clusters`), every record carries the same one-dimensional vector
//! ([`PARKED_MODEL_ID`]); nothing searches it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sync_model::{ClusterId, ParkedInstance, ResourceInstance};

use crate::document::CLUSTER_KEY;
use crate::embed::ModelInfo;
use crate::store::{Filter, MetaValue, Metadata, Record, StoreError, VectorStore};

/// Parked entries kept at most; beyond it the oldest are forgotten (they are still missing
/// from the store, so a resync sends them again).
pub const MAX_PARKED: usize = 10_000;
/// A provider's error message is kept up to this many bytes.
const MAX_REASON_BYTES: usize = 500;
/// The "model" of the parked collection: it holds no embeddings.
pub const PARKED_MODEL_ID: &str = "cw:parked-instance";
const PARKED_VECTOR: [f32; 1] = [1.0];
/// When the object was parked (RFC 3339, UTC): what the oldest is found by.
const PARKED_AT_KEY: &str = "cw_parked_at";

/// The collection of the parked objects of the instances in `instances`.
pub fn parked_collection(instances: &str) -> String {
    format!("{instances}-parked")
}

fn model() -> ModelInfo {
    ModelInfo {
        id: PARKED_MODEL_ID.into(),
        dimension: PARKED_VECTOR.len(),
    }
}

/// The entry of `instance` of `cluster`, refused now for `reason`.
pub fn entry(instance: &ResourceInstance, cluster: &ClusterId, reason: &str) -> ParkedInstance {
    ParkedInstance {
        id: instance.id.clone(),
        cluster: cluster.to_string(),
        kind: instance.kind.clone(),
        namespace: instance.namespace.clone(),
        name: instance.name.clone(),
        reason: shorten(reason).to_string(),
        parked_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        content_hash: instance.content_hash(),
    }
}

/// The parked objects of one instances collection, in the store. Cheap to clone.
#[derive(Clone)]
pub struct ParkedInstances {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn VectorStore>,
    collection: String,
    /// Whether the collection is prepared in this process (a store writes only to those);
    /// cleared by a failed write, so that a collection lost meanwhile is made again.
    prepared: AtomicBool,
    max: usize,
}

impl ParkedInstances {
    /// The parked objects of the instances in `instances`.
    pub fn new(store: Arc<dyn VectorStore>, instances: &str) -> Self {
        Self::with_limit(store, instances, MAX_PARKED)
    }

    /// Keeping at most `max` entries (tests lower it).
    pub fn with_limit(store: Arc<dyn VectorStore>, instances: &str, max: usize) -> Self {
        ParkedInstances {
            inner: Arc::new(Inner {
                store,
                collection: parked_collection(instances),
                prepared: AtomicBool::new(false),
                max,
            }),
        }
    }

    pub fn collection(&self) -> &str {
        &self.inner.collection
    }

    /// Parks `entries` (each replaces an earlier entry of the same object), then forgets
    /// the oldest beyond the limit.
    pub async fn park(&self, entries: &[ParkedInstance]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let records: Vec<Record> = entries.iter().filter_map(to_record).collect();
        if let Err(e) = self.upsert(&records).await {
            self.inner.prepared.store(false, Ordering::Relaxed);
            return Err(e);
        }
        self.trim().await
    }

    async fn upsert(&self, records: &[Record]) -> Result<(), StoreError> {
        let store = self.inner.store.as_ref();
        if !self.inner.prepared.load(Ordering::Relaxed) {
            store
                .ensure_collection(&self.inner.collection, &model())
                .await?;
            self.inner.prepared.store(true, Ordering::Relaxed);
        }
        store.upsert(&self.inner.collection, records).await
    }

    /// Forgets the oldest entries beyond the limit.
    async fn trim(&self) -> Result<(), StoreError> {
        let store = self.inner.store.as_ref();
        let count = store.count(&self.inner.collection).await?;
        if count <= self.inner.max {
            return Ok(());
        }
        let mut all = store.get(&self.inner.collection, None, count).await?;
        all.sort_by(|a, b| parked_at(&a.metadata).cmp(parked_at(&b.metadata)));
        let oldest: Vec<String> = all
            .into_iter()
            .take(count - self.inner.max)
            .map(|h| h.id)
            .collect();
        store.delete(&self.inner.collection, &oldest).await
    }

    /// Forgets the entries of the stored (cluster-qualified) `ids`, stored or deleted
    /// since; returns how many there were. One read when none of them is parked.
    pub async fn clear(&self, ids: &[String]) -> Result<usize, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let store = self.inner.store.as_ref();
        let parked: Vec<String> = store
            .content_hashes(&self.inner.collection, ids)
            .await?
            .into_keys()
            .collect();
        if !parked.is_empty() {
            store.delete(&self.inner.collection, &parked).await?;
        }
        Ok(parked.len())
    }

    /// Forgets every entry of `cluster` (retired); returns how many there were.
    pub async fn clear_cluster(&self, cluster: &ClusterId) -> Result<usize, StoreError> {
        let store = self.inner.store.as_ref();
        let filter = Filter::Eq(CLUSTER_KEY.into(), cluster.to_string());
        let ids: Vec<String> = store
            .all_hashes(&self.inner.collection, Some(&filter))
            .await?
            .into_keys()
            .collect();
        if !ids.is_empty() {
            store.delete(&self.inner.collection, &ids).await?;
        }
        Ok(ids.len())
    }

    /// Every parked instance, oldest first.
    pub async fn list(&self) -> Result<Vec<ParkedInstance>, StoreError> {
        let store = self.inner.store.as_ref();
        let count = store.count(&self.inner.collection).await?;
        if count == 0 {
            return Ok(Vec::new());
        }
        let mut out: Vec<ParkedInstance> = store
            .get(&self.inner.collection, None, count)
            .await?
            .into_iter()
            .filter_map(|h| serde_json::from_str(&h.document).ok())
            .collect();
        out.sort_by(|a, b| {
            a.parked_at
                .cmp(&b.parked_at)
                .then(a.cluster.cmp(&b.cluster))
                .then(a.id.cmp(&b.id))
        });
        Ok(out)
    }

    /// How many objects are parked.
    pub async fn len(&self) -> Result<usize, StoreError> {
        self.inner.store.count(&self.inner.collection).await
    }
}

/// The record of `entry`; `None` for a cluster name that is no cluster id (never: the
/// pipeline makes entries of checked payloads).
fn to_record(entry: &ParkedInstance) -> Option<Record> {
    let cluster = ClusterId::new(&entry.cluster).ok()?;
    let mut metadata = Metadata::new();
    metadata.insert(CLUSTER_KEY.into(), MetaValue::Str(entry.cluster.clone()));
    metadata.insert(
        PARKED_AT_KEY.into(),
        MetaValue::Str(entry.parked_at.clone()),
    );
    Some(Record {
        id: cluster.qualify(&entry.id),
        document: serde_json::to_string(entry).ok()?,
        embedding: PARKED_VECTOR.to_vec(),
        metadata,
        content_hash: entry.content_hash.clone(),
    })
}

fn parked_at(metadata: &Metadata) -> &str {
    match metadata.get(PARKED_AT_KEY) {
        Some(MetaValue::Str(s)) => s,
        _ => "",
    }
}

fn shorten(reason: &str) -> &str {
    crate::embed::limits::cut_to_bytes(reason, MAX_REASON_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedStore;

    fn store(dir: &tempfile::TempDir) -> Arc<dyn VectorStore> {
        Arc::new(EmbeddedStore::open_in_dir(dir.path()).expect("embedded store"))
    }

    /// Parked instances on an embedded store in `dir`, and two clusters.
    fn parked_in(dir: &tempfile::TempDir) -> (ParkedInstances, ClusterId, ClusterId) {
        (
            ParkedInstances::new(store(dir), "instances"),
            ClusterId::new("prod").unwrap(),
            ClusterId::new("dev").unwrap(),
        )
    }

    #[tokio::test]
    async fn an_entry_lasts_until_its_id_is_cleared_and_a_new_refusal_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let (parked, prod, dev) = parked_in(&dir);
        let a = sync_model::fixtures::deployment("default", "a", "x");
        let b = sync_model::fixtures::deployment("default", "b", "x");
        parked.park(&[entry(&a, &prod, "too long")]).await.unwrap();
        parked
            .park(&[entry(&b, &prod, &"é".repeat(1_000))])
            .await
            .unwrap();
        parked
            .park(&[entry(&a, &prod, "still too long")])
            .await
            .unwrap();
        parked
            .park(&[entry(&a, &dev, "too long in dev")])
            .await
            .unwrap();
        let list = parked.list().await.unwrap();
        assert_eq!(list.len(), 3);
        let entry_a = list
            .iter()
            .find(|e| e.id == a.id && e.cluster == "prod")
            .unwrap();
        assert_eq!(entry_a.reason, "still too long");
        assert_eq!(entry_a.content_hash, a.content_hash());
        assert!(list.iter().all(|e| e.reason.len() <= MAX_REASON_BYTES));
        let stored_a = prod.qualify(&a.id);
        assert_eq!(
            parked.clear(&[stored_a.clone(), stored_a]).await.unwrap(),
            1
        );
        assert_eq!(
            parked.list().await.unwrap().len(),
            2,
            "dev's entry of the same name stays"
        );
    }

    #[tokio::test]
    async fn entries_live_in_the_store_so_another_handle_on_it_lists_and_clears_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let one = ParkedInstances::new(store.clone(), "instances");
        let other = ParkedInstances::new(store, "instances");
        let prod = ClusterId::new("prod").unwrap();
        let a = sync_model::fixtures::deployment("default", "a", "x");
        one.park(&[entry(&a, &prod, "too long")]).await.unwrap();
        assert_eq!(other.list().await.unwrap(), one.list().await.unwrap());
        assert_eq!(other.len().await.unwrap(), 1);
        assert_eq!(other.clear(&[prod.qualify(&a.id)]).await.unwrap(), 1);
        assert!(one.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn beyond_the_limit_the_oldest_entries_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let parked = ParkedInstances::with_limit(store(&dir), "instances", 2);
        let prod = ClusterId::new("prod").unwrap();
        for name in ["a", "b", "c"] {
            let instance = sync_model::fixtures::deployment("default", name, "x");
            parked
                .park(&[entry(&instance, &prod, "too long")])
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let names: Vec<String> = parked
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["b", "c"]);
    }

    #[tokio::test]
    async fn retiring_a_cluster_forgets_its_entries_only() {
        let dir = tempfile::tempdir().unwrap();
        let (parked, prod, dev) = parked_in(&dir);
        let a = sync_model::fixtures::deployment("default", "a", "x");
        parked
            .park(&[entry(&a, &prod, "too long"), entry(&a, &dev, "too long")])
            .await
            .unwrap();
        assert_eq!(parked.clear_cluster(&prod).await.unwrap(), 1);
        let left = parked.list().await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].cluster, "dev");
    }

    #[test]
    fn parked_objects_live_beside_the_instances() {
        assert_eq!(parked_collection("instances"), "instances-parked");
    }
}
