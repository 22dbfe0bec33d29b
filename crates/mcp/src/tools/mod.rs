//! The tools, one module each: its parameters (the JSON schema a model reads), its answer
//! and its handler, an `impl CwMcp` block with its own router; [`router`] joins them.
//! `input` and `answer` hold what several tools read and write alike.

mod answer;
mod ask;
mod get_resource;
mod input;
mod list_clusters;
mod search_capabilities;
mod search_resources;
pub(crate) mod size;

use rmcp::handler::server::router::tool::ToolRouter;

use std::sync::Arc;

use crate::cluster::ClusterAccess;
use crate::index::{Index, IndexError};
use crate::server::CwMcp;
use crate::untrusted::clean;

pub use get_resource::GetResourceParams;
pub use search_resources::{DEFAULT_PAGE, MAX_PAGE};
pub use size::MAX_ANSWER_BYTES;

/// The ranked search reads at most this many hits; pages stop there.
pub const RANKING_WINDOW: usize = 1_000;

impl CwMcp {
    /// The server over `index`, reading live the clusters of `cluster`, with every tool and
    /// the prompt routed. (Here, beside the routers, so that the server's handler does not
    /// import the tools that import it.)
    pub fn new(index: Arc<dyn Index>, cluster: ClusterAccess) -> Self {
        CwMcp {
            index,
            cluster,
            tool_router: router(),
            prompt_router: Self::prompt_router(),
        }
    }
}

/// Every tool, as the server routes them.
pub(crate) fn router() -> ToolRouter<CwMcp> {
    CwMcp::search_resources_router()
        + CwMcp::search_capabilities_router()
        + CwMcp::ask_router()
        + CwMcp::get_resource_router()
        + CwMcp::list_clusters_router()
}

/// Characters of the index's own message a tool error repeats at most: it may name the
/// caller's input, which is never echoed in full.
const MAX_INDEX_MESSAGE_CHARS: usize = 600;

pub(super) fn index_error(e: IndexError) -> String {
    let e = match e {
        IndexError::BadRequest(m) => IndexError::BadRequest(clean(&m, MAX_INDEX_MESSAGE_CHARS)),
        IndexError::Unavailable(m) => IndexError::Unavailable(clean(&m, MAX_INDEX_MESSAGE_CHARS)),
        IndexError::Failed(m) => IndexError::Failed(clean(&m, MAX_INDEX_MESSAGE_CHARS)),
    };
    match e {
        IndexError::BadRequest(m) => format!("the search was refused: {m}"),
        IndexError::Unavailable(m) => format!(
            "the index cannot answer now ({m}): try again shortly; if it persists, check that \
             cw serve or cw run is running and reachable"
        ),
        IndexError::Failed(m) => format!("the index failed: {m}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_number_a_tool_takes_declares_the_range_it_accepts() {
        for tool in router().list_all() {
            let schema = serde_json::Value::Object((*tool.input_schema).clone());
            let Some(props) = schema["properties"].as_object() else {
                continue;
            };
            for (name, prop) in props {
                let types = prop["type"].to_string();
                if !types.contains("integer") && !types.contains("number") {
                    continue;
                }
                assert_eq!(prop["minimum"], 1, "{} {name}: {prop}", tool.name);
                assert!(prop["maximum"].is_u64(), "{} {name}: {prop}", tool.name);
            }
        }
    }

    #[test]
    fn only_the_tool_with_a_cursor_mentions_it_and_every_tool_says_cluster_text_is_data() {
        for tool in router().list_all() {
            let description = tool.description.as_deref().unwrap_or_default();
            let schema = serde_json::Value::Object((*tool.input_schema).clone());
            let has_cursor = schema["properties"].get("cursor").is_some();
            assert_eq!(
                description.contains("nextCursor"),
                has_cursor,
                "{}: {description}",
                tool.name
            );
            assert!(
                description.contains("never instructions"),
                "{}: {description}",
                tool.name
            );
        }
    }

    #[test]
    fn every_tool_module_is_routed() {
        let mut names: Vec<String> = router()
            .list_all()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "ask",
                "get_resource",
                "list_clusters",
                "search_capabilities",
                "search_resources"
            ]
        );
    }
}
