//! `cw sync-instances` as a user runs it: the built binary against the simulator's demo
//! cluster (deploy/demo), writing the embedded store in-process or sending to an ingest
//! server (`--endpoint`), with the Voyage stand-in as the embedding provider so that every
//! embedding call is counted.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use common::start_demo_cluster;
use ingest::server::ServerConfig;
use ingest::store::embedded::EmbeddedStore;
use ingest::store::{Metadata, VectorStore};
use kube_sim::Fault;
use serde_json::{json, Value};
use testkit::VoyageStandin;

const COLLECTION: &str = "instances";

#[derive(clap::Parser)]
struct WatchFlags {
    #[command(flatten)]
    config: watcher::WatchConfig,
}

/// One finished run: its exit status, its `--output json` summary and its log.
struct Run {
    status: ExitStatus,
    summary: Value,
    log: String,
}

impl Run {
    fn count(&self, field: &str) -> u64 {
        self.summary[field].as_u64().unwrap_or_else(|| {
            panic!(
                "no {field} in the summary {}; log:\n{}",
                self.summary, self.log
            )
        })
    }

    fn assert_success(&self) {
        assert!(
            self.status.success(),
            "cw sync-instances failed ({}); log:\n{}",
            self.status,
            self.log
        );
    }
}

/// Runs `cw sync-instances --output json` with `env` (after clearing what could leak in
/// from the caller's environment).
async fn sync_instances(kubeconfig: &Path, env: Vec<(&'static str, String)>) -> Run {
    let kubeconfig = kubeconfig.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cw"));
        cmd.args(["sync-instances", "--output", "json", "--retries", "1"])
            .env("KUBECONFIG", &kubeconfig)
            .env("LOG_LEVEL", "info")
            .env_remove("CHROMA_URL")
            .env_remove("CW_SYNC_ENDPOINT")
            .env_remove("CW_INGEST_TOKEN")
            .env_remove("CW_EMBEDDING_PROVIDER")
            .env_remove("WATCH_RESOURCE_TYPES")
            .env_remove("WATCH_NAMESPACES")
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("starting the cw binary");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let summary = stdout
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or(Value::Null);
        Run {
            status: out.status,
            summary,
            log: format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
        }
    })
    .await
    .expect("the cw process task")
}

/// In-process destination: the embedded store in `data_dir`, embeddings by the stand-in.
fn in_process(data_dir: &Path, voyage: &VoyageStandin) -> Vec<(&'static str, String)> {
    vec![
        ("CW_DATA_DIR", data_dir.display().to_string()),
        ("CW_EMBEDDING_PROVIDER", "voyage".into()),
        ("VOYAGE_API_KEY", "test-key".into()),
        ("VOYAGE_BASE_URL", voyage.base_url()),
    ]
}

/// An ingest server as `cw serve` runs it (embedded store in `data_dir`, the stand-in as
/// provider) on a free port: its base URL and its store (the embedded store admits one
/// handle per process).
async fn start_ingest_server(
    data_dir: &Path,
    voyage: &VoyageStandin,
) -> (String, Arc<EmbeddedStore>) {
    std::fs::create_dir_all(data_dir).expect("data dir");
    let store = Arc::new(EmbeddedStore::open_in_dir(data_dir).expect("embedded store"));
    let base = common::ingest_server::serve(store.clone(), voyage, ServerConfig::default()).await;
    (base, store)
}

fn open_store(data_dir: &Path) -> EmbeddedStore {
    EmbeddedStore::open_in_dir(data_dir).expect("opening the store cw wrote")
}

/// Every stored instance id (without its cluster) with its content hash.
async fn stored_hashes(store: &dyn VectorStore) -> HashMap<String, String> {
    store
        .all_hashes(COLLECTION, None)
        .await
        .expect("stored hashes")
        .into_iter()
        .map(|(id, hash)| (common::unqualified(&id), hash))
        .collect()
}

/// Every stored document: id → (text, metadata).
async fn documents(store: &dyn VectorStore) -> BTreeMap<String, (String, Metadata)> {
    store
        .get(COLLECTION, None, 100_000)
        .await
        .expect("stored documents")
        .into_iter()
        .map(|hit| (common::unqualified(&hit.id), (hit.document, hit.metadata)))
        .collect()
}

