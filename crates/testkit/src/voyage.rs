//! A stand-in for Voyage AI's embeddings API (`POST /v1/embeddings`), speaking its exact
//! wire format: `input` as a string or a list, `model`, `input_type`, `output_dimension`,
//! `encoding_format: "base64"` (little-endian f32), `usage.total_tokens`, and Voyage's
//! `{"detail": ...}` errors. Vectors are deterministic: a hashed bag of words, so texts that
//! share words are similar. Counters let tests assert how many calls and inputs were made;
//! failures (429 with `Retry-After`, 5xx) can be injected, and inputs over a length can be
//! refused with a 400 (a provider whose input limit the client does not know).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::in_process::InProcessServer;

/// Voyage's limit on inputs per request.
pub const MAX_INPUTS: usize = 1_000;
/// Default dimension of voyage-3.5 and most Voyage models.
pub const DEFAULT_DIMENSION: usize = 1_024;

/// A failure the stand-in answers instead of embedding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 429 with `Retry-After: <secs>`.
    RateLimited { retry_after_secs: u64 },
    /// Any status, e.g. 500 or 503.
    Status(u16),
}

/// What the stand-in has seen since start (or the last reset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandinStats {
    /// Every embeddings request received, failed ones included.
    pub requests: u64,
    /// Inputs embedded (successful requests only).
    pub inputs: u64,
    pub document_inputs: u64,
    pub query_inputs: u64,
    /// Requests answered with an injected failure.
    pub failed: u64,
    /// Requests refused because an input was over the length set by
    /// [`VoyageStandin::refuse_inputs_longer_than`].
    pub refused: u64,
    /// Longest input (in characters) of any request received.
    pub longest_input_chars: u64,
    /// Requests that asked for `encoding_format: "base64"`.
    pub base64_requests: u64,
    pub tokens: u64,
    /// Largest number of inputs in one request.
    pub max_inputs_per_request: u64,
}

#[derive(Default)]
struct Shared {
    stats: StandinStats,
    failures: VecDeque<Failure>,
    /// Added to every answer, to hold requests in flight.
    delay: std::time::Duration,
    /// Requests holding an input longer than this many characters are refused with 400.
    max_input_chars: Option<usize>,
}

#[derive(Clone)]
struct AppState {
    shared: Arc<Mutex<Shared>>,
    api_key: Option<String>,
}

/// A running stand-in; stops when dropped.
pub struct VoyageStandin {
    server: InProcessServer,
    shared: Arc<Mutex<Shared>>,
}

impl VoyageStandin {
    /// Starts on a free loopback port, accepting any API key.
    pub async fn start() -> VoyageStandin {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), None)
            .await
            .unwrap_or_else(|e| panic!("cannot start the Voyage stand-in: {e}"))
    }

    /// Starts on `addr`; with `api_key`, requests must carry `Authorization: Bearer <key>`.
    pub async fn start_on(
        addr: SocketAddr,
        api_key: Option<String>,
    ) -> std::io::Result<VoyageStandin> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let app = router(AppState {
            shared: shared.clone(),
            api_key,
        });
        let server = InProcessServer::serve(listener, app)?;
        Ok(VoyageStandin { server, shared })
    }

    /// The value for `--voyage-url` / `VOYAGE_BASE_URL`: `http://127.0.0.1:<port>/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr())
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    pub fn stats(&self) -> StandinStats {
        lock(&self.shared).stats.clone()
    }

    /// Embeddings requests received, failed ones included.
    pub fn requests(&self) -> u64 {
        self.stats().requests
    }

    /// Inputs embedded.
    pub fn inputs(&self) -> u64 {
        self.stats().inputs
    }

    pub fn reset_stats(&self) {
        lock(&self.shared).stats = StandinStats::default();
    }

    /// The next `n` requests are answered with `failure`.
    pub fn fail_next(&self, n: usize, failure: Failure) {
        let mut s = lock(&self.shared);
        for _ in 0..n {
            s.failures.push_back(failure.clone());
        }
    }

    /// Every request fails with `status` until [`VoyageStandin::recover`].
    pub fn go_down(&self, status: u16) {
        self.fail_next(10_000, Failure::Status(status));
    }

    pub fn recover(&self) {
        lock(&self.shared).failures.clear();
    }

    /// From now on a request holding an input over `chars` characters is answered 400
    /// naming the input, in both dialects (as TEI answers inputs over its
    /// `--max-input-length`, or OpenAI inputs over the model's context).
    pub fn refuse_inputs_longer_than(&self, chars: usize) {
        lock(&self.shared).max_input_chars = Some(chars);
    }

    /// Every answer waits this long first (to hold requests in flight).
    pub fn set_delay(&self, delay: std::time::Duration) {
        lock(&self.shared).delay = delay;
    }

    /// Base URL of the same embeddings in OpenAI's wire format (`/openai/v1/embeddings`:
    /// no `input_type`, `encoding_format` `float` or `base64`), for the OpenAI-compatible client.
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/openai/v1", self.addr())
    }
}

