//! Admission: how many API requests are served at once, reads and writes apart, so that a
//! full write load (every watcher syncing at once) can never turn a read into a 503.
//!
//! - **Writes** (instance and capability syncs, both hashes reads, cluster removal) may each
//!   hold a 16 MiB body and its copies: at most `max_concurrent_writes` at once
//!   (`CW_MAX_CONCURRENT_WRITES`); more are answered 503 with `Retry-After` at once, before
//!   the body is read (queueing them would only move the memory problem; watchers retry).
//! - **Reads** (search, ask, count, the clusters list, parked, MCP `/mcp`) hold a small body
//!   and a page of hits, but CPU (a question is embedded): at most `max_concurrent_reads`
//!   at once (`CW_MAX_CONCURRENT_READS`); more wait for a slot up to [`READ_QUEUE_WAIT`],
//!   and only then are answered 503 with `Retry-After`.
//!
//! Sizing (docs/ingest.md, "Load bound"): writes by memory (four maximum-size syncs fit the
//! chart's 256Mi), reads by cores (a query's embedding on the local model is CPU work; more
//! slots than a few per core only share the same cores).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{ApiError, AppState};

/// Four maximum-size syncs at once stay within the chart's 256Mi memory limit (measured in
/// docs/ingest.md, "Load bound").
pub const DEFAULT_MAX_CONCURRENT_WRITES: usize = 4;

/// Reads served at once: a few per core of a small pod; the rest wait in line.
pub const DEFAULT_MAX_CONCURRENT_READS: usize = 8;

/// How long a read waits for a slot before it is answered 503.
pub const READ_QUEUE_WAIT: Duration = Duration::from_secs(10);

/// What a shed write is told to wait: about one sync's time.
pub const WRITE_RETRY_AFTER_SECS: u64 = 2;
/// What a shed read is told to wait.
pub const READ_RETRY_AFTER_SECS: u64 = 1;

/// Which slots a request takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Read,
    Write,
}

impl Class {
    /// The plural the error says ("serving 4 writes").
    pub fn plural(self) -> &'static str {
        match self {
            Class::Read => "reads",
            Class::Write => "writes",
        }
    }

    /// The setting that raises its limit.
    pub fn setting(self) -> &'static str {
        match self {
            Class::Read => "CW_MAX_CONCURRENT_READS",
            Class::Write => "CW_MAX_CONCURRENT_WRITES",
        }
    }
}

/// The two sets of slots.
pub(super) struct Admission {
    reads: Arc<Semaphore>,
    writes: Arc<Semaphore>,
    max_reads: usize,
    max_writes: usize,
}

impl Admission {
    pub(super) fn new(max_reads: usize, max_writes: usize) -> Self {
        let (max_reads, max_writes) = (max_reads.max(1), max_writes.max(1));
        Admission {
            reads: Arc::new(Semaphore::new(max_reads)),
            writes: Arc::new(Semaphore::new(max_writes)),
            max_reads,
            max_writes,
        }
    }

    /// A slot of `class`, or the 503 to answer: writes are shed at once, reads after
    /// waiting `read_wait` for a slot.
    async fn admit(
        &self,
        class: Class,
        read_wait: Duration,
    ) -> Result<OwnedSemaphorePermit, ApiError> {
        let permit = match class {
            Class::Write => self.writes.clone().try_acquire_owned().ok(),
            Class::Read => tokio::time::timeout(read_wait, self.reads.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok),
        };
        permit.ok_or(ApiError::Overloaded {
            class,
            limit: match class {
                Class::Read => self.max_reads,
                Class::Write => self.max_writes,
            },
            retry_after_secs: match class {
                Class::Read => READ_RETRY_AFTER_SECS,
                Class::Write => WRITE_RETRY_AFTER_SECS,
            },
        })
    }
}

/// The layer of the write routes.
pub(super) async fn admit_write(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    admitted(&state, Class::Write, req, next).await
}

/// The layer of the read routes (and of `/mcp`).
pub(super) async fn admit_read(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    admitted(&state, Class::Read, req, next).await
}

/// Serves `req` in a slot of `class`, held until the answer is produced, or answers 503.
async fn admitted(state: &AppState, class: Class, req: Request, next: Next) -> Response {
    let inner = &state.inner;
    let metrics = inner.pipeline.metrics();
    let _slot = match inner.admission.admit(class, inner.read_queue_wait).await {
        Ok(slot) => slot,
        Err(refusal) => {
            metrics.requests_shed.inc();
            tracing::warn!(
                class = class.plural(),
                path = %req.uri().path(),
                "at the concurrency limit: request shed with 503"
            );
            return refusal.into_response();
        }
    };
    metrics.requests_in_flight.inc();
    let resp = next.run(req).await;
    metrics.requests_in_flight.dec();
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_write_load_leaves_every_read_slot_free() {
        let admission = Admission::new(2, 1);
        let _write = admission
            .admit(Class::Write, Duration::ZERO)
            .await
            .expect("a write slot");
        assert!(matches!(
            admission.admit(Class::Write, Duration::ZERO).await,
            Err(ApiError::Overloaded {
                class: Class::Write,
                limit: 1,
                retry_after_secs: 2
            })
        ));
        let a = admission.admit(Class::Read, Duration::ZERO).await;
        let b = admission.admit(Class::Read, Duration::ZERO).await;
        assert!(a.is_ok() && b.is_ok());
    }

    #[tokio::test]
    async fn a_read_waits_for_a_slot_before_it_is_turned_away() {
        let wait = Duration::from_millis(500);
        let admission = Arc::new(Admission::new(1, 1));
        let held = admission.admit(Class::Read, Duration::ZERO).await.unwrap();
        let waiting = {
            let admission = admission.clone();
            tokio::spawn(async move { admission.admit(Class::Read, wait).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(held);
        assert!(
            waiting.await.unwrap().is_ok(),
            "served once the slot is free"
        );
        let _held = admission.admit(Class::Read, Duration::ZERO).await.unwrap();
        let refused = admission.admit(Class::Read, wait).await;
        assert!(matches!(
            refused,
            Err(ApiError::Overloaded {
                class: Class::Read,
                retry_after_secs: 1,
                ..
            })
        ));
    }
}
