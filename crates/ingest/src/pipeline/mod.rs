//! The sync pipeline, usable in-process (`cw sync-instances`, `cw run`) and behind
//! `POST /api/v1/instances/sync`. [`Pipeline::apply_sync`] reads as its steps:
//!
//! 1. validate and [`normalise`] the payload (each id once, the newest upsert winning);
//! 2. sort the upserts against their stored content hashes into unchanged, metadata-only
//!    and changed ([`changes`]: the rule, and why a change of health costs no embedding);
//! 3. embed the changed, a chunk at a time, before writing anything of that chunk (so a
//!    failed embedding changes nothing), then delete, then upsert (`embedding`,
//!    `store_calls`); a text whose vector is stored already (any cluster's copy), being
//!    embedded by a concurrent sync, or repeated in the chunk is not embedded again
//!    (`reuse`);
//! 4. rewrite the metadata-only with their stored vectors, never embedded;
//! 5. settle parked items: an upsert the provider or the store refuses whatever is retried
//!    is parked (`crate::parked`, in the store) while its batch-mates are stored, and what
//!    was parked of an id stored or deleted now is forgotten.
//!
//! The capabilities pipeline (`crate::capabilities`) shares steps 1 to 3.

pub mod changes;
mod embedding;
mod normalise;
mod outcome;
mod reuse;
mod store_calls;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use sync_model::{ClusterId, ParkedInstance, ResourceId, ResourceInstance, SyncPayload};

pub use changes::{ChangeClass, Sorted};
pub(crate) use embedding::embed_documents;
pub use embedding::EMBED_CHUNK;
pub(crate) use normalise::last_upsert_wins;
pub use normalise::{normalise, Normalised};
pub(crate) use outcome::{instrumented, SyncCounters};
pub use outcome::{SyncError, SyncOutcome};
pub(crate) use store_calls::{
    observe_store, prepare_collection, stored_hashes_of, upsert_isolating, write_changes,
};

use crate::clusters::{ClusterRegistry, Heard};
use crate::document::{text_hash, text_hash_of, to_document, InstanceDocument, CLUSTER_KEY};
use crate::embed::{Embedder, ModelInfo, Refused};
use crate::generations::{ActiveIndex, Snapshot};
use crate::metrics::IngestMetrics;
use crate::parked::ParkedInstances;
use crate::store::{Filter, Record, VectorStore};
use reuse::{Claims, InFlight, Reuse};

/// The ingest pipeline for one collection. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    store: Arc<dyn VectorStore>,
    embedder: Arc<dyn Embedder>,
    collection: String,
    metrics: Arc<IngestMetrics>,
    /// The objects parked, recorded in the store.
    parked: ParkedInstances,
    /// The cluster of payloads that name none (the Go controller's).
    default_cluster: ClusterId,
    /// Each cluster's last sync and last contact, recorded in the store.
    registry: ClusterRegistry,
    /// The texts this process's syncs are embedding now (`reuse`).
    in_flight: Arc<InFlight>,
    /// The index generation each sync writes (`crate::generations`); `None`: `collection`.
    active: Option<ActiveIndex>,
    /// Writing a sync to the generation being built as well: nothing is parked or settled
    /// (the active generation's write did).
    mirror: bool,
}

/// An upsert refused whatever is retried, to be parked.
struct Refusal {
    /// The stored (cluster-qualified) id.
    id: String,
    reason: String,
    /// Which service refused it: `embed` or `store` (the metric's `reason` label).
    by: &'static str,
}

/// Metadata-only upserts with the vectors stored for them.
type Kept<'a> = Vec<(&'a ResourceInstance, Vec<f32>)>;

