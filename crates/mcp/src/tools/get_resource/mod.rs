//! `get_resource`: one object, named by an index id (and its cluster) or by kind and name,
//! read live from its cluster where this server has a connection to it, summarised with
//! its events and owner chain; without one, what the index holds of it, marked as such.
//! `target` says which object in which cluster a call names.

mod target;

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use sync_model::search::SearchHit;
use sync_model::ResourceId;

use super::answer::MAX_LINE_CHARS;
use super::MAX_ANSWER_BYTES;
use crate::cluster::{ClusterError, LiveCluster, ObjectRef};
use crate::resource::{from_index, owner_of, summarise, ResourceDetails};
use crate::server::CwMcp;
use crate::untrusted::clean;
use target::{Asked, Located};

/// Owners followed above an object at most (Pod → ReplicaSet → Deployment → operator CR).
const MAX_OWNERS: usize = 5;

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
/// Every field may be left out.
#[serde(default, rename_all = "camelCase")]
pub struct GetResourceParams {
    /// The id from a search hit (`namespace/apiVersion/kind/name`, or `cluster:` before it);
    /// or give kind and name.
    #[schemars(length(max = 1024))]
    pub id: Option<String>,
    /// The cluster of the object, as its search hit names it (an id from list_clusters);
    /// needed only when the index holds the object in several clusters.
    #[schemars(length(max = 63))]
    pub cluster: Option<String>,
    #[schemars(length(max = 320))]
    pub kind: Option<String>,
    #[schemars(length(max = 320))]
    pub name: Option<String>,
    /// Leave out for cluster-scoped objects.
    #[schemars(length(max = 320))]
    pub namespace: Option<String>,
    /// `apps/v1`, `v1`; looked up in the index when left out.
    #[schemars(length(max = 320))]
    pub api_version: Option<String>,
}

#[tool_router(router = get_resource_router, vis = "pub(super)")]
impl CwMcp {
    #[tool(
        annotations(read_only_hint = true, open_world_hint = false),
        description = crate::untrusted::tool_description!(
            "Read one object live from its cluster: a spec summary, status, \
conditions, recent events, its owner chain (ReplicaSet, Deployment, operator resource) and \
its health in the index's words (Current, InProgress, Failed, Terminating or Unknown, with \
the same reason search hits carry; the conditions and events are the evidence). Give the id \
and cluster from a search hit, or kind, name and namespace (and cluster where the index holds \
the name in several). Where this server has no connection to that cluster, the answer is what \
the index holds (labels, health with reason, images, owner, text), marked source=index, as of \
the cluster's last sync; notes say how to connect it. Secrets' values and credential-like \
annotations are never returned."
        )
    )]
    async fn get_resource(
        &self,
        Parameters(p): Parameters<GetResourceParams>,
    ) -> Result<Json<ResourceDetails>, String> {
        self.resource(&p).await.map(Json)
    }
}

impl CwMcp {
    /// `get_resource`'s answer outside a tool call: the object `p` names, read live where
    /// this server has a connection to its cluster, else as the index holds it. The web
    /// pages' object view reads it here, so that both say the same of the same object.
    pub async fn resource(&self, p: &GetResourceParams) -> Result<ResourceDetails, String> {
        let asked = Asked::read(p)?;
        let located = self.locate(&asked).await?;
        let mut details = match self.cluster.connection(&located.cluster) {
            Some(live) => match self.read_live(live.as_ref(), &located).await {
                Ok(details) => details,
                Err(ClusterError::NotFound(_)) => {
                    return Err(format!(
                        "{} is not in cluster {} (where the index holds it, it was deleted \
                         since the last sync): search again to find its current name",
                        located.object.display(),
                        located.cluster
                    ))
                }
                Err(e) => {
                    let why = cluster_error(e);
                    let hit = self
                        .indexed(&asked, located)
                        .await
                        .map_err(|_| why.clone())?;
                    index_answer(
                        &hit,
                        format!("cluster {} could not be read live ({why})", hit.cluster),
                    )
                }
            },
            None => {
                let cluster = located.cluster.clone();
                let hit = self.indexed(&asked, located).await?;
                let why = if cluster.is_empty() {
                    format!(
                        "the index names no cluster for this object (it was written before \
                         clusters were recorded). {}",
                        self.cluster.no_access_hint
                    )
                } else {
                    format!(
                        "this server has no connection to cluster {cluster}. {}",
                        self.cluster.no_access_hint
                    )
                };
                index_answer(&hit, why)
            }
        };
        details.fit_within(MAX_ANSWER_BYTES);
        Ok(details)
    }
}

