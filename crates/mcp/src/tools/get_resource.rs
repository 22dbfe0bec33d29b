//! `get_resource`: one object read live from the cluster (named by an index id, or by kind
//! and name), summarised with its events and owner chain.

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use sync_model::search::{SearchMode, SearchRequest};
use sync_model::ResourceId;

use super::answer::MAX_LINE_CHARS;
use super::index_error;
use super::input::non_empty;
use crate::cluster::{ClusterError, LiveCluster, ObjectRef};
use crate::resource::{owner_of, summarise, ResourceDetails};
use crate::server::CwMcp;
use crate::untrusted::{clean, echo};

/// Owners followed above an object at most (Pod → ReplicaSet → Deployment → operator CR).
const MAX_OWNERS: usize = 5;

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetResourceParams {
    /// The id from a search hit (`namespace/apiVersion/kind/name`); or give kind and name.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// Leave out for cluster-scoped objects.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `apps/v1`, `v1`; looked up in the index when left out.
    #[serde(default)]
    pub api_version: Option<String>,
}

#[tool_router(router = get_resource_router, vis = "pub(super)")]
impl CwMcp {
    #[tool(
        description = concat!(
            "Read one object live from the cluster: a spec summary, status, \
conditions, recent events, its owner chain (ReplicaSet, Deployment, operator resource) and \
its health in the index's words (Current, InProgress, Failed, Terminating or Unknown, with \
the same reason search hits carry; the conditions and events are the evidence). Give the id from \
a search hit, or kind, name and namespace. Secrets' values and credential-like annotations \
are never returned. Needs cluster access, which cw run and cw mcp --kubeconfig have.",
            crate::untrusted::cluster_text_rule!()
        ),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_resource(
        &self,
        Parameters(p): Parameters<GetResourceParams>,
    ) -> Result<Json<ResourceDetails>, String> {
        let Some(live) = self.cluster.live.clone() else {
            return Err(format!(
                "this cw server has no access to the cluster, so it cannot read objects live. \
                 {} The index still answers search_resources and ask.",
                self.cluster.no_access_hint
            ));
        };
        let target = self.resolve(&p).await?;
        let id = ResourceId::new(
            target.namespace.as_deref(),
            &target.api_version,
            &target.kind,
            &target.name,
        );
        let object = live
            .get(&target)
            .await
            .map_err(|e| cluster_error(e, &target))?;
        let mut notes = Vec::new();
        let events = live.events(&target).await.unwrap_or_else(|e| {
            notes.push(format!("events could not be read: {e}"));
            vec![]
        });
        let mut details = summarise(id.as_str(), &object, &events);
        details.notes.extend(notes);
        details.owners = self
            .owner_chain(live.as_ref(), &object, &target)
            .await
            .iter()
            .map(|o| clean(o, MAX_LINE_CHARS))
            .collect();
        details.fit();
        Ok(Json(details))
    }
}

impl CwMcp {
    /// The object `p` names: its id, or kind and name (the apiVersion looked up in the index).
    async fn resolve(&self, p: &GetResourceParams) -> Result<ObjectRef, String> {
        if let Some(id) = non_empty(p.id.as_deref()) {
            let id = ResourceId::from_raw(id);
            return object_of_id(&id).map_err(|e| {
                format!(
                    "id {} is not an index id ({e}): pass the id of a search hit unchanged, \
                     or kind, name and namespace",
                    echo(id.as_str())
                )
            });
        }
        let (Some(kind), Some(name)) = (non_empty(p.kind.as_deref()), non_empty(p.name.as_deref()))
        else {
            return Err(
                "give the id of a search hit, or kind and name (and namespace for \
                        namespaced objects)"
                    .into(),
            );
        };
        let namespace = non_empty(p.namespace.as_deref());
        match non_empty(p.api_version.as_deref()) {
            Some(api_version) => Ok(ObjectRef {
                api_version,
                kind,
                namespace,
                name,
            }),
            None => self.look_up(kind, name, namespace).await,
        }
    }

    /// The object of this kind and name as the index holds it (its apiVersion, and its
    /// namespace when none is given); else, where the cluster is at hand, as its discovery
    /// names the kind's version.
    async fn look_up(
        &self,
        kind: String,
        name: String,
        namespace: Option<String>,
    ) -> Result<ObjectRef, String> {
        let hits = self
            .index
            .search(&SearchRequest {
                query: name.clone(),
                kind: Some(kind.clone()),
                namespace: namespace.clone(),
                mode: SearchMode::Keyword,
                limit: Some(20),
                ..Default::default()
            })
            .await
            .map_err(index_error)?;
        if let Some(hit) = hits.iter().find(|h| h.name == name) {
            let found = object_of_id(&ResourceId::from_raw(hit.id.clone()))
                .map_err(|e| format!("the index holds a malformed id {:?}: {e}", hit.id))?;
            return Ok(ObjectRef {
                kind,
                name,
                ..found
            });
        }
        // Not indexed (Secrets are left out by default, or it is newer than the index):
        // the cluster's discovery names the kind's version.
        if let Some(live) = &self.cluster.live {
            if let Ok(Some(api_version)) = live.api_version_of(&kind).await {
                return Ok(ObjectRef {
                    api_version,
                    kind,
                    namespace,
                    name,
                });
            }
        }
        Err(format!(
            "the index has no {} named {}{}: check the spelling with \
             search_resources, or give apiVersion to read it from the cluster anyway",
            echo(&kind),
            echo(&name),
            namespace
                .as_deref()
                .map(|ns| format!(" in namespace {}", echo(ns)))
                .unwrap_or_default()
        ))
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

/// The object an index id names (`_cluster` as the namespace means cluster-scoped).
fn object_of_id(id: &ResourceId) -> Result<ObjectRef, sync_model::IdError> {
    let parts = id.parts()?;
    Ok(ObjectRef {
        api_version: parts.api_version.to_string(),
        kind: parts.kind.to_string(),
        namespace: (parts.namespace != sync_model::CLUSTER_SCOPE)
            .then(|| parts.namespace.to_string()),
        name: parts.name.to_string(),
    })
}

fn cluster_error(e: ClusterError, target: &ObjectRef) -> String {
    let message = match e {
        ClusterError::NotFound(_) => format!(
            "{} is not in the cluster (it may have been deleted since it was indexed): search \
             again to find its current name",
            target.display()
        ),
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
    use super::*;

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
}
