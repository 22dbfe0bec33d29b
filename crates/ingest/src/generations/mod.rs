//! Index generations: which collections serve, made by which embedding model in which layout.
//! A generation is a number, its collections (generation 1 keeps the configured names, so a
//! store made before generations is generation 1 with no data moved; generation N uses
//! `<name>-gN`), the model id and dimension that made its vectors and the layout version of
//! its documents. `cw reindex` ([`reindex`]) builds the next generation beside the active one
//! and switches to it with one store write.
//!
//! Layout: one record in a collection beside the instances, [`generations_collection`]
//! (`instances-generations` for `instances`), id `state`, its document the [`IndexRecord`]
//! as JSON: the active generation, the one being built and the previous one (kept until
//! `cw reindex --drop-previous`, so that a switch can be undone). Like the cluster records
//! (`crate::clusters`), it carries a one-dimensional vector that nothing searches. The side
//! collections without model vectors (clusters, parked, access, this one) are not per
//! generation.
//!
//! Each process holds the active generation as an [`ActiveIndex`]: a snapshot (`Arc`)
//! swapped on a switch, that each sync and each read takes once, so that none mixes two
//! generations; replicas read the record again every [`REFRESH_INTERVAL`].

pub mod reindex;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::embed::{Embedder, ModelInfo};
use crate::store::{MetaValue, Record, StoreError, VectorStore};

/// The layout of documents written before cluster ids: plain ids, no `cluster` metadata.
pub const LAYOUT_BEFORE_CLUSTERS: u32 = 1;
/// The layout this cw writes: cluster-qualified ids, `cluster` and `cw_text_hash` metadata.
pub const LAYOUT_VERSION: u32 = 2;
/// How often a process reads the record for a switch made elsewhere (as the access rules).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(2);
/// The "model" of the record's collection: it holds no embeddings.
const GENERATIONS_MODEL_ID: &str = "cw:index-generations";
const RECORD_VECTOR: [f32; 1] = [1.0];
/// The id of the one record.
const STATE_ID: &str = "state";

/// The collection of the generation record of the index whose instances are in `instances`.
pub fn generations_collection(instances: &str) -> String {
    format!("{instances}-generations")
}

/// The name of collection `base` in generation `number`: `base` itself for generation 1.
pub fn collection_of(base: &str, number: u32) -> String {
    if number <= 1 {
        base.to_string()
    } else {
        format!("{base}-g{number}")
    }
}

/// The configured (generation 1) names of the collections that hold model vectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseNames {
    pub instances: String,
    pub capabilities: String,
}

/// One generation of the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    pub number: u32,
    /// The embedding model id (`voyage:voyage-3.5`) that made its vectors.
    pub model: String,
    pub dimension: usize,
    /// [`LAYOUT_VERSION`] of its documents.
    pub layout: u32,
}

impl Generation {
    pub fn model_info(&self) -> ModelInfo {
        ModelInfo {
            id: self.model.clone(),
            dimension: self.dimension,
        }
    }

    pub fn instances(&self, base: &BaseNames) -> String {
        collection_of(&base.instances, self.number)
    }

    pub fn capabilities(&self, base: &BaseNames) -> String {
        collection_of(&base.capabilities, self.number)
    }

    /// Whether `model` made (or would make) this generation's vectors.
    pub fn made_by(&self, model: &ModelInfo) -> bool {
        self.model == model.id && self.dimension == model.dimension
    }
}

/// What the store records of its generations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRecord {
    pub active: Generation,
    /// Being built by `cw reindex` (syncs are written to it too where the process can
    /// embed for its model).
    #[serde(default)]
    pub building: Option<Generation>,
    /// The generation active before the last switch, until dropped.
    #[serde(default)]
    pub previous: Option<Generation>,
}

impl IndexRecord {
    /// The highest generation number the record knows.
    pub fn highest(&self) -> u32 {
        [
            Some(&self.active),
            self.building.as_ref(),
            self.previous.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|g| g.number)
        .max()
        .unwrap_or(1)
    }
}

