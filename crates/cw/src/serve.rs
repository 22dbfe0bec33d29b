//! `cw serve`: the ingest server. Wiring only: flags become the store (Chroma, or the
//! embedded one when no URL is given), the embedding provider and the pipeline of the
//! `ingest` crate, served by its router.

use anyhow::Context;
use ingest::server::{self, DEFAULT_MAX_BODY_BYTES};

use crate::backend::{ingest_state, EmbedArgs, EnrichArgs, StoreArgs};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, env = "CW_HOST", default_value = "0.0.0.0")]
    pub host: String,
    #[arg(long, env = "CW_PORT", default_value_t = 3000)]
    pub port: u16,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub embed: EmbedArgs,
    #[command(flatten)]
    pub enrich: EnrichArgs,
    /// Bearer token required on the API (not on /healthz, /readyz, /metrics).
    #[arg(long, env = "CW_INGEST_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Largest accepted request body (the default fits 5,000 instances).
    #[arg(long, env = "CW_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let store = args.store.build()?;
    let embedder = args.embed.build()?;
    let state = ingest_state(
        store,
        embedder,
        &args.store,
        &args.enrich,
        args.auth_token.clone(),
        args.max_body_bytes,
    )?;
    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        store = %args.store.describe(),
        provider = ?args.embed.embedding_provider,
        collection = %args.store.instances_collection,
        enrichment = args.enrich.llm_url.as_deref().unwrap_or("off"),
        "cw serve listening"
    );
    let app = server::router(state.clone());
    server::serve(listener, app, state, server::shutdown_signal())
        .await
        .context("serving HTTP")?;
    tracing::info!("cw serve stopped");
    Ok(())
}
