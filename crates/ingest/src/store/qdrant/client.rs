//! Qdrant's calls: each retried with backoff (as the configured [`RetryPolicy`] says) while
//! it fails transiently, 5xx, 429, 408, timeouts and connection failures; how a call failed
//! is told by the shared plumbing of store servers ([`remote`]). Writes are idempotent
//! (upserts and deletes by id), so a retried write that had been applied changes nothing.
//!
//! [`RetryPolicy`]: crate::retry::RetryPolicy
//! [`remote`]: crate::store::remote

use std::time::Duration;

use backon::Retryable;
use bytes::Bytes;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::wire::{self, Envelope};
use super::QdrantStore;
use crate::store::remote::{CallError, Dialect};

pub(super) static QDRANT: Dialect = Dialect {
    name: "Qdrant",
    error_message: wire::error_message,
    credentials_hint: Some("set QDRANT_API_KEY"),
};

impl QdrantStore {
    pub(super) fn collection_url(&self, name: &str, rest: &str) -> String {
        format!("{}/collections/{}{rest}", self.base, escape_segment(name))
    }

    /// The URL of a write to `name` (`rest`: `/points`, …): applied before Qdrant answers
    /// (`wait=true`, so that a sync's answer means stored), in the configured `ordering`.
    pub(super) fn write_url(&self, name: &str, rest: &str) -> String {
        let ordering = self.config.ordering;
        let url = self.collection_url(name, &format!("{rest}?wait=true"));
        if ordering == super::WriteOrdering::Weak {
            url // Qdrant's default, left unsaid
        } else {
            format!("{url}&ordering={}", ordering.as_str())
        }
    }

    /// One attempt of a call.
    pub(super) async fn attempt(
        &self,
        method: &Method,
        url: &str,
        body: Option<&Bytes>,
    ) -> Result<Bytes, CallError> {
        let mut req = self.http.client.request(method.clone(), url);
        if let Some(key) = &self.config.api_key {
            req = req.header("api-key", key);
        }
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        self.http.send(req).await
    }

    /// A call, retried with exponential backoff while it fails transiently.
    pub(super) async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<Bytes>,
    ) -> Result<Bytes, CallError> {
        let policy = self.config.retry;
        (|| self.attempt(&method, url, body.as_ref()))
            .retry(policy.backoff())
            .sleep(tokio::time::sleep)
            .when(CallError::is_transient)
            .notify(|e: &CallError, wait: Duration| {
                tracing::warn!(error = ?e, ?wait, url, "Qdrant call failed; retrying");
            })
            .await
    }

    /// A call whose answer's `result` is read as `T`.
    pub(super) async fn call_result<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<T, CallError> {
        let body = body.map(|b| Bytes::from(b.to_string()));
        let bytes = self.call(method, url, body).await?;
        self.http.parse::<Envelope<T>>(&bytes).map(|e| e.result)
    }

    pub(super) async fn post<T: DeserializeOwned>(
        &self,
        collection: &str,
        rest: &str,
        body: &Value,
    ) -> Result<T, CallError> {
        self.call_result(
            Method::POST,
            &self.collection_url(collection, rest),
            Some(body),
        )
        .await
    }
}

/// A collection name as one URL path segment: names are cw's flags, so only the few
/// characters that would break the URL are escaped.
fn escape_segment(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '/' | '?' | '#' | '%' | ' ' => format!("%{:02X}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_names_are_escaped_in_urls() {
        assert_eq!(escape_segment("team a/instances"), "team%20a%2Finstances");
        assert_eq!(escape_segment("instances-prod_1"), "instances-prod_1");
    }
}
