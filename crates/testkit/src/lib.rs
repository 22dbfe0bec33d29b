//! Test support for cw. Nothing in production depends on this crate.
//!
//! - [`ChromaServer`]: the real Chroma server (from the workspace's `.venv`) on a free
//!   loopback port, with its own data directory, stopped on drop.
//! - [`QdrantServer`]: a Qdrant-compatible REST server on Qdrant's own embedded engine
//!   (`qdrant/server.py`), on a free loopback port, stopped on drop.
//! - [`PythonServer`]: what both are, one process of the `.venv` (URL, stop, restart).
//! - [`VoyageStandin`]: a local server speaking Voyage AI's `/v1/embeddings` wire format,
//!   with deterministic vectors, request counters and injectable failures.
//! - [`LlmStandin`]: an OpenAI-compatible chat API answering a fixed enrichment, with
//!   request counters and injectable failures.

pub mod chroma;
mod in_process;
pub mod llm;
pub mod python_server;
pub mod qdrant;
pub mod voyage;

pub use chroma::ChromaServer;
pub use llm::LlmStandin;
pub use python_server::PythonServer;
pub use qdrant::QdrantServer;
pub use voyage::{embed_text, Failure, StandinStats, VoyageStandin};

/// A free loopback port: bind port 0, read the port, release it.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot bind a loopback port: {e}"))
}
