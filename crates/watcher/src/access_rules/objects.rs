//! The cluster's RBAC objects as the access snapshot holds them, kept from the four watches'
//! events. A kind counts as listed once its first list is complete; a relist (after a 410
//! Gone or a reconnect) replaces that kind's objects at once when it is complete, so no
//! snapshot ever holds part of a list: that would drop grants, or look like none.

use std::collections::BTreeMap;

use kube::runtime::watcher::Event;
use sync_model::rbac::{AccessSnapshot, ClusterRole, ClusterRoleBinding, Role, RoleBinding};

/// `(namespace, name)`: the namespace empty for cluster-scoped objects.
pub type Key = (String, String);

/// One object of a kind, with its key.
pub type Keyed<T> = (Key, T);

/// A watch event of one of the four kinds, its object converted.
#[derive(Debug, Clone)]
pub enum RbacEvent {
    Role(Event<Keyed<Role>>),
    ClusterRole(Event<Keyed<ClusterRole>>),
    RoleBinding(Event<Keyed<RoleBinding>>),
    ClusterRoleBinding(Event<Keyed<ClusterRoleBinding>>),
}

/// The objects of one kind.
#[derive(Debug, Clone)]
struct Held<T> {
    current: BTreeMap<Key, T>,
    /// The objects of a list under way.
    relist: Option<BTreeMap<Key, T>>,
    listed: bool,
}

impl<T> Default for Held<T> {
    fn default() -> Self {
        Held {
            current: BTreeMap::new(),
            relist: None,
            listed: false,
        }
    }
}

impl<T: PartialEq + Clone> Held<T> {
    /// Takes in one event; true when what is held changed (or was first listed).
    fn observe(&mut self, event: Event<Keyed<T>>) -> bool {
        match event {
            Event::Init => {
                self.relist = Some(BTreeMap::new());
                false
            }
            Event::InitApply((key, obj)) => {
                self.relist.get_or_insert_default().insert(key, obj);
                false
            }
            Event::InitDone => {
                let listed = self.relist.take().unwrap_or_default();
                let changed = !self.listed || listed != self.current;
                self.current = listed;
                self.listed = true;
                changed
            }
            Event::Apply((key, obj)) => self.current.insert(key, obj.clone()) != Some(obj),
            Event::Delete((key, _)) => self.current.remove(&key).is_some(),
        }
    }

    fn objects(&self) -> Vec<T> {
        self.current.values().cloned().collect()
    }
}

/// The Roles, ClusterRoles, RoleBindings and ClusterRoleBindings of the cluster.
#[derive(Debug, Clone, Default)]
pub struct RbacObjects {
    roles: Held<Role>,
    cluster_roles: Held<ClusterRole>,
    role_bindings: Held<RoleBinding>,
    cluster_role_bindings: Held<ClusterRoleBinding>,
}

impl RbacObjects {
    /// Takes in one event; true when what the snapshot would hold changed.
    pub fn observe(&mut self, event: RbacEvent) -> bool {
        match event {
            RbacEvent::Role(e) => self.roles.observe(e),
            RbacEvent::ClusterRole(e) => self.cluster_roles.observe(e),
            RbacEvent::RoleBinding(e) => self.role_bindings.observe(e),
            RbacEvent::ClusterRoleBinding(e) => self.cluster_role_bindings.observe(e),
        }
    }

    /// Every kind has been listed once: a snapshot now holds all of them.
    pub fn listed(&self) -> bool {
        self.roles.listed
            && self.cluster_roles.listed
            && self.role_bindings.listed
            && self.cluster_role_bindings.listed
    }

    /// How many objects are held.
    pub fn len(&self) -> usize {
        self.roles.current.len()
            + self.cluster_roles.current.len()
            + self.role_bindings.current.len()
            + self.cluster_role_bindings.current.len()
    }

