//! Kubernetes' own RBAC test cases, ported (each names the Go test it comes from), and
//! the read grants the index's scope is compiled from.

use std::collections::{BTreeMap, BTreeSet};

use super::aggregation::{resolve, selector_matches};
use super::matching::rule_allows;
use super::*;
use crate::rbac::{
    AggregationRule, ClusterRole, ClusterRoleBinding, LabelSelector, LabelSelectorRequirement,
    Role, RoleBinding, RoleRef, ALL_AUTHENTICATED,
};

fn split(s: &str) -> Vec<String> {
    // Go's strings.Split: "" gives [""], as the Go tests' newRule relies on.
    s.split(',').map(str::to_string).collect()
}

/// rbac_test.go `newRule(verbs, apiGroups, resources, nonResourceURLs)`.
fn new_rule(verbs: &str, groups: &str, resources: &str, urls: &str) -> PolicyRule {
    PolicyRule {
        verbs: split(verbs),
        api_groups: split(groups),
        resources: split(resources),
        resource_names: vec![],
        non_resource_urls: split(urls),
    }
}

/// `rbac.NewRule(verbs).Groups(groups).Resources(resources)`.
fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    PolicyRule {
        verbs: owned(verbs),
        api_groups: owned(groups),
        resources: owned(resources),
        ..PolicyRule::default()
    }
}

fn named(mut rule: PolicyRule, names: &[&str]) -> PolicyRule {
    rule.resource_names = names.iter().map(|s| s.to_string()).collect();
    rule
}

/// "User:alice", "Group:devs", "ServiceAccount:ns:name" or "ServiceAccount:name".
fn subject(spec: &str) -> Subject {
    let (kind, rest) = spec.split_once(':').unwrap();
    let (namespace, name) = match (kind, rest.split_once(':')) {
        ("ServiceAccount", Some((ns, name))) => (ns, name),
        _ => ("", rest),
    };
    Subject {
        kind: kind.into(),
        name: name.into(),
        namespace: namespace.into(),
        api_group: if kind == "ServiceAccount" {
            ""
        } else {
            "rbac.authorization.k8s.io"
        }
        .into(),
    }
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        kind: kind.into(),
        name: name.into(),
        api_group: "rbac.authorization.k8s.io".into(),
    }
}

fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        name: name.into(),
        rules,
        ..ClusterRole::default()
    }
}

fn role(namespace: &str, name: &str, rules: Vec<PolicyRule>) -> Role {
    Role {
        namespace: namespace.into(),
        name: name.into(),
        rules,
    }
}

fn crb(role: &str, subjects: &[&str]) -> ClusterRoleBinding {
    ClusterRoleBinding {
        name: format!("{role}-binding"),
        role_ref: role_ref("ClusterRole", role),
        subjects: subjects.iter().map(|s| subject(s)).collect(),
    }
}

fn rb(namespace: &str, kind: &str, role: &str, subjects: &[&str]) -> RoleBinding {
    RoleBinding {
        namespace: namespace.into(),
        name: format!("{role}-binding"),
        role_ref: role_ref(kind, role),
        subjects: subjects.iter().map(|s| subject(s)).collect(),
    }
}

fn user(name: &str, groups: &str) -> UserInfo {
    UserInfo {
        name: name.into(),
        groups: split(groups),
    }
}

