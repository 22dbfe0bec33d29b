//! `POST /api/v1/reindex` (an operator's token that may write every cluster, like cluster
//! removal): builds the next index generation in this server, for its embedding model and
//! the current layout, while it keeps serving (its syncs go to both generations), then
//! switches. `GET /api/v1/reindex`: the generation record and the counts of the running or
//! last reindex. A change of model is made with `cw reindex` and the new model's flags.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sync_model::{ClusterId, ErrorBody};

use super::{operators_only, ApiError, AppState};
use crate::access::identity::{Access, Caller};
use crate::generations::reindex::{Reindex, ReindexOptions, ReindexProgress, ReindexStatus};
use crate::generations::IndexRecord;

pub use sync_model::api::REINDEX;

/// What `POST /api/v1/reindex` takes (all optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReindexRequest {
    /// The cluster that documents written before cluster ids belong to.
    #[serde(default)]
    pub cluster_for_legacy: Option<String>,
}

/// What both answer.
#[derive(Debug, Serialize)]
pub struct ReindexAnswer {
    /// The generations the store records (`null` before the first reindex).
    pub record: Option<IndexRecord>,
    /// The running or last reindex of this server.
    pub run: Option<ReindexStatus>,
}

async fn answer(state: &AppState) -> Result<ReindexAnswer, ApiError> {
    let active = state.active()?;
    Ok(ReindexAnswer {
        record: active.generations().read().await?,
        run: state.reindex_progress().map(|p| p.status()),
    })
}

/// The index generations the store records and the counts of this server's running or
/// last reindex.
#[utoipa::path(
    get,
    path = REINDEX,
    tag = "index",
    responses(
        (status = 200, description = "`{record: {active, building, previous} | null, run: {phase, generation, total, done, skipped, embedded, reused, copied, fixed, error?} | null}`"),
        (status = 401, description = "Missing, unknown, expired, wrongly signed or wrong-audience bearer token; `details` says which (never the token)", body = ErrorBody),
        (status = 403, description = "A user's token: the reindex is for operators' tokens", body = ErrorBody),
        (status = 503, description = "Store unavailable, or at the write limit: retry", body = ErrorBody),
    )
)]
pub(super) async fn status(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ReindexAnswer>, ApiError> {
    operators_only(&caller, "read the reindex status")?;
    Ok(Json(answer(&state).await?))
}

/// Build the next index generation in this server, for its embedding model and the current
/// layout, from what the store holds, then switch to it; searches are answered meanwhile and
/// syncs are written to both generations. Answers at once; `GET` follows it.
#[utoipa::path(
    post,
    path = REINDEX,
    tag = "index",
    request_body(content = ReindexRequest, content_type = "application/json", description = "Optional (an empty body is the default): the cluster of the documents of an index written before cluster ids"),
    responses(
        (status = 202, description = "Started; the answer of `GET` with the run's first counts"),
        (status = 400, description = "Malformed clusterForLegacy", body = ErrorBody),
        (status = 401, description = "Missing, unknown, expired, wrongly signed or wrong-audience bearer token; `details` says which (never the token)", body = ErrorBody),
        (status = 403, description = "The token may not write every cluster (only the shared token or a `*` token may reindex)", body = ErrorBody),
        (status = 409, description = "A reindex is running already", body = ErrorBody),
        (status = 503, description = "Store unavailable, or at the write limit: retry", body = ErrorBody),
    )
)]
pub(super) async fn start(
    State(state): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<ReindexAnswer>), ApiError> {
    if caller.operator() != Some(&Access::All) {
        return Err(ApiError::NeedsEveryCluster {
            action: "reindex".into(),
            may_write: caller.describe_writes(),
        });
    }
    let request: ReindexRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReindexRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest {
            error: format!("the reindex request is not {{\"clusterForLegacy\": NAME}}: {e}"),
            details: vec![],
        })?
    };
    let legacy_cluster = match request.cluster_for_legacy.as_deref() {
        None => None,
        Some(name) => Some(ClusterId::new(name).map_err(|e| ApiError::BadRequest {
            error: e.to_string(),
            details: vec![sync_model::FieldError {
                field: "clusterForLegacy".into(),
                message: "not a cluster id".into(),
            }],
        })?),
    };
    let active = state.active()?.clone();
    let progress = Arc::new(ReindexProgress::default());
    state.begin_reindex(progress.clone())?;
    let reindex = Reindex::new(
        active.generations().clone(),
        state.pipeline().embedder().clone(),
    )
    .with_active(active)
    .with_options(ReindexOptions {
        legacy_cluster,
        page: None,
    })
    .with_progress(progress)
    .with_metrics(state.pipeline().metrics().clone());
    tokio::spawn(async move {
        match reindex.run().await {
            Ok(done) => tracing::info!(
                from = done.from.number,
                to = done.to.number,
                "reindex finished"
            ),
            Err(e) => tracing::error!(error = %e, "reindex failed; run it again to resume"),
        }
    });
    Ok((StatusCode::ACCEPTED, Json(answer(&state).await?)))
}
