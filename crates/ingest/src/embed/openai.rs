//! OpenAI-compatible embeddings (`POST {base}/embeddings`): OpenAI itself, Ollama, Hugging
//! Face TEI and vLLM. Vectors are requested as JSON floats, the one encoding all of them
//! speak. Their limits differ by server and model, so all three are configurable
//! ([`OpenAiConfig`]); the defaults are OpenAI's. An input the server still refuses is
//! isolated (`isolate`).

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::isolate::{embed_isolating, EmbedCall};
use super::limits::InputLimits;
use super::retry::ProviderEndpoint;
use super::{all_or_refused, EmbedError, Embedder, InputType, ModelInfo, Refused};
use crate::retry::RetryPolicy;

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_MODEL: &str = "text-embedding-3-small";
/// OpenAI takes 2,048 inputs a request; 256 keeps requests and answers small.
pub const DEFAULT_MAX_INPUTS_PER_REQUEST: usize = 256;
/// OpenAI's limit on all inputs of one request (https://platform.openai.com/docs/api-reference/embeddings).
pub const DEFAULT_MAX_TOKENS_PER_REQUEST: usize = 300_000;
/// The context of OpenAI's embedding models (text-embedding-3-*: 8,192 tokens).
pub const DEFAULT_MAX_INPUT_TOKENS: usize = 8_191;

#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// `https://api.openai.com/v1`, `http://localhost:11434/v1` (Ollama), ...
    pub base_url: String,
    /// Optional: local servers need none.
    pub api_key: Option<String>,
    pub model: String,
    /// `dimensions` for models that can shorten their vectors.
    pub dimensions: Option<usize>,
    /// OpenAI takes 2,048 inputs; TEI defaults to 32 (`--max-client-batch-size`).
    pub max_inputs_per_request: usize,
    /// Estimated tokens of all inputs of one request (OpenAI 300,000; TEI's
    /// `--max-batch-tokens` defaults to 16,384).
    pub max_tokens_per_request: usize,
    /// Estimated tokens of one input; longer texts are cut (OpenAI 8,192; TEI answers 413
    /// beyond the model's `--max-input-length`, e.g. 512 for BERT-sized models).
    pub max_input_tokens: usize,
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl OpenAiConfig {
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        OpenAiConfig {
            base_url: base_url.into(),
            api_key: None,
            model: model.into(),
            dimensions: None,
            max_inputs_per_request: DEFAULT_MAX_INPUTS_PER_REQUEST,
            max_tokens_per_request: DEFAULT_MAX_TOKENS_PER_REQUEST,
            max_input_tokens: DEFAULT_MAX_INPUT_TOKENS,
            timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
        }
    }
}

pub struct OpenAiEmbedder {
    endpoint: ProviderEndpoint,
    config: OpenAiConfig,
    dimension: tokio::sync::OnceCell<usize>,
}

impl OpenAiEmbedder {
    /// Builds the client; needs a rustls crypto provider installed in the process.
    pub fn new(config: OpenAiConfig) -> Result<Self, EmbedError> {
        let endpoint = ProviderEndpoint::new(
            format!("{}/embeddings", config.base_url.trim_end_matches('/')),
            config.api_key.as_deref(),
            config.timeout,
            config.retry,
            "OpenAI-compatible embeddings",
        )?;
        let dimension = tokio::sync::OnceCell::new_with(config.dimensions);
        Ok(OpenAiEmbedder {
            endpoint,
            config,
            dimension,
        })
    }

    pub fn limits(&self) -> InputLimits {
        InputLimits {
            max_inputs_per_request: self.config.max_inputs_per_request.max(1),
            max_tokens_per_request: self.config.max_tokens_per_request.max(1),
            max_input_tokens: self.config.max_input_tokens.max(1),
        }
    }

    async fn call(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let body = Request {
            input: texts,
            model: &self.config.model,
            encoding_format: "float",
            dimensions: self.config.dimensions,
        };
        let bytes = self.endpoint.post(&body).await?;
        let resp: Response = serde_json::from_slice(&bytes).map_err(|e| {
            EmbedError::Permanent(format!(
                "the embeddings server answered something unexpected: {e}"
            ))
        })?;
        let mut out: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for (position, item) in resp.data.into_iter().enumerate() {
            // `index` is optional in some servers' answers; order is then positional.
            let index = item.index.unwrap_or(position);
            let slot = out.get_mut(index).ok_or_else(|| {
                EmbedError::Permanent(format!("answer index {index} for {} inputs", texts.len()))
            })?;
            *slot = Some(item.embedding);
        }
        out.into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.ok_or_else(|| EmbedError::Permanent(format!("no vector for input {i}")))
            })
            .collect()
    }
}

#[derive(Serialize)]
struct Request<'a> {
    input: &'a [String],
    model: &'a str,
    encoding_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<usize>,
}

#[derive(Deserialize)]
struct Response {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    embedding: Vec<f32>,
    #[serde(default)]
    index: Option<usize>,
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    async fn model_info(&self) -> Result<ModelInfo, EmbedError> {
        let dimension = *self
            .dimension
            .get_or_try_init(|| async {
                let v = self.call(&["dimension probe".to_string()]).await?;
                Ok::<usize, EmbedError>(v.first().map(Vec::len).unwrap_or(0))
            })
            .await?;
        Ok(ModelInfo {
            id: format!("openai:{}", self.config.model),
            dimension,
        })
    }

    /// OpenAI-compatible servers have no `input_type`; documents and queries embed alike.
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
        _input_type: InputType,
    ) -> Result<Vec<Result<Vec<f32>, Refused>>, EmbedError> {
        let limits = self.limits();
        let cut = limits.cut(texts);
        let texts = cut.as_deref().unwrap_or(texts);
        embed_isolating(self, texts, limits.plan(texts)).await
    }
}

#[async_trait]
impl EmbedCall for OpenAiEmbedder {
    async fn call(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        OpenAiEmbedder::call(self, texts).await
    }
}