fn request<'a>(
    verb: &'a str,
    resource: &'a str,
    subresource: &'a str,
    namespace: &'a str,
) -> ResourceAttributes<'a> {
    ResourceAttributes {
        verb,
        resource,
        subresource,
        namespace,
        ..ResourceAttributes::default()
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn some(namespaces: &[&str]) -> Namespaces {
    Namespaces::Some(set(namespaces))
}

fn grant(namespaces: Namespaces, groups: &[&str], resources: &[&str], names: &[&str]) -> ReadGrant {
    ReadGrant {
        namespaces,
        api_groups: set(groups),
        resources: set(resources),
        names: set(names),
    }
}

// ---- rbac_test.go TestAuthorizer ----

// TestAuthorizer case 0.
#[test]
fn role_binding_to_cluster_role_allows_only_in_its_namespace_for_user_and_group() {
    let authorizer = Authorizer::new(&AccessSnapshot {
        cluster_roles: vec![cluster_role("admin", vec![new_rule("*", "*", "*", "*")])],
        role_bindings: vec![rb(
            "ns1",
            "ClusterRole",
            "admin",
            &["User:admin", "Group:admins"],
        )],
        ..AccessSnapshot::default()
    });
    for (name, groups, verb, resource, ns) in [
        ("admin", "", "get", "Pods", "ns1"),
        ("admin", "", "watch", "Pods", "ns1"),
        ("admin", "group1", "watch", "Foobar", "ns1"),
        ("joe", "admins", "watch", "Foobar", "ns1"),
        ("joe", "group1,admins", "watch", "Foobar", "ns1"),
    ] {
        let attrs = request(verb, resource, "", ns);
        assert!(
            authorizer.allows(&user(name, groups), &attrs),
            "restricted {name} {groups} {attrs:?}"
        );
    }
    for (name, groups, verb, resource, ns) in [
        ("admin", "", "GET", "Pods", "ns2"),
        ("admin", "", "GET", "Nodes", ""),
        ("admin", "admins", "GET", "Pods", "ns2"),
        ("admin", "admins", "GET", "Nodes", ""),
    ] {
        let attrs = request(verb, resource, "", ns);
        assert!(
            !authorizer.allows(&user(name, groups), &attrs),
            "passed {name} {groups} {attrs:?}"
        );
    }
}

// TestAuthorizer case 1 (the non-resource URL case): those rules allow no resource request.
#[test]
fn non_resource_url_rules_never_allow_a_resource_request() {
    let authorizer = Authorizer::new(&AccessSnapshot {
        cluster_roles: vec![
            cluster_role("non-resource-url-getter", vec![rule(&["get"], &[], &[])]),
            cluster_role("non-resource-url", vec![rule(&["*"], &[], &[])]),
            cluster_role("non-resource-url-prefix", vec![rule(&["get"], &[], &[])]),
        ]
        .into_iter()
        .zip(["/apis", "/apis", "/apis/*"])
        .map(|(mut role, url)| {
            role.rules[0].non_resource_urls = vec![url.into()];
            role
        })
        .collect(),
        cluster_role_bindings: vec![
            crb("non-resource-url-getter", &["User:foo", "Group:bar"]),
            crb("non-resource-url", &["User:admin", "Group:admin"]),
            crb(
                "non-resource-url-prefix",
                &["User:prefixed", "Group:prefixed"],
            ),
        ],
        ..AccessSnapshot::default()
    });
    for who in [
        user("foo", ""),
        user("", "bar"),
        user("admin", ""),
        user("", "admin"),
        user("prefixed", "prefixed"),
    ] {
        for ns in ["", "default"] {
            for verb in ["get", "list", "watch"] {
                assert!(
                    !authorizer.allows(&who, &request(verb, "pods", "", ns)),
                    "{who:?} {verb} {ns}"
                );
            }
        }
        assert!(authorizer.read_grants(&who).is_empty());
    }
}

// TestAuthorizer case 2 ("test subresource resolution").
#[test]
fn a_resource_rule_does_not_allow_its_subresources() {
    let authorizer = Authorizer::new(&AccessSnapshot {
        cluster_roles: vec![cluster_role("admin", vec![new_rule("*", "*", "pods", "*")])],
        role_bindings: vec![rb(
            "ns1",
            "ClusterRole",
            "admin",
            &["User:admin", "Group:admins"],
        )],
        ..AccessSnapshot::default()
    });
    assert!(authorizer.allows(&user("admin", ""), &request("get", "pods", "", "ns1")));
    assert!(!authorizer.allows(&user("admin", ""), &request("get", "pods", "status", "ns1")));
}

// TestAuthorizer case 3 ("test subresource resolution").
#[test]
fn a_subresource_rule_does_not_allow_its_resource() {
    let authorizer = Authorizer::new(&AccessSnapshot {
        cluster_roles: vec![cluster_role(
            "admin",
            vec![new_rule("*", "*", "pods/status", "*")],
        )],
        role_bindings: vec![rb(
            "ns1",
            "ClusterRole",
            "admin",
            &["User:admin", "Group:admins"],
        )],
        ..AccessSnapshot::default()
    });
    assert!(authorizer.allows(&user("admin", ""), &request("get", "pods", "status", "ns1")));
    assert!(!authorizer.allows(&user("admin", ""), &request("get", "pods", "", "ns1")));
}

// ---- rbac_test.go TestRuleMatches ----

fn check_rule(name: &str, rule: &PolicyRule, cases: &[(&str, &str, &str, &str, bool)]) {
    for &(verb, group, resource, subresource, expected) in cases {
        let attrs = ResourceAttributes {
            verb,
            api_group: group,
            resource,
            subresource,
            ..ResourceAttributes::default()
        };
        assert_eq!(rule_allows(rule, &attrs), expected, "{name}: {attrs:?}");
    }
}

// TestRuleMatches "star verb, exact match other".
#[test]
fn star_verb_matches_any_verb_with_exact_group_and_resource() {
    check_rule(
        "star verb",
        &rule(&["*"], &["group1"], &["resource1"]),
        &[
            ("verb1", "group1", "resource1", "", true),
            ("verb1", "group2", "resource1", "", false),
            ("verb1", "group1", "resource2", "", false),
            ("verb1", "group2", "resource2", "", false),
            ("verb2", "group1", "resource1", "", true),
            ("verb2", "group2", "resource1", "", false),
            ("verb2", "group1", "resource2", "", false),
            ("verb2", "group2", "resource2", "", false),
        ],
    );
}

// TestRuleMatches "star group, exact match other".
#[test]
fn star_group_matches_any_group_with_exact_verb_and_resource() {
    check_rule(
        "star group",
        &rule(&["verb1"], &["*"], &["resource1"]),
        &[
            ("verb1", "group1", "resource1", "", true),
            ("verb1", "group2", "resource1", "", true),
            ("verb1", "group1", "resource2", "", false),
            ("verb1", "group2", "resource2", "", false),
            ("verb2", "group1", "resource1", "", false),
            ("verb2", "group2", "resource1", "", false),
            ("verb2", "group1", "resource2", "", false),
            ("verb2", "group2", "resource2", "", false),
        ],
    );
}

// TestRuleMatches "star resource, exact match other".
#[test]
fn star_resource_matches_any_resource_with_exact_verb_and_group() {
    check_rule(
        "star resource",
        &rule(&["verb1"], &["group1"], &["*"]),
        &[
            ("verb1", "group1", "resource1", "", true),
            ("verb1", "group2", "resource1", "", false),
            ("verb1", "group1", "resource2", "", true),
            ("verb1", "group2", "resource2", "", false),
            ("verb2", "group1", "resource1", "", false),
            ("verb2", "group2", "resource1", "", false),
            ("verb2", "group1", "resource2", "", false),
            ("verb2", "group2", "resource2", "", false),
        ],
    );
}

// TestRuleMatches "tuple expansion".
#[test]
fn a_rule_allows_every_combination_of_its_verbs_groups_and_resources() {
    let mut cases = vec![];
    for verb in ["verb1", "verb2"] {
        for group in ["group1", "group2"] {
            for resource in ["resource1", "resource2"] {
                cases.push((verb, group, resource, "", true));
            }
        }
    }
    cases.push(("verb3", "group1", "resource1", "", false));
    check_rule(
        "tuple expansion",
        &rule(
            &["verb1", "verb2"],
            &["group1", "group2"],
            &["resource1", "resource2"],
        ),
        &cases,
    );
}

// TestRuleMatches "subresource expansion".
#[test]
fn a_resource_slash_subresource_rule_matches_only_that_pair() {
    check_rule(
        "subresource expansion",
        &rule(&["*"], &["*"], &["resource1/subresource1"]),
        &[
            ("verb1", "group1", "resource1", "subresource1", true),
            ("verb1", "group2", "resource1", "subresource2", false),
            ("verb1", "group1", "resource2", "subresource1", false),
            ("verb1", "group2", "resource2", "subresource1", false),
            ("verb2", "group1", "resource1", "subresource1", true),
            ("verb2", "group2", "resource1", "subresource2", false),
            ("verb2", "group1", "resource2", "subresource1", false),
            ("verb2", "group2", "resource2", "subresource1", false),
            // Not a prefix match: `resource1/subresource1x` is another subresource.
            ("verb1", "group1", "resource1", "subresource1x", false),
            ("verb1", "group1", "resource1", "", false),
        ],
    );
}

// ResourceMatches' `*/subresource` branch (pkg/apis/rbac/v1/evaluation_helpers.go).
#[test]
fn star_slash_subresource_matches_that_subresource_of_any_resource() {
    check_rule(
        "*/scale",
        &rule(&["get"], &["*"], &["*/scale"]),
        &[
            ("get", "apps", "deployments", "scale", true),
            ("get", "", "replicationcontrollers", "scale", true),
            ("get", "apps", "deployments", "", false),
            ("get", "apps", "deployments", "status", false),
            ("get", "apps", "deployments", "xscale", false),
        ],
    );
}

// ResourceNameMatches (pkg/apis/rbac/v1/evaluation_helpers.go).
#[test]
fn resource_names_limit_a_rule_to_those_names_and_never_a_nameless_list() {
    let rule = named(rule(&["get", "list"], &[""], &["configmaps"]), &["a", "b"]);
    for (verb, name, expected) in [
        ("get", "a", true),
        ("get", "b", true),
        ("get", "c", false),
        ("list", "", false),
        ("list", "a", true),
    ] {
        let attrs = ResourceAttributes {
            verb,
            resource: "configmaps",
            name,
            ..ResourceAttributes::default()
        };
        assert_eq!(rule_allows(&rule, &attrs), expected, "{attrs:?}");
    }
}

// TestRuleMatches "star verb, exact nonresource" and siblings, for resource requests.
#[test]
fn a_non_resource_rule_matches_no_resource_request() {
    let mut rule = rule(&["*"], &[], &[]);
    rule.non_resource_urls = vec!["*".into(), "/foo".into()];
    check_rule(
        "nonresource",
        &rule,
        &[
            ("verb1", "", "foo", "", false),
            ("get", "group1", "pods", "", false),
        ],
    );
}

// ---- validation/rule_test.go TestAppliesTo ----

#[test]
fn subjects_apply_as_kubernetes_applies_to_decides() {
    let cases: &[(&[&str], UserInfo, &str, bool, &str)] = &[
        (
            &["User:foobar"],
            user("foobar", ""),
            "",
            true,
            "single subject that matches username",
        ),
        (
            &["User:barfoo", "User:foobar"],
            user("foobar", ""),
            "",
            true,
            "multiple subjects, one that matches username",
        ),
        (
            &["User:barfoo", "User:foobar"],
            user("zimzam", ""),
            "",
            false,
            "multiple subjects, none that match username",
        ),
        (
            &["User:barfoo", "Group:foobar"],
            user("zimzam", "foobar"),
            "",
            true,
            "multiple subjects, one that match group",
        ),
        (
            &["User:barfoo", "Group:foobar"],
            user("zimzam", "foobar"),
            "namespace1",
            true,
            "multiple subjects, one that match group, should ignore namespace",
        ),
        (
            &[
                "User:barfoo",
                "Group:foobar",
                "ServiceAccount:kube-system:default",
            ],
            user("system:serviceaccount:kube-system:default", ""),
            "default",
            true,
            "multiple subjects with a service account that matches",
        ),
        (
            &["User:*"],
            user("foobar", ""),
            "default",
            false,
            "* user subject name doesn't match all users",
        ),
        (
            &["Group:system:authenticated", "Group:system:unauthenticated"],
            user("foobar", ALL_AUTHENTICATED),
            "default",
            true,
            "binding to all authenticated and unauthenticated subjects matches authenticated user",
        ),
        (
            &["Group:system:authenticated", "Group:system:unauthenticated"],
            user("system:anonymous", "system:unauthenticated"),
            "default",
            true,
            "binding to all authenticated and unauthenticated subjects matches anonymous user",
        ),
    ];
    for (subjects, who, namespace, expected, name) in cases {
        let applies = subjects
            .iter()
            .any(|s| user_matches_subject(who, &subject(s), namespace));
        assert_eq!(applies, *expected, "{name}");
        // The index answers the same: a binding in `namespace` (or cluster-wide).
        let binding_rules = vec![rule(&["get"], &[""], &["pods"])];
        let snapshot = if namespace.is_empty() {
            AccessSnapshot {
                cluster_roles: vec![cluster_role("r", binding_rules)],
                cluster_role_bindings: vec![crb("r", subjects)],
                ..AccessSnapshot::default()
            }
        } else {
            AccessSnapshot {
                roles: vec![role(namespace, "r", binding_rules)],
                role_bindings: vec![rb(namespace, "Role", "r", subjects)],
                ..AccessSnapshot::default()
            }
        };
        let ns = if namespace.is_empty() {
            "any"
        } else {
            namespace
        };
        assert_eq!(
            Authorizer::new(&snapshot).allows(who, &request("get", "pods", "", ns)),
            *expected,
            "{name}"
        );
    }
}

// appliesToUser: a ServiceAccount subject without a namespace takes its RoleBinding's and,
// in a ClusterRoleBinding, names no one.
#[test]
fn a_service_account_subject_without_namespace_defaults_to_the_role_binding_namespace() {
    let sa = UserInfo::service_account("team-a", "builder");
    let bare = subject("ServiceAccount:builder");
    assert!(user_matches_subject(&sa, &bare, "team-a"));
    assert!(!user_matches_subject(&sa, &bare, "team-b"));
    assert!(!user_matches_subject(&sa, &bare, ""));
    // Only the exact `system:serviceaccount:NS:NAME` matches (serviceaccount.MatchesUsername).
    let other = UserInfo::service_account("team-a", "builder2");
    assert!(!user_matches_subject(
        &other,
        &subject("ServiceAccount:team-a:builder"),
        ""
    ));
    // Unknown kinds match no one.
    let mut odd = subject("User:alice");
    odd.kind = "user".into();
    assert!(!user_matches_subject(&user("alice", ""), &odd, ""));
}

// ---- validation/rule_test.go TestDefaultRuleResolver ----

#[test]
fn rules_resolve_per_namespace_and_cluster_as_the_default_rule_resolver_does() {
    let read_pods = rule(&["GET", "WATCH"], &["v1"], &["pods"]);
    let read_services = rule(&["GET", "WATCH"], &["v1"], &["services"]);
    let write_nodes = rule(&["PUT", "CREATE", "UPDATE"], &["v1"], &["nodes"]);
    let admin = rule(&["*"], &["*"], &["*"]);
    let authorizer = Authorizer::new(&AccessSnapshot {
        roles: vec![role(
            "namespace1",
            "readthings",
            vec![read_pods, read_services],
        )],
        cluster_roles: vec![
            cluster_role("cluster-admin", vec![admin]),
            cluster_role("write-nodes", vec![write_nodes]),
        ],
        role_bindings: vec![rb(
            "namespace1",
            "Role",
            "readthings",
            &["User:foobar", "Group:group1"],
        )],
        cluster_role_bindings: vec![crb("cluster-admin", &["User:admin", "Group:admin"])],
        ..AccessSnapshot::default()
    });
    let get = |resource: &'static str, ns: &'static str| ResourceAttributes {
        verb: "GET",
        api_group: "v1",
        resource,
        namespace: ns,
        ..ResourceAttributes::default()
    };
    let foobar = user("foobar", "");
    assert!(authorizer.allows(&foobar, &get("pods", "namespace1")));
    assert!(authorizer.allows(&foobar, &get("services", "namespace1")));
    assert!(!authorizer.allows(&foobar, &get("nodes", "namespace1")));
    assert!(!authorizer.allows(&foobar, &get("pods", "namespace2")));
    assert!(authorizer.allows(&user("foobar", "admin"), &get("nodes", "")));
    assert!(!authorizer.allows(&UserInfo::default(), &get("pods", "namespace1")));
    assert!(!authorizer.allows(&UserInfo::default(), &get("nodes", "")));
}

// GetRoleReferenceRules: a missing role, a ClusterRoleBinding to a Role, an unknown kind.
#[test]
fn a_missing_or_misreferenced_role_grants_nothing() {
    let rules = vec![rule(&["*"], &["*"], &["*"])];
    let authorizer = Authorizer::new(&AccessSnapshot {
        roles: vec![
            role("other", "r", rules.clone()),
            role("", "r", rules.clone()),
        ],
        role_bindings: vec![
            rb("ns1", "Role", "r", &["User:a"]),
            rb("ns1", "ClusterRole", "missing", &["User:a"]),
            rb("ns1", "Other", "r", &["User:a"]),
        ],
        cluster_role_bindings: vec![ClusterRoleBinding {
            name: "to-role".into(),
            role_ref: role_ref("Role", "r"),
            subjects: vec![subject("User:a")],
        }],
        ..AccessSnapshot::default()
    });
    for ns in ["", "ns1", "other"] {
        assert!(
            !authorizer.allows(&user("a", ""), &request("get", "pods", "", ns)),
            "{ns}"
        );
    }
    assert!(authorizer.read_grants(&user("a", "")).is_empty());
}

// ---- clusterroleaggregation_controller_test.go TestSyncClusterRole ----

fn hammer() -> Vec<PolicyRule> {
    vec![
        rule(&["hammer"], &[], &["nails"]),
        rule(&["hammer"], &[], &["wedges"]),
    ]
}
fn chisel() -> Vec<PolicyRule> {
    vec![rule(&["chisel"], &[], &["mortises"])]
}
fn saw() -> Vec<PolicyRule> {
    vec![rule(&["saw"], &[], &["boards"])]
}

fn labelled(name: &str, foo: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        name: name.into(),
        labels: BTreeMap::from([("foo".to_string(), foo.to_string())]),
        rules,
        aggregation_rule: None,
    }
}

