//! `cw resync`: asks a running `cw watch` to relist everything and make the store equal
//! the cluster, then prints what changed.

use anyhow::Context;
use watcher::{ResyncScope, TokenArgs};

#[derive(clap::Args)]
pub struct Args {
    /// The watcher's operations address (its API_BIND_ADDRESS).
    #[arg(long, env = "CW_WATCHER_URL", default_value = "http://localhost:8082")]
    watcher_url: String,
    // The bearer token the watcher expects (the ingest token).
    #[command(flatten)]
    token: TokenArgs,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Only the instances, or only the capability records (one per resource type).
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// How long to wait for the watcher's report before giving up (the resync itself goes
    /// on in the watcher).
    #[arg(long = "timeout-secs", env = "CW_RESYNC_TIMEOUT_SECS", default_value_t = watcher::ops::DEFAULT_RESYNC_TIMEOUT.as_secs())]
    timeout_secs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Only {
    Instances,
    Capabilities,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let scope = match args.only {
        None => ResyncScope::All,
        Some(Only::Instances) => ResyncScope::Instances,
        Some(Only::Capabilities) => ResyncScope::Capabilities,
    };
    let timeout = std::time::Duration::from_secs(args.timeout_secs.max(1));
    let report =
        watcher::ops::request_resync_of(&args.watcher_url, args.token.get(), scope, timeout)
            .await
            .context("resync")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if args.only == Some(Only::Capabilities) {
        match &report.capabilities {
            Some(c) => println!(
                "capability resync done in {:.1}s: {} types; {} unchanged, {} re-sent, {} removed",
                report.duration_ms as f64 / 1000.0,
                c.types,
                c.unchanged,
                c.upserted,
                c.deleted
            ),
            None => {
                anyhow::bail!("the capability sync failed; the watcher retries it (see its log)")
            }
        }
    } else {
        if let Some(c) = &report.capabilities {
            println!(
                "capabilities: {} types; {} unchanged, {} re-sent, {} removed",
                c.types, c.unchanged, c.upserted, c.deleted
            );
        }
        println!(
            "resync done in {:.1}s: {} types, {} objects listed; {} unchanged, {} re-sent, {} ghosts deleted, {} changing meanwhile (sent by their watches)",
            report.duration_ms as f64 / 1000.0,
            report.types,
            report.listed,
            report.unchanged,
            report.upserted,
            report.deleted,
            report.in_flight
        );
    }
    Ok(())
}
