//! Rule and subject matching, line for line the Kubernetes functions they port:
//! `RuleAllows` (plugin/pkg/auth/authorizer/rbac/rbac.go), `VerbMatches`,
//! `APIGroupMatches`, `ResourceMatches`, `ResourceNameMatches` (pkg/apis/rbac/v1/evaluation_helpers.go)
//! and `appliesToUser` (pkg/registry/rbac/validation/rule.go).

use super::ResourceAttributes;
use crate::rbac::{PolicyRule, Subject, UserInfo, SERVICE_ACCOUNT_PREFIX};

/// `rbacv1.VerbAll`, `APIGroupAll`, `ResourceAll`.
pub(super) const ALL: &str = "*";

/// Kubernetes' `RuleAllows` for a resource request. Verbs, groups and resources compare
/// exactly (Kubernetes does not fold case: `GET` is not `get`).
pub(super) fn rule_allows(rule: &PolicyRule, attrs: &ResourceAttributes<'_>) -> bool {
    verb_matches(rule, attrs.verb)
        && api_group_matches(rule, attrs.api_group)
        && resource_matches(rule, attrs.resource, attrs.subresource)
        && resource_name_matches(rule, attrs.name)
}

pub(super) fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == ALL || v == verb)
}

fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    rule.api_groups.iter().any(|g| g == ALL || g == group)
}

/// A rule resource matches `*`, the combined `resource/subresource`, or `*/subresource`.
fn resource_matches(rule: &PolicyRule, resource: &str, subresource: &str) -> bool {
    rule.resources.iter().any(|r| {
        r == ALL
            || is_combined(r, resource, subresource)
            || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
    })
}

/// `rule_resource == resource + "/" + subresource` (or `resource` alone), without allocating.
fn is_combined(rule_resource: &str, resource: &str, subresource: &str) -> bool {
    if subresource.is_empty() {
        return rule_resource == resource;
    }
    rule_resource
        .strip_prefix(resource)
        .and_then(|rest| rest.strip_prefix('/'))
        == Some(subresource)
}

/// A rule without `resourceNames` matches every name; one with names only those (so never
/// a request without a name, such as a plain list).
fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    rule.resource_names.is_empty() || rule.resource_names.iter().any(|n| n == name)
}

/// Who a binding subject names, as the index keys it: a user name (ServiceAccounts
/// become their `system:serviceaccount:NS:NAME` user) or a group name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum SubjectKey {
    User(String),
    Group(String),
}

/// Kubernetes' `appliesToUser` turned into a key. A ServiceAccount subject without a
/// namespace takes its RoleBinding's; in a ClusterRoleBinding (`binding_namespace` empty)
/// it names no one. Other kinds (and `*` as a name) match no one.
pub(super) fn subject_key(subject: &Subject, binding_namespace: &str) -> Option<SubjectKey> {
    match subject.kind.as_str() {
        "User" => Some(SubjectKey::User(subject.name.clone())),
        "Group" => Some(SubjectKey::Group(subject.name.clone())),
        "ServiceAccount" => {
            let namespace = if subject.namespace.is_empty() {
                binding_namespace
            } else {
                &subject.namespace
            };
            (!namespace.is_empty()).then(|| {
                SubjectKey::User(format!(
                    "{SERVICE_ACCOUNT_PREFIX}{namespace}:{}",
                    subject.name
                ))
            })
        }
        _ => None,
    }
}

impl SubjectKey {
    pub(super) fn matches(&self, user: &UserInfo) -> bool {
        match self {
            SubjectKey::User(name) => *name == user.name,
            SubjectKey::Group(group) => user.groups.iter().any(|g| g == group),
        }
    }
}
