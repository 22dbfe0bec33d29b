//! Resync: re-discovers and re-lists every watched type and makes the store equal the
//! cluster (changed or missing documents are re-sent, documents of objects that no longer
//! exist are deleted), and brings the capability records up to date. Periodic or on request.

use std::collections::HashMap;

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sync_model::ResourceId;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{info, info_span, warn, Instrument};

use crate::capabilities::{sync_capabilities, CapabilityReport};
use crate::context::Context;
use crate::discovery::{DiscoveryScope, ResourceType};

use crate::source::list_type;
use crate::tracker::{Input, ResyncCounts};
use crate::watches::Watches;

/// Objects per list request of a resync.
const PAGE_SIZE: u32 = 500;

/// What a resync found and did; the body of `POST /api/v1/resync`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResyncReport {
    pub types: usize,
    pub listed: usize,
    pub unchanged: usize,
    pub upserted: usize,
    pub deleted: usize,
    /// Objects changing while listed; their watches send them.
    pub in_flight: usize,
    pub duration_ms: u64,
    /// The capability records' part; absent when the resync was of instances only (or the
    /// capability sync failed and was left to the background retries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<CapabilityReport>,
}

/// What a resync covers: `POST /api/v1/resync?only=instances|capabilities`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResyncScope {
    #[default]
    All,
    Instances,
    Capabilities,
}

impl ResyncScope {
    fn instances(self) -> bool {
        self != ResyncScope::Capabilities
    }
    fn capabilities(self) -> bool {
        self != ResyncScope::Instances
    }
}

/// A request for a resync and where its report goes.
pub(crate) type ResyncRequest = (ResyncScope, oneshot::Sender<ResyncReport>);

/// Runs one resync of `scope` over the watches (which it first brings up to date).
pub(crate) async fn resync(watches: &mut Watches, scope: ResyncScope) -> ResyncReport {
    let started = Instant::now();
    let span = info_span!("resync", ?scope);
    async {
        let mut report = ResyncReport::default();
        if scope.capabilities() {
            report.capabilities = resync_capabilities(watches).await;
            if !scope.instances() {
                report.types = watches.len();
                report.duration_ms = started.elapsed().as_millis() as u64;
                return report;
            }
        }
        let ctx = watches.context().clone();
        let stored = match ctx.hashes.read(ctx.sink.as_ref()).await {
            Ok(s) => Arc::new(s),
            Err(e) => {
                warn!(error = %e, "resync: cannot read the store's hashes");
                return report;
            }
        };
        if !scope.capabilities() {
            if let Err(e) = watches.rediscover(&DiscoveryScope::All).await {
                warn!(error = %e, "resync: discovery failed; listing the known types");
            }
        }
        let types = watches.types();
        report.types = types.len();
        relist(&ctx, &types, &stored, &mut report).await;
        report.deleted = delete_ghosts(&ctx, stored).await;
        report.duration_ms = started.elapsed().as_millis() as u64;
        ctx.metrics
            .resync_seconds
            .observe(started.elapsed().as_secs_f64());
        info!(?report, "resync done");
        report
    }
    .instrument(span)
    .await
}

/// Re-discovers the types and syncs their capability records now. A failed sync is left to
/// the capability sync's background retries, and then reports nothing.
async fn resync_capabilities(watches: &mut Watches) -> Option<CapabilityReport> {
    // The records are synced right here, so the refreshed types are not published (that
    // would sync them a second time in the background).
    if let Err(e) = watches.refresh(&DiscoveryScope::All).await {
        warn!(error = %e, "resync: discovery failed; using the known types");
    }
    let ctx = watches.context();
    let watched = watches.watched_types();
    match sync_capabilities(&ctx.client, ctx.sink.as_ref(), &watched).await {
        Ok(c) => {
            ctx.metrics.capability_syncs.inc();
            ctx.metrics
                .capability_records_sent
                .inc_by((c.upserted + c.deleted) as u64);
            Some(c)
        }
        Err(e) => {
            warn!(error = %e, "resync: capability sync failed; retrying in the background");
            watches.publish_types();
            None
        }
    }
}

/// Lists every type and has change detection compare each page with the store: the
/// listed, unchanged, re-sent and in-flight counts go into `report`.
async fn relist(
    ctx: &Context,
    types: &[ResourceType],
    stored: &Arc<HashMap<ResourceId, String>>,
    report: &mut ResyncReport,
) {
    let counts = Mutex::new(ResyncCounts::default());
    for ty in types {
        let listed = list_type(
            &ctx.client,
            ty,
            &ctx.settings.namespaces,
            PAGE_SIZE,
            |page| {
                let stored = stored.clone();
                let counts = &counts;
                async move {
                    let (tx, rx) = oneshot::channel();
                    let input = Input::ResyncPage {
                        stored,
                        page,
                        reply: tx,
                    };
                    if ctx.inputs.send(input).await.is_ok() {
                        if let (Ok(c), Ok(mut total)) = (rx.await, counts.lock()) {
                            total.unchanged += c.unchanged;
                            total.upserted += c.upserted;
                            total.in_flight += c.in_flight;
                        }
                    }
                }
            },
        )
        .await;
        match listed {
            Ok(n) => report.listed += n,
            Err(e) => warn!(resource_type = %ty.key(), error = %e, "resync: listing failed"),
        }
    }
    let counts = counts.into_inner().unwrap_or_default();
    report.unchanged = counts.unchanged;
    report.upserted = counts.upserted;
    report.in_flight = counts.in_flight;
}

/// Has change detection delete the stored documents of objects it does not know; how many.
async fn delete_ghosts(ctx: &Context, stored: Arc<HashMap<ResourceId, String>>) -> usize {
    let (tx, rx) = oneshot::channel();
    if ctx
        .inputs
        .send(Input::ResyncGhosts { stored, reply: tx })
        .await
        .is_ok()
    {
        rx.await.unwrap_or(0)
    } else {
        0
    }
}
