//! `cw reindex`: builds the next generation beside the active one from what the active one
//! holds (ids, texts, metadata, content hashes), without listing a cluster again, then
//! switches to it with one write of the generation record.
//!
//! - A page of documents at a time is read back from the active collection and written to
//!   the next one: with its stored vector when the model is unchanged (a layout upgrade),
//!   else embedded by the new model once per distinct text (`cw_text_hash`, as a sync reuses
//!   vectors: `crate::pipeline`), a vector the next collection already holds for the same
//!   text being reused.
//! - Resumable: a document the next collection already holds with the same content hash is
//!   skipped, so a run after an interruption embeds only what was not finished.
//! - No lost writes: while the record says a generation is being built, a process that can
//!   embed for its model writes each sync to both generations ([`super::ActiveIndex`]);
//!   before the switch a final pass compares the content hashes of both and fixes every
//!   difference, in this process under the switch turn (no sync writes meanwhile).
//! - Layout upgrade: documents of an index written before cluster ids (plain ids, no
//!   `cluster` metadata) are given the cluster the operator names.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sync_model::ClusterId;

use super::{
    ActiveIndex, Generation, GenerationStore, IndexRecord, LAYOUT_BEFORE_CLUSTERS, LAYOUT_VERSION,
};
use crate::document::{text_hash, text_hash_of, CLUSTER_KEY, TEXT_HASH_KEY};
use crate::embed::{EmbedError, Embedder, InputType, ModelInfo};
use crate::store::{MetaValue, Record, StoreError, VectorStore};

/// Documents read, embedded and written at a time.
pub const DEFAULT_PAGE: usize = 256;
/// Attempts of an embedding call the provider answers as unavailable.
const EMBED_ATTEMPTS: u32 = 6;
/// Attempts of a copy pass the store answers as unavailable.
const STORE_ATTEMPTS: u32 = 6;
/// Final passes before the switch when other processes may still write (each one fixes
/// what changed during the previous).
const FINAL_PASSES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum ReindexError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// Nothing to build: the active generation is made by this model in this layout.
    #[error("{0}")]
    NothingToDo(String),
    /// What the operator must say or do first.
    #[error("{0}")]
    Refused(String),
}

/// What a reindex does besides the default: which cluster documents of an index written
/// before cluster ids belong to.
#[derive(Debug, Clone, Default)]
pub struct ReindexOptions {
    pub legacy_cluster: Option<ClusterId>,
    /// Documents a page (default [`DEFAULT_PAGE`]).
    pub page: Option<usize>,
}

/// A reindex's counts as it goes: what the progress bar, `GET /api/v1/reindex` and the
/// `cw_reindex_*` metrics show.
#[derive(Debug, Default)]
pub struct ReindexProgress {
    phase: Mutex<Phase>,
    error: Mutex<Option<String>>,
    /// The generation being built.
    pub generation: AtomicU32,
    /// Documents of the active generation to carry over.
    pub total: AtomicU64,
    /// Documents carried over (or found carried over already).
    pub done: AtomicU64,
    /// Documents found in the next generation already with the same content hash.
    pub skipped: AtomicU64,
    /// Texts sent to the embedding provider.
    pub embedded: AtomicU64,
    /// Documents given a vector the next generation already held for the same text.
    pub reused: AtomicU64,
    /// Documents written with their stored vector (the model unchanged).
    pub copied: AtomicU64,
    /// Documents fixed by the final comparison (changed during the build).
    pub fixed: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    #[default]
    Idle,
    Building,
    Switching,
    Done,
    Failed,
}

/// [`ReindexProgress`] as `GET /api/v1/reindex` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReindexStatus {
    pub phase: Phase,
    pub generation: u32,
    pub total: u64,
    pub done: u64,
    pub skipped: u64,
    pub embedded: u64,
    pub reused: u64,
    pub copied: u64,
    pub fixed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Shows a reindex's counts as `cw_reindex_*` in `m`.
fn show_in_metrics(m: &crate::metrics::IngestMetrics, status: &ReindexStatus) {
    let counts = [
        ("total", status.total),
        ("done", status.done),
        ("skipped", status.skipped),
        ("embedded", status.embedded),
        ("reused", status.reused),
        ("copied", status.copied),
        ("fixed", status.fixed),
    ];
    for (name, value) in counts {
        m.reindex_documents
            .get_or_create(&[("count", name)])
            .set(value as i64);
    }
    m.reindex_generation.set(i64::from(status.generation));
}

