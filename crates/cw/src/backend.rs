//! Flags shared by every subcommand that writes to or reads from a store in-process
//! (`serve`, `run`, `sync-instances`, `sync-capabilities`): which store and which
//! embedding model. Wiring only: each choice becomes one of ingest's implementations.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use ingest::access::identity::{
    oidc, IdentityConfig, OidcConfig, OidcVerifier, DEFAULT_SERVICE_ACCOUNT_AUDIENCE,
};
use ingest::capabilities::CapabilityPipeline;
use ingest::embed::local::LocalEmbedder;
use ingest::embed::openai::{OpenAiConfig, OpenAiEmbedder};
use ingest::embed::voyage::{VoyageConfig, VoyageEmbedder};
use ingest::embed::Embedder;
use ingest::enrich::{EnrichConfig, Enricher};
use ingest::generations::{self, ActiveIndex, BaseNames, GenerationStore};
use ingest::pipeline::Pipeline;
use ingest::server::{
    AppState, ServerConfig, DEFAULT_CAPABILITIES_COLLECTION, DEFAULT_INSTANCES_COLLECTION,
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONCURRENT_READS, DEFAULT_MAX_CONCURRENT_WRITES,
    READ_QUEUE_WAIT,
};
use ingest::store::chroma::{ChromaConfig, ChromaStore};
use ingest::store::embedded::EmbeddedStore;
use ingest::store::qdrant::{Distribution, QdrantConfig, QdrantStore, WriteOrdering};
use ingest::store::VectorStore;
use watcher::{IngestClientArgs, TokenArgs};

use crate::model::ModelDirArgs;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Provider {
    /// Voyage AI (VOYAGE_API_KEY).
    Voyage,
    /// Any OpenAI-compatible /v1/embeddings: OpenAI, Ollama, TEI, vLLM.
    Openai,
    /// all-MiniLM-L6-v2 on this machine's CPU (`cw model fetch`).
    Local,
}

/// Where documents are stored: a Chroma or a Qdrant server when its URL is given, else the
/// embedded store (one SQLite file in the data directory).
#[derive(clap::Args, Clone, Debug)]
pub struct StoreArgs {
    /// Chroma server URL; without it (or empty) cw uses its embedded store in --data-dir.
    #[arg(long, env = "CHROMA_URL")]
    pub chroma_url: Option<String>,
    #[arg(long, env = "CHROMA_TENANT", default_value = "default_tenant")]
    pub chroma_tenant: String,
    #[arg(long, env = "CHROMA_DATABASE", default_value = "default_database")]
    pub chroma_database: String,
    /// Qdrant server URL (the REST port, e.g. http://qdrant:6333); not with --chroma-url.
    #[arg(long, env = "QDRANT_URL")]
    pub qdrant_url: Option<String>,
    /// Qdrant API key, sent as the `api-key` header.
    #[arg(long, env = "QDRANT_API_KEY", hide_env_values = true)]
    pub qdrant_api_key: Option<String>,
    /// Shards of each collection cw creates in Qdrant (a cluster spreads them over its nodes).
    #[arg(long, env = "QDRANT_SHARDS", default_value_t = 1)]
    pub qdrant_shards: u32,
    /// Copies of each shard of a collection cw creates in Qdrant, on distinct nodes.
    #[arg(long, env = "QDRANT_REPLICATION_FACTOR", default_value_t = 1)]
    pub qdrant_replication_factor: u32,
    /// Copies of a shard that must acknowledge each write (at most the replication factor).
    #[arg(long, env = "QDRANT_WRITE_CONSISTENCY", default_value_t = 1)]
    pub qdrant_write_consistency: u32,
    /// The `ordering` of Qdrant writes: weak (Qdrant's default), medium or strong.
    #[arg(long, env = "QDRANT_WRITE_ORDERING", default_value = "weak")]
    pub qdrant_write_ordering: WriteOrdering,
    /// Directory of the embedded store's file (used when no --chroma-url is given)
    /// [default: $XDG_DATA_HOME/cw or ~/.local/share/cw].
    #[arg(long, env = "CW_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[arg(long, env = "CW_INSTANCES_COLLECTION", default_value = DEFAULT_INSTANCES_COLLECTION)]
    pub instances_collection: String,
    #[arg(long, env = "CW_CAPABILITIES_COLLECTION", default_value = DEFAULT_CAPABILITIES_COLLECTION)]
    pub capabilities_collection: String,
}

