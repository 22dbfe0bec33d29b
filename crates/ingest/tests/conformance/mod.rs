//! The [`VectorStore`] conformance suite: what the pipeline relies on from any store, run
//! unchanged against the embedded store, Chroma and Qdrant. Each case takes `&dyn VectorStore` and
//! uses collections of its own, so a shared server can run them all.
//!
//! To run the suite on a store, in a test file:
//! ```ignore
//! #[macro_use]
//! mod conformance;
//! async fn make() -> conformance::Harness { /* a fresh store, plus what keeps it alive */ }
//! conformance_suite!(make);
//! ```

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};

use ingest::embed::ModelInfo;
use ingest::store::{Filter, Hit, MetaValue, Metadata, Record, StoreError, VectorStore};

/// A store under test and whatever must live as long as it (a temp dir, a server process).
pub struct Harness {
    pub store: std::sync::Arc<dyn VectorStore>,
    pub guard: Box<dyn std::any::Any + Send>,
}

impl Harness {
    /// A harness over the store `client` makes for a server that `start` starts (blocking
    /// while it waits for the server to be ready) and the harness keeps alive.
    pub async fn on_server<S, V>(start: fn() -> S, client: impl FnOnce(&S) -> V) -> Harness
    where
        S: Send + 'static,
        V: VectorStore + 'static,
    {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = tokio::task::spawn_blocking(start)
            .await
            .expect("start the store server");
        Harness {
            store: std::sync::Arc::new(client(&server)),
            guard: Box::new(server),
        }
    }
}

/// One `#[tokio::test]` per case, each on a fresh store from `$make` (an async fn returning
/// a [`Harness`]).
#[macro_export]
macro_rules! conformance_suite {
    ($make:path) => {
        conformance_suite!(@cases $make;
            upserted_records_come_back_with_document_metadata_and_hash,
            upsert_replaces_the_record_with_the_same_id,
            delete_removes_records_and_ignores_unknown_ids,
            content_hashes_answers_only_for_stored_ids,
            vectors_come_back_for_stored_ids_pointing_the_same_way,
            vectors_by_text_answer_one_vector_per_stored_text_of_any_cluster,
            all_hashes_lists_every_stored_id,
            all_hashes_with_a_filter_lists_one_clusters_ids,
            tally_counts_documents_by_the_values_of_keys,
            merge_metadata_changes_the_given_keys_only_and_skips_unknown_ids,
            query_orders_hits_by_cosine_distance,
            query_limit_caps_the_hits,
            query_with_eq_filter_returns_only_matching_records,
            query_with_in_filter_returns_records_matching_any_value,
            query_with_and_filter_requires_every_condition,
            or_filters_match_any_branch_and_no_branch_matches_nothing,
            filters_on_label_keys_with_dots_and_slashes,
            filter_on_a_value_nobody_has_returns_nothing,
            get_with_filter_returns_matching_records_up_to_the_limit,
            count_is_per_collection,
            ensure_collection_refuses_a_different_model,
            large_batches_are_stored_whole,
        );
        conformance_suite!(@shared_cases $make;
            cluster_records_outlive_their_writer_and_are_shared_by_every_replica,
            a_clusters_record_is_written_at_most_once_per_interval,
        );
    };
    (@shared_cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let harness = $make().await;
                conformance::$case(harness.store.clone()).await;
            }
        )*
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let harness = $make().await;
                conformance::$case(&*harness.store).await;
            }
        )*
    };
}

pub const DIM: usize = 4;

pub fn model() -> ModelInfo {
    ModelInfo {
        id: "test:conformance-4d".to_string(),
        dimension: DIM,
    }
}

/// A collection name no other case (or earlier run on a shared server) uses.
pub fn collection(case: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "conf-{case}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
    .replace('_', "-")
}

pub fn meta(pairs: &[(&str, &str)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), MetaValue::Str(v.to_string())))
        .collect()
}

pub fn record(id: &str, document: &str, metadata: Metadata, embedding: Vec<f32>) -> Record {
    Record {
        id: id.to_string(),
        document: document.to_string(),
        content_hash: format!("hash-of-{document}"),
        metadata,
        embedding,
    }
}

async fn fresh(store: &dyn VectorStore, case: &str) -> String {
    let c = collection(case);
    store
        .ensure_collection(&c, &model())
        .await
        .expect("ensure_collection on a new collection");
    c
}

fn ids(hits: &[Hit]) -> Vec<&str> {
    hits.iter().map(|h| h.id.as_str()).collect()
}

