//! The sync pipeline, usable in-process (`cw sync-instances`, `cw run`) and behind
//! `POST /api/v1/instances/sync`: validate, normalise, look up stored hashes, embed only
//! what changed (before writing anything, so a failed embedding changes nothing), then
//! delete, then upsert. A change of metadata alone (health, creation time: the text half of
//! the content hash is unchanged) is rewritten with its stored vector, never embedded. An
//! upsert the provider or the store refuses whatever is retried is parked (`crate::parked`)
//! and its batch-mates are stored.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sync_model::{
    content_unchanged, text_unchanged, ClusterId, FieldError, ParkedInstance, ResourceId,
    ResourceInstance, SyncPayload,
};
use tracing::Instrument;

use crate::document::{to_document, InstanceDocument, CLUSTER_KEY};

/// Changed documents embedded and written together. Bounds what one request holds: 1,000
/// vectors of 1,024 dimensions are 4 MiB (docs/ingest.md, "Load bound").
pub const EMBED_CHUNK: usize = 1_000;
use crate::embed::{EmbedError, Embedder, InputType, ModelInfo, Refused};
use crate::metrics::{IngestMetrics, Label};
use crate::parked::ParkedInstances;
use crate::store::{Filter, Record, StoreError, VectorStore};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    /// Distinct ids upserted (changed, new and unchanged), parked ones not counted.
    pub upserted: usize,
    /// Distinct ids deleted (ids also upserted are not counted: they were recreated).
    pub deleted: usize,
    /// Documents embedded and written (new or changed).
    pub embedded: usize,
    /// Documents already stored with the same content hash: not embedded, not rewritten.
    pub unchanged: usize,
    /// Documents whose metadata alone changed (health): rewritten with their stored
    /// vector, not embedded.
    pub metadata_only: usize,
    /// Upserts refused by the provider or the store whatever is retried: not stored.
    pub parked: Vec<ParkedInstance>,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The payload breaks the contract; nothing was changed. Not worth retrying.
    #[error("invalid sync payload: {} problem(s)", .0.len())]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SyncError {
    /// True when the same payload may succeed later (store or provider unavailable).
    pub fn is_transient(&self) -> bool {
        match self {
            SyncError::Invalid(_) => false,
            SyncError::Embed(e) => e.is_transient(),
            SyncError::Store(e) => e.is_transient(),
        }
    }
}

/// A payload reduced to what must happen: distinct deletes that are not also upserted,
/// and distinct upserts, the last of duplicate ids winning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Normalised {
    pub deletes: Vec<ResourceId>,
    pub upserts: Vec<ResourceInstance>,
}

/// Deletes first, then upserts: an id in both was recreated, so it is upserted and not
/// deleted; of duplicate upsert ids the last one wins (it is the newest state).
pub fn normalise(payload: SyncPayload) -> Normalised {
    let (deletes, upserts) =
        last_upsert_wins(payload.upserts, payload.deletes, |i: &ResourceInstance| {
            &i.id
        });
    Normalised { deletes, upserts }
}

/// The rule of [`normalise`] for any payload shape (instances, capabilities): distinct
/// upserts with the last of duplicate keys winning in the first one's position, and
/// distinct deletes that are not also upserted.
pub(crate) fn last_upsert_wins<T, K>(
    upserts: Vec<T>,
    deletes: Vec<K>,
    key: impl Fn(&T) -> &K,
) -> (Vec<K>, Vec<T>)
where
    K: std::hash::Hash + Eq + Clone,
{
    let mut position: HashMap<K, usize> = HashMap::with_capacity(upserts.len());
    let mut kept: Vec<T> = Vec::with_capacity(upserts.len());
    for item in upserts {
        match position.get(key(&item)) {
            Some(&i) => kept[i] = item,
            None => {
                position.insert(key(&item).clone(), kept.len());
                kept.push(item);
            }
        }
    }
    let mut seen = HashSet::with_capacity(deletes.len());
    let deletes = deletes
        .into_iter()
        .filter(|id| !position.contains_key(id) && seen.insert(id.clone()))
        .collect();
    (deletes, kept)
}

