//! Embedded store at scale: upsert throughput, filtered search p50/p99, file size, RSS and
//! reopen time over 100,000 documents of 384 dimensions.
//!
//!     cargo bench -p ingest --bench embedded_store
//!
//! CW_BENCH_DOCS sets the document count (default 100000). The same run then does the same
//! against a real Chroma server (testkit starts it from .venv); CW_BENCH_CHROMA=0 skips it.

use std::collections::BTreeMap;
use std::time::Instant;

use ingest::embed::ModelInfo;
use ingest::store::embedded::EmbeddedStore;
use ingest::store::{Filter, MetaValue, Record, VectorStore};

mod bench_run;
use bench_run::{cores, count_from_env, percentile, runtime};

const DIM: usize = 384;
const BATCH: usize = 500;
const QUERIES: usize = 300;

/// xorshift64*: deterministic vectors without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn vector(&mut self) -> Vec<f32> {
        (0..DIM).map(|_| self.unit()).collect()
    }
}

const KINDS: [&str; 10] = [
    "Deployment",
    "StatefulSet",
    "Service",
    "ConfigMap",
    "Secret",
    "Pod",
    "CronJob",
    "Job",
    "Ingress",
    "DaemonSet",
];

fn record(i: usize, rng: &mut Rng) -> Record {
    let ns = format!("team-{}", i % 50);
    let kind = KINDS[i % KINDS.len()];
    let name = format!("app-{i}");
    let mut metadata: BTreeMap<String, MetaValue> = BTreeMap::new();
    let s = |v: &str| MetaValue::Str(v.to_string());
    metadata.insert("namespace".into(), s(&ns));
    metadata.insert("name".into(), s(&name));
    metadata.insert("kind".into(), s(kind));
    metadata.insert("apiVersion".into(), s("apps/v1"));
    metadata.insert("apiGroup".into(), s("apps"));
    metadata.insert("createdAt".into(), s("2026-02-20T10:00:00Z"));
    metadata.insert("label.app".into(), s(&format!("app-{}", i % 1000)));
    metadata.insert(
        "label.app.kubernetes.io/part-of".into(),
        s(&format!("system-{}", i % 20)),
    );
    metadata.insert("cw_content_hash".into(), s(&format!("{:016x}", rng.next())));
    Record {
        id: format!("{ns}/apps/v1/{kind}/{name}"),
        document: format!("{kind} {name} | namespace: {ns} | apiVersion: apps/v1 | labels: app=app-{} | generated for the benchmark", i % 1000),
        content_hash: format!("{:016x}", rng.next()),
        metadata,
        embedding: rng.vector(),
    }
}

fn rss_mib() -> (f64, f64) {
    rss_mib_of("self")
}

fn rss_mib_of(pid: &str) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Bytes under `dir`, subdirectories included (Chroma keeps its segments in them).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn file_mib(dir: &std::path::Path) -> f64 {
    dir_bytes(dir) as f64 / (1024.0 * 1024.0)
}

async fn search_latencies(
    store: &dyn VectorStore,
    collection: &str,
    label: &str,
    filter: Option<Filter>,
    rng: &mut Rng,
) {
    let mut times = Vec::with_capacity(QUERIES);
    let mut hits_total = 0;
    for _ in 0..QUERIES {
        let q = rng.vector();
        let start = Instant::now();
        let hits = store
            .query(collection, &q, filter.as_ref(), 10)
            .await
            .expect("query");
        times.push(start.elapsed());
        hits_total += hits.len();
    }
    times.sort();
    println!(
        "  {label:<44} p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms  ({} hits/query)",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        percentile(&times, 1.0),
        hits_total / QUERIES
    );
}

async fn bench(
    store: &dyn VectorStore,
    collection: &str,
    n: usize,
    data_dir: Option<&std::path::Path>,
) {
    let model = ModelInfo {
        id: "bench:random-384".into(),
        dimension: DIM,
    };
    store
        .ensure_collection(collection, &model)
        .await
        .expect("ensure");
    let mut rng = Rng(0x5eed);
    let records: Vec<Record> = (0..n).map(|i| record(i, &mut rng)).collect();
    let start = Instant::now();
    for chunk in records.chunks(BATCH) {
        store.upsert(collection, chunk).await.expect("upsert");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "  upsert {n} docs in batches of {BATCH}: {:.1} s, {:.0} docs/s",
        secs,
        n as f64 / secs
    );
    assert_eq!(store.count(collection).await.expect("count"), n);
    drop(records);
    if let Some(dir) = data_dir {
        println!("  files on disk: {:.1} MiB", file_mib(dir));
    }
    let mut rng = Rng(0xfeed);
    search_latencies(store, collection, "query top-10, no filter", None, &mut rng).await;
    search_latencies(
        store,
        collection,
        "query, namespace = team-7 (2%)",
        Some(Filter::Eq("namespace".into(), "team-7".into())),
        &mut rng,
    )
    .await;
    search_latencies(
        store,
        collection,
        "query, kind in [Deployment, StatefulSet] (20%)",
        Some(Filter::In(
            "kind".into(),
            vec!["Deployment".into(), "StatefulSet".into()],
        )),
        &mut rng,
    )
    .await;
    search_latencies(
        store,
        collection,
        "query, kind = Service and label.app in 3 (0.3%)",
        Some(Filter::And(vec![
            Filter::Eq("kind".into(), "Service".into()),
            Filter::In(
                "label.app".into(),
                vec!["app-2".into(), "app-12".into(), "app-22".into()],
            ),
        ])),
        &mut rng,
    )
    .await;
    let start = Instant::now();
    let hashes = store
        .all_hashes(collection, None)
        .await
        .expect("all_hashes");
    println!(
        "  all_hashes ({} ids): {:.1} ms",
        hashes.len(),
        start.elapsed().as_secs_f64() * 1000.0
    );
}

fn main() {
    let n: usize = count_from_env("CW_BENCH_DOCS", 100_000);
    let runtime = runtime();
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let cores = cores();
        println!("embedded store (SQLite WAL synchronous=FULL + in-memory exact scan), {n} docs x {DIM} dims, {cores} cores");
        let (rss0, _) = rss_mib();
        {
            let store = EmbeddedStore::open_in_dir(dir.path()).expect("open");
            bench(&store, "instances", n, Some(dir.path())).await;
            let (rss, peak) = rss_mib();
            println!("  RSS {:.0} MiB (peak {:.0} MiB; {:.0} MiB before the store)", rss, peak, rss0);
        }
        let start = Instant::now();
        let store = EmbeddedStore::open_in_dir(dir.path()).expect("reopen");
        println!(
            "  reopen (load {} docs into memory): {:.2} s",
            store.count("instances").await.expect("count"),
            start.elapsed().as_secs_f64()
        );
        drop(store);
        if std::env::var("CW_BENCH_CHROMA").as_deref() != Ok("0") {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let server = tokio::task::spawn_blocking(testkit::ChromaServer::start).await.expect("start Chroma");
            println!("Chroma (real server from .venv, HNSW, cosine space), same {n} docs");
            let store = ingest::store::chroma::ChromaStore::new(ingest::store::chroma::ChromaConfig::new(server.url()))
                .expect("Chroma client");
            bench(&store, "instances", n, Some(server.data_dir())).await;
            if let Some(pid) = server.pid() {
                let (rss, peak) = rss_mib_of(&pid.to_string());
                println!("  Chroma server RSS {:.0} MiB (peak {:.0} MiB)", rss, peak);
            }
        }
    });
}