fn id_set(hits: &[Hit]) -> HashSet<&str> {
    hits.iter().map(|h| h.id.as_str()).collect()
}

fn strings(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// Four documents at known angles to `[1, 0, 0, 0]`, with kind/namespace metadata.
async fn seed_compass(store: &dyn VectorStore, c: &str) {
    let records = vec![
        record(
            "east",
            "due east",
            meta(&[("kind", "Deployment"), ("namespace", "web")]),
            vec![1.0, 0.0, 0.0, 0.0],
        ),
        // Not unit length: cosine distance ignores magnitude.
        record(
            "north-east",
            "north east",
            meta(&[("kind", "StatefulSet"), ("namespace", "db")]),
            vec![3.0, 3.0, 0.0, 0.0],
        ),
        record(
            "north",
            "due north",
            meta(&[("kind", "Deployment"), ("namespace", "db")]),
            vec![0.0, 1.0, 0.0, 0.0],
        ),
        record(
            "west",
            "due west",
            meta(&[("kind", "Service"), ("namespace", "web")]),
            vec![-1.0, 0.0, 0.0, 0.0],
        ),
    ];
    store.upsert(c, &records).await.expect("upsert");
}

const EAST: [f32; 4] = [1.0, 0.0, 0.0, 0.0];

pub async fn upserted_records_come_back_with_document_metadata_and_hash(store: &dyn VectorStore) {
    let c = fresh(store, "roundtrip").await;
    let mut metadata = meta(&[("kind", "Deployment"), ("name", "nginx")]);
    metadata.insert("replicas".into(), MetaValue::Int(3));
    metadata.insert("ready".into(), MetaValue::Bool(true));
    let r = record(
        "default/apps/v1/Deployment/nginx",
        "Deployment nginx | namespace: default",
        metadata,
        vec![0.1, 0.2, 0.3, 0.4],
    );
    store
        .upsert(&c, std::slice::from_ref(&r))
        .await
        .expect("upsert");

    let got = store.get(&c, None, 10).await.expect("get");
    assert_eq!(got.len(), 1, "one record stored: {got:?}");
    assert_eq!(got[0].id, r.id);
    assert_eq!(got[0].document, r.document);
    assert_eq!(got[0].metadata, r.metadata);
    let hashes = store
        .content_hashes(&c, std::slice::from_ref(&r.id))
        .await
        .expect("content_hashes");
    assert_eq!(hashes.get(&r.id), Some(&r.content_hash));
    let hits = store
        .query(&c, &[0.1, 0.2, 0.3, 0.4], None, 5)
        .await
        .expect("query");
    assert_eq!(ids(&hits), [r.id.as_str()]);
    assert!(
        hits[0].distance.abs() < 1e-4,
        "identical vector is at distance 0: {}",
        hits[0].distance
    );
    assert_eq!(hits[0].metadata, r.metadata);
}

pub async fn upsert_replaces_the_record_with_the_same_id(store: &dyn VectorStore) {
    let c = fresh(store, "replace").await;
    store
        .upsert(
            &c,
            &[record(
                "a",
                "first",
                meta(&[("kind", "Pod")]),
                vec![1.0, 0.0, 0.0, 0.0],
            )],
        )
        .await
        .expect("first upsert");
    store
        .upsert(
            &c,
            &[record(
                "a",
                "second",
                meta(&[("kind", "Service")]),
                vec![0.0, 1.0, 0.0, 0.0],
            )],
        )
        .await
        .expect("second upsert");

    assert_eq!(store.count(&c).await.expect("count"), 1);
    let got = store.get(&c, None, 10).await.expect("get");
    assert_eq!(got[0].document, "second");
    assert_eq!(got[0].metadata, meta(&[("kind", "Service")]));
    let hashes = store.all_hashes(&c, None).await.expect("all_hashes");
    assert_eq!(
        hashes,
        HashMap::from([("a".to_string(), "hash-of-second".to_string())])
    );
    // The old metadata and vector are gone, not merged.
    let old = store
        .get(&c, Some(&Filter::Eq("kind".into(), "Pod".into())), 10)
        .await
        .expect("get");
    assert!(old.is_empty(), "old metadata still matches: {old:?}");
    let hits = store
        .query(&c, &[0.0, 1.0, 0.0, 0.0], None, 1)
        .await
        .expect("query");
    assert!(
        hits[0].distance.abs() < 1e-4,
        "new vector is stored: {hits:?}"
    );
}

pub async fn delete_removes_records_and_ignores_unknown_ids(store: &dyn VectorStore) {
    let c = fresh(store, "delete").await;
    seed_compass(store, &c).await;
    store
        .delete(&c, &strings(&["east", "no-such-id"]))
        .await
        .expect("delete with an unknown id succeeds");
    assert_eq!(store.count(&c).await.expect("count"), 3);
    let hits = store.query(&c, &EAST, None, 10).await.expect("query");
    assert!(
        !ids(&hits).contains(&"east"),
        "deleted record still found: {hits:?}"
    );
    let hashes = store
        .content_hashes(&c, &strings(&["east", "west"]))
        .await
        .expect("hashes");
    assert_eq!(hashes.keys().collect::<Vec<_>>(), ["west"]);
    store.delete(&c, &[]).await.expect("empty delete");
    assert_eq!(store.count(&c).await.expect("count"), 3);
}

pub async fn content_hashes_answers_only_for_stored_ids(store: &dyn VectorStore) {
    let c = fresh(store, "hashes").await;
    seed_compass(store, &c).await;
    let hashes = store
        .content_hashes(&c, &strings(&["north", "nowhere", "west"]))
        .await
        .expect("content_hashes");
    assert_eq!(
        hashes,
        HashMap::from([
            ("north".to_string(), "hash-of-due north".to_string()),
            ("west".to_string(), "hash-of-due west".to_string()),
        ])
    );
    assert!(store
        .content_hashes(&c, &[])
        .await
        .expect("empty")
        .is_empty());
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// What a change of metadata alone relies on: the stored vector can be read back and
/// written again unchanged (a store may normalise it; the direction is what counts).
pub async fn vectors_come_back_for_stored_ids_pointing_the_same_way(store: &dyn VectorStore) {
    let c = fresh(store, "vectors").await;
    let v = vec![0.5, -1.5, 2.0, 0.25];
    store
        .upsert(&c, &[record("a", "doc a", meta(&[]), v.clone())])
        .await
        .expect("upsert");
    let got = store
        .vectors(&c, &strings(&["a", "nowhere"]))
        .await
        .expect("vectors");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(cosine(&got["a"], &v) > 0.9999, "{:?}", got["a"]);
    assert!(store.vectors(&c, &[]).await.expect("empty").is_empty());
}

pub async fn vectors_by_text_answer_one_vector_per_stored_text_of_any_cluster(
    store: &dyn VectorStore,
) {
    use ingest::store::keys::TEXT_HASH_KEY;
    let c = fresh(store, "bytext").await;
    let other = fresh(store, "bytext-other").await;
    let doc = |id: &str, cluster: &str, text: &str, v: &[f32]| {
        record(
            id,
            text,
            meta(&[("cluster", cluster), (TEXT_HASH_KEY, &format!("th-{text}"))]),
            v.to_vec(),
        )
    };
    let shared = [0.5, -1.5, 2.0, 0.25];
    // 30 clusters' copies of one text, written first: a page of copies of it must not hide
    // the other texts asked for with it.
    let copies: Vec<Record> = (0..30)
        .map(|i| doc(&format!("c{i}:x"), &format!("c{i}"), "shared", &shared))
        .collect();
    store.upsert(&c, &copies).await.expect("upsert copies");
    store
        .upsert(
            &c,
            &[
                doc("a:y", "a", "own", &[0.0, 1.0, 0.0, 0.0]),
                doc("b:z", "b", "gone", &[1.0, 0.0, 0.0, 0.0]),
                doc("b:w", "b", "last", &[0.0, 0.0, 1.0, 0.0]),
            ],
        )
        .await
        .expect("upsert");
    store
        .upsert(&other, &[doc("a:v", "a", "elsewhere", &EAST)])
        .await
        .expect("upsert other");
    store.delete(&c, &strings(&["b:z"])).await.expect("delete");

    let asked = strings(&[
        "th-shared",
        "th-own",
        "th-gone",
        "th-elsewhere",
        "th-last",
        "th-no",
    ]);
    let got = store
        .vectors_by_text(&c, &asked)
        .await
        .expect("vectors_by_text");
    let mut found: Vec<&str> = got.keys().map(String::as_str).collect();
    found.sort();
    // Not a deleted document's text, nor another collection's, nor one nobody has.
    assert_eq!(found, ["th-last", "th-own", "th-shared"], "{got:?}");
    assert!(cosine(&got["th-shared"], &shared) > 0.9999);
    assert!(cosine(&got["th-own"], &[0.0, 1.0, 0.0, 0.0]) > 0.9999);
    assert!(cosine(&got["th-last"], &[0.0, 0.0, 1.0, 0.0]) > 0.9999);
    assert!(store
        .vectors_by_text(&c, &[])
        .await
        .expect("nothing asked")
        .is_empty());
    let missing = collection("bytext-missing");
    assert!(store
        .vectors_by_text(&missing, &asked)
        .await
        .expect("a collection that does not exist holds no text")
        .is_empty());
}

pub async fn all_hashes_lists_every_stored_id(store: &dyn VectorStore) {
    let c = fresh(store, "allhashes").await;
    assert!(store
        .all_hashes(&c, None)
        .await
        .expect("empty collection")
        .is_empty());
    seed_compass(store, &c).await;
    let hashes = store.all_hashes(&c, None).await.expect("all_hashes");
    let expected: BTreeMap<_, _> = [
        ("east", "due east"),
        ("north-east", "north east"),
        ("north", "due north"),
        ("west", "due west"),
    ]
    .into_iter()
    .map(|(id, doc)| (id.to_string(), format!("hash-of-{doc}")))
    .collect();
    assert_eq!(hashes.into_iter().collect::<BTreeMap<_, _>>(), expected);
}

pub async fn query_orders_hits_by_cosine_distance(store: &dyn VectorStore) {
    let c = fresh(store, "order").await;
    seed_compass(store, &c).await;
    let hits = store.query(&c, &EAST, None, 10).await.expect("query");
    assert_eq!(ids(&hits), ["east", "north-east", "north", "west"]);
    let expected = [0.0, 1.0 - std::f32::consts::FRAC_1_SQRT_2, 1.0, 2.0];
    for (hit, want) in hits.iter().zip(expected) {
        assert!(
            (hit.distance - want).abs() < 1e-3,
            "{}: distance {} want {want}",
            hit.id,
            hit.distance
        );
    }
    // A query vector's magnitude does not matter either.
    let scaled = store
        .query(&c, &[5.0, 0.0, 0.0, 0.0], None, 10)
        .await
        .expect("query");
    assert_eq!(ids(&scaled), ids(&hits));
}

pub async fn query_limit_caps_the_hits(store: &dyn VectorStore) {
    let c = fresh(store, "limit").await;
    seed_compass(store, &c).await;
    let hits = store.query(&c, &EAST, None, 2).await.expect("query");
    assert_eq!(ids(&hits), ["east", "north-east"]);
    let all = store
        .query(&c, &EAST, None, 100)
        .await
        .expect("query past the count");
    assert_eq!(all.len(), 4);
}

pub async fn query_with_eq_filter_returns_only_matching_records(store: &dyn VectorStore) {
    let c = fresh(store, "eq").await;
    seed_compass(store, &c).await;
    let filter = Filter::Eq("namespace".into(), "db".into());
    let hits = store
        .query(&c, &EAST, Some(&filter), 10)
        .await
        .expect("query");
    assert_eq!(ids(&hits), ["north-east", "north"]);
    for hit in &hits {
        assert_eq!(
            hit.metadata.get("namespace"),
            Some(&MetaValue::Str("db".into()))
        );
    }
}

pub async fn query_with_in_filter_returns_records_matching_any_value(store: &dyn VectorStore) {
    let c = fresh(store, "in").await;
    seed_compass(store, &c).await;
    let filter = Filter::In("kind".into(), strings(&["Service", "StatefulSet"]));
    let hits = store
        .query(&c, &EAST, Some(&filter), 10)
        .await
        .expect("query");
    assert_eq!(ids(&hits), ["north-east", "west"]);
}

pub async fn query_with_and_filter_requires_every_condition(store: &dyn VectorStore) {
    let c = fresh(store, "and").await;
    seed_compass(store, &c).await;
    let filter = Filter::And(vec![
        Filter::Eq("kind".into(), "Deployment".into()),
        Filter::In("namespace".into(), strings(&["db", "cache"])),
    ]);
    let hits = store
        .query(&c, &EAST, Some(&filter), 10)
        .await
        .expect("query");
    assert_eq!(ids(&hits), ["north"]);
}

/// What a caller's scope compiles to: (namespace and kinds) or (another namespace and
/// kind), nested in an `And`; an `Or` without branches matches nothing, never everything.
pub async fn or_filters_match_any_branch_and_no_branch_matches_nothing(store: &dyn VectorStore) {
    let c = fresh(store, "or").await;
    seed_compass(store, &c).await;
    let scope = Filter::Or(vec![
        Filter::And(vec![
            Filter::Eq("namespace".into(), "web".into()),
            Filter::In("kind".into(), strings(&["Service", "Ingress"])),
        ]),
        Filter::And(vec![
            Filter::Eq("namespace".into(), "db".into()),
            Filter::Eq("kind".into(), "Deployment".into()),
        ]),
    ]);
    let hits = store
        .query(&c, &EAST, Some(&scope), 10)
        .await
        .expect("query");
    assert_eq!(ids(&hits), ["north", "west"]);
    let got = store.get(&c, Some(&scope), 10).await.expect("get");
    assert_eq!(id_set(&got), HashSet::from(["north", "west"]));
    let tally = store
        .tally(&c, Some(&scope), &["kind"])
        .await
        .expect("tally");
    assert_eq!(tally.values().sum::<usize>(), 2, "{tally:?}");

    // Within a request's own filter, as the search adds the scope to it.
    let narrowed = Filter::And(vec![Filter::Eq("kind".into(), "Service".into()), scope]);
    let hits = store
        .query(&c, &EAST, Some(&narrowed), 10)
        .await
        .expect("query");
    assert_eq!(ids(&hits), ["west"]);

    let nothing = Filter::Or(vec![]);
    let hits = store
        .query(&c, &EAST, Some(&nothing), 10)
        .await
        .expect("query");
    assert!(hits.is_empty(), "an empty Or matched {hits:?}");
    let got = store.get(&c, Some(&nothing), 10).await.expect("get");
    assert!(got.is_empty(), "an empty Or matched {got:?}");
    let tally = store.tally(&c, Some(&nothing), &[]).await.expect("tally");
    assert_eq!(tally.values().sum::<usize>(), 0, "{tally:?}");
    let inside = Filter::And(vec![Filter::Eq("kind".into(), "Service".into()), nothing]);
    let got = store.get(&c, Some(&inside), 10).await.expect("get");
    assert!(got.is_empty(), "an empty Or inside an And matched {got:?}");
}

pub async fn filters_on_label_keys_with_dots_and_slashes(store: &dyn VectorStore) {
    let c = fresh(store, "labels").await;
    store
        .upsert(
            &c,
            &[
                record(
                    "pg",
                    "postgres",
                    meta(&[("label.app.kubernetes.io/name", "postgresql")]),
                    vec![1.0, 0.0, 0.0, 0.0],
                ),
                record(
                    "web",
                    "nginx",
                    meta(&[("label.app.kubernetes.io/name", "nginx")]),
                    vec![1.0, 0.1, 0.0, 0.0],
                ),
            ],
        )
        .await
        .expect("upsert");
    let filter = Filter::Eq("label.app.kubernetes.io/name".into(), "postgresql".into());
    let hits = store
        .query(&c, &EAST, Some(&filter), 10)
        .await
        .expect("query");
    assert_eq!(ids(&hits), ["pg"]);
    let got = store.get(&c, Some(&filter), 10).await.expect("get");
    assert_eq!(ids(&got), ["pg"]);
}

pub async fn filter_on_a_value_nobody_has_returns_nothing(store: &dyn VectorStore) {
    let c = fresh(store, "nomatch").await;
    seed_compass(store, &c).await;
    for filter in [
        Filter::Eq("kind".into(), "CronJob".into()),
        Filter::Eq("no-such-key".into(), "Deployment".into()),
        Filter::In("kind".into(), strings(&["CronJob", "Job"])),
        Filter::And(vec![
            Filter::Eq("kind".into(), "Service".into()),
            Filter::Eq("namespace".into(), "db".into()),
        ]),
    ] {
        let hits = store
            .query(&c, &EAST, Some(&filter), 10)
            .await
            .expect("query");
        assert!(hits.is_empty(), "{filter:?} matched {hits:?}");
        let got = store.get(&c, Some(&filter), 10).await.expect("get");
        assert!(got.is_empty(), "{filter:?} matched {got:?}");
    }
}

pub async fn get_with_filter_returns_matching_records_up_to_the_limit(store: &dyn VectorStore) {
    let c = fresh(store, "get").await;
    seed_compass(store, &c).await;
    let filter = Filter::Eq("kind".into(), "Deployment".into());
    let got = store.get(&c, Some(&filter), 10).await.expect("get");
    assert_eq!(id_set(&got), HashSet::from(["east", "north"]));
    let one = store
        .get(&c, Some(&filter), 1)
        .await
        .expect("get with limit");
    assert_eq!(one.len(), 1);
    assert!(["east", "north"].contains(&one[0].id.as_str()));
    let all = store.get(&c, None, 100).await.expect("get all");
    assert_eq!(all.len(), 4);
}

pub async fn count_is_per_collection(store: &dyn VectorStore) {
    let a = fresh(store, "count-a").await;
    let b = fresh(store, "count-b").await;
    assert_eq!(store.count(&a).await.expect("count"), 0);
    seed_compass(store, &a).await;
    store
        .upsert(
            &b,
            &[record(
                "only",
                "only one",
                meta(&[]),
                vec![0.0, 0.0, 1.0, 0.0],
            )],
        )
        .await
        .expect("upsert");
    assert_eq!(store.count(&a).await.expect("count a"), 4);
    assert_eq!(store.count(&b).await.expect("count b"), 1);
    let hits = store.query(&b, &EAST, None, 10).await.expect("query b");
    assert_eq!(ids(&hits), ["only"]);
}

pub async fn ensure_collection_refuses_a_different_model(store: &dyn VectorStore) {
    let c = fresh(store, "models").await;
    seed_compass(store, &c).await;
    store
        .ensure_collection(&c, &model())
        .await
        .expect("the same model is accepted again");
    for other in [
        ModelInfo {
            id: "voyage:voyage-3.5".into(),
            dimension: DIM,
        },
        ModelInfo {
            id: model().id,
            dimension: DIM * 2,
        },
    ] {
        match store.ensure_collection(&c, &other).await {
            Err(StoreError::Rejected(msg)) => {
                assert!(
                    msg.contains(&model().id),
                    "message names the stored model: {msg}"
                );
                assert!(
                    msg.contains(&other.id),
                    "message names the new model: {msg}"
                );
            }
            other_result => panic!("mixing models must be rejected, got {other_result:?}"),
        }
    }
    assert_eq!(
        store.count(&c).await.expect("count"),
        4,
        "refusal changes nothing"
    );
}

/// splitmix64 of `x`, mapped to [-1, 1).
fn noise(x: u64) -> f32 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

pub async fn large_batches_are_stored_whole(store: &dyn VectorStore) {
    let c = collection("large");
    let big = ModelInfo {
        id: "test:conformance-384d".into(),
        dimension: 384,
    };
    store.ensure_collection(&c, &big).await.expect("ensure");
    let n = 2_500;
    let records: Vec<Record> = (0..n)
        .map(|i| {
            // Distinct, deterministic, pseudo-random directions.
            let embedding: Vec<f32> = (0..384).map(|j| noise((i * 384 + j) as u64)).collect();
            record(
                &format!("ns-{}/v1/ConfigMap/cm-{i}", i % 7),
                &format!("ConfigMap cm-{i} | namespace: ns-{}", i % 7),
                meta(&[
                    ("namespace", &format!("ns-{}", i % 7)),
                    ("kind", "ConfigMap"),
                ]),
                embedding,
            )
        })
        .collect();
    store.upsert(&c, &records).await.expect("one large upsert");
    assert_eq!(store.count(&c).await.expect("count"), n);
    assert_eq!(
        store.all_hashes(&c, None).await.expect("all_hashes").len(),
        n
    );
    let probe = &records[1234];
    let hits = store
        .query(&c, &probe.embedding, None, 3)
        .await
        .expect("query");
    assert_eq!(hits[0].id, probe.id);
    let ns3 = store
        .get(
            &c,
            Some(&Filter::Eq("namespace".into(), "ns-3".into())),
            10_000,
        )
        .await
        .expect("get");
    assert_eq!(ns3.len(), (0..n).filter(|i| i % 7 == 3).count());
}

/// Two clusters' records: a filtered listing (what a cluster's hashes endpoint reads) holds
/// that cluster's ids only.
pub async fn all_hashes_with_a_filter_lists_one_clusters_ids(store: &dyn VectorStore) {
    let c = fresh(store, "hashes-cluster").await;
    let records = vec![
        record(
            "alpha:a",
            "a1",
            meta(&[("cluster", "alpha")]),
            vec![1.0, 0.0, 0.0, 0.0],
        ),
        record(
            "alpha:b",
            "b1",
            meta(&[("cluster", "alpha")]),
            vec![0.0, 1.0, 0.0, 0.0],
        ),
        record(
            "beta:a",
            "a2",
            meta(&[("cluster", "beta")]),
            vec![0.0, 0.0, 1.0, 0.0],
        ),
    ];
    store.upsert(&c, &records).await.expect("upsert");
    let alpha = store
        .all_hashes(&c, Some(&Filter::Eq("cluster".into(), "alpha".into())))
        .await
        .expect("all_hashes alpha");
    assert_eq!(
        alpha,
        HashMap::from([
            ("alpha:a".to_string(), "hash-of-a1".to_string()),
            ("alpha:b".to_string(), "hash-of-b1".to_string()),
        ])
    );
    let none = store
        .all_hashes(&c, Some(&Filter::Eq("cluster".into(), "gamma".into())))
        .await
        .expect("all_hashes gamma");
    assert!(none.is_empty(), "{none:?}");
    assert_eq!(store.all_hashes(&c, None).await.expect("all").len(), 3);
}

/// Counting by metadata values: one entry per combination of the keys' values, `None`
/// where a document lacks a key (or holds no string there), the filter applied first; no
/// keys give the total.
pub async fn tally_counts_documents_by_the_values_of_keys(store: &dyn VectorStore) {
    let c = fresh(store, "tally").await;
    let mut records = Vec::new();
    for (i, (cluster, health)) in [
        ("alpha", Some("Current")),
        ("alpha", Some("Current")),
        ("alpha", Some("Failed")),
        ("alpha", None),
        ("beta", Some("Current")),
    ]
    .into_iter()
    .enumerate()
    {
        let mut m = meta(&[("cluster", cluster), ("kind", "Pod")]);
        if let Some(h) = health {
            m.insert("health".into(), MetaValue::Str(h.into()));
        }
        m.insert("replicas".into(), MetaValue::Int(i as i64));
        let mut v = vec![0.0; DIM];
        v[i % DIM] = 1.0;
        records.push(record(&format!("{cluster}:pod-{i}"), "Pod", m, v));
    }
    store.upsert(&c, &records).await.expect("upsert");
    let s = |v: &str| Some(v.to_string());

    let by_cluster_and_health = store
        .tally(&c, None, &["cluster", "health"])
        .await
        .expect("tally");
    assert_eq!(
        by_cluster_and_health,
        HashMap::from([
            (vec![s("alpha"), s("Current")], 2),
            (vec![s("alpha"), s("Failed")], 1),
            (vec![s("alpha"), None], 1),
            (vec![s("beta"), s("Current")], 1),
        ])
    );
    let alpha = Filter::Eq("cluster".into(), "alpha".into());
    assert_eq!(
        store
            .tally(&c, Some(&alpha), &["kind"])
            .await
            .expect("tally"),
        HashMap::from([(vec![s("Pod")], 4)])
    );
    assert_eq!(
        store.tally(&c, None, &[]).await.expect("total"),
        HashMap::from([(vec![], 5)])
    );
    // A key nobody has, and one whose values are not strings.
    assert_eq!(
        store
            .tally(&c, None, &["owner", "replicas"])
            .await
            .expect("tally"),
        HashMap::from([(vec![None, None], 5)])
    );
    let gamma = Filter::Eq("cluster".into(), "gamma".into());
    assert!(store
        .tally(&c, Some(&gamma), &["health"])
        .await
        .expect("tally")
        .is_empty());
    assert!(store
        .tally("no-such-collection", None, &["health"])
        .await
        .expect("tally of a missing collection")
        .is_empty());
}

/// A metadata change alone: the given keys change and filter, the others stay, and the
/// vector, document and hash are untouched.
pub async fn merge_metadata_changes_the_given_keys_only_and_skips_unknown_ids(
    store: &dyn VectorStore,
) {
    let c = fresh(store, "merge-metadata").await;
    store
        .upsert(
            &c,
            &[record(
                "t",
                "doc",
                meta(&[("kind", "Cluster"), ("cw_clusters", "alpha=h")]),
                vec![1.0, 0.0, 0.0, 0.0],
            )],
        )
        .await
        .expect("upsert");
    store
        .merge_metadata(
            &c,
            &[
                ("t".to_string(), meta(&[("cw_clusters", "alpha=h,beta=h")])),
                ("unknown".to_string(), meta(&[("cw_clusters", "x=h")])),
            ],
        )
        .await
        .expect("merge_metadata");
    let got = store.get(&c, None, 10).await.expect("get");
    assert_eq!(ids(&got), ["t"], "no record made for an unknown id");
    assert_eq!(
        got[0].metadata,
        meta(&[("kind", "Cluster"), ("cw_clusters", "alpha=h,beta=h")])
    );
    assert_eq!(got[0].document, "doc");
    let filtered = store
        .get(
            &c,
            Some(&Filter::Eq("cw_clusters".into(), "alpha=h,beta=h".into())),
            10,
        )
        .await
        .expect("get filtered");
    assert_eq!(ids(&filtered), ["t"]);
    assert_eq!(
        store.all_hashes(&c, None).await.expect("hashes")["t"],
        "hash-of-doc"
    );
    let hits = store
        .query(&c, &[1.0, 0.0, 0.0, 0.0], None, 1)
        .await
        .expect("query");
    assert!(
        hits[0].distance.abs() < 1e-5,
        "the vector is kept: {hits:?}"
    );
}

// The cluster records (`ingest::clusters`): a collection of their own beside the instances.

use ingest::clusters::{ClusterRegistry, Heard};
use sync_model::ClusterId;

/// Two registries on one store are two `cw serve` replicas, or one server before and after
/// a restart: what one wrote the other reads, and a contact one hears never erases the sync
/// the other recorded.
pub async fn cluster_records_outlive_their_writer_and_are_shared_by_every_replica(
    store: std::sync::Arc<dyn VectorStore>,
) {
    let instances = collection("records");
    let alpha = ClusterId::new("alpha").unwrap();
    let first = ClusterRegistry::new(store.clone(), &instances);
    assert!(
        first.records().await.unwrap().is_empty(),
        "nothing before the first write"
    );
    first.heard(&alpha, Heard::Sync).await;
    let synced = first.records().await.unwrap()[&alpha].clone();
    assert!(
        synced.last_sync.is_some() && synced.last_contact.is_some(),
        "{synced:?}"
    );

    let second = ClusterRegistry::new(store.clone(), &instances);
    let beta = ClusterId::new("beta").unwrap();
    second.heard(&beta, Heard::Contact).await;
    second.heard(&alpha, Heard::Contact).await;
    let records = second.records().await.unwrap();
    assert_eq!(records.keys().collect::<Vec<_>>(), [&alpha, &beta]);
    assert_eq!(
        records[&alpha].last_sync, synced.last_sync,
        "a contact keeps the sync"
    );
    assert!(records[&alpha].last_contact >= synced.last_contact);
    assert_eq!(records[&beta].last_sync, None, "beta was never synced");

    assert!(first.forget(&alpha).await.unwrap());
    assert!(!second.forget(&alpha).await.unwrap(), "already gone");
    let left = second.records().await.unwrap();
    assert_eq!(left.keys().collect::<Vec<_>>(), [&beta]);
    // The records live apart from the instances they describe.
    assert_eq!(store.count(&instances).await.unwrap(), 0);
}

/// A busy watcher costs a write or two per interval, not one per request: the first sync
/// after a contact is written at once, the next within the interval at its end.
pub async fn a_clusters_record_is_written_at_most_once_per_interval(
    store: std::sync::Arc<dyn VectorStore>,
) {
    let instances = collection("throttle");
    let gamma = ClusterId::new("gamma").unwrap();
    let interval = std::time::Duration::from_millis(1_500);
    let registry = ClusterRegistry::with_write_interval(store.clone(), &instances, interval);
    registry.heard(&gamma, Heard::Contact).await;
    registry.heard(&gamma, Heard::Sync).await;
    let first = registry.records().await.unwrap()[&gamma].clone();
    assert!(
        first.last_sync.is_some(),
        "the first sync is written at once"
    );
    // Wait for the next whole second: RFC 3339 times here have whole seconds.
    tokio::time::sleep(std::time::Duration::from_millis(1_050)).await;
    registry.heard(&gamma, Heard::Sync).await;
    let held = registry.records().await.unwrap()[&gamma].clone();
    // (Its objects' recount may land meanwhile: it is not held back.)
    assert_eq!(
        (held.last_sync, held.last_contact),
        (first.last_sync, first.last_contact),
        "a second sync within the interval is held back"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
    let later = registry.records().await.unwrap()[&gamma].clone();
    assert!(
        later.last_sync > first.last_sync,
        "and written at its end: {later:?}"
    );
}
