//! Answers that cover the fleet: a question without a cluster is asked of the whole index
//! at once (one query, a pool of candidates that grows with the number of clusters, up to
//! [`MAX_FLEET_POOL`]), and the pool is split by cluster and merged so that every cluster with
//! answers gets its share ([`fair_share`]) instead of the largest cluster's top-k; and how
//! many objects answer, counted in the store by cluster (not read from the page), so that an
//! answer can say how many more each cluster has and say "none" only when the store holds
//! none. One query, not one per cluster: at 50 clusters a question costs the store the same
//! few calls as at one (docs/scale.md).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sync_model::search::ClusterCount;

use super::{SearchError, Searcher};
use crate::document::{CLUSTER_KEY, OWNER_KIND_KEY};
use crate::store::keys::{API_GROUP_KEY, KIND_KEY, NAMESPACE_KEY, NAME_KEY};
use crate::store::Filter;

/// How long the list of the index's clusters is reused (one read of their records per
/// replica and period). A cluster that joins gets its share of fleet-wide pages within this
/// time; until then its objects answer from the pool in a share after the listed ones'.
const CLUSTER_LIST_TTL: Duration = Duration::from_secs(10);

/// The clusters of the index, as last read ([`Searcher::fleet_clusters`]).
#[derive(Debug, Clone, Default)]
pub struct ClusterList(Arc<Mutex<Option<ClustersRead>>>);

/// When the clusters were read, and which (every cluster with a record, sorted).
type ClustersRead = (Instant, Vec<String>);

impl ClusterList {
    /// Forgets the list (a cluster was removed here): the next question reads it again.
    pub fn invalidate(&self) {
        if let Ok(mut cached) = self.0.lock() {
            *cached = None;
        }
    }
}

/// The most candidates a fleet-wide question reads: enough for the clusters with the best
/// answers to have a few each in the pool a page is shared from (a page of 10 across 50
/// clusters takes one answer from each of 10), few enough that one store query stays fast:
/// on Chroma at 50,000 documents a query of 500 nearest took 123 ms, of 50 14 ms
/// (docs/scale.md).
pub(crate) const MAX_FLEET_POOL: usize = 100;

/// How many answers a fleet-wide question keeps before the page is shared: `limit` for each
/// of the `clusters`, at most [`MAX_FLEET_POOL`] (never fewer than `limit`).
pub(crate) fn fleet_pool(limit: usize, clusters: usize) -> usize {
    limit
        .saturating_mul(clusters.max(1))
        .min(MAX_FLEET_POOL)
        .max(limit)
}

/// Where one question is answered: one cluster, or the whole index (a fleet, split by
/// cluster afterwards; a single-cluster index; or one whose documents predate clusters).
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    /// The asked cluster, or `None` for the whole index.
    pub cluster: Option<String>,
    /// Its store filter, with the request's own filter when it has one.
    pub filter: Option<Filter>,
    /// The clusters of a fleet-wide question (each gets its share of the page and a count),
    /// `None` when the index is one scope.
    pub fleet: Option<Vec<String>>,
}

impl Scope {
    /// The clusters an answer in this scope is counted for: the asked one, or the fleet's.
    pub fn clusters(&self) -> Vec<String> {
        match (&self.cluster, &self.fleet) {
            (Some(c), _) => vec![c.clone()],
            (None, Some(fleet)) => fleet.clone(),
            (None, None) => vec![],
        }
    }
}

/// `items` (best first) split by cluster in the order of `clusters`, each list still best
/// first; the items of a cluster not listed (one that joined since the list was read, or
/// documents stored before clusters) follow in lists of their own, so that nothing the store
/// answered is dropped. With no clusters, one list of every item.
pub(crate) fn split_by_cluster<T>(
    items: Vec<T>,
    clusters: &[String],
    cluster_of: impl Fn(&T) -> &str,
) -> Vec<Vec<T>> {
    if clusters.is_empty() {
        return vec![items];
    }
    let mut at: std::collections::HashMap<String, usize> = clusters
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), i))
        .collect();
    let mut lists: Vec<Vec<T>> = clusters.iter().map(|_| Vec::new()).collect();
    for item in items {
        let i = match at.get(cluster_of(&item)) {
            Some(&i) => i,
            None => {
                at.insert(cluster_of(&item).to_string(), lists.len());
                lists.push(Vec::new());
                lists.len() - 1
            }
        };
        lists[i].push(item);
    }
    lists
}

/// `a` and `b`, both holding.
pub(crate) fn both(a: Option<&Filter>, b: Filter) -> Filter {
    match a {
        Some(Filter::And(all)) => {
            let mut all = all.clone();
            all.push(b);
            Filter::And(all)
        }
        Some(a) => Filter::And(vec![a.clone(), b]),
        None => b,
    }
}

