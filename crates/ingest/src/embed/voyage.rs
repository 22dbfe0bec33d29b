//! Voyage AI's embeddings API (`POST {base}/embeddings`): `input_type` document or query,
//! vectors as base64 little-endian f32 (a quarter of the bytes of JSON floats and no float
//! parsing), at most 1,000 inputs and the model's token budget per request, each input cut
//! to the model's context length. An input Voyage still refuses is isolated (`isolate`).
//! https://docs.voyageai.com/reference/embeddings-api

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::isolate::{embed_isolating, EmbedCall};
use super::limits::InputLimits;
use super::retry::{self, ProviderEndpoint};
use super::{all_or_refused, EmbedError, Embedder, InputType, ModelInfo, Refused};
use crate::retry::RetryPolicy;

pub use super::limits::{estimate_tokens, plan_batches};

pub const DEFAULT_BASE_URL: &str = "https://api.voyageai.com/v1";
pub const DEFAULT_MODEL: &str = "voyage-3.5";
/// Voyage's limit on inputs per request.
pub const MAX_INPUTS_PER_REQUEST: usize = 1_000;

#[derive(Debug, Clone)]
pub struct VoyageConfig {
    pub api_key: String,
    /// `https://api.voyageai.com/v1` or a stand-in; `/embeddings` is appended.
    pub base_url: String,
    pub model: String,
    /// `output_dimension` for models that offer several (voyage-3.5: 256, 512, 1024, 2048).
    pub output_dimension: Option<usize>,
    pub max_inputs_per_request: usize,
    /// Per-request token budget; `None` uses the model's published limit.
    pub max_tokens_per_request: Option<usize>,
    /// Tokens of one input; `None` uses the model's published context length.
    pub max_input_tokens: Option<usize>,
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl VoyageConfig {
    pub fn new(api_key: impl Into<String>) -> Self {
        VoyageConfig {
            api_key: api_key.into(),
            base_url: DEFAULT_BASE_URL.into(),
            model: DEFAULT_MODEL.into(),
            output_dimension: None,
            max_inputs_per_request: MAX_INPUTS_PER_REQUEST,
            max_tokens_per_request: None,
            max_input_tokens: None,
            timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
        }
    }
}

/// Total tokens Voyage accepts in one request, per model
/// (https://docs.voyageai.com/docs/embeddings).
pub fn token_budget(model: &str) -> usize {
    match model {
        "voyage-3.5-lite" | "voyage-3-lite" => 1_000_000,
        "voyage-3.5" | "voyage-3" | "voyage-2" => 320_000,
        _ => 120_000,
    }
}

/// Tokens of one input each model reads (https://docs.voyageai.com/docs/embeddings);
/// Voyage truncates longer inputs itself (`truncation: true`), and cw cuts them first so
/// that its request budget counts what Voyage counts.
pub fn context_length(model: &str) -> usize {
    match model {
        "voyage-2" => 4_000,
        m if m.starts_with("voyage-3") || m.starts_with("voyage-context-3") => 32_000,
        "voyage-finance-2" | "voyage-multilingual-2" => 32_000,
        _ => 16_000,
    }
}

/// Default output dimension of the models whose dimension is published.
fn known_dimension(model: &str) -> Option<usize> {
    match model {
        "voyage-3.5"
        | "voyage-3.5-lite"
        | "voyage-3-large"
        | "voyage-3"
        | "voyage-code-3"
        | "voyage-context-3"
        | "voyage-finance-2"
        | "voyage-law-2"
        | "voyage-multilingual-2"
        | "voyage-large-2-instruct" => Some(1024),
        "voyage-3-lite" => Some(512),
        "voyage-code-2" | "voyage-large-2" => Some(1536),
        "voyage-2" => Some(1024),
        _ => None,
    }
}

pub struct VoyageEmbedder {
    endpoint: ProviderEndpoint,
    config: VoyageConfig,
    dimension: tokio::sync::OnceCell<usize>,
}

impl VoyageEmbedder {
    /// Builds the client; needs a rustls crypto provider installed in the process.
    pub fn new(config: VoyageConfig) -> Result<Self, EmbedError> {
        if config.api_key.trim().is_empty() {
            return Err(EmbedError::Permanent(
                "VOYAGE_API_KEY is empty: set it to your Voyage AI API key".into(),
            ));
        }
        let endpoint = ProviderEndpoint::new(
            format!("{}/embeddings", config.base_url.trim_end_matches('/')),
            Some(&config.api_key),
            config.timeout,
            config.retry,
            "Voyage AI",
        )?;
        let dimension = tokio::sync::OnceCell::new_with(
            config
                .output_dimension
                .or_else(|| known_dimension(&config.model)),
        );
        Ok(VoyageEmbedder {
            endpoint,
            config,
            dimension,
        })
    }

