//! The resource types the simulator serves: the built-in ones of a realistic cluster and the ones
//! that CustomResourceDefinitions add at run time. Discovery, routing and storage all read this.

use serde_json::Value;

use crate::error::{Result, SimError};

/// The verbs every served resource supports (what discovery advertises).
pub const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Storage key of a resource type: (API group, plural). One store per key, whatever the version.
pub type ResKey = (String, String);

/// One served resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    pub group: String,
    /// Served versions, the preferred first.
    pub versions: Vec<String>,
    /// The version objects are stored in (their `apiVersion` in storage).
    pub storage_version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Whether a `status` subresource exists (then status changes only through it).
    pub has_status: bool,
    /// Whether a CustomResourceDefinition defines it.
    pub custom: bool,
}

impl ResourceType {
    pub fn key(&self) -> ResKey {
        (self.group.clone(), self.plural.clone())
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    pub fn storage_api_version(&self) -> String {
        self.api_version(&self.storage_version)
    }

    pub fn preferred_version(&self) -> &str {
        self.versions.first().map(String::as_str).unwrap_or("v1")
    }

    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    /// `plural` for the core group, `plural.group` otherwise (how kubectl and RBAC name it).
    pub fn qualified_name(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    versions: &[&str],
    plural: &str,
    singular: &str,
    kind: &str,
    namespaced: bool,
    short_names: &[&str],
    in_all: bool,
    has_status: bool,
) -> ResourceType {
    ResourceType {
        group: group.into(),
        versions: versions.iter().map(|v| v.to_string()).collect(),
        storage_version: versions[0].into(),
        plural: plural.into(),
        singular: singular.into(),
        kind: kind.into(),
        namespaced,
        short_names: short_names.iter().map(|s| s.to_string()).collect(),
        categories: if in_all { vec!["all".into()] } else { vec![] },
        has_status,
        custom: false,
    }
}

/// The built-in types of issue 3 (HPA at autoscaling/v2, preferred, and autoscaling/v1).
pub fn builtin_types() -> Vec<ResourceType> {
    let v1 = &["v1"][..];
    // The core and events.k8s.io groups serve the same Event type.
    let events = |group| {
        builtin(
            group,
            v1,
            "events",
            "event",
            "Event",
            true,
            &["ev"],
            false,
            false,
        )
    };
    // RBAC's four types: no short names, not in `all`, no status.
    let rbac = |plural, singular, kind, namespaced| {
        builtin(
            "rbac.authorization.k8s.io",
            v1,
            plural,
            singular,
            kind,
            namespaced,
            &[],
            false,
            false,
        )
    };
    vec![
        builtin(
            "",
            v1,
            "namespaces",
            "namespace",
            "Namespace",
            false,
            &["ns"],
            false,
            true,
        ),
        builtin("", v1, "pods", "pod", "Pod", true, &["po"], true, true),
        builtin(
            "",
            v1,
            "services",
            "service",
            "Service",
            true,
            &["svc"],
            true,
            true,
        ),
        builtin(
            "",
            v1,
            "configmaps",
            "configmap",
            "ConfigMap",
            true,
            &["cm"],
            false,
            false,
        ),
        builtin(
            "",
            v1,
            "secrets",
            "secret",
            "Secret",
            true,
            &[],
            false,
            false,
        ),
        builtin(
            "",
            v1,
            "serviceaccounts",
            "serviceaccount",
            "ServiceAccount",
            true,
            &["sa"],
            false,
            false,
        ),
        builtin("", v1, "nodes", "node", "Node", false, &["no"], false, true),
        builtin(
            "",
            v1,
            "persistentvolumeclaims",
            "persistentvolumeclaim",
            "PersistentVolumeClaim",
            true,
            &["pvc"],
            false,
            true,
        ),
        events(""),
        builtin(
            "apps",
            v1,
            "deployments",
            "deployment",
            "Deployment",
            true,
            &["deploy"],
            true,
            true,
        ),
        builtin(
            "apps",
            v1,
            "statefulsets",
            "statefulset",
            "StatefulSet",
            true,
            &["sts"],
            true,
            true,
        ),
        builtin(
            "apps",
            v1,
            "daemonsets",
            "daemonset",
            "DaemonSet",
            true,
            &["ds"],
            true,
            true,
        ),
        builtin(
            "apps",
            v1,
            "replicasets",
            "replicaset",
            "ReplicaSet",
            true,
            &["rs"],
            true,
            true,
        ),
        builtin("batch", v1, "jobs", "job", "Job", true, &[], true, true),
        builtin(
            "batch",
            v1,
            "cronjobs",
            "cronjob",
            "CronJob",
            true,
            &["cj"],
            true,
            true,
        ),
        builtin(
            "networking.k8s.io",
            v1,
            "ingresses",
            "ingress",
            "Ingress",
            true,
            &["ing"],
            false,
            true,
        ),
        builtin(
            "networking.k8s.io",
            v1,
            "networkpolicies",
            "networkpolicy",
            "NetworkPolicy",
            true,
            &["netpol"],
            false,
            false,
        ),
        rbac("roles", "role", "Role", true),
        rbac("rolebindings", "rolebinding", "RoleBinding", true),
        rbac("clusterroles", "clusterrole", "ClusterRole", false),
        rbac(
            "clusterrolebindings",
            "clusterrolebinding",
            "ClusterRoleBinding",
            false,
        ),
        builtin(
            "coordination.k8s.io",
            v1,
            "leases",
            "lease",
            "Lease",
            true,
            &[],
            false,
            false,
        ),
        builtin(
            "discovery.k8s.io",
            v1,
            "endpointslices",
            "endpointslice",
            "EndpointSlice",
            true,
            &[],
            false,
            false,
        ),
        events("events.k8s.io"),
        builtin(
            "autoscaling",
            &["v2", "v1"],
            "horizontalpodautoscalers",
            "horizontalpodautoscaler",
            "HorizontalPodAutoscaler",
            true,
            &["hpa"],
            true,
            true,
        ),
        builtin(
            "apiextensions.k8s.io",
            v1,
            "customresourcedefinitions",
            "customresourcedefinition",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            false,
            true,
        ),
    ]
}

/// The key of the CustomResourceDefinition type itself.
pub fn crd_key() -> ResKey {
    (
        "apiextensions.k8s.io".into(),
        "customresourcedefinitions".into(),
    )
}

/// The key of namespaces.
pub fn namespace_key() -> ResKey {
    (String::new(), "namespaces".into())
}

/// Splits `group/version` (or `v1`) into (group, version).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// Kubernetes version priority: GA before beta before alpha, higher numbers first, others last
/// (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definition-versioning/#version-priority).
pub fn version_priority(v: &str) -> (u8, i64, i64, String) {
    let parse = |s: &str| -> Option<(i64, u8, i64)> {
        let rest = s.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let major: i64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((major, 0, 0));
        }
        for (label, rank) in [("beta", 1u8), ("alpha", 2u8)] {
            if let Some(n) = tail.strip_prefix(label) {
                let minor: i64 = n.parse().ok()?;
                return Some((major, rank, minor));
            }
        }
        None
    };
    match parse(v) {
        Some((major, rank, minor)) => (rank, -major, -minor, String::new()),
        None => (3, 0, 0, v.to_string()),
    }
}

/// Builds the served type from a CustomResourceDefinition object, checking what a real API server
/// checks before accepting the names.
pub fn type_from_crd(crd: &Value) -> Result<ResourceType> {
    let invalid = |m: &str| SimError::Invalid(format!("CustomResourceDefinition is invalid: {m}"));
    let spec = crd
        .get("spec")
        .ok_or_else(|| invalid("spec: Required value"))?;
    let group = spec
        .get("group")
        .and_then(Value::as_str)
        .filter(|g| !g.is_empty())
        .ok_or_else(|| invalid("spec.group: Required value"))?;
    if !group.contains('.') {
        return Err(invalid(
            "spec.group: Invalid value: should be a domain with at least one dot",
        ));
    }
    let names = spec
        .get("names")
        .ok_or_else(|| invalid("spec.names: Required value"))?;
    let name_of = |k: &str| names.get(k).and_then(Value::as_str).map(str::to_string);
    let plural = name_of("plural")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| invalid("spec.names.plural: Required value"))?;
    let kind = name_of("kind")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| invalid("spec.names.kind: Required value"))?;
    let singular = name_of("singular").unwrap_or_else(|| kind.to_lowercase());
    let crd_name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if crd_name != format!("{plural}.{group}") {
        return Err(invalid(&format!(
            "metadata.name: Invalid value: \"{crd_name}\": must be spec.names.plural+\".\"+spec.group"
        )));
    }
    let scope = spec.get("scope").and_then(Value::as_str).unwrap_or("");
    let namespaced = match scope {
        "Namespaced" => true,
        "Cluster" => false,
        _ => {
            return Err(invalid(
                "spec.scope: Unsupported value: must be Namespaced or Cluster",
            ))
        }
    };
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| invalid("spec.versions: Required value"))?;
    let mut served = Vec::new();
    let mut storage = None;
    let mut has_status = false;
    for v in versions {
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("spec.versions[].name: Required value"))?;
        if v.get("served").and_then(Value::as_bool).unwrap_or(false) {
            served.push(name.to_string());
        }
        if v.get("storage").and_then(Value::as_bool).unwrap_or(false) {
            if storage.is_some() {
                return Err(invalid("spec.versions: Invalid value: must have exactly one version marked as storage version"));
            }
            storage = Some(name.to_string());
        }
        if v.pointer("/subresources/status").is_some() {
            has_status = true;
        }
    }
    let storage = storage.ok_or_else(|| {
        invalid(
            "spec.versions: Invalid value: must have exactly one version marked as storage version",
        )
    })?;
    if served.is_empty() {
        return Err(invalid(
            "spec.versions: Invalid value: must have at least one served version",
        ));
    }
    served.sort_by_key(|v| version_priority(v));
    let strings = |k: &str| -> Vec<String> {
        names
            .get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(ResourceType {
        group: group.to_string(),
        versions: served,
        storage_version: storage,
        plural,
        singular,
        kind,
        namespaced,
        short_names: strings("shortNames"),
        categories: strings("categories"),
        has_status,
        custom: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ga_versions_are_preferred_over_beta_and_alpha() {
        let mut v = vec!["v1alpha1", "v2beta1", "v1", "v2", "foo"];
        v.sort_by_key(|v| version_priority(v));
        assert_eq!(v, vec!["v2", "v1", "v2beta1", "v1alpha1", "foo"]);
    }

    #[test]
    fn crd_name_must_be_plural_dot_group() {
        let crd = json!({"metadata": {"name": "wrong"}, "spec": {"group": "a.io", "scope": "Namespaced",
            "names": {"plural": "things", "kind": "Thing"},
            "versions": [{"name": "v1", "served": true, "storage": true}]}});
        let err = type_from_crd(&crd).unwrap_err();
        assert_eq!(err.code(), 422);
    }
}
