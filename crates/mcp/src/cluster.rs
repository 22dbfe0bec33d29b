//! Live reads from a Kubernetes cluster for `get_resource`: a trait, implemented by cw over
//! kube (where the process has a kubeconfig). The summary of what is read (and what is
//! never returned, such as Secrets' data) is this crate's, in `resource`.

use async_trait::async_trait;
use serde_json::Value;

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
