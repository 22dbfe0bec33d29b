//! Resource ids: `namespace/apiVersion/kind/name`, with `_cluster` standing in for the
//! namespace of cluster-scoped objects. The format is the Go controller's, kept exactly.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The namespace segment used for cluster-scoped objects.
pub const CLUSTER_SCOPE: &str = "_cluster";

/// The id of one resource instance, as stored and as sent in `deletes`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct ResourceId(String);

/// Why a string is not a well-formed [`ResourceId`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdError {
    Empty,
    TooFewSegments(usize),
    EmptySegment(&'static str),
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::Empty => write!(f, "id is empty"),
            IdError::TooFewSegments(n) => write!(
                f,
                "id has {n} '/'-separated segments; expected namespace/apiVersion/kind/name"
            ),
            IdError::EmptySegment(which) => write!(f, "id has an empty {which} segment"),
        }
    }
}

impl std::error::Error for IdError {}

/// The four parts of an id, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdParts<'a> {
    pub namespace: &'a str,
    pub api_version: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
}

impl ResourceId {
    /// Builds the id of an object; `namespace` is `None` (or empty) for cluster-scoped objects.
    pub fn new(namespace: Option<&str>, api_version: &str, kind: &str, name: &str) -> Self {
        let ns = match namespace {
            Some(ns) if !ns.is_empty() => ns,
            _ => CLUSTER_SCOPE,
        };
        ResourceId(format!("{ns}/{api_version}/{kind}/{name}"))
    }

    /// Wraps a string received from a sender without checking it; see [`ResourceId::parts`].
    pub fn from_raw(raw: impl Into<String>) -> Self {
        ResourceId(raw.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// Splits the id into its parts. The apiVersion may itself hold a `/` (`apps/v1`), so the
    /// namespace is the first segment and kind and name are the last two.
    pub fn parts(&self) -> Result<IdParts<'_>, IdError> {
        if self.0.is_empty() {
            return Err(IdError::Empty);
        }
        let segments: Vec<&str> = self.0.split('/').collect();
        if !(4..=5).contains(&segments.len()) {
            return Err(IdError::TooFewSegments(segments.len()));
        }
        let n = segments.len();
        let namespace = segments[0];
        let name = segments[n - 1];
        let kind = segments[n - 2];
        let api_version = &self.0[namespace.len() + 1..self.0.len() - name.len() - kind.len() - 2];
        for (value, which) in [
            (namespace, "namespace"),
            (api_version, "apiVersion"),
            (kind, "kind"),
            (name, "name"),
        ] {
            if value.is_empty() {
                return Err(IdError::EmptySegment(which));
            }
        }
        if segments[1..n - 2].iter().any(|s| s.is_empty()) {
            return Err(IdError::EmptySegment("apiVersion"));
        }
        Ok(IdParts {
            namespace,
            api_version,
            kind,
            name,
        })
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ResourceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_core_and_grouped_ids_round_trip_through_parts() {
        let core = ResourceId::new(Some("default"), "v1", "Service", "web");
        assert_eq!(core.as_str(), "default/v1/Service/web");
        let p = core.parts().unwrap();
        assert_eq!(
            (p.namespace, p.api_version, p.kind, p.name),
            ("default", "v1", "Service", "web")
        );

        let grouped = ResourceId::new(Some("default"), "apps/v1", "Deployment", "nginx");
        let p = grouped.parts().unwrap();
        assert_eq!(p.api_version, "apps/v1");
        assert_eq!(p.kind, "Deployment");
        assert_eq!(p.name, "nginx");
    }

    #[test]
    fn cluster_scoped_objects_use_the_cluster_namespace() {
        let id = ResourceId::new(None, "v1", "Node", "worker-1");
        assert_eq!(id.as_str(), "_cluster/v1/Node/worker-1");
        assert_eq!(
            ResourceId::new(Some(""), "v1", "Node", "n").as_str(),
            "_cluster/v1/Node/n"
        );
    }

    #[test]
    fn malformed_ids_are_rejected_with_a_reason() {
        assert_eq!(ResourceId::from_raw("").parts(), Err(IdError::Empty));
        assert_eq!(
            ResourceId::from_raw("a/b").parts(),
            Err(IdError::TooFewSegments(2))
        );
        assert_eq!(
            ResourceId::from_raw("default/v1//x").parts(),
            Err(IdError::EmptySegment("kind"))
        );
        assert_eq!(
            ResourceId::from_raw("default/apps//Deployment/x").parts(),
            Err(IdError::EmptySegment("apiVersion"))
        );
        assert!(ResourceId::from_raw("a/b/c/d/e/f").parts().is_err());
    }
}