impl StoreArgs {
    /// The Chroma URL, if one is given (an empty CHROMA_URL counts as none).
    pub fn chroma_url(&self) -> Option<&str> {
        self.chroma_url.as_deref().filter(|url| !url.is_empty())
    }

    /// The Qdrant URL, if one is given (an empty QDRANT_URL counts as none).
    pub fn qdrant_url(&self) -> Option<&str> {
        self.qdrant_url.as_deref().filter(|url| !url.is_empty())
    }

    /// A short description for logs: the server's URL or the embedded store's file.
    pub fn describe(&self) -> String {
        if let Some(url) = self.qdrant_url() {
            return format!("qdrant {url}");
        }
        match (self.chroma_url(), self.resolved_data_dir()) {
            (Some(url), _) => format!("chroma {url}"),
            (None, Ok(dir)) => format!(
                "embedded {}",
                dir.join(ingest::store::embedded::STORE_FILE_NAME).display()
            ),
            (None, Err(_)) => "embedded (no data directory)".into(),
        }
    }

    fn resolved_data_dir(&self) -> anyhow::Result<PathBuf> {
        match &self.data_dir {
            Some(dir) => Ok(dir.clone()),
            None => ingest::store::embedded::default_data_dir().context(
                "neither XDG_DATA_HOME nor HOME is set: pass --data-dir or set CW_DATA_DIR",
            ),
        }
    }

    /// The embedded store's file, when the flags choose the embedded store (no Chroma or
    /// Qdrant URL).
    pub fn embedded_file(&self) -> anyhow::Result<Option<PathBuf>> {
        if self.qdrant_url().is_some() || self.chroma_url().is_some() {
            return Ok(None);
        }
        Ok(Some(
            self.resolved_data_dir()?
                .join(ingest::store::embedded::STORE_FILE_NAME),
        ))
    }

    /// The store the flags choose. The embedded store's directory is created if missing.
    pub fn build(&self) -> anyhow::Result<Arc<dyn VectorStore>> {
        if let Some(url) = self.qdrant_url() {
            anyhow::ensure!(
                self.chroma_url().is_none(),
                "both --chroma-url and --qdrant-url are given: choose one store"
            );
            let mut qdrant = QdrantConfig::new(url);
            qdrant.api_key = self.qdrant_api_key.clone().filter(|k| !k.is_empty());
            qdrant.distribution = Distribution {
                shard_number: self.qdrant_shards,
                replication_factor: self.qdrant_replication_factor,
                write_consistency_factor: self.qdrant_write_consistency,
            };
            qdrant.ordering = self.qdrant_write_ordering;
            return Ok(Arc::new(
                QdrantStore::new(qdrant).context("building the Qdrant client")?,
            ));
        }
        if let Some(url) = self.chroma_url() {
            let mut chroma = ChromaConfig::new(url);
            chroma.tenant = self.chroma_tenant.clone();
            chroma.database = self.chroma_database.clone();
            return Ok(Arc::new(
                ChromaStore::new(chroma).context("building the Chroma client")?,
            ));
        }
        let dir = self.resolved_data_dir()?;
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the data directory {}", dir.display()))?;
        let store = EmbeddedStore::open_in_dir(&dir)
            .with_context(|| format!("opening the embedded store in {}", dir.display()))?;
        Ok(Arc::new(store))
    }

    /// The store the flags choose, for searching only: the embedded store is opened
    /// read-only (it must exist, and no other process may hold it); Chroma as for writing.
    pub fn build_reader(&self) -> anyhow::Result<Arc<dyn VectorStore>> {
        if self.chroma_url().is_some() {
            return self.build();
        }
        let path = self
            .resolved_data_dir()?
            .join(ingest::store::embedded::STORE_FILE_NAME);
        let store = EmbeddedStore::open_read_only(&path)?;
        Ok(Arc::new(store))
    }
}