fn combined(foos: &[&str], rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        name: "combined".into(),
        labels: BTreeMap::new(),
        rules,
        aggregation_rule: Some(AggregationRule {
            cluster_role_selectors: foos
                .iter()
                .map(|foo| LabelSelector {
                    match_labels: BTreeMap::from([("foo".to_string(), foo.to_string())]),
                    match_expressions: vec![],
                })
                .collect(),
        }),
    }
}

fn combined_rules(roles: &[ClusterRole]) -> Vec<PolicyRule> {
    resolve(roles)["combined"]
        .iter()
        .map(|r| (*r).clone())
        .collect()
}

#[test]
fn aggregation_replaces_dead_rules() {
    // TestSyncClusterRole "remove dead rules".
    let roles = [
        labelled("hammer", "bar", hammer()),
        combined(&["bar"], saw()),
    ];
    assert_eq!(combined_rules(&roles), hammer());
}

#[test]
fn aggregation_strips_rules_when_nothing_matches() {
    // TestSyncClusterRole "strip rules".
    let roles = [
        labelled("hammer", "not-bar", hammer()),
        combined(&["bar"], hammer()),
    ];
    assert_eq!(combined_rules(&roles), Vec::<PolicyRule>::new());
}

#[test]
fn aggregation_selects_by_label_in_name_order() {
    // TestSyncClusterRole "select properly and put in order".
    let roles = [
        labelled("hammer", "bar", hammer()),
        labelled("chisel", "bar", chisel()),
        labelled("saw", "not-bar", saw()),
        combined(&["bar"], vec![]),
    ];
    assert_eq!(combined_rules(&roles), [chisel(), hammer()].concat());
}