/// Embeds `texts` as documents and checks the answer (one vector per text, each of the
/// model's dimension). Called before any write, so a provider failure changes nothing.
pub(crate) async fn embed_documents(
    embedder: &dyn Embedder,
    model: &ModelInfo,
    metrics: &IngestMetrics,
    texts: &[String],
) -> Result<Vec<Vec<f32>>, SyncError> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    metrics.embeddings_requested.inc_by(texts.len() as u64);
    let t = Instant::now();
    let vectors = embedder.embed(texts, InputType::Document).await?;
    metrics.embed_seconds.observe(t.elapsed().as_secs_f64());
    check_answer(model, texts.len(), vectors.len(), vectors.iter())?;
    Ok(vectors)
}

/// The provider answered one vector per text, each of the model's dimension; anything else
/// is a permanent error (a provider that disagrees with itself is not retried into shape).
fn check_answer<'a>(
    model: &ModelInfo,
    asked: usize,
    answered: usize,
    mut vectors: impl Iterator<Item = &'a Vec<f32>>,
) -> Result<(), SyncError> {
    if answered != asked {
        return Err(EmbedError::Permanent(format!(
            "the provider returned {answered} results for {asked} documents"
        ))
        .into());
    }
    if let Some(v) = vectors.find(|v| v.len() != model.dimension) {
        return Err(EmbedError::Permanent(format!(
            "the provider returned a vector of {} dimensions; {} makes {}",
            v.len(),
            model.id,
            model.dimension
        ))
        .into());
    }
    Ok(())
}

/// Like [`embed_documents`], but an input the provider refuses is answered on its own
/// (`Err(Refused)`) while the others are embedded.
pub(crate) async fn embed_each_document(
    embedder: &dyn Embedder,
    model: &ModelInfo,
    metrics: &IngestMetrics,
    texts: &[String],
) -> Result<Vec<Result<Vec<f32>, Refused>>, SyncError> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    metrics.embeddings_requested.inc_by(texts.len() as u64);
    let t = Instant::now();
    let results = embedder.embed_each(texts, InputType::Document).await?;
    metrics.embed_seconds.observe(t.elapsed().as_secs_f64());
    check_answer(model, texts.len(), results.len(), results.iter().flatten())?;
    Ok(results)
}

/// Upserts `records`; when the store refuses the write as a whole (not unavailable), it is
/// halved until each refused record stands alone, and those are returned with the store's
/// reason while the others are written. If the store takes none of them, the refusal is
/// the store's, not a record's: the error is returned.
pub(crate) async fn upsert_isolating(
    store: &dyn VectorStore,
    collection: &str,
    metrics: &IngestMetrics,
    records: &[Record],
) -> Result<Vec<(String, String)>, SyncError> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let t = Instant::now();
    let first = store.upsert(collection, records).await;
    observe_store(metrics, "upsert", t);
    let first_refusal = match first {
        Ok(()) => return Ok(Vec::new()),
        Err(StoreError::Rejected(m)) if records.len() > 1 => m,
        Err(e) => return Err(e.into()),
    };
    tracing::warn!(
        records = records.len(),
        error = %first_refusal,
        "the store refused a write; halving it to find the refused record"
    );
    let mut refused = Vec::new();
    let mut any_written = false;
    let mid = records.len() / 2;
    let mut pending = vec![&records[mid..], &records[..mid]];
    while let Some(batch) = pending.pop() {
        let t = Instant::now();
        let result = store.upsert(collection, batch).await;
        observe_store(metrics, "upsert", t);
        match result {
            Ok(()) => any_written = true,
            Err(StoreError::Rejected(m)) if batch.len() == 1 => {
                refused.push((batch[0].id.clone(), m));
            }
            Err(StoreError::Rejected(_)) => {
                let mid = batch.len() / 2;
                pending.push(&batch[mid..]);
                pending.push(&batch[..mid]);
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !any_written {
        return Err(StoreError::Rejected(first_refusal).into());
    }
    Ok(refused)
}

/// Deletes `deletes`, then upserts `records`, timing each store call.
pub(crate) async fn write_changes(
    store: &dyn VectorStore,
    collection: &str,
    metrics: &IngestMetrics,
    deletes: &[String],
    records: &[Record],
) -> Result<(), SyncError> {
    if !deletes.is_empty() {
        let t = Instant::now();
        store.delete(collection, deletes).await?;
        observe_store(metrics, "delete", t);
    }
    if !records.is_empty() {
        let t = Instant::now();
        store.upsert(collection, records).await?;
        observe_store(metrics, "upsert", t);
    }
    Ok(())
}

/// The model's identity, once the collection exists for it (created, or checked to hold
/// vectors of the same model).
pub(crate) async fn prepare_collection(
    store: &dyn VectorStore,
    embedder: &dyn Embedder,
    collection: &str,
) -> Result<ModelInfo, SyncError> {
    let model = embedder.model_info().await?;
    store.ensure_collection(collection, &model).await?;
    Ok(model)
}

/// The stored content hashes of `ids` (nothing read when there are none): what a sync
/// compares to skip unchanged documents.
pub(crate) async fn stored_hashes_of(
    store: &dyn VectorStore,
    collection: &str,
    metrics: &IngestMetrics,
    ids: &[String],
) -> Result<HashMap<String, String>, SyncError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let t = Instant::now();
    let stored = store.content_hashes(collection, ids).await?;
    observe_store(metrics, "hashes", t);
    Ok(stored)
}

/// The counters one kind of sync (instances, capabilities) feeds.
pub(crate) struct SyncCounters<'a> {
    pub requests: &'a Family<Label, Counter>,
    pub upserted: &'a Counter,
    pub deleted: &'a Counter,
}