/// Which embedding model turns documents and queries into vectors.
#[derive(clap::Args, Clone, Debug)]
pub struct EmbedArgs {
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
    /// Inputs per request to the OpenAI-compatible server (TEI: its --max-client-batch-size, 32 by default).
    #[arg(long, env = "OPENAI_MAX_INPUTS_PER_REQUEST", default_value_t = ingest::embed::openai::DEFAULT_MAX_INPUTS_PER_REQUEST)]
    pub openai_max_inputs_per_request: usize,
    /// Tokens of one input; longer document texts are cut (TEI: the model's --max-input-length, e.g. 512).
    #[arg(long, env = "OPENAI_MAX_INPUT_TOKENS", default_value_t = ingest::embed::openai::DEFAULT_MAX_INPUT_TOKENS)]
    pub openai_max_input_tokens: usize,
    /// Tokens of all inputs of one request (TEI: its --max-batch-tokens, 16384 by default).
    #[arg(long, env = "OPENAI_MAX_TOKENS_PER_REQUEST", default_value_t = ingest::embed::openai::DEFAULT_MAX_TOKENS_PER_REQUEST)]
    pub openai_max_tokens_per_request: usize,
    #[command(flatten)]
    pub model: ModelDirArgs,
}

impl EmbedArgs {
    /// The embedding provider the flags choose.
    pub fn build(&self) -> anyhow::Result<Arc<dyn Embedder>> {
        self.build_with(false)
    }

    /// Like [`EmbedArgs::build`], but the local model's weights are read only when something
    /// is first embedded (its files are still checked now): for one-shot syncs, whose
    /// unchanged reruns embed nothing.
    pub fn build_lazy(&self) -> anyhow::Result<Arc<dyn Embedder>> {
        self.build_with(true)
    }

    fn build_with(&self, lazy: bool) -> anyhow::Result<Arc<dyn Embedder>> {
        Ok(match self.embedding_provider {
            Provider::Voyage => {
                let key = self
                    .voyage_api_key
                    .clone()
                    .filter(|k| !k.is_empty())
                    .context("--embedding-provider voyage needs VOYAGE_API_KEY")?;
                let mut config = VoyageConfig::new(key);
                config.base_url = self.voyage_url.clone();
                config.model = self.voyage_model.clone();
                Arc::new(VoyageEmbedder::new(config).context("building the Voyage AI client")?)
            }
            Provider::Openai => {
                let mut config = OpenAiConfig::new(&self.openai_url, &self.openai_model);
                config.api_key = self.openai_api_key.clone();
                config.max_inputs_per_request = self.openai_max_inputs_per_request;
                config.max_input_tokens = self.openai_max_input_tokens;
                config.max_tokens_per_request = self.openai_max_tokens_per_request;
                Arc::new(
                    OpenAiEmbedder::new(config).context("building the OpenAI-compatible client")?,
                )
            }
            Provider::Local => {
                let dir = self.model.resolve()?;
                let embedder = if lazy {
                    LocalEmbedder::open(&dir)
                } else {
                    LocalEmbedder::load(&dir)
                };
                Arc::new(embedder.with_context(|| {
                    format!("loading the local embedding model from {}", dir.display())
                })?)
            }
        })
    }
}

/// Optional enrichment of capabilities by a language model (OpenAI-compatible chat API);
/// off without a URL.
#[derive(clap::Args, Clone, Debug)]
pub struct EnrichArgs {
    /// Base URL of an OpenAI-compatible chat API (`/chat/completions` is appended), e.g.
    /// https://api.openai.com/v1 or http://localhost:11434/v1; enrichment is off without it.
    #[arg(long, env = "CW_LLM_URL")]
    pub llm_url: Option<String>,
    #[arg(long, env = "CW_LLM_MODEL", default_value = ingest::enrich::DEFAULT_MODEL)]
    pub llm_model: String,
    /// Bearer key of the chat API (local servers need none).
    #[arg(long, env = "CW_LLM_API_KEY", hide_env_values = true)]
    pub llm_api_key: Option<String>,
}

impl EnrichArgs {
    /// Enrichment off (for commands that write no capability text, e.g. a removal).
    pub fn off() -> Self {
        EnrichArgs {
            llm_url: None,
            llm_model: ingest::enrich::DEFAULT_MODEL.into(),
            llm_api_key: None,
        }
    }

