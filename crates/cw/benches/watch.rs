//! Watcher benchmark (prints figures; run through `scripts/bench-watch`).
//!
//! A `kube-sim` child process seeded by its generator (default 100,000 objects across 500
//! CRD types) and the whole watcher in this process.
//!
//! Phase 1, an in-memory sink standing in for the ingest server (no embedding, no store
//! cost): the initial sync time, this process's peak and steady RSS and CPU time, and,
//! under a steady stream of label changes, the change-to-sink latency p50/p99.
//!
//! Phase 2, per store (the embedded SQLite store and a real Chroma from .venv): the store's
//! direct write rate (the same documents and vectors upserted straight into it, 50 per
//! call, embedding outside the timing), then the watcher's initial sync into the same store
//! through ingest's pipeline with a stand-in embedder (testkit's hashed bag of words,
//! 1,024 dimensions like Voyage), reported as a fraction of that direct rate.
//!
//! Environment: KUBE_SIM_BIN (required), BENCH_OBJECTS, BENCH_CRDS, BENCH_NAMESPACES,
//! BENCH_CHANGES, BENCH_CHANGE_RATE (per second), DEBOUNCE_WINDOW_MS,
//! BENCH_STORES (`embedded,chroma` by default; `none` skips phase 2).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ingest::embed::{EmbedError, Embedder, InputType, ModelInfo};
use ingest::pipeline::Pipeline;
use ingest::store::{Record, VectorStore};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use sync_model::{ResourceId, ResourceInstance, SyncPayload, SyncResponse};
use watcher::buffer::BufferConfig;
use watcher::sender::RetryConfig;
use watcher::{
    CancellationToken, Metrics, NamespaceFilter, ResourceType, Shared, SinkError, SyncSink,
    TypeFilter, WatcherSettings,
};

/// The cw binary's allocator and its settings (crates/cw/src/main.rs), so the figures are
/// the binary's: mimalloc; freed memory returned at once (`mi_option_purge_delay` = 0) in
/// phase 1, as `cw watch` does, and mimalloc's default delay in phase 2, as `cw run` has.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's option 15, `mi_option_purge_delay`, unless the environment sets it.
fn set_purge_delay_ms(ms: std::ffi::c_long) {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a global option by its number; mimalloc reads it when it next purges.
        unsafe { libmimalloc_sys::mi_option_set(15, ms) };
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Stands in for the ingest server. It keeps a 64-bit hash of each id it received (and when),
/// not the ids: the process's RSS is the watcher's, with a few MiB of this map.
#[derive(Default)]
struct MemorySink {
    stored: Mutex<HashMap<u64, Instant>>,
    posts: Mutex<u64>,
}

fn key(id: &ResourceId) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(id)
}

#[async_trait]
impl SyncSink for MemorySink {
    async fn send(&self, p: &SyncPayload) -> Result<SyncResponse, SinkError> {
        let now = Instant::now();
        let mut stored = self.stored.lock().unwrap();
        for id in &p.deletes {
            stored.remove(&key(id));
        }
        for i in &p.upserts {
            stored.insert(key(&i.id), now);
        }
        *self.posts.lock().unwrap() += 1;
        Ok(SyncResponse::ok(p.upserts.len(), p.deletes.len()))
    }
    async fn stored_hashes(&self) -> Result<HashMap<ResourceId, String>, SinkError> {
        Ok(HashMap::new())
    }
}

/// Testkit's deterministic stand-in vectors, in process: the embedding costs little, so
/// phase 2 measures the watcher and the store.
struct StandInEmbedder;

const STANDIN_DIMENSION: usize = 1024;

#[async_trait]
impl Embedder for StandInEmbedder {
    async fn model_info(&self) -> Result<ModelInfo, EmbedError> {
        Ok(ModelInfo {
            id: "standin:bag-of-words".into(),
            dimension: STANDIN_DIMENSION,
        })
    }
    async fn embed(&self, texts: &[String], _: InputType) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts
            .iter()
            .map(|t| testkit::embed_text(t, STANDIN_DIMENSION))
            .collect())
    }
}

/// The watcher's sink answered by ingest's pipeline in this process, as `cw run` does.
struct PipelineSink(Pipeline);

