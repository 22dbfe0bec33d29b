//! `cw serve`: the ingest server. Wiring only: flags become the store (Chroma, or the
//! embedded one when no URL is given), the embedding provider and the pipeline of the
//! `ingest` crate, served by its router, with the MCP server for agents at `/mcp` (reading
//! live the clusters of `--cluster-kubeconfigs`) and the web pages for people at `/`.

use anyhow::Context;
use ingest::server;

use crate::backend::{IngestArgs, ListenArgs};
use crate::mcp;
use crate::signal::shutdown_signal;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub ingest: IngestArgs,
    #[command(flatten)]
    pub connections: mcp::ConnectionArgs,
    /// Seconds `/readyz` answers 503 after SIGTERM before the server stops accepting
    /// requests, so that a load balancer (a Service's endpoints, which follow readiness)
    /// stops sending new work to this replica first; 0 stops at once.
    #[arg(long, env = "CW_SHUTDOWN_DRAIN_SECS", default_value_t = 0)]
    pub shutdown_drain_secs: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let store = args.ingest.store.build()?;
    let embedder = args.ingest.embed.build()?;
    crate::backend::check_index_model(&store, &embedder, &args.ingest.store).await?;
    let state = args.ingest.state(store, embedder).await?;
    let listener = args.listen.bind().await?;
    tracing::info!(
        addr = %listener.local_addr()?,
        store = %args.ingest.store.describe(),
        provider = ?args.ingest.embed.embedding_provider,
        collection = %args.ingest.store.instances_collection,
        enrichment = args.ingest.enrich.llm_url.as_deref().unwrap_or("off"),
        "cw serve listening"
    );
    let stop_mcp = mcp::CancellationToken::new();
    // cw serve watches no cluster of its own: it reads live only the clusters it is given.
    let clusters = args
        .connections
        .access(Default::default(), "cw serve", stop_mcp.clone())
        .await?;
    let app = server::router(state.clone()).merge(crate::web::people_and_agents(
        &state,
        clusters,
        stop_mcp.clone(),
        &args.listen.host,
    ));
    let drain = std::time::Duration::from_secs(args.shutdown_drain_secs);
    let draining = state.clone();
    let shutdown = async move {
        shutdown_signal().await;
        if !drain.is_zero() {
            draining.begin_shutdown();
            tracing::info!(
                ?drain,
                "draining: /readyz answers 503 until the server stops"
            );
            tokio::time::sleep(drain).await;
        }
        stop_mcp.cancel();
    };
    server::serve(listener, app, state, shutdown)
        .await
        .context("serving HTTP")?;
    tracing::info!("cw serve stopped");
    Ok(())
}