#[test]
fn aggregation_takes_every_selector_in_turn() {
    // TestSyncClusterRole "select properly with multiple selectors".
    let roles = [
        labelled("hammer", "bar", hammer()),
        labelled("chisel", "bar", chisel()),
        labelled("saw", "not-bar", saw()),
        combined(&["bar", "not-bar"], vec![]),
    ];
    assert_eq!(combined_rules(&roles), [chisel(), hammer(), saw()].concat());
}

#[test]
fn aggregation_drops_duplicate_rules() {
    // TestSyncClusterRole "select properly remove duplicates".
    let roles = [
        labelled("hammer", "bar", hammer()),
        labelled("chisel", "bar", chisel()),
        labelled("saw", "bar", saw()),
        labelled("other-saw", "not-bar", saw()),
        combined(&["bar", "not-bar"], vec![]),
    ];
    assert_eq!(combined_rules(&roles), [chisel(), hammer(), saw()].concat());
}

#[test]
fn an_already_aggregated_role_keeps_its_rules() {
    // TestSyncClusterRole "no diff skip".
    let roles = [
        labelled("hammer", "bar", hammer()),
        combined(&["bar"], hammer()),
    ];
    assert_eq!(combined_rules(&roles), hammer());
}

#[test]
fn nested_aggregation_takes_what_the_inner_role_aggregates() {
    // admin aggregates edit, which aggregates `aggregate-to-edit` roles (the default roles).
    let mut edit = combined(&["edit"], vec![rule(&["stale"], &[], &["x"])]);
    edit.name = "edit".into();
    edit.labels = BTreeMap::from([("foo".to_string(), "admin".to_string())]);
    let mut admin = combined(&["admin"], vec![]);
    admin.name = "admin".into();
    let roles = [
        labelled("hammer", "edit", hammer()),
        labelled("saw", "admin", saw()),
        edit,
        admin,
    ];
    let resolved = resolve(&roles);
    assert_eq!(
        resolved["edit"]
            .iter()
            .map(|r| (*r).clone())
            .collect::<Vec<_>>(),
        hammer()
    );
    assert_eq!(
        resolved["admin"]
            .iter()
            .map(|r| (*r).clone())
            .collect::<Vec<_>>(),
        [hammer(), saw()].concat()
    );
}

