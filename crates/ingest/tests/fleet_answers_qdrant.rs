//! The fleet answers of fleet_answers.rs, unchanged, on the Qdrant store against the Qdrant
//! test server (common::StoreServer picks it for binaries named `*_qdrant`).

#[path = "fleet_answers.rs"]
mod fleet_answers;
