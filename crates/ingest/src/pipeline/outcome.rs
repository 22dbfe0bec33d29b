//! What a sync reports: its outcome, its error (transient or not), and the metrics and
//! span every `apply_sync` (instances, capabilities) records around its work.

use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use sync_model::{FieldError, ParkedInstance};
use tracing::Instrument;

use crate::embed::EmbedError;
use crate::metrics::{IngestMetrics, Label};
use crate::store::StoreError;

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    /// Distinct ids upserted (changed, new and unchanged), parked ones not counted.
    pub upserted: usize,
    /// Distinct ids deleted (ids also upserted are not counted: they were recreated).
    pub deleted: usize,
    /// Documents embedded and written (new or changed).
    pub embedded: usize,
    /// Documents already stored with the same content hash: not embedded, not rewritten.
    pub unchanged: usize,
    /// Documents whose metadata alone changed (health): rewritten with their stored
    /// vector, not embedded.
    pub metadata_only: usize,
    /// Upserts refused by the provider or the store whatever is retried: not stored.
    pub parked: Vec<ParkedInstance>,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The payload breaks the contract; nothing was changed. Not worth retrying.
    #[error("invalid sync payload: {} problem(s)", .0.len())]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SyncError {
    /// True when the same payload may succeed later (store or provider unavailable).
    pub fn is_transient(&self) -> bool {
        match self {
            SyncError::Invalid(_) => false,
            SyncError::Embed(e) => e.is_transient(),
            SyncError::Store(e) => e.is_transient(),
        }
    }
}

/// The counters one kind of sync (instances, capabilities) feeds.
pub(crate) struct SyncCounters<'a> {
    pub requests: &'a Family<Label, Counter>,
    pub upserted: &'a Counter,
    pub deleted: &'a Counter,
}

/// Runs one sync's `work` inside `span` (which has `embedded` and `unchanged` fields to
/// fill), timing it and counting its outcome: what every `apply_sync` does around its work.
pub(crate) async fn instrumented(
    metrics: &IngestMetrics,
    counters: SyncCounters<'_>,
    span: tracing::Span,
    work: impl std::future::Future<Output = Result<SyncOutcome, SyncError>>,
) -> Result<SyncOutcome, SyncError> {
    let started = Instant::now();
    let result = work.instrument(span.clone()).await;
    metrics
        .sync_seconds
        .observe(started.elapsed().as_secs_f64());
    if let Ok(o) = &result {
        span.record("embedded", o.embedded);
        span.record("unchanged", o.unchanged);
        counters.upserted.inc_by(o.embedded as u64);
        counters.deleted.inc_by(o.deleted as u64);
        metrics.embeddings_skipped.inc_by(o.unchanged as u64);
    }
    counters
        .requests
        .get_or_create(&[("outcome", outcome_label(&result))])
        .inc();
    result
}

/// The `outcome` label of a sync request: ok, invalid, unavailable or error.
pub(crate) fn outcome_label<T>(result: &Result<T, SyncError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(SyncError::Invalid(_)) => "invalid",
        Err(e) if e.is_transient() => "unavailable",
        Err(_) => "error",
    }
}