    /// The enricher the flags choose, `None` when no URL is given (or it is empty).
    pub fn build(&self) -> anyhow::Result<Option<Arc<Enricher>>> {
        let Some(url) = self.llm_url.as_deref().filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let mut config = EnrichConfig::new(url, &self.llm_model);
        config.api_key = self.llm_api_key.clone().filter(|k| !k.is_empty());
        Ok(Some(Arc::new(
            Enricher::new(config).context("building the language model client")?,
        )))
    }

    /// `pipeline` with the enricher, if the flags turn enrichment on.
    pub fn apply(&self, pipeline: CapabilityPipeline) -> anyhow::Result<CapabilityPipeline> {
        Ok(match self.build()? {
            Some(enricher) => pipeline.with_enricher(enricher),
            None => pipeline,
        })
    }
}

/// The generation record of the index whose collections `collections` names.
pub fn generation_store(store: Arc<dyn VectorStore>, collections: &StoreArgs) -> GenerationStore {
    GenerationStore::new(
        store,
        BaseNames {
            instances: collections.instances_collection.clone(),
            capabilities: collections.capabilities_collection.clone(),
        },
    )
}

/// The instance and capability pipelines over one store and one model, in the active
/// generation of the collections `collections` names, the capabilities enriched if `enrich`
/// turns enrichment on.
pub fn pipelines(
    store: Arc<dyn VectorStore>,
    embedder: Arc<dyn Embedder>,
    collections: &StoreArgs,
    enrich: &EnrichArgs,
) -> anyhow::Result<(Pipeline, CapabilityPipeline)> {
    let active = ActiveIndex::new(
        generation_store(store.clone(), collections),
        embedder.clone(),
    );
    let instances = Pipeline::new(
        store.clone(),
        embedder.clone(),
        &collections.instances_collection,
    )
    .with_active(active.clone());
    // A capability sync is its cluster's sync too: one record per cluster.
    let capabilities = enrich.apply(
        CapabilityPipeline::new(store, embedder, &collections.capabilities_collection)
            .with_registry(instances.registry().clone())
            .with_active(active),
    )?;
    Ok((instances, capabilities))
}

/// The start-up check of the commands that serve: the store's active index generation was
/// made by the configured model (id and dimension), else an error naming both models and
/// `cw reindex`. An unreachable provider or store is not an error here (retried later).
pub async fn check_index_model(
    store: &Arc<dyn VectorStore>,
    embedder: &Arc<dyn Embedder>,
    collections: &StoreArgs,
) -> anyhow::Result<()> {
    let model = match embedder.model_info().await {
        Ok(model) => model,
        Err(e) => {
            tracing::warn!(error = %e, "cannot ask the embedding provider for its model yet");
            return Ok(());
        }
    };
    match generations::check_model(&generation_store(store.clone(), collections), &model).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(changed)) => Err(anyhow::Error::new(changed)),
        Err(e) if e.is_transient() => {
            tracing::warn!(error = %e, "cannot check the store's index generation yet");
            Ok(())
        }
        Err(e) => Err(e).context("reading the store's index generation"),
    }
}

/// Where `cw serve` and `cw run` listen. Loopback unless told otherwise: the index
/// describes a cluster, so serving other machines is a choice (the chart sets `0.0.0.0`).
#[derive(clap::Args, Clone, Debug)]
pub struct ListenArgs {
    /// Address to listen on.
    #[arg(long, env = "CW_HOST", default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, env = "CW_PORT", default_value_t = sync_model::api::DEFAULT_PORT)]
    pub port: u16,
}

impl ListenArgs {
    /// Binds the listener, naming the address in the error.
    pub async fn bind(&self) -> anyhow::Result<tokio::net::TcpListener> {
        let addr = format!("{}:{}", self.host, self.port);
        tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))
    }
}

