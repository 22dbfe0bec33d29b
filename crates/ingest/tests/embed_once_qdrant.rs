//! The cases of embed_once.rs, unchanged, on the Qdrant test server (common::StoreServer
//! picks it for binaries named `*_qdrant`); its embedded-store cases run here too.

#[path = "embed_once.rs"]
mod cases;