fn lock(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    // A panicking test thread must not hide the counters from the others.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The router, also served by the `voyage-standin` binary.
fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/embeddings", post(embeddings))
        .route("/openai/v1/embeddings", post(embeddings))
        .route("/stats", get(stats))
        .route("/stats/reset", post(reset))
        .with_state(state)
}

/// Serves the stand-in on `listener` until `shutdown` completes (used by the binary).
pub async fn serve(
    listener: tokio::net::TcpListener,
    api_key: Option<String>,
    max_input_chars: Option<usize>,
    latency: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shared = Shared {
        max_input_chars,
        delay: latency,
        ..Shared::default()
    };
    let app = router(AppState {
        shared: Arc::new(Mutex::new(shared)),
        api_key,
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn stats(State(state): State<AppState>) -> Json<StandinStats> {
    Json(lock(&state.shared).stats.clone())
}

async fn reset(State(state): State<AppState>) -> StatusCode {
    lock(&state.shared).stats = StandinStats::default();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct EmbeddingsRequest {
    input: Input,
    model: String,
    #[serde(default)]
    input_type: Option<String>,
    #[serde(default, alias = "dimensions")]
    output_dimension: Option<usize>,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    truncation: Option<bool>,
    #[serde(default)]
    output_dtype: Option<String>,
}

fn detail(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "detail": message.into() }))).into_response()
}

/// Voyage's per-request token budgets (https://docs.voyageai.com/docs/embeddings).
fn token_budget(model: &str) -> u64 {
    match model {
        "voyage-3.5-lite" | "voyage-3-lite" => 1_000_000,
        "voyage-3.5" | "voyage-3" | "voyage-2" => 320_000,
        _ => 120_000,
    }
}

/// A rough token count: Voyage's tokenizer gives about one token per four bytes of English.
fn estimate_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4).max(1)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Voyage,
    OpenAi,
}

