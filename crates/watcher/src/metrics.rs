//! The counters and gauges an operator graphs, in Prometheus text format at `/metrics`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabels {
    /// `apps/v1/Deployment`
    pub resource_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    /// `upsert` or `delete`
    pub op: String,
}

/// Cheap to clone: every field shares its value.
#[derive(Clone)]
pub struct Metrics {
    pub events_seen: Family<TypeLabels, Counter>,
    pub items_sent: Family<OpLabels, Counter>,
    pub batches_sent: Counter,
    pub send_retries: Counter,
    /// Items the ingest server rejected (4xx) and that were dropped.
    pub items_rejected: Counter,
    pub watch_errors: Family<TypeLabels, Counter>,
    pub pending_changes: Gauge,
    pub watched_types: Gauge,
    pub resync_seconds: Histogram,
    /// Capability syncs that succeeded, and attempts that failed.
    pub capability_syncs: Counter,
    pub capability_sync_failures: Counter,
    /// Capability records sent (upserts plus deletes).
    pub capability_records_sent: Counter,
    registry: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Self {
        let events_seen = Family::<TypeLabels, Counter>::default();
        let items_sent = Family::<OpLabels, Counter>::default();
        let batches_sent = Counter::default();
        let send_retries = Counter::default();
        let items_rejected = Counter::default();
        let watch_errors = Family::<TypeLabels, Counter>::default();
        let pending_changes = Gauge::default();
        let watched_types = Gauge::default();
        let resync_seconds = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        let capability_syncs = Counter::default();
        let capability_sync_failures = Counter::default();
        let capability_records_sent = Counter::default();
        let mut r = Registry::with_prefix("cw_watcher");
        r.register(
            "events_seen",
            "Watch events received, by type",
            events_seen.clone(),
        );
        r.register(
            "items_sent",
            "Upserts and deletes accepted by the ingest server",
            items_sent.clone(),
        );
        r.register(
            "batches_sent",
            "Batches accepted by the ingest server",
            batches_sent.clone(),
        );
        r.register(
            "send_retries",
            "Sends retried after a retryable failure",
            send_retries.clone(),
        );
        r.register(
            "items_rejected",
            "Items rejected by the ingest server (4xx) and dropped",
            items_rejected.clone(),
        );
        r.register(
            "watch_errors",
            "Watch stream errors (each followed by a resume or relist)",
            watch_errors.clone(),
        );
        r.register(
            "pending_changes",
            "Changes waiting in the debounce buffer",
            pending_changes.clone(),
        );
        r.register(
            "watched_types",
            "Resource types being watched",
            watched_types.clone(),
        );
        r.register(
            "resync_duration_seconds",
            "Duration of full resyncs",
            resync_seconds.clone(),
        );
        r.register(
            "capability_syncs",
            "Capability syncs (one record per watched type) that succeeded",
            capability_syncs.clone(),
        );
        r.register(
            "capability_sync_failures",
            "Capability sync attempts that failed (retried when retryable)",
            capability_sync_failures.clone(),
        );
        r.register(
            "capability_records_sent",
            "Capability records sent to ingest (upserts plus deletes)",
            capability_records_sent.clone(),
        );
        Metrics {
            events_seen,
            items_sent,
            batches_sent,
            send_retries,
            items_rejected,
            watch_errors,
            pending_changes,
            watched_types,
            resync_seconds,
            capability_syncs,
            capability_sync_failures,
            capability_records_sent,
            registry: Arc::new(r),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
