//! `cw watch`: keeps an ingest server's store equal to a Kubernetes cluster.
//!
//! A pipeline of small stages joined by channels, each testable alone with plain data:
//! [`discovery`] (which types) → [`source`] (one watch per type: metadata only, or whole
//! objects for the types whose health and images cw reads, by `sync_model::health`) →
//! [`extract`] (object → `ResourceInstance`) → [`tracker`] (change detection, relists,
//! resync diff) → [`buffer`] (debounce and batching) → [`sender`] → a [`sink::SyncSink`].
//! [`controller`] wires them around one context, keeps the per-type watches in step with
//! discovery and runs [`resync`]; [`ops`] serves health, readiness, metrics and resync.
//! [`capabilities`] keeps the capability records (one per watched type) current beside them;
//! [`heartbeat`] sends an empty sync while the cluster is quiet, so the server hears from it.
//! [`access_rules`] sends the cluster's RBAC rules, types and token issuer, so the server
//! answers each caller with what they may see.

mod access;
pub mod access_rules;
mod availability;
pub mod buffer;
pub mod capabilities;
pub mod change;
pub mod config;
mod context;
pub mod controller;
mod deadline;
pub mod discovery;
pub mod error;
pub mod extract;
pub mod heartbeat;
pub mod metrics;
pub mod ops;
pub mod resync;
pub mod sender;
pub mod single_pass;
pub mod sink;
pub mod source;
pub mod tracker;
mod watches;

pub use access::Refusal;
pub use change::{Change, ContentHash};
pub use config::{ClusterArgs, IngestClientArgs, StandaloneArgs, TokenArgs, WatchConfig};
pub use context::WatcherSettings;
pub use controller::{run, Shared};
pub use discovery::{discover, Discovered, NamespaceFilter, ResourceType, TypeFilter, TypeKey};
pub use error::WatchError;
pub use extract::{extract_instance, extract_with_status, ExtractError};
pub use metrics::Metrics;
pub use resync::{ResyncReport, ResyncScope};
pub use sink::{HttpSink, SinkError, SyncSink};
pub use tokio_util::sync::CancellationToken;

/// A Kubernetes client from KUBECONFIG, the default kubeconfig or the in-cluster service
/// account, as kubectl would choose.
pub async fn kube_client() -> Result<kube::Client, kube::Error> {
    kube::Client::try_default().await
}
