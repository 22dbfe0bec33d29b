//! Cluster identity: every instance belongs to one cluster, named by a DNS-label-like id
//! (`prod-eu`). Senders name their cluster in the payload's `cluster` field; a payload
//! without one (the Go controller's) belongs to the server's default cluster. In the store
//! an instance's id is qualified by its cluster (`prod-eu:default/apps/v1/Deployment/nginx`),
//! so that two clusters' objects of the same name are two documents.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ResourceId;

/// The cluster of payloads that name none, unless the server is configured otherwise.
pub const DEFAULT_CLUSTER: &str = "default";

/// Between the cluster and the instance id in a stored id. Neither a cluster id nor a
/// Kubernetes namespace may hold it, so the first one splits a stored id unambiguously.
pub const CLUSTER_SEPARATOR: char = ':';

/// The longest cluster id: a DNS label's length.
pub const MAX_CLUSTER_ID_LEN: usize = 63;

/// A cluster's id: 1 to 63 lowercase letters, digits and `-`, starting and ending with a
/// letter or digit (an RFC 1123 DNS label, as a namespace name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "String", into = "String")]
pub struct ClusterId(String);

/// Why a string is not a cluster id; the message says what a valid one looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterIdError(String);

impl fmt::Display for ClusterIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ClusterIdError {}

impl ClusterId {
    /// Checks `raw` (trimmed) as a cluster id.
    pub fn new(raw: &str) -> Result<Self, ClusterIdError> {
        let id = raw.trim();
        let valid_chars = id
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
        let alnum_ends = id.starts_with(|c: char| c.is_ascii_alphanumeric())
            && id.ends_with(|c: char| c.is_ascii_alphanumeric());
        if id.is_empty() || id.len() > MAX_CLUSTER_ID_LEN || !valid_chars || !alnum_ends {
            return Err(ClusterIdError(format!(
                "cluster id {} is not a DNS label: use 1 to {MAX_CLUSTER_ID_LEN} lowercase \
                 letters, digits and '-', starting and ending with a letter or digit (e.g. prod-eu)",
                crate::untrusted::echo(id)
            )));
        }
        Ok(ClusterId(id.to_string()))
    }

    /// The default cluster ([`DEFAULT_CLUSTER`]).
    pub fn default_cluster() -> Self {
        ClusterId(DEFAULT_CLUSTER.to_string())
    }

    /// A cluster id made from a kubeconfig context's name, which may hold anything
    /// (`gke_proj_europe-west1_prod`, `arn:aws:eks:eu-west-1:1234:cluster/prod`): lowercased,
    /// every run of other characters turned into one `-`, cut to 63 characters. `None` when
    /// nothing usable is left.
    pub fn from_context_name(name: &str) -> Option<Self> {
        let mut out = String::with_capacity(name.len());
        for c in name.trim().chars().flat_map(char::to_lowercase) {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                out.push(c);
            } else if !out.ends_with('-') {
                out.push('-');
            }
        }
        let cut: String = out
            .trim_matches('-')
            .chars()
            .take(MAX_CLUSTER_ID_LEN)
            .collect();
        ClusterId::new(cut.trim_end_matches('-')).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The stored id of `id` in this cluster: `<cluster>:<id>`.
    pub fn qualify(&self, id: &ResourceId) -> String {
        self.qualify_str(id.as_str())
    }

    /// [`ClusterId::qualify`] for an id held as a string (capability ids, ...).
    pub fn qualify_str(&self, id: &str) -> String {
        let mut out = String::with_capacity(self.0.len() + 1 + id.len());
        out.push_str(&self.0);
        out.push(CLUSTER_SEPARATOR);
        out.push_str(id);
        out
    }

    /// The instance id of `stored` when it is one of this cluster's stored ids.
    pub fn unqualify<'a>(&self, stored: &'a str) -> Option<&'a str> {
        stored
            .strip_prefix(self.0.as_str())?
            .strip_prefix(CLUSTER_SEPARATOR)
    }
}

/// The cluster and instance id of a stored id, when it is qualified.
pub fn split_stored_id(stored: &str) -> Option<(&str, &str)> {
    stored.split_once(CLUSTER_SEPARATOR)
}

impl TryFrom<String> for ClusterId {
    type Error = ClusterIdError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        ClusterId::new(&raw)
    }
}

impl From<ClusterId> for String {
    fn from(id: ClusterId) -> Self {
        id.0
    }
}

impl std::str::FromStr for ClusterId {
    type Err = ClusterIdError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        ClusterId::new(raw)
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ClusterId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_are_cluster_ids_and_other_strings_are_not() {
        for ok in ["default", "prod-eu", "a", "k8s-1", &"x".repeat(63)] {
            assert!(ClusterId::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Prod",
            "prod_eu",
            "-prod",
            "prod-",
            "prod:eu",
            "a/b",
            &"x".repeat(64),
        ] {
            let err = ClusterId::new(bad).unwrap_err().to_string();
            assert!(err.contains("DNS label"), "{bad}: {err}");
        }
        assert_eq!(ClusterId::new(" prod \n").unwrap().as_str(), "prod");
    }

    #[test]
    fn context_names_become_cluster_ids() {
        let id = |s: &str| ClusterId::from_context_name(s).map(|c| c.0);
        assert_eq!(id("kind-kind").as_deref(), Some("kind-kind"));
        assert_eq!(
            id("gke_my-proj_europe-west1_prod").as_deref(),
            Some("gke-my-proj-europe-west1-prod")
        );
        assert_eq!(
            id("arn:aws:eks:eu-west-1:1234:cluster/Prod").as_deref(),
            Some("arn-aws-eks-eu-west-1-1234-cluster-prod")
        );
        assert_eq!(id("admin@Prod.EU").as_deref(), Some("admin-prod-eu"));
        assert_eq!(id("__").as_deref(), None);
        assert_eq!(id(&"ab-".repeat(40)).unwrap().len(), 62);
    }

    #[test]
    fn stored_ids_carry_the_cluster_before_the_instance_id() {
        let prod = ClusterId::new("prod").unwrap();
        let id = ResourceId::new(Some("default"), "apps/v1", "Deployment", "nginx");
        let stored = prod.qualify(&id);
        assert_eq!(stored, "prod:default/apps/v1/Deployment/nginx");
        assert_eq!(prod.unqualify(&stored), Some(id.as_str()));
        assert_eq!(ClusterId::new("pro").unwrap().unqualify(&stored), None);
        assert_eq!(
            split_stored_id(&stored),
            Some(("prod", "default/apps/v1/Deployment/nginx"))
        );
    }

    #[test]
    fn cluster_ids_read_from_json_are_checked() {
        assert!(serde_json::from_str::<ClusterId>(r#""prod""#).is_ok());
        assert!(serde_json::from_str::<ClusterId>(r#""Prod""#).is_err());
    }
}
