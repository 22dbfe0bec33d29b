//! The ingest benchmark (`scripts/bench-ingest` builds and runs it): a store server (a real
//! Chroma, or with `--store qdrant` the Qdrant test server of crates/testkit), the release
//! `cw serve` and the Voyage stand-in as separate processes; 10,000 realistic instances
//! POSTed in batches of 50 by 4 concurrent senders, then re-sent unchanged, then deleted.
//! Prints instances/s, request p50/p99, embedding requests and inputs (from the stand-in's
//! counters), CPU seconds of the server and of the store per phase, the server's peak RSS,
//! and the ceiling: the same vectors written straight to the store batch for batch with the
//! same concurrency.
//!
//!   bench_ingest --cw target/release/cw --standin target/release/voyage-standin [--store qdrant]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingest::embed::ModelInfo;
use ingest::store::chroma::{ChromaConfig, ChromaStore};
use ingest::store::qdrant::{QdrantConfig, QdrantStore};
use ingest::store::{Record, VectorStore};
use serde_json::{json, Value};
use sync_model::{ResourceId, ResourceInstance, SyncPayload};
use testkit::{ChromaServer, QdrantServer, StandinStats};

struct Args {
    cw: PathBuf,
    standin: PathBuf,
    instances: usize,
    batch: usize,
    senders: usize,
    store: StoreKind,
}

#[derive(Clone, Copy, PartialEq)]
enum StoreKind {
    Chroma,
    Qdrant,
}

/// The store server under the benchmark.
enum StoreServer {
    Chroma(ChromaServer),
    Qdrant(QdrantServer),
}

impl StoreServer {
    fn start(kind: StoreKind) -> StoreServer {
        match kind {
            StoreKind::Chroma => StoreServer::Chroma(ChromaServer::start()),
            StoreKind::Qdrant => StoreServer::Qdrant(QdrantServer::start()),
        }
    }

    /// What the figures are of.
    fn name(&self) -> &'static str {
        match self {
            StoreServer::Chroma(_) => "Chroma",
            StoreServer::Qdrant(_) => "the Qdrant test server",
        }
    }

    fn pid(&self) -> u32 {
        match self {
            StoreServer::Chroma(s) => s.pid(),
            StoreServer::Qdrant(s) => s.pid(),
        }
        .expect("store server pid")
    }

    /// The `cw serve` flag and value that choose this store.
    fn flag(&self) -> [String; 2] {
        match self {
            StoreServer::Chroma(s) => ["--chroma-url".into(), s.url()],
            StoreServer::Qdrant(s) => ["--qdrant-url".into(), s.url()],
        }
    }

    /// The same client `cw serve` builds, for the ceiling.
    fn client(&self) -> Arc<dyn VectorStore> {
        match self {
            StoreServer::Chroma(s) => {
                Arc::new(ChromaStore::new(ChromaConfig::new(s.url())).expect("chroma client"))
            }
            StoreServer::Qdrant(s) => {
                Arc::new(QdrantStore::new(QdrantConfig::new(s.url())).expect("qdrant client"))
            }
        }
    }
}

