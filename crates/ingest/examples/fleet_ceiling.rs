//! The direct-write ceiling of a store, for `scripts/bench-fleet`: N instance documents with
//! ready vectors (the Voyage stand-in's, computed here) written straight to the store through
//! the client `cw serve` builds, in batches of the watchers' size from a few concurrent
//! writers, into a collection of its own (deleted again by the script's fresh store or left
//! aside). No embedding, no HTTP API, no diff: what the store alone can take.
//!
//!   fleet_ceiling (--chroma-url URL | --qdrant-url URL | --data-dir DIR) --documents N
//!                 [--batch 50] [--writers 4] [--collection fleet_ceiling]
//!
//! Prints one line: `documents seconds documents_per_second`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ingest::embed::ModelInfo;
use ingest::store::chroma::{ChromaConfig, ChromaStore};
use ingest::store::embedded::EmbeddedStore;
use ingest::store::qdrant::{QdrantConfig, QdrantStore};
use ingest::store::{Record, VectorStore};
use sync_model::{ClusterId, ResourceId, ResourceInstance};

const DIMENSION: usize = 1024;
const TEAMS: &[&str] = &[
    "payments", "checkout", "search", "identity", "billing", "data",
];
const KINDS: &[(&str, &str)] = &[
    ("Deployment", "apps/v1"),
    ("Service", "v1"),
    ("ConfigMap", "v1"),
    ("Certificate", "cert-manager.io/v1"),
    ("Cluster", "postgresql.cnpg.io/v1"),
];

/// Document `i`: a fleet object's shape (kind, team namespace, five labels, an image, a
/// description) and a cluster of its own, so every document is distinct.
fn instance(i: usize) -> (ResourceInstance, ClusterId) {
    let (kind, api_version) = KINDS[i % KINDS.len()];
    let team = TEAMS[i / 5 % TEAMS.len()];
    let name = format!("app-{}-component-{i}", i % 16);
    let labels = [
        ("app.kubernetes.io/name", format!("app-{}", i % 16)),
        ("app.kubernetes.io/component", "api".to_string()),
        ("app.kubernetes.io/part-of", format!("{team}-app")),
        ("team", team.to_string()),
        ("environment", ["prod", "staging", "dev"][i % 3].to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let annotations = [(
        "description".to_string(),
        format!("{kind} {name} of the {team} team: serves the public HTTP API."),
    )]
    .into_iter()
    .collect();
    let group = api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
    let instance = ResourceInstance {
        id: ResourceId::new(Some(team), api_version, kind, &name),
        namespace: team.to_string(),
        name,
        kind: kind.to_string(),
        api_version: api_version.to_string(),
        api_group: group.to_string(),
        labels,
        annotations,
        created_at: "2026-02-20T10:00:00Z".into(),
        health: None,
        images: vec![format!("registry.acme.io/{team}/app:v1.{}.0", i % 20)],
        owner: None,
    };
    let cluster = ClusterId::new(&format!("c{:02}", i % 50 + 1)).expect("a valid cluster id");
    (instance, cluster)
}

fn value(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |flag: &str, default: usize| {
        value(&args, flag).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{flag} takes a number, not {v}"))
        })
    };
    let documents = number("--documents", 10_000);
    let batch = number("--batch", 50).max(1);
    let writers = number("--writers", 4).max(1);
    let collection = value(&args, "--collection").unwrap_or_else(|| "fleet_ceiling".into());
    let store: Arc<dyn VectorStore> = if let Some(url) = value(&args, "--chroma-url") {
        Arc::new(ChromaStore::new(ChromaConfig::new(url)).expect("a Chroma client"))
    } else if let Some(url) = value(&args, "--qdrant-url") {
        Arc::new(QdrantStore::new(QdrantConfig::new(url)).expect("a Qdrant client"))
    } else if let Some(dir) = value(&args, "--data-dir") {
        Arc::new(EmbeddedStore::open_in_dir(&PathBuf::from(dir)).expect("the embedded store"))
    } else {
        panic!("give --chroma-url, --qdrant-url or --data-dir");
    };
    let model = ModelInfo {
        id: "voyage:voyage-3.5".into(),
        dimension: DIMENSION,
    };
    store
        .ensure_collection(&collection, &model)
        .await
        .expect("the ceiling's collection");
    // Vectors are made before the clock starts: the ceiling is the store's, not this client's.
    let batches: Vec<Vec<Record>> = (0..documents)
        .collect::<Vec<_>>()
        .chunks(batch)
        .map(|chunk| {
            chunk
                .iter()
                .map(|&i| {
                    let (instance, cluster) = instance(i);
                    let d = ingest::document::to_document(&instance, &cluster);
                    Record {
                        embedding: testkit::embed_text(&d.text, DIMENSION),
                        id: d.id,
                        document: d.text,
                        metadata: d.metadata,
                        content_hash: d.content_hash,
                    }
                })
                .collect()
        })
        .collect();
    let queue = Arc::new(tokio::sync::Mutex::new(batches.into_iter()));
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let (queue, store, collection) = (queue.clone(), store.clone(), collection.clone());
            tokio::spawn(async move {
                loop {
                    let Some(records) = queue.lock().await.next() else {
                        break;
                    };
                    store
                        .upsert(&collection, &records)
                        .await
                        .expect("a ceiling write");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("a ceiling writer");
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("{documents} {seconds:.2} {:.1}", documents as f64 / seconds);
}