/// Runs one sync's `work` inside `span` (which has `embedded` and `unchanged` fields to
/// fill), timing it and counting its outcome: what every `apply_sync` does around its work.
pub(crate) async fn instrumented(
    metrics: &IngestMetrics,
    counters: SyncCounters<'_>,
    span: tracing::Span,
    work: impl std::future::Future<Output = Result<SyncOutcome, SyncError>>,
) -> Result<SyncOutcome, SyncError> {
    let started = Instant::now();
    let result = work.instrument(span.clone()).await;
    metrics
        .sync_seconds
        .observe(started.elapsed().as_secs_f64());
    if let Ok(o) = &result {
        span.record("embedded", o.embedded);
        span.record("unchanged", o.unchanged);
        counters.upserted.inc_by(o.embedded as u64);
        counters.deleted.inc_by(o.deleted as u64);
        metrics.embeddings_skipped.inc_by(o.unchanged as u64);
    }
    counters
        .requests
        .get_or_create(&[("outcome", outcome_label(&result))])
        .inc();
    result
}

/// The `outcome` label of a sync request: ok, invalid, unavailable or error.
pub(crate) fn outcome_label<T>(result: &Result<T, SyncError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(SyncError::Invalid(_)) => "invalid",
        Err(e) if e.is_transient() => "unavailable",
        Err(_) => "error",
    }
}

pub(crate) fn observe_store(metrics: &IngestMetrics, op: &'static str, since: Instant) {
    metrics
        .store_seconds
        .get_or_create(&[("op", op)])
        .observe(since.elapsed().as_secs_f64());
}

/// The ingest pipeline for one collection. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    store: Arc<dyn VectorStore>,
    embedder: Arc<dyn Embedder>,
    collection: String,
    metrics: Arc<IngestMetrics>,
    parked: Arc<ParkedInstances>,
    /// The cluster of payloads that name none (the Go controller's).
    default_cluster: ClusterId,
    /// When each cluster's latest sync was applied (RFC 3339), since this process started.
    last_sync: Arc<Mutex<BTreeMap<ClusterId, String>>>,
}

