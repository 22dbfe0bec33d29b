//! One sync of the cluster into the store, no controller (`cw sync-instances`): the
//! watcher's discovery, filters, paged listing and extraction (so the documents equal the
//! controller's), diffed against the store's content hashes. Only new and changed objects
//! are sent (unchanged ones are never embedded), while listing goes on; then the documents
//! of objects that no longer exist are removed, except those of a type that could not be
//! listed or of an API group whose discovery failed (whether they exist is unknown).
//! Delivery is the controller's ([`sender::deliver_payload`]) with bounded retries.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sync_model::{ResourceId, ResourceInstance, SyncPayload};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::discovery::{discover, NamespaceFilter, ResourceType, TypeFilter, TypeKey};
use crate::metrics::Metrics;
use crate::sender::{self, Delivered, DeliveryError, Retries, RetryConfig};
use crate::sink::{SinkError, SyncSink};
use crate::source::list_type;
use sync_model::api_group_of;

#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Objects per list request (paged with limit/continue).
    pub page_size: u32,
    /// Upserts (or deletes) per payload.
    pub batch_size: usize,
    /// Retries of a call whose destination is unavailable, before the run fails.
    pub retries: usize,
    pub retry: RetryConfig,
    /// Counts what was sent, retried and rejected (the sender's metrics).
    pub metrics: Metrics,
}

/// What one run found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub types: usize,
    /// Objects listed (after the namespace filter).
    pub instances: usize,
    pub new: usize,
    pub changed: usize,
    pub unchanged: usize,
    pub removed: usize,
    /// Objects the destination refused as invalid (logged with its reasons).
    pub rejected: usize,
    /// Types whose listing failed, by qualified plural: their documents were kept.
    pub failed_types: Vec<String>,
    /// API groups whose discovery failed, with the error: their documents were kept.
    pub unavailable_groups: BTreeMap<String, String>,
    /// Documents of objects not listed that were kept because their type or group could
    /// not be listed.
    pub kept: usize,
    pub duration: Duration,
}

/// Why a run stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cannot read what the store holds (is the store or --endpoint reachable?): {0}")]
    StoredHashes(SinkError),
    #[error("discovering the cluster's resource types (is the API server reachable?): {0}")]
    Discovery(kube::Error),
    #[error("sending changes: {0}")]
    Delivery(#[from] DeliveryError),
    #[error("a batch delivery task failed: {0}")]
    Task(String),
}

/// Hears how a run goes (a progress bar, log lines). Every method does nothing by default.
pub trait Progress: Send + Sync {
    fn log(&self, _line: String) {}
    fn start_types(&self, _types: u64) {}
    fn type_done(&self) {}
    fn listed(&self, _objects: u64) {}
    fn stored(&self, _objects: u64) {}
    fn removed(&self, _objects: u64) {}
}

/// No progress reports.
impl Progress for () {}

/// How one listed object compares with the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    New,
    Changed,
    Unchanged,
}

/// The diff of a listing against the store's hashes. Each listed id is taken out of
/// `stored`, so what is left at the end are the documents of objects that no longer exist.
pub struct StoreDiff {
    stored: HashMap<ResourceId, String>,
}

impl StoreDiff {
    pub fn new(stored: HashMap<ResourceId, String>) -> Self {
        StoreDiff { stored }
    }

    pub fn classify(&mut self, instance: &ResourceInstance) -> Verdict {
        match self.stored.remove(&instance.id) {
            None => Verdict::New,
            Some(hash) if sync_model::content_unchanged(&hash, &instance.content_hash()) => {
                Verdict::Unchanged
            }
            Some(_) => Verdict::Changed,
        }
    }

    /// Stored ids never listed: to remove, once every type has been listed.
    pub fn into_ghosts(self) -> Vec<ResourceId> {
        let mut ghosts: Vec<ResourceId> = self.stored.into_keys().collect();
        ghosts.sort();
        ghosts
    }
}

/// What was not listed, so none of its documents may be removed: types whose listing
/// failed and API groups whose discovery failed.
#[derive(Debug, Default)]
pub struct Unlisted {
    pub types: HashSet<TypeKey>,
    pub groups: HashSet<String>,
}

impl Unlisted {
    /// True when `id`'s type was listed, so a stored id that was not listed is gone.
    pub fn covers(&self, id: &ResourceId) -> bool {
        let Ok(parts) = id.parts() else {
            return true;
        };
        let key = TypeKey {
            api_version: parts.api_version.to_string(),
            kind: parts.kind.to_string(),
        };
        !self.types.contains(&key) && !self.groups.contains(api_group_of(parts.api_version))
    }

    /// Splits `ghosts` into those to remove and how many are kept.
    pub fn removable(&self, ghosts: Vec<ResourceId>) -> (Vec<ResourceId>, usize) {
        let before = ghosts.len();
        let removable: Vec<ResourceId> = ghosts.into_iter().filter(|id| self.covers(id)).collect();
        let kept = before - removable.len();
        (removable, kept)
    }
}

