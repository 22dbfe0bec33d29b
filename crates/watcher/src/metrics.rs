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
    /// Empty syncs sent while nothing else was (`heartbeat`).
    pub heartbeats_sent: Counter,
    pub send_retries: Counter,
    /// Items the ingest server rejected (4xx) and that were dropped.
    pub items_rejected: Counter,
    pub watch_errors: Family<TypeLabels, Counter>,
    pub pending_changes: Gauge,
    pub watched_types: Gauge,
    /// API groups whose discovery fails: their types are not watched until they answer.
    pub unavailable_api_groups: Gauge,
    /// Watched types the API server currently refuses (403); their documents are kept for
    /// the grace period.
    pub forbidden_types: Gauge,
    /// 1 while the ingest server refuses this watcher's credentials (401/403; see /readyz).
    pub ingest_refused: Gauge,
    pub resync_seconds: Histogram,
    /// Capability syncs that succeeded, and attempts that failed.
    pub capability_syncs: Counter,
    pub capability_sync_failures: Counter,
    /// Capability records sent (upserts plus deletes).
    pub capability_records_sent: Counter,
    /// Access snapshots (the cluster's RBAC rules, types and issuer) the server accepted.
    pub access_snapshots_sent: Counter,
    /// Roles, ClusterRoles, RoleBindings and ClusterRoleBindings held for the access snapshot.
    pub access_rbac_objects: Gauge,
    /// 1 when the last access snapshot held the ServiceAccount token issuer.
    pub access_issuer_known: Gauge,
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

/// `metric`, registered in `r` under `name` with `help`.
fn registered<M: prometheus_client::registry::Metric + Clone>(
    r: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    r.register(name, help, metric.clone());
    metric
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cw_watcher");
        let r = &mut registry;
        let metrics = Metrics {
            events_seen: registered(
                r,
                "events_seen",
                "Watch events received, by type",
                Family::default(),
            ),
            items_sent: registered(
                r,
                "items_sent",
                "Upserts and deletes accepted by the ingest server",
                Family::default(),
            ),
            batches_sent: registered(
                r,
                "batches_sent",
                "Batches accepted by the ingest server",
                Counter::default(),
            ),
            heartbeats_sent: registered(
                r,
                "heartbeats_sent",
                "Empty syncs sent so that the ingest server hears from a quiet watcher",
                Counter::default(),
            ),
            send_retries: registered(
                r,
                "send_retries",
                "Sends retried after a retryable failure",
                Counter::default(),
            ),
            items_rejected: registered(
                r,
                "items_rejected",
                "Items rejected by the ingest server (4xx) and dropped",
                Counter::default(),
            ),
            watch_errors: registered(
                r,
                "watch_errors",
                "Watch stream errors (each followed by a resume or relist)",
                Family::default(),
            ),
            pending_changes: registered(
                r,
                "pending_changes",
                "Changes waiting in the debounce buffer",
                Gauge::default(),
            ),
            watched_types: registered(
                r,
                "watched_types",
                "Resource types being watched",
                Gauge::default(),
            ),
            unavailable_api_groups: registered(
                r,
                "unavailable_api_groups",
                "API groups whose discovery fails (retried in the background; see /readyz)",
                Gauge::default(),
            ),
            forbidden_types: registered(
                r,
                "forbidden_types",
                "Watched types the API server currently refuses (403)",
                Gauge::default(),
            ),
            ingest_refused: registered(
                r,
                "ingest_refused",
                "1 while the ingest server refuses this watcher's token (401 or 403; see /readyz)",
                Gauge::default(),
            ),
            resync_seconds: registered(
                r,
                "resync_duration_seconds",
                "Duration of full resyncs",
                Histogram::new(exponential_buckets(0.05, 2.0, 14)),
            ),
            capability_syncs: registered(
                r,
                "capability_syncs",
                "Capability syncs (one record per watched type) that succeeded",
                Counter::default(),
            ),
            capability_sync_failures: registered(
                r,
                "capability_sync_failures",
                "Capability sync attempts that failed (retried when retryable)",
                Counter::default(),
            ),
            capability_records_sent: registered(
                r,
                "capability_records_sent",
                "Capability records sent to ingest (upserts plus deletes)",
                Counter::default(),
            ),
            access_snapshots_sent: registered(
                r,
                "access_snapshots_sent",
                "Access snapshots (RBAC rules, types, token issuer) accepted by the ingest server",
                Counter::default(),
            ),
            access_rbac_objects: registered(
                r,
                "access_rbac_objects",
                "Roles, ClusterRoles, RoleBindings and ClusterRoleBindings held for the access snapshot",
                Gauge::default(),
            ),
            access_issuer_known: registered(
                r,
                "access_issuer_known",
                "1 when the last access snapshot held the ServiceAccount token issuer (0: see the log)",
                Gauge::default(),
            ),
            // Replaced below, once every metric is registered.
            registry: Arc::default(),
        };
        Metrics {
            registry: Arc::new(registry),
            ..metrics
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