/// `POST /v1/embeddings` in Voyage's dialect, `POST /openai/v1/embeddings` in OpenAI's.
async fn embeddings(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let dialect = if uri.path().starts_with("/openai/") {
        Dialect::OpenAi
    } else {
        Dialect::Voyage
    };
    let delay = lock(&state.shared).delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let injected = {
        let mut s = lock(&state.shared);
        s.stats.requests += 1;
        let f = s.failures.pop_front();
        if f.is_some() {
            s.stats.failed += 1;
        }
        f
    };
    match injected {
        Some(Failure::RateLimited { retry_after_secs }) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, retry_after_secs.to_string())],
                Json(json!({ "detail": "You have exceeded your rate limit." })),
            )
                .into_response();
        }
        Some(Failure::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return detail(status, "injected failure");
        }
        None => {}
    }

    if let Some(key) = &state.api_key {
        let expected = format!("Bearer {key}");
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if given != Some(expected.as_str()) {
            return detail(StatusCode::UNAUTHORIZED, "Provided API key is invalid.");
        }
    }
    let req: EmbeddingsRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return detail(
                StatusCode::BAD_REQUEST,
                format!("Invalid request body: {e}"),
            )
        }
    };
    let inputs = match req.input {
        Input::One(s) => vec![s],
        Input::Many(v) => v,
    };
    if inputs.is_empty() {
        return detail(StatusCode::BAD_REQUEST, "input must not be empty");
    }
    if inputs.len() > MAX_INPUTS {
        return detail(
            StatusCode::BAD_REQUEST,
            format!(
                "The batch size limit is {MAX_INPUTS}. Your batch size is {}.",
                inputs.len()
            ),
        );
    }
    if dialect == Dialect::OpenAi && req.input_type.is_some() {
        return detail(StatusCode::BAD_REQUEST, "OpenAI's API has no input_type");
    }
    let input_type = match req.input_type.as_deref() {
        None | Some("document") | Some("query") => req.input_type.clone(),
        Some(other) => {
            return detail(
                StatusCode::BAD_REQUEST,
                format!("input_type must be null, 'query' or 'document', not {other:?}"),
            )
        }
    };
    if let Some(dtype) = req.output_dtype.as_deref() {
        if dtype != "float" {
            return detail(
                StatusCode::BAD_REQUEST,
                "the stand-in only produces float vectors",
            );
        }
    }
    let base64 = match req.encoding_format.as_deref() {
        None => false,
        Some("base64") => true,
        Some("float") if dialect == Dialect::OpenAi => false,
        Some(other) => {
            return detail(
                StatusCode::BAD_REQUEST,
                format!("encoding_format must be null or 'base64', not {other:?}"),
            )
        }
    };
    let lengths: Vec<usize> = inputs.iter().map(|t| t.chars().count()).collect();
    let max_input_chars = {
        let mut s = lock(&state.shared);
        let longest = lengths.iter().copied().max().unwrap_or(0) as u64;
        s.stats.longest_input_chars = s.stats.longest_input_chars.max(longest);
        s.max_input_chars
    };
    if let Some(max) = max_input_chars {
        if let Some(i) = lengths.iter().position(|&n| n > max) {
            lock(&state.shared).stats.refused += 1;
            return detail(
                StatusCode::BAD_REQUEST,
                format!(
                    "input[{i}] has {} characters; this model accepts at most {max}",
                    lengths[i]
                ),
            );
        }
    }
    let tokens: u64 = inputs.iter().map(|t| estimate_tokens(t)).sum();
    if tokens > token_budget(&req.model) {
        return detail(
            StatusCode::BAD_REQUEST,
            format!(
                "Request to model '{}' failed. The max allowed tokens per submitted batch is {}. Your batch has {tokens} tokens after truncation.",
                req.model,
                token_budget(&req.model)
            ),
        );
    }
    let dimension = req.output_dimension.unwrap_or(DEFAULT_DIMENSION);

    let data: Vec<serde_json::Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let v = embed_text(text, dimension);
            let embedding = if base64 {
                let mut bytes = Vec::with_capacity(v.len() * 4);
                for x in &v {
                    bytes.extend_from_slice(&x.to_le_bytes());
                }
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({ "object": "embedding", "embedding": embedding, "index": index })
        })
        .collect();

    {
        let mut s = lock(&state.shared);
        let n = inputs.len() as u64;
        s.stats.inputs += n;
        s.stats.tokens += tokens;
        s.stats.max_inputs_per_request = s.stats.max_inputs_per_request.max(n);
        if base64 {
            s.stats.base64_requests += 1;
        }
        match input_type.as_deref() {
            Some("query") => s.stats.query_inputs += n,
            _ => s.stats.document_inputs += n,
        }
    }
    Json(json!({
        "object": "list",
        "data": data,
        "model": req.model,
        "usage": { "total_tokens": tokens },
    }))
    .into_response()
}

/// The stand-in's deterministic vector for `text`: a unit-length hashed bag of lowercase
/// words (each word adds ±1 at a position chosen by its hash), so texts that share words
/// are near each other and the same text always gives the same vector.
pub fn embed_text(text: &str, dimension: usize) -> Vec<f32> {
    let dimension = dimension.max(1);
    let mut v = vec![0f32; dimension];
    let mut any = false;
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let h = fnv1a(word.to_lowercase().as_bytes());
        let index = (h % dimension as u64) as usize;
        let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
        v[index] += sign;
        any = true;
    }
    if !any {
        v[0] = 1.0;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x /= norm;
        }
    }
    v
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn vectors_are_deterministic_unit_length_and_similar_for_shared_words() {
        let a = embed_text("StatefulSet postgres | namespace: db", 1024);
        assert_eq!(a, embed_text("StatefulSet postgres | namespace: db", 1024));
        assert!((cosine(&a, &a) - 1.0).abs() < 1e-5);
        let near = embed_text("StatefulSet postgres | namespace: shop", 1024);
        let far = embed_text("Deployment nginx web server", 1024);
        assert!(cosine(&a, &near) > cosine(&a, &far));
    }
}