/// Reads and writes the generation record of one index.
#[derive(Clone)]
pub struct GenerationStore {
    store: Arc<dyn VectorStore>,
    base: BaseNames,
    collection: String,
    prepared: Arc<AtomicBool>,
}

fn record_model() -> ModelInfo {
    ModelInfo {
        id: GENERATIONS_MODEL_ID.into(),
        dimension: RECORD_VECTOR.len(),
    }
}

impl GenerationStore {
    pub fn new(store: Arc<dyn VectorStore>, base: BaseNames) -> Self {
        GenerationStore {
            collection: generations_collection(&base.instances),
            store,
            base,
            prepared: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn store(&self) -> &Arc<dyn VectorStore> {
        &self.store
    }

    pub fn base(&self) -> &BaseNames {
        &self.base
    }

    /// The stored record, `None` when none was written (a store made before generations,
    /// or an empty one).
    pub async fn read(&self) -> Result<Option<IndexRecord>, StoreError> {
        let found = self
            .store
            .records(&self.collection, &[STATE_ID.to_string()])
            .await?;
        let Some(record) = found.into_iter().find(|r| r.id == STATE_ID) else {
            return Ok(None);
        };
        serde_json::from_str(&record.document)
            .map(Some)
            .map_err(|e| {
                StoreError::Rejected(format!(
                    "the generation record in {:?} cannot be read ({e}); it was written by \
                     another cw version",
                    self.collection
                ))
            })
    }

    /// The stored record, or that of an index made before generations: generation 1 with
    /// the model its instances collection records and the layout its documents show.
    /// `None` when the store holds no index.
    pub async fn read_or_implicit(&self) -> Result<Option<IndexRecord>, StoreError> {
        if let Some(record) = self.read().await? {
            return Ok(Some(record));
        }
        let Some(model) = self.store.collection_model(&self.base.instances).await? else {
            return Ok(None);
        };
        let layout = self.layout_of(&self.base.instances).await?;
        Ok(Some(IndexRecord {
            active: Generation {
                number: 1,
                model: model.id,
                dimension: model.dimension,
                layout,
            },
            building: None,
            previous: None,
        }))
    }

    /// Where a one-off reader (`cw search`, `cw mcp` on the local index) reads with
    /// `embedder`: the active generation's collections.
    pub async fn active_snapshot(
        &self,
        embedder: Arc<dyn Embedder>,
    ) -> Result<Snapshot, StoreError> {
        let number = self.read().await?.map_or(1, |r| r.active.number);
        Ok(Snapshot {
            number,
            instances: collection_of(&self.base.instances, number),
            capabilities: collection_of(&self.base.capabilities, number),
            embedder,
        })
    }

    /// [`LAYOUT_BEFORE_CLUSTERS`] when some document of `collection` has no `cluster`.
    async fn layout_of(&self, collection: &str) -> Result<u32, StoreError> {
        let tally = self
            .store
            .tally(collection, None, &[crate::document::CLUSTER_KEY])
            .await?;
        Ok(
            if tally.keys().any(|k| k.first().is_some_and(Option::is_none)) {
                LAYOUT_BEFORE_CLUSTERS
            } else {
                LAYOUT_VERSION
            },
        )
    }

    /// Writes `record`: one store write, which is what a switch is.
    pub async fn write(&self, record: &IndexRecord) -> Result<(), StoreError> {
        if !self.prepared.load(Ordering::Relaxed) {
            self.store
                .ensure_collection(&self.collection, &record_model())
                .await?;
            self.prepared.store(true, Ordering::Relaxed);
        }
        let document = serde_json::to_string(record).map_err(|e| {
            StoreError::Rejected(format!("the generation record cannot be written: {e}"))
        })?;
        let mut metadata = crate::store::Metadata::new();
        metadata.insert(
            "cw_active".into(),
            MetaValue::Int(i64::from(record.active.number)),
        );
        let r = self
            .store
            .upsert(
                &self.collection,
                &[Record {
                    id: STATE_ID.into(),
                    content_hash: crate::document::text_hash(&document),
                    document,
                    embedding: RECORD_VECTOR.to_vec(),
                    metadata,
                }],
            )
            .await;
        if r.is_err() {
            self.prepared.store(false, Ordering::Relaxed);
        }
        r
    }
}

/// A store made by another embedding model than this process's: what start-up refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the index (generation {number}, collection {collection:?}) holds vectors of model {stored} \
     ({stored_dimension} dimensions), but this process embeds with {wanted} ({wanted_dimension} \
     dimensions); vectors of different models cannot be compared. Build the index for {wanted} \
     beside the active one with `cw reindex` (the same store and embedding flags as this \
     command; searches keep being answered meanwhile), or configure {stored} again"
)]
pub struct ModelChanged {
    pub number: u32,
    pub collection: String,
    pub stored: String,
    pub stored_dimension: usize,
    pub wanted: String,
    pub wanted_dimension: usize,
}

