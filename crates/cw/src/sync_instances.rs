//! `cw sync-instances`: one full and incremental sync of the cluster into the index, no
//! controller. The watcher's discovery, filters, paged listing and extraction (so the
//! documents equal `cw watch`'s), diffed against the store's content hashes: only new and
//! changed objects are sent (unchanged ones are never embedded), then the documents of
//! objects that no longer exist are removed, and only when every type was listed.
//! The destination is a `watcher::SyncSink`: `cw serve` over HTTP (`--endpoint`) or
//! ingest's pipeline in this process. See docs/sync-instances.md.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ingest::pipeline::Pipeline;
use serde_json::json;
use sync_model::{ResourceId, ResourceInstance, SyncPayload};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use watcher::config::ResourceFilterArgs;
use watcher::sender::{self, Delivered, Retries, RetryConfig};
use watcher::{Metrics, SyncSink};

use crate::backend::{EmbedArgs, EndpointArgs, StoreArgs};
use crate::pipeline_sink::PipelineSink;

/// The sync endpoint's path on a `cw serve`.
const SYNC_PATH: &str = "/api/v1/instances/sync";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub destination: EndpointArgs,
    #[command(flatten)]
    pub filters: ResourceFilterArgs,
    /// Objects per list request (paged with limit/continue).
    #[arg(long, env = "CW_SYNC_PAGE_SIZE", default_value_t = 500)]
    pub page_size: u32,
    /// Upserts (or deletes) per batch sent to the store.
    #[arg(long, env = "CW_SYNC_BATCH_SIZE", default_value_t = 100)]
    pub batch_size: usize,
    /// Retries of a batch whose destination is unavailable (exponential backoff with
    /// jitter), before the run fails.
    #[arg(long, env = "CW_SYNC_RETRIES", default_value_t = 5)]
    pub retries: usize,
    /// The summary as text or as one JSON object on stdout.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub embed: EmbedArgs,
}

/// What one run found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub types: usize,
    /// Objects listed (after the namespace filter).
    pub instances: usize,
    pub new: usize,
    pub changed: usize,
    pub unchanged: usize,
    pub removed: usize,
    /// Objects the destination refused as invalid (logged with its reasons).
    pub rejected: usize,
    /// Types whose listing failed: their documents were kept and no document was removed.
    pub failed_types: Vec<String>,
    pub duration: Duration,
}

impl Summary {
    fn to_json(&self) -> serde_json::Value {
        json!({
            "types": self.types,
            "instances": self.instances,
            "new": self.new,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "rejected": self.rejected,
            "failedTypes": self.failed_types,
            "seconds": self.duration.as_secs_f64(),
        })
    }

    fn to_text(&self) -> String {
        let mut text = format!(
            "synced {} instances of {} types in {:.1}s: {} new, {} changed, {} unchanged, {} removed",
            self.instances,
            self.types,
            self.duration.as_secs_f64(),
            self.new,
            self.changed,
            self.unchanged,
            self.removed
        );
        if self.rejected > 0 {
            text.push_str(&format!(", {} rejected", self.rejected));
        }
        if !self.failed_types.is_empty() {
            text.push_str(&format!(
                "\nlisting failed for {} type(s) ({}): nothing was removed",
                self.failed_types.len(),
                self.failed_types.join(", ")
            ));
        }
        text
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let sink = build_sink(&args)?;
    let client = watcher::kube_client()
        .await
        .context("building the Kubernetes client (KUBECONFIG, ~/.kube/config or in-cluster)")?;
    let options = SyncOptions {
        page_size: args.page_size.max(1),
        batch_size: args.batch_size.max(1),
        retries: args.retries,
        retry: RetryConfig::default(),
        metrics: Metrics::new(),
    };
    let progress = Progress::new();
    let result = sync(&client, sink, &args.filters, &options, &progress).await;
    progress.finish();
    let summary = result?;
    match args.output {
        Output::Text => println!("{}", summary.to_text()),
        Output::Json => println!("{}", summary.to_json()),
    }
    if !summary.failed_types.is_empty() {
        bail!(
            "listing failed for {} type(s): {} (see the log); nothing was removed",
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
    if let Some(sink) = args.destination.http_sink()? {
        return Ok(Arc::new(sink));
    }
    // The model first: a missing model is the likeliest first-run problem and its message
    // names `cw model fetch`.
    let embedder = args.embed.build()?;
    let store = args.store.build()?;
    tracing::info!(
        store = %args.store.describe(),
        provider = ?args.embed.embedding_provider,
        collection = %args.store.instances_collection,
        "writing the store in-process"
    );
    let pipeline = Pipeline::new(store, embedder, &args.store.instances_collection);
    Ok(Arc::new(PipelineSink::new(pipeline)))
}

/// `http://host:3000` or `http://host:3000/` → `http://host:3000/api/v1/instances/sync`;
/// a URL already naming the sync path is kept.
pub fn sync_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    if trimmed.ends_with("/instances/sync") {
        trimmed.to_string()
    } else {
        format!("{trimmed}{SYNC_PATH}")
    }
}

#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub page_size: u32,
    pub batch_size: usize,
    pub retries: usize,
    pub retry: RetryConfig,
    /// Counts what was sent, retried and rejected (the sender's own metrics).
    pub metrics: Metrics,
}

/// How one listed object compares with the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    New,
    Changed,
    Unchanged,
}