#[async_trait]
impl SyncSink for PipelineSink {
    async fn send(&self, p: &SyncPayload) -> Result<SyncResponse, SinkError> {
        let o = self
            .0
            .apply_sync(p.clone())
            .await
            .map_err(|e| SinkError::unavailable(e.to_string()))?;
        Ok(SyncResponse::ok(o.upserted, o.deleted))
    }
    async fn stored_hashes(&self) -> Result<HashMap<ResourceId, String>, SinkError> {
        let h = self
            .0
            .stored_hashes(&sync_model::ClusterId::default_cluster())
            .await
            .map_err(|e| SinkError::unavailable(e.to_string()))?;
        Ok(h.into_iter()
            .map(|(k, v)| (ResourceId::from_raw(k), v))
            .collect())
    }
}

/// User plus system CPU seconds of another process.
fn cpu_seconds_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// One empty store of the kind named, the store server's pid when it is a process, and what
/// keeps it alive (its data directory or server).
async fn fresh_store(name: &str) -> (Arc<dyn VectorStore>, Option<u32>, Box<dyn std::any::Any>) {
    match name {
        "embedded" => {
            let data = tempfile::tempdir().unwrap();
            let store = ingest::store::embedded::EmbeddedStore::open_in_dir(data.path())
                .expect("embedded store");
            (Arc::new(store), None, Box::new(data))
        }
        "chroma" => {
            let server = tokio::task::spawn_blocking(testkit::ChromaServer::start)
                .await
                .expect("starting Chroma from .venv (scripts/setup installs it)");
            let store = ingest::store::chroma::ChromaStore::new(
                ingest::store::chroma::ChromaConfig::new(server.url()),
            )
            .expect("Chroma client");
            let pid = server.pid();
            (Arc::new(store), pid, Box::new(server))
        }
        other => panic!("BENCH_STORES: unknown store {other} (embedded, chroma, none)"),
    }
}

/// Phase 2 for one store: its direct write rate, then the watcher's initial sync into it,
/// each into a fresh, empty store (a store's write rate falls as it fills).
async fn store_phase(
    name: &str,
    client: &kube::Client,
    types: &[ResourceType],
    settings: &WatcherSettings,
) {
    let (store, store_pid, guard) = fresh_store(name).await;
    let model = StandInEmbedder.model_info().await.unwrap();
    // Every object, listed as the watcher would see it.
    let mut instances: Vec<ResourceInstance> = Vec::new();
    for ty in types {
        let page = std::sync::Mutex::new(Vec::new());
        watcher::source::list_type(client, ty, &NamespaceFilter::default(), 500, |p| {
            page.lock().unwrap().extend(p);
            async {}
        })
        .await
        .unwrap();
        instances.extend(page.into_inner().unwrap());
    }
    let n = instances.len();

    let direct = "bench_direct";
    store.ensure_collection(direct, &model).await.unwrap();
    let mut in_store = Duration::ZERO;
    let store_cpu0 = store_pid.map(cpu_seconds_of);
    let own_cpu0 = cpu_seconds();
    for chunk in instances.chunks(50) {
        let records: Vec<Record> = chunk
            .iter()
            .map(|i| {
                let d = ingest::document::to_document(i, &sync_model::ClusterId::default_cluster());
                Record {
                    embedding: testkit::embed_text(&d.text, STANDIN_DIMENSION),
                    id: d.id,
                    document: d.text,
                    metadata: d.metadata,
                    content_hash: d.content_hash,
                }
            })
            .collect();
        let t = Instant::now();
        store.upsert(direct, &records).await.unwrap();
        in_store += t.elapsed();
    }
    drop(instances);
    let direct_cpu = cpu_seconds() - own_cpu0;
    let direct_rate = n as f64 / in_store.as_secs_f64();
    let cpu_note = match (store_pid, store_cpu0) {
        (Some(pid), Some(c0)) => format!(
            "; the server spent {:.1} ms CPU per document",
            1000.0 * (cpu_seconds_of(pid) - c0) / n as f64
        ),
        _ => String::new(),
    };
    println!(
        "{name}: direct write of {n} documents, 50 per upsert: {:.1}s in upsert = {direct_rate:.0} documents/s{cpu_note} (this process: {direct_cpu:.1}s CPU, records built included)",
        in_store.as_secs_f64()
    );
    // The server's CPU is read above, before the store goes.
    drop(store);
    drop(guard);

    let (store, store_pid, _guard) = fresh_store(name).await;
    let store_cpu0 = store_pid.map(cpu_seconds_of);
    let collection = "bench_watch";
    let pipeline = Pipeline::new(store.clone(), Arc::new(StandInEmbedder), collection);
    let pipeline_metrics = pipeline.metrics().clone();
    let sink = Arc::new(PipelineSink(pipeline));
    let shared = Shared::new(Metrics::new());
    let stop = CancellationToken::new();
    let t0 = Instant::now();
    let own_cpu0 = cpu_seconds();
    let task = tokio::spawn(watcher::run(
        settings.clone(),
        client.clone(),
        sink,
        shared,
        stop.clone(),
    ));
    loop {
        let stored = store.count(collection).await.unwrap_or(0);
        if stored >= n {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3600),
            "{name}: initial sync stuck at {stored}/{n}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let took = t0.elapsed().as_secs_f64();
    let sync_cpu = cpu_seconds() - own_cpu0;
    let server_note = match (store_pid, store_cpu0) {
        (Some(pid), Some(c0)) => format!(
            "; the server spent {:.1} ms CPU per document",
            1000.0 * (cpu_seconds_of(pid) - c0) / n as f64
        ),
        _ => String::new(),
    };
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let rate = n as f64 / took;
    println!(
        "{name}: watcher initial sync (pipeline, stand-in embedder, batches of 50, {} in flight): {n} in {took:.1}s = {rate:.0} documents/s = {:.0}% of the direct write rate{server_note}",
        watcher::sender::BATCHES_IN_FLIGHT,
        100.0 * rate / direct_rate
    );
    println!(
        "{name}: CPU during that sync in this process (watcher, pipeline, embedder, store client): {sync_cpu:.1}s over {took:.1}s wall ({:.0}% of {cores} cores)",
        100.0 * sync_cpu / took / cores as f64
    );
    // Where the pipeline's store time went: the hash lookup before every write, the writes.
    let metrics = pipeline_metrics.encode();
    let op = |op: &str, what: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("cw_ingest_store_seconds_{what}{{op=\"{op}\"}}")))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    println!(
        "{name}: pipeline store calls: hash lookups {:.0} taking {:.1}s ({:.1} ms each), upserts {:.0} taking {:.1}s ({:.1} ms each)",
        op("hashes", "count"),
        op("hashes", "sum"),
        1000.0 * op("hashes", "sum") / op("hashes", "count").max(1.0),
        op("upsert", "count"),
        op("upsert", "sum"),
        1000.0 * op("upsert", "sum") / op("upsert", "count").max(1.0),
    );
    stop.cancel();
    let _ = task.await;
}

