//! Whether the ingest server takes this watcher's calls. A refusal of its credentials (no
//! token, a wrong one, or one that may not write its cluster: [`SinkError::Denied`]) is a
//! state, not a string of failed batches: it is logged once when it begins and once when it
//! ends, shown in a gauge and by `/readyz`, and the watcher is not ready while it lasts.
//! [`GuardedSink`] wraps the sink every stage uses, so that every call (batches, hashes,
//! capabilities, access rules) reports what the server answered.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use sync_model::rbac::AccessSnapshot;
use sync_model::{CapabilitySyncPayload, ClusterId, ResourceId, SyncPayload, SyncResponse};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::metrics::Metrics;
use crate::sender::RetryConfig;
use crate::sink::{SinkError, SyncSink};

/// Why the ingest server refuses this watcher, as `/readyz` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The cluster this watcher writes, when its sink names one.
    pub cluster: Option<ClusterId>,
    /// The server's answer: its status and message (`HTTP 403 Forbidden: this token may not
    /// write cluster "b"; it may write: a. Nothing was changed`).
    pub reason: String,
    /// Refused on a write (a sync), not only on a read (the stored hashes): a token that may
    /// read but not write passes the reads, which then say nothing of it.
    pub on_write: bool,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.cluster {
            Some(c) => write!(
                f,
                "the ingest server refuses this watcher (cluster {c}): {}",
                self.reason
            ),
            None => write!(f, "the ingest server refuses this watcher: {}", self.reason),
        }
    }
}

/// The refusal in force, if any; shared with the operations endpoints.
#[derive(Debug, Clone)]
pub struct IngestAccess {
    refusal: Arc<watch::Sender<Option<Refusal>>>,
}

impl Default for IngestAccess {
    fn default() -> Self {
        IngestAccess {
            refusal: Arc::new(watch::Sender::new(None)),
        }
    }
}

impl IngestAccess {
    /// The refusal in force, if any.
    pub fn refusal(&self) -> Option<Refusal> {
        self.refusal.borrow().clone()
    }

    /// Takes in one answer of the server to a write (`write`) or a read: a refusal of the
    /// credentials begins (or changes) the refused state; any other answer that reached the
    /// server's handlers ends it, except a read's answer to a refused write. Each change is
    /// logged once; a repeat is not.
    fn observe(
        &self,
        cluster: Option<&ClusterId>,
        denied: Option<&str>,
        write: bool,
        metrics: &Metrics,
    ) {
        self.refusal.send_if_modified(|current| match (denied, current.as_ref()) {
            (None, Some(was)) if was.on_write && !write => false,
            (Some(reason), was) => {
                if was.is_some_and(|w| w.reason == reason) {
                    return false;
                }
                error!(
                    cluster = cluster.map(ClusterId::as_str),
                    reason,
                    "the ingest server refuses this watcher's credentials: not ready; batches are \
                     kept and retried until it accepts them (fix the token or the server's tokens file)"
                );
                *current = Some(Refusal {
                    cluster: cluster.cloned(),
                    reason: reason.to_string(),
                    on_write: write,
                });
                metrics.ingest_refused.set(1);
                true
            }
            (None, Some(was)) => {
                info!(
                    cluster = cluster.map(ClusterId::as_str),
                    was = %was.reason,
                    "the ingest server accepts this watcher's credentials again"
                );
                *current = None;
                metrics.ingest_refused.set(0);
                true
            }
            (None, None) => false,
        });
    }
}

/// Asks the server whether it lets this watcher write, with an empty sync (which changes
/// nothing): once at start, then, while it refuses, again after each backoff delay. A token
/// that may only read passes the hashes read, and a watcher whose objects are all stored
/// already may send no batch for hours: without the question it would look ready, and
/// with nothing to send it would never learn that a fixed token is accepted again.
pub(crate) async fn ask_while_refused(
    sink: Arc<dyn SyncSink>,
    access: IngestAccess,
    retry: RetryConfig,
    cancel: CancellationToken,
) {
    let mut refused = access.refusal.subscribe();
    let probe = || async {
        // The answer is observed by the guarded sink; nothing else is to be done with it.
        let _ = sink.send(&SyncPayload::default()).await;
    };
    if cancel.run_until_cancelled(probe()).await.is_none() {
        return;
    }
    loop {
        let waited = cancel.run_until_cancelled(refused.wait_for(Option::is_some));
        match waited.await {
            Some(Ok(_)) => {}
            _ => return,
        }
        let mut delays = retry.delays();
        while access.refusal().is_some() {
            let delay = delays.next().unwrap_or(retry.max_delay);
            let next = async {
                tokio::time::sleep(delay).await;
                probe().await;
            };
            if cancel.run_until_cancelled(next).await.is_none() {
                return;
            }
        }
    }
}