/// The start-up check of every command that serves or writes: the active generation must
/// have been made by `model`, whatever the dimensions. Ok for a store without an index.
pub async fn check_model(
    generations: &GenerationStore,
    model: &ModelInfo,
) -> Result<Result<(), ModelChanged>, StoreError> {
    let Some(record) = generations.read_or_implicit().await? else {
        return Ok(Ok(()));
    };
    let active = &record.active;
    if active.made_by(model) {
        return Ok(Ok(()));
    }
    if record.building.as_ref().is_some_and(|b| b.made_by(model)) {
        // A server of the new model started during the build: it answers 503 (its
        // `/readyz` too) until the switch, then serves.
        tracing::info!(
            active = active.number,
            model = %model.id,
            "the index for this model is being built; serving once it is switched to"
        );
        return Ok(Ok(()));
    }
    Ok(Err(ModelChanged {
        number: active.number,
        collection: active.instances(generations.base()),
        stored: active.model.clone(),
        stored_dimension: active.dimension,
        wanted: model.id.clone(),
        wanted_dimension: model.dimension,
    }))
}

/// Where one sync or one read goes: the collections of one generation and the embedder of
/// its model.
#[derive(Clone)]
pub struct Snapshot {
    pub number: u32,
    pub instances: String,
    pub capabilities: String,
    pub embedder: Arc<dyn Embedder>,
}

/// The active generation as one process uses it. Cheap to clone.
#[derive(Clone)]
pub struct ActiveIndex {
    inner: Arc<ActiveInner>,
}

struct ActiveInner {
    generations: GenerationStore,
    current: RwLock<Arc<Snapshot>>,
    /// The generation being built, where this process can embed for its model: syncs are
    /// written to it too.
    building: RwLock<Option<Arc<Snapshot>>>,
    /// Syncs hold it shared while they write; a switch made in this process takes it alone,
    /// so that no sync writes the old generation after the final comparison.
    turn: tokio::sync::RwLock<()>,
    /// The embedders of the models this process can embed with, by model id.
    embedders: Mutex<HashMap<String, Arc<dyn Embedder>>>,
    /// Set when the store switched to a generation of a model this process cannot embed
    /// with: it keeps the snapshot it had, and is no longer ready.
    stranded: Mutex<Option<String>>,
    /// The process's own embedder, registered under its model id and the record read, once
    /// before the first sync or read ([`ActiveIndex::load`]).
    own: Arc<dyn Embedder>,
    loaded: tokio::sync::OnceCell<()>,
}

impl ActiveIndex {
    /// Generation 1 (the configured collections) with `embedder` (this process's model)
    /// until [`ActiveIndex::load`] reads the record, which the first sync does.
    pub fn new(generations: GenerationStore, embedder: Arc<dyn Embedder>) -> Self {
        let base = generations.base().clone();
        let snapshot = Snapshot {
            number: 1,
            instances: base.instances,
            capabilities: base.capabilities,
            embedder: embedder.clone(),
        };
        ActiveIndex {
            inner: Arc::new(ActiveInner {
                generations,
                current: RwLock::new(Arc::new(snapshot)),
                building: RwLock::new(None),
                turn: tokio::sync::RwLock::new(()),
                embedders: Mutex::new(HashMap::new()),
                stranded: Mutex::new(None),
                own: embedder,
                loaded: tokio::sync::OnceCell::new(),
            }),
        }
    }

