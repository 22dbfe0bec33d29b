//! Two clusters into one index: two simulated clusters, a watcher each (as `cw watch`
//! runs it, with its own `--cluster-id`), one ingest server (as `cw serve` runs it, on the
//! embedded store, and again on the Qdrant test server). Neither cluster's start-up diff, deletes, restart or resync may touch
//! the other's documents, nor those of the Go controller's payloads (no cluster: the
//! server's default cluster). And a Qdrant collection lost under the server is filled
//! again by the watcher on its own.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use common::watch::{self, Watching};
use ingest::server::{self, ServerConfig};
use ingest::store::embedded::EmbeddedStore;
use ingest::store::qdrant::{QdrantConfig, QdrantStore};
use ingest::store::VectorStore;
use kube_sim::{SimConfig, SimHandle, SimServer};
use serde_json::{json, Value};
use sync_model::ClusterId;
use testkit::VoyageStandin;
use watcher::HttpSink;

/// Debounce window plus embedding and the store's write, with room for a loaded machine.
const SOON: Duration = Duration::from_secs(20);

/// The Go controller's payload: no `cluster` field.
const GO_PAYLOAD: &str = r#"{"upserts":[{"id":"default/apps/v1/Deployment/legacy","namespace":"default","name":"legacy","kind":"Deployment","apiVersion":"apps/v1","apiGroup":"apps","labels":{"app":"legacy"},"annotations":{},"createdAt":"2026-02-20T10:00:00Z"}],"deletes":[]}"#;

fn nginx_id() -> String {
    "default/apps/v1/Deployment/nginx".into()
}

fn deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    })
}

/// One simulated cluster and its watcher.
struct Member {
    id: ClusterId,
    sim: SimHandle,
    watching: Watching,
}

/// A watcher of Deployments in `sim`, sending to `base` as cluster `id`, once it is ready.
async fn start_watcher(sim: &SimHandle, base: &str, id: &ClusterId) -> Watching {
    let settings = watch::settings(
        &["deployments"],
        Duration::from_millis(300),
        Duration::from_millis(100),
    );
    let sink = HttpSink::new(base, None, Duration::from_secs(15))
        .unwrap()
        .with_cluster(id.clone());
    watch::start(sim, sink, settings).await
}

impl Member {
    async fn start(name: &str, base: &str, objects: &[&str]) -> Member {
        let sim = SimServer::start(SimConfig::default()).await.unwrap();
        for o in objects {
            sim.create(deployment(o)).unwrap();
        }
        let id = ClusterId::new(name).unwrap();
        let watching = start_watcher(&sim, base, &id).await;
        Member { id, sim, watching }
    }

    /// Stops the watcher (pending changes flushed), runs `meanwhile`, starts a new one.
    async fn restart(&mut self, base: &str, meanwhile: impl FnOnce(&SimHandle)) {
        self.watching.stop().await;
        meanwhile(&self.sim);
        self.watching = start_watcher(&self.sim, base, &self.id).await;
    }

    async fn stop(mut self) {
        self.watching.stop().await;
    }
}

struct Server {
    base: String,
    http: reqwest::Client,
    /// The Qdrant test server's URL, on that backend.
    qdrant_url: Option<String>,
    _voyage: VoyageStandin,
    /// What keeps the store alive: its directory, or its server.
    _store: Box<dyn std::any::Any + Send>,
}

/// The store the server writes to.
enum Backend {
    Embedded,
    /// The Qdrant test server (Qdrant's own engine behind its REST API).
    Qdrant,
}

impl Server {
    async fn start(backend: Backend) -> Server {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut qdrant_url = None;
        let (store, keep): (Arc<dyn VectorStore>, Box<dyn std::any::Any + Send>) = match backend {
            Backend::Embedded => {
                let dir = tempfile::tempdir().unwrap();
                let store = EmbeddedStore::open_in_dir(dir.path()).unwrap();
                (Arc::new(store), Box::new(dir))
            }
            Backend::Qdrant => {
                // Starting the server blocks while it waits for /readyz.
                let qdrant = tokio::task::spawn_blocking(testkit::QdrantServer::start)
                    .await
                    .unwrap();
                qdrant_url = Some(qdrant.url());
                let store = QdrantStore::new(QdrantConfig::new(qdrant.url())).unwrap();
                (Arc::new(store), Box::new(qdrant))
            }
        };
        let voyage = VoyageStandin::start().await;
        let base = common::ingest_server::serve(store, &voyage, ServerConfig::default()).await;
        Server {
            base,
            http: reqwest::Client::new(),
            qdrant_url,
            _voyage: voyage,
            _store: keep,
        }
    }

