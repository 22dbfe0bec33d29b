//! `cw run`: the whole main job in one process for one machine. The watcher follows the
//! cluster of the current kubeconfig and hands its batches to ingest's pipeline in-process
//! ([`PipelineSink`], no HTTP hop); the same process serves `cw serve`'s HTTP API. By
//! default the store is the embedded SQLite file and the model the local one.
//!
//! One port serves everything: the ingest API as `cw serve` has it (search, sync, hashes,
//! `/healthz`, `/readyz`, `/metrics`) and the watcher's operations endpoints under
//! `/watcher/` (`/watcher/readyz` is 200 once the initial listing is in the store,
//! `/watcher/metrics`, `POST /watcher/api/v1/resync`, so `cw resync --watcher-url
//! <server>/watcher` works), and the MCP server at `/mcp`, whose get_resource reads the
//! cluster with the watcher's client (and others from `--cluster-kubeconfigs`). Wiring only; see docs/run.md.

use std::sync::Arc;

use anyhow::Context;
use ingest::server;
use watcher::{CancellationToken, ClusterArgs, Metrics, Shared, WatchConfig};

use crate::backend::{IngestArgs, ListenArgs};
use crate::mcp;
use crate::pipeline_sink::PipelineSink;
use crate::signal::shutdown_signal;

/// Where the watcher's operations router is mounted on the one port.
pub const WATCHER_PREFIX: &str = "/watcher";

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub ingest: IngestArgs,
    #[command(flatten)]
    pub watch: WatchConfig,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub connections: mcp::ConnectionArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    // The model and the store first: a missing model is the likeliest first-run problem and
    // its message names `cw model fetch`.
    let store = args.ingest.store.build()?;
    let embedder = args.ingest.embed.build()?;
    crate::backend::check_index_model(&store, &embedder, &args.ingest.store).await?;
    let state = args.ingest.state(store, embedder).await?;
    let cluster = args.cluster.resolve()?;
    // The in-process sink uses the server's own pipelines (the capability pipeline with the
    // enricher): one store handle, and the metrics the server exposes.
    let sink = Arc::new(
        PipelineSink::new(state.pipeline().clone(), cluster.clone())
            .with_capabilities(state.capabilities().clone())
            .with_access_rules(state.access_rules().clone()),
    );

    let client = watcher::kube_client()
        .await
        .context("building the Kubernetes client (KUBECONFIG, ~/.kube/config or in-cluster)")?;
    let shared = Shared::new(Metrics::new());
    let stop_mcp = mcp::CancellationToken::new();
    let clusters = args
        .connections
        .access(
            mcp::own_cluster(client.clone(), cluster.to_string()),
            "cw run",
            stop_mcp.clone(),
        )
        .await?;
    let app = server::router(state.clone())
        .nest(
            WATCHER_PREFIX,
            watcher::ops::router(shared.clone(), args.ingest.token.get().map(str::to_string)),
        )
        .merge(crate::web::people_and_agents(
            &state,
            clusters,
            stop_mcp.clone(),
            &args.listen.host,
        ));
    let listener = args.listen.bind().await?;
    tracing::info!(
        addr = %listener.local_addr()?,
        store = %args.ingest.store.describe(),
        provider = ?args.ingest.embed.embedding_provider,
        collection = %args.ingest.store.instances_collection,
        %cluster,
        "cw run listening"
    );
    let settings = args.watch.settings();
    serve_while_watching(listener, app, state, stop_mcp, |stop_watcher| {
        watcher::run(settings, client, sink, shared, stop_watcher)
    })
    .await?;
    tracing::info!("cw run stopped");
    Ok(())
}

/// Serves `app` while the watcher `watch` makes runs, until SIGTERM or Ctrl-C: then the
/// watcher flushes what is pending into the store while the API still answers, and only
/// then the server stops accepting and finishes in-flight requests (and `stop_mcp` ends
/// the MCP sessions). The server ending on its own is a failure; the watcher still flushes
/// first.
async fn serve_while_watching<W>(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    state: server::AppState,
    stop_mcp: mcp::CancellationToken,
    watch: impl FnOnce(CancellationToken) -> W,
) -> anyhow::Result<()>
where
    W: std::future::Future<Output = Result<(), watcher::WatchError>>,
{
    let stop_watcher = CancellationToken::new();
    let stop_server = CancellationToken::new();
    tokio::spawn({
        let stop_watcher = stop_watcher.clone();
        let state = state.clone();
        async move {
            shutdown_signal().await;
            tracing::info!("flushing pending changes into the store");
            state.begin_shutdown();
            stop_watcher.cancel();
        }
    });
    let mut http = tokio::spawn(server::serve(listener, app, state, {
        let stop_server = stop_server.clone();
        async move {
            stop_server.cancelled().await;
            stop_mcp.cancel();
        }
    }));
    let watch = watch(stop_watcher.clone());
    tokio::pin!(watch);
    let (watched, served_early) = tokio::select! {
        result = &mut watch => (result, None),
        served = &mut http => {
            tracing::error!("the HTTP server stopped; stopping the watcher");
            stop_watcher.cancel();
            (watch.await, Some(served))
        }
    };
    let served = match served_early {
        Some(served) => served.map(|r| {
            r.and_then(|()| {
                Err(std::io::Error::other(
                    "the HTTP server stopped unexpectedly",
                ))
            })
        }),
        None => {
            stop_server.cancel();
            http.await
        }
    };
    served
        .context("the HTTP server task")?
        .context("serving HTTP")?;
    watched.context("the watcher")?;
    Ok(())
}
