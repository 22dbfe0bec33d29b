//! The watcher's [`SyncSink`] answered in-process by ingest's [`Pipeline`]: what `cw run`
//! and `cw sync-instances` (without `--endpoint`) use instead of HTTP. The same
//! contract as `POST /api/v1/instances/sync`: invalid payloads are rejected whole,
//! transient store or provider failures are retryable.

use std::collections::HashMap;

use async_trait::async_trait;
use ingest::capabilities::CapabilityPipeline;
use ingest::pipeline::{Pipeline, SyncError};
use sync_model::rbac::AccessSnapshot;
use sync_model::{CapabilitySyncPayload, ClusterId, ResourceId, SyncPayload, SyncResponse};
use watcher::sink::no_capabilities;
use watcher::{SinkError, SyncSink};

pub struct PipelineSink {
    pipeline: Pipeline,
    capabilities: Option<CapabilityPipeline>,
    /// Where the cluster's access rules go (the in-process server's).
    access: Option<ingest::access::AccessRules>,
    /// Every payload belongs to this cluster, and the hashes read are its own.
    cluster: ClusterId,
}

impl PipelineSink {
    pub fn new(pipeline: Pipeline, cluster: ClusterId) -> Self {
        PipelineSink {
            pipeline,
            capabilities: None,
            access: None,
            cluster,
        }
    }

    /// Also answers the capability calls, through `capabilities`.
    pub fn with_capabilities(mut self, capabilities: CapabilityPipeline) -> Self {
        self.capabilities = Some(capabilities);
        self
    }

    /// Also stores the cluster's access rules, in `access`.
    pub fn with_access_rules(mut self, access: ingest::access::AccessRules) -> Self {
        self.access = Some(access);
        self
    }
}

/// What a pipeline failure means to the sender: the same meanings the HTTP sink reads
/// from the server's answers, without going through status codes.
fn sink_error(e: SyncError) -> SinkError {
    match e {
        SyncError::Invalid(details) => SinkError::Invalid {
            error: "invalid sync payload".into(),
            details,
        },
        other if other.is_transient() => SinkError::unavailable(other.to_string()),
        // Not transient and not invalid (e.g. the store refuses to mix embedding models):
        // the same payload cannot succeed, so it is refused with the store's reason.
        other => SinkError::Refused(other.to_string()),
    }
}

#[async_trait]
impl SyncSink for PipelineSink {
    async fn send(&self, payload: &SyncPayload) -> Result<SyncResponse, SinkError> {
        // Upserts the provider or the store refuses on their own are parked by the pipeline
        // (listed, logged, counted) and their batch-mates stored: the batch succeeded.
        let mut payload = payload.clone();
        payload
            .cluster
            .get_or_insert_with(|| self.cluster.to_string());
        let outcome = self
            .pipeline
            .apply_sync(payload)
            .await
            .map_err(sink_error)?;
        Ok(SyncResponse::ok(outcome.upserted, outcome.deleted).with_parked(outcome.parked))
    }

    async fn send_capabilities(
        &self,
        payload: &CapabilitySyncPayload,
    ) -> Result<SyncResponse, SinkError> {
        let Some(capabilities) = &self.capabilities else {
            return Err(no_capabilities());
        };
        let mut payload = payload.clone();
        payload
            .cluster
            .get_or_insert_with(|| self.cluster.to_string());
        let outcome = capabilities.apply_sync(payload).await.map_err(sink_error)?;
        Ok(SyncResponse::ok(outcome.upserted, outcome.deleted))
    }

    async fn send_access(&self, snapshot: &AccessSnapshot) -> Result<(), SinkError> {
        let Some(access) = &self.access else {
            return Err(SinkError::Unsupported(
                "this in-process sink keeps no access rules".into(),
            ));
        };
        access
            .apply(&self.cluster, snapshot)
            .await
            .map(|_| ())
            .map_err(|e| match e {
                ingest::access::rules::RulesError::Store(e) if e.is_transient() => {
                    SinkError::unavailable(e.to_string())
                }
                other => SinkError::Refused(other.to_string()),
            })
    }

    async fn stored_capability_hashes(&self) -> Result<HashMap<String, String>, SinkError> {
        match &self.capabilities {
            Some(capabilities) => capabilities
                .stored_hashes(&self.cluster)
                .await
                .map_err(sink_error),
            None => Err(no_capabilities()),
        }
    }

    async fn stored_hashes(&self) -> Result<HashMap<ResourceId, String>, SinkError> {
        let hashes = self
            .pipeline
            .stored_hashes(&self.cluster)
            .await
            .map_err(sink_error)?;
        Ok(hashes
            .into_iter()
            .map(|(id, hash)| (ResourceId::from_raw(id), hash))
            .collect())
    }
}
