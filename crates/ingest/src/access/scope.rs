//! What one caller may read, as store filters: a [`Scope`] compiled from the caller's
//! identity and each cluster's RBAC ([`super::rules`]), and the [`ScopedStore`] every
//! search, ask, count and cluster list reads through. The scope is a filter *inside* the
//! store query, so pages stay full, counts count only what the caller may see, and nothing
//! is dropped after the store answered.
//!
//! A grant becomes one branch of an `Or`: its cluster, its namespaces (all of them for a
//! ClusterRoleBinding, whose grants also cover cluster-scoped objects; a namespace's
//! objects only for a RoleBinding, which never covers cluster-scoped ones, since they have
//! no namespace), its types (the rule's groups and resources turned into the kinds the
//! cluster serves under them; a rule of `*` groups and `*` resources needs no type
//! condition) and, for rules with `resourceNames`, those names. A cluster without rules,
//! or a rule naming types the cluster does not serve, adds nothing: it fails closed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use sync_model::rbac::authorizer::{Namespaces, ReadGrant};
use sync_model::rbac::{ResourceType, UserInfo};
use sync_model::ClusterId;

use super::rules::RulesByCluster;
use crate::store::keys::{
    API_GROUP_KEY, CLUSTER_KEY, GROUP_KEY, KIND_KEY, NAMESPACE_KEY, NAME_KEY,
};
use crate::store::{Filter, Hit, StoreError, Tally, VectorStore};

/// What a caller may read.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Everything: an operator's token, or a server without authentication.
    Everything,
    /// What RBAC grants one user.
    Limited(Arc<Limited>),
}

/// A user's grants, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct Limited {
    /// Who, for logs.
    pub user: String,
    /// The instances they may read: an `Or` of grants (empty: nothing).
    pub instances: Filter,
    /// The types they may list somewhere: an `Or` (empty: none).
    pub capabilities: Filter,
    /// The clusters where they may read something.
    pub clusters: BTreeSet<ClusterId>,
}

impl Scope {
    /// What `user` may read in `clusters` (every cluster with rules when `None`).
    pub fn of_user(
        user: &UserInfo,
        clusters: Option<&BTreeSet<ClusterId>>,
        rules: &RulesByCluster,
    ) -> Scope {
        let mut instances = Vec::new();
        let mut capabilities: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut visible = BTreeSet::new();
        for (cluster, cluster_rules) in rules {
            if clusters.is_some_and(|set| !set.contains(cluster)) {
                continue;
            }
            for grant in cluster_rules.authorizer.read_grants(user) {
                let Some(types) = types_of(&grant, &cluster_rules.types) else {
                    // `*` groups and `*` resources: every type, even those not yet listed.
                    instances.push(branch(cluster, &grant, None));
                    for t in &cluster_rules.types {
                        capabilities
                            .entry(t.group.clone())
                            .or_default()
                            .insert(t.plural.clone());
                    }
                    visible.insert(cluster.clone());
                    continue;
                };
                if types.is_empty() {
                    continue;
                }
                for t in &types {
                    capabilities
                        .entry(t.group.clone())
                        .or_default()
                        .insert(t.plural.clone());
                }
                instances.push(branch(cluster, &grant, Some(&types)));
                visible.insert(cluster.clone());
            }
        }
        let capabilities = capabilities
            .into_iter()
            .map(|(group, plurals)| {
                Filter::And(vec![
                    Filter::Eq(GROUP_KEY.into(), group),
                    Filter::In("plural".into(), plurals.into_iter().collect()),
                ])
            })
            .collect();
        Scope::Limited(Arc::new(Limited {
            user: user.name.clone(),
            instances: Filter::Or(instances),
            capabilities: Filter::Or(capabilities),
            clusters: visible,
        }))
    }

    /// True when the caller may see something of `cluster`.
    pub fn sees_cluster(&self, cluster: &str) -> bool {
        match self {
            Scope::Everything => true,
            Scope::Limited(l) => l.clusters.iter().any(|c| c.as_str() == cluster),
        }
    }

    pub fn is_everything(&self) -> bool {
        matches!(self, Scope::Everything)
    }
}

/// The types a grant names in a cluster serving `types`; `None` for every type.
fn types_of<'a>(grant: &ReadGrant, types: &'a [ResourceType]) -> Option<Vec<&'a ResourceType>> {
    let any_group = grant.api_groups.contains("*");
    let any_resource = grant.resources.contains("*");
    if any_group && any_resource {
        return None;
    }
    Some(
        types
            .iter()
            .filter(|t| any_group || grant.api_groups.contains(&t.group))
            .filter(|t| any_resource || grant.resources.contains(&t.plural))
            .collect(),
    )
}