impl Pipeline {
    pub fn new(
        store: Arc<dyn VectorStore>,
        embedder: Arc<dyn Embedder>,
        collection: impl Into<String>,
    ) -> Self {
        Pipeline {
            store,
            embedder,
            collection: collection.into(),
            metrics: Arc::new(IngestMetrics::new()),
            parked: Arc::new(ParkedInstances::new()),
            default_cluster: ClusterId::default_cluster(),
            last_sync: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// Payloads without a `cluster` belong to `cluster` (default: `default`).
    pub fn with_default_cluster(mut self, cluster: ClusterId) -> Self {
        self.default_cluster = cluster;
        self
    }

    pub fn default_cluster(&self) -> &ClusterId {
        &self.default_cluster
    }

    /// The cluster `named` by a request (`?cluster=`, a payload's field), or the default
    /// one; a malformed name is the request's fault.
    pub fn cluster_of(&self, named: Option<&str>) -> Result<ClusterId, SyncError> {
        sync_model::cluster_or(named, &self.default_cluster)
            .map_err(|e| SyncError::Invalid(vec![e]))
    }

    /// When each cluster's latest sync was applied, since this process started.
    pub fn last_syncs(&self) -> BTreeMap<ClusterId, String> {
        self.last_sync.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Shares `metrics` (e.g. with the HTTP server that exposes them).
    pub fn with_metrics(mut self, metrics: Arc<IngestMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn store(&self) -> &Arc<dyn VectorStore> {
        &self.store
    }

    /// The store's generation of the instances collection (see
    /// [`VectorStore::generation`]).
    pub fn generation(&self) -> Option<String> {
        self.store.generation(&self.collection)
    }

    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.embedder
    }

    pub fn collection(&self) -> &str {
        &self.collection
    }

    pub fn metrics(&self) -> &Arc<IngestMetrics> {
        &self.metrics
    }

    /// Applies one payload. On `Err` nothing was written, except after a store failure
    /// between delete and upsert; a retry of the same payload then completes it.
    pub async fn apply_sync(&self, payload: SyncPayload) -> Result<SyncOutcome, SyncError> {
        let span = tracing::info_span!(
            "apply_sync",
            collection = %self.collection,
            cluster = payload.cluster.as_deref().unwrap_or(self.default_cluster.as_str()),
            upserts = payload.upserts.len(),
            deletes = payload.deletes.len(),
            embedded = tracing::field::Empty,
            unchanged = tracing::field::Empty,
        );
        let m = &self.metrics;
        let counters = SyncCounters {
            requests: &m.sync_requests,
            upserted: &m.instances_upserted,
            deleted: &m.instances_deleted,
        };
        instrumented(m, counters, span, self.apply(payload)).await
    }

    async fn apply(&self, payload: SyncPayload) -> Result<SyncOutcome, SyncError> {
        payload.check().map_err(SyncError::Invalid)?;
        let cluster = self.cluster_of(payload.cluster.as_deref())?;
        if let Ok(mut last) = self.last_sync.lock() {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            last.insert(cluster.clone(), now);
        }
        if payload.is_empty() {
            return Ok(SyncOutcome::default());
        }
        let Normalised { deletes, upserts } = normalise(payload);
        let model = prepare_collection(
            self.store.as_ref(),
            self.embedder.as_ref(),
            &self.collection,
        )
        .await?;
        // Only hashes for now: documents (text and metadata) are made a chunk at a time.
        let ids: Vec<String> = upserts.iter().map(|u| cluster.qualify(&u.id)).collect();
        let stored =
            stored_hashes_of(self.store.as_ref(), &self.collection, &self.metrics, &ids).await?;
        let mut changed: Vec<&ResourceInstance> = Vec::new();
        let mut metadata_only: Vec<&ResourceInstance> = Vec::new();
        for (u, id) in upserts.iter().zip(&ids) {
            let current = u.content_hash();
            match stored.get(id.as_str()) {
                Some(s) if content_unchanged(s, &current) => {}
                Some(s) if text_unchanged(s, &current) => metadata_only.push(u),
                _ => changed.push(u),
            }
        }
        drop(ids);
        drop(stored);
        let unchanged = upserts.len() - changed.len() - metadata_only.len();
        // Their vectors, read back to be written again; one the store cannot give back
        // (gone meanwhile) is embedded like any change.
        let kept = self.kept_vectors(&cluster, &metadata_only).await?;
        let (rewrite, lost): (Vec<&ResourceInstance>, Vec<&ResourceInstance>) = metadata_only
            .into_iter()
            .partition(|u| kept.contains_key(&cluster.qualify(&u.id)));
        changed.extend(lost);

        // Embed before any write: a provider failure in the first chunk (every payload of
        // up to EMBED_CHUNK changed documents) leaves the store untouched. Larger payloads
        // are embedded and written chunk by chunk, so that one request holds the vectors
        // of one chunk, not of 16 MiB of instances; a failure there leaves earlier chunks
        // written, and the sender's retry completes the rest (they are then unchanged).
        // An input the provider refuses on its own is parked below; the others flow.
        let delete_ids: Vec<String> = deletes.iter().map(|id| cluster.qualify(id)).collect();
        let mut deletes_written = false;
        let mut refused: Vec<(String, String, &'static str)> = Vec::new();
        let mut embedded = 0;
        let mut changed = changed.into_iter().peekable();
        loop {
            let mut chunk: Vec<InstanceDocument> = changed
                .by_ref()
                .take(EMBED_CHUNK)
                .map(|u| to_document(u, &cluster))
                .collect();
            let texts: Vec<String> = chunk
                .iter_mut()
                .map(|d| std::mem::take(&mut d.text))
                .collect();
            let results =
                embed_each_document(self.embedder.as_ref(), &model, &self.metrics, &texts).await?;
            let mut records: Vec<Record> = Vec::with_capacity(chunk.len());
            for ((d, text), result) in chunk.into_iter().zip(texts).zip(results) {
                match result {
                    Ok(embedding) => records.push(Record {
                        id: d.id,
                        document: text,
                        embedding,
                        metadata: d.metadata,
                        content_hash: d.content_hash,
                    }),
                    Err(Refused { reason }) => refused.push((d.id, reason, "embed")),
                }
            }
            if !deletes_written {
                write_changes(
                    self.store.as_ref(),
                    &self.collection,
                    &self.metrics,
                    &delete_ids,
                    &[],
                )
                .await?;
                deletes_written = true;
            }
            let store_refused = upsert_isolating(
                self.store.as_ref(),
                &self.collection,
                &self.metrics,
                &records,
            )
            .await?;
            embedded += records.len() - store_refused.len();
            refused.extend(store_refused.into_iter().map(|(id, r)| (id, r, "store")));
            if changed.peek().is_none() {
                break;
            }
        }
        let mut kept = kept;
        let rewritten: Vec<Record> = rewrite
            .iter()
            .filter_map(|u| {
                let d = to_document(u, &cluster);
                let embedding = kept.remove(&d.id)?;
                Some(Record {
                    id: d.id,
                    document: d.text,
                    embedding,
                    metadata: d.metadata,
                    content_hash: d.content_hash,
                })
            })
            .collect();
        drop(kept);
        let store_refused = upsert_isolating(
            self.store.as_ref(),
            &self.collection,
            &self.metrics,
            &rewritten,
        )
        .await?;
        let metadata_only = rewritten.len() - store_refused.len();
        self.metrics.metadata_updates.inc_by(metadata_only as u64);
        refused.extend(store_refused.into_iter().map(|(id, r)| (id, r, "store")));
        let parked = self.park(&upserts, &cluster, refused);
        let parked_ids: HashSet<&ResourceId> = parked.iter().map(|p| &p.id).collect();
        // Stored (or unchanged) upserts and deletes settle whatever was parked of their ids.
        let settled: Vec<String> = upserts
            .iter()
            .map(|u| &u.id)
            .filter(|id| !parked_ids.contains(id))
            .map(|id| cluster.qualify(id))
            .chain(delete_ids)
            .collect();
        if self.parked.clear(settled.iter().map(String::as_str)) > 0 || !parked.is_empty() {
            self.metrics.parked.set(self.parked.len() as i64);
        }
        Ok(SyncOutcome {
            upserted: upserts.len() - parked.len(),
            deleted: deletes.len(),
            embedded,
            unchanged,
            metadata_only,
            parked,
        })
    }

    /// The stored vectors of `instances` (nothing read when there are none).
    async fn kept_vectors(
        &self,
        cluster: &ClusterId,
        instances: &[&ResourceInstance],
    ) -> Result<HashMap<String, Vec<f32>>, SyncError> {
        if instances.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: Vec<String> = instances.iter().map(|u| cluster.qualify(&u.id)).collect();
        let t = Instant::now();
        let vectors = self.store.vectors(&self.collection, &ids).await?;
        observe_store(&self.metrics, "vectors", t);
        Ok(vectors)
    }

    /// Parks each refused upsert (`id`, reason, which service refused it): a log line, a
    /// metric and an entry in the listing.
    fn park(
        &self,
        upserts: &[ResourceInstance],
        cluster: &ClusterId,
        refused: Vec<(String, String, &'static str)>,
    ) -> Vec<ParkedInstance> {
        if refused.is_empty() {
            return Vec::new();
        }
        // `refused` names stored (cluster-qualified) ids.
        let by_id: HashMap<String, &ResourceInstance> = upserts
            .iter()
            .map(|u| (cluster.qualify(&u.id), u))
            .collect();
        refused
            .into_iter()
            .filter_map(|(id, reason, by)| {
                let instance = by_id.get(id.as_str())?;
                tracing::warn!(
                    id = %instance.id,
                    %cluster,
                    refused_by = by,
                    %reason,
                    "instance parked: refused whatever is retried; its batch-mates were stored; \
                     retried when it is next sent (its next change or the next resync)"
                );
                self.metrics
                    .instances_parked
                    .get_or_create(&[("reason", by)])
                    .inc();
                Some(self.parked.park(instance, cluster, &reason))
            })
            .collect()
    }

    /// The instances parked now, oldest first (`GET /api/v1/instances/parked`).
    pub fn parked(&self) -> Vec<ParkedInstance> {
        self.parked.list()
    }

    /// Every instance id of `cluster` with the content hash of what is stored: the answer
    /// to `GET /api/v1/instances/hashes?cluster=`, which a resync diffs against a fresh
    /// listing of that cluster. Other clusters' documents are not in it, so no sender's
    /// diff can delete them.
    pub async fn stored_hashes(
        &self,
        cluster: &ClusterId,
    ) -> Result<HashMap<String, String>, SyncError> {
        let t = Instant::now();
        let filter = Filter::Eq(CLUSTER_KEY.into(), cluster.to_string());
        let hashes = self
            .store
            .all_hashes(&self.collection, Some(&filter))
            .await?;
        self.observe_store("all_hashes", t);
        Ok(hashes
            .into_iter()
            .filter_map(|(id, hash)| Some((cluster.unqualify(&id)?.to_string(), hash)))
            .collect())
    }

    fn observe_store(&self, op: &'static str, since: Instant) {
        observe_store(&self.metrics, op, since);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(name: &str, app: &str) -> ResourceInstance {
        sync_model::fixtures::deployment("default", name, app)
    }

    #[test]
    fn an_id_both_deleted_and_upserted_is_only_upserted() {
        let a = instance("a", "x");
        let n = normalise(SyncPayload {
            cluster: None,
            upserts: vec![a.clone()],
            deletes: vec![a.id.clone(), ResourceId::from_raw("default/v1/Pod/gone")],
        });
        assert_eq!(n.upserts, vec![a]);
        assert_eq!(n.deletes, vec![ResourceId::from_raw("default/v1/Pod/gone")]);
    }

    #[test]
    fn the_last_of_duplicate_upsert_ids_wins_in_first_position() {
        let n = normalise(SyncPayload {
            cluster: None,
            upserts: vec![
                instance("a", "old"),
                instance("b", "x"),
                instance("a", "new"),
            ],
            deletes: vec![],
        });
        assert_eq!(n.upserts.len(), 2);
        assert_eq!(n.upserts[0].labels["app"], "new");
        assert_eq!(n.upserts[1].name, "b");
    }

    #[test]
    fn duplicate_deletes_are_sent_once() {
        let gone = ResourceId::from_raw("default/v1/Pod/gone");
        let n = normalise(SyncPayload {
            cluster: None,
            upserts: vec![],
            deletes: vec![gone.clone(), gone.clone()],
        });
        assert_eq!(n.deletes, vec![gone]);
    }
}
