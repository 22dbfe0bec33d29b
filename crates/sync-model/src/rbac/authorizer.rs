//! The Kubernetes RBAC authorizer's decision, ported from k8s.io/kubernetes
//! `plugin/pkg/auth/authorizer/rbac` (rule matching with `*`, apiGroups, resources and
//! subresources, verbs, resourceNames; a RoleBinding to a ClusterRole limited to its
//! namespace; aggregated ClusterRoles; subjects of kind User, Group and ServiceAccount),
//! and what it means for a reader of the index: the [`ReadGrant`]s of a user.
//!
//! The server keeps one [`Authorizer`] per cluster, built once per [`AccessSnapshot`]:
//! bindings are indexed by the user or group they name, so a decision looks only at the
//! caller's own bindings, and a role's rules are shared by every binding to it.

mod aggregation;
mod matching;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::{AccessSnapshot, PolicyRule, Subject, UserInfo};
use matching::{rule_allows, subject_key, verb_matches, SubjectKey, ALL};

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
    /// Only the objects of these namespaces (RoleBindings); never a cluster-scoped object.
    Some(BTreeSet<String>),
}

/// What a user may read of one cluster: objects of the types the rule names (`*` for any
/// group or resource), in `namespaces`, and when `names` is not empty only those names.
/// A user may read an object when they may `list` its type where it lives, or `get` or
/// `list` it by one of a rule's `resourceNames`; `get` without names does not make a
/// whole type readable (it would enumerate what RBAC lets be fetched only by name).
///
/// A grant covers every pair of one of its `api_groups` (`""` is the core group) and one
/// of its `resources` (plurals, as rules name them), as the rule it comes from does.
/// Subresources (`pods/log`, `*/status`) never appear: reading one is not reading the
/// object.
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
    /// Bindings naming a user (ServiceAccount subjects as their user name).
    by_user: HashMap<String, Vec<Grant>>,
    by_group: HashMap<String, Vec<Grant>>,
}

/// One binding's role, as seen by one of its subjects.
#[derive(Debug, Clone)]
struct Grant {
    /// `None` for a ClusterRoleBinding (everywhere, cluster-scoped requests included).
    namespace: Option<Arc<str>>,
    rules: Arc<[PolicyRule]>,
}

impl Grant {
    fn holds_in(&self, namespace: &str) -> bool {
        self.namespace.as_deref().is_none_or(|ns| ns == namespace)
    }
}

impl Authorizer {
    /// Indexes `snapshot`. As in Kubernetes' `GetRoleReferenceRules`, a RoleBinding's
    /// `Role` is the one of the binding's namespace, a ClusterRoleBinding grants only a
    /// `ClusterRole`, and a missing role grants nothing.
    pub fn new(snapshot: &AccessSnapshot) -> Self {
        let cluster_roles = aggregation::resolve(&snapshot.cluster_roles);
        let mut roles: HashMap<(&str, &str), Arc<[PolicyRule]>> = HashMap::new();
        for role in &snapshot.roles {
            roles
                .entry((role.namespace.as_str(), role.name.as_str()))
                .or_insert_with(|| role.rules.as_slice().into());
        }
        let mut namespaces: HashMap<&str, Arc<str>> = HashMap::new();
        let mut authorizer = Authorizer::default();

        for binding in &snapshot.cluster_role_bindings {
            if binding.role_ref.kind != "ClusterRole" {
                continue;
            }
            if let Some(rules) = cluster_roles.get(binding.role_ref.name.as_str()) {
                authorizer.bind(&binding.subjects, "", None, rules);
            }
        }
        for binding in &snapshot.role_bindings {
            let ns = binding.namespace.as_str();
            let rules = match binding.role_ref.kind.as_str() {
                "Role" => roles.get(&(ns, binding.role_ref.name.as_str())),
                "ClusterRole" => cluster_roles.get(binding.role_ref.name.as_str()),
                _ => None,
            };
            let (false, Some(rules)) = (ns.is_empty(), rules) else {
                continue;
            };
            let interned = namespaces.entry(ns).or_insert_with(|| ns.into()).clone();
            authorizer.bind(&binding.subjects, ns, Some(interned), rules);
        }
        authorizer
    }

    fn bind(
        &mut self,
        subjects: &[Subject],
        binding_namespace: &str,
        namespace: Option<Arc<str>>,
        rules: &Arc<[PolicyRule]>,
    ) {
        if rules.is_empty() {
            return;
        }
        let mut keys: Vec<SubjectKey> = subjects
            .iter()
            .filter_map(|s| subject_key(s, binding_namespace))
            .collect();
        // A subject listed twice is one grant, as Kubernetes' `appliesTo` stops at the first.
        keys.sort();
        keys.dedup();
        for key in keys {
            let grant = Grant {
                namespace: namespace.clone(),
                rules: rules.clone(),
            };
            let (map, name) = match key {
                SubjectKey::User(name) => (&mut self.by_user, name),
                SubjectKey::Group(name) => (&mut self.by_group, name),
            };
            map.entry(name).or_default().push(grant);
        }
    }

