//! What an operator graphs about ingest: sync requests by outcome, instances written and
//! deleted, embeddings requested and skipped (the user's money), and how long embedding
//! and store calls take. Exposed in Prometheus text format on `GET /metrics`.

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// One label, e.g. `[("outcome", "ok")]`.
pub type Label = [(&'static str, &'static str); 1];

type HistogramFamily = Family<Label, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms to about 65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

pub struct IngestMetrics {
    registry: Registry,
    /// Metrics named `cw_*` rather than `cw_ingest_*`: the authentication decisions.
    access_registry: Registry,
    /// `cw_auth_decisions_total{method, outcome}`: every bearer token checked, by how it
    /// was recognised and whether it was accepted (or why not).
    pub auth_decisions: Family<crate::access::identity::DecisionLabels, Counter>,
    /// `cw_read_scopes_total{decision}`: users' reads by what RBAC granted them: `scoped`
    /// (something), `nothing` (no grant in any cluster their credential holds in).
    pub read_scopes: Family<Label, Counter>,
    /// `outcome`: ok, invalid, unavailable, error.
    pub sync_requests: Family<Label, Counter>,
    pub instances_upserted: Counter,
    pub instances_deleted: Counter,
    /// Documents sent to the embedding provider.
    pub embeddings_requested: Counter,
    /// Changed documents given a vector without a provider call, by `from`: `store` (the
    /// vector stored for the same text, any cluster's), `concurrent` (a text another sync
    /// was embedding), `batch` (a copy of a text embedded in the same sync). With
    /// `embeddings_requested`, the changed documents written.
    pub embeddings_reused: Family<Label, Counter>,
    /// Documents whose stored content hash matched: neither embedded nor rewritten.
    pub embeddings_skipped: Counter,
    /// Documents whose metadata alone changed (health): rewritten with their stored
    /// vector, not embedded.
    pub metadata_updates: Counter,
    pub embed_seconds: Histogram,
    /// `op`: hashes, delete, upsert.
    pub store_seconds: HistogramFamily,
    pub sync_seconds: Histogram,
    /// Capability syncs by `outcome` (same labels as `sync_requests`).
    pub capability_sync_requests: Family<Label, Counter>,
    pub capabilities_upserted: Counter,
    pub capabilities_deleted: Counter,
    /// Capabilities sent to the language model for enrichment.
    pub enrichments_requested: Counter,
    /// Enrichments that failed: the capability was stored unenriched, retried next sync.
    pub enrichments_failed: Counter,
    /// Upserts parked (refused by the provider or the store whatever is retried) by
    /// `reason`: embed, store.
    pub instances_parked: Family<Label, Counter>,
    /// Instances parked now (`GET /api/v1/instances/parked`).
    pub parked: Gauge,
    /// Requests turned away with 503 because the server was at its concurrency limit.
    pub requests_shed: Counter,
    /// Requests being served by the bounded endpoints.
    pub requests_in_flight: Gauge,
    /// `cw_reindex_mirror_failures_total`: syncs that could not be written to the
    /// generation being built as well (the final comparison fixes them).
    pub reindex_mirror_failures: Counter,
    /// `cw_reindex_documents{count}`: the running reindex's counts (total, done, skipped,
    /// embedded, reused, copied, fixed).
    pub reindex_documents: Family<Label, Gauge>,
    /// `cw_reindex_generation`: the generation being built (0: none yet).
    pub reindex_generation: Gauge,
}

