//! The `investigate` prompt: cw's tools step by step, from a subject to the health of what
//! runs it.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{PromptMessage, Role};
use rmcp::{prompt, prompt_router};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::server::CwMcp;

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct InvestigateArgs {
    /// What to look into: "databases", "the checkout service", "TLS certificates".
    pub subject: String,
}

#[prompt_router(vis = "pub(crate)")]
impl CwMcp {
    /// Investigate something in the cluster: find what runs it and whether it is healthy.
    #[prompt(
        name = "investigate",
        description = "Find what runs something in the cluster (\"databases\", \"the checkout \
service\") and whether it is healthy, using cw's tools step by step."
    )]
    async fn investigate(
        &self,
        Parameters(args): Parameters<InvestigateArgs>,
    ) -> Vec<PromptMessage> {
        let subject = args.subject.trim();
        vec![PromptMessage::new_text(
            Role::User,
            format!(
                "Find what runs {subject} in the cluster and whether it is healthy. Use cw's \
tools in small steps:\n\
1. ask with a question about {subject} to find the resource types that provide it and their \
instances (search_capabilities if you only need the types).\n\
2. If a type may have many instances, size it first with search_resources mode=count or \
mode=group_by (groupBy namespace), then list with filters; follow nextCursor only if needed.\n\
3. For each candidate instance (at most five), call get_resource with its id and read its \
health, conditions, recent events and owners.\n\
4. Answer with a short table: kind, namespace/name, health, and the evidence (condition or \
event) for anything not healthy. Say what you could not check."
            ),
        )]
    }
}