fn parse_args() -> Args {
    let mut args = Args {
        cw: PathBuf::from("target/release/cw"),
        standin: PathBuf::from("target/release/voyage-standin"),
        instances: 10_000,
        batch: 50,
        senders: 4,
        store: StoreKind::Chroma,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--cw" => args.cw = value.into(),
            "--standin" => args.standin = value.into(),
            "--instances" => args.instances = value.parse().expect("--instances N"),
            "--batch" => args.batch = value.parse().expect("--batch N"),
            "--senders" => args.senders = value.parse().expect("--senders N"),
            "--store" => {
                args.store = match value.as_str() {
                    "chroma" => StoreKind::Chroma,
                    "qdrant" => StoreKind::Qdrant,
                    other => panic!("--store chroma|qdrant, not {other}"),
                }
            }
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// Peak resident set size (VmHWM) in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

const KINDS: &[(&str, &str)] = &[
    ("Deployment", "apps/v1"),
    ("StatefulSet", "apps/v1"),
    ("Service", "v1"),
    ("ConfigMap", "v1"),
    ("Pod", "v1"),
    ("Ingress", "networking.k8s.io/v1"),
    ("CronJob", "batch/v1"),
    ("Cluster", "postgresql.cnpg.io/v1"),
];
const TEAMS: &[&str] = &[
    "payments", "checkout", "search", "platform", "data", "identity", "growth", "ml",
];
const APPS: &[&str] = &[
    "api",
    "web",
    "worker",
    "postgres",
    "redis",
    "kafka",
    "gateway",
    "scheduler",
    "cache",
    "indexer",
];
const DESCRIPTIONS: &[&str] = &[
    "Handles card payments and refunds for the shop",
    "Primary PostgreSQL cluster for order data",
    "Redis cache in front of the catalogue service",
    "Nightly export of invoices to the data lake",
    "Public HTTPS entry point for the storefront",
    "Background worker that sends transactional e-mail",
];

/// Instance `i` of a realistic mix: kinds, teams, labels, some descriptions.
fn realistic_instance(i: usize) -> ResourceInstance {
    let (kind, api_version) = KINDS[i % KINDS.len()];
    let team = TEAMS[(i / 7) % TEAMS.len()];
    let app = APPS[(i / 3) % APPS.len()];
    let namespace = format!("{team}-{}", ["prod", "staging", "dev"][(i / 11) % 3]);
    let name = format!("{app}-{team}-{i}");
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("app.kubernetes.io/name".to_string(), app.to_string());
    labels.insert("app.kubernetes.io/instance".to_string(), name.clone());
    labels.insert("app.kubernetes.io/part-of".to_string(), team.to_string());
    labels.insert("team".to_string(), team.to_string());
    labels.insert("version".to_string(), format!("v1.{}.{}", i % 9, i % 4));
    if kind == "Pod" {
        labels.insert(
            "pod-template-hash".to_string(),
            format!("{:x}", i * 7919 % 0xfffff),
        );
    }
    let mut annotations = std::collections::BTreeMap::new();
    if i.is_multiple_of(2) {
        annotations.insert(
            "description".to_string(),
            DESCRIPTIONS[i % DESCRIPTIONS.len()].to_string(),
        );
    }
    annotations.insert(
        "deployment.kubernetes.io/revision".to_string(),
        (i % 5 + 1).to_string(),
    );
    let group = api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
    ResourceInstance {
        id: ResourceId::new(Some(&namespace), api_version, kind, &name),
        namespace,
        name,
        kind: kind.to_string(),
        api_version: api_version.to_string(),
        api_group: group.to_string(),
        labels,
        annotations,
        created_at: format!("2026-02-{:02}T{:02}:{:02}:00Z", i % 28 + 1, i % 24, i % 60),
        health: None,
        images: Vec::new(),
        owner: None,
    }
}

struct PhaseResult {
    name: &'static str,
    instances: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    embed: StandinStats,
    server_cpu: f64,
    store_cpu: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn standin_stats(http: &reqwest::Client, base: &str) -> StandinStats {
    http.get(format!("{base}/stats"))
        .send()
        .await
        .expect("stand-in stats")
        .json()
        .await
        .expect("stats json")
}

/// Sends `bodies` with `senders` concurrent senders; returns (seconds, sorted latencies ms).
async fn send_all(
    http: &reqwest::Client,
    url: &str,
    bodies: Vec<String>,
    senders: usize,
) -> (f64, Vec<f64>) {
    let queue = Arc::new(tokio::sync::Mutex::new(bodies.into_iter()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let queue = queue.clone();
        let http = http.clone();
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let Some(body) = queue.lock().await.next() else {
                    break;
                };
                let t = Instant::now();
                let resp = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("cw serve answers");
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                assert!(status.is_success(), "sync failed: {status} {text}");
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("sender"));
    }
    let seconds = started.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.total_cmp(b));
    (seconds, all)
}

fn diff(after: &StandinStats, before: &StandinStats) -> StandinStats {
    StandinStats {
        requests: after.requests - before.requests,
        inputs: after.inputs - before.inputs,
        document_inputs: after.document_inputs - before.document_inputs,
        query_inputs: after.query_inputs - before.query_inputs,
        failed: after.failed - before.failed,
        base64_requests: after.base64_requests - before.base64_requests,
        tokens: after.tokens - before.tokens,
        max_inputs_per_request: after.max_inputs_per_request,
        refused: after.refused - before.refused,
        longest_input_chars: after.longest_input_chars,
    }
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = parse_args();
    let http = reqwest::Client::new();

    let store_server = StoreServer::start(args.store);
    eprintln!("started {}", store_server.name());
    let store_pid = store_server.pid();

    eprintln!("starting the Voyage stand-in…");
    let mut standin = Command::new(&args.standin)
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", args.standin.display()));
    let mut line = String::new();
    BufReader::new(standin.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("stand-in prints its address");
    let standin = Proc(standin);
    let voyage_url = line
        .trim()
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_string();
    let standin_base = voyage_url.trim_end_matches("/v1").to_string();

    eprintln!("starting cw serve…");
    let port = testkit::free_port();
    let server = Proc(
        Command::new(&args.cw)
            .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(store_server.flag())
            .args(["--embedding-provider", "voyage"])
            .args(["--voyage-url", &voyage_url])
            .env("VOYAGE_API_KEY", "bench")
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", args.cw.display())),
    );
    let server_pid = server.0.id();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "cw serve did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let instances: Vec<ResourceInstance> = (0..args.instances).map(realistic_instance).collect();
    let upsert_bodies: Vec<String> = instances
        .chunks(args.batch)
        .map(|c| {
            serde_json::to_string(&SyncPayload {
                cluster: None,
                upserts: c.to_vec(),
                deletes: vec![],
            })
            .expect("json")
        })
        .collect();
    let delete_bodies: Vec<String> = instances
        .chunks(args.batch)
        .map(|c| {
            serde_json::to_string(&SyncPayload {
                cluster: None,
                upserts: vec![],
                deletes: c.iter().map(|i| i.id.clone()).collect(),
            })
            .expect("json")
        })
        .collect();
    let url = sync_model::api::url(&base, sync_model::api::INSTANCES_SYNC);

    let mut results = Vec::new();
    for (name, bodies) in [
        ("initial", upsert_bodies.clone()),
        ("unchanged", upsert_bodies),
        ("delete", delete_bodies),
    ] {
        eprintln!("phase {name}…");
        let before = standin_stats(&http, &standin_base).await;
        let (s0, c0) = (cpu_seconds(server_pid), cpu_seconds(store_pid));
        let (seconds, lat) = send_all(&http, &url, bodies, args.senders).await;
        let after = standin_stats(&http, &standin_base).await;
        results.push(PhaseResult {
            name,
            instances: args.instances,
            seconds,
            p50_ms: percentile(&lat, 0.5),
            p99_ms: percentile(&lat, 0.99),
            embed: diff(&after, &before),
            server_cpu: cpu_seconds(server_pid) - s0,
            store_cpu: cpu_seconds(store_pid) - c0,
        });
    }
    let rss = peak_rss_mib(server_pid);
    drop(server);
    drop(standin);

    // The ceiling: the same documents, metadata and vectors, straight into the store through
    // the same client, batch for batch, with the same concurrency.
    eprintln!("measuring the ceiling of {}…", store_server.name());
    let store = store_server.client();
    let model = ModelInfo {
        id: "voyage:voyage-3.5".into(),
        dimension: 1024,
    };
    store
        .ensure_collection("ceiling", &model)
        .await
        .expect("ceiling collection");
    let records: Vec<Vec<Record>> = instances
        .chunks(args.batch)
        .map(|c| {
            c.iter()
                .map(|i| {
                    let d =
                        ingest::document::to_document(i, &sync_model::ClusterId::default_cluster());
                    Record {
                        embedding: testkit::embed_text(&d.text, 1024),
                        id: d.id,
                        document: d.text,
                        metadata: d.metadata,
                        content_hash: d.content_hash,
                    }
                })
                .collect()
        })
        .collect();
    let queue = Arc::new(tokio::sync::Mutex::new(records.into_iter()));
    let c0 = cpu_seconds(store_pid);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.senders {
        let queue = queue.clone();
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let Some(batch) = queue.lock().await.next() else {
                    break;
                };
                let t = Instant::now();
                store
                    .upsert("ceiling", &batch)
                    .await
                    .expect("ceiling upsert");
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("writer"));
    }
    let ceiling_seconds = started.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.total_cmp(b));
    let ceiling_cpu = cpu_seconds(store_pid) - c0;
    let ceiling_rate = args.instances as f64 / ceiling_seconds;

    println!();
    println!(
        "ingest benchmark on {}: {} instances, batches of {}, {} concurrent senders, 1,024-dim vectors",
        store_server.name(),
        args.instances,
        args.batch,
        args.senders
    );
    if args.store == StoreKind::Qdrant {
        println!(
            "the store is the Qdrant test server (Python, one request at a time, on Qdrant's \
             embedded engine): its absolute figures are the test server's, not a real Qdrant's"
        );
    }
    println!(
        "{:<10} {:>12} {:>9} {:>9} {:>10} {:>10} {:>12} {:>12}",
        "phase",
        "instances/s",
        "p50 ms",
        "p99 ms",
        "embed req",
        "embed in",
        "server CPU s",
        "store CPU s"
    );
    for r in &results {
        println!(
            "{:<10} {:>12.0} {:>9.1} {:>9.1} {:>10} {:>10} {:>12.1} {:>12.1}",
            r.name,
            r.instances as f64 / r.seconds,
            r.p50_ms,
            r.p99_ms,
            r.embed.requests,
            r.embed.inputs,
            r.server_cpu,
            r.store_cpu
        );
    }
    println!(
        "{:<10} {:>12.0} {:>9.1} {:>9.1} {:>10} {:>10} {:>12} {:>12.1}",
        "ceiling",
        ceiling_rate,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        "-",
        "-",
        "-",
        ceiling_cpu
    );
    println!("server peak RSS: {rss:.1} MiB");
    let initial = args.instances as f64 / results[0].seconds;
    println!(
        "initial phase at {:.0}% of the ceiling of {} measured in this run",
        100.0 * initial / ceiling_rate,
        store_server.name()
    );
    let summary = json!({
        "phases": results.iter().map(|r| json!({
            "phase": r.name,
            "instancesPerSecond": r.instances as f64 / r.seconds,
            "p50Ms": r.p50_ms, "p99Ms": r.p99_ms,
            "embeddingRequests": r.embed.requests, "embeddingInputs": r.embed.inputs,
            "serverCpuSeconds": r.server_cpu, "storeCpuSeconds": r.store_cpu,
        })).collect::<Vec<Value>>(),
        "ceilingInstancesPerSecond": ceiling_rate,
        "serverPeakRssMiB": rss,
    });
    eprintln!("{summary}");
}
