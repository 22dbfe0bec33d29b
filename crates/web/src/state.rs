//! What every page needs: the server's state (the store, the authenticator, the scopes) and
//! the live reads behind the object page.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::FromRef;
use ingest::access::identity::{Authenticator, Caller};
use ingest::server::AppState;

/// What `caller` reads live through, as the `/mcp` route gives it to their tool calls:
/// their index, and the connections that act as them (`None`: the server's own, an
/// operator's). cw supplies it, so that the pages and MCP decide it in one place.
pub type CallerIndexOf =
    Arc<dyn Fn(Caller) -> Pin<Box<dyn Future<Output = mcp::CallerIndex> + Send>> + Send + Sync>;

/// The live reads behind the object page: the server's connections and how a caller's
/// are made.
#[derive(Clone)]
pub struct Live {
    pub cluster: mcp::ClusterAccess,
    pub caller_index: CallerIndexOf,
}

/// What every page needs: the server's state (the store, the authenticator, the scopes)
/// and, where the server reads clusters live, the connections.
#[derive(Clone)]
pub struct Web {
    pub state: AppState,
    /// `None`: no live details (the object page shows what the index holds).
    pub live: Option<Live>,
}

impl FromRef<Web> for Arc<Authenticator> {
    fn from_ref(web: &Web) -> Self {
        web.state.authenticator().clone()
    }
}
