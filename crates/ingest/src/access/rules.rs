//! Each cluster's access rules as the server holds them: the [`AccessSnapshot`] its watcher
//! last sent, kept in the store (so they survive restarts and every replica of one store
//! decides the same) and, per process, as a ready [`Authorizer`].
//!
//! Layout: a collection beside the instances, [`rules_collection`] (`instances-access`),
//! with a cluster's snapshot as JSON split into parts of at most [`PART_BYTES`]: ids
//! `CLUSTER/0`, `CLUSTER/1`, …; every part's content hash is `DIGEST:PARTS` (the SHA-256 of
//! the whole JSON and the number of parts), so a reader lists the hashes (no documents) to
//! learn what changed, reads only a changed cluster's parts, and takes them only when every
//! part carries the same digest and the joined text hashes to it (a write half done by
//! another replica is read on the next round). Each part carries the same one-dimensional
//! vector (the stores keep one per document); nothing searches it.
//!
//! Fails closed: a cluster the server has no rules for is one a scoped caller sees nothing of.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sync_model::rbac::authorizer::Authorizer;
use sync_model::rbac::{AccessSnapshot, ResourceType, ServiceAccountIssuer};
use sync_model::ClusterId;

use crate::document::CLUSTER_KEY;
use crate::embed::ModelInfo;
use crate::store::{Filter, MetaValue, Metadata, Record, StoreError, VectorStore};

/// The parts of a snapshot are at most this long (bytes of JSON).
pub const PART_BYTES: usize = 256 * 1024;
/// How often a process reads the store for rules another replica wrote.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(2);
/// The "model" of the rules' collection: it holds no embeddings.
const RULES_MODEL_ID: &str = "cw:access-rules";
const RULES_VECTOR: [f32; 1] = [1.0];
const PART_KEY: &str = "cw_part";

/// The collection of the access rules of the clusters whose instances are in `instances`.
pub fn rules_collection(instances: &str) -> String {
    format!("{instances}-access")
}

/// One cluster's rules, ready for decisions.
#[derive(Debug)]
pub struct ClusterRules {
    pub cluster: ClusterId,
    pub authorizer: Authorizer,
    /// The resource types the cluster serves (what turns a rule's resources into kinds).
    pub types: Vec<ResourceType>,
    pub issuer: Option<ServiceAccountIssuer>,
    /// SHA-256 of the snapshot as stored: equal digests, equal rules.
    pub digest: String,
    /// Roles, ClusterRoles and bindings, for metrics and logs.
    pub objects: usize,
}

impl ClusterRules {
    fn new(cluster: ClusterId, snapshot: &AccessSnapshot, digest: String) -> Self {
        ClusterRules {
            cluster,
            authorizer: Authorizer::new(snapshot),
            types: snapshot.types.clone(),
            issuer: snapshot.issuer.clone(),
            digest,
            objects: snapshot.roles.len()
                + snapshot.cluster_roles.len()
                + snapshot.role_bindings.len()
                + snapshot.cluster_role_bindings.len(),
        }
    }
}

/// Every cluster's rules as this process last read or wrote them.
pub type RulesByCluster = BTreeMap<ClusterId, Arc<ClusterRules>>;

/// Why a snapshot is refused.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the access rules cannot be encoded: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The rules of every cluster: written when a watcher sends them, read back by every
/// replica. Cheap to clone.
#[derive(Clone)]
pub struct AccessRules {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn VectorStore>,
    collection: String,
    held: RwLock<Arc<RulesByCluster>>,
    /// Called with every cluster's rules after each change (the identity's issuer keys).
    listeners: RwLock<Vec<Box<dyn Fn(&RulesByCluster) + Send + Sync>>>,
}

fn model() -> ModelInfo {
    ModelInfo {
        id: RULES_MODEL_ID.into(),
        dimension: RULES_VECTOR.len(),
    }
}

impl AccessRules {
    pub fn new(store: Arc<dyn VectorStore>, instances: &str) -> Self {
        AccessRules {
            inner: Arc::new(Inner {
                store,
                collection: rules_collection(instances),
                held: RwLock::new(Arc::new(RulesByCluster::new())),
                listeners: RwLock::new(Vec::new()),
            }),
        }
    }

