//! The capabilities pipeline: one document per resource *type* in its own collection,
//! behind `POST /api/v1/capabilities/sync` and in-process (`cw run`). Same steps as the
//! instances [`Pipeline`](crate::pipeline::Pipeline): validate everything, sort the types
//! into unchanged, metadata-only (a cluster joins a type's list) and changed by content
//! hash ([`crate::pipeline::changes`]), enrich (optional) and embed what changed before
//! writing anything, then delete, then upsert.
//!
//! The enrichment cache is the collection itself. A stored document's `cw_content_hash`
//! is the hash of the capability as received (its schema, without enrichment), and
//! `cw_enrichment` says whether the model's answer is already in the document: an
//! unchanged type is skipped before the model is asked, so it is never sent twice, even
//! after a restart. A type whose enrichment failed (or that was stored while enrichment
//! was off) is stored without it and enriched on its next sync.
//!
//! One record per type serves the whole fleet. Its `cw_clusters` metadata lists the
//! clusters that serve the type, each with the hash of the capability as that cluster sent
//! it: a cluster's hashes endpoint answers from it, a cluster that starts serving a type
//! already stored with the same text only joins the list (no embedding: the text is
//! embedded once however many clusters have it), and a cluster's delete only leaves the
//! list; the record goes when the last cluster leaves. Of two clusters serving different
//! versions of one type, the latest one sent is the stored text.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sync_model::{Capability, CapabilitySyncPayload, ClusterId, Enrichment};
use tokio::task::JoinSet;

use crate::clusters::{ClusterRegistry, Heard};
use crate::embed::{Embedder, ModelInfo};
use crate::enrich::{schema_hash, Enricher};
use crate::generations::{ActiveIndex, Snapshot};
use crate::metrics::IngestMetrics;
use crate::pipeline::changes::{capability_change, classify_upserts, Sorted};
use crate::pipeline::{
    embed_documents, instrumented, last_upsert_wins, observe_store, prepare_collection,
    stored_hashes_of, write_changes, SyncCounters, SyncError, SyncOutcome,
};
use crate::store::{Filter, MetaValue, Metadata, Record, VectorStore};

pub use crate::store::keys::{CLUSTERS_KEY, ENRICHMENT_KEY};

/// Enriched by cw's language model.
pub const ENRICHED_BY_MODEL: &str = "model";
/// The sender's payload carried its own enrichment.
pub const ENRICHED_BY_SENDER: &str = "sender";
/// Stored while enrichment was off.
pub const NOT_ENRICHED: &str = "off";
/// The model call failed; enriched on the type's next sync.
pub const ENRICHMENT_FAILED: &str = "failed";

/// Language model calls in flight at once during one sync.
const ENRICH_CONCURRENCY: usize = 4;

/// The capabilities pipeline for one collection. Cheap to clone.
#[derive(Clone)]
pub struct CapabilityPipeline {
    store: Arc<dyn VectorStore>,
    embedder: Arc<dyn Embedder>,
    collection: String,
    metrics: Arc<IngestMetrics>,
    enricher: Option<Arc<Enricher>>,
    /// Enrichments received but not yet written (a failed embedding or store write would
    /// otherwise make the retry ask the model again), by schema hash.
    pending: Arc<Mutex<HashMap<String, Enrichment>>>,
    /// The cluster of payloads that name none.
    default_cluster: ClusterId,
    /// One sync at a time: each reads and rewrites the records' cluster lists, which two
    /// clusters' syncs at once would overwrite.
    one_sync: Arc<tokio::sync::Mutex<()>>,
    /// Where an applied sync is recorded as its cluster's (the instances pipeline's).
    registry: Option<ClusterRegistry>,
    /// The index generation each sync writes (`crate::generations`); `None`: `collection`.
    active: Option<ActiveIndex>,
}

/// The clusters serving one type, each with the hash of the capability it sent.
type Members = BTreeMap<String, String>;

fn members_of(metadata: &Metadata) -> Members {
    let Some(MetaValue::Str(list)) = metadata.get(CLUSTERS_KEY) else {
        return Members::new();
    };
    list.split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(c, h)| (c.to_string(), h.to_string()))
        .collect()
}

