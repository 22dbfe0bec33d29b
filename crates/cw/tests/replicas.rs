//! Two `cw serve` replicas (the binary) on one store, as a Deployment of two behind one
//! Service runs them: on the real Chroma and on the Qdrant test server, with the Voyage
//! stand-in.
//! - Clusters synced through different replicas: both answer every search, the clusters
//!   list and the parked list the same; an object parked by one replica and stored through
//!   the other leaves both lists.
//! - A watcher sends through a Service-like proxy that spreads its connections over both;
//!   one replica is killed (SIGKILL) mid-batch: once the watcher's retries settle, every
//!   object is stored, counted and searchable, and the replica restarted on the same store
//!   answers the same.
//! - SIGTERM with a drain: `/readyz` answers 503 while the server still serves.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::watch;
use common::CwProcess;
use kube_sim::{SimConfig, SimServer};
use serde_json::{json, Value};
use sync_model::ClusterId;
use testkit::{ChromaServer, QdrantServer, VoyageStandin};
use watcher::HttpSink;

/// The stand-in refuses inputs longer than this, as a provider's model limit does.
const MODEL_MAX_CHARS: usize = 6_000;

/// The store both replicas share, kept alive for the test.
struct SharedStore {
    env: Vec<(&'static str, String)>,
    _server: Box<dyn std::any::Any + Send>,
}

async fn chroma() -> SharedStore {
    let chroma = tokio::task::spawn_blocking(ChromaServer::start)
        .await
        .expect("start Chroma");
    SharedStore {
        env: vec![("CHROMA_URL", chroma.url())],
        _server: Box::new(chroma),
    }
}

async fn qdrant() -> SharedStore {
    let qdrant = tokio::task::spawn_blocking(QdrantServer::start)
        .await
        .expect("start the Qdrant test server");
    SharedStore {
        env: vec![("QDRANT_URL", qdrant.url())],
        _server: Box::new(qdrant),
    }
}

/// The environment of a replica: the shared store, the stand-in as Voyage, its own data
/// directory (which a remote store leaves empty).
fn replica_env(
    store: &SharedStore,
    voyage: &VoyageStandin,
    data: &Path,
) -> Vec<(&'static str, String)> {
    let mut env = store.env.clone();
    env.extend([
        ("CW_DATA_DIR", data.display().to_string()),
        ("CW_EMBEDDING_PROVIDER", "voyage".into()),
        ("VOYAGE_API_KEY", "test".into()),
        ("VOYAGE_BASE_URL", voyage.base_url()),
    ]);
    env
}

/// A replica on `port` (a free one when `None`), ready.
async fn start_replica(
    port: Option<u16>,
    work: &Path,
    env: &[(&'static str, String)],
) -> CwProcess {
    let mut cw = match port {
        Some(port) => CwProcess::serve_on(port, work, env),
        None => CwProcess::serve(work, env),
    };
    cw.wait_ready().await;
    cw
}

fn deployment_instance(name: &str, tier: &str, description: &str) -> Value {
    json!({
        "id": format!("shop/apps/v1/Deployment/{name}"),
        "namespace": "shop", "name": name, "kind": "Deployment",
        "apiVersion": "apps/v1", "apiGroup": "apps",
        "labels": {"app": name, "tier": tier},
        "annotations": {"description": description},
        "createdAt": "2026-02-20T10:00:00Z",
    })
}

/// `cluster`'s objects: a web front end, a database, a queue and, with `huge`, an object
/// whose description the provider refuses.
fn cluster_payload(cluster: &str, huge: bool) -> Value {
    let mut upserts = vec![
        deployment_instance("web", "frontend", "storefront web server (nginx)"),
        deployment_instance("orders-db", "data", "PostgreSQL database of orders"),
        deployment_instance("events", "data", "Kafka queue of order events"),
        deployment_instance(
            &format!("{cluster}-only"),
            "batch",
            "nightly report generator",
        ),
    ];
    if huge {
        let description = "settings for a very chatty team ".repeat(40 * 1024 / 32);
        upserts.push(deployment_instance("chatty", "batch", &description));
    }
    json!({"cluster": cluster, "upserts": upserts})
}

/// Search answers as (cluster, id) of each hit, best first.
async fn answers(cw: &CwProcess, body: &Value) -> Vec<(String, String)> {
    let answer = cw.post_json("/api/v1/search", body.clone()).await;
    answer["results"]
        .as_array()
        .unwrap_or_else(|| panic!("search answer: {answer}"))
        .iter()
        .map(|h| {
            (
                h["cluster"].as_str().unwrap_or_default().to_string(),
                h["id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// `GET /api/v1/clusters` without the ages (they count seconds to each answer).
async fn clusters(cw: &CwProcess) -> Value {
    let mut list = cw.get_json("/api/v1/clusters").await;
    if let Some(items) = list["clusters"].as_array_mut() {
        for c in items {
            if let Some(c) = c.as_object_mut() {
                c.remove("lastSyncAgeSecs");
                c.remove("lastContactAgeSecs");
            }
        }
    }
    list
}

/// Polls until `a` and `b` give equal, non-empty answers to `read` (a cluster record's time
/// may be written between the two reads), or fails with both.
async fn same_on_both<T: PartialEq + std::fmt::Debug>(
    what: &str,
    a: &CwProcess,
    b: &CwProcess,
    read: impl AsyncFn(&CwProcess) -> T,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (x, y) = (read(a).await, read(b).await);
        if x == y {
            return x;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the replicas answer differently:\n{x:?}\n{y:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn replicas_give_the_same_answers_and_the_same_parked_list(store: SharedStore) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let voyage = VoyageStandin::start().await;
    voyage.refuse_inputs_longer_than(MODEL_MAX_CHARS);
    let (work_a, work_b, data) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let env = replica_env(&store, &voyage, data.path());
    let a = start_replica(None, work_a.path(), &env).await;
    let mut b = start_replica(None, work_b.path(), &env).await;

    // East syncs through one replica, west (with the object the provider refuses) through
    // the other.
    let east = a
        .post_json("/api/v1/instances/sync", cluster_payload("east", false))
        .await;
    assert_eq!(east["upserted"], 4, "{east}");
    let west = b
        .post_json("/api/v1/instances/sync", cluster_payload("west", true))
        .await;
    assert_eq!(west["upserted"], 4, "{west}");
    assert_eq!(west["parked"][0]["id"], "shop/apps/v1/Deployment/chatty");

    for query in [
        json!({"query": "database of orders"}),
        json!({"query": "web server", "mode": "semantic"}),
        json!({"query": "queue", "cluster": "west"}),
        json!({"query": "report", "labels": ["tier=batch"]}),
    ] {
        let hits = same_on_both(&format!("search {query}"), &a, &b, async |cw| {
            answers(cw, &query).await
        })
        .await;
        assert!(!hits.is_empty(), "{query} answers nothing");
    }
    // A fleet question is asked of each cluster: both clusters answer on both replicas.
    let fleet = answers(&a, &json!({"query": "database of orders"})).await;
    for cluster in ["east", "west"] {
        assert!(
            fleet.contains(&(cluster.into(), "shop/apps/v1/Deployment/orders-db".into())),
            "{fleet:?}"
        );
    }

    let listed = same_on_both("GET /api/v1/clusters", &a, &b, async |cw| {
        clusters(cw).await
    })
    .await;
    let counts: Vec<(&str, u64)> = listed["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["objects"].as_u64().unwrap()))
        .collect();
    assert_eq!(counts, [("east", 4), ("west", 4)], "{listed}");

    // Parked by one replica, listed by both, and by a restarted one.
    let parked = same_on_both("the parked list", &a, &b, async |cw| cw.parked().await).await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0]["id"], "shop/apps/v1/Deployment/chatty");
    assert_eq!(parked[0]["cluster"], "west");
    let port_b = testkit_port(&b);
    b.child.kill().expect("kill replica b");
    b.child.wait().expect("reap replica b");
    let b = start_replica(Some(port_b), work_b.path(), &env).await;
    assert_eq!(b.parked().await, parked, "a restart keeps the parked list");

    // Its next version fits the model: stored through the other replica, it leaves both.
    let fixed = json!({"cluster": "west", "upserts": [
        deployment_instance("chatty", "batch", "now a short description")
    ]});
    let answer = a.post_json("/api/v1/instances/sync", fixed).await;
    assert!(answer.get("parked").is_none(), "{answer}");
    assert!(a.parked().await.is_empty());
    assert!(b.parked().await.is_empty());
    let listed = same_on_both("GET /api/v1/clusters", &a, &b, async |cw| {
        clusters(cw).await
    })
    .await;
    assert_eq!(listed["clusters"][1]["objects"], 5, "{listed}");
}

/// The port a replica listens on.
fn testkit_port(cw: &CwProcess) -> u16 {
    cw.base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port in the base URL")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_chroma_answer_alike_and_share_the_parked_list() {
    replicas_give_the_same_answers_and_the_same_parked_list(chroma().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_qdrant_answer_alike_and_share_the_parked_list() {
    replicas_give_the_same_answers_and_the_same_parked_list(qdrant().await).await;
}

/// A Service in front of the replicas: each connection goes to the next replica in turn,
/// or to the next one that accepts when that one does not (a dead pod's endpoint).
async fn service(backends: Vec<SocketAddr>) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let task = tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let (backends, next) = (backends.clone(), next.clone());
            tokio::spawn(async move {
                let first = next.fetch_add(1, Ordering::Relaxed);
                for i in 0..backends.len() {
                    let backend = backends[(first + i) % backends.len()];
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        return;
                    }
                }
            });
        }
    });
    (addr, task)
}

fn deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    })
}

/// Objects of the killed replica's test: a dozen batches of the watcher's 50.
const OBJECTS: usize = 600;

async fn a_replica_killed_mid_batch_loses_nothing(store: SharedStore) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let voyage = VoyageStandin::start().await;
    // Each embedding call takes a while, so that a batch is in flight when the kill comes.
    voyage.set_delay(Duration::from_millis(150));
    let (work_a, work_b, data) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let env = replica_env(&store, &voyage, data.path());
    let mut a = start_replica(None, work_a.path(), &env).await;
    let b = start_replica(None, work_b.path(), &env).await;
    let port_a = testkit_port(&a);
    let backends: Vec<SocketAddr> = [&a, &b]
        .iter()
        .map(|cw| cw.base.trim_start_matches("http://").parse().unwrap())
        .collect();
    let (service_addr, _service) = service(backends).await;

    let sim = SimServer::start(SimConfig::default()).await.unwrap();
    for i in 0..OBJECTS {
        sim.create(deployment(&format!("app-{i}"))).unwrap();
    }
    let cluster = ClusterId::new("fleet-1").unwrap();
    let sink = HttpSink::new(
        &format!("http://{service_addr}"),
        None,
        Duration::from_secs(30),
    )
    .unwrap()
    .with_cluster(cluster.clone());
    let settings = watch::settings(
        &["deployments"],
        Duration::from_millis(200),
        Duration::from_millis(100),
    );
    let mut watching = watch::spawn(&sim, sink, settings);

    // Killed once the load is under way: some objects stored, most still to come.
    let hashes_path = format!("/api/v1/instances/hashes?cluster={cluster}");
    let stored = async |cw: &CwProcess| -> usize {
        cw.get_json(&hashes_path).await["hashes"]
            .as_object()
            .map_or(0, |h| h.len())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = stored(&b).await;
        if n > 0 {
            assert!(
                n < OBJECTS,
                "everything was stored before the kill: the test shows nothing"
            );
            break;
        }
        assert!(Instant::now() < deadline, "nothing stored within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.child.kill().expect("SIGKILL replica a");
    a.child.wait().expect("reap replica a");

    // The watcher's retries go to the replica left.
    let mut b = b;
    b.wait_for(
        "every object stored after the kill",
        Duration::from_secs(120),
        async |cw: &CwProcess| {
            let n = stored(cw).await;
            if n == OBJECTS {
                Ok(())
            } else {
                Err(format!("{n} of {OBJECTS} stored"))
            }
        },
    )
    .await;
    let listed = clusters(&b).await;
    assert_eq!(listed["clusters"][0]["id"], "fleet-1", "{listed}");
    assert_eq!(listed["clusters"][0]["objects"], OBJECTS, "{listed}");
    for i in [0, OBJECTS / 2, OBJECTS - 1] {
        let name = format!("app-{i}");
        let hits = answers(
            &b,
            &json!({"query": "nginx deployment", "labels": [format!("app={name}")]}),
        )
        .await;
        assert_eq!(
            hits,
            [(
                "fleet-1".to_string(),
                format!("default/apps/v1/Deployment/{name}")
            )],
            "{name} is searchable"
        );
    }
    watching.stop().await;

    // Restarted on the same store, the killed replica answers as the one that stayed.
    let a = start_replica(Some(port_a), work_a.path(), &env).await;
    same_on_both("GET /api/v1/clusters", &a, &b, async |cw| {
        clusters(cw).await
    })
    .await;
    let query = json!({"query": "nginx deployment", "labels": ["app=app-7"]});
    same_on_both("a search", &a, &b, async |cw| answers(cw, &query).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_batch_on_chroma_loses_nothing() {
    a_replica_killed_mid_batch_loses_nothing(chroma().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_batch_on_qdrant_loses_nothing() {
    a_replica_killed_mid_batch_loses_nothing(qdrant().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sigterm_a_draining_replica_answers_not_ready_while_it_still_serves() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let store = chroma().await;
    let voyage = VoyageStandin::start().await;
    let (work, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut env = replica_env(&store, &voyage, data.path());
    env.push(("CW_SHUTDOWN_DRAIN_SECS", "3".into()));
    let mut cw = start_replica(None, work.path(), &env).await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &cw.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    cw.wait_until("/readyz answering 503", async |cw: &CwProcess| {
        cw.get_status("/readyz").await == Some(503)
    })
    .await;
    assert_eq!(
        cw.get_status("/healthz").await,
        Some(200),
        "still serving while it drains"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = cw.child.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "still running 30 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "{exit}; its log:\n{}", cw.log_text());
}
