//! The heartbeat: while no batch is sent, an empty sync every interval, so that the ingest
//! server hears from the watcher of a quiet cluster (its "last contact", which `cw clusters`
//! shows and marks STALE when it grows old) and a dead watcher can be told from a live one
//! with nothing to say. An empty payload is a valid sync of the Go controller's contract
//! that changes nothing.

use std::sync::Arc;
use std::time::Duration;

use sync_model::SyncPayload;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::metrics::Metrics;
use crate::sink::SyncSink;

/// Every `interval` (never when it is zero), unless a batch was accepted since the last
/// tick, sends an empty sync; until `cancel` fires.
pub async fn run_heartbeat(
    sink: Arc<dyn SyncSink>,
    interval: Duration,
    metrics: Metrics,
    cancel: CancellationToken,
) {
    if interval.is_zero() {
        return;
    }
    let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut batches = metrics.batches_sent.get();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let sent = metrics.batches_sent.get();
        if sent != batches {
            // The server heard from this watcher meanwhile.
            batches = sent;
            continue;
        }
        match sink.send(&SyncPayload::default()).await {
            Ok(_) => {
                metrics.heartbeats_sent.inc();
                debug!("heartbeat sent");
            }
            Err(e) => warn!(
                error = %e,
                "heartbeat not delivered: the ingest server does not hear from this watcher"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use sync_model::{ResourceId, SyncResponse};

    use crate::sink::SinkError;

    #[derive(Default)]
    struct Recording {
        sent: Mutex<Vec<SyncPayload>>,
    }

    #[async_trait]
    impl SyncSink for Recording {
        async fn send(&self, payload: &SyncPayload) -> Result<SyncResponse, SinkError> {
            self.sent.lock().unwrap().push(payload.clone());
            Ok(SyncResponse::ok(0, 0))
        }
        async fn stored_hashes(&self) -> Result<HashMap<ResourceId, String>, SinkError> {
            Ok(HashMap::new())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_watcher_sends_an_empty_sync_each_interval_and_a_busy_one_none() {
        let sink = Arc::new(Recording::default());
        let metrics = Metrics::new();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run_heartbeat(
            sink.clone(),
            Duration::from_secs(60),
            metrics.clone(),
            cancel.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert!(
            sink.sent.lock().unwrap().is_empty(),
            "none before the first interval"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(*sink.sent.lock().unwrap(), vec![SyncPayload::default()]);
        // A batch sent within the next interval is word enough.
        metrics.batches_sent.inc();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(sink.sent.lock().unwrap().len(), 1);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(sink.sent.lock().unwrap().len(), 2);
        assert_eq!(metrics.heartbeats_sent.get(), 2);
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_interval_of_zero_sends_no_heartbeat() {
        let sink = Arc::new(Recording::default());
        run_heartbeat(
            sink.clone(),
            Duration::ZERO,
            Metrics::new(),
            CancellationToken::new(),
        )
        .await;
        assert!(sink.sent.lock().unwrap().is_empty());
    }
}