/// What `cw serve` and `cw run` serve alike: one store, one embedding model, optional
/// enrichment, and the API's token and body limit.
#[derive(clap::Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub embed: EmbedArgs,
    #[command(flatten)]
    pub enrich: EnrichArgs,
    // The bearer token required on the API (with `cw run`, also on the watcher's resync);
    // not on /healthz, /readyz and /metrics.
    #[command(flatten)]
    pub token: TokenArgs,
    /// Largest accepted request body (the default fits 5,000 instances).
    #[arg(long, env = "CW_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Writes (syncs, hashes reads, cluster removal) served at once; beyond it the server
    /// answers 503 with Retry-After and the watcher retries. Size by memory: each may hold
    /// a --max-body-bytes body and its copies (the default keeps four maximum-size syncs
    /// within the chart's 256Mi).
    #[arg(long, env = "CW_MAX_CONCURRENT_WRITES", default_value_t = DEFAULT_MAX_CONCURRENT_WRITES,
          value_parser = at_least_one)]
    pub max_concurrent_writes: usize,
    /// Reads (search, ask, count, clusters, MCP) served at once, apart from the writes: a
    /// full write load never turns a read away. More wait for a slot (up to 10 s, then 503
    /// with Retry-After). Size by cores: a question is embedded on the CPU.
    #[arg(long, env = "CW_MAX_CONCURRENT_READS", default_value_t = DEFAULT_MAX_CONCURRENT_READS,
          value_parser = at_least_one)]
    pub max_concurrent_reads: usize,
    /// Seconds without a word from a cluster's watcher (a sync, a heartbeat, a hashes read)
    /// after which `cw clusters` marks it STALE; keep it a few of the watchers'
    /// HEARTBEAT_INTERVAL_SECS.
    #[arg(long, env = "CW_STALE_AFTER_SECS", default_value_t = ingest::clusters::DEFAULT_STALE_AFTER.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub stale_after_secs: u64,
    /// Per-cluster tokens: one line per token with the clusters it may write
    /// (`<token> prod-eu,staging`, `<token> *`, or `<token> read-only`); read again when
    /// the file changes. Beside or instead of the shared token.
    #[arg(long, env = "CW_INGEST_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
    /// The cluster of payloads that name none (the Go controller's) and of hashes requests
    /// without `?cluster=`.
    #[arg(long, env = "CW_DEFAULT_CLUSTER", default_value = sync_model::DEFAULT_CLUSTER)]
    pub default_cluster: sync_model::ClusterId,
    #[command(flatten)]
    pub identity: IdentityArgs,
}

/// Who may ask besides operators' tokens: OIDC ID tokens, checked with kube-apiserver's
/// `--oidc-*` settings, and the ServiceAccount tokens of the fleet's clusters
/// (`ingest::access::identity`). Users are scoped by each cluster's RBAC and never write.
#[derive(clap::Args, Clone, Debug)]
pub struct IdentityArgs {
    /// The OIDC issuer whose ID tokens are accepted (https; `iss` must equal it). Its keys
    /// come from its discovery document unless --oidc-jwks-file is given. OIDC is off
    /// without it.
    #[arg(long, env = "CW_OIDC_ISSUER_URL")]
    pub oidc_issuer_url: Option<String>,
    /// The client id ID tokens are issued for: `aud` must name it (required with an issuer).
    #[arg(long, env = "CW_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// The claim that names the user.
    #[arg(long, env = "CW_OIDC_USERNAME_CLAIM", default_value = oidc::DEFAULT_USERNAME_CLAIM)]
    pub oidc_username_claim: String,
    /// Put before every username; unset: the issuer URL and `#` unless the claim is
    /// `email` (kube-apiserver's rule); `-`: nothing.
    #[arg(long, env = "CW_OIDC_USERNAME_PREFIX")]
    pub oidc_username_prefix: Option<String>,
    /// The claim that lists the user's groups (a string or a list); no groups without it.
    #[arg(long, env = "CW_OIDC_GROUPS_CLAIM")]
    pub oidc_groups_claim: Option<String>,
    /// Put before every group.
    #[arg(long, env = "CW_OIDC_GROUPS_PREFIX")]
    pub oidc_groups_prefix: Option<String>,
    /// The signing algorithms accepted, comma-separated (RS256, RS384, RS512, PS256, PS384,
    /// PS512, ES256, ES384).
    #[arg(long, env = "CW_OIDC_SIGNING_ALGS", default_value = oidc::DEFAULT_SIGNING_ALGS,
          value_delimiter = ',')]
    pub oidc_signing_algs: Vec<String>,
    /// The issuer's keys from this JSON Web Key Set file instead of its discovery document.
    #[arg(long, env = "CW_OIDC_JWKS_FILE")]
    pub oidc_jwks_file: Option<PathBuf>,
    /// CA certificates (PEM) the issuer's TLS certificate is checked against, beside the
    /// system's.
    #[arg(long, env = "CW_OIDC_CA_FILE")]
    pub oidc_ca_file: Option<PathBuf>,
    /// A ServiceAccount token's audience (`aud`) must name one of these, comma-separated
    /// (`kubectl create token SA --audience cw`).
    #[arg(long, env = "CW_SERVICE_ACCOUNT_AUDIENCES",
          default_value = DEFAULT_SERVICE_ACCOUNT_AUDIENCE, value_delimiter = ',')]
    pub service_account_audiences: Vec<String>,
}

