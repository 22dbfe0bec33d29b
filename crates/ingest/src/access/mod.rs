//! Who may read what: each cluster's RBAC as its watcher sends it ([`rules`]), and a
//! caller's grants compiled into the store filters every read carries ([`scope`]).

pub mod rules;
pub mod scope;

pub use rules::AccessRules;
pub use scope::{Scope, ScopedStore};