fn members_value(members: &Members) -> MetaValue {
    let list: Vec<String> = members.iter().map(|(c, h)| format!("{c}={h}")).collect();
    MetaValue::Str(list.join(","))
}

/// A changed capability, its content hash (as received) and where its enrichment came from.
type Enriched = (Capability, String, &'static str);

/// `cluster` joins the lists of the `joining` types (stored with the text it sent): the
/// metadata to merge into each, by id.
fn join_lists(
    cluster: &ClusterId,
    members: &mut HashMap<String, Members>,
    joining: Vec<(Capability, String)>,
) -> Vec<(String, Metadata)> {
    joining
        .into_iter()
        .map(|(c, hash)| {
            let entry = members.entry(c.id.clone()).or_default();
            entry.insert(cluster.to_string(), hash);
            let list = members_value(entry);
            (c.id, Metadata::from([(CLUSTERS_KEY.to_string(), list)]))
        })
        .collect()
}

/// `cluster` leaves the lists of the `deletes` types: a type it leaves to others gets its
/// new list in `lists`; the ids of those it was the last to serve are returned, to delete.
fn leave_lists(
    cluster: &ClusterId,
    members: &mut HashMap<String, Members>,
    deletes: &[String],
    lists: &mut Vec<(String, Metadata)>,
) -> Vec<String> {
    let mut gone: Vec<String> = Vec::new();
    for id in deletes {
        let entry = members.entry(id.clone()).or_default();
        entry.remove(cluster.as_str());
        if entry.is_empty() {
            gone.push(id.clone());
        } else {
            lists.push((
                id.clone(),
                Metadata::from([(CLUSTERS_KEY.to_string(), members_value(entry))]),
            ));
        }
    }
    gone
}

impl CapabilityPipeline {
    pub fn new(
        store: Arc<dyn VectorStore>,
        embedder: Arc<dyn Embedder>,
        collection: impl Into<String>,
    ) -> Self {
        CapabilityPipeline {
            store,
            embedder,
            collection: collection.into(),
            metrics: Arc::new(IngestMetrics::new()),
            enricher: None,
            pending: Arc::new(Mutex::new(HashMap::new())),
            default_cluster: ClusterId::default_cluster(),
            one_sync: Arc::new(tokio::sync::Mutex::new(())),
            registry: None,
            active: None,
        }
    }

    /// Writes each sync to the active generation of `active` (and to the one being built,
    /// where this process embeds for its model), taken once per sync.
    pub fn with_active(mut self, active: ActiveIndex) -> Self {
        self.active = Some(active);
        self
    }

    /// The active generation this pipeline follows, if any.
    pub fn active(&self) -> Option<&ActiveIndex> {
        self.active.as_ref()
    }

    fn in_snapshot(&self, snapshot: &Snapshot) -> CapabilityPipeline {
        let mut p = self.clone();
        p.collection = snapshot.capabilities.clone();
        p.embedder = snapshot.embedder.clone();
        p.active = None;
        p
    }

    /// This pipeline in the active generation now.
    fn now(&self) -> CapabilityPipeline {
        match &self.active {
            Some(active) => self.in_snapshot(&active.current()),
            None => self.clone(),
        }
    }

    /// The generation being built, when this process writes syncs to it too.
    fn building(&self) -> Option<CapabilityPipeline> {
        let active = self.active.as_ref()?;
        let building = active.building()?;
        (building.number != active.current().number).then(|| self.in_snapshot(&building))
    }

    /// Records each applied sync as its cluster's sync in `registry`.
    pub fn with_registry(mut self, registry: ClusterRegistry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Payloads without a `cluster` belong to `cluster` (default: `default`).
    pub fn with_default_cluster(mut self, cluster: ClusterId) -> Self {
        self.default_cluster = cluster;
        self
    }

    /// The cluster `named` by a request, or the default one.
    pub fn cluster_of(&self, named: Option<&str>) -> Result<ClusterId, SyncError> {
        sync_model::cluster_or(named, &self.default_cluster)
            .map_err(|e| SyncError::Invalid(vec![e]))
    }

    /// Turns enrichment on.
    pub fn with_enricher(mut self, enricher: Arc<Enricher>) -> Self {
        self.enricher = Some(enricher);
        self
    }

    /// Shares `metrics` (e.g. with the instances pipeline and the HTTP server).
    pub fn with_metrics(mut self, metrics: Arc<IngestMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn collection(&self) -> &str {
        &self.collection
    }

    pub fn metrics(&self) -> &Arc<IngestMetrics> {
        &self.metrics
    }

    pub fn enricher(&self) -> Option<&Arc<Enricher>> {
        self.enricher.as_ref()
    }

    /// Applies one payload. On `Err` nothing was written, except after a store failure
    /// between delete and upsert; a retry of the same payload then completes it. A failed
    /// enrichment is not an error: the type is stored without it.
    pub async fn apply_sync(
        &self,
        payload: CapabilitySyncPayload,
    ) -> Result<SyncOutcome, SyncError> {
        let span = tracing::info_span!(
            "apply_capability_sync",
            collection = %self.collection,
            upserts = payload.upserts.len(),
            deletes = payload.deletes.len(),
            embedded = tracing::field::Empty,
            unchanged = tracing::field::Empty,
        );
        let m = &self.metrics;
        let counters = SyncCounters {
            requests: &m.capability_sync_requests,
            upserted: &m.capabilities_upserted,
            deleted: &m.capabilities_deleted,
        };
        let cluster = self.cluster_of(payload.cluster.as_deref()).ok();
        let heard = if payload.is_empty() {
            Heard::Contact
        } else {
            Heard::Sync
        };
        let outcome = match &self.active {
            None => instrumented(m, counters, span, self.apply(payload)).await?,
            Some(active) => {
                let _turn = active.sync_turn().await?;
                let building = self.building();
                let copy = building.as_ref().map(|_| payload.clone());
                let outcome = instrumented(m, counters, span, self.now().apply(payload)).await?;
                if let (Some(next), Some(copy)) = (building, copy) {
                    if let Err(e) = next.apply(copy).await {
                        self.metrics.reindex_mirror_failures.inc();
                        tracing::warn!(error = %e, collection = %next.collection, "could not write a capability sync to the generation being built; the final comparison fixes it");
                    }
                }
                outcome
            }
        };
        if let (Some(registry), Some(cluster)) = (&self.registry, cluster) {
            registry.heard(&cluster, heard).await;
        }
        Ok(outcome)
    }

    /// `cluster` leaves the list of every type it serves, as if it had sent a delete of
    /// each: a type other clusters serve keeps its record, a type only it served is
    /// deleted. Returns how many types it left and how many were deleted.
    pub async fn remove_cluster(&self, cluster: &ClusterId) -> Result<(usize, usize), SyncError> {
        let Some(active) = &self.active else {
            return self.remove_cluster_here(cluster).await;
        };
        let _turn = active.sync_turn().await?;
        if let Some(next) = self.building() {
            next.remove_cluster_here(cluster).await?;
        }
        self.now().remove_cluster_here(cluster).await
    }

    async fn remove_cluster_here(&self, cluster: &ClusterId) -> Result<(usize, usize), SyncError> {
        let _one_sync = self.one_sync.lock().await;
        let mut members = self.all_members().await?;
        let served: Vec<String> = members
            .iter()
            .filter(|(_, m)| m.contains_key(cluster.as_str()))
            .map(|(id, _)| id.clone())
            .collect();
        let mut lists = Vec::new();
        let gone = leave_lists(cluster, &mut members, &served, &mut lists);
        write_changes(
            self.store.as_ref(),
            &self.collection,
            &self.metrics,
            &gone,
            &[],
        )
        .await?;
        self.write_lists(&lists).await?;
        Ok((lists.len(), gone.len()))
    }

    /// The steps of one sync: the instances pipeline's, with the clusters' lists.
    async fn apply(&self, payload: CapabilitySyncPayload) -> Result<SyncOutcome, SyncError> {
        payload.check().map_err(SyncError::Invalid)?;
        let cluster = self.cluster_of(payload.cluster.as_deref())?;
        if payload.is_empty() {
            return Ok(SyncOutcome::default());
        }
        let _one_sync = self.one_sync.lock().await;
        let (deletes, upserts) =
            last_upsert_wins(payload.upserts, payload.deletes, |c: &Capability| &c.id);
        let model = prepare_collection(
            self.store.as_ref(),
            self.embedder.as_ref(),
            &self.collection,
        )
        .await?;
        let total = upserts.len();
        let (sorted, mut members) = self.classify(&cluster, upserts).await?;
        // A type whose cluster list alone changes is not embedded either: both count as
        // unchanged in the outcome, whose `metadata_only` counts instances rewritten.
        let unchanged = total - sorted.changed.len();
        let mut lists = join_lists(&cluster, &mut members, sorted.metadata_only);
        let gone = leave_lists(&cluster, &mut members, &deletes, &mut lists);

        // Enrich, then embed, before any write: a failed embedding changes nothing.
        let (records, enriched) = self
            .embed_changed(&cluster, &model, &mut members, sorted.changed)
            .await?;
        write_changes(
            self.store.as_ref(),
            &self.collection,
            &self.metrics,
            &gone,
            &records,
        )
        .await?;
        self.write_lists(&lists).await?;
        if let Ok(mut pending) = self.pending.lock() {
            for schema in &enriched {
                pending.remove(schema);
            }
        }
        Ok(SyncOutcome {
            upserted: total,
            deleted: deletes.len(),
            embedded: records.len(),
            unchanged,
            metadata_only: 0,
            parked: Vec::new(),
        })
    }

    /// The upserts, each with its content hash, sorted against the stored types
    /// ([`capability_change`]), and the clusters serving each stored type.
    async fn classify(
        &self,
        cluster: &ClusterId,
        upserts: Vec<Capability>,
    ) -> Result<(Sorted<(Capability, String)>, HashMap<String, Members>), SyncError> {
        let hashes: Vec<String> = upserts.iter().map(Capability::content_hash).collect();
        let ids: Vec<String> = upserts.iter().map(|c| c.id.clone()).collect();
        let stored =
            stored_hashes_of(self.store.as_ref(), &self.collection, &self.metrics, &ids).await?;
        let members = self.all_members().await?;
        let awaiting = if self.enricher.is_some() {
            self.awaiting_enrichment().await?
        } else {
            HashSet::new()
        };
        let sorted = classify_upserts(upserts.into_iter().zip(hashes), |(c, hash)| {
            capability_change(
                stored.get(&c.id).map(String::as_str),
                hash,
                c.enrichment.is_none() && awaiting.contains(&c.id),
                members
                    .get(&c.id)
                    .and_then(|m| m.get(cluster.as_str()))
                    .map(String::as_str),
            )
        });
        Ok((sorted, members))
    }

    /// The records of the `changed` types, enriched and embedded, each listing `cluster`
    /// among those serving it; and the schema hashes of what was enriched (to forget
    /// from `pending` once written).
    async fn embed_changed(
        &self,
        cluster: &ClusterId,
        model: &ModelInfo,
        members: &mut HashMap<String, Members>,
        changed: Vec<(Capability, String)>,
    ) -> Result<(Vec<Record>, Vec<String>), SyncError> {
        let enriched = self.enrich_all(changed).await;
        let texts: Vec<String> = enriched.iter().map(|(c, _, _)| c.document_text()).collect();
        let vectors = embed_documents(self.embedder.as_ref(), model, &self.metrics, &texts).await?;
        let records: Vec<Record> = enriched
            .iter()
            .zip(texts)
            .zip(vectors)
            .map(|(((c, hash, source), document), embedding)| {
                let mut metadata = to_metadata(c, source);
                let entry = members.entry(c.id.clone()).or_default();
                entry.insert(cluster.to_string(), hash.clone());
                metadata.insert(CLUSTERS_KEY.to_string(), members_value(entry));
                Record {
                    id: c.id.clone(),
                    document,
                    embedding,
                    metadata,
                    content_hash: hash.clone(),
                }
            })
            .collect();
        let schemas = enriched.iter().map(|(c, _, _)| schema_hash(c)).collect();
        Ok((records, schemas))
    }

    /// Writes the types' new cluster lists (`lists`: by id, the metadata to merge).
    async fn write_lists(&self, lists: &[(String, Metadata)]) -> Result<(), SyncError> {
        if lists.is_empty() {
            return Ok(());
        }
        let t = Instant::now();
        self.store.merge_metadata(&self.collection, lists).await?;
        observe_store(&self.metrics, "merge_metadata", t);
        Ok(())
    }

    /// Each changed capability with its content hash (as received) and where its
    /// enrichment came from. Model failures are logged and counted, never returned.
    async fn enrich_all(&self, changed: Vec<(Capability, String)>) -> Vec<Enriched> {
        let Some(enricher) = &self.enricher else {
            return changed
                .into_iter()
                .map(|(c, h)| {
                    let source = if c.enrichment.is_some() {
                        ENRICHED_BY_SENDER
                    } else {
                        NOT_ENRICHED
                    };
                    (c, h, source)
                })
                .collect();
        };
        let (mut out, to_ask) = self.enrichments_at_hand(changed);
        self.ask_model(enricher, to_ask, &mut out).await;
        out.into_iter().flatten().collect()
    }

    /// Each changed capability in place with the enrichment at hand (the sender's, or the
    /// model's answer received earlier but not yet written), or `None`; and those to ask
    /// the model for, with their place.
    fn enrichments_at_hand(
        &self,
        changed: Vec<(Capability, String)>,
    ) -> (Vec<Option<Enriched>>, Vec<(usize, Capability, String)>) {
        let mut out: Vec<Option<Enriched>> = Vec::new();
        let mut to_ask: Vec<(usize, Capability, String)> = Vec::new();
        for (c, h) in changed {
            let i = out.len();
            if c.enrichment.is_some() {
                out.push(Some((c, h, ENRICHED_BY_SENDER)));
                continue;
            }
            let cached = self
                .pending
                .lock()
                .ok()
                .and_then(|p| p.get(&schema_hash(&c)).cloned());
            match cached {
                Some(e) => {
                    let mut c = c;
                    c.enrichment = Some(e);
                    out.push(Some((c, h, ENRICHED_BY_MODEL)));
                }
                None => {
                    out.push(None);
                    to_ask.push((i, c, h));
                }
            }
        }
        (out, to_ask)
    }

    /// Asks the model to enrich each of `to_ask`, [`ENRICH_CONCURRENCY`] at a time, and
    /// puts it in its place in `out`, enriched or (the model failed) not.
    async fn ask_model(
        &self,
        enricher: &Arc<Enricher>,
        to_ask: Vec<(usize, Capability, String)>,
        out: &mut [Option<Enriched>],
    ) {
        let mut queue = to_ask.into_iter();
        let mut running = JoinSet::new();
        loop {
            while running.len() < ENRICH_CONCURRENCY {
                let Some((i, c, h)) = queue.next() else { break };
                let enricher = enricher.clone();
                self.metrics.enrichments_requested.inc();
                running.spawn(async move {
                    let result = enricher.enrich(&c).await;
                    (i, c, h, result)
                });
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            let Ok((i, mut c, h, result)) = joined else {
                // A panicked task lost its capability; nothing else to do but count it.
                self.metrics.enrichments_failed.inc();
                continue;
            };
            let source = match result {
                Ok(e) => {
                    if let Ok(mut p) = self.pending.lock() {
                        p.insert(schema_hash(&c), e.clone());
                    }
                    c.enrichment = Some(e);
                    ENRICHED_BY_MODEL
                }
                Err(e) => {
                    self.metrics.enrichments_failed.inc();
                    tracing::warn!(
                        capability = %c.id,
                        error = %e,
                        "enrichment failed; storing the type without it, retried on its next sync"
                    );
                    ENRICHMENT_FAILED
                }
            };
            out[i] = Some((c, h, source));
        }
    }

    /// The clusters serving each stored type. The collection holds one record per type (a
    /// few hundred), so it is read whole.
    async fn all_members(&self) -> Result<HashMap<String, Members>, SyncError> {
        let t = Instant::now();
        let count = self.store.count(&self.collection).await?;
        if count == 0 {
            return Ok(HashMap::new());
        }
        let hits = self.store.get(&self.collection, None, count).await?;
        observe_store(&self.metrics, "get", t);
        Ok(hits
            .into_iter()
            .map(|h| (h.id, members_of(&h.metadata)))
            .collect())
    }

    /// Ids of stored types that lack enrichment although it is now on.
    async fn awaiting_enrichment(&self) -> Result<HashSet<String>, SyncError> {
        let t = Instant::now();
        let count = self.store.count(&self.collection).await?;
        if count == 0 {
            return Ok(HashSet::new());
        }
        let filter = Filter::In(
            ENRICHMENT_KEY.into(),
            vec![ENRICHMENT_FAILED.into(), NOT_ENRICHED.into()],
        );
        let hits = self
            .store
            .get(&self.collection, Some(&filter), count)
            .await?;
        observe_store(&self.metrics, "get", t);
        Ok(hits.into_iter().map(|h| h.id).collect())
    }

    /// Every type `cluster` serves, with the content hash of the capability as that
    /// cluster sent it: the answer to `GET /api/v1/capabilities/hashes?cluster=`. While
    /// enrichment is on, a type stored without it answers an empty hash, so that a resync
    /// sends it again to be enriched.
    pub async fn stored_hashes(
        &self,
        cluster: &ClusterId,
    ) -> Result<HashMap<String, String>, SyncError> {
        if let Some(active) = &self.active {
            active.load().await?;
        }
        let now = self.now();
        let mut hashes: HashMap<String, String> = now
            .all_members()
            .await?
            .into_iter()
            .filter_map(|(id, mut members)| Some((id, members.remove(cluster.as_str())?)))
            .collect();
        if self.enricher.is_some() && !hashes.is_empty() {
            for id in now.awaiting_enrichment().await? {
                if let Some(h) = hashes.get_mut(&id) {
                    h.clear();
                }
            }
        }
        Ok(hashes)
    }
}

/// The filterable metadata of a capability document: `kind`, `group`, `plural`,
/// `namespaced` ("true"/"false"), `versions` (comma-joined) and `cw_enrichment`. The
/// store adds `cw_content_hash`.
pub fn to_metadata(c: &Capability, enrichment_source: &str) -> Metadata {
    let mut m = Metadata::new();
    let mut put = |k: &str, v: String| {
        m.insert(k.to_string(), MetaValue::Str(v));
    };
    put("kind", c.kind.clone());
    put("group", c.group.clone());
    put("plural", c.plural.clone());
    put("namespaced", c.namespaced.to_string());
    put("versions", c.versions.join(","));
    put(ENRICHMENT_KEY, enrichment_source.to_string());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_holds_the_keys_search_filters_on() {
        let c: Capability = serde_json::from_value(serde_json::json!({
            "id": "clusters.postgresql.cnpg.io", "kind": "Cluster",
            "group": "postgresql.cnpg.io", "versions": ["v1", "v1beta1"],
            "plural": "clusters", "namespaced": true
        }))
        .unwrap();
        let m = to_metadata(&c, NOT_ENRICHED);
        let s = |k: &str| match m.get(k) {
            Some(MetaValue::Str(s)) => s.clone(),
            other => panic!("{k}: {other:?}"),
        };
        assert_eq!(s("kind"), "Cluster");
        assert_eq!(s("group"), "postgresql.cnpg.io");
        assert_eq!(s("plural"), "clusters");
        assert_eq!(s("namespaced"), "true");
        assert_eq!(s("versions"), "v1,v1beta1");
        assert_eq!(s(ENRICHMENT_KEY), "off");
    }
}
