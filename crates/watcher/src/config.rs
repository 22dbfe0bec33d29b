//! `cw watch`'s configuration: flags with the Go controller's environment names, defaults
//! next to the fields they set. The flags every client of an ingest server shares (token,
//! timeout) are declared here once, for the watcher and the one-shot commands alike.

use std::time::Duration;

use sync_model::{api, ClusterId};

use crate::buffer::BufferConfig;
use crate::context::WatcherSettings;
use crate::discovery::{NamespaceFilter, TypeFilter, GROUP_DISCOVERY_TIMEOUT};
use crate::sender::RetryConfig;
use crate::sink::HttpSink;

/// The bearer token of cw's APIs: what `cw serve` and `cw run` require, and what `cw watch`,
/// the one-shot syncs, `cw search` and `cw resync` send (`--auth-token` and
/// `--ingest-token` are older names of the same flag).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TokenArgs {
    #[arg(
        long = "token",
        visible_aliases = ["auth-token", "ingest-token"],
        env = "CW_INGEST_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

impl TokenArgs {
    /// The token, `None` when unset or blank.
    pub fn get(&self) -> Option<&str> {
        self.token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    /// The token a server requires: `None` when none is configured, an error when one is
    /// configured but blank. Auth fails closed: an empty key of an existing Secret must not
    /// silently turn it off.
    pub fn required(&self) -> Result<Option<&str>, BlankToken> {
        match self.token.as_deref() {
            None => Ok(None),
            Some(_) => self.get().map(Some).ok_or(BlankToken),
        }
    }
}

/// A token was configured but is empty or whitespace only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("CW_INGEST_TOKEN (--token) is set but blank: set a token, or unset it to run without auth")]
pub struct BlankToken;

/// Which cluster a sender's objects belong to (and which cluster `cw mcp` reads live):
/// `--cluster-id` / `CW_CLUSTER_ID`, by default the current kubeconfig context's name (made
/// a DNS label). In a Pod there is no kubeconfig and the id must be given (the chart sets it).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClusterArgs {
    /// This cluster's id in the index (a DNS label such as prod-eu); the default is the
    /// current kubeconfig context's name. Every object sent belongs to it, and diffs and
    /// deletes touch only its documents; `cw mcp` reads the cluster live under this id.
    #[arg(long, env = "CW_CLUSTER_ID")]
    pub cluster_id: Option<String>,
}

/// Why no cluster id could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum ClusterIdError {
    #[error("--cluster-id (CW_CLUSTER_ID): {0}")]
    Invalid(sync_model::ClusterIdError),
    #[error(
        "no cluster id: set --cluster-id (CW_CLUSTER_ID); without it the current kubeconfig \
         context's name is used, and {0}"
    )]
    NoContext(String),
}

impl ClusterArgs {
    /// The configured id, else the current kubeconfig context's name as a cluster id.
    pub fn resolve(&self) -> Result<ClusterId, ClusterIdError> {
        if let Some(id) = self.given()? {
            return Ok(id);
        }
        let kubeconfig = kube::config::Kubeconfig::read()
            .map_err(|e| ClusterIdError::NoContext(format!("no kubeconfig could be read ({e})")))?;
        let context = kubeconfig.current_context.ok_or_else(|| {
            ClusterIdError::NoContext("the kubeconfig has no current context".into())
        })?;
        ClusterId::from_context_name(&context).ok_or_else(|| {
            ClusterIdError::NoContext(format!(
                "the context name {context:?} has no letter or digit"
            ))
        })
    }

    /// The id given by flag or environment, checked; `None` when none is given (or blank).
    pub fn given(&self) -> Result<Option<ClusterId>, ClusterIdError> {
        match self.cluster_id.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(raw) => ClusterId::new(raw)
                .map(Some)
                .map_err(ClusterIdError::Invalid),
            None => Ok(None),
        }
    }
}

/// How a client reaches an ingest server: its token and the timeout of one request.
#[derive(Debug, Clone, clap::Args)]
pub struct IngestClientArgs {
    #[command(flatten)]
    pub token: TokenArgs,
    /// Timeout of one request to the ingest server.
    #[arg(
        long = "ingest-timeout-secs",
        visible_alias = "timeout-secs",
        env = "CW_INGEST_TIMEOUT_SECS",
        default_value_t = 120
    )]
    pub timeout_secs: u64,
}

impl IngestClientArgs {
    /// The HTTP sink to the ingest server at `endpoint` (a base URL or the full sync URL).
    pub fn http_sink(&self, endpoint: &str) -> Result<HttpSink, reqwest::Error> {
        HttpSink::new(
            endpoint,
            self.token.get().map(str::to_string),
            Duration::from_secs(self.timeout_secs),
        )
    }
}

/// What `cw watch` adds to the pipeline's settings: where the ingest server is and where
/// the watcher's own operations endpoints listen (`cw run` has neither: its sink is
/// in-process and one port serves everything).
#[derive(Debug, Clone, clap::Args)]
pub struct StandaloneArgs {
    /// The ingest server: its base URL, or its sync URL as the Go controller takes it.
    #[arg(long, env = "REST_ENDPOINT", default_value_t = default_rest_endpoint())]
    pub rest_endpoint: String,
    #[command(flatten)]
    pub ingest: IngestClientArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Address of /healthz, /readyz, /metrics and POST /api/v1/resync (`:8082` = all interfaces).
    #[arg(long, env = "API_BIND_ADDRESS", default_value = ":8082")]
    pub api_bind_address: String,
}

