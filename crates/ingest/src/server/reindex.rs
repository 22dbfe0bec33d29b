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
use sync_model::ClusterId;

use super::{operators_only, ApiError, AppState};
use crate::access::identity::{Access, Caller};
use crate::generations::reindex::{Reindex, ReindexOptions, ReindexProgress, ReindexStatus};
use crate::generations::IndexRecord;

pub use sync_model::api::REINDEX;

/// What `POST /api/v1/reindex` takes (all optional).
#[derive(Debug, Default, Deserialize)]
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

pub(super) async fn status(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ReindexAnswer>, ApiError> {
    operators_only(&caller, "read the reindex status")?;
    Ok(Json(answer(&state).await?))
}

pub(super) async fn start(
    State(state): State<AppState>,
    caller: Caller,
    body: Option<Json<ReindexRequest>>,
) -> Result<(StatusCode, Json<ReindexAnswer>), ApiError> {
    if caller.operator() != Some(&Access::All) {
        return Err(ApiError::NeedsEveryCluster {
            action: "reindex".into(),
            may_write: caller.describe_writes(),
        });
    }
    let request = body.map(|Json(b)| b).unwrap_or_default();
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