    /// Every cluster's rules as held now.
    pub fn current(&self) -> Arc<RulesByCluster> {
        self.inner
            .held
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Calls `f` now and after every change with every cluster's rules.
    pub fn on_change(&self, f: impl Fn(&RulesByCluster) + Send + Sync + 'static) {
        f(&self.current());
        self.inner
            .listeners
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(f));
    }

    fn replace(&self, change: impl FnOnce(&mut RulesByCluster)) {
        let now = {
            let mut held = self.inner.held.write().unwrap_or_else(|p| p.into_inner());
            let mut next = (**held).clone();
            change(&mut next);
            *held = Arc::new(next);
            held.clone()
        };
        for f in self
            .inner
            .listeners
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            f(&now);
        }
    }

    /// Stores `snapshot` as `cluster`'s rules (whole: it replaces what was held) and holds
    /// it. Unchanged rules are not written again.
    pub async fn apply(
        &self,
        cluster: &ClusterId,
        snapshot: &AccessSnapshot,
    ) -> Result<Arc<ClusterRules>, RulesError> {
        let mut snapshot = snapshot.clone();
        snapshot.cluster = Some(cluster.to_string());
        let json = serde_json::to_string(&snapshot)?;
        let digest = hex::encode(Sha256::digest(json.as_bytes()));
        if let Some(held) = self.current().get(cluster) {
            if held.digest == digest {
                return Ok(held.clone());
            }
        }
        let parts = split(&json, PART_BYTES);
        let hash = format!("{digest}:{}", parts.len());
        let records: Vec<Record> = parts
            .iter()
            .enumerate()
            .map(|(i, text)| Record {
                id: part_id(cluster, i),
                document: text.to_string(),
                embedding: RULES_VECTOR.to_vec(),
                metadata: Metadata::from([
                    (CLUSTER_KEY.to_string(), MetaValue::Str(cluster.to_string())),
                    (PART_KEY.to_string(), MetaValue::Int(i as i64)),
                ]),
                content_hash: hash.clone(),
            })
            .collect();
        let store = &self.inner.store;
        store
            .ensure_collection(&self.inner.collection, &model())
            .await?;
        store.upsert(&self.inner.collection, &records).await?;
        // Parts of a longer snapshot before this one.
        let stale: Vec<String> = self
            .stored_hashes()
            .await?
            .into_iter()
            .filter_map(|(id, _)| {
                let (c, i) = id.rsplit_once('/')?;
                let i: usize = i.parse().ok()?;
                (c == cluster.as_str() && i >= parts.len()).then_some(id)
            })
            .collect();
        if !stale.is_empty() {
            store.delete(&self.inner.collection, &stale).await?;
        }
        let rules = Arc::new(ClusterRules::new(cluster.clone(), &snapshot, digest));
        tracing::info!(%cluster, objects = rules.objects, types = rules.types.len(),
            issuer = rules.issuer.as_ref().map(|i| i.issuer.as_str()), "access rules stored");
        let held = rules.clone();
        self.replace(move |all| {
            all.insert(cluster.clone(), held);
        });
        Ok(rules)
    }

    /// Forgets `cluster`'s rules (the cluster is retired).
    pub async fn remove(&self, cluster: &ClusterId) -> Result<(), StoreError> {
        let ids: Vec<String> = self
            .stored_hashes()
            .await?
            .into_keys()
            .filter(|id| {
                id.rsplit_once('/')
                    .is_some_and(|(c, _)| c == cluster.as_str())
            })
            .collect();
        if !ids.is_empty() {
            self.inner
                .store
                .delete(&self.inner.collection, &ids)
                .await?;
        }
        self.replace(|all| {
            all.remove(cluster);
        });
        Ok(())
    }

    async fn stored_hashes(&self) -> Result<HashMap<String, String>, StoreError> {
        self.inner
            .store
            .all_hashes(&self.inner.collection, None)
            .await
    }

    /// Reads what the store holds and takes every cluster whose rules changed (written by
    /// another replica, or before this process started). A cluster whose parts disagree
    /// (a write under way) keeps what was held.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let hashes = self.stored_hashes().await?;
        // cluster -> part hashes
        let mut by_cluster: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
        for (id, hash) in hashes {
            if let Some((c, i)) = id.rsplit_once('/') {
                if let Ok(i) = i.parse::<usize>() {
                    by_cluster.entry(c.to_string()).or_default().push((i, hash));
                }
            }
        }
        let held = self.current();
        let mut changed: Vec<Arc<ClusterRules>> = Vec::new();
        for (cluster, mut parts) in by_cluster {
            let Ok(cluster) = ClusterId::new(&cluster) else {
                continue;
            };
            parts.sort();
            let Some((digest, count)) = whole(&parts) else {
                continue;
            };
            if held.get(&cluster).is_some_and(|r| r.digest == digest) {
                continue;
            }
            match self.read(&cluster, &digest, count).await? {
                Some(snapshot) => {
                    changed.push(Arc::new(ClusterRules::new(cluster, &snapshot, digest)))
                }
                None => tracing::debug!(%cluster, "access rules being written; read next round"),
            }
        }
        if !changed.is_empty() {
            self.replace(|all| {
                for rules in changed {
                    tracing::info!(cluster = %rules.cluster, objects = rules.objects, "access rules read from the store");
                    all.insert(rules.cluster.clone(), rules);
                }
            });
        }
        Ok(())
    }

    async fn read(
        &self,
        cluster: &ClusterId,
        digest: &str,
        count: usize,
    ) -> Result<Option<AccessSnapshot>, StoreError> {
        let filter = Filter::Eq(CLUSTER_KEY.into(), cluster.to_string());
        let mut hits = self
            .inner
            .store
            .get(&self.inner.collection, Some(&filter), count + 1)
            .await?;
        let part = |h: &crate::store::Hit| match h.metadata.get(PART_KEY) {
            Some(MetaValue::Int(i)) => *i,
            _ => i64::MAX,
        };
        // A longer snapshot's tail may linger until its writer deletes it.
        hits.retain(|h| part(h) < count as i64);
        hits.sort_by_key(part);
        if hits.len() != count {
            return Ok(None);
        }
        let json: String = hits.iter().map(|h| h.document.as_str()).collect();
        if hex::encode(Sha256::digest(json.as_bytes())) != digest {
            return Ok(None);
        }
        match serde_json::from_str(&json) {
            Ok(snapshot) => Ok(Some(snapshot)),
            Err(e) => {
                tracing::error!(%cluster, error = %e, "stored access rules cannot be read; the cluster shows nothing to scoped callers until its watcher sends them again");
                Ok(None)
            }
        }
    }

    /// Refreshes every [`REFRESH_INTERVAL`] until `shutdown` resolves.
    pub async fn keep_fresh(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(REFRESH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tick.tick() => {
                    if let Err(e) = self.refresh().await {
                        tracing::warn!(error = %e, "could not read the access rules; keeping those held");
                    }
                }
            }
        }
    }
}