impl Pipeline {
    pub fn new(
        store: Arc<dyn VectorStore>,
        embedder: Arc<dyn Embedder>,
        collection: impl Into<String>,
    ) -> Self {
        let collection = collection.into();
        Pipeline {
            registry: ClusterRegistry::new(store.clone(), &collection),
            parked: ParkedInstances::new(store.clone(), &collection),
            store,
            embedder,
            collection,
            metrics: Arc::new(IngestMetrics::new()),
            default_cluster: ClusterId::default_cluster(),
            in_flight: Arc::new(InFlight::default()),
            active: None,
            mirror: false,
        }
    }

    /// Writes each sync to the active generation of `active` (and to the one being built,
    /// where this process embeds for its model), taken once per sync.
    pub fn with_active(mut self, active: ActiveIndex) -> Self {
        let now = active.clone();
        self.registry
            .count_in(move || now.current().instances.clone());
        self.active = Some(active);
        self
    }

    /// The active generation this pipeline follows, if any.
    pub fn active(&self) -> Option<&ActiveIndex> {
        self.active.as_ref()
    }

    /// This pipeline writing the instances collection of `snapshot` with its embedder
    /// (the side collections stay those of the configured name).
    fn in_snapshot(&self, snapshot: &Snapshot, mirror: bool) -> Pipeline {
        let mut p = self.clone();
        p.collection = snapshot.instances.clone();
        p.embedder = snapshot.embedder.clone();
        p.active = None;
        p.mirror = mirror;
        if mirror {
            p.in_flight = Arc::new(InFlight::default());
        }
        p
    }

    /// This pipeline in the active generation now.
    fn now(&self) -> Pipeline {
        match &self.active {
            Some(active) => self.in_snapshot(&active.current(), false),
            None => self.clone(),
        }
    }

    /// The generation being built, when this process writes syncs to it too.
    fn building(&self) -> Option<Pipeline> {
        let active = self.active.as_ref()?;
        let building = active.building()?;
        (building.number != active.current().number).then(|| self.in_snapshot(&building, true))
    }

    /// Records the clusters' syncs and contacts with `registry` (e.g. one that writes more
    /// often, in tests).
    pub fn with_registry(mut self, registry: ClusterRegistry) -> Self {
        if let Some(active) = self.active.clone() {
            registry.count_in(move || active.current().instances.clone());
        }
        self.registry = registry;
        self
    }

