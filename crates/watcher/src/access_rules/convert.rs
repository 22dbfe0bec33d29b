//! `rbac.authorization.k8s.io/v1` objects (k8s-openapi) into the shapes of the access
//! snapshot (`sync_model::rbac`): metadata cut down to what the rules need (namespace,
//! name, a ClusterRole's labels), absent lists as empty ones.

use k8s_openapi::api::rbac::v1 as k8s;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use sync_model::rbac;

use crate::discovery;

pub fn role(r: &k8s::Role) -> rbac::Role {
    rbac::Role {
        namespace: r.metadata.namespace.clone().unwrap_or_default(),
        name: r.metadata.name.clone().unwrap_or_default(),
        rules: rules(r.rules.as_deref()),
    }
}

pub fn cluster_role(r: &k8s::ClusterRole) -> rbac::ClusterRole {
    rbac::ClusterRole {
        name: r.metadata.name.clone().unwrap_or_default(),
        labels: r.metadata.labels.clone().unwrap_or_default(),
        rules: rules(r.rules.as_deref()),
        aggregation_rule: r.aggregation_rule.as_ref().map(|a| rbac::AggregationRule {
            cluster_role_selectors: a
                .cluster_role_selectors
                .iter()
                .flatten()
                .map(label_selector)
                .collect(),
        }),
    }
}

pub fn role_binding(b: &k8s::RoleBinding) -> rbac::RoleBinding {
    rbac::RoleBinding {
        namespace: b.metadata.namespace.clone().unwrap_or_default(),
        name: b.metadata.name.clone().unwrap_or_default(),
        role_ref: role_ref(&b.role_ref),
        subjects: subjects(b.subjects.as_deref()),
    }
}

pub fn cluster_role_binding(b: &k8s::ClusterRoleBinding) -> rbac::ClusterRoleBinding {
    rbac::ClusterRoleBinding {
        name: b.metadata.name.clone().unwrap_or_default(),
        role_ref: role_ref(&b.role_ref),
        subjects: subjects(b.subjects.as_deref()),
    }
}

/// A served type as the snapshot names it (discovery's view, without the version).
pub fn resource_type(t: &discovery::ResourceType) -> rbac::ResourceType {
    rbac::ResourceType {
        group: t.group.clone(),
        plural: t.plural.clone(),
        kind: t.kind.clone(),
        namespaced: t.namespaced,
    }
}

fn rules(rules: Option<&[k8s::PolicyRule]>) -> Vec<rbac::PolicyRule> {
    let list = |l: &Option<Vec<String>>| l.clone().unwrap_or_default();
    rules
        .unwrap_or_default()
        .iter()
        .map(|r| rbac::PolicyRule {
            verbs: r.verbs.clone(),
            api_groups: list(&r.api_groups),
            resources: list(&r.resources),
            resource_names: list(&r.resource_names),
            non_resource_urls: list(&r.non_resource_urls),
        })
        .collect()
}