#[test]
fn an_aggregation_cycle_ends_and_keeps_the_rules_it_reaches() {
    let mut a = combined(&["b"], vec![]);
    a.name = "a".into();
    a.labels = BTreeMap::from([("foo".to_string(), "a".to_string())]);
    let mut b = combined(&["a", "base"], vec![]);
    b.name = "b".into();
    b.labels = BTreeMap::from([("foo".to_string(), "b".to_string())]);
    let roles = [a, b, labelled("hammer", "base", hammer())];
    let resolved = resolve(&roles);
    assert_eq!(
        resolved["a"]
            .iter()
            .map(|r| (*r).clone())
            .collect::<Vec<_>>(),
        hammer()
    );
    assert_eq!(
        resolved["b"]
            .iter()
            .map(|r| (*r).clone())
            .collect::<Vec<_>>(),
        hammer()
    );
}

#[test]
fn label_selectors_match_as_kubernetes_label_selectors_do() {
    let labels = BTreeMap::from([("tier".to_string(), "web".to_string())]);
    let expr = |op: &str, values: &[&str]| LabelSelector {
        match_labels: BTreeMap::new(),
        match_expressions: vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: op.into(),
            values: values.iter().map(|s| s.to_string()).collect(),
        }],
    };
    let none = BTreeMap::new();
    for (selector, on_web, on_unlabelled) in [
        (LabelSelector::default(), true, true),
        (expr("In", &["web", "db"]), true, false),
        (expr("In", &["db"]), false, false),
        (expr("NotIn", &["db"]), true, true),
        (expr("NotIn", &["web"]), false, true),
        (expr("Exists", &[]), true, false),
        (expr("DoesNotExist", &[]), false, true),
        // Selectors Kubernetes rejects select nothing.
        (expr("In", &[]), false, false),
        (expr("Exists", &["web"]), false, false),
        (expr("Equals", &["web"]), false, false),
    ] {
        assert_eq!(selector_matches(&selector, &labels), on_web, "{selector:?}");
        assert_eq!(
            selector_matches(&selector, &none),
            on_unlabelled,
            "{selector:?}"
        );
    }
}

