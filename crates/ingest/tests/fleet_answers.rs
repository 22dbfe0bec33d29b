//! Answers across a fleet through the search API, on the real Chroma server (the Qdrant test
//! server when run as fleet_answers_qdrant; the Voyage stand-in embeds): a question about health lists every cluster's unhealthy objects of what
//! it names and counts them per cluster, saying "none" only for a cluster whose store holds
//! none; a large cluster does not take a fleet-wide page from a small one; and a fleet-wide
//! question costs the store the same few reads whatever the number of clusters.

mod common;

use common::{instance, Harness};
use serde_json::{json, Value};

/// A StatefulSet running `image`, of `health` ("Current", "InProgress", "Failed").
fn workload(name: &str, image: &str, health: &str) -> Value {
    let mut o = instance("data", "StatefulSet", name, json!({"app": name}));
    o["images"] = json!([image]);
    o["health"] = json!({"status": health, "reason": "2/3 replicas ready"});
    o
}

async fn sync(h: &Harness, cluster: &str, upserts: Vec<Value>) {
    let (status, body) = h
        .post_sync(&json!({"cluster": cluster, "upserts": upserts, "deletes": []}))
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn search(h: &Harness, body: Value) -> Value {
    let resp = h
        .http
        .post(format!("{}/api/v1/search", h.url))
        .json(&body)
        .send()
        .await
        .expect("the server answers");
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.expect("a JSON answer")
}

/// `cluster/name` of every answer of an ask.
fn answered(answer: &Value) -> Vec<String> {
    let mut out: Vec<String> = answer["types"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["instances"].as_array().into_iter().flatten())
        .map(|i| {
            format!(
                "{}/{}",
                i["cluster"].as_str().unwrap_or(""),
                i["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    out.sort();
    out
}

fn count_of<'a>(answer: &'a Value, cluster: &str) -> &'a Value {
    answer["clusters"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["cluster"] == cluster))
        .unwrap_or_else(|| panic!("no count for {cluster} in {answer}"))
}

#[tokio::test]
async fn a_health_question_lists_and_counts_every_clusters_unhealthy_answers_and_says_none_only_where_none_is(
) {
    let h = Harness::start().await;
    // A large cluster: many healthy databases and many unhealthy objects that are none
    // (in-house images), nearer to nothing in particular; two unhealthy databases, one a
    // Redis (a key-value store: a database too).
    let mut big = Vec::new();
    for i in 0..60 {
        big.push(workload(
            &format!("orders-db-{i}"),
            "postgres:16",
            "Current",
        ));
    }
    for i in 0..40 {
        big.push(workload(
            &format!("billing-api-{i}"),
            "ghcr.io/acme/billing:1",
            "InProgress",
        ));
    }
    big.push(workload("ledger-db", "postgres:16", "InProgress"));
    big.push(workload("sessions", "redis:7.2", "Failed"));
    sync(&h, "big", big).await;
    // A small cluster with one unhealthy database, and a calm one whose database is healthy.
    sync(
        &h,
        "small",
        vec![workload("catalog", "mysql:8", "InProgress")],
    )
    .await;
    sync(&h, "calm", vec![workload("reports", "mongo:7", "Current")]).await;

    let answer = search(
        &h,
        json!({"query": "are any databases unhealthy?", "ask": true, "limit": 20}),
    )
    .await;
    assert_eq!(
        answered(&answer),
        ["big/ledger-db", "big/sessions", "small/catalog"],
        "{answer}"
    );
    assert_eq!(answer["noneWithHealth"], Value::Null, "{answer}");
    assert_eq!(
        *count_of(&answer, "big"),
        json!({"cluster": "big", "shown": 2, "total": 2})
    );
    assert_eq!(
        *count_of(&answer, "small"),
        json!({"cluster": "small", "shown": 1, "total": 1})
    );
    assert_eq!(
        *count_of(&answer, "calm"),
        json!({"cluster": "calm", "shown": 0, "total": 0})
    );

    // One cluster asked: its answers, and a page too small says how many more there are.
    let answer = search(
        &h,
        json!({"query": "are any databases unhealthy?", "ask": true, "limit": 1, "cluster": "big"}),
    )
    .await;
    assert_eq!(answered(&answer).len(), 1, "{answer}");
    assert_eq!(
        *count_of(&answer, "big"),
        json!({"cluster": "big", "shown": 1, "total": 2})
    );

    // The calm cluster alone: none is unhealthy, said so, with its database of any health.
    let answer = search(
        &h,
        json!({"query": "are any databases unhealthy?", "ask": true, "cluster": "calm"}),
    )
    .await;
    assert_eq!(answer["noneWithHealth"], true, "{answer}");
    assert_eq!(answered(&answer), ["calm/reports"], "{answer}");

    // A fleet-wide search gives the small clusters their share of a page the large one
    // would fill, and says so per cluster.
    let found = search(&h, json!({"query": "database", "limit": 6})).await;
    let clusters: Vec<&str> = found["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["cluster"].as_str().unwrap_or(""))
        .collect();
    for c in ["big", "small", "calm"] {
        assert!(clusters.contains(&c), "{c} has no share of {clusters:?}");
        assert!(count_of(&found, c)["shown"].as_u64() >= Some(1), "{found}");
    }
}

/// Reads of the instances collection while `f` runs.
async fn reads_of<T>(h: &Harness, f: impl std::future::Future<Output = T>) -> (usize, T) {
    let before = h.store.read_calls();
    let out = f.await;
    (h.store.read_calls() - before, out)
}

#[tokio::test]
async fn a_fleet_wide_question_is_one_pass_over_the_store_whatever_the_number_of_clusters() {
    let h = Harness::start().await;
    // Twelve clusters running the same database, each with a failing copy of it.
    for c in 0..12 {
        let cluster = format!("c{c:02}");
        sync(
            &h,
            &cluster,
            vec![
                workload("orders-db", "postgres:16", "Current"),
                workload("cache", "redis:7.2", "Failed"),
            ],
        )
        .await;
    }
    // The clusters' objects are recounted in the background (their records' counts): let
    // those reads end before counting the questions'.
    let registry = h.state.pipeline().registry().clone();
    let ids: Vec<sync_model::ClusterId> = (0..12)
        .map(|c| sync_model::ClusterId::new(&format!("c{c:02}")).unwrap())
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !ids.iter().all(|c| registry.counts_settled(c)) {
        assert!(
            std::time::Instant::now() < deadline,
            "recounts never settled"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The first question reads the fleet's clusters (then kept for a few seconds).
    search(&h, json!({"query": "database", "limit": 12})).await;

    let (reads, found) = reads_of(&h, search(&h, json!({"query": "database", "limit": 12}))).await;
    // One vector query and the keyword reads: never one set per cluster (twelve here).
    assert!(reads <= 6, "{reads} store reads for one fleet-wide search");
    // Every cluster still has its share of the page.
    let results = found["results"].as_array().expect("results");
    assert_eq!(results.len(), 12, "{found}");
    for c in 0..12 {
        let cluster = format!("c{c:02}");
        assert_eq!(count_of(&found, &cluster)["shown"], 1, "{found}");
    }

    let (reads, answer) = reads_of(
        &h,
        search(
            &h,
            json!({"query": "are any databases unhealthy?", "ask": true, "limit": 12}),
        ),
    )
    .await;
    assert!(reads <= 12, "{reads} store reads for one fleet-wide ask");
    assert_eq!(answered(&answer).len(), 12, "{answer}");
    for c in 0..12 {
        let cluster = format!("c{c:02}");
        assert_eq!(
            *count_of(&answer, &cluster),
            json!({"cluster": cluster, "shown": 1, "total": 1}),
            "{answer}"
        );
    }
}
