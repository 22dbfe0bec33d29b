//! `cw watch`: wiring only; see the `watcher` crate for the pipeline.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use watcher::{CancellationToken, HttpSink, Metrics, Shared, WatchConfig};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: WatchConfig,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config;
    let settings = config.settings();
    let client = watcher::kube_client()
        .await
        .context("building the Kubernetes client (KUBECONFIG, ~/.kube/config or in-cluster)")?;
    let sink = HttpSink::new(
        &config.rest_endpoint,
        config.ingest_token.clone(),
        Duration::from_secs(config.ingest_timeout_secs),
    )
    .context("building the HTTP client for the ingest server")?;
    let shared = Shared::new(Metrics::new());
    let addr = config.bind_address();
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding API_BIND_ADDRESS {addr}"))?;
    tracing::info!(%addr, endpoint = %config.rest_endpoint, "cw watch starting");

    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    // The operations server outlives the watcher's flush so that /readyz reports it.
    let ops_stop = CancellationToken::new();
    let ops = tokio::spawn(watcher::ops::serve(
        listener,
        shared.clone(),
        config.ingest_token.clone(),
        ops_stop.clone(),
    ));
    let result = watcher::run(settings, client, Arc::new(sink), shared, shutdown).await;
    ops_stop.cancel();
    let _ = ops.await;
    result.context("cw watch")
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("signal received; shutting down");
    shutdown.cancel();
}
