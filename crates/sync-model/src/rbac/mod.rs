//! A cluster's access rules as its watcher sends them to the ingest server
//! (`POST /api/v1/access/sync`): the cluster's Roles, ClusterRoles, RoleBindings and
//! ClusterRoleBindings, the resource types it serves (RBAC rules name resources, documents
//! carry kinds), and its ServiceAccount token issuer with the keys that sign its tokens.
//! The server decides who may read what with the Kubernetes RBAC authorizer's own
//! semantics ([`authorizer`]).
//!
//! The shapes follow `rbac.authorization.k8s.io/v1` field for field (metadata flattened to
//! what the rules need), so a reader who knows Kubernetes RBAC knows these.

pub mod authorizer;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::instance::null_as_default;

/// One rule of a Role or ClusterRole (`rbac.authorization.k8s.io/v1` `PolicyRule`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    #[serde(default, deserialize_with = "null_as_default")]
    pub verbs: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub api_groups: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub resources: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub resource_names: Vec<String>,
    #[serde(
        default,
        rename = "nonResourceURLs",
        deserialize_with = "null_as_default"
    )]
    pub non_resource_urls: Vec<String>,
}

/// A label selector as Kubernetes writes one (`matchLabels`, `matchExpressions`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, deserialize_with = "null_as_default")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// `{key, operator: In|NotIn|Exists|DoesNotExist, values}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub values: Vec<String>,
}

/// A ClusterRole's `aggregationRule`: its rules are those of every ClusterRole matching
/// one of the selectors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AggregationRule {
    #[serde(default, deserialize_with = "null_as_default")]
    pub cluster_role_selectors: Vec<LabelSelector>,
}

/// A namespaced Role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Role {
    pub namespace: String,
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub rules: Vec<PolicyRule>,
}

/// A ClusterRole: its labels (what aggregation selects by), rules and aggregation rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClusterRole {
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub rules: Vec<PolicyRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation_rule: Option<AggregationRule>,
}

/// Who a binding grants to: `User`, `Group` or `ServiceAccount` (with its namespace).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    pub kind: String,
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub namespace: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub api_group: String,
}

/// The role a binding grants: `Role` (same namespace) or `ClusterRole`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RoleRef {
    pub kind: String,
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub api_group: String,
}

/// A RoleBinding: grants its role's rules within its own namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RoleBinding {
    pub namespace: String,
    pub name: String,
    pub role_ref: RoleRef,
    #[serde(default, deserialize_with = "null_as_default")]
    pub subjects: Vec<Subject>,
}

/// A ClusterRoleBinding: grants its ClusterRole's rules in every namespace and for
/// cluster-scoped objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClusterRoleBinding {
    pub name: String,
    pub role_ref: RoleRef,
    #[serde(default, deserialize_with = "null_as_default")]
    pub subjects: Vec<Subject>,
}

/// A resource type the cluster serves: what turns a rule's `resources` (plurals) into the
/// kinds documents carry.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ResourceType {
    /// Empty for the core group.
    #[serde(default, deserialize_with = "null_as_default")]
    pub group: String,
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
}

/// The cluster's ServiceAccount token issuer: the `issuer` of its
/// `/.well-known/openid-configuration` and the key set of its `/openid/v1/jwks`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountIssuer {
    pub issuer: String,
    /// A JSON Web Key Set (`{"keys": [...]}`), as the API server serves it.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub jwks: serde_json::Value,
}

/// The body of `POST /api/v1/access/sync`: everything the server needs to decide what a
/// caller may see in one cluster. Always whole: it replaces what the server held for the
/// cluster, so a lost or repeated send never leaves a stale grant behind the next one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AccessSnapshot {
    /// The cluster these rules belong to; absent for the server's default cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub roles: Vec<Role>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub cluster_roles: Vec<ClusterRole>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub role_bindings: Vec<RoleBinding>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub types: Vec<ResourceType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<ServiceAccountIssuer>,
}

/// Who is asking, as Kubernetes names a user: a name and groups (`system:authenticated`
/// included by whoever authenticated them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

/// The group every authenticated user is in.
pub const ALL_AUTHENTICATED: &str = "system:authenticated";
/// The groups of every ServiceAccount, and of those of one namespace (`…:NS`).
pub const ALL_SERVICE_ACCOUNTS: &str = "system:serviceaccounts";
/// `system:serviceaccount:NS:NAME`: a ServiceAccount's user name.
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

impl UserInfo {
    /// The user a ServiceAccount's token names, with the groups Kubernetes gives it.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        UserInfo {
            name: format!("{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"),
            groups: vec![
                ALL_SERVICE_ACCOUNTS.to_string(),
                format!("{ALL_SERVICE_ACCOUNTS}:{namespace}"),
                ALL_AUTHENTICATED.to_string(),
            ],
        }
    }
}
