//! `cw resync`: asks a running `cw watch` to relist everything and make the store equal
//! the cluster, then prints what changed.

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// The watcher's operations address (its API_BIND_ADDRESS).
    #[arg(long, env = "CW_WATCHER_URL", default_value = "http://localhost:8082")]
    watcher_url: String,
    /// Bearer token the watcher expects (the ingest token).
    #[arg(long, env = "CW_INGEST_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let report = watcher::ops::request_resync(&args.watcher_url, args.token.as_deref())
        .await
        .context("resync")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
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
