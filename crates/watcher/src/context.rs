//! What the running controller's parts share, built once by `run` (kube-rs controller-rs's
//! `Context` is the model): the Kubernetes client, the settings, the sink, the way into
//! change detection, the metrics and the watched types published to the capability sync.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::availability::UnavailableGroups;
use crate::buffer::BufferConfig;
use crate::capabilities::WatchedTypes;
use crate::discovery::{NamespaceFilter, TypeFilter};
use crate::metrics::Metrics;

use crate::sender::RetryConfig;
use crate::sink::{StoredHashes, SyncSink};
use crate::tracker::Input;

/// Everything the watcher needs besides a Kubernetes client and a sink.
#[derive(Debug, Clone)]
pub struct WatcherSettings {
    pub buffer: BufferConfig,
    pub retry: RetryConfig,
    pub types: TypeFilter,
    pub namespaces: NamespaceFilter,
    pub resync_interval: Duration,
    pub shutdown_timeout: Duration,
    /// How long one API group's discovery may take before the group counts as unavailable
    /// ([`crate::discovery::GROUP_DISCOVERY_TIMEOUT`]).
    pub group_discovery_timeout: Duration,
    /// How long the API server may refuse a watched type (403) before its documents are
    /// removed: a 403 while RBAC propagates must not empty the index.
    pub forbidden_grace: Duration,
    /// An empty sync this often while nothing else is sent, so the ingest server hears
    /// from a quiet cluster's watcher ([`crate::heartbeat`]); zero: none.
    pub heartbeat_interval: Duration,
}

/// Shared by the watches, the control loop and resync.
pub(crate) struct Context {
    pub client: kube::Client,
    pub settings: WatcherSettings,
    pub sink: Arc<dyn SyncSink>,
    /// Change detection's inbox. Change detection ends once every sender is dropped, so
    /// the context is dropped at shutdown before the pipeline drains.
    pub inputs: mpsc::Sender<Input>,
    pub metrics: Metrics,
    /// The watched types, for the capability records: each publication makes the
    /// capability sync bring the records up to date.
    pub capabilities: watch::Sender<WatchedTypes>,
    /// The unavailable API groups, as `/readyz` shows them.
    pub unavailable_groups: UnavailableGroups,
    /// How the store's hashes are read (and whether the server has them at all).
    pub hashes: StoredHashes,
}
