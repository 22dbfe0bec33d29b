//! One HTTP call to Chroma and how it failed: unreachable, 5xx, 429 and 408 are worth
//! retrying (the sync answers 503 and the sender retries), 404 and 413 are told apart for
//! the callers that act on them, everything else is a refusal. Chroma's calls are not
//! retried here: its writes wait for one write turn, and the sender retries the whole sync.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ChromaStore;
use crate::retry::error_chain;
use crate::store::StoreError;

/// How one Chroma call went wrong, before it becomes a [`StoreError`].
#[derive(Debug)]
pub(super) enum CallError {
    Store(StoreError),
    NotFound(String),
    TooLarge,
}

impl CallError {
    pub(super) fn is_too_large(&self) -> bool {
        matches!(self, CallError::TooLarge)
    }
}

impl From<CallError> for StoreError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Store(e) => e,
            CallError::NotFound(m) => StoreError::Rejected(format!("Chroma: not found: {m}")),
            CallError::TooLarge => StoreError::Rejected("Chroma: request too large (413)".into()),
        }
    }
}

impl ChromaStore {
    pub(super) async fn call(&self, req: reqwest::RequestBuilder) -> Result<Bytes, CallError> {
        let resp = req.send().await.map_err(|e| {
            CallError::Store(StoreError::Unavailable(format!(
                "cannot reach Chroma at {}: {}",
                self.config.url,
                error_chain(&e)
            )))
        })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| {
            CallError::Store(StoreError::Unavailable(format!(
                "reading Chroma's answer: {e}"
            )))
        })?;
        if status.is_success() {
            return Ok(body);
        }
        let detail = chroma_message(&body);
        let message = || format!("Chroma answered {status}: {detail}");
        Err(match status.as_u16() {
            404 => CallError::NotFound(detail),
            413 => CallError::TooLarge,
            s if s == 408 || s == 429 || s >= 500 => {
                CallError::Store(StoreError::Unavailable(message()))
            }
            _ => CallError::Store(StoreError::Rejected(message())),
        })
    }

    pub(super) async fn call_json<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, CallError> {
        let body = self.call(req).await?;
        serde_json::from_slice(&body).map_err(|e| {
            CallError::Store(StoreError::Rejected(format!(
                "Chroma answered something unexpected: {e}"
            )))
        })
    }

    pub(super) async fn post<T: DeserializeOwned>(
        &self,
        url: &str,
        body: &impl Serialize,
    ) -> Result<T, CallError> {
        self.call_json(self.http.post(url).json(body)).await
    }

    /// Creates the tenant and database if they do not exist (Chroma starts with only
    /// `default_tenant`/`default_database`).
    pub(super) async fn ensure_database(&self) -> Result<(), StoreError> {
        self.database_ready
            .get_or_try_init(|| async {
                let tenants = format!("{}/tenants", self.api);
                let tenant = &self.config.tenant;
                self.ensure_exists(&tenants, tenant).await?;
                let databases = format!("{tenants}/{tenant}/databases");
                self.ensure_exists(&databases, &self.config.database).await
            })
            .await
            .map(|_| ())
    }

    /// Creates `{list}/{name}` by a `POST {list}` unless it exists.
    async fn ensure_exists(&self, list: &str, name: &str) -> Result<(), StoreError> {
        match self.call(self.http.get(format!("{list}/{name}"))).await {
            Ok(_) => Ok(()),
            Err(CallError::NotFound(_)) => {
                let created = self
                    .call(self.http.post(list).json(&json!({ "name": name })))
                    .await;
                ignore_conflict(created)
            }
            Err(e) => Err(StoreError::from(e)),
        }
    }
}

fn ignore_conflict(r: Result<Bytes, CallError>) -> Result<(), StoreError> {
    match r {
        Ok(_) => Ok(()),
        // Created meanwhile by another process: what we wanted.
        Err(CallError::Store(StoreError::Rejected(m))) if m.contains("already exists") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Chroma's errors are `{"error": "...", "message": "..."}`.
fn chroma_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct E {
        #[serde(default)]
        error: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<E>(body) {
        Ok(e) if !e.message.is_empty() => format!("{}: {}", e.error, e.message),
        _ => String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chromas_error_body_gives_the_message() {
        let body = br#"{"error":"NotFoundError","message":"Collection [x] does not exist"}"#;
        assert_eq!(
            chroma_message(body),
            "NotFoundError: Collection [x] does not exist"
        );
        assert_eq!(chroma_message(b"Bad gateway"), "Bad gateway");
    }
}