/// A sink that reports every answer's access to [`IngestAccess`] and otherwise passes
/// calls through unchanged.
pub struct GuardedSink {
    inner: Arc<dyn SyncSink>,
    access: IngestAccess,
    metrics: Metrics,
}

impl GuardedSink {
    pub fn new(inner: Arc<dyn SyncSink>, access: IngestAccess, metrics: Metrics) -> Self {
        GuardedSink {
            inner,
            access,
            metrics,
        }
    }

    fn observe<T>(&self, answer: Result<T, SinkError>, write: bool) -> Result<T, SinkError> {
        let denied = match &answer {
            Err(SinkError::Denied(reason)) => Some(reason.as_str()),
            // The server's handlers answered: the credentials passed.
            Ok(_)
            | Err(SinkError::Invalid { .. })
            | Err(SinkError::TooLarge(_))
            | Err(SinkError::Unsupported(_)) => None,
            // Unreachable or refused for another reason: says nothing of the credentials.
            Err(SinkError::Unavailable { .. }) | Err(SinkError::Refused(_)) => return answer,
        };
        self.access
            .observe(self.inner.cluster(), denied, write, &self.metrics);
        answer
    }
}

#[async_trait]
impl SyncSink for GuardedSink {
    async fn send(&self, payload: &SyncPayload) -> Result<SyncResponse, SinkError> {
        self.observe(self.inner.send(payload).await, true)
    }

    async fn stored_hashes(&self) -> Result<HashMap<ResourceId, String>, SinkError> {
        self.observe(self.inner.stored_hashes().await, false)
    }

    async fn send_capabilities(
        &self,
        payload: &CapabilitySyncPayload,
    ) -> Result<SyncResponse, SinkError> {
        self.observe(self.inner.send_capabilities(payload).await, true)
    }

    async fn stored_capability_hashes(&self) -> Result<HashMap<String, String>, SinkError> {
        self.observe(self.inner.stored_capability_hashes().await, false)
    }

    async fn send_access(&self, snapshot: &AccessSnapshot) -> Result<(), SinkError> {
        self.observe(self.inner.send_access(snapshot).await, true)
    }

    fn cluster(&self) -> Option<&ClusterId> {
        self.inner.cluster()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Answers each call with the next scripted result.
    struct Scripted(Mutex<Vec<Result<(), SinkError>>>);

    #[async_trait]
    impl SyncSink for Scripted {
        async fn send(&self, _: &SyncPayload) -> Result<SyncResponse, SinkError> {
            self.0.lock().unwrap().remove(0)?;
            Ok(SyncResponse::ok(0, 0))
        }
        async fn stored_hashes(&self) -> Result<HashMap<ResourceId, String>, SinkError> {
            self.0.lock().unwrap().remove(0)?;
            Ok(HashMap::new())
        }
    }

    fn denied(why: &str) -> Result<(), SinkError> {
        Err(SinkError::Denied(why.into()))
    }

    #[tokio::test]
    async fn a_refusal_of_the_credentials_is_a_state_until_the_server_accepts_again() {
        let access = IngestAccess::default();
        let metrics = Metrics::new();
        let script = vec![
            denied("HTTP 403 Forbidden: may not write b"),
            denied("HTTP 403 Forbidden: may not write b"),
            Err(SinkError::unavailable("connection refused")),
            Ok(()),
            Ok(()),
        ];
        let sink = GuardedSink::new(
            Arc::new(Scripted(Mutex::new(script))),
            access.clone(),
            metrics.clone(),
        );
        let payload = SyncPayload::default();
        assert!(sink.send(&payload).await.is_err());
        let refusal = access.refusal().expect("refused");
        assert!(refusal.reason.contains("403"), "{refusal:?}");
        assert_eq!(metrics.ingest_refused.get(), 1);
        assert!(sink.send(&payload).await.is_err());
        // An unreachable server says nothing of the token: still refused; nor does a read
        // that passes (the token may read, not write).
        assert!(sink.stored_hashes().await.is_err());
        assert!(sink.stored_hashes().await.is_ok());
        assert!(access.refusal().is_some());
        assert!(sink.send(&payload).await.is_ok());
        assert_eq!(access.refusal(), None);
        assert_eq!(metrics.ingest_refused.get(), 0);
    }
}