    /// [`ActiveIndex::new`] and [`ActiveIndex::load`].
    pub async fn open(
        generations: GenerationStore,
        embedder: Arc<dyn Embedder>,
    ) -> Result<Self, StoreError> {
        let active = ActiveIndex::new(generations, embedder);
        active.load().await?;
        Ok(active)
    }

    /// Once: registers this process's embedder under its model id and reads the record. A
    /// provider that cannot say its model now is taken for the active generation's (the
    /// start-up check compares them when it can).
    pub async fn load(&self) -> Result<(), StoreError> {
        self.inner
            .loaded
            .get_or_try_init(|| async {
                let record = self.inner.generations.read().await?;
                let model = match self.inner.own.model_info().await {
                    Ok(m) => m.id,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot ask the embedding provider for its model; taking it for the active generation's");
                        record.as_ref().map(|r| r.active.model.clone()).unwrap_or_default()
                    }
                };
                self.add_embedder(&model, self.inner.own.clone());
                if let Some(record) = record {
                    self.apply(&record);
                }
                Ok::<(), StoreError>(())
            })
            .await
            .map(|_| ())
    }

    pub fn generations(&self) -> &GenerationStore {
        &self.inner.generations
    }

    /// The snapshot a sync or a read uses from start to end.
    pub fn current(&self) -> Arc<Snapshot> {
        self.inner
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The generation being built, when this process writes syncs to it too.
    pub fn building(&self) -> Option<Arc<Snapshot>> {
        self.inner
            .building
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Held shared by a sync while it writes (see [`ActiveIndex::switch_turn`]); the record
    /// is read first if it never was.
    pub async fn sync_turn(&self) -> Result<tokio::sync::RwLockReadGuard<'_, ()>, StoreError> {
        self.load().await?;
        Ok(self.inner.turn.read().await)
    }

    /// Held alone by a switch made in this process: no sync writes meanwhile.
    pub async fn switch_turn(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.inner.turn.write().await
    }

    /// Why this process cannot serve the active generation (a switch to a model it cannot
    /// embed with), if so: `/readyz` answers 503 with it.
    pub fn stranded(&self) -> Option<String> {
        self.inner
            .stranded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Lets this process embed for `model` (a reindex running in it).
    pub fn add_embedder(&self, model: &str, embedder: Arc<dyn Embedder>) {
        self.inner
            .embedders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(model.to_string(), embedder);
    }

    fn snapshot_of(&self, g: &Generation) -> Option<Snapshot> {
        let embedder = self
            .inner
            .embedders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&g.model)
            .cloned()?;
        let base = self.inner.generations.base();
        Some(Snapshot {
            number: g.number,
            instances: g.instances(base),
            capabilities: g.capabilities(base),
            embedder,
        })
    }

    /// Takes `record` as the truth: its active generation (when this process can embed for
    /// it) and the one being built.
    pub fn apply(&self, record: &IndexRecord) {
        match self.snapshot_of(&record.active) {
            Some(snapshot) => {
                let mut current = self
                    .inner
                    .current
                    .write()
                    .unwrap_or_else(|p| p.into_inner());
                if current.number != snapshot.number {
                    tracing::info!(
                        generation = snapshot.number,
                        instances = %snapshot.instances,
                        model = %record.active.model,
                        "serving index generation"
                    );
                }
                *current = Arc::new(snapshot);
                *self
                    .inner
                    .stranded
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = None;
            }
            None => {
                let why = format!(
                    "the active index generation {} was made by model {}, which this process \
                     does not embed with: restart it with that model's settings (or wait for \
                     the switch to the generation being built for its model)",
                    record.active.number, record.active.model
                );
                let mut stranded = self
                    .inner
                    .stranded
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if stranded.as_deref() != Some(why.as_str()) {
                    tracing::error!("{why}");
                }
                // The active generation's collections, with an embedder that refuses: reads
                // that need no vector are right, the others and every sync answer 503 with
                // the reason, and none compares vectors of two models.
                let base = self.inner.generations.base();
                *self
                    .inner
                    .current
                    .write()
                    .unwrap_or_else(|p| p.into_inner()) = Arc::new(Snapshot {
                    number: record.active.number,
                    instances: record.active.instances(base),
                    capabilities: record.active.capabilities(base),
                    embedder: Arc::new(Refusing(why.clone())),
                });
                *stranded = Some(why);
            }
        }
        let building = record
            .building
            .as_ref()
            .and_then(|g| self.snapshot_of(g))
            .map(Arc::new);
        *self
            .inner
            .building
            .write()
            .unwrap_or_else(|p| p.into_inner()) = building;
    }

    /// Reads the record and takes it (nothing changes while none is stored).
    pub async fn refresh(&self) -> Result<(), StoreError> {
        if let Some(record) = self.inner.generations.read().await? {
            self.apply(&record);
        }
        Ok(())
    }

    /// Refreshes every [`REFRESH_INTERVAL`] until `shutdown` resolves.
    pub async fn keep_fresh(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(REFRESH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tick.tick() => {
                    if let Err(e) = self.refresh().await {
                        tracing::warn!(error = %e, "could not read the index generation record; keeping the generation held");
                    }
                }
            }
        }
    }
}