fn part_id(cluster: &ClusterId, part: usize) -> String {
    format!("{cluster}/{part}")
}

/// The digest and number of parts when `parts` (sorted by index) are all there and agree.
fn whole(parts: &[(usize, String)]) -> Option<(String, usize)> {
    let (_, first) = parts.first()?;
    let (digest, count) = first.rsplit_once(':')?;
    let count: usize = count.parse().ok()?;
    let complete = parts.len() >= count
        && parts[..count]
            .iter()
            .enumerate()
            .all(|(i, (at, hash))| *at == i && hash == first);
    complete.then(|| (digest.to_string(), count))
}

/// `text` in pieces of at most `max` bytes, cut at character boundaries.
fn split(text: &str, max: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        parts.push(head);
        rest = tail;
    }
    parts.push(rest);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_cut_at_character_boundaries_and_join_to_the_whole() {
        let text = "aé€😀".repeat(1000);
        let parts = split(&text, 7);
        assert!(parts.iter().all(|p| p.len() <= 7 && !p.is_empty()));
        assert_eq!(parts.concat(), text);
        assert_eq!(split("", 7), vec![""]);
    }

    #[test]
    fn a_snapshot_is_whole_only_when_every_part_agrees() {
        let h = |s: &str| s.to_string();
        assert_eq!(
            whole(&[(0, h("d:2")), (1, h("d:2"))]),
            Some(("d".into(), 2))
        );
        assert_eq!(whole(&[(0, h("d:2"))]), None, "a part missing");
        assert_eq!(whole(&[(0, h("d:2")), (1, h("e:2"))]), None, "two writes");
        assert_eq!(
            whole(&[(0, h("d:1")), (1, h("e:2"))]),
            Some(("d".into(), 1)),
            "a stale longer tail is ignored"
        );
    }
}
