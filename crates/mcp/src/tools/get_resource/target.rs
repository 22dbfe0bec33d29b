//! Which object, in which cluster, a `get_resource` call names. The inputs are checked
//! first, sizes before anything else, so that no error echoes a long input in full; the
//! cluster comes from `cluster` or from an id qualified as `cluster:namespace/...`; and the
//! index is asked only for what the call leaves open (the cluster, the apiVersion) or for
//! what it holds of an object in a cluster this server has no connection to.

use std::collections::BTreeSet;

use sync_model::search::{CountBody, GroupBy, SearchHit, SearchMode, SearchRequest};
use sync_model::{ClusterId, ResourceId, CLUSTER_SCOPE, MAX_CLUSTER_ID_LEN};

use super::GetResourceParams;
use crate::cluster::ObjectRef;
use crate::server::CwMcp;
use crate::tools::index_error;
use crate::tools::input::{echo, non_empty};

/// The longest id accepted: a namespace (63), an apiVersion (a group of up to 253 and a
/// version), a kind and a name (up to 253), with room to spare.
pub(super) const MAX_ID_BYTES: usize = 1_024;
/// The longest kind, name, namespace or apiVersion accepted (a DNS subdomain is 253).
pub(super) const MAX_FIELD_BYTES: usize = 320;
/// Index hits read to find one object by name.
const LOOKUP_HITS: usize = 50;

/// What the call asked for, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Asked {
    pub cluster: Option<String>,
    pub kind: String,
    pub name: String,
    /// By id: the namespace (`None` when cluster-scoped). By kind and name: as given.
    pub namespace: Option<String>,
    pub api_version: Option<String>,
    /// Named by an index id, which says the scope: no namespace means cluster-scoped.
    pub by_id: bool,
}

impl Asked {
    pub fn read(p: &GetResourceParams) -> Result<Asked, String> {
        for (field, value, max) in [
            ("id", &p.id, MAX_ID_BYTES),
            ("cluster", &p.cluster, MAX_CLUSTER_ID_LEN),
            ("kind", &p.kind, MAX_FIELD_BYTES),
            ("name", &p.name, MAX_FIELD_BYTES),
            ("namespace", &p.namespace, MAX_FIELD_BYTES),
            ("apiVersion", &p.api_version, MAX_FIELD_BYTES),
        ] {
            if let Some(v) = value.as_deref().map(str::trim).filter(|v| v.len() > max) {
                return Err(format!(
                    "{field} {} is longer than any {field} of an object ({max} bytes at \
                     most): pass the id and cluster of a search hit unchanged, or kind, name \
                     and namespace",
                    echo(v)
                ));
            }
        }
        let mut cluster = non_empty(p.cluster.as_deref());
        if let Some(raw) = non_empty(p.id.as_deref()) {
            let (prefix, id) = split_cluster(&raw);
            if let Some(prefix) = prefix {
                match &cluster {
                    Some(c) if c != prefix => {
                        return Err(format!(
                            "id {} names cluster {} but cluster is {}: give one of them",
                            echo(&raw),
                            echo(prefix),
                            echo(c)
                        ))
                    }
                    _ => cluster = Some(prefix.to_string()),
                }
            }
            let object = object_of_id(&ResourceId::from_raw(id)).map_err(|e| {
                format!(
                    "id {} is not an index id ({e}): pass the id of a search hit unchanged \
                     (with its cluster), or kind, name and namespace",
                    echo(&raw)
                )
            })?;
            return Ok(Asked {
                cluster: checked_cluster(cluster)?,
                kind: object.kind,
                name: object.name,
                namespace: object.namespace,
                api_version: Some(object.api_version),
                by_id: true,
            });
        }
        let (Some(kind), Some(name)) = (non_empty(p.kind.as_deref()), non_empty(p.name.as_deref()))
        else {
            return Err(
                "give the id (and cluster) of a search hit, or kind and name (and \
                        namespace for namespaced objects)"
                    .into(),
            );
        };
        Ok(Asked {
            cluster: checked_cluster(cluster)?,
            kind,
            name,
            namespace: non_empty(p.namespace.as_deref()),
            api_version: non_empty(p.api_version.as_deref()),
            by_id: false,
        })
    }

    /// The object, when the call names it completely (an id, or kind, name and apiVersion).
    fn object(&self) -> Option<ObjectRef> {
        Some(ObjectRef {
            api_version: self.api_version.clone()?,
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        })
    }

    /// `Kind namespace/name` for messages.
    pub fn display(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }

    /// Whether the index's `hit` is this object.
    fn matches(&self, hit: &SearchHit) -> bool {
        if hit.kind != self.kind || hit.name != self.name {
            return false;
        }
        if self.by_id {
            let id = ResourceId::new(
                self.namespace.as_deref(),
                self.api_version.as_deref().unwrap_or_default(),
                &self.kind,
                &self.name,
            );
            return hit.id == id.as_str();
        }
        let api_version_matches = self.api_version.as_deref().is_none_or(|v| {
            object_of_id(&ResourceId::from_raw(hit.id.clone())).is_ok_and(|o| o.api_version == v)
        });
        let namespace_matches = self
            .namespace
            .as_deref()
            .is_none_or(|ns| hit.namespace == ns);
        api_version_matches && namespace_matches
    }
}

