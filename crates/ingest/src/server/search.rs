//! `POST /api/v1/search`: the search API. The body is a [`SearchRequest`] (plus `"ask":
//! true` for the semantic bridge); the answer is `{"results": [...]}` or, with `ask`, the
//! matching types with their instances. `POST /api/v1/search/count`: how many objects
//! match the filters (a [`CountBody`]), optionally grouped by kind or namespace.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use sync_model::FieldError;

use super::{ApiError, AppState};
use crate::search::{SearchBody, SearchError, SearchResults};
use sync_model::search::{CountAnswer, CountBody};

pub async fn search(
    State(state): State<AppState>,
    body: Result<Json<SearchBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(rejected)?;
    let searcher = state.searcher();
    if body.ask {
        let answer = searcher
            .ask(&body.request.query, body.request.limit)
            .await?;
        return Ok(Json(answer).into_response());
    }
    let results = searcher.search(&body.request).await?;
    Ok(Json(SearchResults { results }).into_response())
}

pub async fn count(
    State(state): State<AppState>,
    body: Result<Json<CountBody>, JsonRejection>,
) -> Result<Json<CountAnswer>, ApiError> {
    let Json(body) = body.map_err(rejected)?;
    Ok(Json(state.searcher().count(&body).await?))
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
            e if transient => ApiError::Unavailable(e.to_string()),
            SearchError::Embed(e) => ApiError::BadGateway(e.to_string()),
            SearchError::Store(e) => ApiError::from(e),
        }
    }
}
