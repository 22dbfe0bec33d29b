//! Embedding providers: text in, vectors out. The pipeline only knows the [`Embedder`]
//! trait; Voyage AI, OpenAI-compatible servers and the local model implement it.

use async_trait::async_trait;

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
    /// The local model's files are missing or unreadable; the message says what to run.
    #[error("embedding model not available: {0}")]
    ModelMissing(String),
}

impl EmbedError {
    pub fn is_transient(&self) -> bool {
        matches!(self, EmbedError::Transient(_))
    }
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
}
