//! The ingest side of cw: turns sync payloads into documents, embeds what changed and
//! writes it to a vector store.

pub mod embed;
pub mod store;