    /// Where the clusters' last sync and last contact are recorded.
    pub fn registry(&self) -> &ClusterRegistry {
        &self.registry
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

    /// Shares `metrics` (e.g. with the HTTP server that exposes them).
    pub fn with_metrics(mut self, metrics: Arc<IngestMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn store(&self) -> &Arc<dyn VectorStore> {
        &self.store
    }

    /// The store's generation of the instances collection of the active index generation
    /// (see [`VectorStore::generation`]): a switch to another index generation changes it
    /// too, so that each watcher resyncs once against the new one.
    pub fn generation(&self) -> Option<String> {
        self.store.generation(&self.now().collection)
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
    /// between delete and upsert; a retry of the same payload then completes it. An applied
    /// payload is recorded as its cluster's sync (an empty one, a heartbeat, as a contact).
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
        // A malformed cluster is refused inside, counted as an invalid request.
        let cluster = self.cluster_of(payload.cluster.as_deref()).ok();
        let heard = if payload.is_empty() {
            Heard::Contact
        } else {
            Heard::Sync
        };
        let outcome = match &self.active {
            None => instrumented(m, counters, span, self.apply(payload)).await?,
            Some(active) => {
                // One generation snapshot for the whole sync; a switch in this process
                // waits for it.
                let _turn = active.sync_turn().await?;
                let building = self.building();
                let copy = building.as_ref().map(|_| payload.clone());
                let outcome = instrumented(m, counters, span, self.now().apply(payload)).await?;
                if let (Some(next), Some(copy)) = (building, copy) {
                    next.mirror_sync(copy).await;
                }
                outcome
            }
        };
        if let Some(cluster) = cluster {
            self.registry.heard(&cluster, heard).await;
        }
        Ok(outcome)
    }

    /// Writes `payload` to the generation being built too; a failure is logged and counted,
    /// the final comparison before the switch fixes what it left.
    async fn mirror_sync(&self, payload: SyncPayload) {
        if let Err(e) = self.apply(payload).await {
            self.metrics.reindex_mirror_failures.inc();
            tracing::warn!(error = %e, collection = %self.collection, "could not write a sync to the generation being built; the final comparison fixes it");
        }
    }

    /// The steps of one sync (see the module's documentation).
    async fn apply(&self, payload: SyncPayload) -> Result<SyncOutcome, SyncError> {
        payload.check().map_err(SyncError::Invalid)?;
        let cluster = self.cluster_of(payload.cluster.as_deref())?;
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
        let sorted = self.classify(&cluster, &upserts).await?;
        let unchanged = sorted.unchanged.len();
        let (rewrite, changed) = self.keep_vectors(&cluster, sorted).await?;
        let delete_ids: Vec<String> = deletes.iter().map(|id| cluster.qualify(id)).collect();
        let mut refused: Vec<Refusal> = Vec::new();
        let embedded = self
            .write_changed(&cluster, &model, &delete_ids, changed, &mut refused)
            .await?;
        let metadata_only = self
            .rewrite_metadata_only(&cluster, rewrite, &mut refused)
            .await?;
        let parked = self
            .settle_parked(&cluster, &upserts, delete_ids, refused)
            .await?;
        Ok(SyncOutcome {
            upserted: upserts.len() - parked.len(),
            deleted: deletes.len(),
            embedded,
            unchanged,
            metadata_only,
            parked,
        })
    }

    /// Step 2: `upserts` sorted against the content hashes stored for them
    /// ([`changes::classify_instances`]).
    async fn classify<'a>(
        &self,
        cluster: &ClusterId,
        upserts: &'a [ResourceInstance],
    ) -> Result<Sorted<&'a ResourceInstance>, SyncError> {
        // Only hashes for now: documents (text and metadata) are made a chunk at a time.
        let ids: Vec<String> = upserts.iter().map(|u| cluster.qualify(&u.id)).collect();
        let stored =
            stored_hashes_of(self.store.as_ref(), &self.collection, &self.metrics, &ids).await?;
        Ok(changes::classify_instances(upserts, cluster, &stored))
    }