impl Searcher {
    /// The clusters of the index when it holds more than one, sorted; `None` when one (or
    /// none) or when some documents have no cluster, where a question is asked of the whole
    /// index at once. Reused for [`CLUSTER_LIST_TTL`].
    pub(crate) async fn fleet_clusters(&self) -> Result<Option<Vec<String>>, SearchError> {
        let all = self.index_clusters().await?;
        if all.len() < 2 {
            return Ok(None);
        }
        // A scoped caller's fleet: the index's clusters where their grants hold (a cluster
        // they may read nothing of is not theirs to be told about).
        let scope = self.store.scope();
        let list: Vec<String> = all.into_iter().filter(|c| scope.sees_cluster(c)).collect();
        Ok((list.len() > 1).then_some(list))
    }

    /// Whether `cluster` was among the index's clusters when last listed (within
    /// [`CLUSTER_LIST_TTL`]): what spares a request naming a cluster the store read that
    /// checks it.
    pub(crate) async fn listed_cluster(&self, cluster: &str) -> Result<bool, SearchError> {
        Ok(self
            .index_clusters()
            .await?
            .binary_search_by(|c| c.as_str().cmp(cluster))
            .is_ok())
    }

    /// Every cluster of the index, shared by every caller (it names clusters, no objects):
    /// the clusters with a record (`crate::clusters`: every cluster a sync was heard from,
    /// until it is removed), sorted; one small read, not a pass over the instances.
    /// Documents stored before clusters (no record names them) are answered with the whole
    /// index only while fewer than two clusters have records.
    async fn index_clusters(&self) -> Result<Vec<String>, SearchError> {
        if let Ok(cached) = self.cluster_list.0.lock() {
            if let Some((at, list)) = cached.as_ref() {
                if at.elapsed() < CLUSTER_LIST_TTL {
                    return Ok(list.clone());
                }
            }
        }
        let records =
            crate::clusters::read_records(self.store.records_store(), &self.records_collection())
                .await?;
        // Sorted: the records come by id.
        let list: Vec<String> = records.into_keys().map(|c| c.to_string()).collect();
        if let Ok(mut cached) = self.cluster_list.0.lock() {
            *cached = Some((Instant::now(), list.clone()));
        }
        Ok(list)
    }

    /// The scope a question is answered in: the asked `cluster`, else the whole index
    /// (with the fleet's clusters when it holds several); with `filter` (the request's).
    pub(crate) async fn scope(
        &self,
        cluster: Option<&str>,
        filter: Option<&Filter>,
    ) -> Result<Scope, SearchError> {
        let fleet = match cluster {
            Some(_) => None,
            None => self.fleet_clusters().await?,
        };
        Ok(Scope {
            cluster: cluster.map(str::to_string),
            // The request's filter already holds an asked cluster.
            filter: filter.cloned(),
            fleet,
        })
    }

    /// How many objects `filter` admits that no other object controls (a workload, not its
    /// ReplicaSets and Pods, which an answer folds into it), by cluster; and of those, how
    /// many match `any_of` (one filter per way to answer, an object counted once however
    /// many it matches; every object when empty).
    pub(crate) async fn count_uncontrolled(
        &self,
        filter: Option<&Filter>,
        any_of: &[Filter],
    ) -> Result<BTreeMap<String, usize>, SearchError> {
        let mut by_cluster: BTreeMap<String, usize> = BTreeMap::new();
        if any_of.len() <= 1 {
            // One way to answer: no object can be counted twice, so the store counts by
            // cluster and owner alone (a few rows, not one per object).
            let filter = match any_of.first() {
                Some(way) => Some(both(filter, way.clone())),
                None => filter.cloned(),
            };
            let tally = self
                .store
                .tally(
                    &self.instances_collection,
                    filter.as_ref(),
                    &[CLUSTER_KEY, OWNER_KIND_KEY],
                )
                .await?;
            for (values, n) in tally {
                let mut values = values.into_iter();
                let (cluster, owner) = (values.next().flatten(), values.next().flatten());
                if owner.is_none_or(|o| o.is_empty()) {
                    *by_cluster.entry(cluster.unwrap_or_default()).or_default() += n;
                }
            }
            return Ok(by_cluster);
        }
        // One row per object (its cluster, namespace, kind, group and name), so that an
        // object two ways answer is counted once.
        let keys = [
            CLUSTER_KEY,
            NAMESPACE_KEY,
            KIND_KEY,
            API_GROUP_KEY,
            NAME_KEY,
            OWNER_KIND_KEY,
        ];
        let mut seen: HashSet<Vec<Option<String>>> = HashSet::new();
        for way in any_of {
            let f = both(filter, way.clone());
            let tally = self
                .store
                .tally(&self.instances_collection, Some(&f), &keys)
                .await?;
            for (values, _) in tally {
                if values[5].as_deref().is_some_and(|o| !o.is_empty()) {
                    continue;
                }
                let cluster = values[0].clone().unwrap_or_default();
                if seen.insert(values) {
                    *by_cluster.entry(cluster).or_default() += 1;
                }
            }
        }
        Ok(by_cluster)
    }
}

