//! A stand-in for an OpenAI-compatible chat API (`POST /v1/chat/completions`), for the
//! capability enrichment tests: answers every request with one fixed JSON enrichment as
//! the assistant's message, counts requests and remembers the prompts it was sent, and can
//! be told to fail (any status) for the next requests or until it recovers.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::in_process::InProcessServer;

/// The enrichment every successful answer carries (as the message's JSON content).
pub fn fixed_enrichment() -> Value {
    json!({
        "capabilities": ["database", "postgresql"],
        "providers": ["standin"],
        "complexity": "medium",
        "useCase": "Stand-in answer for tests"
    })
}

#[derive(Default)]
struct Shared {
    requests: u64,
    failed: u64,
    /// The user message of every request, in order.
    prompts: Vec<String>,
    /// The `model` of every request.
    models: Vec<String>,
    authorizations: Vec<Option<String>>,
    failures: VecDeque<u16>,
    down: Option<u16>,
}

/// A running stand-in; stops when dropped.
pub struct LlmStandin {
    server: InProcessServer,
    shared: Arc<Mutex<Shared>>,
}

impl LlmStandin {
    /// Starts on a free loopback port.
    pub async fn start() -> LlmStandin {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap_or_else(|e| panic!("cannot start the LLM stand-in: {e}"));
        let shared = Arc::new(Mutex::new(Shared::default()));
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .with_state(shared.clone());
        let server = InProcessServer::serve(listener, app)
            .unwrap_or_else(|e| panic!("LLM stand-in address: {e}"));
        LlmStandin { server, shared }
    }

    /// The value for `--llm-url` / `CW_LLM_URL`: `http://127.0.0.1:<port>/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.server.addr())
    }

    /// Chat requests received, failed ones included.
    pub fn requests(&self) -> u64 {
        lock(&self.shared).requests
    }

    /// Requests answered with an injected failure.
    pub fn failed(&self) -> u64 {
        lock(&self.shared).failed
    }

    /// The user message of every request so far.
    pub fn prompts(&self) -> Vec<String> {
        lock(&self.shared).prompts.clone()
    }

    /// The `model` of every request so far.
    pub fn models(&self) -> Vec<String> {
        lock(&self.shared).models.clone()
    }

    /// The `Authorization` header of every request so far.
    pub fn authorizations(&self) -> Vec<Option<String>> {
        lock(&self.shared).authorizations.clone()
    }

    /// The next `n` requests are answered with `status`.
    pub fn fail_next(&self, n: usize, status: u16) {
        let mut s = lock(&self.shared);
        s.failures.extend(std::iter::repeat_n(status, n));
    }

    /// Every request fails with `status` until [`LlmStandin::recover`].
    pub fn go_down(&self, status: u16) {
        lock(&self.shared).down = Some(status);
    }

    pub fn recover(&self) {
        let mut s = lock(&self.shared);
        s.down = None;
        s.failures.clear();
    }
}

fn lock(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn chat(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut s = lock(&shared);
    s.requests += 1;
    let prompt = body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string();
    s.prompts.push(prompt);
    s.models
        .push(body["model"].as_str().unwrap_or_default().to_string());
    s.authorizations.push(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    );
    if let Some(status) = s.failures.pop_front().or(s.down) {
        s.failed += 1;
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (
            status,
            Json(json!({"error": {"message": "stand-in told to fail", "type": "server_error"}})),
        )
            .into_response();
    }
    let n = s.requests;
    Json(json!({
        "id": format!("chatcmpl-standin-{n}"),
        "object": "chat.completion",
        "model": body["model"],
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": fixed_enrichment().to_string()},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    }))
    .into_response()
}
