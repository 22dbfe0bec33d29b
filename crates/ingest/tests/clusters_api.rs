//! Clusters with a life cycle, over the real router on a free port with a real Chroma and
//! the Voyage stand-in: each cluster's last sync and last contact are kept in the store (a
//! second server on the same store, as after a restart or beside a replica, lists them);
//! `DELETE /api/v1/clusters/{name}` retires one cluster and leaves the others as they were;
//! a search naming a cluster the index does not know is an error naming the known ones; and
//! reads are admitted apart from writes, so a full write load never turns a search away.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{instance, Harness};
use ingest::embed::voyage::VoyageEmbedder;
use ingest::pipeline::Pipeline;
use ingest::server::{AppState, ServerConfig};
use serde_json::{json, Value};

/// An instance with a health.
fn with_health(name: &str, status: &str) -> Value {
    let mut i = instance("data", "StatefulSet", name, json!({"app": name}));
    i["health"] = json!({"status": status, "reason": if status == "Failed" { "BackendUnreachable" } else { "" }});
    i
}

fn cap(plural: &str, group: &str, kind: &str) -> Value {
    json!({
        "id": format!("{plural}.{group}"), "kind": kind, "group": group, "versions": ["v1"],
        "plural": plural, "namespaced": true, "shortNames": [], "categories": [],
        "description": format!("{kind} of the tests"), "fields": {}
    })
}

impl Harness {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        self.send_as(None, method, path, body).await
    }

    async fn send_as(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        common::answer(req.send().await).await
    }

    /// `POST path` with `body`, which must be answered 200.
    async fn post_ok(&self, path: &str, body: &Value) {
        let (status, answer) = self.send(reqwest::Method::POST, path, Some(body)).await;
        assert_eq!(status, 200, "{path}: {answer}");
    }

    /// Each cluster of `GET /api/v1/clusters` by id.
    async fn clusters(&self) -> BTreeMap<String, Value> {
        clusters_at(&self.http, &self.url).await
    }

    /// The clusters serving each capability type, as stored.
    async fn type_lists(&self) -> BTreeMap<String, String> {
        self.store_server
            .dump("capabilities")
            .await
            .into_iter()
            .map(|(id, (_, meta))| (id, meta["cw_clusters"].as_str().unwrap_or("").to_string()))
            .collect()
    }
}

async fn clusters_at(http: &reqwest::Client, url: &str) -> BTreeMap<String, Value> {
    let resp = http
        .get(format!("{url}/api/v1/clusters"))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap().to_string(), c.clone()))
        .collect()
}

/// Objects and objects by health of each cluster: what `cw clusters` counts.
fn counts(clusters: &BTreeMap<String, Value>) -> BTreeMap<String, (u64, Value)> {
    clusters
        .iter()
        .map(|(id, c)| {
            (
                id.clone(),
                (c["objects"].as_u64().unwrap(), c["health"].clone()),
            )
        })
        .collect()
}

/// Three clusters: alpha and gamma share the type `widgets.example.io` with beta, which
/// alone serves `gadgets.example.io`.
async fn fleet(h: &Harness) {
    for (cluster, names) in [
        ("alpha", vec![("a1", "Current"), ("a2", "Failed")]),
        (
            "beta",
            vec![("b1", "Current"), ("b2", "Current"), ("b3", "InProgress")],
        ),
        ("gamma", vec![("g1", "Failed")]),
    ] {
        let upserts: Vec<Value> = names.iter().map(|(n, s)| with_health(n, s)).collect();
        h.post_ok(
            "/api/v1/instances/sync",
            &json!({"cluster": cluster, "upserts": upserts}),
        )
        .await;
        let mut types = vec![cap("widgets", "example.io", "Widget")];
        if cluster == "beta" {
            types.push(cap("gadgets", "example.io", "Gadget"));
        }
        h.post_ok(
            "/api/v1/capabilities/sync",
            &json!({"cluster": cluster, "upserts": types}),
        )
        .await;
    }
}

