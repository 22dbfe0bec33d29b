//! Transform: change detection. Keeps, per watched type, each object's id and content hash
//! (never the object), turns watch observations into changes, and sends nothing when an
//! update changes nothing indexed. It also settles relists (objects missing from a relist
//! were deleted) and the resync diff against what the store holds. [`run_tracker`] is the
//! stage's task: [`Input`]s in, in the order they happened; [`Pending`] changes out.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sync_model::{ResourceId, ResourceInstance};
use tokio::sync::{mpsc, oneshot};
use tracing::info;

use crate::buffer::Pending;
use crate::change::{Change, ContentHash};
use crate::discovery::TypeKey;
use crate::metrics::Metrics;
use sync_model::api_group_of;

/// What a type's watch saw, already extracted and filtered.
// Nearly every observation is `Present`, moved on at once: no box (see `Change`).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// A (re)list begins: objects not seen before `RelistDone` are gone.
    RelistStart,
    /// An object exists in this state (added, modified or listed).
    Present(ResourceInstance),
    /// An object was deleted.
    Gone(ResourceId),
    /// The (re)list is complete.
    RelistDone,
}

/// What the tracker keeps of one object: 20 bytes besides its id.
#[derive(Debug, Clone, Copy)]
struct Known {
    hash: ContentHash,
    /// The type's list generation in which the object was last seen.
    seen: u32,
}

#[derive(Debug, Default)]
struct TypeState {
    objects: HashMap<ResourceId, Known>,
    /// Bumped at every (re)list start: an object whose `seen` is older when the list is
    /// done was not listed, so it is gone. A mark per object instead of a set of the ids
    /// listed: a relist of 100,000 objects allocates nothing.
    generation: u32,
    relisting: bool,
    watched: bool,
    synced: bool,
    /// The API server refuses this type (403) for now: readiness does not wait for it, and
    /// its objects are kept until the refusal has lasted the grace period.
    forbidden: bool,
}

/// How a resync page compared with the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResyncCounts {
    pub unchanged: usize,
    pub upserted: usize,
    /// Objects whose watch is ahead of or behind the listing: the watch sends them.
    pub in_flight: usize,
}

/// Change detection state for every watched type.
#[derive(Debug, Default)]
pub struct Tracker {
    types: HashMap<TypeKey, TypeState>,
    /// API groups whose discovery fails: their types are unknown, not gone, so their stored
    /// documents are never taken for ghosts.
    unavailable_groups: HashSet<String>,
}

fn key_of(id: &ResourceId) -> Option<TypeKey> {
    let p = id.parts().ok()?;
    Some(TypeKey {
        api_version: p.api_version.to_string(),
        kind: p.kind.to_string(),
    })
}

impl Tracker {
    pub fn new() -> Self {
        Tracker::default()
    }

    /// Starts from what the store holds, so that an unchanged object listed at start-up
    /// sends nothing, and a stored object that no longer exists is deleted once its type's
    /// first list is done (or, for a type no longer watched, once every type is synced).
    pub fn seed(&mut self, stored: &HashMap<ResourceId, String>) {
        for (id, hex) in stored {
            let (Some(key), Some(hash)) = (key_of(id), ContentHash::parse(hex)) else {
                continue;
            };
            self.types
                .entry(key)
                .or_default()
                .objects
                .insert(id.clone(), Known { hash, seen: 0 });
        }
    }

    pub fn watch_type(&mut self, key: TypeKey) {
        let state = self.types.entry(key).or_default();
        state.watched = true;
        state.synced = false;
    }

    /// A type stops being watched (its CRD was deleted): every object of it leaves the store.
    pub fn unwatch_type(&mut self, key: &TypeKey, out: &mut Vec<Change>) {
        if let Some(state) = self.types.remove(key) {
            out.extend(state.objects.into_keys().map(Change::Delete));
        }
    }

    /// True while a type's (re)list is under way.
    pub fn is_relisting(&self, key: &TypeKey) -> bool {
        self.types.get(key).is_some_and(|t| t.relisting)
    }

    /// True once every watched type has completed its first list (or is refused for now).
    pub fn all_synced(&self) -> bool {
        self.types
            .values()
            .filter(|t| t.watched)
            .all(|t| t.synced || t.forbidden)
    }