/// One grant as a conjunction: cluster, namespaces, types (`None`: any) and names.
fn branch(cluster: &ClusterId, grant: &ReadGrant, types: Option<&[&ResourceType]>) -> Filter {
    let mut all = vec![Filter::Eq(CLUSTER_KEY.into(), cluster.to_string())];
    if let Namespaces::Some(namespaces) = &grant.namespaces {
        all.push(Filter::In(
            NAMESPACE_KEY.into(),
            namespaces.iter().cloned().collect(),
        ));
    }
    if let Some(types) = types {
        let mut by_group: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for t in types {
            by_group.entry(&t.group).or_default().insert(&t.kind);
        }
        let mut per_group: Vec<Filter> = by_group
            .into_iter()
            .map(|(group, kinds)| {
                Filter::And(vec![
                    Filter::Eq(API_GROUP_KEY.into(), group.to_string()),
                    Filter::In(
                        KIND_KEY.into(),
                        kinds.into_iter().map(String::from).collect(),
                    ),
                ])
            })
            .collect();
        all.push(if per_group.len() == 1 {
            per_group.pop().expect("one element")
        } else {
            Filter::Or(per_group)
        });
    }
    if !grant.names.is_empty() {
        all.push(Filter::In(
            NAME_KEY.into(),
            grant.names.iter().cloned().collect(),
        ));
    }
    Filter::And(all)
}

/// The store as one caller reads it: every read of the instances or the capabilities
/// carries the caller's scope inside its filter. The search side holds nothing else, so a
/// read path that forgets the scope cannot be written.
#[derive(Clone)]
pub struct ScopedStore {
    store: Arc<dyn VectorStore>,
    scope: Scope,
    instances: String,
    capabilities: String,
}

impl ScopedStore {
    pub fn new(
        store: Arc<dyn VectorStore>,
        scope: Scope,
        instances: impl Into<String>,
        capabilities: impl Into<String>,
    ) -> Self {
        ScopedStore {
            store,
            scope,
            instances: instances.into(),
            capabilities: capabilities.into(),
        }
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// `filter` with the scope of `collection` added; `None` is everything.
    fn scoped(&self, collection: &str, filter: Option<&Filter>) -> Option<Filter> {
        let Scope::Limited(limited) = &self.scope else {
            return filter.cloned();
        };
        let scope = if collection == self.instances {
            limited.instances.clone()
        } else if collection == self.capabilities {
            limited.capabilities.clone()
        } else {
            // No other collection is read through a caller's scope: nothing.
            Filter::Or(vec![])
        };
        Some(match filter {
            None => scope,
            Some(Filter::And(all)) => {
                let mut all = all.clone();
                all.push(scope);
                Filter::And(all)
            }
            Some(f) => Filter::And(vec![f.clone(), scope]),
        })
    }

    pub async fn query(
        &self,
        collection: &str,
        vector: &[f32],
        filter: Option<&Filter>,
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        let f = self.scoped(collection, filter);
        self.store
            .query(collection, vector, f.as_ref(), limit)
            .await
    }

    pub async fn get(
        &self,
        collection: &str,
        filter: Option<&Filter>,
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        let f = self.scoped(collection, filter);
        self.store.get(collection, f.as_ref(), limit).await
    }

    pub async fn tally(
        &self,
        collection: &str,
        filter: Option<&Filter>,
        keys: &[&str],
    ) -> Result<Tally, StoreError> {
        let f = self.scoped(collection, filter);
        self.store.tally(collection, f.as_ref(), keys).await
    }

    pub async fn count(&self, collection: &str) -> Result<usize, StoreError> {
        match &self.scope {
            Scope::Everything => self.store.count(collection).await,
            Scope::Limited(_) => Ok(self.tally(collection, None, &[]).await?.values().sum()),
        }
    }

    /// The store without a scope, for what holds no object data: the cluster records and
    /// the index's cluster names (the reader limits them to [`Scope::sees_cluster`]).
    pub fn records_store(&self) -> &dyn VectorStore {
        self.store.as_ref()
    }

    /// The store itself, for a searcher of another scope.
    pub(crate) fn records_store_arc(&self) -> Arc<dyn VectorStore> {
        self.store.clone()
    }

    /// The store without a scope (an operator's: writes, maintenance).
    pub fn unscoped(&self) -> Option<&Arc<dyn VectorStore>> {
        self.scope.is_everything().then_some(&self.store)
    }
}
