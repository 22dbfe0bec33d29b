//! cw for people: the fleet's overview, search and ask, and one object's page, as
//! server-rendered HTML (askama: every value escaped) with a little script and style of our
//! own built into the binary. `cw serve` and `cw run` mount [`router`] at `/` beside the API
//! (the agents' door is `crates/mcp`). Every page reads through the caller's scope, as the
//! API does ([`ingest::server::AppState::searcher_of`]); the object page's live details are
//! MCP's `get_resource` ([`mcp::CwMcp::resource`]). See docs/ui.md.

mod assets;
mod headers;
mod pages;
mod paths;
mod session;
mod state;

use axum::middleware;
use axum::routing::{get, post};
use axum::Router;

pub use headers::CONTENT_SECURITY_POLICY;
pub use paths::{OBJECT, OVERVIEW, OVERVIEW_FRAGMENT, SEARCH, SIGN_IN, SIGN_OUT};
pub use session::SESSION_COOKIE;
pub use state::{CallerIndexOf, Live, Web};

/// The pages, the sign-in and the assets. Pages need a session when the server asks for
/// authentication (else they redirect to the sign-in) and share the API's read slots; every
/// answer carries the security headers ([`headers`]).
pub fn router(web: Web) -> Router {
    let pages = Router::new()
        .route(OVERVIEW, get(pages::overview::page))
        .route(OVERVIEW_FRAGMENT, get(pages::overview::fragment))
        .route(SEARCH, get(pages::search::page))
        .route(OBJECT, get(pages::object::page));
    // The session is checked outside the read slots: a request without one never takes a slot.
    let pages = web
        .state
        .read_admission(pages)
        .layer(middleware::from_fn_with_state(
            web.clone(),
            session::require_session,
        ));
    let open = Router::new()
        .route(SIGN_IN, get(session::sign_in_form).post(session::sign_in))
        .route(SIGN_OUT, post(session::sign_out))
        .route(paths::ASSET, get(assets::serve));
    pages
        .merge(open)
        .layer(middleware::from_fn(headers::secure))
        .with_state(web)
}
