//! `POST /api/v1/access/sync`: a cluster's access rules ([`AccessSnapshot`]) from its
//! watcher, stored whole for every replica ([`crate::access::rules`]); and the scope a read
//! is answered in.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;
use sync_model::rbac::AccessSnapshot;
use sync_model::{api, ErrorBody};

use super::{check_write, heard_from, json_body, parse_json, ApiError, AppState};
use crate::access::identity::Caller;
use crate::access::rules::RulesError;

/// What the server holds for the cluster after a sync of its access rules.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessSyncResponse {
    pub cluster: String,
    /// Roles, ClusterRoles, RoleBindings and ClusterRoleBindings held.
    pub objects: usize,
    /// Resource types the cluster serves, as held.
    pub types: usize,
    /// The ServiceAccount token issuer held, if the watcher could read it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

/// Replace what the server holds of a cluster's access rules: its Roles, ClusterRoles and
/// bindings, the types it serves and its ServiceAccount token issuer. Whole each time.
#[utoipa::path(
    post,
    path = api::ACCESS_SYNC,
    tag = "access",
    request_body = AccessSnapshot,
    responses(
        (status = 200, description = "Stored; answers read from now on apply them", body = AccessSyncResponse),
        (status = 400, description = "Malformed JSON or cluster id; nothing stored", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 403, description = "The token may not write this cluster; nothing stored", body = ErrorBody),
        (status = 413, description = "Body over the size limit", body = ErrorBody),
        (status = 415, description = "Content type other than JSON", body = ErrorBody),
        (status = 503, description = "Store unavailable, or at the concurrency limit: retry", body = ErrorBody),
    )
)]
pub async fn sync_access(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AccessSyncResponse>, ApiError> {
    let body = json_body(&state, &headers, body)?;
    let snapshot: AccessSnapshot = parse_json(&body)?;
    drop(body);
    let cluster = state
        .inner
        .pipeline
        .cluster_of(snapshot.cluster.as_deref())?;
    check_write(&caller, &cluster)?;
    let rules = state
        .inner
        .access_rules
        .apply(&cluster, &snapshot)
        .await
        .map_err(|e| match e {
            RulesError::Store(e) => ApiError::from(e),
            RulesError::Encode(e) => ApiError::BadRequest {
                error: format!("the access rules cannot be stored: {e}"),
                details: vec![],
            },
        })?;
    heard_from(&state, &caller, &cluster).await;
    Ok(Json(AccessSyncResponse {
        cluster: cluster.to_string(),
        objects: rules.objects,
        types: rules.types.len(),
        issuer: rules.issuer.as_ref().map(|i| i.issuer.clone()),
    }))
}