impl ReindexProgress {
    pub fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_phase(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = phase;
    }

    pub fn status(&self) -> ReindexStatus {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ReindexStatus {
            phase: self.phase(),
            generation: self.generation.load(Ordering::Relaxed),
            total: n(&self.total),
            done: n(&self.done),
            skipped: n(&self.skipped),
            embedded: n(&self.embedded),
            reused: n(&self.reused),
            copied: n(&self.copied),
            fixed: n(&self.fixed),
            error: self.error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}

/// What a finished reindex did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReindexOutcome {
    pub from: Generation,
    pub to: Generation,
    pub status: ReindexStatus,
}

/// One reindex of one index to one embedding model.
pub struct Reindex {
    generations: GenerationStore,
    embedder: Arc<dyn Embedder>,
    /// The serving side of this process, when the reindex runs inside it: its syncs are
    /// written to the next generation too, and wait while it switches.
    active: Option<ActiveIndex>,
    options: ReindexOptions,
    progress: Arc<ReindexProgress>,
    metrics: Option<Arc<crate::metrics::IngestMetrics>>,
}

/// Which documents a copy carries: instances are given a cluster when of the old layout.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Instances,
    Capabilities,
}

impl Reindex {
    pub fn new(generations: GenerationStore, embedder: Arc<dyn Embedder>) -> Self {
        Reindex {
            generations,
            embedder,
            active: None,
            options: ReindexOptions::default(),
            progress: Arc::new(ReindexProgress::default()),
            metrics: None,
        }
    }