#[tokio::test]
async fn a_retired_cluster_leaves_the_index_in_one_call_and_the_others_are_unchanged() {
    let h = Harness::start().await;
    fleet(&h).await;
    let before = h.clusters().await;
    assert_eq!(
        counts(&before),
        BTreeMap::from([
            ("alpha".into(), (2, json!({"Current": 1, "Failed": 1}))),
            ("beta".into(), (3, json!({"Current": 2, "InProgress": 1}))),
            ("gamma".into(), (1, json!({"Failed": 1}))),
        ])
    );
    let lists = h.type_lists().await;
    assert!(lists["widgets.example.io"].contains("beta="), "{lists:?}");
    assert!(lists.contains_key("gadgets.example.io"));

    let (status, removed) = h
        .send(reqwest::Method::DELETE, "/api/v1/clusters/beta", None)
        .await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(
        removed,
        json!({"cluster": "beta", "instances": 3, "typesLeft": 1, "typesDeleted": 1, "record": true})
    );

    let after = h.clusters().await;
    let mut expected = counts(&before);
    expected.remove("beta");
    assert_eq!(counts(&after), expected, "only beta is gone");
    for id in ["alpha", "gamma"] {
        assert_eq!(after[id]["lastSync"], before[id]["lastSync"], "{id}");
    }
    let lists = h.type_lists().await;
    assert_eq!(
        lists.keys().collect::<Vec<_>>(),
        ["widgets.example.io"],
        "the type only beta served is gone"
    );
    assert!(!lists["widgets.example.io"].contains("beta="), "{lists:?}");
    assert!(
        lists["widgets.example.io"].contains("alpha=")
            && lists["widgets.example.io"].contains("gamma=")
    );
    let stored = h.stored().await;
    assert_eq!(stored.len(), 3);
    assert!(
        stored.keys().all(|id| !id.starts_with("beta:")),
        "{:?}",
        stored.keys()
    );

    // Idempotent: again, or for a cluster never held, 200 with zeros.
    for name in ["beta", "never-was"] {
        let (status, again) = h
            .send(
                reqwest::Method::DELETE,
                &format!("/api/v1/clusters/{name}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(
            again,
            json!({"cluster": name, "instances": 0, "typesLeft": 0, "typesDeleted": 0, "record": false})
        );
    }
    // A malformed name changes nothing.
    let (status, body) = h
        .send(
            reqwest::Method::DELETE,
            "/api/v1/clusters/Not_A_Cluster",
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(counts(&h.clusters().await), expected);
}

/// `DELETE /api/v1/clusters/alpha` with `token`.
async fn remove_alpha(h: &Harness, token: &str) -> (u16, Value) {
    h.send_as(
        Some(token),
        reqwest::Method::DELETE,
        "/api/v1/clusters/alpha",
        None,
    )
    .await
}

#[tokio::test]
async fn only_a_token_that_may_write_every_cluster_may_retire_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens");
    std::fs::write(&path, "tok-alpha alpha\ntok-all *\ntok-ro read-only\n").unwrap();
    let file = ingest::server::credentials::TokensFile::open(&path).unwrap();
    let h = Harness::start_with(ServerConfig {
        tokens_file: Some(Arc::new(file)),
        auth_token: Some("shared".into()),
        ..ServerConfig::default()
    })
    .await;
    let upsert = json!({"cluster": "alpha", "upserts": [with_health("a1", "Current")]});
    let (status, _) = h
        .send_as(
            Some("tok-alpha"),
            reqwest::Method::POST,
            "/api/v1/instances/sync",
            Some(&upsert),
        )
        .await;
    assert_eq!(status, 200);
    for token in ["tok-alpha", "tok-ro"] {
        let (status, body) = remove_alpha(&h, token).await;
        assert_eq!(status, 403, "{token}: {body}");
        assert!(body["error"].as_str().unwrap().contains("`*`"), "{body}");
    }
    assert_eq!(remove_alpha(&h, "wrong").await.0, 401);
    assert_eq!(
        h.stored().await.len(),
        1,
        "no refused removal changed anything"
    );
    for token in ["tok-all", "shared"] {
        let (status, body) = remove_alpha(&h, token).await;
        assert_eq!(status, 200, "{token}: {body}");
    }
    assert!(h.stored().await.is_empty());
}

#[tokio::test]
async fn last_sync_and_last_contact_are_kept_in_the_store_for_every_server_of_it() {
    let h = Harness::start().await;
    let upsert = json!({"cluster": "alpha", "upserts": [with_health("a1", "Current")]});
    h.post_ok("/api/v1/instances/sync", &upsert).await;
    // A heartbeat (an empty sync) and a hashes read are contacts; neither is a sync.
    let heartbeat = json!({"cluster": "quiet", "upserts": [], "deletes": []});
    h.post_ok("/api/v1/instances/sync", &heartbeat).await;
    assert_eq!(
        h.send(
            reqwest::Method::GET,
            "/api/v1/instances/hashes?cluster=reader",
            None
        )
        .await
        .0,
        200
    );

    // Another server on the same store: a restarted `cw serve`, or a replica beside it.
    let embedder = Arc::new(VoyageEmbedder::new(common::voyage_config(&h.voyage)).unwrap());
    let pipeline = Pipeline::new(h.store.clone(), embedder, common::COLLECTION);
    // Served until the test ends (dropping it would shut it down).
    let other_server = common::serve(AppState::new(pipeline, ServerConfig::default())).await;
    let other = other_server.url.clone();
    let listed = clusters_at(&h.http, &other).await;
    assert_eq!(listed, h.clusters().await, "both servers list the same");
    let alpha = &listed["alpha"];
    assert!(
        alpha["lastSync"].is_string() && alpha["lastContact"].is_string(),
        "{alpha}"
    );
    assert!(
        alpha["lastContactAgeSecs"].as_u64().unwrap() < 60,
        "{alpha}"
    );
    assert_eq!(alpha["stale"], false);
    assert_eq!(alpha["objects"], 1);
    for quiet in ["quiet", "reader"] {
        let c = &listed[quiet];
        assert_eq!(c["objects"], 0, "{c}");
        assert!(
            c["lastSync"].is_null() && c["lastContact"].is_string(),
            "{c}"
        );
        assert_eq!(c["stale"], false, "{c}");
    }
}

#[tokio::test]
async fn each_clusters_counts_are_kept_in_its_record_and_listed_without_reading_the_documents() {
    let h = Harness::start().await;
    fleet(&h).await;
    let expected: BTreeMap<String, (u64, Value)> = [
        ("alpha", 2, json!({"Current": 1, "Failed": 1})),
        ("beta", 3, json!({"Current": 2, "InProgress": 1})),
        ("gamma", 1, json!({"Failed": 1})),
    ]
    .into_iter()
    .map(|(c, n, h)| (c.to_string(), (n, h)))
    .collect();
    // Exact at once, recounted or not.
    assert_eq!(counts(&h.clusters().await), expected);

    // The recounts land in the records within moments.
    let recorded = || async {
        h.store_server
            .dump("instances-clusters")
            .await
            .into_iter()
            .map(|(id, (_, meta))| {
                let counted = meta["cw_objects_by_health"]
                    .as_str()
                    .unwrap_or("null")
                    .to_string();
                (id, serde_json::from_str::<Value>(&counted).unwrap())
            })
            .collect::<BTreeMap<String, Value>>()
    };
    let want: BTreeMap<String, Value> = expected
        .iter()
        .map(|(c, (_, health))| (c.clone(), health.clone()))
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while recorded().await != want {
        assert!(
            std::time::Instant::now() < deadline,
            "records' counts {:?}, want {want:?}",
            recorded().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Then the list reads the records: no pass over the instances.
    let before = h.store.read_calls();
    assert_eq!(counts(&h.clusters().await), expected);
    assert_eq!(
        h.store.read_calls(),
        before,
        "the listing read the documents"
    );

    // A change of health is listed at once by the server that applied it (its recount is
    // pending: that cluster is counted now), and by any server once recounted.
    h.post_ok(
        "/api/v1/instances/sync",
        &json!({"cluster": "alpha", "upserts": [with_health("a2", "Current")]}),
    )
    .await;
    let mut now = expected.clone();
    now.insert("alpha".into(), (2, json!({"Current": 2})));
    assert_eq!(counts(&h.clusters().await), now);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while recorded().await["alpha"] != json!({"Current": 2}) {
        assert!(std::time::Instant::now() < deadline, "alpha not recounted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let embedder = Arc::new(VoyageEmbedder::new(common::voyage_config(&h.voyage)).unwrap());
    let pipeline = Pipeline::new(h.store.clone(), embedder, common::COLLECTION);
    let other = common::serve(AppState::new(pipeline, ServerConfig::default())).await;
    assert_eq!(counts(&clusters_at(&h.http, &other.url).await), now);
}

#[tokio::test]
async fn a_cluster_not_heard_from_past_the_threshold_is_stale() {
    // Two seconds: a contact is stored to the second, so one just made can read as up to a
    // second old.
    let h = Harness::start_with(ServerConfig {
        stale_after: Duration::from_secs(2),
        ..ServerConfig::default()
    })
    .await;
    let upsert = json!({"cluster": "alpha", "upserts": [with_health("a1", "Current")]});
    h.post_ok("/api/v1/instances/sync", &upsert).await;
    assert_eq!(h.clusters().await["alpha"]["stale"], false);
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    let (_, body) = h.send(reqwest::Method::GET, "/api/v1/clusters", None).await;
    assert_eq!(body["staleAfterSecs"], 2);
    assert_eq!(body["clusters"][0]["stale"], true, "{body}");
}

#[tokio::test]
async fn a_search_naming_an_unknown_cluster_is_a_404_naming_the_known_ones() {
    let h = Harness::start().await;
    fleet(&h).await;
    let expected = json!({
        "error": "unknown cluster \"nope\"",
        "details": [{"field": "cluster", "message": "known clusters: alpha, beta, gamma"}]
    });
    for (path, body) in [
        (
            "/api/v1/search",
            json!({"query": "database", "cluster": "nope"}),
        ),
        (
            "/api/v1/search",
            json!({"query": "database", "cluster": "nope", "ask": true}),
        ),
        ("/api/v1/search/count", json!({"cluster": "nope"})),
    ] {
        let (status, answer) = h.send(reqwest::Method::POST, path, Some(&body)).await;
        assert_eq!((status, &answer), (404, &expected), "{path} {body}");
    }
    // A known cluster with nothing that matches is an empty answer, not an error.
    let (status, answer) = h
        .send(
            reqwest::Method::POST,
            "/api/v1/search",
            Some(&json!({"query": "zzz", "mode": "keyword", "cluster": "gamma"})),
        )
        .await;
    assert_eq!((status, answer), (200, json!({"results": []})));
}

/// Eight watcher-like writers sync changed objects as fast as the server takes them (each
/// sync waits on the embedding provider), so the four write slots stay full and writes are
/// turned away; meanwhile 50 searches at once are all answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_every_write_slot_taken_fifty_parallel_searches_get_no_503() {
    let h = Arc::new(Harness::start().await);
    fleet(&h).await;
    h.voyage.set_delay(Duration::from_millis(300));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writes_shed = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (h, stop, shed) = (h.clone(), stop.clone(), writes_shed.clone());
        writers.push(tokio::spawn(async move {
            let mut round = 0;
            while !stop.load(Ordering::SeqCst) {
                round += 1;
                let changed = with_health(&format!("w{w}-{round}"), "Current");
                let body = json!({"cluster": format!("writer-{w}"), "upserts": [changed]});
                let (status, _) = h
                    .send(reqwest::Method::POST, "/api/v1/instances/sync", Some(&body))
                    .await;
                if status == 503 {
                    shed.fetch_add(1, Ordering::SeqCst);
                    // The other writers hold the slots meanwhile; a watcher would wait longer.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }));
    }
    // Let the writers fill the slots.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let searches: Vec<_> = (0..50)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move {
                let body = json!({"query": format!("database {i}"), "cluster": "alpha"});
                h.send(reqwest::Method::POST, "/api/v1/search", Some(&body))
                    .await
            })
        })
        .collect();
    let started = std::time::Instant::now();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for s in searches {
        let (status, body) = s.await.unwrap();
        assert_ne!(status, 503, "{body}");
        *statuses.entry(status).or_default() += 1;
    }
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    eprintln!(
        "50 searches under a full write load: {statuses:?} in {:.1} s; writes shed meanwhile: {}",
        started.elapsed().as_secs_f64(),
        writes_shed.load(Ordering::SeqCst)
    );
    assert_eq!(statuses, BTreeMap::from([(200, 50)]));
    assert!(
        writes_shed.load(Ordering::SeqCst) > 0,
        "the writers never filled the write slots: the test proves nothing"
    );
}
