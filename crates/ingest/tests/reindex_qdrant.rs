//! The cases of reindex.rs, unchanged, on the Qdrant test server (common::StoreServer picks
//! it for binaries named `*_qdrant`); its embedded-store cases run here too.

#[path = "reindex.rs"]
mod cases;
