//! Sink: where batches go. The watcher only knows the [`SyncSink`] trait and what a failed
//! call means ([`SinkError`]); [`HttpSink`] POSTs to a `cw serve` ingest server and is the
//! one place where HTTP statuses become those meanings. `cw run` plugs in a sink that calls
//! the ingest pipeline in-process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tracing::warn;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sync_model::api::{self, HashesResponse};
use sync_model::rbac::AccessSnapshot;
use sync_model::{
    CapabilitySyncPayload, ClusterId, ErrorBody, FieldError, ResourceId, SyncPayload, SyncResponse,
};

/// What a failed call means, whatever the sink: the sender's retry-or-split decision
/// (`sender::on_failure`) reads only this.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// The destination cannot take it now (down, overloaded, timed out): the same call
    /// may succeed later.
    #[error("ingest unavailable: {reason}")]
    Unavailable {
        reason: String,
        /// How long the destination asked to be left alone, if it said.
        retry_after: Option<Duration>,
    },
    /// The payload breaks the contract; `details` name the items and fields at fault.
    #[error("ingest rejected the payload as invalid: {error}")]
    Invalid {
        error: String,
        details: Vec<FieldError>,
    },
    /// The payload is larger than the destination takes: smaller ones may pass.
    #[error("ingest rejected the payload as too large: {0}")]
    TooLarge(String),
    /// The destination refuses this sender's credentials: no token, a wrong one, or one
    /// that may not write this cluster. Nothing it sends is taken until an operator changes
    /// the token (or the server's tokens file): the controller keeps its batches, retries
    /// them slowly and is not ready meanwhile (`access`); one-shot commands give up.
    #[error("ingest refused this sender's credentials: {0}")]
    Denied(String),
    /// Refused for a reason no item explains (a store filled by another model, a conflict):
    /// neither retrying nor splitting can help.
    #[error("ingest refused the call: {0}")]
    Refused(String),
    /// The destination does not offer this call (a sink without capabilities, a server
    /// without the hashes endpoint).
    #[error("not supported by the ingest side: {0}")]
    Unsupported(String),
}

impl SinkError {
    /// Unavailable now, with no hint of when to come back.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        SinkError::Unavailable {
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, SinkError::Unavailable { .. })
    }

    pub fn is_denied(&self) -> bool {
        matches!(self, SinkError::Denied(_))
    }
}

#[async_trait]
pub trait SyncSink: Send + Sync {
    /// Applies one batch: deletes, then upserts.
    async fn send(&self, payload: &SyncPayload) -> Result<SyncResponse, SinkError>;

    /// Every stored instance id with the `ResourceInstance::content_hash()` of what is stored.
    async fn stored_hashes(&self) -> Result<HashMap<ResourceId, String>, SinkError>;

    /// Applies capability changes (one record per resource type): deletes, then upserts.
    /// Sinks that keep no capabilities refuse, and the watcher then syncs instances only.
    async fn send_capabilities(
        &self,
        _payload: &CapabilitySyncPayload,
    ) -> Result<SyncResponse, SinkError> {
        Err(no_capabilities())
    }

    /// Every stored capability id with the `Capability::content_hash()` of what is stored.
    async fn stored_capability_hashes(&self) -> Result<HashMap<String, String>, SinkError> {
        Err(no_capabilities())
    }

    /// Replaces the server's copy of this cluster's access rules (its RBAC objects, types
    /// and token issuer) with `snapshot`. Sinks that keep none refuse.
    async fn send_access(&self, _snapshot: &AccessSnapshot) -> Result<(), SinkError> {
        Err(SinkError::Unsupported(
            "this sink does not take access rules".into(),
        ))
    }

    /// The cluster this sink writes, when it names one (for what the watcher reports).
    fn cluster(&self) -> Option<&ClusterId> {
        None
    }
}

/// What a sink without capabilities answers to the capability calls.
pub fn no_capabilities() -> SinkError {
    SinkError::Unsupported("this sink does not store capabilities".into())
}

/// An ingest server over HTTP: every URL is built from one base URL and the paths of
/// [`sync_model::api`]. With a cluster, every payload names it and the hashes are that
/// cluster's, so that this sender's diffs can only delete its own cluster's documents.
#[derive(Debug, Clone)]
pub struct HttpSink {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
    cluster: Option<ClusterId>,
}

/// A payload sent for a cluster: the payload's fields with `"cluster"` beside them, without
/// copying the payload.
#[derive(Serialize)]
struct InCluster<'a, P: Serialize> {
    cluster: &'a ClusterId,
    #[serde(flatten)]
    payload: &'a P,
}

impl HttpSink {
    /// `endpoint` is the server's base URL (`http://host:port`) or, as the Go controller's
    /// REST_ENDPOINT is, its sync URL (`http://host:port/api/v1/instances/sync`). Requires
    /// a rustls crypto provider to be installed in the process.
    pub fn new(
        endpoint: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(HttpSink {
            client,
            base: api::base_url(endpoint).to_string(),
            token: token
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
            cluster: None,
        })
    }

