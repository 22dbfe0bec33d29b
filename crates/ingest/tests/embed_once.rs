//! Embeddings paid once per distinct text across a fleet: the same objects synced by several
//! clusters, through the real ingest router, the real Voyage client against the stand-in
//! (whose inputs are counted) and a real store: the embedded store, and Chroma (the Qdrant
//! test server when run as embed_once_qdrant). Each server life runs on a runtime of its
//! own, so a later life is a restart: nothing is kept in memory from one to the next.
//! (Identical texts within one sync cannot come over HTTP, whose ids name every field of the
//! text: `pipeline::reuse`'s unit tests cover them.)

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::{deployments, install_crypto, voyage_config, StoreServer, COLLECTION};
use ingest::embed::voyage::VoyageEmbedder;
use ingest::pipeline::Pipeline;
use ingest::server::{AppState, ServerConfig};
use ingest::store::embedded::EmbeddedStore;
use ingest::store::VectorStore;
use serde_json::{json, Value};
use testkit::VoyageStandin;

/// Where the documents live across server lives.
enum Store {
    /// Chroma, or the Qdrant test server for `*_qdrant` binaries.
    Remote(StoreServer),
    /// The embedded store's file in this directory, reopened by each life.
    Embedded(tempfile::TempDir),
}

impl Store {
    fn start(embedded: bool) -> Store {
        install_crypto();
        if embedded {
            Store::Embedded(tempfile::tempdir().expect("temp dir"))
        } else {
            Store::Remote(StoreServer::start_for_this_binary())
        }
    }

    /// What opens the store in a new life: a fresh client, or the file opened again.
    fn opener(&self) -> Box<dyn FnOnce() -> Arc<dyn VectorStore> + Send> {
        match self {
            Store::Remote(server) => {
                let client: Arc<dyn VectorStore> = Arc::from(server.client());
                Box::new(move || client)
            }
            Store::Embedded(dir) => {
                let dir: PathBuf = dir.path().to_path_buf();
                Box::new(move || Arc::new(EmbeddedStore::open_in_dir(&dir).expect("open the file")))
            }
        }
    }
}

/// One sync: the cluster it is sent as, and its upserts.
type Sync = (&'static str, Vec<Value>);

/// What one life of the server saw.
struct Life {
    /// Each sync's status and answer, in the order given.
    answers: Vec<(u16, Value)>,
    /// `/metrics` at the end.
    metrics: String,
    /// Every stored id with its vector, at the end.
    vectors: std::collections::HashMap<String, Vec<f32>>,
}

/// Starts an ingest server on `store` on a runtime of its own, sends each step's syncs (the
/// syncs of one step at the same time, the steps one after another), and stops it: its
/// runtime ends, with every task and the store handle.
async fn life(store: &Store, voyage: &VoyageStandin, steps: Vec<Vec<Sync>>) -> Life {
    let open = store.opener();
    let config = voyage_config(voyage);
    tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let store = open();
            let embedder = Arc::new(VoyageEmbedder::new(config).expect("voyage client"));
            let pipeline = Pipeline::new(store.clone(), embedder, COLLECTION);
            let served = common::serve(AppState::new(pipeline, ServerConfig::default())).await;
            let http = reqwest::Client::new();
            let mut answers = Vec::new();
            for step in steps {
                let sent: Vec<_> = step
                    .into_iter()
                    .map(|(cluster, upserts)| {
                        let request = http
                            .post(format!("{}/api/v1/instances/sync", served.url))
                            .json(&json!({"cluster": cluster, "upserts": upserts}))
                            .send();
                        tokio::spawn(async move { common::answer(request.await).await })
                    })
                    .collect();
                for s in sent {
                    answers.push(s.await.expect("the sync task"));
                }
            }
            let (_, metrics) =
                common::answer(http.get(format!("{}/metrics", served.url)).send().await).await;
            let _ = served.shutdown.send(());
            let _ = tokio::time::timeout(Duration::from_secs(10), served.task).await;
            let ids: Vec<String> = store
                .all_hashes(COLLECTION, None)
                .await
                .expect("stored ids")
                .into_keys()
                .collect();
            let vectors = store.vectors(COLLECTION, &ids).await.expect("vectors");
            Life {
                answers,
                metrics: metrics.as_str().unwrap_or_default().to_string(),
                vectors,
            }
        })
    })
    .await
    .expect("the server's life")
}

