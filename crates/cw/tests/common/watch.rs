//! A watcher as `cw watch` runs it, in the test's own process: against a simulated cluster,
//! sending to an ingest server over HTTP, with windows short enough for a test.

use std::sync::Arc;
use std::time::Duration;

use kube_sim::SimHandle;
use sync_model::ClusterId;
use tokio::task::JoinHandle;
use watcher::buffer::BufferConfig;
use watcher::sender::RetryConfig;
use watcher::{
    CancellationToken, HttpSink, Metrics, NamespaceFilter, Shared, TypeFilter, WatchError,
    WatcherSettings,
};

use super::wait_for;

/// A running watcher.
pub struct Watching {
    pub stop: CancellationToken,
    pub task: JoinHandle<Result<(), WatchError>>,
    pub shared: Arc<Shared>,
}

/// Watches `types` (plural names; none: every type not excluded by default), debouncing for
/// `debounce` and flushing every `flush_interval`; retries from 100 ms to 1 s, an hourly
/// resync and no heartbeat.
pub fn settings(types: &[&str], debounce: Duration, flush_interval: Duration) -> WatcherSettings {
    WatcherSettings {
        buffer: BufferConfig {
            debounce,
            flush_interval,
            max_batch: 50,
        },
        retry: RetryConfig {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        },
        types: TypeFilter::new::<&str>(types, &[]),
        namespaces: NamespaceFilter::default(),
        resync_interval: Duration::from_secs(3600),
        shutdown_timeout: Duration::from_secs(10),
        group_discovery_timeout: Duration::from_secs(2),
        forbidden_grace: Duration::from_secs(600),
        heartbeat_interval: Duration::ZERO,
    }
}

/// Starts a watcher of `sim` sending to `sink`; it need not be ready yet.
pub fn spawn(sim: &SimHandle, sink: HttpSink, settings: WatcherSettings) -> Watching {
    let shared = Shared::new(Metrics::new());
    let stop = CancellationToken::new();
    let task = tokio::spawn(watcher::run(
        settings,
        sim.client().expect("the simulator's client"),
        Arc::new(sink),
        shared.clone(),
        stop.clone(),
    ));
    Watching { stop, task, shared }
}

/// [`spawn`], then waits (30 s at most) until the watcher is ready: every type listed once.
pub async fn start(sim: &SimHandle, sink: HttpSink, settings: WatcherSettings) -> Watching {
    let watching = spawn(sim, sink, settings);
    let shared = watching.shared.clone();
    wait_for("the watcher ready", Duration::from_secs(30), || {
        shared.is_ready()
    })
    .await;
    watching
}

/// A watcher of `types` in `sim` (debounce 200 ms, a flush every 100 ms), sending to `base`
/// with `token` as cluster `id`, once it is ready.
pub async fn start_as_cluster(
    sim: &SimHandle,
    types: &[&str],
    base: &str,
    token: &str,
    id: &str,
) -> Watching {
    let settings = settings(
        types,
        Duration::from_millis(200),
        Duration::from_millis(100),
    );
    let sink = HttpSink::new(base, Some(token.to_string()), Duration::from_secs(15))
        .expect("sink")
        .with_cluster(ClusterId::new(id).expect("cluster id"));
    start(sim, sink, settings).await
}

impl Watching {
    /// Stops the watcher as SIGTERM does (pending changes are flushed); it must end well.
    /// Once only: a stopped watcher is replaced, not stopped again.
    pub async fn stop(&mut self) {
        self.stop.cancel();
        (&mut self.task)
            .await
            .expect("the watcher task")
            .expect("the watcher");
    }
}
