//! `cw reindex`: builds the next index generation for the embedding model and layout of
//! these flags beside the active one, then switches to it (`ingest::generations`); also
//! undoes a switch (`--activate N`), drops the previous generation (`--drop-previous`) and
//! shows the generations (`--status`). Wiring only, and the progress shown on a terminal.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ingest::generations::reindex::{self, Reindex, ReindexOptions, ReindexProgress};
use ingest::generations::{Generation, GenerationStore};

use crate::backend::{generation_store, EmbedArgs, StoreArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The embedding model of the new generation (the flags `cw serve` will be given).
    #[command(flatten)]
    pub embed: EmbedArgs,
    /// The cluster that the documents of an index written before cluster ids belong to
    /// (the --cluster-id its watcher sends).
    #[arg(long, env = "CW_CLUSTER_FOR_LEGACY")]
    pub cluster_for_legacy: Option<sync_model::ClusterId>,
    /// Delete the previous generation's collections: the switch can no longer be undone.
    #[arg(long, conflicts_with_all = ["activate", "status"])]
    pub drop_previous: bool,
    /// Switch back to generation N (the previous one), undoing the last switch.
    #[arg(long, value_name = "N", conflicts_with = "status")]
    pub activate: Option<u32>,
    /// Print the generations the store records and do nothing else.
    #[arg(long)]
    pub status: bool,
    /// Documents read, embedded and written at a time.
    #[arg(long, env = "CW_REINDEX_PAGE", default_value_t = reindex::DEFAULT_PAGE)]
    pub page: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let store = args.store.build()?;
    let generations = generation_store(store, &args.store);
    if args.status {
        return print_status(&generations).await;
    }
    if args.drop_previous {
        let dropped = reindex::drop_previous(&generations).await?;
        println!(
            "dropped generation {} ({}); the switch can no longer be undone",
            dropped.number, dropped.model
        );
        return Ok(());
    }
    if let Some(number) = args.activate {
        let record = reindex::activate(&generations, number).await?;
        println!(
            "generation {} ({}) is active again; servers follow within seconds (restart them \
             with that model's flags if they embed with another)",
            record.active.number, record.active.model
        );
        return Ok(());
    }
    let embedder = args.embed.build()?;
    let progress = Arc::new(ReindexProgress::default());
    let reindex = Reindex::new(generations, embedder)
        .with_options(ReindexOptions {
            legacy_cluster: args.cluster_for_legacy.clone(),
            page: Some(args.page),
        })
        .with_progress(progress.clone());
    let shown = show_progress(progress);
    let started = Instant::now();
    let result = reindex.run().await;
    shown.abort();
    let done = result.context("reindexing")?;
    let s = &done.status;
    println!(
        "generation {} ({}) is active, built from generation {} ({}) in {:.1}s: {} documents, \
         {} embedded, {} reused, {} copied, {} there already, {} fixed at the switch. The \
         previous generation is kept: `cw reindex --activate {}` undoes the switch, \
         `cw reindex --drop-previous` deletes it.",
        done.to.number,
        done.to.model,
        done.from.number,
        done.from.model,
        started.elapsed().as_secs_f64(),
        s.total,
        s.embedded,
        s.reused,
        s.copied,
        s.skipped,
        s.fixed,
        done.from.number,
    );
    Ok(())
}

async fn print_status(generations: &GenerationStore) -> anyhow::Result<()> {
    let Some(record) = generations.read_or_implicit().await? else {
        println!("the store holds no index");
        return Ok(());
    };
    let line = |what: &str, g: &Generation| {
        println!(
            "{what:<9} generation {} · {} ({} dimensions) · layout {} · {}",
            g.number,
            g.model,
            g.dimension,
            g.layout,
            g.instances(generations.base())
        )
    };
    line("active", &record.active);
    if let Some(g) = &record.building {
        line("building", g);
    }
    if let Some(g) = &record.previous {
        line("previous", g);
    }
    Ok(())
}

/// A progress bar on a terminal, else a log line every few seconds, until aborted.
fn show_progress(progress: Arc<ReindexProgress>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} documents · {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        let every = if bar.is_some() {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        loop {
            let s = progress.status();
            let msg = format!(
                "generation {} · {} embedded · {} reused · {} copied",
                s.generation, s.embedded, s.reused, s.copied
            );
            match &bar {
                Some(bar) => {
                    bar.set_length(s.total);
                    bar.set_position(s.done);
                    bar.set_message(msg);
                }
                None if s.total > 0 => tracing::info!("{}/{} documents · {msg}", s.done, s.total),
                None => {}
            }
            tokio::time::sleep(every).await;
        }
    })
}
