//! `cw reindex` against a first index of the same documents, in one run, on the embedded
//! store with the local model (scripts/bench-reindex):
//!
//! 1. a first index: N documents synced into an empty store, embedded by the local model;
//! 2. the same N documents on another model (a quick stand-in, untimed) in a second store,
//!    reindexed to the local model while a reader searches; the reader also searched the
//!    store before the build (idle).
//!
//! Prints the time and the texts embedded of both, the ratio, and the reads' p50/p99 idle and
//! during the build, with the failed reads. CW_BENCH_DOCS sets N (100,000); needs the model
//! (`cw model fetch`, or CW_MODEL_DIR).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ingest::embed::local::{default_model_dir, LocalEmbedder};
use ingest::embed::{EmbedError, Embedder, InputType, ModelInfo};
use ingest::generations::reindex::Reindex;
use ingest::generations::{ActiveIndex, BaseNames, GenerationStore};
use ingest::pipeline::Pipeline;
use ingest::store::embedded::EmbeddedStore;
use ingest::store::VectorStore;
use sync_model::{ResourceInstance, SyncPayload};

mod bench_run;
use bench_run::{cores, count_from_env, instance_of, percentile, runtime};

/// Counts the texts an embedder is given.
struct Counting {
    inner: Arc<dyn Embedder>,
    texts: AtomicUsize,
}

#[async_trait]
impl Embedder for Counting {
    async fn model_info(&self) -> Result<ModelInfo, EmbedError> {
        self.inner.model_info().await
    }
    async fn embed(&self, texts: &[String], t: InputType) -> Result<Vec<Vec<f32>>, EmbedError> {
        if t == InputType::Document {
            self.texts.fetch_add(texts.len(), Ordering::Relaxed);
        }
        self.inner.embed(texts, t).await
    }
}

/// The model the second store starts on: a vector from the text's bytes, no cost to speak of.
struct Previous;

#[async_trait]
impl Embedder for Previous {
    async fn model_info(&self) -> Result<ModelInfo, EmbedError> {
        Ok(ModelInfo {
            id: "bench:previous".into(),
            dimension: 16,
        })
    }
    async fn embed(&self, texts: &[String], _: InputType) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0.01f32; 16];
                for (i, b) in t.bytes().enumerate() {
                    v[i % 16] += f32::from(b);
                }
                v
            })
            .collect())
    }
}

fn documents(n: usize) -> Vec<ResourceInstance> {
    let kinds = [
        ("Deployment", "apps/v1", "apps"),
        ("StatefulSet", "apps/v1", "apps"),
        ("Service", "v1", ""),
        ("ConfigMap", "v1", ""),
    ];
    (0..n)
        .map(|i| {
            instance_of(
                kinds[i % kinds.len()],
                format!("team-{}", i % 50),
                format!("app-{i}"),
                BTreeMap::from([
                    ("app".to_string(), format!("app-{i}")),
                    (
                        "tier".to_string(),
                        ["web", "db", "cache"][i % 3].to_string(),
                    ),
                ]),
                &format!(
                    "service {i} of team {} handling orders and payments",
                    i % 50
                ),
            )
        })
        .collect()
}

fn payload(chunk: &[ResourceInstance]) -> SyncPayload {
    SyncPayload {
        upserts: chunk.to_vec(),
        deletes: vec![],
        cluster: Some("bench".into()),
    }
}

async fn sync_all(p: &Pipeline, docs: &[ResourceInstance]) {
    for chunk in docs.chunks(500) {
        p.apply_sync(payload(chunk)).await.expect("sync");
    }
}

fn names() -> BaseNames {
    BaseNames {
        instances: "instances".into(),
        capabilities: "capabilities".into(),
    }
}

