//! Sink: where batches go. The watcher only knows the [`SyncSink`] trait; [`HttpSink`] POSTs
//! to a `cw serve` ingest server, and `cw run` plugs in a sink that calls the ingest
//! pipeline in-process.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use sync_model::{
    CapabilitySyncPayload, ErrorBody, FieldError, ResourceId, SyncPayload, SyncResponse,
};

/// What a failed send means to the sender.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// 5xx, timeouts, refused connections: retry the same payload later.
    #[error("ingest unavailable: {0}")]
    Retryable(String),
    /// 4xx: the payload (or the token) is wrong; retrying the same payload cannot help.
    #[error("ingest rejected the payload ({status}): {error}")]
    Rejected {
        status: u16,
        error: String,
        details: Vec<FieldError>,
    },
}

impl SinkError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, SinkError::Retryable(_))
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
}

/// What a sink without capabilities answers to the capability calls.
pub fn no_capabilities() -> SinkError {
    SinkError::Rejected {
        status: 501,
        error: "this sink does not store capabilities".into(),
        details: Vec::new(),
    }
}

/// `POST {endpoint}` and `GET {endpoint with /sync replaced by /hashes}` on an ingest server;
/// capabilities go to the same server's `/api/v1/capabilities/{sync,hashes}`.
#[derive(Debug, Clone)]
pub struct HttpSink {
    client: reqwest::Client,
    sync_url: String,
    hashes_url: String,
    /// `None` when the endpoint does not end in `/instances/sync`, so the capability URLs
    /// cannot be derived from it.
    capability_urls: Option<(String, String)>,
    token: Option<String>,
}

#[derive(Deserialize)]
struct HashesBody {
    #[serde(default)]
    hashes: HashMap<ResourceId, String>,
}

impl HttpSink {
    /// `endpoint` is the sync URL (`http://host:3000/api/v1/instances/sync`). Requires a
    /// rustls crypto provider to be installed in the process.
    pub fn new(
        endpoint: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        let sync_url = endpoint.trim_end_matches('/').to_string();
        let hashes_url = match sync_url.strip_suffix("/sync") {
            Some(base) => format!("{base}/hashes"),
            None => format!("{sync_url}/hashes"),
        };
        let capability_urls = sync_url.strip_suffix("/instances/sync").map(|base| {
            (
                format!("{base}/capabilities/sync"),
                format!("{base}/capabilities/hashes"),
            )
        });
        Ok(HttpSink {
            client,
            sync_url,
            hashes_url,
            capability_urls,
            token: token.filter(|t| !t.is_empty()),
        })
    }

    fn authorize(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }
}

/// Maps a non-success answer: 4xx other than 408/429 is a rejection carrying the server's
/// `{"error","details"}`; everything else is worth retrying.
async fn failure(resp: reqwest::Response) -> SinkError {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if status.is_client_error()
        && status != reqwest::StatusCode::REQUEST_TIMEOUT
        && status != reqwest::StatusCode::TOO_MANY_REQUESTS
    {
        let (error, details) = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => (body.error, body.details),
            Err(_) => (text, Vec::new()),
        };
        SinkError::Rejected {
            status: status.as_u16(),
            error,
            details,
        }
    } else {
        SinkError::Retryable(format!(
            "HTTP {status}: {}",
            text.chars().take(300).collect::<String>()
        ))
    }
}

fn transport(e: reqwest::Error) -> SinkError {
    SinkError::Retryable(e.to_string())
}

#[async_trait]
impl SyncSink for HttpSink {
    async fn send(&self, payload: &SyncPayload) -> Result<SyncResponse, SinkError> {
        let resp = self
            .authorize(self.client.post(&self.sync_url).json(payload))
            .send()
            .await
            .map_err(transport)?;
        if !resp.status().is_success() {
            return Err(failure(resp).await);
        }
        resp.json().await.map_err(transport)
    }

    async fn send_capabilities(
        &self,
        payload: &CapabilitySyncPayload,
    ) -> Result<SyncResponse, SinkError> {
        let (url, _) = self.capability_urls.as_ref().ok_or_else(no_capabilities)?;
        let resp = self
            .authorize(self.client.post(url).json(payload))
            .send()
            .await
            .map_err(transport)?;
        if !resp.status().is_success() {
            return Err(failure(resp).await);
        }
        resp.json().await.map_err(transport)
    }

    async fn stored_capability_hashes(&self) -> Result<HashMap<String, String>, SinkError> {
        let (_, url) = self.capability_urls.as_ref().ok_or_else(no_capabilities)?;
        let resp = self
            .authorize(self.client.get(url))
            .send()
            .await
            .map_err(transport)?;
        if !resp.status().is_success() {
            return Err(failure(resp).await);
        }
        #[derive(Deserialize)]
        struct Body {
            #[serde(default)]
            hashes: HashMap<String, String>,
        }
        Ok(resp.json::<Body>().await.map_err(transport)?.hashes)
    }

    async fn stored_hashes(&self) -> Result<HashMap<ResourceId, String>, SinkError> {
        let resp = self
            .authorize(self.client.get(&self.hashes_url))
            .send()
            .await
            .map_err(transport)?;
        if !resp.status().is_success() {
            return Err(failure(resp).await);
        }
        Ok(resp.json::<HashesBody>().await.map_err(transport)?.hashes)
    }
}