    /// Sends for `cluster`: payloads name it and the hashes read are its own.
    pub fn with_cluster(mut self, cluster: ClusterId) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// POSTs `payload`, naming this sink's cluster unless the payload names one itself.
    async fn post_for_cluster<P: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        payload: &P,
        names_cluster: bool,
    ) -> Result<T, SinkError> {
        match &self.cluster {
            Some(cluster) if !names_cluster => {
                self.post(path, &InCluster { cluster, payload }).await
            }
            _ => self.post(path, payload).await,
        }
    }

    async fn get_hashes<T: DeserializeOwned>(&self, path: &str) -> Result<T, SinkError> {
        let url = api::hashes_url(&self.base, path, self.cluster.as_ref());
        self.call(self.client.get(url)).await
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, SinkError> {
        let req = self.client.post(api::url(&self.base, path)).json(body);
        self.call(req).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, SinkError> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await.map_err(transport)?;
        if !resp.status().is_success() {
            return Err(failure(resp).await);
        }
        resp.json().await.map_err(transport)
    }
}

/// The one mapping of HTTP answers to what they mean for the sender.
async fn failure(resp: reqwest::Response) -> SinkError {
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = resp.text().await.unwrap_or_default();
    let (error, details) = match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => (body.error, body.details),
        Err(_) => (text.chars().take(300).collect(), Vec::new()),
    };
    let error = format!("HTTP {status}: {error}");
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
            SinkError::Invalid { error, details }
        }
        StatusCode::PAYLOAD_TOO_LARGE => SinkError::TooLarge(error),
        // A server that does not know the route (or the method): an older or other ingest
        // server, e.g. one without the hashes endpoints.
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED => {
            SinkError::Unsupported(error)
        }
        // The credentials, not the batch: a missing or wrong token, or one that may not
        // write this cluster.
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => SinkError::Denied(error),
        StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => SinkError::Unavailable {
            reason: error,
            retry_after,
        },
        s if s.is_client_error() => SinkError::Refused(error),
        _ => SinkError::Unavailable {
            reason: error,
            retry_after,
        },
    }
}

fn transport(e: reqwest::Error) -> SinkError {
    SinkError::unavailable(e.to_string())
}

#[async_trait]
impl SyncSink for HttpSink {
    async fn send(&self, payload: &SyncPayload) -> Result<SyncResponse, SinkError> {
        self.post_for_cluster(api::INSTANCES_SYNC, payload, payload.cluster.is_some())
            .await
    }

    async fn stored_hashes(&self) -> Result<HashMap<ResourceId, String>, SinkError> {
        let body: HashesResponse<ResourceId> = self.get_hashes(api::INSTANCES_HASHES).await?;
        Ok(body.hashes)
    }

    async fn send_capabilities(
        &self,
        payload: &CapabilitySyncPayload,
    ) -> Result<SyncResponse, SinkError> {
        self.post_for_cluster(api::CAPABILITIES_SYNC, payload, payload.cluster.is_some())
            .await
    }

    async fn stored_capability_hashes(&self) -> Result<HashMap<String, String>, SinkError> {
        let body: HashesResponse = self.get_hashes(api::CAPABILITIES_HASHES).await?;
        Ok(body.hashes)
    }

    async fn send_access(&self, snapshot: &AccessSnapshot) -> Result<(), SinkError> {
        // Whatever the server answers besides its status is not needed.
        let _: serde::de::IgnoredAny = self
            .post_for_cluster(api::ACCESS_SYNC, snapshot, snapshot.cluster.is_some())
            .await?;
        Ok(())
    }

    fn cluster(&self) -> Option<&ClusterId> {
        self.cluster.as_ref()
    }
}

/// Reads the store's content hashes, at start and at each resync. A server without the
/// hashes endpoint (the TypeScript cluster-whisperer ingest answers 404) is worked around
/// instead of retried forever: the watcher logs once that ghosts cannot be removed, and
/// goes on as if the store were empty, so every listed object is sent as an upsert.
#[derive(Debug, Default)]
pub(crate) struct StoredHashes {
    unsupported: AtomicBool,
}

impl StoredHashes {
    pub async fn read(
        &self,
        sink: &dyn SyncSink,
    ) -> Result<HashMap<ResourceId, String>, SinkError> {
        match sink.stored_hashes().await {
            Err(SinkError::Unsupported(reason)) => {
                if !self.unsupported.swap(true, Ordering::Relaxed) {
                    warn!(
                        reason = %reason,
                        "the ingest server cannot list its stored hashes: documents of objects deleted while the watcher was down cannot be removed, and every listed object is sent as an upsert"
                    );
                }
                Ok(HashMap::new())
            }
            other => other,
        }
    }
}
