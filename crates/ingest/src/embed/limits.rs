//! What a remote embedding provider accepts: inputs per request, tokens per input and
//! tokens per request. Texts are cut to the input limit and split into requests within
//! both budgets before anything is sent, so that a long object (any namespace user can
//! write a 40 KB annotation) is embedded from its beginning instead of refused.

use std::ops::Range;

/// A provider's limits, per request and per input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputLimits {
    /// Inputs in one request (Voyage 1,000; OpenAI 2,048; TEI 32 by default).
    pub max_inputs_per_request: usize,
    /// Estimated tokens of all inputs of one request.
    pub max_tokens_per_request: usize,
    /// Estimated tokens of one input; longer texts are cut to it.
    pub max_input_tokens: usize,
}

/// Bytes per token [`estimate_tokens`] assumes. Tokenizers average about four bytes a token
/// on English; Kubernetes names and labels split finer, so three over-estimates tokens on
/// the texts cw embeds (an input the estimate still gets wrong is refused and parked, never
/// holding its batch-mates: see `embed::isolate`).
pub const BYTES_PER_TOKEN: usize = 3;

/// A safe over-estimate of a text's tokens.
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(BYTES_PER_TOKEN).max(1)
}

/// `text` cut to about `max_tokens` tokens, at a character boundary. Documents put the
/// kind, name, namespace and labels first, so what is cut is the tail of descriptions.
pub fn cut_to_tokens(text: &str, max_tokens: usize) -> &str {
    cut_to_bytes(text, max_tokens.saturating_mul(BYTES_PER_TOKEN).max(1))
}

/// `text` cut to at most `max_bytes` bytes, at a character boundary.
pub fn cut_to_bytes(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl InputLimits {
    /// Every text cut to [`InputLimits::max_input_tokens`]; `None` when none needed cutting.
    pub fn cut(&self, texts: &[String]) -> Option<Vec<String>> {
        let over = |t: &String| estimate_tokens(t) > self.max_input_tokens;
        if !texts.iter().any(over) {
            return None;
        }
        Some(
            texts
                .iter()
                .map(|t| cut_to_tokens(t, self.max_input_tokens).to_string())
                .collect(),
        )
    }

    /// Consecutive index ranges of `texts`, each within both request limits (a single text
    /// over the token budget gets a request of its own).
    pub fn plan(&self, texts: &[String]) -> Vec<Range<usize>> {
        plan_batches(
            texts,
            self.max_inputs_per_request,
            self.max_tokens_per_request,
        )
    }
}

/// Splits `texts` into consecutive index ranges of at most `max_inputs` texts and
/// `max_tokens` estimated tokens each (a single over-long text gets a batch of its own).
pub fn plan_batches(texts: &[String], max_inputs: usize, max_tokens: usize) -> Vec<Range<usize>> {
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

    #[test]
    fn long_texts_are_cut_at_a_character_boundary_and_short_ones_kept() {
        let limits = InputLimits {
            max_inputs_per_request: 32,
            max_tokens_per_request: 16_384,
            max_input_tokens: 2_000,
        };
        let short = vec!["ConfigMap a | namespace: x".to_string()];
        assert_eq!(limits.cut(&short), None);

        // 40 KB of two-byte characters: the cut lands inside none of them.
        let long = format!("ConfigMap big | {}", "é".repeat(20_000));
        let cut = limits.cut(&[long.clone(), "small".into()]).unwrap();
        assert!(
            cut[0].len() <= 6_000 && cut[0].len() >= 5_998,
            "{}",
            cut[0].len()
        );
        assert!(long.starts_with(&cut[0]));
        assert_eq!(cut[1], "small");
    }
}
