//! Counting the index by filters (`POST /api/v1/search/count`, the MCP server's count and
//! group-by modes): how many stored objects match, split by kind or namespace. No ranking
//! and no embedding call; a query's words count as exact matches on names, kinds and label
//! values, as in keyword search.

use std::collections::HashMap;

use sync_model::search::{CountAnswer, CountBody, GroupBy, GroupCount};

use crate::search::{build_filter, exact_matches, meta_str, QueryTerms, SearchError, Searcher};

/// Objects read per count at most: far above any one cluster's instance count, and a bound
/// on the memory one request can take.
pub const MAX_COUNTED: usize = 1_000_000;

impl Searcher {
    /// How many stored objects match `body`'s filters (and its query's words, if any),
    /// grouped if asked.
    pub async fn count(&self, body: &CountBody) -> Result<CountAnswer, SearchError> {
        let req = &body.request;
        let filter = build_filter(req)?;
        let terms = QueryTerms::parse(&req.query);
        let collection = self.collection_name(req.collection);
        if filter.is_none() && terms.is_empty() && body.group_by.is_none() {
            return Ok(CountAnswer {
                total: self.store.count(collection).await?,
                groups: vec![],
            });
        }
        let hits = self
            .store
            .get(collection, filter.as_ref(), MAX_COUNTED)
            .await?;
        let mut total = 0;
        let mut groups: HashMap<String, usize> = HashMap::new();
        for hit in &hits {
            if !terms.is_empty() && exact_matches(&hit.metadata, &terms).is_empty() {
                continue;
            }
            total += 1;
            if let Some(by) = body.group_by {
                let key = match by {
                    GroupBy::Kind => meta_str(&hit.metadata, "kind"),
                    GroupBy::Namespace => meta_str(&hit.metadata, "namespace"),
                    // Objects without a health are counted apart, not dropped.
                    GroupBy::Health => match meta_str(&hit.metadata, crate::document::HEALTH_KEY) {
                        h if h.is_empty() => "none".to_string(),
                        h => h,
                    },
                    GroupBy::Cluster => meta_str(&hit.metadata, crate::document::CLUSTER_KEY),
                };
                *groups.entry(key).or_default() += 1;
            }
        }
        let mut groups: Vec<GroupCount> = groups
            .into_iter()
            .map(|(key, count)| GroupCount { key, count })
            .collect();
        groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        Ok(CountAnswer { total, groups })
    }

    /// Every cluster with objects in the index, with its object count, ordered by id; and
    /// the clusters of `last_syncs` (synced since the server started) even when they hold
    /// nothing now. Counts by health are filled where the index records health.
    pub async fn clusters(
        &self,
        last_syncs: &std::collections::BTreeMap<sync_model::ClusterId, String>,
    ) -> Result<Vec<sync_model::api::ClusterSummary>, SearchError> {
        let hits = self
            .store
            .get(&self.instances_collection, None, MAX_COUNTED)
            .await?;
        let mut by_cluster: std::collections::BTreeMap<String, sync_model::api::ClusterSummary> =
            std::collections::BTreeMap::new();
        for hit in &hits {
            let id = meta_str(&hit.metadata, crate::document::CLUSTER_KEY);
            let Ok(cluster) = sync_model::ClusterId::new(&id) else {
                continue; // a document stored before clusters: no cluster's
            };
            let entry = by_cluster.entry(id).or_insert_with(|| summary(cluster));
            entry.objects += 1;
            let health = meta_str(&hit.metadata, "health");
            if !health.is_empty() {
                *entry.health.entry(health).or_default() += 1;
            }
        }
        for (cluster, at) in last_syncs {
            by_cluster
                .entry(cluster.to_string())
                .or_insert_with(|| summary(cluster.clone()))
                .last_sync = Some(at.clone());
        }
        Ok(by_cluster.into_values().collect())
    }
}

fn summary(id: sync_model::ClusterId) -> sync_model::api::ClusterSummary {
    sync_model::api::ClusterSummary {
        id,
        objects: 0,
        last_sync: None,
        health: Default::default(),
    }
}