/// The first `limit` of per-cluster rankings (each best first), every cluster in turn: the
/// best of each, best first, then the second of each, and so on. A cluster with fewer
/// answers leaves its places to the others. The order is the same for every limit (a page
/// is a prefix of a longer one), so that pages with cursors stay consistent.
pub(crate) fn fair_share<T>(lists: Vec<Vec<T>>, limit: usize, score: impl Fn(&T) -> f32) -> Vec<T> {
    let mut lists: Vec<std::vec::IntoIter<T>> = lists.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::new();
    while out.len() < limit {
        let mut round: Vec<T> = lists.iter_mut().filter_map(Iterator::next).collect();
        if round.is_empty() {
            break;
        }
        round.sort_by(|a, b| score(b).total_cmp(&score(a)));
        out.extend(round.into_iter().take(limit - out.len()));
    }
    out
}

/// `cluster`: `shown` of its answers on the page, `total` in all when known.
pub(crate) fn cluster_count(cluster: &str, shown: usize, total: Option<usize>) -> ClusterCount {
    ClusterCount {
        cluster: cluster.to_string(),
        shown,
        total: total.map(|t| t.max(shown)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fair_share_takes_each_clusters_best_in_turn_and_fills_from_the_others() {
        let big = vec![0.9, 0.8, 0.7, 0.6, 0.5];
        let small = vec![0.3];
        let mid = vec![0.5, 0.4];
        let page = fair_share(vec![big, small, mid], 5, |s| *s);
        // Round one: every cluster's best, best first; then the second of those with more.
        assert_eq!(page, [0.9, 0.5, 0.3, 0.8, 0.4]);
        // A shorter page is a prefix of a longer one.
        let short = fair_share(
            vec![vec![0.9, 0.8, 0.7, 0.6, 0.5], vec![0.3], vec![0.5, 0.4]],
            2,
            |s| *s,
        );
        assert_eq!(short, [0.9, 0.5]);
        assert!(fair_share(Vec::<Vec<f32>>::new(), 3, |s| *s).is_empty());
    }

    #[test]
    fn a_fleet_pool_grows_with_the_clusters_up_to_its_bound() {
        assert_eq!(fleet_pool(10, 1), 10);
        assert_eq!(fleet_pool(10, 5), 50);
        assert_eq!(fleet_pool(10, 50), MAX_FLEET_POOL);
        assert_eq!(fleet_pool(10, 250), MAX_FLEET_POOL);
        // A page larger than the bound is still read whole.
        assert_eq!(fleet_pool(800, 3), 800);
    }

    #[test]
    fn a_pool_splits_by_cluster_keeping_each_clusters_order() {
        let clusters = vec!["a".to_string(), "b".to_string()];
        let pool = vec![("b", 0.9), ("a", 0.8), ("c", 0.7), ("b", 0.6), ("a", 0.5)];
        let lists = split_by_cluster(pool.clone(), &clusters, |(c, _)| c);
        // A cluster not (yet) listed keeps its answers, in a list after the listed ones.
        assert_eq!(
            lists,
            vec![
                vec![("a", 0.8), ("a", 0.5)],
                vec![("b", 0.9), ("b", 0.6)],
                vec![("c", 0.7)]
            ]
        );
        // No fleet: one list, whole.
        assert_eq!(split_by_cluster(pool.clone(), &[], |(c, _)| c), vec![pool]);
    }

    #[test]
    fn filters_are_combined_into_one_conjunction() {
        let a = Filter::Eq("kind".into(), "Pod".into());
        let b = Filter::Eq("cluster".into(), "x".into());
        assert_eq!(both(None, b.clone()), b);
        assert_eq!(
            both(Some(&a), b.clone()),
            Filter::And(vec![a.clone(), b.clone()])
        );
        let c = Filter::Eq("health".into(), "Failed".into());
        assert_eq!(
            both(Some(&Filter::And(vec![a.clone(), b.clone()])), c.clone()),
            Filter::And(vec![a, b, c])
        );
    }
}
