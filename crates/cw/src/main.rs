//! The `cw` binary: parses flags, builds components, wires them and runs them.
//! No business logic lives here; each subcommand's module only assembles crates.

use clap::{Parser, Subcommand};

mod api_client;
mod backend;
#[cfg(test)]
mod chart_defaults;
mod credential;
mod mcp;
mod model;
mod pipeline_sink;
mod reindex;
mod resync;
mod run;
mod search;
mod serve;
mod signal;
mod sync_capabilities;
mod sync_instances;
mod watch;
mod web;

/// mimalloc instead of glibc's malloc: the watcher spent a quarter of its CPU in glibc's
/// malloc and free (docs/watcher.md, Benchmark). See [`return_freed_memory_at_once`].
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// For the controller only (`cw watch`): mimalloc's `mi_option_purge_delay` (mimalloc.h) set
/// to 0, so freed memory goes back to the system at once instead of 10 ms later. At 100,000
/// objects the watcher's steady RSS was 66 MiB with it and 99 MiB without, at the same speed
/// (docs/watcher.md, Benchmark). Commands that run the local model keep the delay: its large
/// tensors would be returned and faulted back in on every batch (system CPU 0.6 s → 1.5-2.2 s
/// for the demo's capabilities). `MIMALLOC_PURGE_DELAY` in the environment overrides both.
fn return_freed_memory_at_once() {
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a global option by its number; mimalloc reads it when it next purges.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) };
    }
}

#[derive(Parser)]
#[command(
    name = "cw",
    version,
    about = "cluster-whisperer: a vector index that stays in step with Kubernetes"
)]
struct Cli {
    /// Log filter, e.g. `info` or `cw=debug,ingest=debug`.
    #[arg(long, env = "LOG_LEVEL", default_value = "info", global = true)]
    log_level: String,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "LOG_JSON", default_value_t = false, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the ingest server: POST /api/v1/instances/sync into a vector store.
    Serve(Box<serve::Args>),
    /// The main job on one machine: watch the current cluster, index it (embedded store and
    /// local model by default) and serve the search API, in one process.
    Run(Box<run::Args>),
    /// Run the watcher: follow the cluster and send changes to an ingest server.
    Watch(watch::Args),
    /// Ask a running watcher to relist everything and fix the store; prints what changed.
    Resync(resync::Args),
    /// Search the index: semantic, keyword or hybrid, with kind, namespace and label filters.
    Search(search::Args),
    /// Ask a question: finds the resource types that answer it, then their instances.
    Ask(search::AskArgs),
    /// List the clusters of the index: object counts, latest syncs, objects by health.
    Clusters(search::ClustersArgs),
    /// Sync the cluster's instances into the index once (new and changed stored, gone removed).
    SyncInstances(Box<sync_instances::Args>),
    /// One run that makes the capabilities collection (one record per resource type, from
    /// discovery and CRD schemas) equal to the cluster; no controller needed.
    SyncCapabilities(Box<sync_capabilities::Args>),
    /// The MCP server for agents on stdio: search, count, ask and live object details as
    /// tools (Claude Desktop, Claude Code, Cursor; docs/agents.md).
    Mcp(Box<mcp::Args>),
    /// Manage the local embedding model (`cw model fetch`).
    Model(model::Args),
    /// Build the index for another embedding model or the current layout beside the active
    /// one, from what the store holds, and switch to it without downtime; undo or drop.
    Reindex(Box<reindex::Args>),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Watch(_)) {
        return_freed_memory_at_once();
    }
    init_tracing(&cli.log_level, cli.log_json);
    install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::Run(args) => run::run(*args).await,
            Command::Watch(args) => watch::run(args).await,
            Command::Resync(args) => resync::run(args).await,
            Command::Search(args) => search::run(args).await,
            Command::Ask(args) => search::ask(args).await,
            Command::Clusters(args) => search::clusters(args).await,
            Command::SyncInstances(args) => sync_instances::run(*args).await,
            Command::SyncCapabilities(args) => sync_capabilities::run(*args).await,
            Command::Mcp(args) => mcp::run(*args).await,
            Command::Model(args) => model::run(args).await,
            Command::Reindex(args) => reindex::run(*args).await,
        }
    })
}

/// kube (rustls with ring) and reqwest (built without a provider) share one process-wide
/// rustls provider, installed before any client is built.
fn install_crypto_provider() {
    // Err only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn init_tracing(filter: &str, json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_commands_flags_are_declared_once_and_well_formed() {
        // Panics on a flag declared twice in one command or a conflict naming no flag.
        super::Cli::command().debug_assert();
    }
}
