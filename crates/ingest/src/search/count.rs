//! Counting the index by filters (`POST /api/v1/search/count`, the MCP server's count and
//! group-by modes): how many stored objects match, split by kind or namespace. No ranking
//! and no embedding call; a query's words count as exact matches on names, kinds and label
//! values, as in keyword search.

use std::collections::HashMap;

use sync_model::search::{CountAnswer, CountBody, GroupBy, GroupCount};

use super::{build_filter, exact_matches, meta_str, QueryTerms, SearchError, Searcher};

/// Objects read per count at most: far above any one cluster's instance count, and a bound
/// on the memory one request can take.
pub const MAX_COUNTED: usize = 1_000_000;

impl Searcher {
    /// How many stored objects match `body`'s filters (and its query's words, if any),
    /// grouped if asked.
    pub async fn count(&self, body: &CountBody) -> Result<CountAnswer, SearchError> {
        let req = &body.request;
        self.check_cluster(req.cluster.as_deref()).await?;
        let filter = build_filter(req)?;
        let terms = QueryTerms::parse(&req.query);
        let collection = self.collection_name(req.collection);
        if filter.is_none() && terms.is_empty() && body.group_by.is_none() {
            return Ok(CountAnswer {
                total: self.store.count(collection).await?,
                groups: vec![],
            });
        }
        let mut total = 0;
        let mut groups: HashMap<String, usize> = HashMap::new();
        if terms.is_empty() {
            // Filters alone: the store counts by the group's key, reading no documents.
            let keys: Vec<&str> = body.group_by.map(group_key).into_iter().collect();
            let tally = self.store.tally(collection, filter.as_ref(), &keys).await?;
            for (values, n) in tally {
                total += n;
                if let Some(by) = body.group_by {
                    let value = values.into_iter().next().flatten().unwrap_or_default();
                    *groups.entry(group_name(by, value)).or_default() += n;
                }
            }
        } else {
            // Query words are matched on names, kinds and label values: whole metadata.
            let hits = self
                .store
                .get(collection, filter.as_ref(), MAX_COUNTED)
                .await?;
            for hit in &hits {
                if exact_matches(&hit.metadata, &terms).is_empty() {
                    continue;
                }
                total += 1;
                if let Some(by) = body.group_by {
                    let value = meta_str(&hit.metadata, group_key(by));
                    *groups.entry(group_name(by, value)).or_default() += 1;
                }
            }
        }
        let mut groups: Vec<GroupCount> = groups
            .into_iter()
            .map(|(key, count)| GroupCount { key, count })
            .collect();
        groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        Ok(CountAnswer { total, groups })
    }
}

/// The metadata key a count groups by.
fn group_key(by: GroupBy) -> &'static str {
    match by {
        GroupBy::Kind => "kind",
        GroupBy::Namespace => "namespace",
        GroupBy::Health => crate::document::HEALTH_KEY,
        GroupBy::Cluster => crate::document::CLUSTER_KEY,
    }
}

/// A group's name: its value, except that objects without a health are counted apart
/// (`none`), not dropped.
fn group_name(by: GroupBy, value: String) -> String {
    match by {
        GroupBy::Health if value.is_empty() => "none".to_string(),
        _ => value,
    }
}
