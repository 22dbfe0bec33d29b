//! Embedding inputs against distinct texts when several clusters send the same objects
//! (`scripts/bench-embed-once` runs it): the ingest pipeline in process, the Voyage stand-in
//! (its inputs counted), and the embedded store in a temporary directory, Chroma or the
//! Qdrant test server. Each cluster sends the same `--objects` in batches of 50, the clusters
//! one after another, then all at once into a fresh collection.
//!
//!   embed_once [--clusters 2] [--objects 2000] [--store embedded|chroma|qdrant]

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingest::embed::voyage::{VoyageConfig, VoyageEmbedder};
use ingest::pipeline::Pipeline;
use ingest::store::chroma::{ChromaConfig, ChromaStore};
use ingest::store::embedded::EmbeddedStore;
use ingest::store::qdrant::{QdrantConfig, QdrantStore};
use ingest::store::VectorStore;
use sync_model::{ResourceId, ResourceInstance, SyncPayload};
use testkit::VoyageStandin;

/// Object `i` of a platform stack: a few kinds, labels and descriptions.
fn object(i: usize) -> ResourceInstance {
    let (kind, api_version) = [
        ("Deployment", "apps/v1"),
        ("Service", "v1"),
        ("ConfigMap", "v1"),
    ][i % 3];
    let namespace = ["monitoring", "ingress", "cert-manager", "logging"][i % 4].to_string();
    let name = format!("component-{i}");
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), name.clone()),
        ("app.kubernetes.io/part-of".to_string(), namespace.clone()),
    ]);
    let annotations =
        BTreeMap::from([("description".to_string(), format!("Platform component {i}"))]);
    ResourceInstance {
        id: ResourceId::new(Some(&namespace), api_version, kind, &name),
        namespace,
        name,
        kind: kind.into(),
        api_version: api_version.into(),
        api_group: api_version.split_once('/').map_or("", |(g, _)| g).into(),
        labels,
        annotations,
        created_at: "2026-02-20T10:00:00Z".into(),
        health: None,
        images: Vec::new(),
        owner: None,
    }
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

/// Every cluster sends `objects` in batches of 50 into `collection`; `at_once` sends the
/// clusters' batches concurrently. Returns the seconds taken.
async fn send(
    pipeline: &Pipeline,
    clusters: usize,
    objects: &[ResourceInstance],
    at_once: bool,
) -> f64 {
    let t = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clusters {
        let pipeline = pipeline.clone();
        let objects = objects.to_vec();
        let task = async move {
            for batch in objects.chunks(50) {
                let payload = SyncPayload {
                    cluster: Some(format!("cluster-{c}")),
                    upserts: batch.to_vec(),
                    deletes: Vec::new(),
                };
                pipeline.apply_sync(payload).await.expect("a sync");
            }
        };
        if at_once {
            tasks.push(tokio::spawn(task));
        } else {
            task.await;
        }
    }
    for task in tasks {
        task.await.expect("a cluster's syncs");
    }
    t.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let clusters: usize = arg("--clusters", "2").parse().expect("--clusters N");
    let n: usize = arg("--objects", "2000").parse().expect("--objects N");
    let kind = arg("--store", "embedded");
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, _server): (Arc<dyn VectorStore>, Box<dyn std::any::Any>) = match kind.as_str() {
        "embedded" => (
            Arc::new(EmbeddedStore::open_in_dir(dir.path()).expect("embedded store")),
            Box::new(()),
        ),
        "chroma" => {
            let s = testkit::ChromaServer::start();
            let store = ChromaStore::new(ChromaConfig::new(s.url())).expect("chroma client");
            (Arc::new(store), Box::new(s))
        }
        "qdrant" => {
            let s = testkit::QdrantServer::start();
            let store = QdrantStore::new(QdrantConfig::new(s.url())).expect("qdrant client");
            (Arc::new(store), Box::new(s))
        }
        other => panic!("--store embedded|chroma|qdrant, not {other}"),
    };
    let voyage = VoyageStandin::start().await;
    // A provider call takes time, as a real one does.
    voyage.set_delay(Duration::from_millis(50));
    let mut config = VoyageConfig::new("bench");
    config.base_url = voyage.base_url();
    let embedder = Arc::new(VoyageEmbedder::new(config).expect("voyage client"));
    let objects: Vec<ResourceInstance> = (0..n).map(object).collect();
    let distinct: HashSet<String> = objects.iter().map(|o| o.document_text()).collect();

    for (name, at_once) in [("one after another", false), ("all at once", true)] {
        voyage.reset_stats();
        let collection = format!(
            "embed-once-{}",
            if at_once { "together" } else { "in-turn" }
        );
        let pipeline = Pipeline::new(store.clone(), embedder.clone(), collection);
        let seconds = send(&pipeline, clusters, &objects, at_once).await;
        let stored = store.count(pipeline.collection()).await.expect("count");
        println!(
            "{kind}, {clusters} clusters x {n} objects, {name}: {} embedding inputs for {} distinct texts ({:.2}x; {clusters}.00x when each copy was embedded), {stored} documents stored, {seconds:.1} s",
            voyage.inputs(),
            distinct.len(),
            voyage.inputs() as f64 / distinct.len() as f64,
        );
    }
}
