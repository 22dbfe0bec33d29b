//! `cw mcp` and the `/mcp` route of `cw serve` and `cw run`: the `mcp` crate's server,
//! wired to an index (this process's store, or a running server over HTTP) and to the
//! clusters it reads live: cw run's own, cw mcp's `--kubeconfig`, and one per kubeconfig
//! of `--cluster-kubeconfigs` (`connections`). Wiring only; see docs/agents.md.

mod cluster;
mod connections;
mod index;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use ingest::access::identity::Caller;
use ingest::server::AppState;
use mcp::{ClusterAccess, Connections, CwMcp, Index, LiveCluster};
use sync_model::api;
use watcher::ClusterArgs;

use crate::api_client::ApiClientArgs;
use crate::backend::{EmbedArgs, StoreArgs};
use cluster::KubeCluster;
use index::{InProcess, OverHttp};

pub use connections::ConnectionArgs;
pub use mcp::CancellationToken;

#[derive(clap::Args)]
pub struct Args {
    // The cw server whose index the tools read (see --local). A named server that does not
    // answer is an error, never an empty index.
    #[command(flatten)]
    pub server: ApiClientArgs,
    /// Serve the index of the store and model flags below in this process, without asking
    /// any server. Without it, the local embedded store is read only when no server is
    /// named, none answers at the default address, and the store already holds an index.
    #[arg(long, env = "CW_MCP_LOCAL", conflicts_with = "server")]
    pub local: bool,
    /// A kubeconfig whose current context get_resource reads live; for a cluster without
    /// one, get_resource answers what the index holds, marked as such.
    #[arg(long, env = "CW_MCP_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    // The index's id of that kubeconfig's cluster (as its watcher was given it); the
    // default is the context's name, as the watcher's default.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub embed: EmbedArgs,
}

/// `cw mcp`: the MCP server on stdin and stdout (logs go to stderr).
pub async fn run(args: Args) -> anyhow::Result<()> {
    let index = choose_index(&args).await?;
    let own = match &args.kubeconfig {
        Some(path) => kubeconfig_cluster(path, &args.cluster).await?,
        None => Connections::new(),
    };
    let stop = CancellationToken::new();
    let mut cluster = args.connections.access(own, "cw mcp", stop.clone()).await?;
    if args.connections.cluster_kubeconfigs.is_none() {
        cluster.no_access_hint = "Start cw mcp with --kubeconfig (CW_MCP_KUBECONFIG) and \
            --cluster-id for this cluster, or with --cluster-kubeconfigs \
            (CW_CLUSTER_KUBECONFIGS): a directory of kubeconfigs, each named after its \
            cluster's id (docs/agents.md)."
            .into();
    }
    let served = mcp::serve_stdio(CwMcp::new(index, cluster))
        .await
        .context("serving MCP on stdio");
    stop.cancel();
    served
}

/// The index the tools read: the named server, else the default address if a cw server
/// answers there, else the local store when asked for (`--local`, a Chroma or Qdrant URL) or
/// when its file already holds an index. Anything else is an error that names the URL tried:
/// an empty store opened because a server did not answer would answer every question with
/// a confident nothing.
async fn choose_index(args: &Args) -> anyhow::Result<Arc<dyn Index>> {
    if !args.local {
        let remote = args.server.client()?;
        if remote.answers().await {
            tracing::info!(server = %remote.base(), "cw mcp: reading the index of a running server");
            return Ok(Arc::new(OverHttp(remote)));
        }
        if args.server.named().is_some() {
            anyhow::bail!(
                "no cw server answers at {}: start cw serve or cw run there, or correct \
                 --server / CW_SERVER_URL (cw mcp --local serves this machine's store instead)",
                remote.base()
            );
        }
        if let Some(file) = args.store.embedded_file()? {
            if !holds_index(&file) {
                anyhow::bail!(
                    "no cw server answers at {} and there is no local index at {}: start cw \
                     serve or cw run (or name a server with --server / CW_SERVER_URL), or pass \
                     --local to serve the local store anyway",
                    remote.base(),
                    file.display()
                );
            }
        }
        tracing::info!(
            server = %remote.base(),
            store = %args.store.describe(),
            "cw mcp: no server answers; reading the local index in this process"
        );
    }
    let store = args.store.build()?;
    let embedder = args.embed.build_lazy()?;
    let generation = crate::backend::generation_store(store.clone(), &args.store)
        .active_snapshot(embedder.clone())
        .await
        .context("reading the index generation record")?;
    Ok(Arc::new(InProcess(
        ingest::search::Searcher::new(
            store,
            embedder,
            args.store.instances_collection.clone(),
            args.store.capabilities_collection.clone(),
        )
        .in_generation(&generation),
        ingest::clusters::DEFAULT_STALE_AFTER,
    )))
}

