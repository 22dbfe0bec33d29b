//! Live reads from Kubernetes clusters for `get_resource`: a trait, implemented by cw over
//! kube, and the set of clusters a server holds a connection to, by cluster id (one for
//! `cw run`; one per kubeconfig given to `cw serve`). The summary of what is read (and what
//! is never returned, such as Secrets' data) is this crate's, in `resource`.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use serde_json::Value;
use sync_model::rbac::UserInfo;

/// Connections by cluster id (the index's id of the cluster, as its watcher sends it).
pub type Connections = BTreeMap<String, Arc<dyn LiveCluster>>;

/// The clusters a server reads live: shared by every session and replaced as a whole when
/// the connections change (cw re-reads its kubeconfig directory), so that a session sees
/// either the old set or the new one.
#[derive(Clone, Default)]
pub struct LiveClusters(Arc<RwLock<Arc<Connections>>>);

impl LiveClusters {
    pub fn new(connections: Connections) -> Self {
        LiveClusters(Arc::new(RwLock::new(Arc::new(connections))))
    }

    /// Makes `connections` the set every session reads from now on.
    pub fn replace(&self, connections: Connections) {
        // A panic while the lock was held cannot leave the map half-written: it is swapped whole.
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(connections);
    }

    /// The connections as they are now.
    pub fn current(&self) -> Arc<Connections> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What the server can read live, and what to tell the model about clusters it cannot.
#[derive(Clone)]
pub struct ClusterAccess {
    pub clusters: LiveClusters,
    /// How to give this server a connection to a cluster it has none for (which flag,
    /// file or chart value), said to the model with the cluster's name.
    pub no_access_hint: String,
}

impl ClusterAccess {
    pub fn new(clusters: LiveClusters, hint: impl Into<String>) -> Self {
        ClusterAccess {
            clusters,
            no_access_hint: hint.into(),
        }
    }

    /// No connection to any cluster: `get_resource` answers from the index, with `hint`.
    pub fn none(hint: impl Into<String>) -> Self {
        Self::new(LiveClusters::default(), hint)
    }

    /// The connection to `cluster`, if the server has one.
    pub fn connection(&self, cluster: &str) -> Option<Arc<dyn LiveCluster>> {
        self.clusters.current().get(cluster).cloned()
    }

    /// What `user` may read live: every connection that can act as them (Kubernetes
    /// impersonation, so that each cluster's own authorizer decides), the others dropped
    /// (`get_resource` then answers from the caller's index).
    pub fn as_user(&self, user: &UserInfo) -> ClusterAccess {
        let connections: Connections = self
            .clusters
            .current()
            .iter()
            .filter_map(|(id, live)| Some((id.clone(), live.as_user(user)?)))
            .collect();
        ClusterAccess {
            clusters: LiveClusters::new(connections),
            no_access_hint: self.no_access_hint.clone(),
        }
    }

    /// The ids of the clusters the server has a connection to, sorted.
    pub fn connected(&self) -> Vec<String> {
        self.clusters.current().keys().cloned().collect()
    }
}

/// One object, as an owner reference or an index id names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// `apps/v1`, `v1`, `postgresql.cnpg.io/v1`.
    pub api_version: String,
    pub kind: String,
    /// `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// `Kind namespace/name`, or `Kind name` when cluster-scoped.
    pub fn display(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

/// What `get_resource` reads from the cluster.
#[async_trait]
pub trait LiveCluster: Send + Sync {
    /// The object as the API server returns it.
    async fn get(&self, target: &ObjectRef) -> Result<Value, ClusterError>;
    /// Core v1 Events whose involvedObject is `target`, in any order.
    async fn events(&self, target: &ObjectRef) -> Result<Vec<Value>, ClusterError>;
    /// The preferred apiVersion of `kind` in the cluster's discovery, for objects the index
    /// does not hold (Secrets are not indexed by default); `None` when no group serves it.
    async fn api_version_of(&self, _kind: &str) -> Result<Option<String>, ClusterError> {
        Ok(None)
    }
    /// This connection acting as `user` (`Impersonate-User`, `Impersonate-Group`): what the
    /// cluster's authorizer lets them read, and nothing else. `None` when it cannot.
    fn as_user(&self, _user: &UserInfo) -> Option<Arc<dyn LiveCluster>> {
        None
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{0} was not found in the cluster")]
    NotFound(String),
    /// The cluster serves no such kind in that API version.
    #[error("the cluster serves no kind {0}")]
    UnknownKind(String),
    #[error("the cluster refused: {0}")]
    Forbidden(String),
    #[error("the cluster cannot be reached: {0}")]
    Unavailable(String),
}