/// The diff of a listing against the store's hashes. Each listed id is taken out of
/// `stored`, so what is left at the end are the documents of objects that no longer exist.
pub struct StoreDiff {
    stored: HashMap<ResourceId, String>,
}

impl StoreDiff {
    pub fn new(stored: HashMap<ResourceId, String>) -> Self {
        StoreDiff { stored }
    }

    pub fn classify(&mut self, instance: &ResourceInstance) -> Verdict {
        match self.stored.remove(&instance.id) {
            None => Verdict::New,
            Some(hash) if hash == instance.content_hash() => Verdict::Unchanged,
            Some(_) => Verdict::Changed,
        }
    }

    /// Stored ids never listed: to remove, once every type has been listed.
    pub fn into_ghosts(self) -> Vec<ResourceId> {
        let mut ghosts: Vec<ResourceId> = self.stored.into_keys().collect();
        ghosts.sort();
        ghosts
    }
}

/// The whole run: hashes, discovery, listing with upserts as pages arrive, then removals.
async fn sync(
    client: &kube::Client,
    sink: Arc<dyn SyncSink>,
    filters: &ResourceFilterArgs,
    options: &SyncOptions,
    progress: &Progress,
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let stored = sender::with_retries(
        &options.retry,
        Retries::AtMost(options.retries),
        "reading the stored documents' hashes",
        &options.metrics,
        || sink.stored_hashes(),
    )
    .await
    .context("cannot read what the store holds (is the store or --endpoint reachable?)")?;
    progress.log(format!("the store holds {} documents", stored.len()));

    let types = watcher::discover(client, &filters.type_filter())
        .await
        .context("discovering the cluster's resource types (is the API server reachable?)")?;
    progress.start_types(types.len() as u64);
    let namespaces = filters.namespace_filter();

    // Listing and sending overlap: pages go through a channel to the sender, which diffs
    // them and keeps up to two batches in flight.
    let (pages, page_rx) = mpsc::channel::<Vec<ResourceInstance>>(4);
    let sender = tokio::spawn(send_changes(
        sink.clone(),
        page_rx,
        StoreDiff::new(stored),
        options.clone(),
        progress.clone(),
    ));
    let mut failed_types = Vec::new();
    for ty in &types {
        if pages.is_closed() {
            break; // the sender failed; its error is reported below
        }
        let listed = watcher::source::list_type(client, ty, &namespaces, options.page_size, {
            let pages = &pages;
            move |page| async move {
                let _ = pages.send(page).await;
            }
        })
        .await;
        if let Err(e) = listed {
            tracing::error!(resource_type = %ty.key(), error = %e, "listing failed");
            failed_types.push(ty.qualified_plural());
        }
        progress.type_done();
    }
    drop(pages);
    let sent = sender
        .await
        .context("the sending task failed")?
        .context("sending changes")?;

    let mut summary = Summary {
        types: types.len(),
        instances: sent.listed,
        new: sent.new,
        changed: sent.changed,
        unchanged: sent.unchanged,
        rejected: sent.rejected,
        ..Summary::default()
    };
    let ghosts = sent.diff.into_ghosts();
    if failed_types.is_empty() {
        progress.log(format!("removing {} documents", ghosts.len()));
        for chunk in ghosts.chunks(options.batch_size) {
            let payload = SyncPayload {
                upserts: Vec::new(),
                deletes: chunk.to_vec(),
            };
            let delivered = deliver(sink.as_ref(), payload, options).await?;
            summary.rejected += delivered.rejected;
            summary.removed += delivered.accepted;
            progress.removed(delivered.accepted as u64);
        }
    } else if !ghosts.is_empty() {
        tracing::warn!(
            documents = ghosts.len(),
            "not removing documents of objects not listed: some types failed to list"
        );
    }
    summary.failed_types = failed_types;
    summary.duration = started.elapsed();
    Ok(summary)
}

/// What the sender did with the listed objects.
struct Sent {
    listed: usize,
    new: usize,
    changed: usize,
    unchanged: usize,
    rejected: usize,
    diff: StoreDiff,
}

/// Batches in flight at once: one batch's embedding overlaps the other's store write.
const BATCHES_IN_FLIGHT: usize = watcher::sender::BATCHES_IN_FLIGHT;

