//! One input the provider refuses must not fail its batch-mates. A request refused for its
//! content (400, 413, 422) is halved until each refused input stands alone; the others are
//! embedded. Before the first halving one tiny request tells a refused *content* from a
//! provider that refuses every request (bad model, bad parameter), so a misconfiguration
//! fails the call instead of refusing every input one by one.

use std::ops::Range;

use async_trait::async_trait;

use super::{EmbedError, Refused};

/// One provider request: the texts of one batch in, one vector per text out.
#[async_trait]
pub(crate) trait EmbedCall: Sync {
    async fn call(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// What the probe request sends: short enough for any model.
const PROBE: &str = "probe";

/// Embeds `texts` in `batches` through `provider`, isolating refused inputs: one result per
/// text, in order. `Err` only when the call as a whole fails (unavailable, refused even
/// for the probe, malformed answers).
pub(crate) async fn embed_isolating(
    provider: &dyn EmbedCall,
    texts: &[String],
    batches: Vec<Range<usize>>,
) -> Result<Vec<Result<Vec<f32>, Refused>>, EmbedError> {
    let mut out: Vec<Option<Result<Vec<f32>, Refused>>> = vec![None; texts.len()];
    let mut pending: Vec<Range<usize>> = batches.into_iter().rev().collect();
    let mut provider_accepts = None;
    while let Some(range) = pending.pop() {
        match provider.call(&texts[range.clone()]).await {
            Ok(vectors) => {
                if vectors.len() != range.len() {
                    return Err(EmbedError::Permanent(format!(
                        "the provider returned {} vectors for {} inputs",
                        vectors.len(),
                        range.len()
                    )));
                }
                for (slot, v) in out[range].iter_mut().zip(vectors) {
                    *slot = Some(Ok(v));
                }
            }
            Err(EmbedError::Rejected(reason)) => {
                if provider_accepts.is_none() {
                    provider_accepts = Some(probe(provider).await?);
                }
                if provider_accepts == Some(false) {
                    return Err(EmbedError::Permanent(format!(
                        "{reason} (the provider refuses even a one-word request: check the model and its parameters)"
                    )));
                }
                if range.len() == 1 {
                    out[range.start] = Some(Err(Refused { reason }));
                } else {
                    tracing::debug!(
                        inputs = range.len(),
                        "the provider refused a request; halving it to find the refused input"
                    );
                    let mid = range.start + range.len() / 2;
                    pending.push(mid..range.end);
                    pending.push(range.start..mid);
                }
            }
            Err(e) => return Err(e),
        }
    }
    out.into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.ok_or_else(|| EmbedError::Permanent(format!("input {i} was never embedded")))
        })
        .collect()
}

/// True when the provider embeds a one-word text; false when it refuses that too.
async fn probe(provider: &dyn EmbedCall) -> Result<bool, EmbedError> {
    match provider.call(&[PROBE.to_string()]).await {
        Ok(_) => Ok(true),
        Err(EmbedError::Rejected(_)) | Err(EmbedError::Permanent(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Refuses any request holding a text longer than `max_len` (or every request).
    struct Refusing {
        max_len: usize,
        refuse_all: bool,
        calls: AtomicUsize,
    }

    #[async_trait]
    impl EmbedCall for Refusing {
        async fn call(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.refuse_all || texts.iter().any(|t| t.len() > self.max_len) {
                return Err(EmbedError::Rejected("input too long".into()));
            }
            Ok(texts.iter().map(|t| vec![t.len() as f32]).collect())
        }
    }

    fn texts(bad: &[usize], n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                if bad.contains(&i) {
                    "x".repeat(100)
                } else {
                    format!("t{i}")
                }
            })
            .collect()
    }

    #[tokio::test]
    async fn only_the_refused_inputs_fail_and_the_others_get_their_own_vectors() {
        let provider = Refusing {
            max_len: 50,
            refuse_all: false,
            calls: AtomicUsize::new(0),
        };
        let texts = texts(&[3, 17], 21);
        let out = embed_isolating(&provider, &texts, std::iter::once(0..21).collect())
            .await
            .unwrap();
        for (i, r) in out.iter().enumerate() {
            match r {
                Err(refused) if i == 3 || i == 17 => assert!(refused.reason.contains("too long")),
                Ok(v) if i != 3 && i != 17 => assert_eq!(v[0], texts[i].len() as f32),
                other => panic!("input {i}: {other:?}"),
            }
        }
        // One refused request, one probe, then halvings: far fewer calls than one per input.
        assert!(provider.calls.load(Ordering::SeqCst) < 21);
    }

    #[tokio::test]
    async fn a_provider_that_refuses_everything_fails_the_call_instead_of_refusing_each_input() {
        let provider = Refusing {
            max_len: 50,
            refuse_all: true,
            calls: AtomicUsize::new(0),
        };
        let texts = texts(&[], 8);
        let err = embed_isolating(&provider, &texts, std::iter::once(0..8).collect())
            .await
            .unwrap_err();
        assert!(matches!(err, EmbedError::Permanent(_)), "{err:?}");
        assert_eq!(
            provider.calls.load(Ordering::SeqCst),
            2,
            "the batch and the probe"
        );
    }
}
