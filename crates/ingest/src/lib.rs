//! The ingest side of cw: turns sync payloads into documents, embeds what changed and
//! writes it to a vector store.

pub mod embed;
pub mod store;
pub mod document;
pub mod metrics;
pub mod pipeline;
pub mod server;
