//! The running set of per-type watches: started and stopped as discovery finds types come
//! and go, each a [`source::watch_type`] task feeding change detection. Rediscovery lives
//! here because its result is exactly this set, and the capability sync follows it.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::availability::GroupAvailability;
use crate::capabilities::WatchedTypes;
use crate::context::Context;
use crate::discovery::{discover_scope, DiscoveryScope, ResourceType, TypeKey};
use crate::source::watch_type;
use crate::tracker::Input;

/// How many types may be in a list (initial, or a relist after 410 Gone) at once. Every page of a list is held in
/// memory until it is processed, so listing 500 types at once would hold every object of
/// the cluster at the same moment; a few at a time keeps the peak small and costs little
/// time (the lists are quick, the store is the bound).
const CONCURRENT_LISTS: usize = 8;

struct TypeWatch {
    ty: ResourceType,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// The watched types and their watch tasks.
pub(crate) struct Watches {
    ctx: Arc<Context>,
    list_slots: Arc<Semaphore>,
    running: BTreeMap<TypeKey, TypeWatch>,
    groups: GroupAvailability,
}

impl Watches {
    pub fn new(ctx: Arc<Context>) -> Self {
        let groups = GroupAvailability::new(ctx.unavailable_groups.clone(), ctx.metrics.clone());
        Watches {
            ctx,
            list_slots: Arc::new(Semaphore::new(CONCURRENT_LISTS)),
            running: BTreeMap::new(),
            groups,
        }
    }

    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Discovers the types of `scope`, makes the watches follow them and publishes the
    /// watched types to the capability sync. On failure the known types stay watched; the
    /// types of a group whose discovery fails stay as they were (see [`GroupAvailability`]).
    pub async fn rediscover(&mut self, scope: &DiscoveryScope) -> Result<(), kube::Error> {
        self.refresh(scope).await?;
        // Also when the types stayed: a CRD's schema may have changed.
        self.publish_types();
        Ok(())
    }

    /// [`Watches::rediscover`] without publishing: for a caller that syncs the capability
    /// records itself.
    pub async fn refresh(&mut self, scope: &DiscoveryScope) -> Result<(), kube::Error> {
        let settings = &self.ctx.settings;
        let found = discover_scope(
            &self.ctx.client,
            scope,
            &settings.types,
            settings.group_discovery_timeout,
        )
        .await?;
        let asked = match scope {
            DiscoveryScope::All => None,
            DiscoveryScope::Groups(groups) => Some(groups.as_slice()),
        };
        let change = self
            .groups
            .update(asked, &found.unavailable, Instant::now());
        // Change detection hears of an outage before anything could drop the group's types.
        for group in change.became_unavailable {
            let _ = self.ctx.inputs.send(Input::GroupUnavailable(group)).await;
        }
        for (group, types) in found.covered {
            self.reconcile(group.as_deref(), types).await;
        }
        // ... and of a recovery once the group's types are watched again.
        for group in change.became_available {
            let _ = self.ctx.inputs.send(Input::GroupAvailable(group)).await;
        }
        Ok(())
    }

    /// When an unavailable group is next due for a retry.
    pub fn next_group_retry(&self) -> Option<Instant> {
        self.groups.next_retry()
    }

    /// Retries the discovery of the unavailable groups that are due.
    pub async fn retry_unavailable_groups(&mut self) -> Result<(), kube::Error> {
        let due = self.groups.take_due(Instant::now());
        if due.is_empty() {
            return Ok(());
        }
        self.rediscover(&DiscoveryScope::Groups(due)).await
    }

    /// Hands the watched types to the capability sync, which syncs them in the background.
    pub fn publish_types(&self) {
        self.ctx.capabilities.send_replace(self.watched_types());
    }

    /// The watched types and the unavailable groups, for the capability records.
    pub fn watched_types(&self) -> WatchedTypes {
        WatchedTypes {
            types: self.types(),
            unavailable_groups: self.groups.unavailable(),
        }
    }

    /// The watched types, for the capability records and resync.
    pub fn types(&self) -> Vec<ResourceType> {
        self.running.values().map(|w| w.ty.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.running.len()
    }

    /// Makes the watched types of `scope` (one group, or all when `None`) equal `types`;
    /// the types of an unavailable group are left as they are.
    async fn reconcile(&mut self, scope: Option<&str>, types: Vec<ResourceType>) {
        let wanted: BTreeMap<TypeKey, ResourceType> =
            types.into_iter().map(|t| (t.key(), t)).collect();
        let gone: Vec<TypeKey> = self
            .running
            .iter()
            .filter(|(k, w)| scope.is_none_or(|g| w.ty.group == g) && !wanted.contains_key(*k))
            .filter(|(_, w)| !self.groups.is_unavailable(&w.ty.group))
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            self.stop(&key, true).await;
        }
        for ty in wanted.into_values() {
            self.start(ty).await;
        }
    }

    async fn start(&mut self, ty: ResourceType) {
        let key = ty.key();
        // A watch that ended by itself (its inbox closed) is started again.
        if self
            .running
            .get(&key)
            .is_some_and(|w| w.ty == ty && !w.task.is_finished())
        {
            return;
        }
        self.stop(&key, false).await;
        let inputs = &self.ctx.inputs;
        if inputs.send(Input::TypeAdded(key.clone())).await.is_err() {
            return;
        }
        info!(resource_type = %key, plural = %ty.plural, "watching");
        let cancel = CancellationToken::new();
        let task = tokio::spawn(watch_type(
            self.ctx.clone(),
            self.list_slots.clone(),
            ty.clone(),
            cancel.clone(),
        ));
        self.running.insert(key, TypeWatch { ty, cancel, task });
    }

    /// Stops a type's watch; with `forget`, its objects leave the store.
    async fn stop(&mut self, key: &TypeKey, forget: bool) {
        if let Some(w) = self.running.remove(key) {
            w.cancel.cancel();
            let _ = w.task.await;
            if forget {
                info!(resource_type = %key, "type gone; removing its instances");
                let _ = self.ctx.inputs.send(Input::TypeRemoved(key.clone())).await;
            }
        }
    }

    /// Stops every watch, waiting for each task to end.
    pub async fn stop_all(&mut self) {
        for (_, w) in std::mem::take(&mut self.running) {
            w.cancel.cancel();
            let _ = w.task.await;
        }
    }
}
