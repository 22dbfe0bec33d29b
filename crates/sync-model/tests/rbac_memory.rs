//! The authorizer's memory for the clusters the server holds at once: five clusters of
//! 2,000 roles and 2,000 bindings each must stay well under 50 MiB. Its own test binary,
//! because it counts every allocation of the process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use sync_model::rbac::authorizer::{Authorizer, Namespaces, ResourceAttributes};
use sync_model::rbac::{
    AccessSnapshot, ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef,
    Subject, UserInfo,
};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A `view`-like role: a dozen rules over the usual types, two of them its own (a
/// resource name, a group of its own).
fn rules(i: usize) -> Vec<PolicyRule> {
    let read = strings(&["get", "list", "watch"]);
    let own_group = format!("example-{i}.com");
    let mut rules: Vec<PolicyRule> = [
        (
            "",
            &["pods", "pods/log", "pods/status", "services", "endpoints"][..],
        ),
        (
            "",
            &["configmaps", "persistentvolumeclaims", "serviceaccounts"],
        ),
        (
            "",
            &[
                "events",
                "limitranges",
                "resourcequotas",
                "replicationcontrollers",
            ],
        ),
        (
            "apps",
            &[
                "deployments",
                "deployments/scale",
                "replicasets",
                "statefulsets",
            ],
        ),
        ("apps", &["daemonsets", "controllerrevisions"]),
        ("batch", &["jobs", "cronjobs"]),
        ("autoscaling", &["horizontalpodautoscalers"]),
        ("networking.k8s.io", &["ingresses", "networkpolicies"]),
        ("policy", &["poddisruptionbudgets"]),
        ("discovery.k8s.io", &["endpointslices"]),
        (own_group.as_str(), &["widgets", "gadgets"]),
        ("metrics.k8s.io", &["pods", "nodes"]),
    ]
    .into_iter()
    .map(|(group, resources)| PolicyRule {
        verbs: read.clone(),
        api_groups: vec![group.to_string()],
        resources: strings(resources),
        ..PolicyRule::default()
    })
    .collect();
    rules.push(PolicyRule {
        verbs: strings(&["get", "update"]),
        api_groups: strings(&[""]),
        resources: strings(&["configmaps"]),
        resource_names: vec![format!("settings-{i}")],
        ..PolicyRule::default()
    });
    rules
}

fn subject(kind: &str, name: String, namespace: &str) -> Subject {
    Subject {
        kind: kind.into(),
        name,
        namespace: namespace.into(),
        api_group: String::new(),
    }
}

/// 1,000 Roles, 1,000 ClusterRoles, 1,000 RoleBindings and 1,000 ClusterRoleBindings,
/// each binding naming a user, a group and a ServiceAccount.
fn cluster(c: usize) -> AccessSnapshot {
    let ns = |i: usize| format!("ns-{}", i % 60);
    let subjects = |i: usize| {
        vec![
            subject("User", format!("user-{c}-{i}"), ""),
            subject("Group", format!("team-{}", i % 40), ""),
            subject("ServiceAccount", format!("sa-{i}"), &ns(i)),
        ]
    };
    let role_ref = |kind: &str, name: String| RoleRef {
        kind: kind.into(),
        name,
        api_group: "rbac.authorization.k8s.io".into(),
    };
    AccessSnapshot {
        cluster: Some(format!("cluster-{c}")),
        roles: (0..1000)
            .map(|i| Role {
                namespace: ns(i),
                name: format!("role-{i}"),
                rules: rules(c * 10_000 + i),
            })
            .collect(),
        cluster_roles: (0..1000)
            .map(|i| ClusterRole {
                name: format!("cluster-role-{i}"),
                rules: rules(c * 10_000 + 5000 + i),
                ..ClusterRole::default()
            })
            .collect(),
        role_bindings: (0..1000)
            .map(|i| RoleBinding {
                namespace: ns(i),
                name: format!("binding-{i}"),
                role_ref: if i % 2 == 0 {
                    role_ref("Role", format!("role-{i}"))
                } else {
                    role_ref("ClusterRole", format!("cluster-role-{}", i % 10))
                },
                subjects: subjects(i),
            })
            .collect(),
        cluster_role_bindings: (0..1000)
            .map(|i| ClusterRoleBinding {
                name: format!("cluster-binding-{i}"),
                role_ref: role_ref("ClusterRole", format!("cluster-role-{i}")),
                subjects: subjects(i + 1000),
            })
            .collect(),
        ..AccessSnapshot::default()
    }
}

#[test]
fn five_clusters_of_two_thousand_roles_and_bindings_fit_well_under_fifty_mebibytes() {
    let snapshots: Vec<AccessSnapshot> = (0..5).map(cluster).collect();
    let before = LIVE.load(Ordering::Relaxed);
    let authorizers: Vec<Authorizer> = snapshots.iter().map(Authorizer::new).collect();
    let used = LIVE.load(Ordering::Relaxed) - before;
    eprintln!("five authorizers: {} KiB", used / 1024);
    assert!(used < 25 << 20, "five authorizers take {} MiB", used >> 20);

    // And they decide: a group bound in 25 namespaces through RoleBindings.
    let member = UserInfo {
        name: "someone".into(),
        groups: vec!["team-7".into(), "system:authenticated".into()],
    };
    let list_pods = |namespace| ResourceAttributes {
        verb: "list",
        resource: "pods",
        namespace,
        ..ResourceAttributes::default()
    };
    assert!(authorizers[0].allows(&member, &list_pods("ns-7")));
    assert!(authorizers[0].allows(&member, &list_pods("ns-47")));
    assert!(authorizers[0].allows(&member, &list_pods("")));
    assert!(!authorizers[0].allows(&UserInfo::default(), &list_pods("ns-7")));
    let grants = authorizers[0].read_grants(&member);
    // The rules the roles share merge across the 50 bindings (and the ClusterRoleBindings
    // absorb the RoleBindings' namespaces); each role's own group stays a grant of its own.
    let pods: Vec<_> = grants
        .iter()
        .filter(|g| g.resources.contains("pods"))
        .collect();
    assert_eq!(pods.len(), 2, "{pods:?}");
    assert!(
        pods.iter().all(|g| g.namespaces == Namespaces::All),
        "{pods:?}"
    );
    assert!(grants.len() <= 11 + 50, "{} grants", grants.len());
    drop(snapshots);
}