/// `hit` as the answer, its first note saying why it comes from the index.
fn index_answer(hit: &SearchHit, why: String) -> ResourceDetails {
    let mut details = from_index(hit);
    details.notes.insert(
        0,
        format!(
            "From the index, as of the cluster's last sync, not live: {why} Status, \
             conditions and events need a live read."
        ),
    );
    details
}

impl CwMcp {
    /// The object read from its cluster, with its events and owners.
    async fn read_live(
        &self,
        live: &dyn LiveCluster,
        located: &Located,
    ) -> Result<ResourceDetails, ClusterError> {
        let target = &located.object;
        let object = live.get(target).await?;
        let mut notes = Vec::new();
        let events = live.events(target).await.unwrap_or_else(|e| {
            notes.push(format!("events could not be read: {e}"));
            vec![]
        });
        let id = ResourceId::new(
            target.namespace.as_deref(),
            &target.api_version,
            &target.kind,
            &target.name,
        );
        let mut details = summarise(id.as_str(), &object, &events);
        details.cluster = located.cluster.clone();
        details.notes.extend(notes);
        details.owners = self
            .owner_chain(live, &object, target)
            .await
            .iter()
            .map(|o| clean(o, MAX_LINE_CHARS))
            .collect();
        Ok(details)
    }

    /// What the index holds of the located object (asked for now if `locate` did not).
    async fn indexed(&self, asked: &Asked, located: Located) -> Result<SearchHit, String> {
        if let Some(hit) = located.indexed {
            return Ok(hit);
        }
        let in_cluster = Asked {
            cluster: Some(located.cluster.clone()),
            kind: located.object.kind.clone(),
            name: located.object.name.clone(),
            namespace: located.object.namespace.clone(),
            api_version: Some(located.object.api_version.clone()),
            by_id: true,
        };
        let hits = self.find_indexed(&in_cluster).await?;
        hits.into_iter().next().ok_or_else(|| {
            format!(
                "the index holds no {} in cluster {}, and this server cannot read that \
                 cluster live: check the name with search_resources. {}",
                asked.display(),
                located.cluster,
                self.cluster.no_access_hint
            )
        })
    }

    /// Owners above `object`, nearest first, as `Kind namespace/name`; an owner that
    /// cannot be read ends the chain with a note of why.
    async fn owner_chain(
        &self,
        live: &dyn LiveCluster,
        object: &serde_json::Value,
        target: &ObjectRef,
    ) -> Vec<String> {
        let mut chain = Vec::new();
        let mut current = object.clone();
        for _ in 0..MAX_OWNERS {
            let Some((api_version, kind, name)) = owner_of(&current) else {
                break;
            };
            // Owners live in the object's namespace, or are cluster-scoped; try the former.
            let owner = ObjectRef {
                api_version,
                kind,
                namespace: target.namespace.clone(),
                name,
            };
            chain.push(owner.display());
            match live.get(&owner).await {
                Ok(next) => current = next,
                Err(ClusterError::NotFound(_)) if owner.namespace.is_some() => {
                    let cluster_scoped = ObjectRef {
                        namespace: None,
                        ..owner
                    };
                    match live.get(&cluster_scoped).await {
                        Ok(next) => {
                            chain.pop();
                            chain.push(cluster_scoped.display());
                            current = next;
                        }
                        Err(e) => {
                            chain.push(format!("(stopped: {e})"));
                            break;
                        }
                    }
                }
                Err(e) => {
                    chain.push(format!("(stopped: {e})"));
                    break;
                }
            }
        }
        chain
    }
}

