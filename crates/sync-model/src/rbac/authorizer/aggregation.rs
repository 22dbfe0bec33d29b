//! Aggregated ClusterRoles resolved as the cluster-role-aggregation controller would
//! (k8s.io/kubernetes `pkg/controller/clusterroleaggregation`): a ClusterRole with an
//! `aggregationRule` has, in place of its own `rules`, the rules of every other
//! ClusterRole one of its selectors matches (per selector in name order, duplicates
//! dropped). A selected role that aggregates in turn contributes what it aggregates, as
//! it does once the controller has converged; a cycle is followed once and stops.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::rbac::{ClusterRole, LabelSelector, PolicyRule};

/// Every ClusterRole's effective rules by name (the first of duplicate names wins).
pub(super) fn resolve(cluster_roles: &[ClusterRole]) -> HashMap<&str, Arc<[PolicyRule]>> {
    let mut by_name: BTreeMap<&str, &ClusterRole> = BTreeMap::new();
    for role in cluster_roles {
        by_name.entry(role.name.as_str()).or_insert(role);
    }
    by_name
        .iter()
        .map(|(&name, role)| {
            let rules: Arc<[PolicyRule]> = if role.aggregation_rule.is_some() {
                let mut visited = HashSet::from([name]);
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                aggregate(role, &by_name, &mut visited, &mut seen, &mut out);
                out.into()
            } else {
                role.rules.as_slice().into()
            };
            (name, rules)
        })
        .collect()
}

/// Depth first through the roles `role` selects; `visited` holds the roles already
/// taken (the root among them: the controller skips a role's own name), so a cycle ends.
fn aggregate<'a>(
    role: &'a ClusterRole,
    by_name: &BTreeMap<&'a str, &'a ClusterRole>,
    visited: &mut HashSet<&'a str>,
    seen: &mut HashSet<&'a PolicyRule>,
    out: &mut Vec<PolicyRule>,
) {
    let Some(aggregation) = &role.aggregation_rule else {
        return;
    };
    for selector in &aggregation.cluster_role_selectors {
        for (&name, &candidate) in by_name {
            if !selector_matches(selector, &candidate.labels) || !visited.insert(name) {
                continue;
            }
            if candidate.aggregation_rule.is_some() {
                aggregate(candidate, by_name, visited, seen, out);
            } else {
                for rule in &candidate.rules {
                    if seen.insert(rule) {
                        out.push(rule.clone());
                    }
                }
            }
        }
    }
}

/// `metav1.LabelSelectorAsSelector(selector).Matches(labels)`. An empty selector selects
/// every role, as in Kubernetes. A selector Kubernetes rejects (an unknown operator, `In`
/// or `NotIn` without values, `Exists` or `DoesNotExist` with values) makes the
/// controller give up on the role; here it selects nothing, so a broken selector never
/// grants more than it says.
pub(super) fn selector_matches(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> bool {
    let labels_match = selector
        .match_labels
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value));
    labels_match
        && selector.match_expressions.iter().all(|requirement| {
            let label = labels.get(&requirement.key);
            let values = &requirement.values;
            match requirement.operator.as_str() {
                "In" if !values.is_empty() => label.is_some_and(|l| values.contains(l)),
                "NotIn" if !values.is_empty() => label.is_none_or(|l| !values.contains(l)),
                "Exists" if values.is_empty() => label.is_some(),
                "DoesNotExist" if values.is_empty() => label.is_none(),
                _ => false,
            }
        })
}
