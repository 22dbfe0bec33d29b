//! Voyage AI's embeddings API (`POST {base}/embeddings`): `input_type` document or query,
//! vectors as base64 little-endian f32 (a quarter of the bytes of JSON floats and no float
//! parsing), at most 1,000 inputs and the model's token budget per request.
//! https://docs.voyageai.com/reference/embeddings-api

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::retry::{self, RetryPolicy};
use super::{EmbedError, Embedder, InputType, ModelInfo};

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

/// A safe over-estimate of a text's tokens: Voyage's tokenizer averages about four bytes a
/// token on English; Kubernetes names and labels split finer, so count three.
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(3).max(1)
}

/// Splits `texts` into consecutive index ranges of at most `max_inputs` texts and
/// `max_tokens` estimated tokens each (a single over-long text gets a batch of its own;
/// Voyage truncates it).
pub fn plan_batches(
    texts: &[String],
    max_inputs: usize,
    max_tokens: usize,
) -> Vec<std::ops::Range<usize>> {
    let max_inputs = max_inputs.max(1);
    let mut out = Vec::new();
    let mut start = 0;
    let mut tokens = 0;
    for (i, t) in texts.iter().enumerate() {
        let n = estimate_tokens(t);
        if i > start && (i - start >= max_inputs || tokens + n > max_tokens) {
            out.push(start..i);
            start = i;
            tokens = 0;
        }
        tokens += n;
    }
    if start < texts.len() {
        out.push(start..texts.len());
    }
    out
}

pub struct VoyageEmbedder {
    client: reqwest::Client,
    url: String,
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
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| EmbedError::Permanent(format!("cannot build an HTTP client: {e}")))?;
        let url = format!("{}/embeddings", config.base_url.trim_end_matches('/'));
        let dimension = tokio::sync::OnceCell::new_with(
            config
                .output_dimension
                .or_else(|| known_dimension(&config.model)),
        );
        Ok(VoyageEmbedder {
            client,
            url,
            config,
            dimension,
        })
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
        let body = serde_json::to_vec(&body)
            .map_err(|e| EmbedError::Permanent(format!("cannot encode the request: {e}")))?;
        let bytes = retry::post_json(
            &self.client,
            &self.url,
            Some(&self.config.api_key),
            body.into(),
            &self.config.retry,
            "Voyage AI",
        )
        .await?;
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
        let budget = self
            .config
            .max_tokens_per_request
            .unwrap_or_else(|| token_budget(&self.config.model));
        let max_inputs = self
            .config
            .max_inputs_per_request
            .min(MAX_INPUTS_PER_REQUEST);
        let mut out = Vec::with_capacity(texts.len());
        for range in plan_batches(texts, max_inputs, budget) {
            let vectors = self.call(&texts[range], input_type).await?;
            out.extend(vectors);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_the_input_limit_and_the_token_budget() {
        let texts: Vec<String> = (0..2_500).map(|i| format!("Deployment app-{i}")).collect();
        let batches = plan_batches(&texts, 1_000, 1_000_000);
        assert_eq!(batches, vec![0..1_000, 1_000..2_000, 2_000..2_500]);

        let long: Vec<String> = (0..10).map(|_| "x".repeat(300)).collect(); // 100 tokens each
        let batches = plan_batches(&long, 1_000, 250);
        assert_eq!(batches, vec![0..2, 2..4, 4..6, 6..8, 8..10]);

        let huge = vec!["x".repeat(3_000)];
        assert_eq!(plan_batches(&huge, 1_000, 10), vec![0..1]);
        assert!(plan_batches(&[], 1_000, 10).is_empty());
    }
}
