//! `cw mcp` and the `/mcp` route of `cw serve` and `cw run`: the `mcp` crate's server,
//! wired to an index (this process's store, or a running server over HTTP) and, where a
//! kubeconfig is at hand, to the cluster for live reads. Wiring only; see docs/agents.md.

mod cluster;
mod index;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use ingest::server::AppState;
use mcp::{ClusterAccess, CwMcp, Index};
use sync_model::api;
use watcher::ClusterArgs;

use crate::api_client::ApiClientArgs;
use crate::backend::{EmbedArgs, StoreArgs};
use cluster::KubeCluster;
use index::{InProcess, OverHttp};

pub use mcp::CancellationToken;

#[derive(clap::Args)]
pub struct Args {
    // The cw server whose index the tools read; when none answers there, the store of the
    // flags below is read in this process.
    #[command(flatten)]
    pub server: ApiClientArgs,
    /// A kubeconfig whose current context get_resource reads live; without it get_resource
    /// answers that it has no cluster access.
    #[arg(long, env = "CW_MCP_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    // The index's id of that kubeconfig's cluster (as its watcher was given it); the
    // default is the context's name, as the watcher's default.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub embed: EmbedArgs,
}

/// `cw mcp`: the MCP server on stdin and stdout (logs go to stderr).
pub async fn run(args: Args) -> anyhow::Result<()> {
    let remote = args.server.client()?;
    let index: Arc<dyn Index> = if remote.answers().await {
        tracing::info!(server = %remote.base(), "cw mcp: reading the index of a running server");
        Arc::new(OverHttp(remote))
    } else {
        tracing::info!(
            server = %remote.base(),
            store = %args.store.describe(),
            "cw mcp: no server answers; reading the store in this process"
        );
        let store = args.store.build()?;
        let embedder = args.embed.build_lazy()?;
        Arc::new(InProcess(ingest::search::Searcher::new(
            store,
            embedder,
            args.store.instances_collection.clone(),
            args.store.capabilities_collection.clone(),
        )))
    };
    let cluster = match &args.kubeconfig {
        Some(path) => kubeconfig_access(path, &args.cluster).await?,
        None => ClusterAccess::none(
            "Start cw mcp with --kubeconfig (CW_MCP_KUBECONFIG) to read the cluster live.",
        ),
    };
    mcp::serve_stdio(CwMcp::new(index, cluster))
        .await
        .context("serving MCP on stdio")
}

async fn kubeconfig_access(
    path: &std::path::Path,
    cluster: &ClusterArgs,
) -> anyhow::Result<ClusterAccess> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let kubeconfig = Kubeconfig::read_from(path)
        .with_context(|| format!("reading the kubeconfig {}", path.display()))?;
    // Named as its watcher names it: the given id, else the context's name as a cluster id.
    let name = match cluster.given()? {
        Some(id) => id.to_string(),
        None => kubeconfig
            .current_context
            .as_deref()
            .and_then(sync_model::ClusterId::from_context_name)
            .map(|c| c.to_string())
            .unwrap_or_else(|| sync_model::DEFAULT_CLUSTER.into()),
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading the kubeconfig {}", path.display()))?;
    let client = kube::Client::try_from(config).context("building the Kubernetes client")?;
    Ok(ClusterAccess {
        name,
        live: Some(Arc::new(KubeCluster::new(client))),
        no_access_hint: String::new(),
    })
}

/// `cw run`'s cluster: the client the watcher uses, under the watcher's cluster id.
pub fn live_access(client: kube::Client, cluster: &sync_model::ClusterId) -> ClusterAccess {
    ClusterAccess {
        name: cluster.to_string(),
        live: Some(Arc::new(KubeCluster::new(client))),
        no_access_hint: String::new(),
    }
}

/// `cw serve`'s: none (it indexes what watchers send).
pub fn no_live_access() -> ClusterAccess {
    ClusterAccess::none(
        "cw serve indexes what watchers send and has no kubeconfig; cw run, or cw mcp \
         --kubeconfig, can read the cluster live.",
    )
}

/// The `/mcp` route over the server's own index, behind the API's bearer token. Cancel
/// `stop` when the server shuts down, so open event streams end.
pub fn route(
    state: &AppState,
    cluster: ClusterAccess,
    stop: CancellationToken,
    host: &str,
) -> axum::Router {
    let index = Arc::new(InProcess(state.searcher().clone()));
    let loopback = matches!(host, "127.0.0.1" | "localhost" | "::1" | "[::1]");
    let service = mcp::http_service(CwMcp::new(index, cluster), stop, loopback);
    state.auth_layer(axum::Router::new().nest_service(api::MCP, service))
}