fn setup() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// What most tests here start with: the demo cluster, the Voyage stand-in, and a work
/// directory with the store's place (`data_dir`) in it.
struct Demo {
    work: tempfile::TempDir,
    data_dir: std::path::PathBuf,
    sim: kube_sim::SimHandle,
    kubeconfig: std::path::PathBuf,
    voyage: VoyageStandin,
}

impl Demo {
    async fn start() -> Demo {
        setup();
        let work = tempfile::tempdir().expect("temp dir");
        let data_dir = work.path().join("data");
        let (sim, kubeconfig) = start_demo_cluster(work.path()).await;
        let voyage = VoyageStandin::start().await;
        Demo {
            work,
            data_dir,
            sim,
            kubeconfig,
            voyage,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_with_no_change_embeds_nothing_and_a_changed_object_is_embedded_alone() {
    let Demo {
        work: _work,
        data_dir,
        sim,
        kubeconfig,
        voyage,
    } = Demo::start().await;

    let first = sync_instances(&kubeconfig, in_process(&data_dir, &voyage)).await;
    first.assert_success();
    let listed = first.count("instances");
    assert!(
        listed > 30,
        "the demo cluster has more than 30 objects: {}",
        first.summary
    );
    assert_eq!(first.count("new"), listed, "{}", first.summary);
    assert_eq!(voyage.inputs(), listed, "every new object is embedded once");

    voyage.reset_stats();
    let second = sync_instances(&kubeconfig, in_process(&data_dir, &voyage)).await;
    second.assert_success();
    assert_eq!(second.count("instances"), listed);
    assert_eq!(second.count("unchanged"), listed, "{}", second.summary);
    assert_eq!(second.count("new") + second.count("changed"), 0);
    assert_eq!(second.count("removed"), 0);
    assert_eq!(
        voyage.requests(),
        0,
        "an unchanged cluster is never embedded again"
    );

    sim.patch(
        "apps/v1",
        "StatefulSet",
        Some("data"),
        "analytics-postgres",
        json!({"metadata": {"labels": {"tier": "gold"}}}),
    )
    .expect("label the PostgreSQL StatefulSet");
    voyage.reset_stats();
    let third = sync_instances(&kubeconfig, in_process(&data_dir, &voyage)).await;
    third.assert_success();
    assert_eq!(third.count("changed"), 1, "{}", third.summary);
    assert_eq!(third.count("unchanged"), listed - 1);
    assert_eq!(voyage.inputs(), 1, "only the changed object is embedded");
    let docs = documents(&open_store(&data_dir)).await;
    let postgres = docs
        .iter()
        .find(|(id, _)| id.ends_with("/StatefulSet/analytics-postgres"))
        .expect("the PostgreSQL document");
    assert!(
        postgres.1 .1.contains_key("label.tier"),
        "the stored document has the new label: {:?}",
        postgres.1 .1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_deleted_from_the_cluster_lose_their_documents_through_an_ingest_server() {
    let Demo {
        work: _work,
        data_dir,
        sim,
        kubeconfig,
        voyage,
    } = Demo::start().await;
    let (base, _store) = start_ingest_server(&data_dir, &voyage).await;
    let endpoint = vec![("CW_SYNC_ENDPOINT", base.clone())];

    let first = sync_instances(&kubeconfig, endpoint.clone()).await;
    first.assert_success();
    let listed = first.count("instances");
    assert_eq!(voyage.inputs(), listed);

    sim.delete("apps/v1", "StatefulSet", Some("data"), "analytics-postgres")
        .expect("delete the PostgreSQL StatefulSet");
    sim.delete("v1", "Service", Some("data"), "catalog-mysql")
        .expect("delete the MySQL Service");
    voyage.reset_stats();
    let second = sync_instances(&kubeconfig, endpoint.clone()).await;
    second.assert_success();
    assert_eq!(second.count("removed"), 2, "{}", second.summary);
    assert_eq!(second.count("instances"), listed - 2);
    assert_eq!(voyage.requests(), 0, "removing embeds nothing");

    // `cw sync-instances` sends under the kubeconfig context's name.
    let hashes: Value = reqwest::get(format!("{base}/api/v1/instances/hashes?cluster=kube-sim"))
        .await
        .expect("hashes request")
        .json()
        .await
        .expect("hashes answer");
    let ids: Vec<&String> = hashes["hashes"]
        .as_object()
        .expect("hashes map")
        .keys()
        .collect();
    assert_eq!(ids.len() as u64, listed - 2);
    assert!(
        !ids.iter()
            .any(|id| id.ends_with("/StatefulSet/analytics-postgres")
                || id.ends_with("/Service/catalog-mysql")),
        "the deleted objects' documents are gone: {ids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_object_yields_the_same_document_through_sync_instances_and_watch() {
    let Demo {
        work,
        sim,
        kubeconfig,
        voyage,
        ..
    } = Demo::start().await;

    // Path 1: cw sync-instances into its own store.
    let synced_dir = work.path().join("synced");
    let run = sync_instances(&kubeconfig, in_process(&synced_dir, &voyage)).await;
    run.assert_success();
    let synced = open_store(&synced_dir);

    // Path 2: the watcher, as `cw watch` runs it (HTTP sink, default settings' filters),
    // into an ingest server with another store.
    let watched_dir = work.path().join("watched");
    let (base, watched) = start_ingest_server(&watched_dir, &voyage).await;
    // The cluster `cw sync-instances` takes from the simulator's kubeconfig context.
    let sink = watcher::HttpSink::new(
        &format!("{base}/api/v1/instances/sync"),
        None,
        Duration::from_secs(15),
    )
    .expect("http sink")
    .with_cluster(sync_model::ClusterId::new("kube-sim").unwrap());
    // `cw watch`'s own flags and defaults (filters included), with short windows.
    let mut settings = WatchFlags::parse_from(["cw"]).config.settings();
    settings.buffer.debounce = Duration::from_millis(100);
    settings.buffer.flush_interval = Duration::from_millis(100);
    let mut watching = common::watch::spawn(&sim, sink, settings);
    let shared = watching.shared.clone();
    let want = run.count("instances") as usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !(shared.is_ready() && watched.count(COLLECTION).await.unwrap_or(0) >= want) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watcher did not store the {want} objects in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watching.stop().await;

    assert_eq!(
        stored_hashes(&synced).await,
        stored_hashes(watched.as_ref()).await,
        "same ids and content hashes"
    );
    let (a, b) = (documents(&synced).await, documents(watched.as_ref()).await);
    assert_eq!(a.len(), want);
    for (id, doc) in &a {
        assert_eq!(
            Some(doc),
            b.get(id),
            "document {id} differs between the paths"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_listed_keeps_its_documents_and_a_failing_api_server_removes_nothing() {
    let Demo {
        work: _work,
        data_dir,
        sim,
        kubeconfig,
        voyage,
    } = Demo::start().await;
    let first = sync_instances(&kubeconfig, in_process(&data_dir, &voyage)).await;
    first.assert_success();
    let before = stored_hashes(&open_store(&data_dir)).await;
    let statefulset = "data/apps/v1/StatefulSet/analytics-postgres";
    let certificate = "shop/cert-manager.io/v1/Certificate/storefront-tls";
    assert!(before.contains_key(statefulset) && before.contains_key(certificate));

    // Objects of three types are deleted; then one type cannot be listed and one API
    // group's discovery fails (an aggregated API whose backend is down answers the same).
    sim.delete("apps/v1", "StatefulSet", Some("data"), "analytics-postgres")
        .expect("delete the PostgreSQL StatefulSet");
    sim.delete(
        "cert-manager.io/v1",
        "Certificate",
        Some("shop"),
        "storefront-tls",
    )
    .expect("delete a Certificate");
    let configmap = before
        .keys()
        .find(|id| id.contains("/v1/ConfigMap/"))
        .expect("the demo has a ConfigMap")
        .clone();
    let (ns, name) = {
        let parts: Vec<&str> = configmap.split('/').collect();
        (parts[0].to_string(), parts[parts.len() - 1].to_string())
    };
    sim.delete("v1", "ConfigMap", Some(&ns), &name)
        .expect("delete the ConfigMap");
    sim.inject_fault(Fault {
        resource: Some("configmaps".into()),
        verb: Some("list".into()),
        error_code: Some(500),
        ..Fault::default()
    });
    sim.inject_fault(Fault::error(500).on_group("cert-manager.io"));
    let failed = sync_instances(&kubeconfig, in_process(&data_dir, &voyage)).await;
    assert!(
        !failed.status.success(),
        "a failed list must fail the run; log:\n{}",
        failed.log
    );
    assert!(
        failed.log.contains("configmaps") && failed.log.contains("their documents were kept"),
        "the message names the type and says its documents were kept:\n{}",
        failed.log
    );
    assert!(
        failed.summary["unavailableGroups"]
            .get("cert-manager.io")
            .is_some(),
        "the summary names the unavailable group: {}",
        failed.summary
    );
    // The listed type's ghost is removed; every document of the group (two Certificates,
    // two Issuers) and of the unlisted type (one ConfigMap) is kept.
    assert_eq!(failed.count("removed"), 1, "{}", failed.summary);
    assert_eq!(failed.count("kept"), 5, "{}", failed.summary);
    let after = stored_hashes(&open_store(&data_dir)).await;
    assert!(!after.contains_key(statefulset));
    assert!(
        after.contains_key(certificate),
        "a document of an unavailable group was removed"
    );
    assert!(
        after.contains_key(&configmap),
        "a document of an unlisted type was removed"
    );

    // Only the group unavailable: the run succeeds (its types could not be indexed anyway
    // until it answers) and still keeps the group's documents.
    sim.clear_faults();
    sim.inject_fault(Fault::error(500).on_group("cert-manager.io"));
    let partial = sync_instances(&kubeconfig, in_process(&data_dir, &voyage)).await;
    partial.assert_success();
    assert!(
        partial.summary["unavailableGroups"]
            .get("cert-manager.io")
            .is_some(),
        "{}",
        partial.summary
    );
    let after = stored_hashes(&open_store(&data_dir)).await;
    assert!(after.contains_key(certificate));
    assert!(
        !after.contains_key(&configmap),
        "the listed type's ghost goes"
    );
    sim.clear_faults();
    let whole = sync_instances(&kubeconfig, in_process(&data_dir, &voyage)).await;
    whole.assert_success();
    assert!(!stored_hashes(&open_store(&data_dir))
        .await
        .contains_key(certificate));
    let before = stored_hashes(&open_store(&data_dir)).await;

    // An API server that does not answer at all: a non-zero exit that says so.
    sim.shutdown().await;
    let down = sync_instances(&kubeconfig, in_process(&data_dir, &voyage)).await;
    assert!(!down.status.success(), "log:\n{}", down.log);
    assert!(
        down.log.contains("is the API server reachable?"),
        "the message says what failed:\n{}",
        down.log
    );
    assert_eq!(stored_hashes(&open_store(&data_dir)).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_model_or_an_unreachable_destination_fails_with_a_message_saying_so() {
    setup();
    let work = tempfile::tempdir().expect("temp dir");
    let (_sim, kubeconfig) = start_demo_cluster(work.path()).await;

    // The default provider is the local model; an empty model directory holds none.
    let empty = work.path().join("no-model");
    std::fs::create_dir_all(&empty).expect("dir");
    let no_model = sync_instances(
        &kubeconfig,
        vec![
            (
                "CW_DATA_DIR",
                work.path().join("data").display().to_string(),
            ),
            ("CW_MODEL_DIR", empty.display().to_string()),
        ],
    )
    .await;
    assert!(!no_model.status.success(), "log:\n{}", no_model.log);
    assert!(
        no_model.log.contains("cw model fetch"),
        "the message says how to get the model:\n{}",
        no_model.log
    );

    // Nothing listens on this port.
    let closed = format!("http://127.0.0.1:{}", testkit::free_port());
    let unreachable = sync_instances(&kubeconfig, vec![("CW_SYNC_ENDPOINT", closed)]).await;
    assert!(!unreachable.status.success(), "log:\n{}", unreachable.log);
    assert!(
        unreachable.log.contains("cannot read what the store holds"),
        "the message says the destination is unreachable:\n{}",
        unreachable.log
    );
}
