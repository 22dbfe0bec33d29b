//! Retiring a cluster (`DELETE /api/v1/clusters/{name}`, `cw clusters remove`): its
//! instances, its place on the lists of the resource types it served (a type no other
//! cluster serves goes with it) and its record, in one call. Idempotent: a second call, or
//! one for a cluster the index never held, removes nothing and says so with zeros.
//!
//! A watcher still running for the cluster puts it back with its next sync or heartbeat:
//! stop it (or revoke its token) first.

use sync_model::api::ClusterRemoved;
use sync_model::ClusterId;

use crate::capabilities::CapabilityPipeline;
use crate::pipeline::{Pipeline, SyncError};

/// Removes `cluster` from the store: instances, capability memberships, then its record
/// (last, so that a removal cut short leaves the cluster listed, and a retry finishes it).
pub async fn retire(
    instances: &Pipeline,
    capabilities: &CapabilityPipeline,
    cluster: &ClusterId,
) -> Result<ClusterRemoved, SyncError> {
    let removed_instances = instances.remove_cluster(cluster).await?;
    let (types_left, types_deleted) = capabilities.remove_cluster(cluster).await?;
    let record = instances.registry().forget(cluster).await?;
    let removed = ClusterRemoved {
        cluster: cluster.clone(),
        instances: removed_instances,
        types_left,
        types_deleted,
        record,
    };
    tracing::info!(
        %cluster,
        instances = removed.instances,
        types_left,
        types_deleted,
        record,
        "cluster retired"
    );
    Ok(removed)
}