/// Reads (a question embedded by the active generation's model, then a search) until `stop`;
/// their latencies and how many failed.
async fn read_until(
    store: Arc<dyn VectorStore>,
    active: ActiveIndex,
    stop: Arc<AtomicBool>,
) -> (Vec<Duration>, usize) {
    let (mut took, mut failed) = (Vec::new(), 0);
    let mut i = 0usize;
    // Reads of the generation active at the start only: those the build could slow down.
    let start = active.current().number;
    while !stop.load(Ordering::SeqCst) {
        let now = active.current();
        if now.number != start {
            break;
        }
        let t = Instant::now();
        let question = format!("orders service of team {}", i % 50);
        let ok = match now.embedder.embed(&[question], InputType::Query).await {
            Ok(v) => store
                .query(&now.instances, &v[0], None, 10)
                .await
                .is_ok_and(|h| !h.is_empty()),
            Err(_) => false,
        };
        took.push(t.elapsed());
        failed += usize::from(!ok);
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    took.sort();
    (took, failed)
}

fn main() {
    let n = count_from_env("CW_BENCH_DOCS", 100_000);
    let dir = std::env::var_os("CW_MODEL_DIR")
        .map(PathBuf::from)
        .or_else(default_model_dir)
        .expect("set HOME or CW_MODEL_DIR");
    let local: Arc<dyn Embedder> = Arc::new(LocalEmbedder::load(&dir).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    }));
    let docs = documents(n);
    println!(
        "reindex bench: {n} documents, local model, embedded store, {} cores",
        cores()
    );
    runtime().block_on(async move {
        // 1. The first index.
        let first_dir = tempfile::tempdir().expect("temp dir");
        let first_store: Arc<dyn VectorStore> =
            Arc::new(EmbeddedStore::open_in_dir(first_dir.path()).expect("store"));
        let counted = Arc::new(Counting {
            inner: local.clone(),
            texts: AtomicUsize::new(0),
        });
        let p = Pipeline::new(first_store, counted.clone(), "instances");
        let t = Instant::now();
        sync_all(&p, &docs).await;
        let first = t.elapsed();
        let first_texts = counted.texts.load(Ordering::Relaxed);
        println!("first index:  {:>8.1} s, {first_texts} texts embedded", first.as_secs_f64());

        // 2. The same documents on another model, reindexed to the local one under reads.
        let data = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn VectorStore> =
            Arc::new(EmbeddedStore::open_in_dir(data.path()).expect("store"));
        let generations = GenerationStore::new(store.clone(), names());
        let active = ActiveIndex::new(generations.clone(), Arc::new(Previous));
        let seeder = Pipeline::new(store.clone(), Arc::new(Previous), "instances")
            .with_active(active.clone());
        sync_all(&seeder, &docs).await;
        active.load().await.expect("generation record");

        let stop = Arc::new(AtomicBool::new(false));
        let idle = tokio::spawn(read_until(store.clone(), active.clone(), stop.clone()));
        tokio::time::sleep(Duration::from_secs(5)).await;
        stop.store(true, Ordering::SeqCst);
        let (idle, idle_failed) = idle.await.expect("idle reads");

        let counted = Arc::new(Counting {
            inner: local.clone(),
            texts: AtomicUsize::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let during = tokio::spawn(read_until(store.clone(), active.clone(), stop.clone()));
        let t = Instant::now();
        let done = Reindex::new(generations, counted.clone())
            .with_active(active.clone())
            .run()
            .await
            .expect("reindex");
        let reindex = t.elapsed();
        stop.store(true, Ordering::SeqCst);
        let (during, during_failed) = during.await.expect("reads during the build");
        let texts = counted.texts.load(Ordering::Relaxed);
        println!(
            "reindex:      {:>8.1} s, {texts} texts embedded ({} reused, generation {} -> {})",
            reindex.as_secs_f64(),
            done.status.reused,
            done.from.number,
            done.to.number
        );
        println!(
            "ratio:        {:.2}x the first index's time, {:.2}x its embedding calls",
            reindex.as_secs_f64() / first.as_secs_f64(),
            texts as f64 / first_texts.max(1) as f64
        );
        println!(
            "reads idle:   {} reads, p50 {:.1} ms, p99 {:.1} ms, {idle_failed} failed",
            idle.len(),
            percentile(&idle, 0.5),
            percentile(&idle, 0.99)
        );
        println!(
            "reads during: {} reads, p50 {:.1} ms, p99 {:.1} ms, {during_failed} failed ({:.2}x idle p99)",
            during.len(),
            percentile(&during, 0.5),
            percentile(&during, 0.99),
            percentile(&during, 0.99) / percentile(&idle, 0.99)
        );
    });
}