impl IdentityArgs {
    /// The identity settings; with OIDC, the issuer's keys are fetched once now (a failure
    /// is logged: they are fetched again when a token needs them).
    pub async fn build(&self) -> anyhow::Result<IdentityConfig> {
        let audiences: Vec<String> = self
            .service_account_audiences
            .iter()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect();
        anyhow::ensure!(
            !audiences.is_empty(),
            "--service-account-audiences (CW_SERVICE_ACCOUNT_AUDIENCES) names no audience"
        );
        let Some(issuer) = self
            .oidc_issuer_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
        else {
            return Ok(IdentityConfig {
                oidc: None,
                service_account_audiences: audiences,
            });
        };
        let nonblank = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        let mut config = OidcConfig::new(
            issuer.trim(),
            self.oidc_client_id.clone().unwrap_or_default(),
        );
        config.username_claim = self.oidc_username_claim.clone();
        config.username_prefix = nonblank(&self.oidc_username_prefix);
        config.groups_claim = nonblank(&self.oidc_groups_claim);
        config.groups_prefix = nonblank(&self.oidc_groups_prefix);
        config.signing_algs = self
            .oidc_signing_algs
            .iter()
            .map(|a| ingest::access::identity::jwt::parse_algorithm(a))
            .collect::<Result<_, _>>()
            .map_err(anyhow::Error::msg)
            .context("--oidc-signing-algs (CW_OIDC_SIGNING_ALGS)")?;
        config.jwks_file = self.oidc_jwks_file.clone();
        config.ca_file = self.oidc_ca_file.clone();
        let verifier = OidcVerifier::new(config).context("the OIDC settings (--oidc-*)")?;
        match verifier.refresh().await {
            Ok(keys) => tracing::info!(%issuer, keys, "OIDC ID tokens accepted"),
            Err(e) => {
                tracing::warn!(%issuer, error = %e, "cannot fetch the OIDC issuer's keys yet; tokens are refused until they are")
            }
        }
        Ok(IdentityConfig {
            oidc: Some(Arc::new(verifier)),
            service_account_audiences: audiences,
        })
    }
}

/// A count that must be 1 or more (0 would turn every request away).
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

