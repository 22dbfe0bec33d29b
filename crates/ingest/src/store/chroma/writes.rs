//! Writes made together. Writes (upserts and deletes) wait for this client's one write turn
//! ([`ChromaStore`]'s `writes` lock); whoever gets the turn makes all of them, in the order
//! they came, each run of one kind on one collection in as few requests as the size limits
//! allow: Chroma's CPU per stored document falls with the rows per request
//! (`scripts/bench-chroma-writes --batch N`, docs/ingest.md), and the watcher's two batches
//! in flight, or several clusters' watchers, otherwise write 50 at a time.
//!
//! Upserts are split by rows and by bytes: Chroma 1.5 answered one 2,000-row upsert of
//! 1,024-dimension vectors with 413 although it reports a max batch size of 5,461, and a
//! 413 halves the request.

use std::collections::{HashMap, HashSet};

use serde_json::json;

use super::wire::{estimated_row_bytes, UpsertBody};
use super::ChromaStore;
use crate::store::chunks::{send_in_chunks, write_in_chunks, Limits, IDS_PER_REQUEST};
use crate::store::remote::CallError;
use crate::store::{Record, StoreError};

/// One caller's write, waiting for a write turn ([`ChromaStore::write_queued`]).
pub(super) struct QueuedWrite {
    collection: String,
    /// `{collections_url}/{collection id}`.
    url: String,
    op: WriteOp,
    done: tokio::sync::oneshot::Sender<Result<(), StoreError>>,
}

pub(super) enum WriteOp {
    Upsert(Vec<Record>),
    Delete(Vec<String>),
}

impl QueuedWrite {
    /// Whether `next` can go to Chroma in the same requests as this write.
    fn joins(&self, next: &QueuedWrite) -> bool {
        self.url == next.url
            && matches!(
                (&self.op, &next.op),
                (WriteOp::Upsert(_), WriteOp::Upsert(_)) | (WriteOp::Delete(_), WriteOp::Delete(_))
            )
    }
}

/// The rows of several callers' upserts to one collection as one list; where two hold the
/// same id, the later caller's row replaces the earlier one in its place, as writing them
/// one after the other would leave it.
fn merged_rows(run: &[QueuedWrite]) -> Vec<Record> {
    let mut at: HashMap<&str, usize> = HashMap::new();
    let mut rows: Vec<Record> = Vec::new();
    for write in run {
        let WriteOp::Upsert(records) = &write.op else {
            continue;
        };
        for record in records {
            match at.get(record.id.as_str()) {
                Some(&i) => rows[i] = record.clone(),
                None => {
                    at.insert(&record.id, rows.len());
                    rows.push(record.clone());
                }
            }
        }
    }
    rows
}

/// The ids of several callers' deletes from one collection, each once.
fn merged_ids(run: &[QueuedWrite]) -> Vec<String> {
    let mut seen = HashSet::new();
    run.iter()
        .flat_map(|w| match &w.op {
            WriteOp::Delete(ids) => ids.as_slice(),
            WriteOp::Upsert(_) => &[],
        })
        .filter(|id| seen.insert(id.as_str()))
        .cloned()
        .collect()
}

impl ChromaStore {
    /// Queues `op` and waits until it is made: in this caller's write turn, with whatever
    /// else waits for it, or in an earlier caller's turn (which answers before it ends).
    pub(super) async fn queue_write(
        &self,
        collection: &str,
        url: String,
        op: WriteOp,
    ) -> Result<(), StoreError> {
        let (done, mut outcome) = tokio::sync::oneshot::channel();
        self.queued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(QueuedWrite {
                collection: collection.to_string(),
                url,
                op,
                done,
            });
        let cancelled = |_| {
            Err(StoreError::Unavailable(
                "the write holding these changes was cancelled before Chroma answered; retry"
                    .into(),
            ))
        };
        let turn = tokio::select! {
            biased;
            done = &mut outcome => return done.unwrap_or_else(cancelled),
            turn = self.writes.lock() => turn,
        };
        if let Ok(done) = outcome.try_recv() {
            return done;
        }
        self.write_queued().await;
        drop(turn);
        outcome.await.unwrap_or_else(cancelled)
    }

    /// Makes the writes waiting for the write turn (the caller holds it) in the order they
    /// came, each run of one kind on one collection together, and tells each waiting caller
    /// how its write went. A run that Chroma refuses is made again caller by caller, so that
    /// one sync's refused row never fails another's.
    async fn write_queued(&self) {
        let waiting = std::mem::take(&mut *self.queued.lock().unwrap_or_else(|p| p.into_inner()));
        let mut runs: Vec<Vec<QueuedWrite>> = Vec::new();
        for write in waiting {
            match runs.last_mut() {
                Some(run) if run[0].joins(&write) => run.push(write),
                _ => runs.push(vec![write]),
            }
        }
        for run in runs {
            let (collection, url) = (run[0].collection.clone(), run[0].url.clone());
            let result = if run.len() == 1 {
                self.write(&collection, &url, &run[0].op).await
            } else {
                let op = match run[0].op {
                    WriteOp::Upsert(_) => WriteOp::Upsert(merged_rows(&run)),
                    WriteOp::Delete(_) => WriteOp::Delete(merged_ids(&run)),
                };
                tracing::debug!(writes = run.len(), "writes made together");
                match self.write(&collection, &url, &op).await {
                    Err(StoreError::Rejected(reason)) => {
                        tracing::debug!(%reason, "Chroma refused writes made together; making each apart");
                        for write in run {
                            let result = self.write(&collection, &url, &write.op).await;
                            let _ = write.done.send(result);
                        }
                        continue;
                    }
                    other => other,
                }
            };
            for write in run {
                let _ = write.done.send(result.clone());
            }
        }
    }

    /// Makes one write: rows upserted in requests within the configured rows and bytes,
    /// ids deleted [`IDS_PER_REQUEST`] at a time.
    async fn write(&self, collection: &str, url: &str, op: &WriteOp) -> Result<(), StoreError> {
        let made = match op {
            WriteOp::Upsert(rows) => {
                let url = &format!("{url}/upsert");
                let limits = Limits {
                    max_items: self.config.max_rows_per_write,
                    max_bytes: self.config.max_bytes_per_write,
                    bytes_of: estimated_row_bytes,
                };
                write_in_chunks(
                    rows,
                    &limits,
                    |part| self.upsert_request(url, part),
                    CallError::is_too_large,
                )
                .await
            }
            WriteOp::Delete(ids) => {
                let url = &format!("{url}/delete");
                send_in_chunks(ids, &Limits::items(IDS_PER_REQUEST), |chunk| async move {
                    self.call(self.http.client.post(url).json(&json!({ "ids": chunk })))
                        .await
                })
                .await
                .map(|_| ())
            }
        };
        made.map_err(|e| self.collections.failed(collection, e))
    }

    async fn upsert_request(&self, url: &str, rows: &[Record]) -> Result<(), CallError> {
        let bytes = serde_json::to_vec(&UpsertBody { rows }).map_err(|e| {
            CallError::Store(StoreError::Rejected(format!("cannot encode records: {e}")))
        })?;
        self.call(
            self.http
                .client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes),
        )
        .await
        .map(|_| ())
    }
}