/// The whole run: hashes, discovery, listing with upserts as pages arrive, then removals.
pub async fn sync_once(
    client: &kube::Client,
    sink: Arc<dyn SyncSink>,
    types: &TypeFilter,
    namespaces: &NamespaceFilter,
    options: &SyncOptions,
    progress: Arc<dyn Progress>,
) -> Result<Summary, SyncError> {
    let started = Instant::now();
    let stored = stored_hashes(sink.as_ref(), options).await?;
    progress.log(format!("the store holds {} documents", stored.len()));

    let discovered = discover(client, types)
        .await
        .map_err(SyncError::Discovery)?;
    for (group, reason) in &discovered.unavailable {
        tracing::warn!(group = %group, reason = %reason, "API group unavailable; its documents are kept");
    }
    let resource_types = discovered.types;
    progress.start_types(resource_types.len() as u64);

    // Listing and sending overlap: pages go through a channel to the sender, which diffs
    // them and keeps batches in flight.
    let (pages, page_rx) = mpsc::channel::<Vec<ResourceInstance>>(4);
    let sending = tokio::spawn(send_changes(
        sink.clone(),
        page_rx,
        StoreDiff::new(stored),
        options.clone(),
        progress.clone(),
    ));
    let failed_types = list_types(
        client,
        &resource_types,
        namespaces,
        options,
        pages,
        &*progress,
    )
    .await;
    let sent = sending
        .await
        .map_err(|e| SyncError::Task(e.to_string()))??;

    let unlisted = Unlisted {
        types: failed_types.iter().map(ResourceType::key).collect(),
        groups: discovered.unavailable.keys().cloned().collect(),
    };
    let (ghosts, kept) = unlisted.removable(sent.diff.into_ghosts());
    if kept > 0 {
        tracing::warn!(
            documents = kept,
            "keeping documents of types that could not be listed"
        );
    }
    let removed = remove(sink.as_ref(), &ghosts, options, &*progress).await?;
    Ok(Summary {
        types: resource_types.len(),
        instances: sent.listed,
        new: sent.new,
        changed: sent.changed,
        unchanged: sent.unchanged,
        removed: removed.accepted,
        rejected: sent.rejected + removed.rejected,
        failed_types: failed_types
            .iter()
            .map(ResourceType::qualified_plural)
            .collect(),
        unavailable_groups: discovered.unavailable,
        kept,
        duration: started.elapsed(),
    })
}

/// What the store holds, id by content hash, read with the run's retries. A destination
/// without the hashes endpoint answers nothing: every object is sent, none removed.
async fn stored_hashes(
    sink: &dyn SyncSink,
    options: &SyncOptions,
) -> Result<HashMap<ResourceId, String>, SyncError> {
    match sender::with_retries(
        &options.retry,
        Retries::AtMost(options.retries),
        "reading the stored documents' hashes",
        &options.metrics,
        || sink.stored_hashes(),
    )
    .await
    {
        Err(SinkError::Unsupported(reason)) => {
            tracing::warn!(
                reason = %reason,
                "the destination cannot list its stored hashes: every object is sent and no document can be removed"
            );
            Ok(HashMap::new())
        }
        other => other.map_err(SyncError::StoredHashes),
    }
}

/// Lists every type into `pages`, until the sender stops taking them; the types whose
/// listing failed.
async fn list_types(
    client: &kube::Client,
    resource_types: &[ResourceType],
    namespaces: &NamespaceFilter,
    options: &SyncOptions,
    pages: mpsc::Sender<Vec<ResourceInstance>>,
    progress: &dyn Progress,
) -> Vec<ResourceType> {
    let mut failed_types = Vec::new();
    for ty in resource_types {
        if pages.is_closed() {
            break; // the sender failed; its error is reported by the caller
        }
        let listed = list_type(client, ty, namespaces, options.page_size, {
            let pages = &pages;
            move |page| async move {
                let _ = pages.send(page).await;
            }
        })
        .await;
        if let Err(e) = listed {
            tracing::error!(resource_type = %ty.key(), error = %e, "listing failed");
            failed_types.push(ty.clone());
        }
        progress.type_done();
    }
    failed_types
}

/// Removes the documents of `ghosts` in batches; what was removed and refused.
async fn remove(
    sink: &dyn SyncSink,
    ghosts: &[ResourceId],
    options: &SyncOptions,
    progress: &dyn Progress,
) -> Result<Delivered, SyncError> {
    progress.log(format!("removing {} documents", ghosts.len()));
    let mut removed = Delivered::default();
    for chunk in ghosts.chunks(options.batch_size) {
        let payload = SyncPayload {
            cluster: None,
            upserts: Vec::new(),
            deletes: chunk.to_vec(),
        };
        let delivered = deliver(sink, payload, options).await?;
        removed.rejected += delivered.rejected;
        removed.accepted += delivered.accepted;
        progress.removed(delivered.accepted as u64);
    }
    Ok(removed)
}