/// Whether the embedded store's file exists and holds something.
fn holds_index(file: &std::path::Path) -> bool {
    std::fs::metadata(file).is_ok_and(|m| m.is_file() && m.len() > 0)
}

/// The cluster of `cw mcp --kubeconfig`: its current context, under the id its watcher
/// gives it.
async fn kubeconfig_cluster(
    path: &std::path::Path,
    cluster: &ClusterArgs,
) -> anyhow::Result<Connections> {
    use kube::config::Kubeconfig;
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
    let client = connections::client_of(path).await?;
    Ok(own_cluster(client, name))
}

/// One cluster read with `client`, under the id `cluster` (cw run's: the watcher's).
pub fn own_cluster(client: kube::Client, cluster: impl Into<String>) -> Connections {
    let live: Arc<dyn LiveCluster> = Arc::new(KubeCluster::new(client));
    [(cluster.into(), live)].into()
}

/// The `/mcp` route over the server's own index, behind the API's bearer token (refused as
/// MCP clients understand it: 403, never an OAuth challenge) and in the API's read slots (a
/// full write load never turns it away). Every request is answered as its caller may see:
/// [`with_caller_index`] puts the caller's index (and, for a user, live reads acting as
/// them) in the request; without one, the tools answer nothing. Cancel `stop` when the
/// server shuts down, so open event streams end.
pub fn route(
    state: &AppState,
    cluster: ClusterAccess,
    stop: CancellationToken,
    host: &str,
) -> axum::Router {
    let loopback = matches!(host, "127.0.0.1" | "localhost" | "::1" | "[::1]");
    let service = mcp::http_service(
        CwMcp::new(Arc::new(index::NoCaller), cluster.clone()),
        stop,
        loopback,
    );
    let routes = axum::Router::new().nest_service(api::MCP, service).layer(
        axum::middleware::from_fn_with_state((state.clone(), cluster), with_caller_index),
    );
    let routes = state.read_admission(routes);
    state.agent_auth_layer(routes)
}

/// Puts the index of the request's caller (authenticated by the layer outside) in its
/// extensions: an operator's reads everything and reads the clusters live with the server's
/// connections; a user's is limited to what RBAC grants them, and reads live as them
/// (impersonation) or, where a connection cannot, from their index.
async fn with_caller_index(
    axum::extract::State((state, cluster)): axum::extract::State<(AppState, ClusterAccess)>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some(caller) = req.extensions().get::<Caller>().cloned() {
        let index = caller_index(&state, &cluster, &caller).await;
        req.extensions_mut().insert(index);
    }
    next.run(req).await
}

/// What `caller` reads through: the index of their scope ([`AppState::searcher_of`]) and,
/// for a user, the connections acting as them. The `/mcp` route's and the web pages' one
/// decision.
pub async fn caller_index(
    state: &AppState,
    cluster: &ClusterAccess,
    caller: &Caller,
) -> mcp::CallerIndex {
    let searcher = state.searcher_of(caller).await;
    let live = match caller {
        Caller::Operator(_) => None,
        Caller::User { user, .. } => Some(cluster.as_user(user)),
    };
    mcp::CallerIndex {
        index: Arc::new(InProcess(searcher, state.stale_after())),
        cluster: live,
    }
}
