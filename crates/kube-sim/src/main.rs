//! `kube-sim`: serves the simulator on 127.0.0.1 until Ctrl-C, optionally seeded with manifests
//! and generated objects, and writes a kubeconfig that kubectl and kube-rs use as they are.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kube_sim::{GeneratorConfig, SimConfig, SimServer};

#[derive(Debug, Parser)]
#[command(
    name = "kube-sim",
    about = "A Kubernetes API simulator that kube-rs and kubectl accept"
)]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one; the address is printed).
    #[arg(long, env = "KUBE_SIM_PORT", default_value_t = 0)]
    port: u16,
    /// Write a kubeconfig for this simulator to FILE.
    #[arg(long, env = "KUBE_SIM_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Manifests to load at start: a file or folder of multi-document YAML/JSON (repeatable).
    #[arg(long, env = "KUBE_SIM_SEED")]
    seed: Vec<PathBuf>,
    /// Require `Authorization: Bearer TOKEN` (written into the kubeconfig).
    #[arg(long, env = "KUBE_SIM_TOKEN")]
    token: Option<String>,
    /// The ServiceAccount token issuer (`iss` of the tokens `kubectl create token` gets).
    #[arg(long, env = "KUBE_SIM_ISSUER", default_value = kube_sim::DEFAULT_ISSUER)]
    issuer: String,
    /// Watch events kept for resumption; older resourceVersions get 410 Expired.
    #[arg(long, env = "KUBE_SIM_HISTORY", default_value_t = 10_000)]
    history: usize,
    /// Seconds between BOOKMARK events on watches that allow them.
    #[arg(long, env = "KUBE_SIM_BOOKMARK_SECS", default_value_t = 5)]
    bookmark_secs: u64,
    #[command(flatten)]
    generator: GeneratorConfig,
    /// Log filter (tracing env-filter syntax).
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    log_level: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log_level))
        .with_writer(std::io::stderr)
        .init();
    let gen = &args.generator;
    let generate = gen.namespaces > 0 || gen.crds > 0 || gen.objects > 0;
    let config = SimConfig {
        port: args.port,
        token: args.token.clone(),
        issuer: args.issuer.clone(),
        history_capacity: args.history,
        bookmark_interval: Duration::from_secs(args.bookmark_secs.max(1)),
        seed_paths: args.seed.clone(),
        generator: generate.then(|| args.generator.clone()),
        ..SimConfig::default()
    };
    let sim = SimServer::start(config)
        .await
        .context("starting the simulator")?;
    if let Some(path) = &args.kubeconfig {
        sim.write_kubeconfig(path)
            .with_context(|| format!("writing the kubeconfig to {}", path.display()))?;
    }
    // The address on stdout is the interface of scripts that start the simulator with --port 0.
    println!(
        "kube-sim listening on {} ({} objects)",
        sim.url(),
        sim.object_count()
    );
    if let Some(path) = &args.kubeconfig {
        println!("kubeconfig written to {}", path.display());
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    sim.shutdown().await;
    Ok(())
}
