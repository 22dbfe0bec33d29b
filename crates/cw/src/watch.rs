//! `cw watch`: wiring only; see the `watcher` crate for the pipeline.

use std::sync::Arc;

use anyhow::Context;
use watcher::{CancellationToken, Metrics, Shared, StandaloneArgs, WatchConfig};

use crate::signal::shutdown_signal;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    standalone: StandaloneArgs,
    #[command(flatten)]
    config: WatchConfig,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    // The same token guards the resync endpoint: a blank one is a start-up error.
    let token = args.standalone.ingest.token.required()?.map(str::to_string);
    let cluster = args.standalone.cluster.resolve()?;
    let settings = args.config.settings();
    let client = watcher::kube_client()
        .await
        .context("building the Kubernetes client (KUBECONFIG, ~/.kube/config or in-cluster)")?;
    let sink = args
        .standalone
        .http_sink(cluster.clone())
        .context("building the HTTP client for the ingest server")?;
    let shared = Shared::new(Metrics::new());
    let addr = args.standalone.bind_address();
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding API_BIND_ADDRESS {addr}"))?;
    tracing::info!(%addr, ingest = %args.standalone.ingest_base_url(), %cluster, "cw watch starting");

    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            shutdown_signal().await;
            shutdown.cancel();
        }
    });
    // The operations server outlives the watcher's flush so that /readyz reports it.
    let ops_stop = CancellationToken::new();
    let ops = tokio::spawn(watcher::ops::serve(
        listener,
        shared.clone(),
        token,
        ops_stop.clone(),
    ));
    let result = watcher::run(settings, client, Arc::new(sink), shared, shutdown).await;
    ops_stop.cancel();
    let _ = ops.await;
    result.context("cw watch")
}
