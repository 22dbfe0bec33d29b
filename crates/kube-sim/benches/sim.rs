//! Benchmark of the simulator (prints figures; not a timed test): seeds objects across many CRD
//! types, reports memory (RSS), the time to list everything in pages of 500 over HTTP, and watch
//! fan-out (concurrent watches under a steady write rate: events delivered per second).
//!
//! Run: `scripts/bench-sim` (or `cargo bench -p kube-sim --bench sim`). Knobs (env):
//! BENCH_OBJECTS (100000), BENCH_CRDS (500), BENCH_NAMESPACES (50), BENCH_WATCHES (500),
//! BENCH_WRITES_PER_SEC (200), BENCH_WRITE_SECS (10).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube_sim::{GeneratorConfig, SimConfig, SimServer};
use serde_json::{json, Value};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() {
    // reqwest is built without a crypto provider; install ring once (as the cw binary does).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let objects = env_or("BENCH_OBJECTS", 100_000) as usize;
    let crds = env_or("BENCH_CRDS", 500) as usize;
    let namespaces = env_or("BENCH_NAMESPACES", 50) as usize;
    let watches = env_or("BENCH_WATCHES", 500) as usize;
    let rate = env_or("BENCH_WRITES_PER_SEC", 200);
    let secs = env_or("BENCH_WRITE_SECS", 10);

    let rss0 = rss_mib();
    let sim = SimServer::start(SimConfig::default().with_history_capacity(100_000))
        .await
        .unwrap();
    let t = Instant::now();
    let generated = sim
        .generate(&GeneratorConfig {
            seed: 42,
            namespaces,
            crds,
            objects,
            ..Default::default()
        })
        .unwrap();
    let seed_time = t.elapsed();
    let rss1 = rss_mib();
    println!("kube-sim benchmark");
    println!(
        "seed: {} objects across {} CRD types (+4 built-in types) in {} namespaces: {:.2}s",
        generated.objects,
        generated.custom_types.len(),
        generated.namespaces.len(),
        seed_time.as_secs_f64()
    );
    println!("memory: RSS {rss1:.0} MiB after seeding (process baseline {rss0:.0} MiB, store ~{:.0} MiB)", rss1 - rss0);

    // List everything, every served type, pages of 500.
    let http = reqwest::Client::builder().build().unwrap();
    let t = Instant::now();
    let mut listed = 0usize;
    let mut pages = 0usize;
    for (api_version, _kind, plural, _ns) in sim.served_types() {
        let base = if api_version.contains('/') {
            format!("{}/apis/{api_version}/{plural}", sim.url())
        } else {
            format!("{}/api/{api_version}/{plural}", sim.url())
        };
        let mut token = String::new();
        loop {
            let url = format!("{base}?limit=500&continue={token}");
            let page: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
            pages += 1;
            listed += page["items"].as_array().map_or(0, Vec::len);
            token = page["metadata"]["continue"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if token.is_empty() {
                break;
            }
        }
    }
    let list_time = t.elapsed();
    println!(
        "list everything: {listed} objects in {pages} pages of <=500 over HTTP: {:.2}s ({:.0} objects/s, client JSON parsing included)",
        list_time.as_secs_f64(),
        listed as f64 / list_time.as_secs_f64()
    );

    // Watch fan-out: N watches on ConfigMaps of all namespaces, steady writes.
    let delivered = Arc::new(AtomicU64::new(0));
    let start_rv = sim.resource_version();
    let url = format!(
        "{}/api/v1/configmaps?watch=true&resourceVersion={start_rv}",
        sim.url()
    );
    let mut tasks = Vec::new();
    for _ in 0..watches {
        let (http, url, delivered) = (http.clone(), url.clone(), delivered.clone());
        tasks.push(tokio::spawn(async move {
            let mut resp = http.get(&url).send().await.unwrap();
            while let Ok(Some(chunk)) = resp.chunk().await {
                let n = chunk.iter().filter(|b| **b == b'\n').count() as u64;
                delivered.fetch_add(n, Ordering::Relaxed);
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while sim.open_watches() < watches && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let writes = rate * secs;
    let expected = writes * watches as u64;
    let t = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    for i in 0..writes {
        tick.tick().await;
        sim.apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("fanout-{}", i % 100), "namespace": generated.namespaces[0]},
            "data": {"i": i.to_string()}}))
            .unwrap();
    }
    let write_time = t.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    while delivered.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let total = t.elapsed();
    let got = delivered.load(Ordering::Relaxed);
    println!(
        "watch fan-out: {watches} watches, {writes} writes at {rate}/s over {:.1}s: {got}/{expected} events delivered in {:.2}s = {:.0} events/s delivered, last event {:.0} ms after the last write",
        write_time.as_secs_f64(),
        total.as_secs_f64(),
        got as f64 / total.as_secs_f64(),
        (total - write_time).as_secs_f64() * 1000.0
    );
    println!("memory: RSS {:.0} MiB at the end", rss_mib());
    sim.drop_watches();
    for t in tasks {
        t.abort();
    }
}
