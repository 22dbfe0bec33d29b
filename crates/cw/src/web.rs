//! The web pages at `/` of `cw serve` and `cw run` (the `web` crate), wired to the server's
//! state and to the clusters it reads live, through the same caller-to-index decision as
//! `/mcp` ([`crate::mcp::caller_index`]). Wiring only; see docs/ui.md.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ::mcp::ClusterAccess;
use ingest::access::identity::Caller;
use ingest::server::AppState;

/// What people and agents reach beside the API, on the same port: the pages and `/mcp`,
/// both reading the clusters in `cluster` live.
pub fn people_and_agents(
    state: &AppState,
    cluster: ClusterAccess,
    stop_mcp: ::mcp::CancellationToken,
    host: &str,
) -> axum::Router {
    route(state, cluster.clone()).merge(crate::mcp::route(state, cluster, stop_mcp, host))
}

/// The pages, their sign-in and assets, to merge beside the API.
fn route(state: &AppState, cluster: ClusterAccess) -> axum::Router {
    let caller_index: web::CallerIndexOf = {
        let (state, cluster) = (state.clone(), cluster.clone());
        Arc::new(move |caller: Caller| {
            let (state, cluster) = (state.clone(), cluster.clone());
            Box::pin(async move { crate::mcp::caller_index(&state, &cluster, &caller).await })
                as Pin<Box<dyn Future<Output = ::mcp::CallerIndex> + Send>>
        })
    };
    web::router(web::Web {
        state: state.clone(),
        live: Some(web::Live {
            cluster,
            caller_index,
        }),
    })
}
