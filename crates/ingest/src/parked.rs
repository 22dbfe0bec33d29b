//! Parked instances: upserts that the embedding provider or the store refuses whatever is
//! retried, while their batch-mates were stored. Each is logged once, counted, and listed
//! by `GET /api/v1/instances/parked` until the same id is stored (its next change, or the
//! next resync, which finds it missing from the stored hashes and sends it again) or
//! deleted. Kept in memory: after a restart the next resync parks it again.

use std::collections::HashMap;
use std::sync::Mutex;

use sync_model::{ClusterId, ParkedInstance, ResourceInstance};

/// Parked entries kept at most; beyond it the oldest is forgotten (it is still missing from
/// the store, so a resync sends it again).
pub const MAX_PARKED: usize = 10_000;
/// A provider's error message is kept up to this many bytes.
const MAX_REASON_BYTES: usize = 500;

#[derive(Default)]
pub struct ParkedInstances {
    /// By stored id (cluster-qualified): two clusters' objects of one name are two entries.
    entries: Mutex<HashMap<String, ParkedInstance>>,
}

impl ParkedInstances {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parks `instance` of `cluster`, refused for `reason`; replaces an earlier entry of
    /// the same object.
    pub fn park(
        &self,
        instance: &ResourceInstance,
        cluster: &ClusterId,
        reason: &str,
    ) -> ParkedInstance {
        let key = cluster.qualify(&instance.id);
        let entry = ParkedInstance {
            id: instance.id.clone(),
            cluster: cluster.to_string(),
            kind: instance.kind.clone(),
            namespace: instance.namespace.clone(),
            name: instance.name.clone(),
            reason: shorten(reason).to_string(),
            parked_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            content_hash: instance.content_hash(),
        };
        let mut entries = self.lock();
        if entries.len() >= MAX_PARKED && !entries.contains_key(&key) {
            if let Some(oldest) = entries
                .iter()
                .min_by(|a, b| a.1.parked_at.cmp(&b.1.parked_at))
                .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, entry.clone());
        entry
    }

    /// Forgets the entries of the stored (cluster-qualified) `ids`, stored or deleted
    /// since; returns how many there were.
    pub fn clear<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> usize {
        let mut entries = self.lock();
        if entries.is_empty() {
            return 0;
        }
        ids.into_iter()
            .filter(|id| entries.remove(*id).is_some())
            .count()
    }

    /// Every parked instance, oldest first.
    pub fn list(&self) -> Vec<ParkedInstance> {
        let mut out: Vec<ParkedInstance> = self.lock().values().cloned().collect();
        out.sort_by(|a, b| a.parked_at.cmp(&b.parked_at).then(a.id.cmp(&b.id)));
        out
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ParkedInstance>> {
        // The map stays consistent whatever panicked while holding it.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn shorten(reason: &str) -> &str {
    crate::embed::limits::cut_to_bytes(reason, MAX_REASON_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_lasts_until_its_id_is_cleared_and_a_new_refusal_replaces_it() {
        let parked = ParkedInstances::new();
        let (prod, dev) = (
            ClusterId::new("prod").unwrap(),
            ClusterId::new("dev").unwrap(),
        );
        let a = sync_model::fixtures::deployment("default", "a", "x");
        let b = sync_model::fixtures::deployment("default", "b", "x");
        parked.park(&a, &prod, "too long");
        parked.park(&b, &prod, &"é".repeat(1_000));
        parked.park(&a, &prod, "still too long");
        parked.park(&a, &dev, "too long in dev");
        let list = parked.list();
        assert_eq!(list.len(), 3);
        let entry_a = list
            .iter()
            .find(|e| e.id == a.id && e.cluster == "prod")
            .unwrap();
        assert_eq!(entry_a.reason, "still too long");
        assert_eq!(entry_a.content_hash, a.content_hash());
        assert!(list.iter().all(|e| e.reason.len() <= MAX_REASON_BYTES));
        let stored_a = prod.qualify(&a.id);
        assert_eq!(parked.clear([stored_a.as_str(), stored_a.as_str()]), 1);
        assert_eq!(parked.list().len(), 2, "dev's entry of the same name stays");
    }
}