/// The Go controller's default, kept as its full sync URL: the sync endpoint of a server on
/// this machine at the default port.
fn default_rest_endpoint() -> String {
    api::url(&api::default_server_url(), api::INSTANCES_SYNC)
}

impl StandaloneArgs {
    /// `:8082` means every interface, as in Go's net.Listen.
    pub fn bind_address(&self) -> String {
        bind_address(&self.api_bind_address)
    }

    /// The HTTP sink to `--rest-endpoint`, sending for `cluster`.
    pub fn http_sink(&self, cluster: ClusterId) -> Result<HttpSink, reqwest::Error> {
        Ok(self
            .ingest
            .http_sink(&self.rest_endpoint)?
            .with_cluster(cluster))
    }

    /// The server's base URL, for logs.
    pub fn ingest_base_url(&self) -> &str {
        api::base_url(&self.rest_endpoint)
    }
}

/// The watcher pipeline's settings: debounce, batching, resync, filters, shutdown.
#[derive(Debug, Clone, clap::Args)]
pub struct WatchConfig {
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
    /// Deadline for flushing pending changes on SIGTERM.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 20)]
    pub shutdown_timeout_secs: u64,
    /// How long the API server may refuse a watched type (403) before its documents are
    /// removed from the index; a shorter refusal (RBAC propagating, a webhook hiccup) is
    /// retried with backoff and removes nothing.
    #[arg(long, env = "FORBIDDEN_GRACE_SECS", default_value_t = 600)]
    pub forbidden_grace_secs: u64,
    /// Seconds between empty syncs sent while nothing else is, so that the ingest server
    /// hears from this watcher (`cw clusters`' LAST CONTACT; it marks a cluster STALE after
    /// CW_STALE_AFTER_SECS, 15 min by default, without a word); 0 sends none.
    #[arg(long, env = "HEARTBEAT_INTERVAL_SECS", default_value_t = 60)]
    pub heartbeat_interval_secs: u64,
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
    /// events, leases, endpointslices, componentstatuses, secrets).
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
    /// Index Secrets (their metadata only: names, labels, description annotations). Off by
    /// default: every Secret's name would become searchable.
    #[arg(long, env = "CW_INCLUDE_SECRETS", default_value_t = false)]
    pub include_secrets: bool,
}

impl ResourceFilterArgs {
    /// The type filter, with the default exclusions (Secrets among them unless
    /// `--include-secrets`).
    pub fn type_filter(&self) -> TypeFilter {
        let filter = TypeFilter::new(
            &non_empty(&self.watch_resource_types),
            &non_empty(&self.exclude_resource_types),
        );
        if self.include_secrets {
            filter.including_secrets()
        } else {
            filter
        }
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
            group_discovery_timeout: GROUP_DISCOVERY_TIMEOUT,
            forbidden_grace: Duration::from_secs(self.forbidden_grace_secs),
            heartbeat_interval: Duration::from_secs(self.heartbeat_interval_secs),
        }
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
        #[command(flatten)]
        standalone: StandaloneArgs,
    }

    #[test]
    fn defaults_match_the_go_controller() {
        let cli = Cli::parse_from(["cw"]);
        let (c, standalone) = (cli.config, cli.standalone);
        let s = c.settings();
        assert_eq!(s.buffer.debounce, Duration::from_secs(10));
        assert_eq!(s.buffer.flush_interval, Duration::from_secs(5));
        assert_eq!(s.buffer.max_batch, 50);
        assert_eq!(s.resync_interval, Duration::from_secs(1440 * 60));
        assert_eq!(s.forbidden_grace, Duration::from_secs(600));
        assert_eq!(standalone.bind_address(), "0.0.0.0:8082");
        assert_eq!(standalone.ingest_base_url(), "http://localhost:3000");
        assert!(s.types.allow.is_empty());
    }

    #[test]
    fn the_older_token_flags_still_set_the_token() {
        for flag in ["--token", "--ingest-token", "--auth-token"] {
            let cli = Cli::parse_from(["cw", flag, " t0k "]);
            assert_eq!(cli.standalone.ingest.token.get(), Some("t0k"), "{flag}");
        }
        let blank = Cli::parse_from(["cw", "--token", "  "]);
        assert_eq!(blank.standalone.ingest.token.get(), None);
        assert_eq!(blank.standalone.ingest.token.required(), Err(BlankToken));
        let unset = Cli::parse_from(["cw"]);
        assert_eq!(unset.standalone.ingest.token.required(), Ok(None));
    }

    #[test]
    fn an_explicit_cluster_id_is_checked_and_used() {
        let cli = Cli::parse_from(["cw", "--cluster-id", "prod-eu"]);
        assert_eq!(
            cli.standalone.cluster.resolve().unwrap().as_str(),
            "prod-eu"
        );
        let bad = Cli::parse_from(["cw", "--cluster-id", "Prod_EU"]);
        let err = bad.standalone.cluster.resolve().unwrap_err().to_string();
        assert!(
            err.contains("--cluster-id") && err.contains("DNS label"),
            "{err}"
        );
    }

    #[test]
    fn secrets_are_left_out_unless_include_secrets_is_set() {
        let secret = crate::ResourceType::new("", "v1", "Secret", "secrets", true);
        let default = Cli::parse_from(["cw"]).config.settings();
        assert!(!default.types.admits(&secret));
        let asked = Cli::parse_from(["cw", "--include-secrets"])
            .config
            .settings();
        assert!(asked.types.admits(&secret));
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
