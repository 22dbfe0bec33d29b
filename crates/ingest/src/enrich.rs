//! Optional enrichment of capabilities by a language model: an OpenAI-compatible
//! `POST {url}/chat/completions` asked for a JSON object (capabilities, providers,
//! complexity, use case) inferred from a type's schema. Calls are retried like the
//! embedding providers' ([`crate::embed::retry`]). The cache that keeps an unchanged type
//! from being sent twice is the capabilities collection itself: see
//! [`crate::capabilities`].

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sync_model::{Capability, Enrichment};

use crate::embed::retry::ProviderEndpoint;
use crate::embed::EmbedError;
use crate::retry::RetryPolicy;

pub const DEFAULT_MODEL: &str = "gpt-4o-mini";

/// What the model is told. The answer must be one JSON object with these four keys.
const SYSTEM_PROMPT: &str = "You describe Kubernetes resource types for a search index. \
Given a resource type (kind, group, schema description and top-level spec fields), answer \
with one JSON object and nothing else, with exactly these keys: \
\"capabilities\" (array of short lowercase capability words, e.g. \"postgresql\", \"database\", \"backup\"), \
\"providers\" (array of vendors or projects behind it, e.g. \"cloudnativepg\"), \
\"complexity\" (one of \"low\", \"medium\", \"high\"), \
\"useCase\" (one sentence: what a developer would use it for).";

#[derive(Debug, Clone)]
pub struct EnrichConfig {
    /// Base URL of an OpenAI-compatible API, e.g. `https://api.openai.com/v1` or
    /// `http://localhost:11434/v1` (Ollama); `/chat/completions` is appended.
    pub url: String,
    pub model: String,
    /// Optional: local servers need none.
    pub api_key: Option<String>,
    /// Per attempt; a timed-out attempt is retried.
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl EnrichConfig {
    pub fn new(url: impl Into<String>, model: impl Into<String>) -> Self {
        EnrichConfig {
            url: url.into(),
            model: model.into(),
            api_key: None,
            timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    /// The call failed (after retries for 5xx, 429 and timeouts).
    #[error("language model call failed: {0}")]
    Call(#[from] EmbedError),
    /// The model answered, but not with the JSON object asked for.
    #[error("language model answered something unusable: {0}")]
    Malformed(String),
}

/// Calls the language model. Cheap to share behind an `Arc`.
pub struct Enricher {
    endpoint: ProviderEndpoint,
    config: EnrichConfig,
}

impl Enricher {
    /// Builds the client; needs a rustls crypto provider installed in the process.
    pub fn new(config: EnrichConfig) -> Result<Self, EnrichError> {
        let endpoint = ProviderEndpoint::new(
            format!("{}/chat/completions", config.url.trim_end_matches('/')),
            config.api_key.as_deref(),
            config.timeout,
            config.retry,
            "LLM enrichment",
        )
        .map_err(EnrichError::Call)?;
        Ok(Enricher { endpoint, config })
    }

    pub fn model(&self) -> &str {
        &self.config.model
    }

    /// What the model infers from `capability`'s schema (its own enrichment is ignored).
    pub async fn enrich(&self, capability: &Capability) -> Result<Enrichment, EnrichError> {
        let mut bare = capability.clone();
        bare.enrichment = None;
        let body = ChatRequest {
            model: &self.config.model,
            messages: [
                Message {
                    role: "system",
                    content: SYSTEM_PROMPT.to_string(),
                },
                Message {
                    role: "user",
                    content: bare.document_text(),
                },
            ],
            response_format: ResponseFormat {
                kind: "json_object",
            },
            temperature: 0.0,
        };
        let bytes = self.endpoint.post(&body).await?;
        parse_answer(&bytes)
    }
}

/// The hash the enrichment cache is keyed by: the capability's content hash without any
/// enrichment, i.e. of what the schema says.
pub fn schema_hash(capability: &Capability) -> String {
    if capability.enrichment.is_none() {
        return capability.content_hash();
    }
    let mut bare = capability.clone();
    bare.enrichment = None;
    bare.content_hash()
}

fn parse_answer(bytes: &[u8]) -> Result<Enrichment, EnrichError> {
    let resp: ChatResponse = serde_json::from_slice(bytes)
        .map_err(|e| EnrichError::Malformed(format!("not a chat completion: {e}")))?;
    let content = resp
        .choices
        .into_iter()
        .next()
        .and_then(|c| c.message.content)
        .ok_or_else(|| EnrichError::Malformed("no message in the answer".into()))?;
    // Some models wrap the object in a Markdown code fence despite the JSON mode.
    let text = content.trim();
    let text = text
        .strip_prefix("```json")
        .or_else(|| text.strip_prefix("```"))
        .and_then(|t| t.strip_suffix("```"))
        .unwrap_or(text)
        .trim();
    serde_json::from_str(text).map_err(|e| {
        let shown: String = text.chars().take(200).collect();
        EnrichError::Malformed(format!("{e} in {shown:?}"))
    })
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: [Message; 2],
    response_format: ResponseFormat,
    temperature: f32,
}

#[derive(Serialize)]
struct Message {
    role: &'static str,
    content: String,
}

#[derive(Serialize)]
struct ResponseFormat {
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: AnswerMessage,
}

#[derive(Deserialize)]
struct AnswerMessage {
    #[serde(default)]
    content: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(content: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "choices": [{"message": {"role": "assistant", "content": content}}]
        }))
        .unwrap()
    }

    #[test]
    fn the_json_object_in_the_answer_becomes_the_enrichment() {
        let e = parse_answer(&answer(
            r#"{"capabilities":["postgresql","database"],"providers":["cloudnativepg"],"complexity":"medium","useCase":"Run PostgreSQL"}"#,
        ))
        .unwrap();
        assert_eq!(e.capabilities, vec!["postgresql", "database"]);
        assert_eq!(e.providers, vec!["cloudnativepg"]);
        assert_eq!(e.complexity, "medium");
        assert_eq!(e.use_case, "Run PostgreSQL");
    }

    #[test]
    fn a_fenced_object_is_accepted_and_prose_is_refused() {
        let e = parse_answer(&answer("```json\n{\"capabilities\":[\"cache\"]}\n```")).unwrap();
        assert_eq!(e.capabilities, vec!["cache"]);
        assert!(matches!(
            parse_answer(&answer("It is a database.")),
            Err(EnrichError::Malformed(_))
        ));
        assert!(matches!(
            parse_answer(br#"{"choices":[]}"#),
            Err(EnrichError::Malformed(_))
        ));
    }

    #[test]
    fn the_schema_hash_ignores_enrichment() {
        let mut c: Capability = serde_json::from_value(serde_json::json!({
            "id": "clusters.postgresql.cnpg.io", "kind": "Cluster",
            "group": "postgresql.cnpg.io", "plural": "clusters", "namespaced": true
        }))
        .unwrap();
        let bare = schema_hash(&c);
        assert_eq!(bare, c.content_hash());
        c.enrichment = Some(Enrichment {
            capabilities: vec!["database".into()],
            ..Enrichment::default()
        });
        assert_eq!(schema_hash(&c), bare);
        assert_ne!(c.content_hash(), bare);
    }
}
