//! What the ingest benches share: their sizes from the environment, the two-worker runtime
//! they measure on, the machine's cores they report, and percentiles of their timings.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ingest::embed::ModelInfo;
use ingest::store::embedded::EmbeddedStore;
use ingest::store::VectorStore;
use sync_model::{ResourceId, ResourceInstance};

/// The number in environment variable `name` (e.g. `CW_BENCH_DOCS`), else `default`.
pub fn count_from_env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A multi-thread runtime of two workers, the same on every machine.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The cores of this machine, as each report says.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The `p` quantile (0 to 1) of `sorted` timings, in milliseconds.
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// An embedded store in a new temporary folder (gone with the folder), holding an empty
/// collection for `model` of each name in `collections`.
pub async fn embedded_store(
    model: &ModelInfo,
    collections: &[&str],
) -> (tempfile::TempDir, Arc<EmbeddedStore>) {
    let data = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(EmbeddedStore::open_in_dir(data.path()).expect("open store"));
    for collection in collections {
        store
            .ensure_collection(collection, model)
            .await
            .expect("collection");
    }
    (data, store)
}

/// An object of `kind` (kind, apiVersion, group) described by its `description` annotation,
/// created at the benches' one time, without health, images or owner.
pub fn instance_of(
    (kind, api_version, api_group): (&str, &str, &str),
    namespace: String,
    name: String,
    labels: BTreeMap<String, String>,
    description: &str,
) -> ResourceInstance {
    ResourceInstance {
        id: ResourceId::new(Some(&namespace), api_version, kind, &name),
        namespace,
        name,
        kind: kind.into(),
        api_version: api_version.into(),
        api_group: api_group.into(),
        labels,
        annotations: BTreeMap::from([("description".to_string(), description.to_string())]),
        created_at: "2026-02-20T10:00:00Z".into(),
        health: None,
        images: vec![],
        owner: None,
    }
}
