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

use rmcp::handler::server::router::tool::ToolRouter;

use crate::index::IndexError;
use crate::server::CwMcp;

pub use search_resources::{DEFAULT_PAGE, MAX_ANSWER_BYTES, MAX_PAGE};

/// The ranked search reads at most this many hits; pages stop there.
pub const RANKING_WINDOW: usize = 1_000;

/// Every tool, as the server routes them.
pub(crate) fn router() -> ToolRouter<CwMcp> {
    CwMcp::search_resources_router()
        + CwMcp::search_capabilities_router()
        + CwMcp::ask_router()
        + CwMcp::get_resource_router()
        + CwMcp::list_clusters_router()
}

pub(super) fn index_error(e: IndexError) -> String {
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