    /// The API server refuses a watched type (403): its objects stay, and readiness does
    /// not wait for it.
    pub fn type_forbidden(&mut self, key: TypeKey) {
        self.types.entry(key).or_default().forbidden = true;
    }

    /// A type has been refused for the whole grace period: its objects leave the store. It
    /// stays watched; its next list sends them again.
    pub fn type_access_lost(&mut self, key: &TypeKey, out: &mut Vec<Change>) {
        if let Some(state) = self.types.get_mut(key) {
            out.extend(state.objects.drain().map(|(id, _)| Change::Delete(id)));
            state.synced = false;
        }
    }

    /// Watched types refused for now.
    pub fn forbidden_types(&self) -> usize {
        self.types
            .values()
            .filter(|t| t.watched && t.forbidden)
            .count()
    }

    pub fn watched_types(&self) -> usize {
        self.types.values().filter(|t| t.watched).count()
    }

    /// Objects known, over every type.
    pub fn len(&self) -> usize {
        self.types.values().map(|t| t.objects.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Deletes every known object of a type that is not watched: stored documents of types
    /// that vanished (or were excluded) while the watcher was down. Call once all watched
    /// types are synced, so that discovery has settled. Types of an unavailable API group
    /// are kept: whether they still exist is unknown.
    pub fn drop_unwatched(&mut self, out: &mut Vec<Change>) {
        self.drop_unwatched_where(out, |_| true);
    }

    fn drop_unwatched_where(&mut self, out: &mut Vec<Change>, group: impl Fn(&str) -> bool) {
        let gone: Vec<TypeKey> = self
            .types
            .iter()
            .filter(|(k, t)| {
                !t.watched && !self.is_unavailable(k) && group(api_group_of(&k.api_version))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            self.unwatch_type(&key, out);
        }
    }

    fn is_unavailable(&self, key: &TypeKey) -> bool {
        self.unavailable_groups
            .contains(api_group_of(&key.api_version))
    }

    /// An API group's discovery fails: nothing of its types is deleted until it answers.
    pub fn group_unavailable(&mut self, group: String) {
        self.unavailable_groups.insert(group);
    }

    /// An API group answers again (its types are registered by now). Once the watcher is
    /// `settled` (the initial sync is done), stored documents of the group's types that are
    /// not watched are deleted: those types are gone.
    pub fn group_available(&mut self, group: &str, settled: bool, out: &mut Vec<Change>) {
        self.unavailable_groups.remove(group);
        if settled {
            self.drop_unwatched_where(out, |g| g == group);
        }
    }

    pub fn observe(&mut self, key: &TypeKey, obs: Observation, out: &mut Vec<Change>) {
        let state = self.types.entry(key.clone()).or_default();
        state.forbidden = false;
        match obs {
            Observation::RelistStart => {
                state.generation = state.generation.wrapping_add(1);
                state.relisting = true;
            }
            Observation::Present(instance) => {
                let hash = ContentHash::of(&instance);
                let seen = state.generation;
                match state.objects.get_mut(&instance.id) {
                    Some(known) if known.hash == hash => known.seen = seen,
                    Some(known) => {
                        *known = Known { hash, seen };
                        out.push(Change::Upsert(instance));
                    }
                    None => {
                        state
                            .objects
                            .insert(instance.id.clone(), Known { hash, seen });
                        out.push(Change::Upsert(instance));
                    }
                }
            }
            Observation::Gone(id) => {
                if state.objects.remove(&id).is_some() {
                    out.push(Change::Delete(id));
                }
            }
            Observation::RelistDone => {
                if std::mem::take(&mut state.relisting) {
                    let current = state.generation;
                    state.objects.retain(|id, known| {
                        let listed = known.seen == current;
                        if !listed {
                            out.push(Change::Delete(id.clone()));
                        }
                        listed
                    });
                }
                state.synced = true;
            }
        }
    }

    /// Compares freshly listed objects with the store. An object is re-sent when the store's
    /// hash differs and the watch agrees with the listing; when the watch disagrees it is
    /// ahead of or behind the listing and will send the object itself, so nothing stale
    /// goes out.
    pub fn resync_page(
        &self,
        stored: &HashMap<ResourceId, String>,
        page: Vec<ResourceInstance>,
        out: &mut Vec<Change>,
    ) -> ResyncCounts {
        let mut counts = ResyncCounts::default();
        for instance in page {
            let hash = ContentHash::of(&instance);
            let known = key_of(&instance.id)
                .and_then(|k| self.types.get(&k))
                .and_then(|t| t.objects.get(&instance.id))
                .map(|k| &k.hash);
            let in_store = stored.get(&instance.id).and_then(|h| ContentHash::parse(h));
            if known != Some(&hash) {
                counts.in_flight += 1;
            } else if in_store == Some(hash) {
                counts.unchanged += 1;
            } else {
                counts.upserted += 1;
                out.push(Change::Upsert(instance));
            }
        }
        counts
    }

    /// Stored ids of objects the watcher does not know: ghosts, deleted from the store.
    pub fn resync_ghosts(
        &self,
        stored: &HashMap<ResourceId, String>,
        out: &mut Vec<Change>,
    ) -> usize {
        let before = out.len();
        for id in stored.keys() {
            let Some(key) = key_of(id) else { continue };
            if self.is_unavailable(&key) {
                continue;
            }
            let known = self
                .types
                .get(&key)
                .is_some_and(|t| t.objects.contains_key(id));
            if !known {
                out.push(Change::Delete(id.clone()));
            }
        }
        out.len() - before
    }
}

/// Messages to change detection, in the order they happened.
// Nearly every message is `Observed`, the large one: boxing it would cost an allocation
// per watch event and save no memory.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Input {
    TypeAdded(TypeKey),
    TypeRemoved(TypeKey),
    /// The API server refuses this type (403) for now: readiness does not wait for it; its
    /// stored documents are kept (a refusal is often brief: RBAC propagating).
    Forbidden(TypeKey),
    /// The refusal has lasted the grace period: the type's stored documents are removed.
    AccessLost(TypeKey),
    /// An API group's discovery fails: its types' stored documents are kept.
    GroupUnavailable(String),
    /// An API group answers again; its types have been registered.
    GroupAvailable(String),
    /// Discovery at start-up is complete: once all these types are synced, the watcher is
    /// ready and stored objects of types not watched are deleted.
    InitialTypesRegistered,
    Observed(TypeKey, Observation),
    ResyncPage {
        stored: Arc<HashMap<ResourceId, String>>,
        page: Vec<ResourceInstance>,
        reply: oneshot::Sender<ResyncCounts>,
    },
    ResyncGhosts {
        stored: Arc<HashMap<ResourceId, String>>,
        reply: oneshot::Sender<usize>,
    },
}

/// Change detection as a task: applies `inputs` to `tracker` until they close, and sends
/// the resulting changes on. Sets `ready` once every type of the initial discovery has been
/// listed; until then a resync deletes nothing, as the watcher does not know everything yet.
pub async fn run_tracker(
    mut tracker: Tracker,
    mut inputs: mpsc::Receiver<Input>,
    changes: mpsc::Sender<Pending>,
    ready: Arc<AtomicBool>,
    metrics: Metrics,
) {
    let mut initial_registered = false;
    let mut out = Vec::new();
    while let Some(input) = inputs.recv().await {
        // Objects of a (re)list are sent without debounce: they are not a burst of edits.
        let mut immediate = false;
        match input {
            Input::TypeAdded(key) => tracker.watch_type(key),
            Input::TypeRemoved(key) => tracker.unwatch_type(&key, &mut out),
            Input::Forbidden(key) => tracker.type_forbidden(key),
            Input::AccessLost(key) => tracker.type_access_lost(&key, &mut out),
            Input::InitialTypesRegistered => initial_registered = true,
            Input::GroupUnavailable(group) => tracker.group_unavailable(group),
            Input::GroupAvailable(group) => {
                let settled = ready.load(Ordering::Relaxed);
                tracker.group_available(&group, settled, &mut out)
            }
            Input::Observed(key, obs) => {
                immediate = tracker.is_relisting(&key);
                tracker.observe(&key, obs, &mut out)
            }
            Input::ResyncPage {
                stored,
                page,
                reply,
            } => {
                let _ = reply.send(tracker.resync_page(&stored, page, &mut out));
            }
            Input::ResyncGhosts { stored, reply } => {
                let n = if ready.load(Ordering::Relaxed) {
                    tracker.resync_ghosts(&stored, &mut out)
                } else {
                    0
                };
                let _ = reply.send(n);
            }
        }
        if initial_registered && !ready.load(Ordering::Relaxed) && tracker.all_synced() {
            tracker.drop_unwatched(&mut out);
            ready.store(true, Ordering::Relaxed);
            info!(
                types = tracker.watched_types(),
                objects = tracker.len(),
                "initial sync listed every watched type"
            );
        }
        metrics.watched_types.set(tracker.watched_types() as i64);
        metrics
            .forbidden_types
            .set(tracker.forbidden_types() as i64);
        for change in out.drain(..) {
            if changes.send(Pending { change, immediate }).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use sync_model::ResourceInstance;

    pub fn deployment(name: &str, app: &str) -> ResourceInstance {
        sync_model::fixtures::deployment("default", name, app)
    }

    fn key() -> TypeKey {
        TypeKey {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
        }
    }

    fn observe(t: &mut Tracker, obs: Observation) -> Vec<Change> {
        let mut out = Vec::new();
        t.observe(&key(), obs, &mut out);
        out
    }

    #[test]
    fn an_update_that_changes_nothing_indexed_sends_nothing() {
        let mut t = Tracker::new();
        assert_eq!(
            observe(&mut t, Observation::Present(deployment("web", "a"))).len(),
            1
        );
        assert!(observe(&mut t, Observation::Present(deployment("web", "a"))).is_empty());
        let changed = observe(&mut t, Observation::Present(deployment("web", "b")));
        assert_eq!(changed, vec![Change::Upsert(deployment("web", "b"))]);
    }

    #[test]
    fn health_churn_is_a_change_only_when_the_status_or_reason_changes() {
        use sync_model::{Health, HealthStatus};
        let with = |status, reason: &str| {
            let mut d = deployment("web", "a");
            d.health = Some(Health::new(status, reason));
            d
        };
        let mut t = Tracker::new();
        let first = with(HealthStatus::InProgress, "1/3 replicas available");
        assert_eq!(
            observe(&mut t, Observation::Present(first.clone())).len(),
            1
        );
        // A status update that leaves the coarse value and reason alone (a heartbeat, a
        // condition's lastTransitionTime) extracts to the same instance: nothing is sent.
        assert!(observe(&mut t, Observation::Present(first)).is_empty());
        let better = with(HealthStatus::InProgress, "2/3 replicas available");
        assert_eq!(observe(&mut t, Observation::Present(better)).len(), 1);
        let done = with(HealthStatus::Current, "3/3 replicas available");
        assert_eq!(
            observe(&mut t, Observation::Present(done.clone())),
            vec![Change::Upsert(done)]
        );
    }

    #[test]
    fn a_delete_of_a_known_object_is_sent_once() {
        let mut t = Tracker::new();
        observe(&mut t, Observation::Present(deployment("web", "a")));
        let id = deployment("web", "a").id;
        assert_eq!(
            observe(&mut t, Observation::Gone(id.clone())),
            vec![Change::Delete(id.clone())]
        );
        assert!(observe(&mut t, Observation::Gone(id)).is_empty());
    }

    #[test]
    fn objects_missing_from_a_relist_are_deleted_and_listed_unchanged_ones_send_nothing() {
        let mut t = Tracker::new();
        t.watch_type(key());
        observe(&mut t, Observation::Present(deployment("kept", "a")));
        observe(&mut t, Observation::Present(deployment("gone", "a")));
        assert!(!t.all_synced());
        assert!(observe(&mut t, Observation::RelistStart).is_empty());
        assert!(observe(&mut t, Observation::Present(deployment("kept", "a"))).is_empty());
        let out = observe(&mut t, Observation::RelistDone);
        assert_eq!(out, vec![Change::Delete(deployment("gone", "a").id)]);
        assert!(t.all_synced());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn seeding_from_the_store_makes_unchanged_objects_free_and_ghosts_deleted() {
        let stored: HashMap<ResourceId, String> = [
            (
                deployment("same", "a").id,
                deployment("same", "a").content_hash(),
            ),
            (
                deployment("ghost", "a").id,
                deployment("ghost", "a").content_hash(),
            ),
            (
                ResourceId::from_raw("x/example.com/v1/Gone/y"),
                deployment("x", "x").content_hash(),
            ),
        ]
        .into();
        let mut t = Tracker::new();
        t.seed(&stored);
        t.watch_type(key());
        observe(&mut t, Observation::RelistStart);
        assert!(observe(&mut t, Observation::Present(deployment("same", "a"))).is_empty());
        assert_eq!(
            observe(&mut t, Observation::Present(deployment("new", "a"))).len(),
            1
        );
        let done = observe(&mut t, Observation::RelistDone);
        assert_eq!(done, vec![Change::Delete(deployment("ghost", "a").id)]);
        let mut out = Vec::new();
        t.drop_unwatched(&mut out);
        assert_eq!(
            out,
            vec![Change::Delete(ResourceId::from_raw(
                "x/example.com/v1/Gone/y"
            ))]
        );
    }

    #[test]
    fn stored_documents_of_an_unavailable_group_are_kept_until_it_answers_without_the_type() {
        let metric = sync_model::fixtures::deployment("default", "m", "a");
        let metric_id = ResourceId::from_raw("default/metrics.k8s.io/v1beta1/PodMetrics/m");
        let stored: HashMap<ResourceId, String> =
            [(metric_id.clone(), metric.content_hash())].into();
        let mut t = Tracker::new();
        t.seed(&stored);
        t.group_unavailable("metrics.k8s.io".into());
        let mut out = Vec::new();
        t.drop_unwatched(&mut out);
        assert!(
            out.is_empty(),
            "an unavailable group's documents are not ghosts"
        );
        assert_eq!(t.resync_ghosts(&stored, &mut out), 0);
        // The group answers, without that type: now it is gone.
        t.group_available("metrics.k8s.io", true, &mut out);
        assert_eq!(out, vec![Change::Delete(metric_id)]);
    }

    #[test]
    fn a_refused_type_keeps_its_objects_and_holds_up_no_readiness_until_access_is_lost() {
        let mut t = Tracker::new();
        t.watch_type(key());
        observe(&mut t, Observation::RelistStart);
        observe(&mut t, Observation::Present(deployment("a", "a")));
        observe(&mut t, Observation::RelistDone);
        let other = TypeKey {
            api_version: "v1".into(),
            kind: "Secret".into(),
        };
        t.watch_type(other.clone());
        assert!(!t.all_synced());
        t.type_forbidden(other);
        assert!(t.all_synced(), "a refused type does not hold up readiness");
        t.type_forbidden(key());
        assert_eq!(t.forbidden_types(), 2);
        assert_eq!(t.len(), 1, "a refusal deletes nothing");
        let mut out = Vec::new();
        t.type_access_lost(&key(), &mut out);
        assert_eq!(out, vec![Change::Delete(deployment("a", "a").id)]);
        // Access returns: the fresh list sends the object again.
        observe(&mut t, Observation::RelistStart);
        assert_eq!(
            observe(&mut t, Observation::Present(deployment("a", "a"))).len(),
            1
        );
        assert_eq!(t.forbidden_types(), 1);
    }

    #[test]
    fn a_type_that_stops_being_watched_deletes_its_objects() {
        let mut t = Tracker::new();
        observe(&mut t, Observation::Present(deployment("a", "a")));
        let mut out = Vec::new();
        t.unwatch_type(&key(), &mut out);
        assert_eq!(out, vec![Change::Delete(deployment("a", "a").id)]);
        assert!(t.is_empty());
    }

    #[test]
    fn resync_resends_what_the_store_lacks_skips_what_the_watch_disagrees_with_and_deletes_ghosts()
    {
        let mut t = Tracker::new();
        observe(&mut t, Observation::Present(deployment("ok", "a")));
        observe(&mut t, Observation::Present(deployment("lost", "a")));
        observe(&mut t, Observation::Present(deployment("moving", "new")));
        let stored: HashMap<ResourceId, String> = [
            (
                deployment("ok", "a").id,
                deployment("ok", "a").content_hash(),
            ),
            (
                deployment("ghost", "a").id,
                deployment("ghost", "a").content_hash(),
            ),
        ]
        .into();
        let mut out = Vec::new();
        let counts = t.resync_page(
            &stored,
            vec![
                deployment("ok", "a"),
                deployment("lost", "a"),
                deployment("moving", "old"),
            ],
            &mut out,
        );
        assert_eq!(
            counts,
            ResyncCounts {
                unchanged: 1,
                upserted: 1,
                in_flight: 1
            }
        );
        assert_eq!(out, vec![Change::Upsert(deployment("lost", "a"))]);
        out.clear();
        assert_eq!(t.resync_ghosts(&stored, &mut out), 1);
        assert_eq!(out, vec![Change::Delete(deployment("ghost", "a").id)]);
    }
}
