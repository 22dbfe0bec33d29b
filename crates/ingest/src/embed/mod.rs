//! Embedding providers: text in, vectors out. The pipeline only knows the [`Embedder`]
//! trait; Voyage AI, OpenAI-compatible servers and the local model implement it.

use async_trait::async_trait;

pub(crate) mod isolate;
pub mod limits;
pub mod local;
pub mod openai;
pub mod retry;
pub mod voyage;

/// Voyage and others embed documents and queries differently (`input_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputType {
    Document,
    Query,
}

/// What a failed embedding call means to the caller.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// Worth retrying later (429, 5xx, timeouts, refused connections): the ingest server
    /// answers 503 so that the sender retries.
    #[error("embedding provider unavailable: {0}")]
    Transient(String),
    /// Retrying the same call will not help (bad key, bad model, malformed answer).
    #[error("embedding provider error: {0}")]
    Permanent(String),
    /// The provider refused the request for what it holds (400, 413, 422: an input too long
    /// or one it will not take); another request without that input may pass.
    #[error("embedding provider refused the input: {0}")]
    Rejected(String),
    /// The local model's files are missing or unreadable; the message says what to run.
    #[error("embedding model not available: {0}")]
    ModelMissing(String),
}

impl EmbedError {
    pub fn is_transient(&self) -> bool {
        matches!(self, EmbedError::Transient(_))
    }
}

/// The provider's refusal of one input, whatever is retried: the text is never embedded
/// (its object is parked, not its batch-mates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// What the provider answered.
    pub reason: String,
}

/// Identifies the vectors a provider makes, so that a store never mixes two models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// `provider:model`, e.g. `voyage:voyage-3.5` or `local:all-MiniLM-L6-v2`.
    pub id: String,
    pub dimension: usize,
}

#[async_trait]
pub trait Embedder: Send + Sync {
    /// The model and dimension this provider produces. Providers whose dimension is only
    /// known after a first call may make one small call here.
    async fn model_info(&self) -> Result<ModelInfo, EmbedError>;

    /// One vector per input, in order. Implementations split `texts` into as few provider
    /// calls as the provider's limits allow.
    async fn embed(
        &self,
        texts: &[String],
        input_type: InputType,
    ) -> Result<Vec<Vec<f32>>, EmbedError>;

    /// One result per input, in order: its vector, or the provider's refusal of that one
    /// input (the others are still embedded). `Err` when the call fails as a whole
    /// (unavailable, bad key or model). Providers that refuse no input (the local model
    /// truncates) keep this default.
    async fn embed_each(
        &self,
        texts: &[String],
        input_type: InputType,
    ) -> Result<Vec<Result<Vec<f32>, Refused>>, EmbedError> {
        Ok(self
            .embed(texts, input_type)
            .await?
            .into_iter()
            .map(Ok)
            .collect())
    }
}

/// [`Embedder::embed`] from [`Embedder::embed_each`]: a refused input fails the call.
pub(crate) fn all_or_refused(
    results: Vec<Result<Vec<f32>, Refused>>,
) -> Result<Vec<Vec<f32>>, EmbedError> {
    results
        .into_iter()
        .map(|r| r.map_err(|refused| EmbedError::Rejected(refused.reason)))
        .collect()
}
