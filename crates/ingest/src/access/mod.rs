//! Access: who is asking ([`identity`]: the `Caller` of every request, from the shared token,
//! the tokens file, OIDC ID tokens or the fleet's ServiceAccount tokens), and what they may
//! read.

pub mod identity;
