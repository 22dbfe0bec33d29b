//! `POST /api/v1/capabilities/sync` and `GET /api/v1/capabilities/hashes`: the same
//! answers as the instances endpoints (200, 400, 401, 413, 415, 503), over the
//! [`CapabilityPipeline`](crate::capabilities::CapabilityPipeline).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use sync_model::{CapabilitySyncPayload, ErrorBody, SyncResponse};

use sync_model::api::{self, HashesQuery, HashesResponse};

use super::{json_body, parse_json, ApiError, AppState};
use crate::access::identity::Caller;

/// Apply a capability sync payload (one record per resource type).
#[utoipa::path(
    post,
    path = api::CAPABILITIES_SYNC,
    tag = "capabilities",
    request_body = CapabilitySyncPayload,
    responses(
        (status = 200, body = SyncResponse),
        (status = 400, description = "Malformed JSON or a payload that breaks the contract; nothing changed", body = ErrorBody),
        (status = 401, description = "Missing, unknown, expired, wrongly signed or wrong-audience bearer token; `details` says which (never the token)", body = ErrorBody),
        (status = 403, description = "The token may not write this payload's cluster; nothing changed", body = ErrorBody),
        (status = 413, description = "Body over the size limit", body = ErrorBody),
        (status = 415, description = "Content type other than JSON", body = ErrorBody),
        (status = 500, description = "The collection holds another model's vectors", body = ErrorBody),
        (status = 502, description = "The embedding provider refuses every call (key, model)", body = ErrorBody),
        (status = 503, description = "Store or provider unavailable, or at the concurrency limit: retry", body = ErrorBody),
    )
)]
pub(super) async fn sync_capabilities(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SyncResponse>, ApiError> {
    let body = json_body(&state, &headers, body)?;
    let payload: CapabilitySyncPayload = parse_json(&body)?;
    drop(body);
    let cluster = state
        .capabilities()
        .cluster_of(payload.cluster.as_deref())?;
    super::check_write(&caller, &cluster)?;
    let outcome = state.capabilities().apply_sync(payload).await?;
    tracing::info!(
        upserted = outcome.upserted,
        deleted = outcome.deleted,
        embedded = outcome.embedded,
        unchanged = outcome.unchanged,
        "capability sync applied"
    );
    Ok(Json(SyncResponse::ok(outcome.upserted, outcome.deleted)))
}

/// Every type one cluster serves, with the content hash of the capability as it sent it.
#[utoipa::path(
    get,
    path = api::CAPABILITIES_HASHES,
    tag = "capabilities",
    params(("cluster" = Option<String>, Query, pattern = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", description = "The cluster whose types are listed; the server's default cluster when absent")),
    responses(
        (status = 200, body = super::schema::HashesResponse),
        (status = 400, description = "Malformed cluster id", body = ErrorBody),
        (status = 401, description = "Missing, unknown, expired, wrongly signed or wrong-audience bearer token; `details` says which (never the token)", body = ErrorBody),
        (status = 403, description = "A user's token: hashes are for operators' and watchers' tokens", body = ErrorBody),
        (status = 500, body = ErrorBody),
        (status = 503, description = "Store unavailable, or at the concurrency limit: retry", body = ErrorBody),
    )
)]
pub(super) async fn capability_hashes(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<HashesQuery>,
) -> Result<Json<HashesResponse>, ApiError> {
    super::operators_only(&caller, "read the stored hashes")?;
    let capabilities = state.capabilities();
    let cluster = capabilities.cluster_of(query.cluster.as_deref())?;
    let hashes = capabilities.stored_hashes(&cluster).await?;
    super::heard_from(&state, &caller, &cluster).await;
    Ok(Json(HashesResponse { hashes }))
}