/// The cluster prefix of a qualified id (`prod-eu:data/apps/v1/StatefulSet/db`) and the
/// id. A `:` after the first `/` belongs to the name (`system:controller:...` roles).
fn split_cluster(raw: &str) -> (Option<&str>, &str) {
    match raw.split_once(sync_model::CLUSTER_SEPARATOR) {
        Some((prefix, id)) if !prefix.contains('/') => (Some(prefix), id),
        _ => (None, raw),
    }
}

fn checked_cluster(cluster: Option<String>) -> Result<Option<String>, String> {
    cluster
        .map(|c| {
            ClusterId::new(&c)
                .map(|id| id.to_string())
                .map_err(|e| format!("{e}; list_clusters names the clusters"))
        })
        .transpose()
}

/// The object an index id names (`_cluster` as the namespace means cluster-scoped).
pub(super) fn object_of_id(id: &ResourceId) -> Result<ObjectRef, sync_model::IdError> {
    let parts = id.parts()?;
    Ok(ObjectRef {
        api_version: parts.api_version.to_string(),
        kind: parts.kind.to_string(),
        namespace: (parts.namespace != CLUSTER_SCOPE).then(|| parts.namespace.to_string()),
        name: parts.name.to_string(),
    })
}

/// The object a call names, located: its cluster, the object, and what the index holds of
/// it where the index was asked and holds it.
#[derive(Debug)]
pub(super) struct Located {
    /// Empty when the index names no cluster for the object (documents written before
    /// clusters existed).
    pub cluster: String,
    pub object: ObjectRef,
    pub indexed: Option<SearchHit>,
}

impl CwMcp {
    /// Where `asked` is: the cluster given, or the one cluster the index holds the object
    /// in, or the one cluster this server reads live; the object as given or as the index
    /// holds it (its apiVersion and namespace); else, in a cluster read live, as its
    /// discovery names the kind.
    pub(super) async fn locate(&self, asked: &Asked) -> Result<Located, String> {
        let connected = asked
            .cluster
            .as_deref()
            .is_some_and(|c| self.cluster.connection(c).is_some());
        if let (Some(cluster), false) = (&asked.cluster, connected) {
            self.check_known(cluster).await?;
        }
        // A connected cluster and a complete name need no index.
        if let (true, Some(object), Some(cluster)) = (connected, asked.object(), &asked.cluster) {
            return Ok(Located {
                cluster: cluster.clone(),
                object,
                indexed: None,
            });
        }
        let hits = self.find_indexed(asked).await?;
        let cluster = match &asked.cluster {
            Some(c) => c.clone(),
            None => self.cluster_of(asked, &hits)?,
        };
        let indexed = hits.into_iter().find(|h| h.cluster == cluster);
        let object = match (asked.object(), &indexed) {
            (Some(object), _) => object,
            (None, Some(hit)) => {
                let found = object_of_id(&ResourceId::from_raw(hit.id.clone())).map_err(|e| {
                    format!("the index holds a malformed id {}: {e}", echo(&hit.id))
                })?;
                ObjectRef {
                    kind: asked.kind.clone(),
                    name: asked.name.clone(),
                    ..found
                }
            }
            (None, None) => self.discover(asked, &cluster).await?,
        };
        Ok(Located {
            cluster,
            object,
            indexed,
        })
    }

    /// The cluster of an object named without one: the one the index holds it in, else
    /// the one this server reads live.
    fn cluster_of(&self, asked: &Asked, hits: &[SearchHit]) -> Result<String, String> {
        let clusters: BTreeSet<&str> = hits.iter().map(|h| h.cluster.as_str()).collect();
        let connected = self.cluster.connected();
        match (clusters.len(), connected.as_slice()) {
            (1, _) => Ok(clusters.into_iter().next().unwrap_or_default().to_string()),
            (0, [only]) => Ok(only.clone()),
            (0, []) => Err(format!(
                "the index has no {}: check the spelling with search_resources (this server \
                 reads no cluster live, so it cannot look further)",
                asked.display()
            )),
            (0, several) => Err(format!(
                "the index has no {}: check the spelling with search_resources, or give \
                 cluster (one of {}) to read it from that cluster anyway",
                asked.display(),
                several.join(", ")
            )),
            _ => Err(format!(
                "{} is in several clusters ({}): give cluster, as each search hit names it",
                asked.display(),
                clusters.into_iter().collect::<Vec<_>>().join(", ")
            )),
        }
    }

    /// The index's hits that are `asked`, in any cluster unless one is given.
    pub(super) async fn find_indexed(&self, asked: &Asked) -> Result<Vec<SearchHit>, String> {
        let namespace = match (&asked.namespace, asked.by_id) {
            (Some(ns), _) => Some(ns.clone()),
            (None, true) => Some(CLUSTER_SCOPE.to_string()),
            (None, false) => None,
        };
        let hits = self
            .index
            .search(&SearchRequest {
                query: asked.name.clone(),
                kind: Some(asked.kind.clone()),
                namespace,
                cluster: asked.cluster.clone(),
                mode: SearchMode::Keyword,
                limit: Some(LOOKUP_HITS),
                ..Default::default()
            })
            .await
            .map_err(index_error)?;
        Ok(hits.into_iter().filter(|h| asked.matches(h)).collect())
    }