// ---- read grants ----

fn view_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            &["get", "list", "watch"],
            &[""],
            &["pods", "pods/log", "services", "configmaps"],
        ),
        rule(
            &["get", "list", "watch"],
            &["apps"],
            &["deployments", "replicasets", "deployments/scale"],
        ),
        rule(&["get", "list", "watch"], &["batch"], &["jobs", "cronjobs"]),
    ]
}

#[test]
fn a_namespace_role_grants_listing_in_its_namespace_only() {
    let authorizer = Authorizer::new(&AccessSnapshot {
        roles: vec![role(
            "team-a",
            "reader",
            vec![
                rule(&["list"], &[""], &["pods"]),
                rule(&["get", "watch"], &[""], &["secrets"]),
            ],
        )],
        role_bindings: vec![rb("team-a", "Role", "reader", &["User:alice"])],
        ..AccessSnapshot::default()
    });
    // `get` without names makes nothing readable.
    assert_eq!(
        authorizer.read_grants(&user("alice", "")),
        vec![grant(some(&["team-a"]), &[""], &["pods"], &[])]
    );
    assert!(authorizer.read_grants(&user("bob", "")).is_empty());
}

#[test]
fn a_role_binding_to_a_cluster_role_grants_in_the_binding_namespace() {
    let authorizer = Authorizer::new(&AccessSnapshot {
        cluster_roles: vec![cluster_role(
            "pod-reader",
            vec![rule(&["list"], &[""], &["pods"])],
        )],
        role_bindings: vec![rb("team-b", "ClusterRole", "pod-reader", &["User:alice"])],
        ..AccessSnapshot::default()
    });
    assert_eq!(
        authorizer.read_grants(&user("alice", "")),
        vec![grant(some(&["team-b"]), &[""], &["pods"], &[])]
    );
    assert!(!authorizer.allows(&user("alice", ""), &request("list", "pods", "", "")));
}

