//! Index generations and `cw reindex` (ingest::generations) on real stores: the embedded
//! store, and Chroma (the Qdrant test server when run as reindex_qdrant). The embedding
//! models are stand-ins in this process, each with its own id, dimension and vectors (a
//! hashed bag of words salted by the model), counting the texts they embed, so that a test
//! can tell one model's vectors from another's.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{install_crypto, instance, StoreServer};
use ingest::document::{to_document, CLUSTER_KEY, TEXT_HASH_KEY};
use ingest::embed::{EmbedError, Embedder, InputType, ModelInfo};
use ingest::generations::reindex::{self, Reindex, ReindexError, ReindexOptions};
use ingest::generations::{check_model, ActiveIndex, BaseNames, GenerationStore, LAYOUT_VERSION};
use ingest::pipeline::Pipeline;
use ingest::store::embedded::EmbeddedStore;
use ingest::store::{Record, VectorStore};
use serde_json::{json, Value};
use sync_model::{ClusterId, ResourceInstance, SyncPayload};

const INSTANCES: &str = "instances";
const CAPABILITIES: &str = "capabilities";
const CLUSTER: &str = "prod";

/// A stand-in embedding model: vectors are a hashed bag of words salted by the model id,
/// normalised (Qdrant keeps cosine vectors normalised), so each model's vector of a text is
/// its own. Counts the texts it embeds; can be told to fail after a number of them.
struct StandIn {
    id: String,
    dimension: usize,
    inputs: AtomicUsize,
    /// Fails every call once this many texts were embedded (an interrupted run).
    fail_after: Option<usize>,
}

impl StandIn {
    fn new(id: &str, dimension: usize) -> Arc<StandIn> {
        Arc::new(StandIn {
            id: id.into(),
            dimension,
            inputs: AtomicUsize::new(0),
            fail_after: None,
        })
    }

    fn failing_after(id: &str, dimension: usize, n: usize) -> Arc<StandIn> {
        Arc::new(StandIn {
            id: id.into(),
            dimension,
            inputs: AtomicUsize::new(0),
            fail_after: Some(n),
        })
    }

    fn info(&self) -> ModelInfo {
        ModelInfo {
            id: self.id.clone(),
            dimension: self.dimension,
        }
    }

    fn inputs(&self) -> usize {
        self.inputs.load(Ordering::SeqCst)
    }

    fn vector(&self, text: &str) -> Vec<f32> {
        use std::hash::{Hash, Hasher};
        let mut v = vec![0f32; self.dimension];
        for word in text.split_whitespace().chain([self.id.as_str()]) {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (&self.id, word).hash(&mut h);
            let x = h.finish();
            v[(x % self.dimension as u64) as usize] += 1.0 + (x >> 60) as f32;
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        v.iter().map(|x| x / norm).collect()
    }
}

#[async_trait]
impl Embedder for StandIn {
    async fn model_info(&self) -> Result<ModelInfo, EmbedError> {
        Ok(self.info())
    }