    /// `POST /api/v1/instances/sync` of `payload`, as the Go controller sends it.
    async fn post_sync(&self, payload: String) -> reqwest::Response {
        self.http
            .post(format!("{}/api/v1/instances/sync", self.base))
            .header("content-type", "application/json")
            .body(payload)
            .send()
            .await
            .expect("the server answers")
    }

    /// `GET /api/v1/instances/hashes[?cluster=]`: the ids the server answers.
    async fn ids(&self, cluster: Option<&str>) -> BTreeSet<String> {
        let url = match cluster {
            Some(c) => format!("{}/api/v1/instances/hashes?cluster={c}", self.base),
            None => format!("{}/api/v1/instances/hashes", self.base),
        };
        // A 503 is the server's load bound (the watchers' syncs hold its slots, longest
        // on the Qdrant test server, which serves one request at a time): retry, as a
        // client should.
        let deadline = tokio::time::Instant::now() + SOON;
        let text = loop {
            let resp = self.http.get(&url).send().await.unwrap();
            let status = resp.status();
            let text = resp.text().await.unwrap();
            if status == 503 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            assert_eq!(status, 200, "{text}");
            break text;
        };
        let body: HashMap<String, HashMap<String, String>> = serde_json::from_str(&text).unwrap();
        body["hashes"].keys().cloned().collect()
    }

