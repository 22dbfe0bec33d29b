//! `POST /api/v1/capabilities/sync` and `GET /api/v1/capabilities/hashes`: the same
//! answers as the instances endpoints (200, 400, 401, 413, 415, 503), over the
//! [`CapabilityPipeline`](crate::capabilities::CapabilityPipeline).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use sync_model::{CapabilitySyncPayload, SyncResponse};

use sync_model::api::HashesResponse;

use super::{json_body, parse_json, ApiError, AppState};

pub(super) async fn sync_capabilities(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SyncResponse>, ApiError> {
    let body = json_body(&state, &headers, body)?;
    let payload: CapabilitySyncPayload = parse_json(&body)?;
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

pub(super) async fn capability_hashes(
    State(state): State<AppState>,
) -> Result<Json<HashesResponse>, ApiError> {
    let hashes = state.capabilities().stored_hashes().await?;
    Ok(Json(HashesResponse { hashes }))
}