    /// Puts the objects into `snapshot`, each kind in the order of its keys.
    pub fn fill(&self, snapshot: &mut AccessSnapshot) {
        snapshot.roles = self.roles.objects();
        snapshot.cluster_roles = self.cluster_roles.objects();
        snapshot.role_bindings = self.role_bindings.objects();
        snapshot.cluster_role_bindings = self.cluster_role_bindings.objects();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn role(ns: &str, name: &str) -> Keyed<Role> {
        let role = Role {
            namespace: ns.into(),
            name: name.into(),
            rules: vec![],
        };
        ((ns.into(), name.into()), role)
    }

    pub fn cluster_role(name: &str) -> Keyed<ClusterRole> {
        let role = ClusterRole {
            name: name.into(),
            ..Default::default()
        };
        ((String::new(), name.into()), role)
    }

    /// The events of a first list of every kind: `roles`, and no other object.
    pub fn listed_with(roles: Vec<Keyed<Role>>) -> Vec<RbacEvent> {
        let mut events = vec![RbacEvent::Role(Event::Init)];
        events.extend(
            roles
                .into_iter()
                .map(|r| RbacEvent::Role(Event::InitApply(r))),
        );
        events.extend([
            RbacEvent::Role(Event::InitDone),
            RbacEvent::ClusterRole(Event::Init),
            RbacEvent::ClusterRole(Event::InitDone),
            RbacEvent::RoleBinding(Event::Init),
            RbacEvent::RoleBinding(Event::InitDone),
            RbacEvent::ClusterRoleBinding(Event::Init),
            RbacEvent::ClusterRoleBinding(Event::InitDone),
        ]);
        events
    }

    fn role_names(objects: &RbacObjects) -> Vec<String> {
        let mut snapshot = AccessSnapshot::default();
        objects.fill(&mut snapshot);
        snapshot.roles.into_iter().map(|r| r.name).collect()
    }

    #[test]
    fn objects_count_as_listed_only_once_every_kind_has_listed() {
        let mut objects = RbacObjects::default();
        let mut events = listed_with(vec![role("a", "r1")]);
        let last = events.pop().expect("events");
        for e in events {
            objects.observe(e);
            assert!(!objects.listed());
        }
        assert!(objects.observe(last), "the last list completes the set");
        assert!(objects.listed());
        assert_eq!(objects.len(), 1);
    }

    #[test]
    fn a_relist_replaces_a_kind_only_when_complete() {
        let mut objects = RbacObjects::default();
        for e in listed_with(vec![role("a", "r1"), role("a", "r2")]) {
            objects.observe(e);
        }
        assert!(!objects.observe(RbacEvent::Role(Event::Init)));
        assert!(!objects.observe(RbacEvent::Role(Event::InitApply(role("a", "r2")))));
        // Mid-list, the earlier objects still stand: nothing partial is ever shown.
        assert_eq!(role_names(&objects), ["r1", "r2"]);
        assert!(objects.observe(RbacEvent::Role(Event::InitDone)));
        assert_eq!(role_names(&objects), ["r2"], "r1 was deleted meanwhile");
        // The same list again changes nothing.
        objects.observe(RbacEvent::Role(Event::Init));
        objects.observe(RbacEvent::Role(Event::InitApply(role("a", "r2"))));
        assert!(!objects.observe(RbacEvent::Role(Event::InitDone)));
    }

    #[test]
    fn applies_and_deletes_change_the_objects_and_repeats_change_nothing() {
        let mut objects = RbacObjects::default();
        for e in listed_with(vec![]) {
            objects.observe(e);
        }
        let add = || RbacEvent::ClusterRole(Event::Apply(cluster_role("view")));
        assert!(objects.observe(add()));
        assert!(
            !objects.observe(add()),
            "an unchanged object (a status-only update)"
        );
        let delete = || RbacEvent::ClusterRole(Event::Delete(cluster_role("view")));
        assert!(objects.observe(delete()));
        assert!(!objects.observe(delete()));
        assert_eq!(objects.len(), 0);
    }
}
