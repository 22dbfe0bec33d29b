//! The Kubernetes RBAC authorizer's decision, ported from k8s.io/kubernetes
//! `plugin/pkg/auth/authorizer/rbac` (rule matching with `*`, apiGroups, resources and
//! subresources, verbs, resourceNames; a RoleBinding to a ClusterRole limited to its
//! namespace; aggregated ClusterRoles; subjects of kind User, Group and ServiceAccount),
//! and what it means for a reader of the index: the [`ReadGrant`]s of a user.

use std::collections::BTreeSet;

use super::{AccessSnapshot, UserInfo};

/// What a request asks for, the resource part of Kubernetes' `authorizer.Attributes`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceAttributes<'a> {
    pub verb: &'a str,
    pub api_group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    /// Empty for a cluster-scoped request (or every namespace, for a list).
    pub namespace: &'a str,
    /// Empty for a list.
    pub name: &'a str,
}

/// Where a grant holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Namespaces {
    /// Every namespace and the cluster-scoped objects (a ClusterRoleBinding).
    All,
    /// Only the objects of these namespaces (RoleBindings).
    Some(BTreeSet<String>),
}

/// What a user may read of one cluster: objects of the types the rule names (`*` for any
/// group or resource), in `namespaces`, and when `names` is not empty only those names.
/// A user may read an object when they may `list` its type where it lives, or `get` or
/// `list` it by one of a rule's `resourceNames`; `get` without names does not make a
/// whole type readable (it would enumerate what RBAC lets be fetched only by name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReadGrant {
    pub namespaces: Namespaces,
    pub api_groups: BTreeSet<String>,
    pub resources: BTreeSet<String>,
    pub names: BTreeSet<String>,
}

/// One cluster's rules, indexed for decisions (aggregated ClusterRoles resolved).
#[derive(Debug, Clone, Default)]
pub struct Authorizer {
    _snapshot: (),
}

impl Authorizer {
    pub fn new(_snapshot: &AccessSnapshot) -> Self {
        unimplemented!("issue 26: the RBAC authorizer")
    }

    /// Kubernetes' decision: does some rule bound to `user` allow `attrs`?
    pub fn allows(&self, _user: &UserInfo, _attrs: &ResourceAttributes<'_>) -> bool {
        unimplemented!("issue 26: the RBAC authorizer")
    }

    /// Everything `user` may read, merged: grants equal but for their namespaces are one.
    pub fn read_grants(&self, _user: &UserInfo) -> Vec<ReadGrant> {
        unimplemented!("issue 26: the RBAC authorizer")
    }
}
