//! Embedding a sync's documents: the provider's answer checked (one vector per text, of
//! the model's dimension) before anything is written, and timed into `embed_seconds`.

use std::time::Instant;

use super::SyncError;
use crate::embed::{EmbedError, Embedder, InputType, ModelInfo, Refused};
use crate::metrics::IngestMetrics;

/// Changed documents embedded and written together. Bounds what one request holds: 1,000
/// vectors of 1,024 dimensions are 4 MiB (docs/ingest.md, "Load bound").
pub const EMBED_CHUNK: usize = 1_000;

/// Embeds `texts` as documents and checks the answer (one vector per text, each of the
/// model's dimension). Called before any write, so a provider failure changes nothing.
pub(crate) async fn embed_documents(
    embedder: &dyn Embedder,
    model: &ModelInfo,
    metrics: &IngestMetrics,
    texts: &[String],
) -> Result<Vec<Vec<f32>>, SyncError> {
    let vectors = counted(metrics, texts, embedder.embed(texts, InputType::Document)).await?;
    check_answer(model, texts.len(), vectors.len(), vectors.iter())?;
    Ok(vectors)
}

/// The answer of `call`, the provider's call for `texts` (none is made for no text), counted
/// in `embeddings_requested` and timed in `embed_seconds`.
async fn counted<T>(
    metrics: &IngestMetrics,
    texts: &[String],
    call: impl std::future::Future<Output = Result<Vec<T>, EmbedError>>,
) -> Result<Vec<T>, EmbedError> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    metrics.embeddings_requested.inc_by(texts.len() as u64);
    let t = Instant::now();
    let answer = call.await?;
    metrics.embed_seconds.observe(t.elapsed().as_secs_f64());
    Ok(answer)
}

/// The provider answered one vector per text, each of the model's dimension; anything else
/// is a permanent error (a provider that disagrees with itself is not retried into shape).
fn check_answer<'a>(
    model: &ModelInfo,
    asked: usize,
    answered: usize,
    mut vectors: impl Iterator<Item = &'a Vec<f32>>,
) -> Result<(), SyncError> {
    if answered != asked {
        return Err(EmbedError::Permanent(format!(
            "the provider returned {answered} results for {asked} documents"
        ))
        .into());
    }
    if let Some(v) = vectors.find(|v| v.len() != model.dimension) {
        return Err(EmbedError::Permanent(format!(
            "the provider returned a vector of {} dimensions; {} makes {}",
            v.len(),
            model.id,
            model.dimension
        ))
        .into());
    }
    Ok(())
}

/// Like [`embed_documents`], but an input the provider refuses is answered on its own
/// (`Err(Refused)`) while the others are embedded.
pub(crate) async fn embed_each_document(
    embedder: &dyn Embedder,
    model: &ModelInfo,
    metrics: &IngestMetrics,
    texts: &[String],
) -> Result<Vec<Result<Vec<f32>, Refused>>, SyncError> {
    let results = counted(
        metrics,
        texts,
        embedder.embed_each(texts, InputType::Document),
    )
    .await?;
    check_answer(model, texts.len(), results.len(), results.iter().flatten())?;
    Ok(results)
}
