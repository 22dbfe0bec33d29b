//! The sync contract tests of sync_api.rs, unchanged, on the Qdrant store against the Qdrant
//! test server (common::StoreServer picks it for binaries named `*_qdrant`).

#[path = "sync_api.rs"]
mod contract;