    /// Every binding that applies to `user`: those naming the user and those naming one
    /// of its groups (a binding reached both ways comes twice, which changes no answer).
    fn grants<'s>(&'s self, user: &'s UserInfo) -> impl Iterator<Item = &'s Grant> + 's {
        let by_user = self.by_user.get(&user.name).into_iter().flatten();
        let by_group = user
            .groups
            .iter()
            .filter_map(|g| self.by_group.get(g))
            .flatten();
        by_user.chain(by_group)
    }

    /// Kubernetes' decision: does some rule bound to `user` allow `attrs`?
    /// ClusterRoleBindings hold everywhere; a RoleBinding only in its namespace, so never
    /// for a cluster-scoped request (empty namespace).
    pub fn allows(&self, user: &UserInfo, attrs: &ResourceAttributes<'_>) -> bool {
        self.grants(user)
            .filter(|grant| grant.holds_in(attrs.namespace))
            .any(|grant| grant.rules.iter().any(|rule| rule_allows(rule, attrs)))
    }

    /// Everything `user` may read, merged: grants equal but for their namespaces are one,
    /// and one naming some objects of types another grant lets be read whole, wherever
    /// that one holds, is dropped. Sorted, so equal rules give equal output.
    pub fn read_grants(&self, user: &UserInfo) -> Vec<ReadGrant> {
        type Key = (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>);
        let mut merged: BTreeMap<Key, Namespaces> = BTreeMap::new();
        for grant in self.grants(user) {
            for rule in grant.rules.iter() {
                let Some(key) = readable(rule) else { continue };
                match (
                    merged
                        .entry(key)
                        .or_insert_with(|| Namespaces::Some(BTreeSet::new())),
                    &grant.namespace,
                ) {
                    (Namespaces::All, _) => {}
                    (slot, None) => *slot = Namespaces::All,
                    (Namespaces::Some(set), Some(ns)) => {
                        set.insert(ns.to_string());
                    }
                }
            }
        }
        let grants: Vec<ReadGrant> = merged
            .into_iter()
            .map(|((api_groups, resources, names), namespaces)| ReadGrant {
                namespaces,
                api_groups,
                resources,
                names,
            })
            .collect();
        let mut kept: Vec<ReadGrant> = grants
            .iter()
            .filter(|g| !grants.iter().any(|other| subsumes(other, g)))
            .cloned()
            .collect();
        kept.sort();
        kept
    }
}

/// What `rule` lets be read, as (api groups, object resources, names), or `None`.
fn readable(rule: &PolicyRule) -> Option<(BTreeSet<String>, BTreeSet<String>, BTreeSet<String>)> {
    // Subresources name other endpoints than the object's own; `*` covers the objects.
    let resources: BTreeSet<String> = rule
        .resources
        .iter()
        .filter(|r| r.as_str() == ALL || !r.contains('/'))
        .cloned()
        .collect();
    if resources.is_empty() || rule.api_groups.is_empty() {
        return None;
    }
    let names: BTreeSet<String> = rule.resource_names.iter().cloned().collect();
    let may = if names.is_empty() {
        verb_matches(rule, "list")
    } else {
        verb_matches(rule, "list") || verb_matches(rule, "get")
    };
    may.then(|| (rule.api_groups.iter().cloned().collect(), resources, names))
}

/// `whole` lets everything `part` names be read: the same types, every name, and at
/// least `part`'s namespaces.
fn subsumes(whole: &ReadGrant, part: &ReadGrant) -> bool {
    whole.names.is_empty()
        && !part.names.is_empty()
        && whole.api_groups == part.api_groups
        && whole.resources == part.resources
        && match (&whole.namespaces, &part.namespaces) {
            (Namespaces::All, _) => true,
            (Namespaces::Some(_), Namespaces::All) => false,
            (Namespaces::Some(w), Namespaces::Some(p)) => p.is_subset(w),
        }
}

/// Kubernetes' `appliesToUser`: does binding `subject` (of a binding in
/// `binding_namespace`, empty for a ClusterRoleBinding) name `user`? For callers that show
/// or check single bindings; [`Authorizer`] answers the same question through its index.
pub fn user_matches_subject(user: &UserInfo, subject: &Subject, binding_namespace: &str) -> bool {
    subject_key(subject, binding_namespace).is_some_and(|key| key.matches(user))
}
