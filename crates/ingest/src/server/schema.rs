//! Shapes of the HTTP API that exist only for its OpenAPI document (`openapi.rs`): the
//! handlers answer them through generic or untagged types that the schema derive cannot
//! read. Handlers name them in their `#[utoipa::path]` annotations, and the document lists
//! them, so both import from here.

use std::collections::HashMap;

use sync_model::search::{AskAnswer, SearchResults};
use utoipa::ToSchema;

/// `{"hashes": {id: contentHash}}` (sync_model::api::HashesResponse).
#[derive(ToSchema)]
#[allow(dead_code)] // Read by the schema derive only.
pub(crate) struct HashesResponse {
    hashes: HashMap<String, String>,
}

/// A plain search answers `results`; `"ask": true` answers the matching types.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // Read by the schema derive only.
pub(crate) enum SearchAnswer {
    Results(SearchResults),
    Ask(AskAnswer),
}
