//! What can stop the watcher as a whole. The stages' own errors stay with them (`SinkError`
//! in the sink, `DeliveryError` in the sender, `CapabilityError`, `ExtractError`,
//! `SyncError` of the one-shot run); this one is what `run` returns to the binary.

use std::time::Duration;

/// What can stop the watcher.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("this watcher's shared state is already used by a running watcher")]
    AlreadyRunning,
    #[error("shutdown timeout ({0:?}) reached with changes still pending")]
    ShutdownTimeout(Duration),
}