async fn send_changes(
    sink: Arc<dyn SyncSink>,
    mut pages: mpsc::Receiver<Vec<ResourceInstance>>,
    mut diff: StoreDiff,
    options: SyncOptions,
    progress: Progress,
) -> anyhow::Result<Sent> {
    let mut sent = Sent {
        listed: 0,
        new: 0,
        changed: 0,
        unchanged: 0,
        rejected: 0,
        diff: StoreDiff::new(HashMap::new()),
    };
    let mut batch: Vec<ResourceInstance> = Vec::with_capacity(options.batch_size);
    let mut in_flight: JoinSet<anyhow::Result<Delivered>> = JoinSet::new();
    let finish = |done: Result<anyhow::Result<Delivered>, tokio::task::JoinError>,
                  sent: &mut Sent|
     -> anyhow::Result<()> {
        let delivered = done.context("a batch delivery task failed")??;
        sent.rejected += delivered.rejected;
        progress.stored(delivered.accepted as u64);
        Ok(())
    };
    let mut closed = false;
    while !closed || !batch.is_empty() {
        if !closed {
            match pages.recv().await {
                Some(page) => {
                    sent.listed += page.len();
                    progress.listed(page.len() as u64);
                    for instance in page {
                        match diff.classify(&instance) {
                            Verdict::New => sent.new += 1,
                            Verdict::Changed => sent.changed += 1,
                            Verdict::Unchanged => {
                                sent.unchanged += 1;
                                continue;
                            }
                        }
                        batch.push(instance);
                    }
                }
                None => closed = true,
            }
        }
        while batch.len() >= options.batch_size || (closed && !batch.is_empty()) {
            while in_flight.len() >= BATCHES_IN_FLIGHT {
                if let Some(done) = in_flight.join_next().await {
                    finish(done, &mut sent)?;
                }
            }
            let take = batch.len().min(options.batch_size);
            let upserts: Vec<ResourceInstance> = batch.drain(..take).collect();
            let (sink, options) = (sink.clone(), options.clone());
            in_flight.spawn(async move {
                let payload = SyncPayload {
                    upserts,
                    deletes: Vec::new(),
                };
                deliver(sink.as_ref(), payload, &options).await
            });
        }
    }
    while let Some(done) = in_flight.join_next().await {
        finish(done, &mut sent)?;
    }
    sent.diff = diff;
    Ok(sent)
}

/// Sends one payload with bounded retries (`--retries`), splitting payloads refused as
/// invalid or too large so that one bad object cannot hold back its neighbours; any other
/// refusal (401, a store filled by another model) fails the run.
async fn deliver(
    sink: &dyn SyncSink,
    payload: SyncPayload,
    options: &SyncOptions,
) -> anyhow::Result<Delivered> {
    let retries = Retries::AtMost(options.retries);
    sender::deliver_payload(sink, payload, &options.retry, retries, &options.metrics)
        .await
        .context("the destination refused a batch")
}

/// A progress bar on a terminal (types done, instances listed, stored); plain log lines,
/// at most every few seconds, otherwise.
#[derive(Clone)]
struct Progress {
    bar: Option<ProgressBar>,
    counts: Arc<std::sync::Mutex<ProgressCounts>>,
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

impl Progress {
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
        Progress {
            bar,
            counts: Arc::default(),
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

    fn finish(&self) {
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None => self.update(|_| {}, true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(name: &str, app: &str) -> ResourceInstance {
        ResourceInstance {
            id: ResourceId::new(Some("default"), "apps/v1", "Deployment", name),
            namespace: "default".into(),
            name: name.into(),
            kind: "Deployment".into(),
            api_version: "apps/v1".into(),
            api_group: "apps".into(),
            labels: [("app".to_string(), app.to_string())].into(),
            annotations: Default::default(),
            created_at: "2026-02-20T10:00:00Z".into(),
        }
    }

    #[test]
    fn the_diff_tells_new_changed_and_unchanged_apart_and_leaves_the_ghosts() {
        let same = instance("same", "a");
        let changed = instance("changed", "a");
        let gone = instance("gone", "a");
        let stored: HashMap<ResourceId, String> = [
            (same.id.clone(), same.content_hash()),
            (changed.id.clone(), changed.content_hash()),
            (gone.id.clone(), gone.content_hash()),
        ]
        .into();
        let mut diff = StoreDiff::new(stored);
        assert_eq!(diff.classify(&same), Verdict::Unchanged);
        assert_eq!(diff.classify(&instance("changed", "b")), Verdict::Changed);
        assert_eq!(diff.classify(&instance("fresh", "a")), Verdict::New);
        assert_eq!(diff.into_ghosts(), vec![gone.id]);
    }

    #[test]
    fn the_endpoint_may_be_the_server_or_its_sync_url() {
        let want = "http://127.0.0.1:3000/api/v1/instances/sync";
        assert_eq!(sync_url("http://127.0.0.1:3000"), want);
        assert_eq!(sync_url("http://127.0.0.1:3000/"), want);
        assert_eq!(sync_url(want), want);
    }
}