    /// The limits of the configured model, as configured or as Voyage publishes them.
    pub fn limits(&self) -> InputLimits {
        let c = &self.config;
        InputLimits {
            max_inputs_per_request: c.max_inputs_per_request.clamp(1, MAX_INPUTS_PER_REQUEST),
            max_tokens_per_request: c
                .max_tokens_per_request
                .unwrap_or_else(|| token_budget(&c.model)),
            max_input_tokens: c
                .max_input_tokens
                .unwrap_or_else(|| context_length(&c.model)),
        }
    }

    async fn call(
        &self,
        texts: &[String],
        input_type: InputType,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let body = Request {
            input: texts,
            model: &self.config.model,
            input_type: match input_type {
                InputType::Document => "document",
                InputType::Query => "query",
            },
            output_dimension: self.config.output_dimension,
            encoding_format: "base64",
            truncation: true,
        };
        let bytes = self.endpoint.post(&body).await?;
        let resp: Response = serde_json::from_slice(&bytes).map_err(|e| {
            EmbedError::Permanent(format!("Voyage AI answered something unexpected: {e}"))
        })?;
        let mut out: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for item in resp.data {
            let slot = out.get_mut(item.index).ok_or_else(|| {
                EmbedError::Permanent(format!(
                    "Voyage AI answered index {} for {} inputs",
                    item.index,
                    texts.len()
                ))
            })?;
            *slot = Some(retry::decode_base64_f32(&item.embedding)?);
        }
        out.into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.ok_or_else(|| {
                    EmbedError::Permanent(format!("Voyage AI returned no vector for input {i}"))
                })
            })
            .collect()
    }
}

#[derive(Serialize)]
struct Request<'a> {
    input: &'a [String],
    model: &'a str,
    input_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimension: Option<usize>,
    encoding_format: &'static str,
    truncation: bool,
}

#[derive(Deserialize)]
struct Response {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    embedding: String,
    index: usize,
}

#[async_trait]
impl Embedder for VoyageEmbedder {
    async fn model_info(&self) -> Result<ModelInfo, EmbedError> {
        let dimension = *self
            .dimension
            .get_or_try_init(|| async {
                // A model whose dimension is not published: one tiny call tells.
                let v = self
                    .call(&["dimension probe".to_string()], InputType::Query)
                    .await?;
                Ok::<usize, EmbedError>(v.first().map(Vec::len).unwrap_or(0))
            })
            .await?;
        Ok(ModelInfo {
            id: format!("voyage:{}", self.config.model),
            dimension,
        })
    }

    async fn embed(
        &self,
        texts: &[String],
        input_type: InputType,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        all_or_refused(self.embed_each(texts, input_type).await?)
    }

    async fn embed_each(
        &self,
        texts: &[String],
        input_type: InputType,
    ) -> Result<Vec<Result<Vec<f32>, Refused>>, EmbedError> {
        let limits = self.limits();
        let cut = limits.cut(texts);
        let texts = cut.as_deref().unwrap_or(texts);
        let call = VoyageCall {
            embedder: self,
            input_type,
        };
        embed_isolating(&call, texts, limits.plan(texts)).await
    }
}

/// One Voyage request of one input type.
struct VoyageCall<'a> {
    embedder: &'a VoyageEmbedder,
    input_type: InputType,
}

#[async_trait]
impl EmbedCall for VoyageCall<'_> {
    async fn call(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embedder.call(texts, self.input_type).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_limits_are_used_unless_configured() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let embedder = VoyageEmbedder::new(VoyageConfig::new("key")).unwrap();
        let limits = embedder.limits();
        assert_eq!(limits.max_inputs_per_request, 1_000);
        assert_eq!(limits.max_tokens_per_request, 320_000);
        assert_eq!(limits.max_input_tokens, 32_000);
        let mut config = VoyageConfig::new("key");
        config.model = "voyage-law-2".into();
        config.max_inputs_per_request = 5_000;
        let limits = VoyageEmbedder::new(config).unwrap().limits();
        assert_eq!(
            limits.max_inputs_per_request, 1_000,
            "Voyage's own cap holds"
        );
        assert_eq!(limits.max_tokens_per_request, 120_000);
        assert_eq!(limits.max_input_tokens, 16_000);
    }
}