    async fn embed(&self, texts: &[String], _: InputType) -> Result<Vec<Vec<f32>>, EmbedError> {
        if let Some(n) = self.fail_after {
            if self.inputs() >= n {
                return Err(EmbedError::Permanent("the stand-in was stopped".into()));
            }
        }
        self.inputs.fetch_add(texts.len(), Ordering::SeqCst);
        Ok(texts.iter().map(|t| self.vector(t)).collect())
    }
}

/// The store of one test: the embedded store in a temporary directory, or a client of this
/// binary's store server (Chroma, or Qdrant for reindex_qdrant).
struct TestStore {
    store: Arc<dyn VectorStore>,
    _dir: Option<tempfile::TempDir>,
    _server: Option<StoreServer>,
}

fn open(embedded: bool) -> TestStore {
    install_crypto();
    if embedded {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open_in_dir(dir.path()).expect("open the embedded store");
        TestStore {
            store: Arc::new(store),
            _dir: Some(dir),
            _server: None,
        }
    } else {
        let server = StoreServer::start_for_this_binary();
        TestStore {
            store: Arc::from(server.client()),
            _dir: None,
            _server: Some(server),
        }
    }
}

fn generations(store: &Arc<dyn VectorStore>) -> GenerationStore {
    GenerationStore::new(
        store.clone(),
        BaseNames {
            instances: INSTANCES.into(),
            capabilities: CAPABILITIES.into(),
        },
    )
}

/// A pipeline following the store's generations, embedding with `model`.
fn pipeline(store: &Arc<dyn VectorStore>, model: Arc<StandIn>) -> (Pipeline, ActiveIndex) {
    let active = ActiveIndex::new(generations(store), model.clone());
    let p = Pipeline::new(store.clone(), model, INSTANCES).with_active(active.clone());
    (p, active)
}

fn deployment(i: usize, version: usize) -> Value {
    instance(
        &format!("team-{}", i % 7),
        "Deployment",
        &format!("app-{i}"),
        json!({"app": format!("app-{i}"), "release": format!("r{version}")}),
    )
}

fn payload(upserts: Vec<Value>, deletes: Vec<String>) -> SyncPayload {
    serde_json::from_value(json!({"upserts": upserts, "deletes": deletes, "cluster": CLUSTER}))
        .expect("a valid payload")
}

fn parsed(v: &Value) -> ResourceInstance {
    serde_json::from_value(v.clone()).expect("a valid instance")
}

/// `n` deployments synced on `p`, 500 a sync.
async fn seed(p: &Pipeline, n: usize) -> HashMap<String, ResourceInstance> {
    let all: Vec<Value> = (0..n).map(|i| deployment(i, 0)).collect();
    for chunk in all.chunks(500) {
        p.apply_sync(payload(chunk.to_vec(), vec![]))
            .await
            .expect("seed sync");
    }
    all.iter()
        .map(|v| {
            let i = parsed(v);
            (i.id.to_string(), i)
        })
        .collect()
}

/// The stored (cluster-qualified) ids and content hashes `expected` makes.
fn hashes_of(expected: &HashMap<String, ResourceInstance>) -> HashMap<String, String> {
    let cluster = ClusterId::new(CLUSTER).unwrap();
    expected
        .values()
        .map(|i| (cluster.qualify(&i.id), i.content_hash()))
        .collect()
}

async fn check_model_change_is_refused_at_start(embedded: bool) {
    let t = open(embedded);
    let a = StandIn::new("standin:model-a", 48);
    let (p, _) = pipeline(&t.store, a.clone());
    seed(&p, 20).await;
    let g = generations(&t.store);
    assert_eq!(check_model(&g, &a.info()).await.unwrap(), Ok(()));
    let same_dimension = StandIn::new("standin:model-b", 48);
    let changed = check_model(&g, &same_dimension.info())
        .await
        .unwrap()
        .expect_err("another model id of the same dimension is another model");
    let message = changed.to_string();
    assert!(
        message.contains("standin:model-a (48 dimensions)"),
        "{message}"
    );
    assert!(
        message.contains("standin:model-b (48 dimensions)"),
        "{message}"
    );
    assert!(message.contains("`cw reindex`"), "{message}");
    let other_dimension = StandIn::new("standin:model-c", 24);
    assert!(check_model(&g, &other_dimension.info())
        .await
        .unwrap()
        .is_err());
}

#[tokio::test]
async fn a_model_of_another_id_is_refused_at_start_on_the_embedded_store() {
    check_model_change_is_refused_at_start(true).await;
}

#[tokio::test]
async fn a_model_of_another_id_is_refused_at_start_on_the_store_server() {
    check_model_change_is_refused_at_start(false).await;
}

/// 2,000 documents on model A, reindexed to `b` while a writer sends upserts and deletes
/// and a reader searches: no read fails, the new generation equals what the writer last
/// sent, every vector is b's, the previous generation stays until dropped.
async fn reindex_under_load(embedded: bool, b: Arc<StandIn>) {
    let t = open(embedded);
    let a = StandIn::new("standin:model-a", 48);
    let (p, active) = pipeline(&t.store, a.clone());
    let mut expected = seed(&p, 2_000).await;
    let stop = Arc::new(AtomicBool::new(false));

    let reader = {
        let (active, store, stop) = (active.clone(), t.store.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut reads, mut failed) = (0usize, 0usize);
            while !stop.load(Ordering::SeqCst) {
                // One generation for the whole read: its collection and its model.
                let now = active.current();
                let question = now
                    .embedder
                    .embed(&["app-7 team-3 Deployment".to_string()], InputType::Query)
                    .await;
                let hits = match question {
                    Ok(v) => store.query(&now.instances, &v[0], None, 5).await,
                    Err(e) => Err(ingest::store::StoreError::Rejected(e.to_string())),
                };
                reads += 1;
                if !matches!(&hits, Ok(h) if !h.is_empty()) {
                    failed += 1;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (reads, failed)
        })
    };
    let writer = {
        let (p, stop) = (p.clone(), stop.clone());
        tokio::spawn(async move {
            let mut sent: HashMap<String, Option<ResourceInstance>> = HashMap::new();
            let mut round = 1;
            while !stop.load(Ordering::SeqCst) {
                let changed: Vec<Value> = (0..5)
                    .map(|k| deployment((round * 37 + k * 11) % 2_000, round))
                    .collect();
                let gone = parsed(&deployment((round * 53) % 2_000, 0)).id.to_string();
                let upserts: Vec<Value> = changed
                    .into_iter()
                    .filter(|v| parsed(v).id.as_str() != gone)
                    .collect();
                p.apply_sync(payload(upserts.clone(), vec![gone.clone()]))
                    .await
                    .expect("a sync during the reindex");
                sent.insert(gone, None);
                for u in &upserts {
                    let i = parsed(u);
                    sent.insert(i.id.to_string(), Some(i));
                }
                round += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (sent, round)
        })
    };

    let done = Reindex::new(generations(&t.store), b.clone())
        .with_active(active.clone())
        .with_options(ReindexOptions {
            page: Some(200),
            ..Default::default()
        })
        .run()
        .await
        .expect("the reindex");
    // Some writes after the switch too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let (sent, rounds) = writer.await.unwrap();
    let (reads, failed) = reader.await.unwrap();
    assert!(
        rounds > 3,
        "the writer wrote during the reindex ({rounds} rounds)"
    );
    assert!(
        reads > 10,
        "the reader read during the reindex ({reads} reads)"
    );
    assert_eq!(failed, 0, "{failed} of {reads} reads failed");
    for (id, last) in sent {
        match last {
            Some(i) => expected.insert(id, i),
            None => expected.remove(&id),
        };
    }

    assert_eq!(done.from.number, 1);
    assert_eq!(done.to.number, 2);
    let record = generations(&t.store)
        .read()
        .await
        .unwrap()
        .expect("a record");
    assert_eq!(record.active.model, b.info().id);
    assert_eq!(record.active.dimension, b.info().dimension);
    assert_eq!(record.active.layout, LAYOUT_VERSION);
    assert_eq!(active.current().instances, "instances-g2");

    let next = "instances-g2";
    let stored = t.store.all_hashes(next, None).await.unwrap();
    assert_eq!(stored.len(), expected.len());
    assert!(
        stored == hashes_of(&expected),
        "the new generation differs from what the writer last sent"
    );
    let ids: Vec<String> = stored.keys().cloned().collect();
    let records: Vec<Record> = t.store.records(next, &ids).await.unwrap();
    assert_eq!(records.len(), ids.len());
    for r in &records {
        let want = b.vector(&r.document);
        let close = r.embedding.len() == want.len()
            && r.embedding
                .iter()
                .zip(&want)
                .all(|(x, y)| (x - y).abs() < 1e-4);
        assert!(close, "{} holds a vector that is not model b's", r.id);
    }
    assert!(
        b.inputs() as u64 >= done.status.embedded,
        "the writer's syncs during the build are embedded by b too"
    );

    // The previous generation is kept, and the start check follows the switch.
    assert!(t.store.count(INSTANCES).await.unwrap() > 0);
    let g = generations(&t.store);
    assert_eq!(check_model(&g, &b.info()).await.unwrap(), Ok(()));
    assert!(check_model(&g, &a.info()).await.unwrap().is_err());
    let dropped = reindex::drop_previous(&g).await.unwrap();
    assert_eq!(dropped.number, 1);
    assert_eq!(t.store.count(INSTANCES).await.unwrap(), 0);
    assert!(t.store.collection_model(INSTANCES).await.unwrap().is_none());
    assert_eq!(t.store.count(next).await.unwrap(), expected.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reindex_to_a_model_of_the_same_dimension_under_load_on_the_embedded_store() {
    reindex_under_load(true, StandIn::new("standin:model-b", 48)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reindex_to_a_model_of_another_dimension_under_load_on_the_embedded_store() {
    reindex_under_load(true, StandIn::new("standin:model-c", 24)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reindex_to_a_model_of_the_same_dimension_under_load_on_the_store_server() {
    reindex_under_load(false, StandIn::new("standin:model-b", 48)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reindex_to_a_model_of_another_dimension_under_load_on_the_store_server() {
    reindex_under_load(false, StandIn::new("standin:model-c", 24)).await;
}

/// A run stopped halfway (the provider fails) leaves its part of the next generation; the
/// next run embeds only the rest.
async fn interrupted_reindex_resumes(embedded: bool) {
    let t = open(embedded);
    let a = StandIn::new("standin:model-a", 48);
    let (p, _) = pipeline(&t.store, a);
    seed(&p, 600).await;
    let stopped = StandIn::failing_after("standin:model-b", 48, 250);
    let first = Reindex::new(generations(&t.store), stopped.clone())
        .with_options(ReindexOptions {
            page: Some(100),
            ..Default::default()
        })
        .run()
        .await;
    assert!(matches!(first, Err(ReindexError::Embed(_))), "{first:?}");
    let finished = stopped.inputs();
    assert!(
        (250..600).contains(&finished),
        "{finished} embedded before the stop"
    );
    let record = generations(&t.store).read().await.unwrap().unwrap();
    assert_eq!(record.active.number, 1, "nothing switched");
    assert_eq!(record.building.as_ref().map(|g| g.number), Some(2));

    let b = StandIn::new("standin:model-b", 48);
    let done = Reindex::new(generations(&t.store), b.clone())
        .with_options(ReindexOptions {
            page: Some(100),
            ..Default::default()
        })
        .run()
        .await
        .expect("the resumed reindex");
    assert_eq!(done.to.number, 2, "the interrupted generation is resumed");
    assert_eq!(
        b.inputs(),
        600 - finished,
        "only what the first run did not finish is embedded"
    );
    assert_eq!(done.status.skipped as usize, finished);
    assert_eq!(t.store.count("instances-g2").await.unwrap(), 600);
}

#[tokio::test]
async fn an_interrupted_reindex_resumes_without_embedding_the_finished_part_on_the_embedded_store()
{
    interrupted_reindex_resumes(true).await;
}

#[tokio::test]
async fn an_interrupted_reindex_resumes_without_embedding_the_finished_part_on_the_store_server() {
    interrupted_reindex_resumes(false).await;
}

/// Writes `instances` as a cw before cluster ids did: plain ids, no `cluster` and no
/// `cw_text_hash` metadata, the same text and content hash (the fixture of that layout).
async fn write_pre_cluster_index(
    store: &Arc<dyn VectorStore>,
    model: &StandIn,
    instances: &[ResourceInstance],
) {
    store
        .ensure_collection(INSTANCES, &model.info())
        .await
        .unwrap();
    let cluster = ClusterId::new("ignored").unwrap();
    let records: Vec<Record> = instances
        .iter()
        .map(|i| {
            let mut d = to_document(i, &cluster);
            d.metadata.remove(CLUSTER_KEY);
            d.metadata.remove(TEXT_HASH_KEY);
            Record {
                id: i.id.to_string(),
                embedding: model.vector(&d.text),
                document: d.text,
                metadata: d.metadata,
                content_hash: d.content_hash,
            }
        })
        .collect();
    store.upsert(INSTANCES, &records).await.unwrap();
}

async fn pre_cluster_index_migrates(embedded: bool) {
    let t = open(embedded);
    let a = StandIn::new("standin:model-a", 48);
    let values: Vec<Value> = (0..300).map(|i| deployment(i, 0)).collect();
    let instances: Vec<ResourceInstance> = values.iter().map(parsed).collect();
    write_pre_cluster_index(&t.store, &a, &instances).await;

    let without_cluster = Reindex::new(generations(&t.store), a.clone()).run().await;
    assert!(
        matches!(&without_cluster, Err(ReindexError::Refused(m)) if m.contains("--cluster-for-legacy")),
        "{without_cluster:?}"
    );
    let done = Reindex::new(generations(&t.store), a.clone())
        .with_options(ReindexOptions {
            legacy_cluster: Some(ClusterId::new(CLUSTER).unwrap()),
            page: None,
        })
        .run()
        .await
        .expect("the layout upgrade");
    assert_eq!(
        done.from.layout,
        ingest::generations::LAYOUT_BEFORE_CLUSTERS
    );
    assert_eq!(done.to.layout, LAYOUT_VERSION);
    assert_eq!(a.inputs(), 0, "the model is unchanged: vectors are copied");
    assert_eq!(done.status.copied, 300);

    // The watcher's next sync of the same objects, as cluster prod: nothing to embed.
    let (p, _) = pipeline(&t.store, a.clone());
    let outcome = p.apply_sync(payload(values, vec![])).await.unwrap();
    assert_eq!(outcome.embedded, 0, "{outcome:?}");
    assert_eq!(outcome.unchanged, 300, "{outcome:?}");
    assert_eq!(a.inputs(), 0);
    let hashes = p
        .stored_hashes(&ClusterId::new(CLUSTER).unwrap())
        .await
        .unwrap();
    assert_eq!(hashes.len(), 300);
}

#[tokio::test]
async fn an_index_from_before_cluster_ids_is_migrated_and_then_synced_without_embedding_on_the_embedded_store(
) {
    pre_cluster_index_migrates(true).await;
}

#[tokio::test]
async fn an_index_from_before_cluster_ids_is_migrated_and_then_synced_without_embedding_on_the_store_server(
) {
    pre_cluster_index_migrates(false).await;
}

#[tokio::test]
async fn a_switch_is_undone_by_activating_the_previous_generation() {
    let t = open(true);
    let a = StandIn::new("standin:model-a", 48);
    let (p, active) = pipeline(&t.store, a.clone());
    seed(&p, 50).await;
    let b = StandIn::new("standin:model-b", 48);
    Reindex::new(generations(&t.store), b.clone())
        .run()
        .await
        .unwrap();
    let g = generations(&t.store);
    let record = reindex::activate(&g, 1).await.unwrap();
    assert_eq!(record.active.number, 1);
    assert_eq!(record.previous.as_ref().map(|g| g.number), Some(2));
    active.refresh().await.unwrap();
    assert_eq!(active.current().instances, INSTANCES);
    assert_eq!(check_model(&g, &a.info()).await.unwrap(), Ok(()));
    // A process that cannot embed for the active model is told so instead of mixing.
    let b_only = ActiveIndex::open(g.clone(), b.clone()).await.unwrap();
    assert!(b_only
        .stranded()
        .is_some_and(|m| m.contains("standin:model-a")));
    assert_eq!(b_only.current().instances, INSTANCES);
    let before = b.inputs();
    let stranded = Pipeline::new(t.store.clone(), b.clone(), INSTANCES).with_active(b_only);
    let refused = stranded
        .apply_sync(payload(vec![deployment(1, 9)], vec![]))
        .await
        .expect_err("a sync of another model is refused");
    assert!(refused.is_transient(), "{refused}");
    assert!(refused.to_string().contains("standin:model-a"), "{refused}");
    assert_eq!(
        b.inputs(),
        before,
        "nothing was embedded by b for generation 1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_reindexes_for_a_token_of_every_cluster_and_shows_its_counts() {
    use ingest::server::credentials::TokensFile;
    use ingest::server::{AppState, ServerConfig};
    let t = open(true);
    let a = StandIn::new("standin:model-a", 48);
    let values: Vec<Value> = (0..300).map(|i| deployment(i, 0)).collect();
    let instances: Vec<ResourceInstance> = values.iter().map(parsed).collect();
    write_pre_cluster_index(&t.store, &a, &instances).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "prod-only-token prod\n").unwrap();
    let (p, _) = pipeline(&t.store, a.clone());
    let state = AppState::new(
        p,
        ServerConfig {
            auth_token: Some("every-cluster-token".into()),
            tokens_file: Some(Arc::new(TokensFile::open(&tokens).unwrap())),
            ..Default::default()
        },
    );
    let served = common::serve(state).await;
    let http = reqwest::Client::new();
    let url = format!("{}{}", served.url, sync_model::api::REINDEX);
    let post = |token: &'static str| {
        http.post(&url)
            .bearer_auth(token)
            .json(&json!({"clusterForLegacy": CLUSTER}))
            .send()
    };
    let refused = post("prod-only-token").await.unwrap();
    assert_eq!(
        refused.status(),
        403,
        "a token of one cluster may not reindex"
    );
    let started = post("every-cluster-token").await.unwrap();
    assert_eq!(started.status(), 202);
    let mut status = Value::Null;
    for _ in 0..200 {
        status = http
            .get(&url)
            .bearer_auth("every-cluster-token")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["run"]["phase"] == "done" || status["run"]["phase"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status["run"]["phase"], "done", "{status}");
    assert_eq!(status["run"]["total"], 300, "{status}");
    assert_eq!(status["record"]["active"]["number"], 2, "{status}");
    assert_eq!(
        status["record"]["active"]["layout"], LAYOUT_VERSION,
        "{status}"
    );
    assert_eq!(status["record"]["previous"]["number"], 1, "{status}");
    assert_eq!(a.inputs(), 0, "the model is unchanged: vectors are copied");
    let metrics = http
        .get(format!("{}/metrics", served.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("cw_reindex_documents{count=\"total\"} 300"),
        "{metrics}"
    );
    assert!(metrics.contains("cw_reindex_generation 2"), "{metrics}");
}