/// The embedder of a generation this process cannot embed for: every call is refused as
/// unavailable, naming why.
struct Refusing(String);

#[async_trait::async_trait]
impl Embedder for Refusing {
    async fn model_info(&self) -> Result<ModelInfo, crate::embed::EmbedError> {
        Err(crate::embed::EmbedError::Transient(self.0.clone()))
    }

    async fn embed(
        &self,
        _: &[String],
        _: crate::embed::InputType,
    ) -> Result<Vec<Vec<f32>>, crate::embed::EmbedError> {
        Err(crate::embed::EmbedError::Transient(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generation(number: u32) -> Generation {
        Generation {
            number,
            model: "local:all-MiniLM-L6-v2".into(),
            dimension: 384,
            layout: LAYOUT_VERSION,
        }
    }

    #[test]
    fn generation_one_keeps_the_configured_names_and_later_ones_are_suffixed() {
        let base = BaseNames {
            instances: "instances".into(),
            capabilities: "capabilities".into(),
        };
        assert_eq!(generation(1).instances(&base), "instances");
        assert_eq!(generation(1).capabilities(&base), "capabilities");
        assert_eq!(generation(3).instances(&base), "instances-g3");
        assert_eq!(generation(3).capabilities(&base), "capabilities-g3");
        assert_eq!(generations_collection("instances"), "instances-generations");
    }

    #[test]
    fn a_model_of_another_id_but_the_same_dimension_is_another_model() {
        let g = generation(1);
        assert!(g.made_by(&ModelInfo {
            id: "local:all-MiniLM-L6-v2".into(),
            dimension: 384
        }));
        assert!(!g.made_by(&ModelInfo {
            id: "openai:all-minilm".into(),
            dimension: 384
        }));
    }

    #[test]
    fn the_model_change_error_names_both_models_and_the_command() {
        let e = ModelChanged {
            number: 1,
            collection: "instances".into(),
            stored: "voyage:voyage-3.5".into(),
            stored_dimension: 1024,
            wanted: "voyage:voyage-3-large".into(),
            wanted_dimension: 1024,
        }
        .to_string();
        assert!(e.contains("voyage:voyage-3.5 (1024 dimensions)"), "{e}");
        assert!(e.contains("voyage:voyage-3-large (1024 dimensions)"), "{e}");
        assert!(e.contains("`cw reindex`"), "{e}");
    }

    #[test]
    fn the_record_reads_back_and_knows_its_highest_generation() {
        let record = IndexRecord {
            active: generation(2),
            building: Some(generation(3)),
            previous: Some(generation(1)),
        };
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(serde_json::from_str::<IndexRecord>(&json).unwrap(), record);
        assert_eq!(record.highest(), 3);
    }
}
