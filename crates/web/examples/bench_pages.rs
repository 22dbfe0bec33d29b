//! Server time of the overview and of search pages, through the web router in process, over
//! the embedded store filled with `UI_BENCH_CLUSTERS` clusters of `UI_BENCH_OBJECTS` objects
//! each (one in twenty failing, one in forty progressing), with a hash "embedding" so that
//! the model's time is not counted. Prints each page's p50 and p95 over `UI_BENCH_RUNS`
//! answers, and the first view's weight: the overview's HTML, style and script, gzipped.
//!
//!   cargo run -p web --example bench_pages
//!   UI_BENCH_CLUSTERS=50 UI_BENCH_OBJECTS=5000 cargo run --release -p web --example bench_pages

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::Request;
use axum::Router;
use ingest::embed::{EmbedError, Embedder, InputType, ModelInfo};
use ingest::pipeline::Pipeline;
use ingest::server::{AppState, ServerConfig};
use ingest::store::embedded::EmbeddedStore;
use serde_json::json;
use sync_model::SyncPayload;
use tower::ServiceExt;

const DIM: usize = 384;
const BATCH: usize = 1_000;
const KINDS: [(&str, &str, &str); 4] = [
    ("Deployment", "apps/v1", "apps"),
    ("StatefulSet", "apps/v1", "apps"),
    ("Service", "v1", ""),
    ("Pod", "v1", ""),
];
const WORDS: [&str; 8] = [
    "payments",
    "checkout",
    "catalog",
    "search",
    "ledger",
    "billing",
    "orders",
    "inventory",
];

struct HashEmbedder;

#[async_trait]
impl Embedder for HashEmbedder {
    async fn model_info(&self) -> Result<ModelInfo, EmbedError> {
        Ok(ModelInfo {
            id: "bench:hash".into(),
            dimension: DIM,
        })
    }
    async fn embed(&self, texts: &[String], _: InputType) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|t| unit(t)).collect())
    }
}

fn unit(text: &str) -> Vec<f32> {
    let mut seed = text.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    let v: Vec<f32> = (0..DIM)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 2000) as f32 / 1000.0 - 1.0
        })
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn object(i: usize) -> serde_json::Value {
    let (kind, api_version, group) = KINDS[i % KINDS.len()];
    let word = WORDS[i % WORDS.len()];
    let ns = format!("team-{}", i % 40);
    let name = format!("{word}-{i}");
    let health = match i % 40 {
        0 | 20 => json!({"status": "Failed", "reason": "0/1 replicas ready"}),
        7 => json!({"status": "InProgress", "reason": "1/3 replicas ready"}),
        _ => json!({"status": "Current"}),
    };
    json!({
        "id": format!("{ns}/{api_version}/{kind}/{name}"),
        "namespace": ns, "name": name, "kind": kind, "apiVersion": api_version, "apiGroup": group,
        "labels": {"app": word, "team": format!("t{}", i % 40)},
        "annotations": {"description": format!("The {word} service of team {}.", i % 40)},
        "createdAt": "2026-02-20T10:00:00Z",
        "health": health,
    })
}

async fn time(app: &Router, path: &str, runs: usize) -> (Duration, Duration, usize) {
    let mut took = Vec::with_capacity(runs);
    let mut size = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let res = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("answer");
        assert!(res.status().is_success(), "{path}: {}", res.status());
        let body = axum::body::to_bytes(res.into_body(), 64 << 20)
            .await
            .expect("body");
        took.push(started.elapsed());
        size = body.len();
    }
    took.sort();
    let at = |p: f64| took[((took.len() as f64 - 1.0) * p).round() as usize];
    (at(0.5), at(0.95), size)
}

async fn body_of(app: &Router, path: &str) -> Vec<u8> {
    let res = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("answer");
    axum::body::to_bytes(res.into_body(), 64 << 20)
        .await
        .expect("body")
        .to_vec()
}

fn gzipped(bytes: &[u8]) -> usize {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip").len()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let clusters = env("UI_BENCH_CLUSTERS", 5);
    let objects = env("UI_BENCH_OBJECTS", 2_000);
    let runs = env("UI_BENCH_RUNS", 30);
    let data = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(EmbeddedStore::open_in_dir(data.path()).expect("store"));
    let state = AppState::new(
        Pipeline::new(store, Arc::new(HashEmbedder), "instances"),
        ServerConfig::default(),
    );
    let filled = Instant::now();
    for c in 0..clusters {
        for start in (0..objects).step_by(BATCH) {
            let upserts: Vec<_> = (start..(start + BATCH).min(objects)).map(object).collect();
            let payload: SyncPayload = serde_json::from_value(
                json!({"cluster": format!("bench-{c:02}"), "upserts": upserts, "deletes": []}),
            )
            .expect("payload");
            state.pipeline().apply_sync(payload).await.expect("sync");
        }
    }
    eprintln!(
        "filled {} objects in {clusters} clusters in {:.1?}",
        clusters * objects,
        filled.elapsed()
    );
    let api = ingest::server::router(state.clone());
    let app = web::router(web::Web { state, live: None });
    println!(
        "{:<48} {:>9} {:>9} {:>9}",
        "page", "p50 ms", "p95 ms", "bytes"
    );
    for path in [
        "/",
        "/ui/overview",
        "/search?q=payments+service",
        "/search?q=payments&health=unhealthy",
        "/search?kind=Deployment&health=failing",
        "/search?q=ledger&cluster=bench-00",
    ] {
        let (p50, p95, size) = time(&app, path, runs).await;
        println!(
            "{path:<48} {:>9.1} {:>9.1} {size:>9}",
            p50.as_secs_f64() * 1e3,
            p95.as_secs_f64() * 1e3
        );
    }
    // The same searches through the JSON API: what the page adds is the difference.
    for (name, body) in [
        (
            "POST /api/v1/search payments service",
            json!({"query": "payments service", "limit": 30}),
        ),
        (
            "POST /api/v1/search payments unhealthy",
            json!({"query": "payments", "health": "unhealthy", "limit": 30}),
        ),
    ] {
        let mut took = Vec::with_capacity(runs);
        for _ in 0..runs {
            let started = Instant::now();
            let res = api
                .clone()
                .oneshot(
                    Request::post("/api/v1/search")
                        .header("content-type", "application/json")
                        .body(Body::from(body.to_string()))
                        .expect("request"),
                )
                .await
                .expect("answer");
            assert!(res.status().is_success(), "{name}: {}", res.status());
            axum::body::to_bytes(res.into_body(), 64 << 20)
                .await
                .expect("body");
            took.push(started.elapsed());
        }
        took.sort();
        let at = |p: f64| took[((took.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "{name:<48} {:>9.1} {:>9.1}",
            at(0.5).as_secs_f64() * 1e3,
            at(0.95).as_secs_f64() * 1e3
        );
    }
    let html = body_of(&app, "/").await;
    let page = String::from_utf8_lossy(&html).to_string();
    let asset = |marker: &str| -> String {
        page.split(marker)
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default()
            .to_string()
    };
    let css = body_of(&app, &asset(r#"rel="stylesheet" href=""#)).await;
    let js = body_of(&app, &asset(r#"<script src=""#)).await;
    let (h, c, j) = (gzipped(&html), gzipped(&css), gzipped(&js));
    println!(
        "first view (overview): HTML {} B, CSS {} B, JS {} B; gzipped {h} + {c} + {j} = {} B",
        html.len(),
        css.len(),
        js.len(),
        h + c + j
    );
}