    /// Shows the counts as `cw_reindex_*` in `metrics` as they go.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::IngestMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn report(&self) {
        if let Some(m) = &self.metrics {
            show_in_metrics(m, &self.progress.status());
        }
    }

    /// Runs inside a serving process: its syncs go to both generations during the build.
    pub fn with_active(mut self, active: ActiveIndex) -> Self {
        self.active = Some(active);
        self
    }

    pub fn with_options(mut self, options: ReindexOptions) -> Self {
        self.options = options;
        self
    }

    /// Counts into `progress` (shared with a status endpoint or a progress bar).
    pub fn with_progress(mut self, progress: Arc<ReindexProgress>) -> Self {
        self.progress = progress;
        self
    }

    pub fn progress(&self) -> &Arc<ReindexProgress> {
        &self.progress
    }

    fn store(&self) -> &dyn VectorStore {
        self.generations.store().as_ref()
    }

    /// Builds the next generation and switches to it.
    pub async fn run(&self) -> Result<ReindexOutcome, ReindexError> {
        let r = self.build_and_switch().await;
        self.report();
        match &r {
            Ok(_) => self.progress.set_phase(Phase::Done),
            Err(e) => {
                *self
                    .progress
                    .error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                self.progress.set_phase(Phase::Failed);
            }
        }
        r
    }

    async fn build_and_switch(&self) -> Result<ReindexOutcome, ReindexError> {
        let model = self.embedder.model_info().await?;
        let mut record = self.generations.read_or_implicit().await?.ok_or_else(|| {
            ReindexError::NothingToDo(
                "the store holds no index yet: nothing to reindex (a first sync builds it)".into(),
            )
        })?;
        let from = record.active.clone();
        if from.made_by(&model) && from.layout == LAYOUT_VERSION {
            return Err(ReindexError::NothingToDo(format!(
                "generation {} is made by {} in the current layout already: nothing to reindex",
                from.number, model.id
            )));
        }
        let legacy = from.layout == LAYOUT_BEFORE_CLUSTERS;
        if legacy && self.options.legacy_cluster.is_none() {
            return Err(ReindexError::Refused(format!(
                "generation {} was written before cluster ids (its documents name no cluster): \
                 say which cluster they belong to with --cluster-for-legacy NAME (the \
                 --cluster-id its watcher will send)",
                from.number
            )));
        }
        let next = self.begin(&mut record, &model).await?;
        self.progress.set_phase(Phase::Building);
        self.progress
            .generation
            .store(next.number, Ordering::Relaxed);
        let base = self.generations.base().clone();
        let pairs = [
            (
                from.instances(&base),
                next.instances(&base),
                Kind::Instances,
            ),
            (
                from.capabilities(&base),
                next.capabilities(&base),
                Kind::Capabilities,
            ),
        ];
        for (src, dst, kind) in &pairs {
            self.copy_retrying(src, dst, *kind, legacy, &model, false)
                .await?;
        }
        self.progress.set_phase(Phase::Switching);
        self.switch(record, &from, &next, &pairs, legacy, &model)
            .await?;
        Ok(ReindexOutcome {
            from,
            to: next,
            status: self.progress.status(),
        })
    }

    /// Records the generation being built (the one an interrupted run left, when it is for
    /// the same model) and lets this process write its syncs to it.
    async fn begin(
        &self,
        record: &mut IndexRecord,
        model: &ModelInfo,
    ) -> Result<Generation, ReindexError> {
        let next = match &record.building {
            Some(b) if b.made_by(model) && b.layout == LAYOUT_VERSION => {
                tracing::info!(generation = b.number, "resuming the build of generation");
                b.clone()
            }
            other => {
                if let Some(abandoned) = other {
                    self.drop_generation(abandoned).await?;
                }
                Generation {
                    number: record.highest() + 1,
                    model: model.id.clone(),
                    dimension: model.dimension,
                    layout: LAYOUT_VERSION,
                }
            }
        };
        record.building = Some(next.clone());
        if let Some(active) = &self.active {
            active.load().await?;
        }
        self.generations.write(record).await?;
        if let Some(active) = &self.active {
            active.add_embedder(&model.id, self.embedder.clone());
            active.apply(record);
        }
        Ok(next)
    }

    /// The final comparison and the switch: one write of the record.
    async fn switch(
        &self,
        mut record: IndexRecord,
        from: &Generation,
        next: &Generation,
        pairs: &[(String, String, Kind)],
        legacy: bool,
        model: &ModelInfo,
    ) -> Result<(), ReindexError> {
        // In a serving process, syncs wait from here to the switch: none can write the old
        // generation after the comparison. Other processes' syncs may: compare until a pass
        // finds nothing to fix.
        let _turn = match &self.active {
            Some(active) => Some(active.switch_turn().await),
            None => None,
        };
        for pass in 0..FINAL_PASSES {
            let mut fixed = 0;
            for (src, dst, kind) in pairs {
                fixed += self
                    .copy_retrying(src, dst, *kind, legacy, model, true)
                    .await?;
            }
            tracing::info!(pass, fixed, "final comparison before the switch");
            if fixed == 0 || self.active.is_some() {
                break;
            }
        }
        // The record as stored now (a concurrent --drop-previous may have changed it).
        if let Some(stored) = self.generations.read().await? {
            record = stored;
        }
        if let Some(older) = record.previous.take() {
            if older.number != next.number {
                self.drop_generation(&older).await?;
            }
        }
        record.previous = Some(from.clone());
        record.active = next.clone();
        record.building = None;
        self.generations.write(&record).await?;
        if let Some(active) = &self.active {
            active.apply(&record);
        }
        tracing::info!(
            from = from.number,
            to = next.number,
            model = %next.model,
            "switched to the new index generation; the previous one is kept until \
             `cw reindex --drop-previous`"
        );
        Ok(())
    }

    /// Removes a generation's collections.
    async fn drop_generation(&self, g: &Generation) -> Result<(), StoreError> {
        let base = self.generations.base();
        tracing::info!(
            generation = g.number,
            "dropping the collections of generation"
        );
        self.store().drop_collection(&g.instances(base)).await?;
        self.store().drop_collection(&g.capabilities(base)).await
    }

    /// [`Reindex::copy`], again from a fresh comparison after a store failure worth
    /// retrying (a copy is idempotent: what was written is found written).
    async fn copy_retrying(
        &self,
        src: &str,
        dst: &str,
        kind: Kind,
        legacy: bool,
        model: &ModelInfo,
        final_pass: bool,
    ) -> Result<u64, ReindexError> {
        // The project's backoff (exponential with jitter), a few attempts.
        let policy = crate::retry::RetryPolicy {
            max_retries: STORE_ATTEMPTS as usize - 1,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            ..crate::retry::RetryPolicy::default()
        };
        let mut waits = backon::BackoffBuilder::build(policy.backoff());
        let p = &self.progress;
        loop {
            // A pass counts its documents anew.
            let counted = [&p.total, &p.skipped, &p.done].map(|c| c.load(Ordering::Relaxed));
            match self.copy(src, dst, kind, legacy, model, final_pass).await {
                Err(ReindexError::Store(e)) if e.is_transient() => {
                    let Some(wait) = waits.next() else {
                        return Err(ReindexError::Store(e));
                    };
                    for (c, n) in [&p.total, &p.skipped, &p.done].into_iter().zip(counted) {
                        c.store(n, Ordering::Relaxed);
                    }
                    tracing::warn!(error = %e, "store unavailable during the reindex; retrying");
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    /// Makes `dst` hold what `src` holds: deletes what `src` no longer has, writes what
    /// differs by content hash (a page at a time). Returns how many documents it wrote or
    /// deleted.
    async fn copy(
        &self,
        src: &str,
        dst: &str,
        kind: Kind,
        legacy: bool,
        model: &ModelInfo,
        final_pass: bool,
    ) -> Result<u64, ReindexError> {
        let store = self.store();
        let source = store.all_hashes(src, None).await?;
        if source.is_empty() && store.count(dst).await? == 0 {
            return Ok(0);
        }
        store.ensure_collection(dst, model).await?;
        let relayout = legacy && kind == Kind::Instances;
        let cluster = self.options.legacy_cluster.as_ref();
        let target_id = |id: &str| match cluster {
            Some(c) if relayout && sync_model::split_stored_id(id).is_none() => c.qualify_str(id),
            _ => id.to_string(),
        };
        let target = store.all_hashes(dst, None).await?;
        let wanted: HashSet<String> = source.keys().map(|id| target_id(id)).collect();
        let gone: Vec<String> = target
            .keys()
            .filter(|id| !wanted.contains(*id))
            .cloned()
            .collect();
        store.delete(dst, &gone).await?;
        let mut todo: Vec<String> = source
            .iter()
            .filter(|(id, hash)| target.get(&target_id(id)) != Some(*hash))
            .map(|(id, _)| id.clone())
            .collect();
        todo.sort();
        if !final_pass {
            let skipped = (source.len() - todo.len()) as u64;
            self.progress
                .total
                .fetch_add(source.len() as u64, Ordering::Relaxed);
            self.progress.skipped.fetch_add(skipped, Ordering::Relaxed);
            self.progress.done.fetch_add(skipped, Ordering::Relaxed);
        }
        let same_model = store.collection_model(src).await?.as_ref() == Some(model);
        let page = self.options.page.unwrap_or(DEFAULT_PAGE).max(1);
        for ids in todo.chunks(page) {
            let mut records = store.records(src, ids).await?;
            if relayout {
                for r in &mut records {
                    to_current_layout(r, cluster);
                }
            }
            if !same_model {
                self.embed(dst, &mut records).await?;
            } else {
                self.progress
                    .copied
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
            }
            store.upsert(dst, &records).await?;
            self.report();
            if final_pass {
                self.progress
                    .fixed
                    .fetch_add(ids.len() as u64, Ordering::Relaxed);
            } else {
                self.progress
                    .done
                    .fetch_add(ids.len() as u64, Ordering::Relaxed);
            }
        }
        Ok((todo.len() + gone.len()) as u64)
    }

    /// Gives each of `records` the new model's vector of its text: one the next collection
    /// holds already for the same text, else embedded, once per distinct text. A text the
    /// provider refuses whatever is retried leaves its document out (logged).
    async fn embed(&self, dst: &str, records: &mut Vec<Record>) -> Result<(), ReindexError> {
        let hashes: Vec<String> = records
            .iter()
            .map(|r| {
                text_hash_of(&r.metadata)
                    .map(str::to_string)
                    .unwrap_or_else(|| text_hash(&r.document))
            })
            .collect();
        let mut distinct: Vec<String> = hashes.clone();
        distinct.sort();
        distinct.dedup();
        let mut vectors: HashMap<String, Vec<f32>> =
            self.store().vectors_by_text(dst, &distinct).await?;
        let mut texts: Vec<String> = Vec::new();
        let mut asked: Vec<String> = Vec::new();
        for (r, h) in records.iter().zip(&hashes) {
            if !vectors.contains_key(h) && !asked.contains(h) {
                asked.push(h.clone());
                texts.push(r.document.clone());
            }
        }
        let reused = records.len() - asked.len();
        self.progress
            .reused
            .fetch_add(reused as u64, Ordering::Relaxed);
        if !texts.is_empty() {
            let results = self.embed_with_retries(&texts).await?;
            self.progress
                .embedded
                .fetch_add(texts.len() as u64, Ordering::Relaxed);
            for (h, result) in asked.into_iter().zip(results) {
                match result {
                    Ok(v) => {
                        vectors.insert(h, v);
                    }
                    Err(refused) => {
                        tracing::warn!(reason = %refused.reason, "a text the new model refuses is left out of the new generation");
                    }
                }
            }
        }
        let mut kept = Vec::with_capacity(records.len());
        for (mut r, h) in std::mem::take(records).into_iter().zip(hashes) {
            if let Some(v) = vectors.get(&h) {
                r.embedding = v.clone();
                kept.push(r);
            }
        }
        *records = kept;
        Ok(())
    }

    async fn embed_with_retries(
        &self,
        texts: &[String],
    ) -> Result<Vec<Result<Vec<f32>, crate::embed::Refused>>, EmbedError> {
        let mut wait = Duration::from_millis(500);
        let mut attempt = 1;
        loop {
            match self.embedder.embed_each(texts, InputType::Document).await {
                Err(e) if e.is_transient() && attempt < EMBED_ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "embedding provider unavailable; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(30));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// A document of the layout before cluster ids in the current one: its id qualified by
/// `cluster`, its `cluster` and `cw_text_hash` metadata added. Text and content hash do not
/// depend on the cluster, so a watcher's next sync finds it unchanged.
fn to_current_layout(r: &mut Record, cluster: Option<&ClusterId>) {
    let Some(cluster) = cluster else { return };
    if sync_model::split_stored_id(&r.id).is_none() {
        r.id = cluster.qualify_str(&r.id);
    }
    r.metadata
        .entry(CLUSTER_KEY.to_string())
        .or_insert_with(|| MetaValue::Str(cluster.to_string()));
    if text_hash_of(&r.metadata).is_none() {
        r.metadata
            .insert(TEXT_HASH_KEY.into(), MetaValue::Str(text_hash(&r.document)));
    }
}

/// `cw reindex --drop-previous`: removes the previous generation's collections; the switch
/// can no longer be undone. Returns the generation dropped.
pub async fn drop_previous(generations: &GenerationStore) -> Result<Generation, ReindexError> {
    let mut record = generations
        .read()
        .await?
        .ok_or_else(|| ReindexError::NothingToDo("no previous generation to drop".into()))?;
    let previous = record
        .previous
        .take()
        .ok_or_else(|| ReindexError::NothingToDo("no previous generation to drop".into()))?;
    // The record first: a reader never finds a generation whose collections are gone.
    generations.write(&record).await?;
    let base = generations.base();
    generations
        .store()
        .drop_collection(&previous.instances(base))
        .await?;
    generations
        .store()
        .drop_collection(&previous.capabilities(base))
        .await?;
    Ok(previous)
}

/// `cw reindex --activate N`: switches back to the previous generation `number` (one
/// write); the generation left becomes the previous one. Syncs made since the switch are in
/// the generation left only: the watchers' next resync brings them back.
pub async fn activate(
    generations: &GenerationStore,
    number: u32,
) -> Result<IndexRecord, ReindexError> {
    let mut record = generations.read().await?.ok_or_else(|| {
        ReindexError::Refused("the store records no generations: nothing to activate".into())
    })?;
    if record.active.number == number {
        return Err(ReindexError::NothingToDo(format!(
            "generation {number} is active already"
        )));
    }
    match record.previous.take() {
        Some(previous) if previous.number == number => {
            let left = std::mem::replace(&mut record.active, previous);
            record.previous = Some(left);
            generations.write(&record).await?;
            Ok(record)
        }
        other => Err(ReindexError::Refused(format!(
            "generation {number} cannot be activated: only the previous generation ({}) is kept",
            other.map_or("none".to_string(), |g| g.number.to_string())
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_before_cluster_ids_is_given_the_named_cluster() {
        let cluster = ClusterId::new("prod").unwrap();
        let mut r = Record {
            id: "default/Deployment/web".into(),
            document: "Deployment web".into(),
            embedding: vec![1.0],
            metadata: Default::default(),
            content_hash: "h".into(),
        };
        to_current_layout(&mut r, Some(&cluster));
        assert_eq!(r.id, cluster.qualify_str("default/Deployment/web"));
        assert_eq!(
            r.metadata.get(CLUSTER_KEY),
            Some(&MetaValue::Str("prod".into()))
        );
        assert_eq!(
            text_hash_of(&r.metadata),
            Some(text_hash("Deployment web").as_str())
        );
        assert_eq!(
            r.content_hash, "h",
            "the content hash does not depend on the cluster"
        );
    }
}