fn label_selector(s: &meta::LabelSelector) -> rbac::LabelSelector {
    rbac::LabelSelector {
        match_labels: s.match_labels.clone().unwrap_or_default(),
        match_expressions: s
            .match_expressions
            .iter()
            .flatten()
            .map(|e| rbac::LabelSelectorRequirement {
                key: e.key.clone(),
                operator: e.operator.clone(),
                values: e.values.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

fn role_ref(r: &k8s::RoleRef) -> rbac::RoleRef {
    rbac::RoleRef {
        kind: r.kind.clone(),
        name: r.name.clone(),
        api_group: r.api_group.clone(),
    }
}

fn subjects(subjects: Option<&[k8s::Subject]>) -> Vec<rbac::Subject> {
    subjects
        .unwrap_or_default()
        .iter()
        .map(|s| rbac::Subject {
            kind: s.kind.clone(),
            name: s.name.clone(),
            namespace: s.namespace.clone().unwrap_or_default(),
            api_group: s.api_group.clone().unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).expect("a valid object")
    }

    #[test]
    fn a_role_keeps_its_namespace_name_and_rules_with_absent_lists_empty() {
        let r: k8s::Role = from(json!({
            "metadata": {"namespace": "team-a", "name": "reader", "uid": "u1",
                         "resourceVersion": "7", "labels": {"x": "y"}},
            "rules": [
                {"apiGroups": ["", "apps"], "resources": ["pods", "deployments"], "verbs": ["get", "list"]},
                {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["settings"], "verbs": ["get"]}
            ]
        }));
        assert_eq!(
            role(&r),
            rbac::Role {
                namespace: "team-a".into(),
                name: "reader".into(),
                rules: vec![
                    rbac::PolicyRule {
                        verbs: vec!["get".into(), "list".into()],
                        api_groups: vec!["".into(), "apps".into()],
                        resources: vec!["pods".into(), "deployments".into()],
                        ..Default::default()
                    },
                    rbac::PolicyRule {
                        verbs: vec!["get".into()],
                        api_groups: vec!["".into()],
                        resources: vec!["configmaps".into()],
                        resource_names: vec!["settings".into()],
                        ..Default::default()
                    },
                ],
            }
        );
        let empty: k8s::Role = from(json!({"metadata": {"namespace": "n", "name": "none"}}));
        assert!(role(&empty).rules.is_empty());
    }

    #[test]
    fn a_cluster_role_keeps_its_labels_non_resource_urls_and_aggregation_rule() {
        let r: k8s::ClusterRole = from(json!({
            "metadata": {"name": "monitoring", "labels": {"rbac.example.com/aggregate-to-monitoring": "true"}},
            "aggregationRule": {"clusterRoleSelectors": [
                {"matchLabels": {"rbac.example.com/aggregate-to-monitoring": "true"}},
                {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                                      {"key": "legacy", "operator": "DoesNotExist"}]}
            ]},
            "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
        }));
        let got = cluster_role(&r);
        assert_eq!(got.name, "monitoring");
        assert_eq!(
            got.labels["rbac.example.com/aggregate-to-monitoring"],
            "true"
        );
        assert_eq!(got.rules[0].non_resource_urls, ["/metrics"]);
        assert!(got.rules[0].resources.is_empty());
        let selectors = got
            .aggregation_rule
            .expect("aggregation rule")
            .cluster_role_selectors;
        assert_eq!(selectors.len(), 2);
        assert_eq!(
            selectors[0].match_labels["rbac.example.com/aggregate-to-monitoring"],
            "true"
        );
        assert_eq!(
            selectors[1].match_expressions,
            [
                rbac::LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: vec!["a".into(), "b".into()],
                },
                rbac::LabelSelectorRequirement {
                    key: "legacy".into(),
                    operator: "DoesNotExist".into(),
                    values: vec![],
                },
            ]
        );
        // Without an aggregation rule there is none (not an empty one, which selects nothing).
        let plain: k8s::ClusterRole = from(json!({"metadata": {"name": "view"}}));
        assert_eq!(cluster_role(&plain).aggregation_rule, None);
        assert!(cluster_role(&plain).labels.is_empty());
    }

    #[test]
    fn bindings_keep_their_role_ref_and_subjects_of_every_kind() {
        let b: k8s::RoleBinding = from(json!({
            "metadata": {"namespace": "team-a", "name": "readers"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [
                {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
                {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "devs"},
                {"kind": "ServiceAccount", "name": "bot", "namespace": "ci"}
            ]
        }));
        let got = role_binding(&b);
        assert_eq!(
            (got.namespace.as_str(), got.name.as_str()),
            ("team-a", "readers")
        );
        assert_eq!(
            got.role_ref,
            rbac::RoleRef {
                kind: "Role".into(),
                name: "reader".into(),
                api_group: "rbac.authorization.k8s.io".into(),
            }
        );
        assert_eq!(
            got.subjects[2],
            rbac::Subject {
                kind: "ServiceAccount".into(),
                name: "bot".into(),
                namespace: "ci".into(),
                api_group: "".into(),
            }
        );
        assert_eq!(got.subjects[0].api_group, "rbac.authorization.k8s.io");
        let c: k8s::ClusterRoleBinding = from(json!({
            "metadata": {"name": "nobody"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}
        }));
        let got = cluster_role_binding(&c);
        assert_eq!(got.name, "nobody");
        assert_eq!(got.role_ref.kind, "ClusterRole");
        assert!(got.subjects.is_empty());
    }

    #[test]
    fn a_served_type_is_named_by_group_plural_kind_and_scope() {
        let t = discovery::ResourceType::new("apps", "v1", "Deployment", "deployments", true);
        assert_eq!(
            resource_type(&t),
            rbac::ResourceType {
                group: "apps".into(),
                plural: "deployments".into(),
                kind: "Deployment".into(),
                namespaced: true,
            }
        );
    }
}