#[test]
fn a_cluster_role_binding_grants_everywhere() {
    let authorizer = Authorizer::new(&AccessSnapshot {
        cluster_roles: vec![cluster_role(
            "node-reader",
            vec![rule(&["*"], &[""], &["nodes"])],
        )],
        cluster_role_bindings: vec![crb("node-reader", &["User:alice"])],
        ..AccessSnapshot::default()
    });
    // Verb `*` counts as list.
    assert_eq!(
        authorizer.read_grants(&user("alice", "")),
        vec![grant(Namespaces::All, &[""], &["nodes"], &[])]
    );
    assert!(authorizer.allows(&user("alice", ""), &request("list", "nodes", "", "")));
}

#[test]
fn an_aggregated_cluster_role_grants_the_rules_it_aggregates() {
    let mut aggregated = combined(&["view"], vec![]);
    aggregated.name = "view".into();
    let authorizer = Authorizer::new(&AccessSnapshot {
        cluster_roles: vec![
            aggregated,
            labelled(
                "crd-view",
                "view",
                vec![rule(&["list"], &["example.com"], &["widgets"])],
            ),
        ],
        cluster_role_bindings: vec![crb("view", &["User:alice"])],
        ..AccessSnapshot::default()
    });
    assert_eq!(
        authorizer.read_grants(&user("alice", "")),
        vec![grant(Namespaces::All, &["example.com"], &["widgets"], &[])]
    );
}

#[test]
fn a_group_binding_grants_to_members_of_the_group() {
    let authorizer = Authorizer::new(&AccessSnapshot {
        roles: vec![role(
            "ops",
            "reader",
            vec![rule(&["list"], &["apps"], &["deployments"])],
        )],
        role_bindings: vec![rb("ops", "Role", "reader", &["Group:sre"])],
        ..AccessSnapshot::default()
    });
    let expected = vec![grant(some(&["ops"]), &["apps"], &["deployments"], &[])];
    assert_eq!(authorizer.read_grants(&user("carol", "dev,sre")), expected);
    assert!(authorizer.read_grants(&user("sre", "dev")).is_empty());
}

#[test]
fn a_system_authenticated_binding_grants_to_every_authenticated_user() {
    let authorizer = Authorizer::new(&AccessSnapshot {
        cluster_roles: vec![cluster_role(
            "ns-reader",
            vec![rule(&["list"], &[""], &["namespaces"])],
        )],
        cluster_role_bindings: vec![crb("ns-reader", &["Group:system:authenticated"])],
        ..AccessSnapshot::default()
    });
    let expected = vec![grant(Namespaces::All, &[""], &["namespaces"], &[])];
    assert_eq!(
        authorizer.read_grants(&user("anyone", ALL_AUTHENTICATED)),
        expected
    );
    assert_eq!(
        authorizer.read_grants(&UserInfo::service_account("x", "y")),
        expected
    );
    assert!(authorizer
        .read_grants(&user("anonymous", "system:unauthenticated"))
        .is_empty());
}

#[test]
fn a_service_account_subject_grants_to_that_service_account() {
    let authorizer = Authorizer::new(&AccessSnapshot {
        cluster_roles: vec![cluster_role(
            "pod-reader",
            vec![rule(&["list"], &[""], &["pods"])],
        )],
        role_bindings: vec![rb(
            "ci",
            "ClusterRole",
            "pod-reader",
            &["ServiceAccount:builder"],
        )],
        cluster_role_bindings: vec![crb("pod-reader", &["ServiceAccount:monitoring:scraper"])],
        ..AccessSnapshot::default()
    });
    assert_eq!(
        authorizer.read_grants(&UserInfo::service_account("ci", "builder")),
        vec![grant(some(&["ci"]), &[""], &["pods"], &[])]
    );
    assert_eq!(
        authorizer.read_grants(&UserInfo::service_account("monitoring", "scraper")),
        vec![grant(Namespaces::All, &[""], &["pods"], &[])]
    );
    assert!(authorizer
        .read_grants(&UserInfo::service_account("other", "builder"))
        .is_empty());
}

