//! One HTTP call to a remote embedding provider, retried with exponential backoff (backon,
//! as [`RetryPolicy`] says) on 429, 408 and 5xx and on connection failures, honouring
//! `Retry-After`. Shared by the Voyage and OpenAI-compatible clients and the enricher's
//! language model.

use std::time::Duration;

use backon::Retryable;
use bytes::Bytes;
use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;

use super::EmbedError;
use crate::retry::{error_chain, RetryPolicy};

/// A provider's JSON endpoint and what every call to it shares: the HTTP client (with the
/// configured timeout), the API key sent as a bearer token, and the retry policy.
pub(crate) struct ProviderEndpoint {
    client: reqwest::Client,
    url: String,
    api_key: Option<String>,
    policy: RetryPolicy,
    /// As errors and logs name the provider: "Voyage AI", "LLM enrichment".
    provider: &'static str,
}

impl ProviderEndpoint {
    /// Builds the client; needs a rustls crypto provider installed in the process. An empty
    /// `api_key` sends none.
    pub(crate) fn new(
        url: String,
        api_key: Option<&str>,
        timeout: Duration,
        policy: RetryPolicy,
        provider: &'static str,
    ) -> Result<Self, EmbedError> {
        let client = crate::retry::http_client(timeout).map_err(EmbedError::Permanent)?;
        Ok(ProviderEndpoint {
            client,
            url,
            api_key: api_key.filter(|k| !k.is_empty()).map(str::to_string),
            policy,
            provider,
        })
    }

    /// POSTs `body` as JSON and returns the body of the first 2xx answer ([`post_json`]).
    pub(crate) async fn post(&self, body: &impl serde::Serialize) -> Result<Bytes, EmbedError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| EmbedError::Permanent(format!("cannot encode the request: {e}")))?;
        post_json(
            &self.client,
            &self.url,
            self.api_key.as_deref(),
            body.into(),
            &self.policy,
            self.provider,
        )
        .await
    }
}

/// One failed attempt.
#[derive(Debug)]
struct AttemptError {
    error: EmbedError,
    retry_after: Option<Duration>,
}

/// POSTs `body` (JSON) to `url` and returns the response body of the first 2xx answer.
async fn post_json(
    client: &reqwest::Client,
    url: &str,
    api_key: Option<&str>,
    body: Bytes,
    policy: &RetryPolicy,
    provider: &'static str,
) -> Result<Bytes, EmbedError> {
    let attempt = || async {
        let mut req = client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(body.clone());
        if let Some(key) = api_key {
            req = req.header(AUTHORIZATION, format!("Bearer {key}"));
        }
        let resp = req.send().await.map_err(|e| AttemptError {
            error: EmbedError::Transient(format!("{provider} at {url}: {}", error_chain(&e))),
            retry_after: None,
        })?;
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        let bytes = resp.bytes().await.map_err(|e| AttemptError {
            error: EmbedError::Transient(format!("{provider}: reading the answer: {e}")),
            retry_after: None,
        })?;
        if status.is_success() {
            return Ok(bytes);
        }
        let detail = String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned();
        let message = format!("{provider} answered {status}: {detail}");
        let error = if is_retryable(status) {
            EmbedError::Transient(message)
        } else if is_refused_content(status) {
            EmbedError::Rejected(message)
        } else {
            EmbedError::Permanent(message)
        };
        Err(AttemptError { error, retry_after })
    };
    let max_retry_after = policy.max_retry_after;
    attempt
        .retry(policy.backoff())
        .sleep(tokio::time::sleep)
        .when(|e: &AttemptError| e.error.is_transient())
        .adjust(move |e: &AttemptError, next: Option<Duration>| {
            // `next` is None once the retries are used up; Retry-After never adds attempts.
            let next = next?;
            match e.retry_after {
                Some(wait) if wait > max_retry_after => None,
                Some(wait) => Some(wait.max(next)),
                None => Some(next),
            }
        })
        .notify(|e: &AttemptError, wait: Duration| {
            tracing::warn!(provider, error = %e.error, ?wait, "embedding call failed; retrying");
        })
        .await
        .map_err(|e| e.error)
}

fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
}

/// Statuses providers answer for what a request holds rather than who sent it: Voyage and
/// OpenAI 400 for an input over the model's context, TEI 413 and 422 for an input over
/// `--max-input-length` or a batch over `--max-client-batch-size`.
fn is_refused_content(status: StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 413 | 422)
}

/// `Retry-After` in seconds (the form rate limiters send); HTTP dates are ignored.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let secs: f64 = v.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Little-endian f32s packed in base64, as Voyage and OpenAI send with
/// `encoding_format: "base64"`.
pub(crate) fn decode_base64_f32(text: &str) -> Result<Vec<f32>, EmbedError> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| EmbedError::Permanent(format!("malformed base64 embedding: {e}")))?;
    if bytes.len() % 4 != 0 {
        return Err(EmbedError::Permanent(format!(
            "base64 embedding of {} bytes is not a whole number of f32s",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_are_read_and_dates_ignored() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn base64_vectors_decode_as_little_endian_f32() {
        use base64::Engine;
        let mut bytes = Vec::new();
        for x in [1.0f32, -0.5, 0.25] {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert_eq!(decode_base64_f32(&text).unwrap(), vec![1.0, -0.5, 0.25]);
        assert!(decode_base64_f32("AAA=").is_err());
    }

    #[test]
    fn only_rate_limits_timeouts_and_server_errors_are_retried() {
        assert!(is_retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(is_retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(is_retryable(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(!is_retryable(StatusCode::UNAUTHORIZED));
        assert!(!is_retryable(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn refusals_of_content_are_told_from_refusals_of_the_caller() {
        assert!(is_refused_content(StatusCode::BAD_REQUEST));
        assert!(is_refused_content(StatusCode::PAYLOAD_TOO_LARGE));
        assert!(is_refused_content(StatusCode::UNPROCESSABLE_ENTITY));
        assert!(!is_refused_content(StatusCode::UNAUTHORIZED));
        assert!(!is_refused_content(StatusCode::NOT_FOUND));
    }
}