    async fn wait_ids(&self, cluster: &str, what: &str, check: impl Fn(&BTreeSet<String>) -> bool) {
        let deadline = tokio::time::Instant::now() + SOON;
        loop {
            let ids = self.ids(Some(cluster)).await;
            if check(&ids) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: cluster {cluster} still holds {ids:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The `cluster` of each search hit named `name`.
    async fn clusters_of(&self, name: &str) -> BTreeSet<String> {
        let deadline = tokio::time::Instant::now() + SOON;
        let resp = loop {
            let resp = self
                .http
                .post(format!("{}/api/v1/search", self.base))
                .json(&json!({"query": name, "mode": "keyword", "limit": 50}))
                .send()
                .await
                .unwrap();
            // The load bound's 503, as in `ids`.
            if resp.status() == 503 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            break resp;
        };
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["name"] == name)
            .map(|h| h["cluster"].as_str().unwrap_or("?").to_string())
            .collect()
    }
}

fn ids(items: &[&str]) -> BTreeSet<String> {
    items
        .iter()
        .map(|n| format!("default/apps/v1/Deployment/{n}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_share_one_index_without_touching_each_others_documents() {
    two_clusters_share_one_index(Server::start(Backend::Embedded).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_share_one_qdrant_index_without_touching_each_others_documents() {
    two_clusters_share_one_index(Server::start(Backend::Qdrant).await).await;
}

/// Two watchers (clusters `first` and `second`) and the Go controller's payload into one
/// server: deletes, a restart and a resync of one leave the others' documents.
async fn two_clusters_share_one_index(server: Server) {
    // The Go controller's payload first: stored under the default cluster.
    let resp = server.post_sync(GO_PAYLOAD.to_string()).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(server.ids(None).await, ids(&["legacy"]));
    assert_eq!(server.ids(Some("default")).await, ids(&["legacy"]));

    // Both clusters complete, each with its own nginx: two documents of one name.
    let mut alpha = Member::start(
        "alpha",
        &server.base,
        &["nginx", "only-alpha", "gone-while-down"],
    )
    .await;
    server
        .wait_ids("alpha", "alpha's first listing", |i| {
            *i == ids(&["nginx", "only-alpha", "gone-while-down"])
        })
        .await;
    let beta = Member::start("beta", &server.base, &["nginx", "only-beta"]).await;
    server
        .wait_ids("beta", "beta's first listing", |i| {
            *i == ids(&["nginx", "only-beta"])
        })
        .await;
    // Beta's start-up diff removed none of alpha's documents, nor the Go controller's.
    assert_eq!(
        server.ids(Some("alpha")).await,
        ids(&["nginx", "only-alpha", "gone-while-down"])
    );
    assert_eq!(server.ids(None).await, ids(&["legacy"]));
    assert_eq!(
        server.clusters_of("nginx").await,
        BTreeSet::from(["alpha".to_string(), "beta".to_string()]),
        "every hit shows its cluster"
    );

    // A delete in alpha removes alpha's nginx only.
    alpha
        .sim
        .delete("apps/v1", "Deployment", Some("default"), "nginx")
        .unwrap();
    server
        .wait_ids("alpha", "alpha's delete", |i| !i.contains(&nginx_id()))
        .await;
    assert!(server.ids(Some("beta")).await.contains(&nginx_id()));

    // Alpha restarts after an object was deleted while it was down: its start-up diff
    // removes that ghost, and nothing of beta's or the default cluster's.
    alpha
        .restart(&server.base, |sim| {
            sim.delete("apps/v1", "Deployment", Some("default"), "gone-while-down")
                .unwrap();
        })
        .await;
    server
        .wait_ids("alpha", "alpha's restart", |i| *i == ids(&["only-alpha"]))
        .await;
    assert_eq!(server.ids(Some("beta")).await, ids(&["nginx", "only-beta"]));
    assert_eq!(server.ids(None).await, ids(&["legacy"]));

    // A resync of beta (its whole listing diffed against its hashes) leaves alpha's and
    // the Go controller's documents alone.
    let report = beta
        .watching
        .shared
        .request_resync()
        .await
        .expect("resync report");
    assert_eq!(report.deleted, 0, "{report:?}");
    assert_eq!(server.ids(Some("beta")).await, ids(&["nginx", "only-beta"]));
    assert_eq!(server.ids(Some("alpha")).await, ids(&["only-alpha"]));
    assert_eq!(server.ids(None).await, ids(&["legacy"]));

    // The fleet as `cw clusters` shows it: each cluster's objects and its latest sync.
    let resp = server
        .http
        .get(format!("{}/api/v1/clusters", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let fleet: Value = resp.json().await.unwrap();
    let summary: Vec<(String, u64, bool)> = fleet["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["objects"].as_u64().unwrap(),
                c["lastSync"].is_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("alpha".to_string(), 1, true),
            ("beta".to_string(), 2, true),
            ("default".to_string(), 1, true),
        ],
        "{fleet}"
    );

    alpha.stop().await;
    beta.stop().await;
}

/// Qdrant loses the collection (deleted, or restarted on empty storage). The next change
/// finds it gone; the server creates it anew under a new generation (`cw_generation` in the
/// collection's metadata), its answer names that generation, and the watcher sends the
/// whole cluster again without anyone asking for a resync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qdrant_collection_lost_under_the_server_is_filled_again_by_the_watcher() {
    let server = Server::start(Backend::Qdrant).await;
    let alpha = Member::start("alpha", &server.base, &["a", "b", "c"]).await;
    server
        .wait_ids("alpha", "the initial listing", |got| {
            *got == ids(&["a", "b", "c"])
        })
        .await;
    let qdrant = server.qdrant_url.as_deref().expect("the Qdrant backend");
    let resp = server
        .http
        .delete(format!("{qdrant}/collections/instances"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(server.ids(Some("alpha")).await.is_empty());

    alpha.sim.create(deployment("d")).unwrap();
    server
        .wait_ids("alpha", "after Qdrant lost the collection", |got| {
            *got == ids(&["a", "b", "c", "d"])
        })
        .await;
    // a, b and c came back with no change of theirs: the resync sent them.
    alpha.stop().await;
}

#[tokio::test]
async fn a_malformed_cluster_is_refused_with_the_field_named_and_nothing_stored() {
    let server = Server::start(Backend::Embedded).await;
    let body = GO_PAYLOAD.replacen('{', r#"{"cluster":"Prod_EU","#, 1);
    let resp = server.post_sync(body).await;
    assert_eq!(resp.status(), 400);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["details"][0]["field"], "cluster", "{answer}");
    assert!(
        answer["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("DNS label"),
        "{answer}"
    );
    let resp = server
        .http
        .get(format!(
            "{}/api/v1/instances/hashes?cluster=Prod_EU",
            server.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(server.ids(None).await.is_empty());
}

/// An ingest server (as `cw serve` runs it, on the embedded store) that checks tokens
/// against the tokens file at `tokens`; its base URL and what keeps it alive.
async fn start_server_with_tokens(tokens: &std::path::Path) -> (String, Box<dyn std::any::Any>) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open_in_dir(dir.path()).unwrap();
    let voyage = VoyageStandin::start().await;
    let file = server::credentials::TokensFile::open(tokens).unwrap();
    let config = ServerConfig {
        tokens_file: Some(Arc::new(file)),
        ..ServerConfig::default()
    };
    let base = common::ingest_server::serve(Arc::new(store), &voyage, config).await;
    (base, Box::new((dir, voyage)))
}

/// Writes `text` to the tokens file with a later modification time, which the server
/// reads again at its next request.
fn rewrite_tokens(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(later)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_whose_token_may_not_write_its_cluster_is_not_ready_and_says_why_until_it_may() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "tok-alpha alpha\n").unwrap();
    let (base, _server) = start_server_with_tokens(&tokens).await;
    let sim = SimServer::start(SimConfig::default()).await.unwrap();
    sim.create(deployment("nginx")).unwrap();

    // The watcher of cluster beta, with alpha's token, and its operations endpoints.
    let beta = ClusterId::new("beta").unwrap();
    let mut settings = watch::settings(
        &["deployments"],
        Duration::from_millis(100),
        Duration::from_millis(100),
    );
    settings.retry.max_delay = Duration::from_millis(500);
    let sink = HttpSink::new(&base, Some("tok-alpha".into()), Duration::from_secs(15))
        .unwrap()
        .with_cluster(beta.clone());
    let mut beta_watcher = watch::spawn(&sim, sink, settings);
    let shared = beta_watcher.shared.clone();
    let stop = beta_watcher.stop.clone();
    let ops = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops_url = format!("http://{}/readyz", ops.local_addr().unwrap());
    tokio::spawn(watcher::ops::serve(ops, shared.clone(), None, stop.clone()));
    let http = reqwest::Client::new();
    let readyz = || async {
        let resp = http.get(&ops_url).send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    };

    // Refused: not ready, and /readyz says why, with the status and the cluster.
    let deadline = tokio::time::Instant::now() + SOON;
    while shared.ingest_refusal().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the refusal was never noticed; /readyz: {:?}",
            readyz().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every type listed (and a batch refused more than once) changes nothing of that.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!shared.is_ready());
    let (status, body) = readyz().await;
    assert_eq!(status, 503, "{body}");
    for word in [
        "not ready",
        "403",
        "cluster beta",
        "may not write cluster \"beta\"",
    ] {
        assert!(body.contains(word), "/readyz lacks {word:?}: {body}");
    }
    assert_eq!(shared.metrics.ingest_refused.get(), 1);
    assert_eq!(shared.metrics.items_rejected.get(), 0, "nothing dropped");

    // The token may write beta now: ready again, and the kept batch is stored.
    rewrite_tokens(&tokens, "tok-alpha alpha,beta\n");
    let deadline = tokio::time::Instant::now() + SOON;
    while !shared.is_ready() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready again; /readyz: {:?}",
            readyz().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(readyz().await, (200, "ready".to_string()));
    assert_eq!(shared.metrics.ingest_refused.get(), 0);
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        let hashes: Value = http
            .get(format!("{base}/api/v1/instances/hashes?cluster=beta"))
            .bearer_auth("tok-alpha")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or_default();
        if hashes["hashes"].get(nginx_id()).is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "beta's nginx never stored: {hashes}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    beta_watcher.stop().await;
}
