//! `POST /api/v1/search`: the search API. The body is a [`SearchRequest`] (plus `"ask":
//! true` for the semantic bridge); the answer is `{"results": [...]}` or, with `ask`, the
//! matching types with their instances. `POST /api/v1/search/count`: how many objects
//! match the filters (a [`CountBody`]), optionally grouped by kind or namespace.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use sync_model::{api, ErrorBody, FieldError};

use super::{ApiError, AppState};
use crate::access::identity::Caller;
use crate::search::{SearchBody, SearchError, SearchResults};
use sync_model::search::{CountAnswer, CountBody};

/// Search the index (semantic, keyword or hybrid), or with `"ask": true` find the
/// resource types that answer a question, then their instances.
#[utoipa::path(
    post,
    path = api::SEARCH,
    tag = "search",
    request_body = SearchBody,
    responses(
        (status = 200, body = super::schema::SearchAnswer),
        (status = 400, description = "A request the search cannot answer (empty query, bad limit or filter)", body = ErrorBody),
        (status = 401, description = "Missing, unknown, expired, wrongly signed or wrong-audience bearer token; `details` says which (never the token)", body = ErrorBody),
        (status = 403, description = "A user whose RBAC grants hold in no cluster of the index: they may read nothing", body = ErrorBody),
                (status = 404, description = "`cluster` names a cluster the index holds nothing of; `details` names the known ones", body = ErrorBody),
        (status = 415, description = "Content type other than JSON", body = ErrorBody),
        (status = 500, body = ErrorBody),
        (status = 502, description = "The embedding provider refuses every call (key, model)", body = ErrorBody),
        (status = 503, description = "Store or provider unavailable, or no read slot freed in time: retry", body = ErrorBody),
    )
)]
pub async fn search(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<SearchBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(rejected)?;
    let searcher = state.searcher_of(&caller).await;
    if body.ask {
        let answer = searcher
            .ask_in(
                &body.request.query,
                body.request.limit,
                body.request.cluster.as_deref(),
                body.request.health,
            )
            .await?;
        return Ok(Json(answer).into_response());
    }
    let results: SearchResults = searcher.search_page(&body.request).await?;
    Ok(Json(results).into_response())
}

/// Count the objects that match the filters, optionally grouped by kind or namespace:
/// totals without similarity ranking, for "how many" questions.
#[utoipa::path(
    post,
    path = api::SEARCH_COUNT,
    tag = "search",
    request_body = CountBody,
    responses(
        (status = 200, body = CountAnswer),
        (status = 400, description = "A filter the count cannot apply", body = ErrorBody),
        (status = 401, description = "Missing, unknown, expired, wrongly signed or wrong-audience bearer token; `details` says which (never the token)", body = ErrorBody),
        (status = 403, description = "A user whose RBAC grants hold in no cluster of the index: they may read nothing", body = ErrorBody),
                (status = 404, description = "`cluster` names a cluster the index holds nothing of; `details` names the known ones", body = ErrorBody),
        (status = 415, description = "Content type other than JSON", body = ErrorBody),
        (status = 500, body = ErrorBody),
        (status = 503, description = "Store unavailable, or no read slot freed in time: retry", body = ErrorBody),
    )
)]
pub async fn count(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<CountBody>, JsonRejection>,
) -> Result<Json<CountAnswer>, ApiError> {
    let Json(body) = body.map_err(rejected)?;
    Ok(Json(state.searcher_of(&caller).await.count(&body).await?))
}

/// Every cluster in the index: its object count, its objects by health where the index
/// records health, its last sync and last contact (kept in the store) and whether it is
/// stale (not heard from for longer than `CW_STALE_AFTER_SECS`).
#[utoipa::path(
    get,
    path = api::CLUSTERS,
    tag = "search",
    responses(
        (status = 200, body = api::ClustersResponse),
        (status = 401, description = "Missing, unknown, expired, wrongly signed or wrong-audience bearer token; `details` says which (never the token)", body = ErrorBody),
        (status = 403, description = "A user whose RBAC grants hold in no cluster of the index: they may read nothing", body = ErrorBody),
                (status = 500, body = ErrorBody),
        (status = 503, description = "Store unavailable, or no read slot freed in time: retry", body = ErrorBody),
    )
)]
pub async fn clusters(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<api::ClustersResponse>, ApiError> {
    let searcher = state.searcher_of(&caller).await;
    Ok(Json(searcher.clusters(state.stale_after()).await?))
}

fn rejected(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType { got: None },
        other => ApiError::BadRequest {
            error: "request body is not a valid search request".into(),
            details: vec![FieldError {
                field: "body".into(),
                message: other.body_text(),
            }],
        },
    }
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> Self {
        let transient = e.is_transient();
        match e {
            SearchError::BadRequest(m) => ApiError::BadRequest {
                error: m,
                details: vec![],
            },
            SearchError::UnknownCluster { cluster, known } => {
                ApiError::UnknownCluster { cluster, known }
            }
            e @ SearchError::NothingVisible { .. } => ApiError::NothingVisible(e.to_string()),
            // The provider refuses this query's text (e.g. too long): the caller's to fix.
            SearchError::Embed(crate::embed::EmbedError::Rejected(m)) => ApiError::BadRequest {
                error: format!("the embedding provider refuses this query: {m}"),
                details: vec![FieldError {
                    field: "query".into(),
                    message: m,
                }],
            },
            e if transient => ApiError::Unavailable(e.to_string()),
            SearchError::Embed(e) => ApiError::BadGateway(e.to_string()),
            SearchError::Store(e) => ApiError::from(e),
        }
    }
}
