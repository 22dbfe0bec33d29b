//! The MCP server: five tools (in `tools`, one module each) and one prompt (`prompt`) over an
//! [`Index`] and the clusters it can read live ([`ClusterAccess`]). Each tool answers compact
//! structured JSON; every failure is a tool error (`isError`) whose message says what to
//! change or try.

use std::sync::Arc;

use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::{prompt_handler, tool_handler, ServerHandler};

use crate::cluster::ClusterAccess;
use crate::index::Index;

/// cw's MCP server. Cheap to clone: the Streamable HTTP service makes one per session.
#[derive(Clone)]
pub struct CwMcp {
    pub(crate) index: Arc<dyn Index>,
    pub(crate) cluster: ClusterAccess,
    pub(crate) tool_router: ToolRouter<Self>,
    pub(crate) prompt_router: PromptRouter<Self>,
}

const INSTRUCTIONS: &str = concat!(
    "cw keeps a searchable index of what runs in Kubernetes clusters. \
Start with ask (a question in plain words: the resource types that answer it and their \
instances) or search_resources (filters and free text; mode=count or group_by to size a result \
before listing it). Hits carry an id: pass it to get_resource for live status, conditions, \
events and owners. search_resources pages its hits: follow nextCursor only when you need more. \
Every answer is at most 16 KiB.",
    crate::untrusted::cluster_text_rule!()
);

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for CwMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .build(),
        )
        .with_instructions(INSTRUCTIONS)
    }
}