/// (VmRSS, VmHWM) of this process, in MiB.
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// User plus system CPU seconds of this process.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    set_purge_delay_ms(0);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim_bin = std::env::var("KUBE_SIM_BIN")
        .expect("set KUBE_SIM_BIN to a built kube-sim binary (scripts/bench-watch does)");
    let objects = env_or("BENCH_OBJECTS", 100_000);
    let crds = env_or("BENCH_CRDS", 500);
    let namespaces = env_or("BENCH_NAMESPACES", 50);
    let changes = env_or("BENCH_CHANGES", 200);
    let rate = env_or("BENCH_CHANGE_RATE", 20).max(1);
    let window = Duration::from_millis(env_or("DEBOUNCE_WINDOW_MS", 10_000));

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let started_sim = Instant::now();
    let mut child = std::process::Command::new(&sim_bin)
        .args(["--port", "0", "--log-level", "warn", "--history", "200000"])
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--gen-namespaces", &namespaces.to_string()])
        .args(["--gen-crds", &crds.to_string()])
        .args(["--gen-objects", &objects.to_string()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("starting kube-sim");
    while !kubeconfig.exists() {
        assert!(
            started_sim.elapsed() < Duration::from_secs(300),
            "kube-sim never wrote its kubeconfig"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::env::set_var("KUBECONFIG", &kubeconfig);
    let client = watcher::kube_client().await.unwrap();
    println!(
        "kube-sim ready in {:.1}s",
        started_sim.elapsed().as_secs_f64()
    );

    // What the store must hold: every admitted object of every discovered type.
    let filter = TypeFilter::default();
    let types: Vec<ResourceType> = watcher::discover(&client, &filter).await.unwrap().types;
    let mut expected = 0usize;
    for ty in &types {
        expected +=
            watcher::source::list_type(&client, ty, &NamespaceFilter::default(), 500, |_| async {})
                .await
                .unwrap();
    }
    println!(
        "cluster: {} types, {} objects to index",
        types.len(),
        expected
    );

    let settings = WatcherSettings {
        buffer: BufferConfig {
            debounce: window,
            flush_interval: Duration::from_secs(5),
            max_batch: 50,
        },
        retry: RetryConfig::default(),
        types: filter,
        namespaces: NamespaceFilter::default(),
        resync_interval: Duration::from_secs(24 * 3600),
        shutdown_timeout: Duration::from_secs(20),
        group_discovery_timeout: watcher::discovery::GROUP_DISCOVERY_TIMEOUT,
        forbidden_grace: Duration::from_secs(600),
        heartbeat_interval: Duration::ZERO,
    };
    println!(
        "this process before the watcher starts (runtime, client, the count above): RSS {:.0} MiB",
        rss_mib().0
    );
    let sink = Arc::new(MemorySink::default());
    let shared = Shared::new(Metrics::new());
    let stop = CancellationToken::new();
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let task = tokio::spawn(watcher::run(
        settings.clone(),
        client.clone(),
        sink.clone(),
        shared.clone(),
        stop.clone(),
    ));
    let mut peak_rss: f64 = 0.0;
    loop {
        let n = sink.stored.lock().unwrap().len();
        peak_rss = peak_rss.max(rss_mib().0);
        if n >= expected {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(1800),
            "initial sync stuck at {n}/{expected}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let initial = t0.elapsed();
    let posts = *sink.posts.lock().unwrap();
    println!(
        "initial sync: {expected} objects in {:.1}s = {:.0} objects/s ({posts} batches)",
        initial.as_secs_f64(),
        expected as f64 / initial.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (steady_rss, hwm) = rss_mib();
    println!("watcher process RSS: peak {:.0} MiB (VmHWM {:.0} MiB), steady {:.0} MiB after the initial sync", peak_rss.max(hwm), hwm, steady_rss);

    // A steady stream of label changes on distinct Deployments.
    let deployments: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ResourceType::new("apps", "v1", "Deployment", "deployments", true).api_resource(),
    );
    let list = deployments
        .list(&ListParams::default().limit(changes as u32))
        .await
        .unwrap();
    let mut changed: Vec<(ResourceId, Instant)> = Vec::new();
    let gap = Duration::from_secs_f64(1.0 / rate as f64);
    for (i, d) in list.items.iter().enumerate() {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let name = d.metadata.name.clone().unwrap_or_default();
        let api: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            &ns,
            &ResourceType::new("apps", "v1", "Deployment", "deployments", true).api_resource(),
        );
        let patch = serde_json::json!({"metadata": {"labels": {"bench-change": i.to_string()}}});
        let at = Instant::now();
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        changed.push((
            ResourceId::new(Some(&ns), "apps/v1", "Deployment", &name),
            at,
        ));
        tokio::time::sleep(gap).await;
    }
    let deadline = Instant::now() + window + Duration::from_secs(60);
    let mut latencies: Vec<Duration>;
    loop {
        latencies = {
            let stored = sink.stored.lock().unwrap();
            changed
                .iter()
                .filter_map(|(id, at)| stored.get(&key(id)).filter(|t| *t > at).map(|t| *t - *at))
                .collect()
        };
        if latencies.len() == changed.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    latencies.sort();
    println!(
        "change to sink ({} changes at {rate}/s, debounce {} ms): p50 {:.2}s, p99 {:.2}s, max {:.2}s; arrived {}/{}",
        changed.len(),
        window.as_millis(),
        percentile(&latencies, 0.5).as_secs_f64(),
        percentile(&latencies, 0.99).as_secs_f64(),
        latencies.last().copied().unwrap_or_default().as_secs_f64(),
        latencies.len(),
        changed.len()
    );
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!("watcher process CPU: {cpu:.1}s over {wall:.1}s wall = {:.1}% of one core ({:.1}% of 2 cores)", 100.0 * cpu / wall, 50.0 * cpu / wall);
    stop.cancel();
    let _ = task.await;

    // Phase 2 is `cw run`'s process: mimalloc's default purge delay (10 ms).
    set_purge_delay_ms(10);
    let stores = std::env::var("BENCH_STORES").unwrap_or_else(|_| "embedded,chroma".into());
    for name in stores.split(',').map(str::trim) {
        match name {
            "none" | "" => {}
            name => store_phase(name, &client, &types, &settings).await,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}
