//! The ingest side of cw: turns sync payloads into documents, embeds what changed and
//! writes it to a vector store.

pub mod access;
pub mod capabilities;
pub mod clusters;
pub mod document;
pub mod embed;
pub mod enrich;
pub mod generations;
pub mod metrics;
pub mod parked;
pub mod pipeline;
pub mod retry;
pub mod search;
pub mod server;
pub mod store;