fn cluster_error(e: ClusterError) -> String {
    let message = match e {
        ClusterError::UnknownKind(k) => format!(
            "the cluster serves no kind {k}: check kind and apiVersion (search hits' ids carry both)"
        ),
        other => other.to_string(),
    };
    // The object's names come from the caller: never repeated in full.
    clean(&message, MAX_ERROR_CHARS)
}

/// Characters of an error message that names an object at most.
const MAX_ERROR_CHARS: usize = 400;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use async_trait::async_trait;
    use serde_json::{json, Value};
    use sync_model::search::{
        AskAnswer, CountAnswer, CountBody, GroupBy, GroupCount, SearchRequest,
    };

    use super::*;
    use crate::cluster::{ClusterAccess, LiveClusters};
    use crate::index::{Index, IndexError};
    use crate::resource::Source;

    /// An index of a few hits, filtered as the search API filters them.
    struct FakeIndex(Vec<SearchHit>);

    #[async_trait]
    impl Index for FakeIndex {
        async fn clusters(&self) -> Result<sync_model::api::ClustersResponse, crate::IndexError> {
            Err(crate::IndexError::Failed(
                "clusters are not listed here".into(),
            ))
        }
        async fn search(&self, req: &SearchRequest) -> Result<Vec<SearchHit>, IndexError> {
            Ok(self
                .0
                .iter()
                .filter(|h| req.kind.as_ref().is_none_or(|k| &h.kind == k))
                .filter(|h| req.namespace.as_ref().is_none_or(|n| &h.namespace == n))
                .filter(|h| req.cluster.as_ref().is_none_or(|c| &h.cluster == c))
                .filter(|h| h.name == req.query)
                .cloned()
                .collect())
        }
        async fn ask(&self, _: &str, _: usize, _: Option<&str>) -> Result<AskAnswer, IndexError> {
            unimplemented!("get_resource never asks")
        }
        async fn count(&self, body: &CountBody) -> Result<CountAnswer, IndexError> {
            assert_eq!(body.group_by, Some(GroupBy::Cluster));
            let mut by: BTreeMap<&str, usize> = BTreeMap::new();
            for h in &self.0 {
                *by.entry(h.cluster.as_str()).or_default() += 1;
            }
            Ok(CountAnswer {
                total: self.0.len(),
                groups: by
                    .into_iter()
                    .map(|(k, count)| GroupCount {
                        key: k.to_string(),
                        count,
                    })
                    .collect(),
            })
        }
    }

    /// A cluster holding objects by name.
    struct FakeCluster(BTreeMap<String, Value>);

    #[async_trait]
    impl LiveCluster for FakeCluster {
        async fn get(&self, target: &ObjectRef) -> Result<Value, ClusterError> {
            self.0
                .get(&target.name)
                .cloned()
                .ok_or_else(|| ClusterError::NotFound(target.display()))
        }
        async fn events(&self, _: &ObjectRef) -> Result<Vec<Value>, ClusterError> {
            Ok(vec![])
        }
    }

    fn hit(cluster: &str, name: &str, ready: u64) -> SearchHit {
        SearchHit {
            id: format!("data/apps/v1/StatefulSet/{name}"),
            cluster: cluster.into(),
            kind: "StatefulSet".into(),
            namespace: "data".into(),
            name: name.into(),
            labels: [("app".to_string(), name.to_string())].into(),
            health: Some(sync_model::Health::new(
                sync_model::HealthStatus::InProgress,
                format!("{ready}/3 replicas ready"),
            )),
            score: 0.0,
            matched: vec![],
            document: format!(
                "StatefulSet {name} | namespace: data | apiVersion: apps/v1 | images: postgres:16"
            ),
            owner: None,
        }
    }

    fn statefulset(name: &str, ready: u64) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
               "metadata": {"name": name, "namespace": "data"},
               "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "db", "image": "postgres:16"}]}}},
               "status": {"replicas": 3, "readyReplicas": ready}})
    }

    /// An index of `db` in clusters alpha and beta (0/3 ready when indexed) and `only-beta`
    /// in beta; a connection to alpha only, where `db` now has 3/3 ready.
    fn server() -> CwMcp {
        let index = FakeIndex(vec![
            hit("alpha", "db", 0),
            hit("beta", "db", 0),
            hit("beta", "only-beta", 1),
        ]);
        let alpha = FakeCluster([("db".to_string(), statefulset("db", 3))].into());
        let connections: crate::Connections =
            [("alpha".to_string(), Arc::new(alpha) as Arc<dyn LiveCluster>)].into();
        CwMcp::new(
            Arc::new(index),
            ClusterAccess::new(
                LiveClusters::new(connections),
                "Add a kubeconfig named after it to --cluster-kubeconfigs.",
            ),
        )
    }

    async fn get(server: &CwMcp, args: Value) -> Result<ResourceDetails, String> {
        let p: GetResourceParams = serde_json::from_value(args).unwrap();
        server.get_resource(Parameters(p)).await.map(|Json(d)| d)
    }

    #[tokio::test]
    async fn a_connected_cluster_is_read_live() {
        let s = server();
        for args in [
            json!({"id": "data/apps/v1/StatefulSet/db", "cluster": "alpha"}),
            json!({"id": "alpha:data/apps/v1/StatefulSet/db"}),
            json!({"kind": "StatefulSet", "name": "db", "namespace": "data", "cluster": "alpha"}),
        ] {
            let d = get(&s, args.clone()).await.unwrap();
            assert_eq!(
                (d.source, d.cluster.as_str()),
                (Source::Live, "alpha"),
                "{args}"
            );
            assert_eq!(d.health_reason, "3/3 replicas ready", "{args}");
            assert_eq!(d.images, ["postgres:16"]);
        }
    }

    #[tokio::test]
    async fn a_cluster_without_a_connection_answers_from_the_index_and_says_so() {
        let s = server();
        let d = get(&s, json!({"id": "beta:data/apps/v1/StatefulSet/db"}))
            .await
            .unwrap();
        assert_eq!((d.source, d.cluster.as_str()), (Source::Index, "beta"));
        assert_eq!(
            (d.health.as_str(), d.health_reason.as_str()),
            ("InProgress", "0/3 replicas ready")
        );
        assert_eq!(d.images, ["postgres:16"]);
        assert!(d
            .text
            .as_deref()
            .is_some_and(|t| t.starts_with("StatefulSet db")));
        let note = &d.notes[0];
        assert!(
            note.contains("From the index") && note.contains("cluster beta"),
            "{note}"
        );
        assert!(note.contains("--cluster-kubeconfigs"), "{note}");
        // Named without a cluster, the one cluster that holds it is taken.
        let d = get(&s, json!({"kind": "StatefulSet", "name": "only-beta"}))
            .await
            .unwrap();
        assert_eq!((d.source, d.cluster.as_str()), (Source::Index, "beta"));
    }

    #[tokio::test]
    async fn an_unknown_cluster_is_an_error_naming_the_known_ones() {
        let err = get(
            &server(),
            json!({"id": "data/apps/v1/StatefulSet/db", "cluster": "gamma"}),
        )
        .await
        .unwrap_err();
        assert!(err.contains("unknown cluster gamma"), "{err}");
        assert!(err.contains("alpha, beta"), "{err}");
    }

    #[tokio::test]
    async fn an_object_in_several_clusters_needs_its_cluster() {
        let err = get(&server(), json!({"id": "data/apps/v1/StatefulSet/db"}))
            .await
            .unwrap_err();
        assert!(err.contains("several clusters (alpha, beta)"), "{err}");
    }

    #[tokio::test]
    async fn an_object_deleted_since_it_was_indexed_is_named_with_its_cluster() {
        let mut s = server();
        s.index = Arc::new(FakeIndex(vec![hit("alpha", "gone", 0)]));
        let err = get(&s, json!({"id": "alpha:data/apps/v1/StatefulSet/gone"}))
            .await
            .unwrap_err();
        assert!(
            err.contains("StatefulSet data/gone is not in cluster alpha"),
            "{err}"
        );
    }
}