#[test]
fn resource_names_grant_reading_only_those_objects() {
    let authorizer = Authorizer::new(&AccessSnapshot {
        roles: vec![role(
            "app",
            "config",
            vec![
                named(
                    rule(&["get"], &[""], &["configmaps"]),
                    &["settings", "flags"],
                ),
                named(rule(&["watch"], &[""], &["secrets"]), &["tls"]),
            ],
        )],
        role_bindings: vec![rb("app", "Role", "config", &["User:alice"])],
        ..AccessSnapshot::default()
    });
    assert_eq!(
        authorizer.read_grants(&user("alice", "")),
        vec![grant(
            some(&["app"]),
            &[""],
            &["configmaps"],
            &["flags", "settings"]
        )]
    );
}

#[test]
fn named_grants_are_dropped_where_the_whole_type_is_readable() {
    let authorizer = Authorizer::new(&AccessSnapshot {
        cluster_roles: vec![
            cluster_role("all-cm", vec![rule(&["list"], &[""], &["configmaps"])]),
            cluster_role(
                "one-cm",
                vec![named(rule(&["get"], &[""], &["configmaps"]), &["settings"])],
            ),
        ],
        role_bindings: vec![
            rb("a", "ClusterRole", "one-cm", &["User:alice"]),
            rb("b", "ClusterRole", "one-cm", &["User:alice"]),
        ],
        cluster_role_bindings: vec![crb("all-cm", &["User:alice"])],
        ..AccessSnapshot::default()
    });
    assert_eq!(
        authorizer.read_grants(&user("alice", "")),
        vec![grant(Namespaces::All, &[""], &["configmaps"], &[])]
    );
}

#[test]
fn subresource_only_rules_grant_no_reading_but_star_does() {
    let authorizer = Authorizer::new(&AccessSnapshot {
        roles: vec![
            role(
                "a",
                "logs",
                vec![rule(&["get", "list"], &[""], &["pods/log", "*/status"])],
            ),
            role(
                "a",
                "everything",
                vec![rule(&["list"], &["*"], &["*", "*/scale"])],
            ),
        ],
        role_bindings: vec![
            rb("a", "Role", "logs", &["User:logger"]),
            rb("a", "Role", "everything", &["User:root"]),
        ],
        ..AccessSnapshot::default()
    });
    assert!(authorizer.read_grants(&user("logger", "")).is_empty());
    assert!(authorizer.allows(
        &user("logger", ""),
        &ResourceAttributes {
            verb: "get",
            resource: "pods",
            subresource: "log",
            namespace: "a",
            ..Default::default()
        }
    ));
    assert_eq!(
        authorizer.read_grants(&user("root", "")),
        vec![grant(some(&["a"]), &["*"], &["*"], &[])]
    );
}

#[test]
fn fifty_role_bindings_to_one_cluster_role_merge_into_one_grant_per_rule() {
    let namespaces: Vec<String> = (0..50).map(|i| format!("ns-{i:02}")).collect();
    let mut snapshot = AccessSnapshot {
        cluster_roles: vec![cluster_role("view", view_rules())],
        role_bindings: namespaces
            .iter()
            .map(|ns| rb(ns, "ClusterRole", "view", &["User:alice"]))
            .collect(),
        ..AccessSnapshot::default()
    };
    let all: BTreeSet<String> = namespaces.iter().cloned().collect();
    let expected = vec![
        ReadGrant {
            namespaces: Namespaces::Some(all.clone()),
            ..grant(
                Namespaces::All,
                &[""],
                &["configmaps", "pods", "services"],
                &[],
            )
        },
        ReadGrant {
            namespaces: Namespaces::Some(all.clone()),
            ..grant(
                Namespaces::All,
                &["apps"],
                &["deployments", "replicasets"],
                &[],
            )
        },
        ReadGrant {
            namespaces: Namespaces::Some(all.clone()),
            ..grant(Namespaces::All, &["batch"], &["cronjobs", "jobs"], &[])
        },
    ];
    let grants = Authorizer::new(&snapshot).read_grants(&user("alice", ""));
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(grants, sorted);

    // The order of the bindings does not change the answer.
    snapshot.role_bindings.reverse();
    assert_eq!(
        Authorizer::new(&snapshot).read_grants(&user("alice", "")),
        grants
    );

    // A ClusterRoleBinding to the same role absorbs the namespaces.
    snapshot
        .cluster_role_bindings
        .push(crb("view", &["Group:viewers"]));
    let everywhere = Authorizer::new(&snapshot).read_grants(&user("alice", "viewers"));
    assert_eq!(everywhere.len(), 3);
    assert!(
        everywhere.iter().all(|g| g.namespaces == Namespaces::All),
        "{everywhere:?}"
    );
}
