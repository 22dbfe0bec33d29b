//! `kube-sim`: serves the simulator on 127.0.0.1 until Ctrl-C, optionally seeded with manifests
//! and generated objects, and writes a kubeconfig that kubectl and kube-rs use as they are.
//! With `--clusters N`, serves a fleet of N simulated clusters in one process instead (see
//! `kube_sim::fleet`), each on its own port with its own issuer key and kubeconfig.

use std::path::{Path, PathBuf};
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
    #[command(flatten)]
    fleet: FleetArgs,
    /// Log filter (tracing env-filter syntax).
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    log_level: String,
}

/// A fleet of simulated clusters in this one process.
#[derive(Debug, clap::Args)]
struct FleetArgs {
    /// Serve a fleet of this many simulated clusters (c01, c02, ...), each on its own port
    /// (--port + index when --port is set, else free ports) with its own issuer key and the
    /// fleet generator's objects (seeded by --gen-seed and the cluster's index); 0: one
    /// simulator as usual.
    #[arg(long, env = "KUBE_SIM_CLUSTERS", default_value_t = 0)]
    clusters: usize,
    /// Objects generated per fleet cluster (exact; the four built-in namespaces come on top).
    #[arg(long, env = "KUBE_SIM_FLEET_OBJECTS", default_value_t = 5_000)]
    fleet_objects: usize,
    /// Where a fleet's kubeconfigs go: DIR/<id>.kubeconfig (context <id>) and DIR/fleet.json
    /// (id, url, kubeconfig, environment and object counts of each cluster).
    #[arg(long, env = "KUBE_SIM_KUBECONFIG_DIR")]
    kubeconfig_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log_level))
        .with_writer(std::io::stderr)
        .init();
    if args.fleet.clusters > 0 {
        return serve_fleet(&args).await;
    }
    let gen = &args.generator;
    let generate = gen.namespaces > 0 || gen.crds > 0 || gen.objects > 0;
    let config = SimConfig {
        seed_paths: args.seed.clone(),
        generator: generate.then(|| args.generator.clone()),
        ..sim_config(&args, args.port)
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

/// The configuration every simulator of the process shares (port and seeds aside).
fn sim_config(args: &Args, port: u16) -> SimConfig {
    SimConfig {
        port,
        token: args.token.clone(),
        issuer: args.issuer.clone(),
        history_capacity: args.history,
        bookmark_interval: Duration::from_secs(args.bookmark_secs.max(1)),
        ..SimConfig::default()
    }
}

/// Starts `--clusters` simulators, fills each with its fleet member, writes their
/// kubeconfigs and `fleet.json`, and serves them all until Ctrl-C.
async fn serve_fleet(args: &Args) -> anyhow::Result<()> {
    let fleet = &args.fleet;
    let dir = fleet
        .kubeconfig_dir
        .as_deref()
        .context("--clusters needs --kubeconfig-dir (where each cluster's kubeconfig goes)")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let started = std::time::Instant::now();
    let mut sims = Vec::with_capacity(fleet.clusters);
    let mut members = Vec::with_capacity(fleet.clusters);
    for index in 0..fleet.clusters {
        let port = if args.port == 0 {
            0
        } else {
            u16::try_from(usize::from(args.port) + index)
                .context("--port + --clusters passes 65535")?
        };
        let mut config = sim_config(args, port);
        config.random_seed = args.generator.seed.wrapping_add(index as u64);
        let sim = SimServer::start(config)
            .await
            .with_context(|| format!("starting fleet cluster {}", index + 1))?;
        let member = sim
            .generate_fleet_member(
                args.generator.seed,
                index,
                fleet.clusters,
                fleet.fleet_objects,
            )
            .with_context(|| format!("generating fleet cluster {}", index + 1))?;
        let kubeconfig = dir.join(format!("{}.kubeconfig", member.id));
        write_named_kubeconfig(&sim, &member.id, &kubeconfig)?;
        println!(
            "{} {} {} ({} objects, {} unhealthy, {})",
            member.id,
            sim.url(),
            kubeconfig.display(),
            sim.object_count(),
            member.unhealthy,
            member.environment
        );
        members.push(serde_json::json!({
            "id": member.id, "url": sim.url(), "kubeconfig": kubeconfig,
            "environment": member.environment, "objects": sim.object_count(),
            "generated": member.objects, "unhealthy": member.unhealthy,
            "platform": member.platform, "environmentApps": member.environment_apps,
            "own": member.own,
        }));
        sims.push(sim);
    }
    let index = dir.join("fleet.json");
    std::fs::write(&index, serde_json::to_vec_pretty(&members)?)
        .with_context(|| format!("writing {}", index.display()))?;
    // The last line is the interface of scripts: they wait for it.
    println!(
        "kube-sim fleet of {} clusters ready in {:.1} s ({} objects; {})",
        sims.len(),
        started.elapsed().as_secs_f64(),
        sims.iter().map(|s| s.object_count()).sum::<usize>(),
        index.display()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    for sim in sims {
        sim.shutdown().await;
    }
    Ok(())
}

fn write_named_kubeconfig(
    sim: &kube_sim::SimHandle,
    name: &str,
    path: &Path,
) -> anyhow::Result<()> {
    std::fs::write(path, sim.kubeconfig_yaml_named(name))
        .with_context(|| format!("writing the kubeconfig to {}", path.display()))
}
