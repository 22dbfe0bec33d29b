//! The pages' paths, named once: routes, redirects and templates' links use these.

pub const OVERVIEW: &str = "/";
/// The overview's clusters and types, as a fragment the overview's script fetches.
pub const OVERVIEW_FRAGMENT: &str = "/ui/overview";
pub const SEARCH: &str = "/search";
pub const OBJECT: &str = "/object";
pub const SIGN_IN: &str = "/sign-in";
pub const SIGN_OUT: &str = "/sign-out";
/// Built-in assets, by a name that holds their content hash.
pub const ASSET: &str = "/static/{file}";
pub const ASSET_PREFIX: &str = "/static/";