impl IngestArgs {
    /// The server's state over `store` and `embedder`: the instance and capability
    /// pipelines (with the enricher if the flags turn enrichment on), and who may ask.
    pub async fn state(
        &self,
        store: Arc<dyn VectorStore>,
        embedder: Arc<dyn Embedder>,
    ) -> anyhow::Result<AppState> {
        let (pipeline, capabilities) = pipelines(store, embedder, &self.store, &self.enrich)?;
        if let Some(active) = pipeline.active() {
            if let Err(e) = active.load().await {
                tracing::warn!(error = %e, "cannot read the index generation record yet; serving generation 1 until it is read");
            }
            // Replicas notice a switch made elsewhere within a few seconds.
            tokio::spawn(active.clone().keep_fresh(std::future::pending()));
        }
        let identity = self.identity.build().await?;
        Ok(AppState::with_capabilities(
            pipeline.with_default_cluster(self.default_cluster.clone()),
            capabilities,
            ServerConfig {
                auth_token: self.token.required()?.map(str::to_string),
                tokens_file: match &self.tokens_file {
                    Some(path) => Some(Arc::new(
                        ingest::server::credentials::TokensFile::open(path)
                            .context("CW_INGEST_TOKENS_FILE")?,
                    )),
                    None => None,
                },
                identity,
                max_body_bytes: self.max_body_bytes,
                capabilities_collection: self.store.capabilities_collection.clone(),
                max_concurrent_writes: self.max_concurrent_writes,
                max_concurrent_reads: self.max_concurrent_reads,
                read_queue_wait: READ_QUEUE_WAIT,
                stale_after: std::time::Duration::from_secs(self.stale_after_secs),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        enrich: EnrichArgs,
    }

    #[test]
    fn enrichment_is_off_without_a_url_and_on_with_one() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let off = Cli::try_parse_from(["cw"]).unwrap().enrich;
        assert_eq!(off.llm_model, "gpt-4o-mini");
        assert!(off.build().unwrap().is_none());
        let empty = Cli::try_parse_from(["cw", "--llm-url", ""]).unwrap().enrich;
        assert!(empty.build().unwrap().is_none());
        let on = Cli::try_parse_from([
            "cw",
            "--llm-url",
            "http://127.0.0.1:9/v1",
            "--llm-model",
            "llama3.1",
        ])
        .unwrap()
        .enrich;
        let enricher = on.build().unwrap().expect("an enricher");
        assert_eq!(enricher.model(), "llama3.1");
    }
}

/// What each one-off run (`cw sync-instances`, `cw sync-capabilities`) takes: where to send,
/// which types, how to report, and the store and model it writes in-process without an
/// endpoint.
#[derive(clap::Args)]
pub struct OneOffArgs {
    #[command(flatten)]
    pub destination: EndpointArgs,
    #[command(flatten)]
    pub filters: watcher::config::ResourceFilterArgs,
    /// The summary as text or as one JSON object on stdout.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub embed: EmbedArgs,
}

/// How a one-off run reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

impl OneOffArgs {
    /// Where the run sends: HTTP to `--endpoint`, or else the pipelines `in_process` builds
    /// over the chosen store and model, in this process. The model is built first: a
    /// missing model is the likeliest first-run problem and its message names `cw model
    /// fetch`.
    pub fn sink(
        &self,
        in_process: impl FnOnce(
            Arc<dyn VectorStore>,
            Arc<dyn Embedder>,
            sync_model::ClusterId,
        ) -> anyhow::Result<crate::pipeline_sink::PipelineSink>,
    ) -> anyhow::Result<Arc<dyn watcher::SyncSink>> {
        let cluster = self.destination.cluster()?;
        if let Some(sink) = self.destination.http_sink(&cluster)? {
            return Ok(Arc::new(sink));
        }
        let embedder = self.embed.build_lazy()?;
        let store = self.store.build()?;
        Ok(Arc::new(in_process(store, embedder, cluster)?))
    }
}

/// `--endpoint` of the one-shot commands (`sync-instances`, `sync-capabilities`): a running
/// `cw serve` to send to instead of writing the store in this process.
#[derive(clap::Args, Debug, Clone)]
pub struct EndpointArgs {
    /// A running `cw serve` to send to (its base URL, or its full `…/api/v1/instances/sync`
    /// URL). Without it the store is written in this process (the store and embedding flags
    /// below).
    #[arg(long, env = "CW_SYNC_ENDPOINT")]
    pub endpoint: Option<String>,
    #[command(flatten)]
    pub client: IngestClientArgs,
    #[command(flatten)]
    pub cluster: watcher::ClusterArgs,
    /// Retries while the destination (or the API server) is unavailable, with exponential
    /// backoff and jitter, before the run fails.
    #[arg(long, env = "CW_SYNC_RETRIES", default_value_t = 5)]
    pub retries: usize,
}

impl EndpointArgs {
    /// The cluster the run's objects belong to (`--cluster-id`, else the kubeconfig
    /// context's name).
    pub fn cluster(&self) -> anyhow::Result<sync_model::ClusterId> {
        Ok(self.cluster.resolve()?)
    }

    /// The HTTP sink to `--endpoint` for `cluster`, or `None` when the store is written
    /// in-process.
    pub fn http_sink(
        &self,
        cluster: &sync_model::ClusterId,
    ) -> anyhow::Result<Option<watcher::HttpSink>> {
        let Some(endpoint) = self.endpoint.as_deref().filter(|e| !e.trim().is_empty()) else {
            return Ok(None);
        };
        let sink = self
            .client
            .http_sink(endpoint)
            .context("building the HTTP client for --endpoint")?
            .with_cluster(cluster.clone());
        tracing::info!(endpoint = %sink.base_url(), %cluster, "sending to a cw serve");
        Ok(Some(sink))
    }
}
