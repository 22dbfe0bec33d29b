//! The clusters of the index as the search side sees them: the list (`GET /api/v1/clusters`,
//! `cw clusters`, MCP `list_clusters`) with each cluster's objects by health (from the
//! instances), its last sync and last contact (from its record, `crate::clusters`) and
//! whether it is stale; and the check that a cluster a request names is one the index
//! knows, so that a typo is an error naming the known ones instead of an empty answer.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sync_model::api::{ClusterSummary, ClustersResponse};
use sync_model::ClusterId;

use super::{SearchError, Searcher};
use crate::clusters::counts::count_now;
use crate::clusters::{has_record, is_stale, read_records, records_collection, ClusterRecord};

/// Objects by health (`""`: none recorded), by cluster.
type ByCluster = BTreeMap<ClusterId, BTreeMap<String, usize>>;
use crate::document::{CLUSTER_KEY, HEALTH_KEY};
use crate::store::Filter;

impl Searcher {
    /// The collection of the cluster records beside these instances.
    pub fn records_collection(&self) -> String {
        records_collection(&self.base_collection)
    }

    /// Every cluster with objects in the index or a record (a watcher heard from), ordered
    /// by id: its object count, objects by health where the index records health, its last
    /// sync and last contact, and whether it is stale (not heard from for longer than
    /// `stale_after`, or never). The counts come from the records where they add up, else
    /// the store counts by cluster and health: no documents are read either way.
    pub async fn clusters(&self, stale_after: Duration) -> Result<ClustersResponse, SearchError> {
        self.check_visible()?;
        let records = read_records(self.store.records_store(), &self.records_collection()).await?;
        let mut by_cluster: BTreeMap<ClusterId, ClusterSummary> = BTreeMap::new();
        let counted = match self.counts_of_records(&records).await? {
            Some(counted) => counted,
            None => self.counts_of_documents().await?,
        };
        for (cluster, by_health) in counted {
            let entry = by_cluster
                .entry(cluster.clone())
                .or_insert_with(|| summary(cluster));
            for (health, n) in by_health {
                entry.objects += n;
                if !health.is_empty() {
                    *entry.health.entry(health).or_default() += n;
                }
            }
        }
        let now = Utc::now();
        let scope = self.store.scope();
        for (cluster, record) in records {
            if !scope.sees_cluster(cluster.as_str()) {
                continue;
            }
            let entry = by_cluster
                .entry(cluster.clone())
                .or_insert_with(|| summary(cluster));
            entry.last_sync = record.last_sync.map(rfc3339);
            entry.last_sync_age_secs = record.last_sync.map(|t| age_secs(t, now));
            entry.last_contact = record.last_contact.map(rfc3339);
            entry.last_contact_age_secs = record.last_contact.map(|t| age_secs(t, now));
            entry.stale = is_stale(record.last_contact, now, stale_after);
        }
        Ok(ClustersResponse {
            clusters: by_cluster.into_values().collect(),
            stale_after_secs: Some(stale_after.as_secs()),
        })
    }

    /// Each cluster's objects by health from the records' counts (`crate::clusters::counts`),
    /// when the caller reads everything and the counts add up: a cluster this process has a
    /// recount pending for is counted now, and the sum must equal the instances the store
    /// holds (else `None`: documents outside every record, or counts another replica has not
    /// refreshed yet).
    async fn counts_of_records(
        &self,
        records: &BTreeMap<ClusterId, ClusterRecord>,
    ) -> Result<Option<ByCluster>, SearchError> {
        let Some(store) = self.store.unscoped() else {
            return Ok(None);
        };
        let total = store.count(&self.instances_collection).await?;
        let mut out = ByCluster::new();
        let mut sum = 0;
        for (cluster, record) in records {
            let settled = self
                .registry
                .as_ref()
                .is_none_or(|r| r.counts_settled(cluster));
            let counted = match (&record.objects_by_health, settled) {
                (Some(counted), true) => counted.clone(),
                _ => count_now(store.as_ref(), &self.instances_collection, cluster).await?,
            };
            sum += counted.values().sum::<usize>();
            out.insert(cluster.clone(), counted);
        }
        Ok((sum == total).then_some(out))
    }

    /// Each cluster's objects by health, the store tallying every document the caller may
    /// read (a document stored before clusters is no cluster's).
    async fn counts_of_documents(&self) -> Result<ByCluster, SearchError> {
        let tally = self
            .store
            .tally(&self.instances_collection, None, &[CLUSTER_KEY, HEALTH_KEY])
            .await?;
        let mut out = ByCluster::new();
        for (values, n) in tally {
            let mut values = values.into_iter();
            let (id, health) = (values.next().flatten(), values.next().flatten());
            let Some(cluster) = id.as_deref().and_then(|id| ClusterId::new(id).ok()) else {
                continue;
            };
            *out.entry(cluster)
                .or_default()
                .entry(health.unwrap_or_default())
                .or_default() += n;
        }
        Ok(out)
    }

    /// Ok unless the caller is a user whose grants hold in no cluster.
    fn check_visible(&self) -> Result<(), SearchError> {
        match self.store.scope() {
            crate::access::Scope::Limited(l) if l.clusters.is_empty() => {
                Err(SearchError::NothingVisible {
                    user: l.user.clone(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Ok when `cluster` is absent, malformed (the filter refuses it, naming the rule) or
    /// known to the index: it has a record, or objects. Else the error names the known
    /// ones. No read when the fleet's list (read at most every few seconds) names it, one
    /// small read when it has a record; the list is read only for the error.
    pub(crate) async fn check_cluster(&self, cluster: Option<&str>) -> Result<(), SearchError> {
        self.check_visible()?;
        let Some(Ok(id)) = cluster.filter(|c| !c.is_empty()).map(ClusterId::new) else {
            return Ok(());
        };
        let scope = self.store.scope();
        if scope.sees_cluster(id.as_str())
            && (self.listed_cluster(id.as_str()).await?
                || has_record(
                    self.store.records_store(),
                    &self.records_collection(),
                    id.as_str(),
                )
                .await?)
        {
            return Ok(());
        }
        let filter = Filter::Eq(CLUSTER_KEY.into(), id.to_string());
        let probe = self
            .store
            .get(&self.instances_collection, Some(&filter), 1)
            .await?;
        if !probe.is_empty() {
            return Ok(());
        }
        let known = self
            .clusters(crate::clusters::DEFAULT_STALE_AFTER)
            .await?
            .clusters
            .into_iter()
            .map(|c| c.id.to_string())
            .collect();
        Err(SearchError::UnknownCluster {
            cluster: id.to_string(),
            known,
        })
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Whole seconds from `t` to `now`; 0 for a time ahead (another replica's clock).
fn age_secs(t: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    (now - t).num_seconds().max(0) as u64
}

/// A cluster without objects or record yet: stale until a record says otherwise.
fn summary(id: ClusterId) -> ClusterSummary {
    ClusterSummary {
        id,
        objects: 0,
        last_sync: None,
        last_sync_age_secs: None,
        last_contact: None,
        last_contact_age_secs: None,
        stale: true,
        health: Default::default(),
    }
}
