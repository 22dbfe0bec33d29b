//! `search_capabilities`: the resource types whose purpose matches a description, from the
//! capabilities collection, without their instances.

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_model::search::{Collection, SearchRequest};

use super::answer::{round, shorten};
use super::index_error;
use super::input::{bounded, non_empty};
use crate::server::CwMcp;

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapabilitiesParams {
    /// What the resource type should do or be: "database", "TLS certificates", "message queue".
    pub query: String,
    /// Types to return, 1 to 20 (default 5).
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapabilitiesAnswer {
    pub types: Vec<TypeLine>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TypeLine {
    /// `plural.group` (`clusters.postgresql.cnpg.io`; `pods` for core types).
    pub id: String,
    pub kind: String,
    /// The API group, empty for core types.
    pub api_group: String,
    pub score: f64,
    /// The start of the type's description: why it matched.
    pub about: String,
}

#[tool_router(router = search_capabilities_router, vis = "pub(super)")]
impl CwMcp {
    #[tool(
        description = "Find which resource types in the cluster can do something: 'database', \
'TLS certificates', 'message queue'. Answers the types (kind, API group, why they match) from \
the cluster's API discovery and CRD schemas, best first, without their instances. Use ask to \
get the types and their running instances in one call.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn search_capabilities(
        &self,
        Parameters(p): Parameters<CapabilitiesParams>,
    ) -> Result<Json<CapabilitiesAnswer>, String> {
        let query = non_empty(Some(&p.query))
            .ok_or("query must not be empty: say what the type should do, e.g. \"database\"")?;
        let limit = bounded(p.limit, 5, 20, "limit")?;
        let hits = self
            .index
            .search(&SearchRequest {
                query,
                collection: Collection::Capabilities,
                limit: Some(limit),
                ..Default::default()
            })
            .await
            .map_err(index_error)?;
        let types = hits
            .into_iter()
            .map(|h| {
                let group = h.id.split_once('.').map(|(_, g)| g).unwrap_or_default();
                TypeLine {
                    api_group: group.to_string(),
                    kind: h.kind,
                    score: round(h.score),
                    about: shorten(&h.document, 200),
                    id: h.id,
                }
            })
            .collect();
        Ok(Json(CapabilitiesAnswer { types }))
    }
}
