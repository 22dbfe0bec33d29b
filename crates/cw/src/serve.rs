//! `cw serve`: the ingest server. Wiring only: flags become the Chroma store, the
//! embedding provider and the pipeline of the `ingest` crate, served by its router.

use std::sync::Arc;

use anyhow::Context;
use ingest::embed::local::LocalEmbedder;
use ingest::embed::openai::{OpenAiConfig, OpenAiEmbedder};
use ingest::embed::voyage::{VoyageConfig, VoyageEmbedder};
use ingest::embed::Embedder;
use ingest::pipeline::Pipeline;
use ingest::server::{self, AppState, ServerConfig, DEFAULT_MAX_BODY_BYTES};
use ingest::store::chroma::{ChromaConfig, ChromaStore};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Provider {
    /// Voyage AI (VOYAGE_API_KEY).
    Voyage,
    /// Any OpenAI-compatible /v1/embeddings: OpenAI, Ollama, TEI, vLLM.
    Openai,
    /// all-MiniLM-L6-v2 on this machine's CPU (`cw model fetch`).
    Local,
}

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, env = "CW_HOST", default_value = "0.0.0.0")]
    pub host: String,
    #[arg(long, env = "CW_PORT", default_value_t = 3000)]
    pub port: u16,
    #[arg(long, env = "CHROMA_URL", default_value = "http://localhost:8000")]
    pub chroma_url: String,
    #[arg(long, env = "CHROMA_TENANT", default_value = "default_tenant")]
    pub chroma_tenant: String,
    #[arg(long, env = "CHROMA_DATABASE", default_value = "default_database")]
    pub chroma_database: String,
    #[arg(long, env = "CW_INSTANCES_COLLECTION", default_value = "instances")]
    pub instances_collection: String,
    #[arg(
        long,
        env = "CW_CAPABILITIES_COLLECTION",
        default_value = "capabilities"
    )]
    pub capabilities_collection: String,
    #[arg(
        long,
        env = "CW_EMBEDDING_PROVIDER",
        value_enum,
        default_value = "local"
    )]
    pub embedding_provider: Provider,
    /// Voyage AI API key (required with --embedding-provider voyage).
    #[arg(long, env = "VOYAGE_API_KEY", hide_env_values = true)]
    pub voyage_api_key: Option<String>,
    #[arg(long, env = "VOYAGE_BASE_URL", default_value = ingest::embed::voyage::DEFAULT_BASE_URL)]
    pub voyage_url: String,
    #[arg(long, env = "VOYAGE_MODEL", default_value = ingest::embed::voyage::DEFAULT_MODEL)]
    pub voyage_model: String,
    #[arg(long, env = "OPENAI_BASE_URL", default_value = ingest::embed::openai::DEFAULT_BASE_URL)]
    pub openai_url: String,
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<String>,
    #[arg(long, env = "OPENAI_EMBEDDING_MODEL", default_value = ingest::embed::openai::DEFAULT_MODEL)]
    pub openai_model: String,
    /// Directory of the local model (model.safetensors, tokenizer.json, config.json)
    /// [default: the cache directory `cw model fetch` fills].
    #[arg(long, env = "CW_MODEL_DIR")]
    pub model_dir: Option<std::path::PathBuf>,
    /// Bearer token required on the API (not on /healthz, /readyz, /metrics).
    #[arg(long, env = "CW_INGEST_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Largest accepted request body (the default fits 5,000 instances).
    #[arg(long, env = "CW_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
}

/// The embedding provider the flags choose.
pub fn build_embedder(args: &Args) -> anyhow::Result<Arc<dyn Embedder>> {
    Ok(match args.embedding_provider {
        Provider::Voyage => {
            let key = args
                .voyage_api_key
                .clone()
                .filter(|k| !k.is_empty())
                .context("--embedding-provider voyage needs VOYAGE_API_KEY")?;
            let mut config = VoyageConfig::new(key);
            config.base_url = args.voyage_url.clone();
            config.model = args.voyage_model.clone();
            Arc::new(VoyageEmbedder::new(config).context("building the Voyage AI client")?)
        }
        Provider::Openai => {
            let mut config = OpenAiConfig::new(&args.openai_url, &args.openai_model);
            config.api_key = args.openai_api_key.clone();
            Arc::new(OpenAiEmbedder::new(config).context("building the OpenAI-compatible client")?)
        }
        Provider::Local => {
            let dir = match &args.model_dir {
                Some(dir) => dir.clone(),
                None => ingest::embed::local::default_model_dir().context(
                    "neither XDG_CACHE_HOME nor HOME is set: pass --model-dir or set CW_MODEL_DIR",
                )?,
            };
            Arc::new(LocalEmbedder::load(&dir).with_context(|| {
                format!("loading the local embedding model from {}", dir.display())
            })?)
        }
    })
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut chroma = ChromaConfig::new(&args.chroma_url);
    chroma.tenant = args.chroma_tenant.clone();
    chroma.database = args.chroma_database.clone();
    let store = Arc::new(ChromaStore::new(chroma).context("building the Chroma client")?);
    let embedder = build_embedder(&args)?;
    let pipeline = Pipeline::new(store, embedder, &args.instances_collection);
    let state = AppState::new(
        pipeline,
        ServerConfig {
            auth_token: args.auth_token.clone(),
            max_body_bytes: args.max_body_bytes,
            capabilities_collection: args.capabilities_collection.clone(),
        },
    );
    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        chroma = %args.chroma_url,
        provider = ?args.embedding_provider,
        collection = %args.instances_collection,
        "cw serve listening"
    );
    let app = server::router(state.clone());
    server::serve(listener, app, state, server::shutdown_signal())
        .await
        .context("serving HTTP")?;
    tracing::info!("cw serve stopped");
    Ok(())
}
