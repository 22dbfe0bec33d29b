//! Access: who is asking ([`identity`]: the `Caller` of every request, from the shared token,
//! the tokens file, OIDC ID tokens or the fleet's ServiceAccount tokens), each cluster's RBAC
//! as its watcher sends it ([`rules`]), and a caller's grants compiled into the store filters
//! every read carries ([`scope`]).

pub mod identity;
pub mod rules;
pub mod scope;

pub use rules::AccessRules;
pub use scope::{Scope, ScopedStore};