/// The value of the counter `name` with `label` in a Prometheus text, 0 when absent.
fn counter(metrics: &str, name_and_label: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name_and_label)?.trim().parse().ok())
        .unwrap_or(0)
}

fn assert_all_ok(life: &Life) {
    for (status, body) in &life.answers {
        assert_eq!(*status, 200, "{body}");
    }
}

fn same_direction(a: &[f32], b: &[f32]) -> bool {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b)) > 0.9999
}

/// The same 40 objects as cluster `a`, then `b`: 40 inputs in all, and `b`'s documents hold
/// `a`'s vectors. A new server on the same store, `c`: still none; a changed text in `d`:
/// exactly that one.
async fn the_same_objects_in_another_cluster_cost_no_embedding_even_after_a_restart(
    embedded: bool,
) {
    let store = Store::start(embedded);
    let voyage = VoyageStandin::start().await;
    let objects = deployments("shop", 40);

    let first = life(
        &store,
        &voyage,
        vec![vec![("a", objects.clone())], vec![("b", objects.clone())]],
    )
    .await;
    assert_all_ok(&first);
    assert_eq!(first.answers[1].1["upserted"], 40);
    assert_eq!(voyage.inputs(), 40, "one input per distinct text");
    assert_eq!(
        counter(&first.metrics, "cw_ingest_embeddings_requested_total"),
        40
    );
    assert_eq!(
        counter(
            &first.metrics,
            r#"cw_ingest_embeddings_reused_total{from="store"}"#
        ),
        40
    );
    assert_eq!(
        first.vectors.len(),
        80,
        "both clusters' documents are stored"
    );
    for (id, v) in &first.vectors {
        if let Some(own) = id.strip_prefix("b:") {
            assert!(
                same_direction(v, &first.vectors[&format!("a:{own}")]),
                "{id}"
            );
        }
    }

    let mut changed = objects.clone();
    changed[3]["labels"]["tier"] = json!("api");
    let second = life(
        &store,
        &voyage,
        vec![vec![("c", objects.clone())], vec![("d", changed)]],
    )
    .await;
    assert_all_ok(&second);
    assert_eq!(second.vectors.len(), 160);
    assert_eq!(
        voyage.inputs(),
        41,
        "after a restart, only the text no cluster had is embedded"
    );
    assert_eq!(
        counter(
            &second.metrics,
            r#"cw_ingest_embeddings_reused_total{from="store"}"#
        ),
        79
    );
}

/// Three clusters send the same 60 objects at the same moment (a fleet's watchers starting
/// together): 60 inputs, whichever sync embeds each text.
async fn clusters_syncing_the_same_texts_at_once_embed_each_once(embedded: bool) {
    let store = Store::start(embedded);
    let voyage = VoyageStandin::start().await;
    // Each provider call takes a while, as a real one does: the syncs overlap.
    voyage.set_delay(Duration::from_millis(300));
    let objects = deployments("platform", 60);
    let lived = life(
        &store,
        &voyage,
        vec![vec![
            ("a", objects.clone()),
            ("b", objects.clone()),
            ("c", objects),
        ]],
    )
    .await;
    assert_all_ok(&lived);
    assert_eq!(lived.vectors.len(), 180);
    assert_eq!(voyage.inputs(), 60);
}

macro_rules! on_each_store {
    ($($case:ident),* $(,)?) => {
        mod remote {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(false).await;
                }
            )*
        }
        mod embedded {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(true).await;
                }
            )*
        }
    };
}

on_each_store!(
    the_same_objects_in_another_cluster_cost_no_embedding_even_after_a_restart,
    clusters_syncing_the_same_texts_at_once_embed_each_once,
);