    /// The metadata-only upserts with their stored vectors, read back to be written again,
    /// and the upserts to embed: the changed, then any metadata-only one whose vector the
    /// store cannot give back (gone meanwhile), embedded like any change.
    async fn keep_vectors<'a>(
        &self,
        cluster: &ClusterId,
        sorted: Sorted<&'a ResourceInstance>,
    ) -> Result<(Kept<'a>, Vec<&'a ResourceInstance>), SyncError> {
        let Sorted {
            metadata_only,
            mut changed,
            ..
        } = sorted;
        let mut vectors = self.stored_vectors(cluster, &metadata_only).await?;
        let mut kept = Vec::with_capacity(metadata_only.len());
        for u in metadata_only {
            match vectors.remove(&cluster.qualify(&u.id)) {
                Some(vector) => kept.push((u, vector)),
                None => changed.push(u),
            }
        }
        Ok((kept, changed))
    }

    /// Step 3: deletes, then the changed embedded and written; returns how many were
    /// written. Refused ones are added to `refused`.
    ///
    /// Embed before any write: a provider failure in the first chunk (every payload of up
    /// to [`EMBED_CHUNK`] changed documents) leaves the store untouched. Larger payloads
    /// are embedded and written chunk by chunk, so that one request holds the vectors of
    /// one chunk, not of 16 MiB of instances; a failure there leaves earlier chunks
    /// written, and the sender's retry completes the rest (they are then unchanged). An
    /// input the provider refuses on its own is parked; the others flow.
    async fn write_changed(
        &self,
        cluster: &ClusterId,
        model: &ModelInfo,
        delete_ids: &[String],
        changed: Vec<&ResourceInstance>,
        refused: &mut Vec<Refusal>,
    ) -> Result<usize, SyncError> {
        let mut deletes_written = false;
        let mut embedded = 0;
        let mut changed = changed.into_iter().peekable();
        loop {
            let chunk: Vec<&ResourceInstance> = changed.by_ref().take(EMBED_CHUNK).collect();
            // Held until the chunk is written: concurrent syncs await the texts it embeds.
            let (records, _claims) = self.embed_chunk(cluster, model, chunk, refused).await?;
            if !deletes_written {
                write_changes(
                    self.store.as_ref(),
                    &self.collection,
                    &self.metrics,
                    delete_ids,
                    &[],
                )
                .await?;
                deletes_written = true;
            }
            embedded += self.upsert_records(&records, refused).await?;
            if changed.peek().is_none() {
                break;
            }
        }
        Ok(embedded)
    }

    /// The records of `chunk`, each with the vector stored for its text or else embedded
    /// (`reuse`), and the texts it claimed for concurrent syncs to await; an input the
    /// provider refuses is added to `refused` instead.
    async fn embed_chunk(
        &self,
        cluster: &ClusterId,
        model: &ModelInfo,
        chunk: Vec<&ResourceInstance>,
        refused: &mut Vec<Refusal>,
    ) -> Result<(Vec<Record>, Claims), SyncError> {
        let mut documents: Vec<InstanceDocument> =
            chunk.into_iter().map(|u| to_document(u, cluster)).collect();
        let texts: Vec<String> = documents
            .iter_mut()
            .map(|d| std::mem::take(&mut d.text))
            .collect();
        let hashes: Vec<String> = documents
            .iter()
            .zip(&texts)
            .map(|(d, text)| {
                text_hash_of(&d.metadata).map_or_else(|| text_hash(text), str::to_string)
            })
            .collect();
        let reuse = Reuse {
            store: self.store.as_ref(),
            collection: &self.collection,
            embedder: self.embedder.as_ref(),
            model,
            metrics: &self.metrics,
            in_flight: &self.in_flight,
        };
        let (results, claims) = reuse.vectors_for(&texts, &hashes).await?;
        let mut records: Vec<Record> = Vec::with_capacity(documents.len());
        for ((d, text), result) in documents.into_iter().zip(texts).zip(results) {
            match result {
                Ok(embedding) => records.push(Record {
                    id: d.id,
                    document: text,
                    embedding,
                    metadata: d.metadata,
                    content_hash: d.content_hash,
                }),
                Err(Refused { reason }) => refused.push(Refusal {
                    id: d.id,
                    reason,
                    by: "embed",
                }),
            }
        }
        Ok((records, claims))
    }

    /// Step 4: the metadata-only upserts written again with their stored vectors, never
    /// embedded; returns how many were written. Refused ones are added to `refused`.
    async fn rewrite_metadata_only(
        &self,
        cluster: &ClusterId,
        kept: Kept<'_>,
        refused: &mut Vec<Refusal>,
    ) -> Result<usize, SyncError> {
        let records: Vec<Record> = kept
            .into_iter()
            .map(|(u, embedding)| {
                let d = to_document(u, cluster);
                Record {
                    id: d.id,
                    document: d.text,
                    embedding,
                    metadata: d.metadata,
                    content_hash: d.content_hash,
                }
            })
            .collect();
        let rewritten = self.upsert_records(&records, refused).await?;
        self.metrics.metadata_updates.inc_by(rewritten as u64);
        Ok(rewritten)
    }

    /// Upserts `records`, isolating those the store refuses (added to `refused`); returns
    /// how many were written.
    async fn upsert_records(
        &self,
        records: &[Record],
        refused: &mut Vec<Refusal>,
    ) -> Result<usize, SyncError> {
        let store_refused = upsert_isolating(
            self.store.as_ref(),
            &self.collection,
            &self.metrics,
            records,
        )
        .await?;
        let written = records.len() - store_refused.len();
        refused.extend(store_refused.into_iter().map(|(id, reason)| Refusal {
            id,
            reason,
            by: "store",
        }));
        Ok(written)
    }

    /// Step 5: parks each `refused` upsert; the ids stored (or unchanged) and deleted now
    /// settle whatever was parked of them (by this replica or another: the entries live in
    /// the store). Returns the parked. A store failure here fails the sync: its retry finds
    /// the stored objects unchanged and settles the parked ones again.
    async fn settle_parked(
        &self,
        cluster: &ClusterId,
        upserts: &[ResourceInstance],
        delete_ids: Vec<String>,
        refused: Vec<Refusal>,
    ) -> Result<Vec<ParkedInstance>, SyncError> {
        if self.mirror {
            return Ok(Vec::new());
        }
        let parked = self.park(upserts, cluster, refused);
        self.parked.park(&parked).await?;
        let parked_ids: HashSet<&ResourceId> = parked.iter().map(|p| &p.id).collect();
        let settled: Vec<String> = upserts
            .iter()
            .map(|u| &u.id)
            .filter(|id| !parked_ids.contains(id))
            .map(|id| cluster.qualify(id))
            .chain(delete_ids)
            .collect();
        if self.parked.clear(&settled).await? > 0 || !parked.is_empty() {
            self.metrics.parked.set(self.parked.len().await? as i64);
        }
        Ok(parked)
    }

    /// The stored vectors of `instances` (nothing read when there are none).
    async fn stored_vectors(
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

    /// Each refused upsert's entry for the listing, logged and counted.
    fn park(
        &self,
        upserts: &[ResourceInstance],
        cluster: &ClusterId,
        refused: Vec<Refusal>,
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
            .filter_map(|Refusal { id, reason, by }| {
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
                Some(crate::parked::entry(instance, cluster, &reason))
            })
            .collect()
    }

    /// The instances parked now, oldest first (`GET /api/v1/instances/parked`): what every
    /// replica of the store lists.
    pub async fn parked(&self) -> Result<Vec<ParkedInstance>, SyncError> {
        let list = self.parked.list().await?;
        self.metrics.parked.set(list.len() as i64);
        Ok(list)
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
        if let Some(active) = &self.active {
            active.load().await?;
        }
        let now = self.now();
        let hashes = self
            .store
            .all_hashes(&now.collection, Some(&filter))
            .await?;
        self.observe_store("all_hashes", t);
        Ok(hashes
            .into_iter()
            .filter_map(|(id, hash)| Some((cluster.unqualify(&id)?.to_string(), hash)))
            .collect())
    }

    /// Deletes every instance of `cluster` (and forgets what was parked of them); returns
    /// how many there were. Other clusters' documents are not touched.
    pub async fn remove_cluster(&self, cluster: &ClusterId) -> Result<usize, SyncError> {
        let Some(active) = &self.active else {
            return self.remove_cluster_here(cluster).await;
        };
        let _turn = active.sync_turn().await?;
        if let Some(next) = self.building() {
            next.remove_cluster_here(cluster).await?;
        }
        self.now().remove_cluster_here(cluster).await
    }

    async fn remove_cluster_here(&self, cluster: &ClusterId) -> Result<usize, SyncError> {
        let t = Instant::now();
        let filter = Filter::Eq(CLUSTER_KEY.into(), cluster.to_string());
        let ids: Vec<String> = self
            .store
            .all_hashes(&self.collection, Some(&filter))
            .await?
            .into_keys()
            .collect();
        self.observe_store("all_hashes", t);
        write_changes(
            self.store.as_ref(),
            &self.collection,
            &self.metrics,
            &ids,
            &[],
        )
        .await?;
        if !self.mirror && self.parked.clear_cluster(cluster).await? > 0 {
            self.metrics.parked.set(self.parked.len().await? as i64);
        }
        Ok(ids.len())
    }

    fn observe_store(&self, op: &'static str, since: Instant) {
        observe_store(&self.metrics, op, since);
    }
}
