//! The store calls both pipelines make, each timed into `store_seconds` by operation:
//! the collection made ready, stored hashes read, deletes and upserts written (a refused
//! upsert halved until the refused records stand alone).

use std::collections::HashMap;
use std::time::Instant;

use super::SyncError;
use crate::embed::{Embedder, ModelInfo};
use crate::metrics::IngestMetrics;
use crate::store::{Record, StoreError, VectorStore};

/// Upserts `records`; when the store refuses the write as a whole (not unavailable), it is
/// halved until each refused record stands alone, and those are returned with the store's
/// reason while the others are written. If the store takes none of them, the refusal is
/// the store's, not a record's: the error is returned.
pub(crate) async fn upsert_isolating(
    store: &dyn VectorStore,
    collection: &str,
    metrics: &IngestMetrics,
    records: &[Record],
) -> Result<Vec<(String, String)>, SyncError> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let t = Instant::now();
    let first = store.upsert(collection, records).await;
    observe_store(metrics, "upsert", t);
    let first_refusal = match first {
        Ok(()) => return Ok(Vec::new()),
        Err(StoreError::Rejected(m)) if records.len() > 1 => m,
        Err(e) => return Err(e.into()),
    };
    tracing::warn!(
        records = records.len(),
        error = %first_refusal,
        "the store refused a write; halving it to find the refused record"
    );
    let mut refused = Vec::new();
    let mut any_written = false;
    let mid = records.len() / 2;
    let mut pending = vec![&records[mid..], &records[..mid]];
    while let Some(batch) = pending.pop() {
        let t = Instant::now();
        let result = store.upsert(collection, batch).await;
        observe_store(metrics, "upsert", t);
        match result {
            Ok(()) => any_written = true,
            Err(StoreError::Rejected(m)) if batch.len() == 1 => {
                refused.push((batch[0].id.clone(), m));
            }
            Err(StoreError::Rejected(_)) => {
                let mid = batch.len() / 2;
                pending.push(&batch[mid..]);
                pending.push(&batch[..mid]);
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !any_written {
        return Err(StoreError::Rejected(first_refusal).into());
    }
    Ok(refused)
}

/// Deletes `deletes`, then upserts `records`, timing each store call.
pub(crate) async fn write_changes(
    store: &dyn VectorStore,
    collection: &str,
    metrics: &IngestMetrics,
    deletes: &[String],
    records: &[Record],
) -> Result<(), SyncError> {
    if !deletes.is_empty() {
        let t = Instant::now();
        store.delete(collection, deletes).await?;
        observe_store(metrics, "delete", t);
    }
    if !records.is_empty() {
        let t = Instant::now();
        store.upsert(collection, records).await?;
        observe_store(metrics, "upsert", t);
    }
    Ok(())
}

/// The model's identity, once the collection exists for it (created, or checked to hold
/// vectors of the same model).
pub(crate) async fn prepare_collection(
    store: &dyn VectorStore,
    embedder: &dyn Embedder,
    collection: &str,
) -> Result<ModelInfo, SyncError> {
    let model = embedder.model_info().await?;
    store.ensure_collection(collection, &model).await?;
    Ok(model)
}

/// The stored content hashes of `ids` (nothing read when there are none): what a sync
/// compares to skip unchanged documents.
pub(crate) async fn stored_hashes_of(
    store: &dyn VectorStore,
    collection: &str,
    metrics: &IngestMetrics,
    ids: &[String],
) -> Result<HashMap<String, String>, SyncError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let t = Instant::now();
    let stored = store.content_hashes(collection, ids).await?;
    observe_store(metrics, "hashes", t);
    Ok(stored)
}

pub(crate) fn observe_store(metrics: &IngestMetrics, op: &'static str, since: Instant) {
    metrics
        .store_seconds
        .get_or_create(&[("op", op)])
        .observe(since.elapsed().as_secs_f64());
}