/// What the sender did with the listed objects.
struct Sent {
    listed: usize,
    new: usize,
    changed: usize,
    unchanged: usize,
    rejected: usize,
    diff: StoreDiff,
}

async fn send_changes(
    sink: Arc<dyn SyncSink>,
    mut pages: mpsc::Receiver<Vec<ResourceInstance>>,
    mut diff: StoreDiff,
    options: SyncOptions,
    progress: Arc<dyn Progress>,
) -> Result<Sent, SyncError> {
    let mut sent = Sent {
        listed: 0,
        new: 0,
        changed: 0,
        unchanged: 0,
        rejected: 0,
        diff: StoreDiff::new(HashMap::new()),
    };
    let mut batch: Vec<ResourceInstance> = Vec::with_capacity(options.batch_size);
    let mut in_flight: JoinSet<Result<Delivered, DeliveryError>> = JoinSet::new();
    let finish = |done: Result<Result<Delivered, DeliveryError>, tokio::task::JoinError>,
                  sent: &mut Sent|
     -> Result<(), SyncError> {
        let delivered = done.map_err(|e| SyncError::Task(e.to_string()))??;
        sent.rejected += delivered.rejected;
        progress.stored(delivered.accepted as u64);
        Ok(())
    };
    let mut closed = false;
    while !closed || !batch.is_empty() {
        if !closed {
            match pages.recv().await {
                Some(page) => {
                    sent.listed += page.len();
                    progress.listed(page.len() as u64);
                    for instance in page {
                        match diff.classify(&instance) {
                            Verdict::New => sent.new += 1,
                            Verdict::Changed => sent.changed += 1,
                            Verdict::Unchanged => {
                                sent.unchanged += 1;
                                continue;
                            }
                        }
                        batch.push(instance);
                    }
                }
                None => closed = true,
            }
        }
        while batch.len() >= options.batch_size || (closed && !batch.is_empty()) {
            while in_flight.len() >= sender::BATCHES_IN_FLIGHT {
                if let Some(done) = in_flight.join_next().await {
                    finish(done, &mut sent)?;
                }
            }
            let take = batch.len().min(options.batch_size);
            let upserts: Vec<ResourceInstance> = batch.drain(..take).collect();
            let (sink, options) = (sink.clone(), options.clone());
            in_flight.spawn(async move {
                let payload = SyncPayload {
                    cluster: None,
                    upserts,
                    deletes: Vec::new(),
                };
                deliver(sink.as_ref(), payload, &options).await
            });
        }
    }
    while let Some(done) = in_flight.join_next().await {
        finish(done, &mut sent)?;
    }
    sent.diff = diff;
    Ok(sent)
}

/// One payload with the run's bounded retries; a refusal no item explains (401, a store
/// filled by another model) fails the run.
async fn deliver(
    sink: &dyn SyncSink,
    payload: SyncPayload,
    options: &SyncOptions,
) -> Result<Delivered, DeliveryError> {
    let retries = Retries::AtMost(options.retries);
    sender::deliver_payload(sink, payload, &options.retry, retries, &options.metrics).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(name: &str, app: &str) -> ResourceInstance {
        sync_model::fixtures::deployment("default", name, app)
    }

    #[test]
    fn the_diff_tells_new_changed_and_unchanged_apart_and_leaves_the_ghosts() {
        let same = deployment("same", "a");
        let changed = deployment("changed", "a");
        let gone = deployment("gone", "a");
        let stored: HashMap<ResourceId, String> = [
            (same.id.clone(), same.content_hash()),
            (changed.id.clone(), changed.content_hash()),
            (gone.id.clone(), gone.content_hash()),
        ]
        .into();
        let mut diff = StoreDiff::new(stored);
        assert_eq!(diff.classify(&same), Verdict::Unchanged);
        assert_eq!(diff.classify(&deployment("changed", "b")), Verdict::Changed);
        assert_eq!(diff.classify(&deployment("fresh", "a")), Verdict::New);
        assert_eq!(diff.into_ghosts(), vec![gone.id]);
    }

    #[test]
    fn ghosts_of_a_type_or_group_that_was_not_listed_are_kept() {
        let gone = deployment("gone", "a").id;
        let config = ResourceId::from_raw("default/v1/ConfigMap/c");
        let metric = ResourceId::from_raw("default/metrics.k8s.io/v1beta1/PodMetrics/p");
        let unlisted = Unlisted {
            types: [TypeKey {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
            }]
            .into(),
            groups: ["metrics.k8s.io".to_string()].into(),
        };
        let (removable, kept) = unlisted.removable(vec![gone.clone(), config, metric]);
        assert_eq!(removable, vec![gone]);
        assert_eq!(kept, 2);
    }
}
