//! The MCP server: five tools (in `tools`, one module each) and one prompt (`prompt`) over an
//! [`Index`] and the clusters it can read live ([`ClusterAccess`]). Each tool answers compact
//! structured JSON; every failure is a tool error (`isError`) whose message says what to
//! change or try.

use std::sync::Arc;

use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{CallToolRequestParams, CallToolResponse, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{prompt_handler, tool_handler, ErrorData, RoleServer, ServerHandler};

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

/// The index as one HTTP caller may read it: put in the request's extensions by whoever
/// authenticated the request (cw's `/mcp` route), and used by every tool of that call in
/// place of the server's own. Over stdio there is no caller but the user who started it.
#[derive(Clone)]
pub struct CallerIndex {
    pub index: Arc<dyn Index>,
    /// What the caller may read live; `None` for the server's own connections (an
    /// operator's).
    pub cluster: Option<ClusterAccess>,
}

impl CwMcp {
    /// The index of this call's caller, when the request carried one.
    fn caller_index(context: &RequestContext<RoleServer>) -> Option<CallerIndex> {
        let parts = context.extensions.get::<http::request::Parts>()?;
        parts.extensions.get::<CallerIndex>().cloned()
    }
}

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for CwMcp {
    /// Each call runs over its caller's index ([`CallerIndex`]) when the request names one:
    /// a session's calls may come with different credentials, and each is answered as its
    /// own caller may see.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let scoped;
        let server = match Self::caller_index(&context) {
            Some(caller) => {
                scoped = CwMcp {
                    index: caller.index,
                    cluster: caller.cluster.unwrap_or_else(|| self.cluster.clone()),
                    ..self.clone()
                };
                &scoped
            }
            None => self,
        };
        let call = ToolCallContext::new(server, request, context);
        server.tool_router.call(call).await
    }

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
