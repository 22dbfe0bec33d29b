//! `cw sync-capabilities`: one run that makes the capabilities collection (one record per
//! resource type: built-in descriptions, CRD schemas, optional LLM enrichment) equal to
//! the cluster's watched types. The work is `watcher::capabilities::sync_capabilities`, the
//! same the running watcher does; this module wires flags to it.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use watcher::capabilities::{sync_capabilities, CapabilityError, CapabilityReport, WatchedTypes};
use watcher::sender::{self, Retries, RetryConfig};
use watcher::SyncSink;

use crate::backend::{pipelines, EnrichArgs, OneOffArgs, Output};
use crate::pipeline_sink::PipelineSink;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub run: OneOffArgs,
    #[command(flatten)]
    pub enrich: EnrichArgs,
}

/// `--endpoint` → HTTP to `cw serve`; otherwise ingest's pipelines (instances and
/// capabilities) over the chosen store and model, in this process.
fn build_sink(args: &Args) -> anyhow::Result<Arc<dyn SyncSink>> {
    args.run.sink(|store, embedder, cluster| {
        let (instances, capabilities) = pipelines(store, embedder, &args.run.store, &args.enrich)?;
        Ok(PipelineSink::new(instances, cluster).with_capabilities(capabilities))
    })
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let sink = build_sink(&args)?;
    let client = watcher::kube_client()
        .await
        .context("building the Kubernetes client (KUBECONFIG, ~/.kube/config or in-cluster)")?;
    let filter = args.run.filters.type_filter();
    let report: CapabilityReport = sender::retrying(
        &RetryConfig::default(),
        Retries::AtMost(args.run.destination.retries),
        "capability sync",
        CapabilityError::is_retryable,
        || async {
            let found = watcher::discover(&client, &filter)
                .await
                .map_err(CapabilityError::Discovery)?;
            for (group, reason) in &found.unavailable {
                tracing::warn!(group = %group, reason = %reason, "API group unavailable; its types are not synced");
            }
            let watched = WatchedTypes {
                unavailable_groups: found.unavailable.keys().cloned().collect(),
                types: found.types,
            };
            sync_capabilities(&client, sink.as_ref(), &watched).await
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("capability sync failed: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    match args.run.output {
        Output::Json => {
            let mut value = serde_json::to_value(&report)?;
            value["seconds"] = serde_json::json!((seconds * 100.0).round() / 100.0);
            println!("{value}");
        }
        Output::Text => println!(
            "capabilities: {} types; {} new, {} changed, {} unchanged, {} removed; {:.2}s",
            report.types, report.new, report.changed, report.unchanged, report.deleted, seconds
        ),
    }
    if report.rejected > 0 {
        anyhow::bail!(
            "{} capability records were refused by the ingest server (their reasons are logged above); the others were stored",
            report.rejected
        );
    }
    Ok(())
}
