//! `cw sync-instances`: one full and incremental sync of the cluster into the index, no
//! controller. The run is `watcher::single_pass` (the watcher's discovery, listing, extraction
//! and delivery, diffed against the store's hashes); this module wires its destination
//! (`cw serve` over HTTP with `--endpoint`, or ingest's pipeline in this process), its
//! progress bar and its summary. See docs/sync-instances.md.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ingest::pipeline::Pipeline;
use serde_json::json;
use watcher::sender::RetryConfig;
use watcher::single_pass::{self, Progress, Summary, SyncOptions};
use watcher::{Metrics, SyncSink};

use crate::backend::{OneOffArgs, Output};
use crate::pipeline_sink::PipelineSink;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub run: OneOffArgs,
    /// Objects per list request (paged with limit/continue).
    #[arg(long, env = "CW_SYNC_PAGE_SIZE", default_value_t = 500)]
    pub page_size: u32,
    /// Upserts (or deletes) per batch sent to the store.
    #[arg(long, env = "CW_SYNC_BATCH_SIZE", default_value_t = 100)]
    pub batch_size: usize,
}

/// The summary as one JSON object on stdout (`--output json`).
fn summary_json(s: &Summary) -> serde_json::Value {
    json!({
        "types": s.types,
        "instances": s.instances,
        "new": s.new,
        "changed": s.changed,
        "unchanged": s.unchanged,
        "removed": s.removed,
        "rejected": s.rejected,
        "failedTypes": s.failed_types,
        "unavailableGroups": s.unavailable_groups,
        "kept": s.kept,
        "seconds": s.duration.as_secs_f64(),
    })
}

/// The summary as text.
fn summary_text(s: &Summary) -> String {
    let mut text = format!(
        "synced {} instances of {} types in {:.1}s: {} new, {} changed, {} unchanged, {} removed",
        s.instances,
        s.types,
        s.duration.as_secs_f64(),
        s.new,
        s.changed,
        s.unchanged,
        s.removed
    );
    if s.rejected > 0 {
        text.push_str(&format!(", {} rejected", s.rejected));
    }
    if !s.failed_types.is_empty() {
        text.push_str(&format!(
            "\nlisting failed for {} type(s) ({}): their documents were kept",
            s.failed_types.len(),
            s.failed_types.join(", ")
        ));
    }
    if !s.unavailable_groups.is_empty() {
        let groups: Vec<&str> = s.unavailable_groups.keys().map(String::as_str).collect();
        text.push_str(&format!(
            "\ndiscovery failed for {} API group(s) ({}): their types were not synced and their documents were kept",
            groups.len(),
            groups.join(", ")
        ));
    }
    if s.kept > 0 {
        text.push_str(&format!(
            "\n{} document(s) of objects not listed were kept (their type could not be listed)",
            s.kept
        ));
    }
    text
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let sink = build_sink(&args)?;
    let client = watcher::kube_client()
        .await
        .context("building the Kubernetes client (KUBECONFIG, ~/.kube/config or in-cluster)")?;
    let options = SyncOptions {
        page_size: args.page_size.max(1),
        batch_size: args.batch_size.max(1),
        retries: args.run.destination.retries,
        retry: RetryConfig::default(),
        metrics: Metrics::new(),
    };
    let progress = Arc::new(TerminalProgress::new());
    let result = single_pass::sync_once(
        &client,
        sink,
        &args.run.filters.type_filter(),
        &args.run.filters.namespace_filter(),
        &options,
        progress.clone(),
    )
    .await;
    progress.finish();
    let summary = result?;
    match args.run.output {
        Output::Text => println!("{}", summary_text(&summary)),
        Output::Json => println!("{}", summary_json(&summary)),
    }
    if !summary.failed_types.is_empty() {
        bail!(
            "listing failed for {} type(s): {} (see the log); their documents were kept",
            summary.failed_types.len(),
            summary.failed_types.join(", ")
        );
    }
    if summary.rejected > 0 {
        bail!(
            "{} object(s) were rejected by the destination (see the log)",
            summary.rejected
        );
    }
    Ok(())
}

/// `--endpoint` → HTTP to `cw serve`; otherwise ingest's pipeline over the chosen store
/// and model, in this process.
fn build_sink(args: &Args) -> anyhow::Result<Arc<dyn SyncSink>> {
    let run = &args.run;
    run.sink(|store, embedder, cluster| {
        tracing::info!(
            store = %run.store.describe(),
            provider = ?run.embed.embedding_provider,
            collection = %run.store.instances_collection,
            "writing the store in-process"
        );
        // Written to the store's active index generation (read before the first sync).
        let active = ingest::generations::ActiveIndex::new(
            crate::backend::generation_store(store.clone(), &run.store),
            embedder.clone(),
        );
        let pipeline =
            Pipeline::new(store, embedder, &run.store.instances_collection).with_active(active);
        Ok(PipelineSink::new(pipeline, cluster))
    })
}

/// A progress bar on a terminal (types done, instances listed, stored); plain log lines,
/// at most every few seconds, otherwise.
struct TerminalProgress {
    bar: Option<ProgressBar>,
    counts: std::sync::Mutex<ProgressCounts>,
}

#[derive(Default)]
struct ProgressCounts {
    types: u64,
    types_done: u64,
    listed: u64,
    stored: u64,
    removed: u64,
    last_log: Option<Instant>,
}

const LOG_EVERY: Duration = Duration::from_secs(5);

impl TerminalProgress {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} types · {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        TerminalProgress {
            bar,
            counts: Default::default(),
        }
    }

    fn update(&self, change: impl FnOnce(&mut ProgressCounts), force_log: bool) {
        let Ok(mut c) = self.counts.lock() else {
            return;
        };
        change(&mut c);
        let msg = format!(
            "{} instances listed · {} stored · {} removed",
            c.listed, c.stored, c.removed
        );
        match &self.bar {
            Some(bar) => {
                bar.set_length(c.types);
                bar.set_position(c.types_done);
                bar.set_message(msg);
            }
            None => {
                let due = c.last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY);
                if force_log || due {
                    c.last_log = Some(Instant::now());
                    tracing::info!("{}/{} types · {msg}", c.types_done, c.types);
                }
            }
        }
    }

    fn finish(&self) {
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None => self.update(|_| {}, true),
        }
    }
}

impl Progress for TerminalProgress {
    fn log(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => tracing::info!("{line}"),
        }
    }

    fn start_types(&self, types: u64) {
        self.log(format!("listing {types} types"));
        self.update(|c| c.types = types, false);
    }

    fn type_done(&self) {
        self.update(|c| c.types_done += 1, false);
    }

    fn listed(&self, n: u64) {
        self.update(|c| c.listed += n, false);
    }

    fn stored(&self, n: u64) {
        self.update(|c| c.stored += n, false);
    }

    fn removed(&self, n: u64) {
        self.update(|c| c.removed += n, false);
    }
}
