//! `cw watch`'s configuration: flags with the Go controller's environment names, defaults
//! next to the fields they set.

use std::time::Duration;

use crate::buffer::BufferConfig;
use crate::controller::WatcherSettings;
use crate::discovery::{NamespaceFilter, TypeFilter};
use crate::sender::RetryConfig;

#[derive(Debug, Clone, clap::Args)]
pub struct WatchConfig {
    /// The ingest server's sync endpoint; `…/hashes` next to it serves the resync diff.
    #[arg(
        long,
        env = "REST_ENDPOINT",
        default_value = "http://localhost:3000/api/v1/instances/sync"
    )]
    pub rest_endpoint: String,
    /// Bearer token sent to the ingest server, and required by POST /api/v1/resync.
    #[arg(long, env = "CW_INGEST_TOKEN", hide_env_values = true)]
    pub ingest_token: Option<String>,
    /// Trailing per-object window: changes within it are sent once, in their last state.
    #[arg(long, env = "DEBOUNCE_WINDOW_MS", default_value_t = 10_000)]
    pub debounce_window_ms: u64,
    /// Longest wait of a change for its batch to fill.
    #[arg(long, env = "BATCH_FLUSH_INTERVAL_MS", default_value_t = 5_000)]
    pub batch_flush_interval_ms: u64,
    /// Most items (upserts plus deletes) in one POST.
    #[arg(long, env = "BATCH_MAX_SIZE", default_value_t = 50)]
    pub batch_max_size: usize,
    /// Minutes between full resyncs (relist everything, fix the store, delete ghosts).
    #[arg(long, env = "RESYNC_INTERVAL_MIN", default_value_t = 1440)]
    pub resync_interval_min: u64,
    /// Which types and namespaces are indexed (shared with `cw sync-instances`).
    #[command(flatten)]
    pub filters: ResourceFilterArgs,
    /// Address of /healthz, /readyz, /metrics and POST /api/v1/resync (`:8082` = all interfaces).
    #[arg(long, env = "API_BIND_ADDRESS", default_value = ":8082")]
    pub api_bind_address: String,
    /// Deadline for flushing pending changes on SIGTERM.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 20)]
    pub shutdown_timeout_secs: u64,
    /// Timeout of one request to the ingest server.
    #[arg(long, env = "CW_INGEST_TIMEOUT_SECS", default_value_t = 60)]
    pub ingest_timeout_secs: u64,
}

/// `WATCH_RESOURCE_TYPES`, `EXCLUDE_RESOURCE_TYPES`, `WATCH_NAMESPACES`, `EXCLUDE_NAMESPACES`:
/// the flags that choose what is indexed, shared by `cw watch`, `cw run` and
/// `cw sync-instances` so that every path indexes the same objects.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ResourceFilterArgs {
    /// Comma-separated plural names to watch, optionally with group
    /// (`deployments,certificates.cert-manager.io`); empty watches every type.
    #[arg(
        long,
        env = "WATCH_RESOURCE_TYPES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub watch_resource_types: Vec<String>,
    /// Comma-separated plural names never to watch (added to the default exclusions:
    /// events, leases, endpointslices, componentstatuses).
    #[arg(
        long,
        env = "EXCLUDE_RESOURCE_TYPES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub exclude_resource_types: Vec<String>,
    /// Comma-separated namespaces to watch; empty watches all.
    #[arg(
        long,
        env = "WATCH_NAMESPACES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub watch_namespaces: Vec<String>,
    /// Comma-separated namespaces never to watch.
    #[arg(
        long,
        env = "EXCLUDE_NAMESPACES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub exclude_namespaces: Vec<String>,
}

impl ResourceFilterArgs {
    /// The type filter, with the default exclusions.
    pub fn type_filter(&self) -> TypeFilter {
        TypeFilter::new(
            &non_empty(&self.watch_resource_types),
            &non_empty(&self.exclude_resource_types),
        )
    }

    pub fn namespace_filter(&self) -> NamespaceFilter {
        NamespaceFilter {
            include: non_empty(&self.watch_namespaces),
            exclude: non_empty(&self.exclude_namespaces),
        }
    }
}

fn non_empty(items: &[String]) -> Vec<String> {
    items
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

impl WatchConfig {
    pub fn settings(&self) -> WatcherSettings {
        WatcherSettings {
            buffer: BufferConfig {
                debounce: Duration::from_millis(self.debounce_window_ms),
                flush_interval: Duration::from_millis(self.batch_flush_interval_ms),
                max_batch: self.batch_max_size.max(1),
            },
            retry: RetryConfig::default(),
            types: self.filters.type_filter(),
            namespaces: self.filters.namespace_filter(),
            resync_interval: Duration::from_secs(self.resync_interval_min.max(1) * 60),
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout_secs),
        }
    }

    /// `:8082` means every interface, as in Go's net.Listen.
    pub fn bind_address(&self) -> String {
        bind_address(&self.api_bind_address)
    }
}

/// Go-style `:port` → `0.0.0.0:port`.
pub fn bind_address(raw: &str) -> String {
    match raw.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: WatchConfig,
    }

    #[test]
    fn defaults_match_the_go_controller() {
        let c = Cli::parse_from(["cw"]).config;
        let s = c.settings();
        assert_eq!(s.buffer.debounce, Duration::from_secs(10));
        assert_eq!(s.buffer.flush_interval, Duration::from_secs(5));
        assert_eq!(s.buffer.max_batch, 50);
        assert_eq!(s.resync_interval, Duration::from_secs(1440 * 60));
        assert_eq!(c.bind_address(), "0.0.0.0:8082");
        assert!(s.types.allow.is_empty());
    }

    #[test]
    fn type_lists_are_comma_separated() {
        let c = Cli::parse_from([
            "cw",
            "--watch-resource-types",
            "deployments, certificates.cert-manager.io",
        ])
        .config;
        assert_eq!(c.settings().types.allow.len(), 2);
    }
}