impl Default for IngestMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl IngestMetrics {
    /// Counts one user's read by what RBAC granted (`scoped` or `nothing`).
    pub fn note_read_scope(&self, decision: &'static str) {
        self.read_scopes
            .get_or_create(&[("decision", decision)])
            .inc();
    }

    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cw_ingest");
        let sync_requests = Family::<Label, Counter>::default();
        let instances_upserted = Counter::default();
        let instances_deleted = Counter::default();
        let embeddings_requested = Counter::default();
        let embeddings_reused = Family::<Label, Counter>::default();
        let embeddings_skipped = Counter::default();
        let metadata_updates = Counter::default();
        let embed_seconds = latency_histogram();
        let store_seconds: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let sync_seconds = latency_histogram();
        let capability_sync_requests = Family::<Label, Counter>::default();
        let capabilities_upserted = Counter::default();
        let capabilities_deleted = Counter::default();
        let enrichments_requested = Counter::default();
        let enrichments_failed = Counter::default();
        let instances_parked = Family::<Label, Counter>::default();
        let parked = Gauge::default();
        let requests_shed = Counter::default();
        let requests_in_flight = Gauge::default();
        let mut access_registry = Registry::with_prefix("cw");
        let reindex_mirror_failures = Counter::default();
        let reindex_documents = Family::<Label, Gauge>::default();
        let reindex_generation = Gauge::default();
        access_registry.register(
            "reindex_mirror_failures",
            "Syncs that could not be written to the index generation being built as well (the final comparison before the switch fixes them)",
            reindex_mirror_failures.clone(),
        );
        access_registry.register(
            "reindex_documents",
            "The running reindex's documents by count: total, done, skipped (there already), embedded, reused (same text), copied (model unchanged), fixed (by the final comparison)",
            reindex_documents.clone(),
        );
        access_registry.register(
            "reindex_generation",
            "The index generation being built by a reindex (0: none)",
            reindex_generation.clone(),
        );
        let auth_decisions = Family::default();
        let read_scopes = Family::<Label, Counter>::default();
        access_registry.register(
            "read_scopes",
            "Users' reads by what each cluster's RBAC granted them: scoped (something) or nothing",
            read_scopes.clone(),
        );
        access_registry.register(
            "auth_decisions",
            "Bearer tokens checked, by method (token, tokens_file, oidc, service-account, jwt, none) and outcome (accepted or why refused)",
            auth_decisions.clone(),
        );
        registry.register(
            "instances_parked",
            "Upserts parked because the provider or the store refuses them, by reason",
            instances_parked.clone(),
        );
        registry.register(
            "parked",
            "Instances parked now (GET /api/v1/instances/parked)",
            parked.clone(),
        );
        registry.register(
            "requests_shed",
            "Requests answered 503 because the server was at its concurrency limit",
            requests_shed.clone(),
        );
        registry.register(
            "requests_in_flight",
            "Sync and search requests being served",
            requests_in_flight.clone(),
        );
        registry.register(
            "capability_sync_requests",
            "Capability sync requests by outcome",
            capability_sync_requests.clone(),
        );
        registry.register(
            "capabilities_upserted",
            "Capabilities upserted (changed or new)",
            capabilities_upserted.clone(),
        );
        registry.register(
            "capabilities_deleted",
            "Capability ids deleted",
            capabilities_deleted.clone(),
        );
        registry.register(
            "enrichments_requested",
            "Capabilities sent to the language model",
            enrichments_requested.clone(),
        );
        registry.register(
            "enrichments_failed",
            "Enrichments that failed (capability stored unenriched)",
            enrichments_failed.clone(),
        );
        registry.register(
            "sync_requests",
            "Sync requests by outcome",
            sync_requests.clone(),
        );
        registry.register(
            "instances_upserted",
            "Instances upserted (changed or new)",
            instances_upserted.clone(),
        );
        registry.register(
            "instances_deleted",
            "Instance ids deleted",
            instances_deleted.clone(),
        );
        registry.register(
            "embeddings_requested",
            "Documents sent to the embedding provider",
            embeddings_requested.clone(),
        );
        registry.register(
            "embeddings_reused",
            "Changed documents given a vector without a provider call, by where it came from: store (the same text stored, any cluster), concurrent (being embedded by another sync), batch (a copy in the same sync)",
            embeddings_reused.clone(),
        );
        registry.register(
            "embeddings_skipped",
            "Unchanged documents neither embedded nor rewritten",
            embeddings_skipped.clone(),
        );
        registry.register(
            "metadata_updates",
            "Documents whose metadata alone changed (health): rewritten with their stored vector, not embedded",
            metadata_updates.clone(),
        );
        registry.register(
            "embed_seconds",
            "Time embedding one sync's changed documents",
            embed_seconds.clone(),
        );
        registry.register(
            "store_seconds",
            "Time of vector store calls by operation",
            store_seconds.clone(),
        );
        registry.register(
            "sync_seconds",
            "Time applying one sync payload",
            sync_seconds.clone(),
        );
        IngestMetrics {
            registry,
            access_registry,
            read_scopes,
            auth_decisions,
            sync_requests,
            instances_upserted,
            instances_deleted,
            embeddings_requested,
            embeddings_reused,
            embeddings_skipped,
            metadata_updates,
            embed_seconds,
            store_seconds,
            sync_seconds,
            capability_sync_requests,
            capabilities_upserted,
            capabilities_deleted,
            enrichments_requested,
            enrichments_failed,
            instances_parked,
            parked,
            requests_shed,
            requests_in_flight,
            reindex_mirror_failures,
            reindex_documents,
            reindex_generation,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry);
        let _ = encode_registry(&mut out, &self.access_registry);
        let _ = encode_eof(&mut out);
        out
    }
}