    /// An object the index does not hold (Secrets are left out by default, or it is newer
    /// than the last sync), in a cluster read live: its kind's version from discovery.
    async fn discover(&self, asked: &Asked, cluster: &str) -> Result<ObjectRef, String> {
        let not_indexed = || {
            format!(
                "the index has no {} in cluster {cluster}: check the spelling with \
                 search_resources, or give apiVersion to read it from the cluster anyway",
                asked.display()
            )
        };
        let Some(live) = self.cluster.connection(cluster) else {
            return Err(format!(
                "{}. This server has no connection to cluster {cluster}, so it cannot look \
                 further: {}",
                not_indexed(),
                self.cluster.no_access_hint
            ));
        };
        match live.api_version_of(&asked.kind).await {
            Ok(Some(api_version)) => Ok(ObjectRef {
                api_version,
                kind: asked.kind.clone(),
                namespace: asked.namespace.clone(),
                name: asked.name.clone(),
            }),
            _ => Err(not_indexed()),
        }
    }

    /// An error naming the known clusters unless `cluster` is one of the index's clusters
    /// (a cluster this server reads live is known without asking).
    async fn check_known(&self, cluster: &str) -> Result<(), String> {
        let counted = self
            .index
            .count(&CountBody {
                group_by: Some(GroupBy::Cluster),
                ..Default::default()
            })
            .await
            .map_err(index_error)?;
        let mut known: BTreeSet<String> = counted.groups.into_iter().map(|g| g.key).collect();
        if known.contains(cluster) {
            return Ok(());
        }
        known.extend(self.cluster.connected());
        known.remove("");
        Err(if known.is_empty() {
            format!("unknown cluster {cluster}: the index holds no cluster yet")
        } else {
            format!(
                "unknown cluster {cluster}: the known clusters are {} (list_clusters shows them)",
                known.into_iter().collect::<Vec<_>>().join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(id: &str, cluster: Option<&str>) -> GetResourceParams {
        GetResourceParams {
            id: Some(id.into()),
            cluster: cluster.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn an_index_id_names_the_object_and_whether_it_is_cluster_scoped() {
        let db = object_of_id(&ResourceId::from_raw("data/apps/v1/StatefulSet/db")).unwrap();
        assert_eq!(
            db,
            ObjectRef {
                api_version: "apps/v1".into(),
                kind: "StatefulSet".into(),
                namespace: Some("data".into()),
                name: "db".into(),
            }
        );
        let ns = object_of_id(&ResourceId::from_raw("_cluster/v1/Namespace/data")).unwrap();
        assert_eq!((ns.namespace, ns.kind.as_str()), (None, "Namespace"));
        assert!(object_of_id(&ResourceId::from_raw("")).is_err());
    }

    #[test]
    fn a_qualified_id_carries_its_cluster_and_a_colon_in_a_name_does_not() {
        let asked = Asked::read(&params("prod-eu:data/apps/v1/StatefulSet/db", None)).unwrap();
        assert_eq!(asked.cluster.as_deref(), Some("prod-eu"));
        assert_eq!(
            (asked.kind.as_str(), asked.name.as_str()),
            ("StatefulSet", "db")
        );
        let role = "_cluster/rbac.authorization.k8s.io/v1/ClusterRole/system:controller:job";
        let asked = Asked::read(&params(role, None)).unwrap();
        assert_eq!(asked.cluster, None);
        assert_eq!(asked.name, "system:controller:job");
        let agreed = Asked::read(&params("a:data/v1/Pod/p", Some("a"))).unwrap();
        assert_eq!(agreed.cluster.as_deref(), Some("a"));
        let err = Asked::read(&params("a:data/v1/Pod/p", Some("b"))).unwrap_err();
        assert!(err.contains("\"a\"") && err.contains("\"b\""), "{err}");
    }

    #[test]
    fn a_long_input_is_refused_without_being_echoed_in_full() {
        for p in [
            params(&"x".repeat(100_000), None),
            params("data/v1/Pod/p", Some(&"c".repeat(100_000))),
            GetResourceParams {
                kind: Some("Pod".into()),
                name: Some("n".repeat(100_000)),
                ..Default::default()
            },
        ] {
            let err = Asked::read(&p).unwrap_err();
            assert!(err.len() < 400, "{} bytes: {err}", err.len());
            assert!(err.contains("(100000 bytes in all)"), "{err}");
        }
        let err = Asked::read(&params("not/an/id", Some("Bad Cluster"))).unwrap_err();
        assert!(err.contains("not an index id"), "{err}");
        let err = Asked::read(&params("data/v1/Pod/p", Some("Bad Cluster"))).unwrap_err();
        assert!(err.contains("DNS label"), "{err}");
    }
}
