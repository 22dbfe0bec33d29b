//! What the Chroma store adds beyond the shared conformance suite: large writes are split
//! (Chroma 1.5 answers 413 to one 2,000-row upsert of 1,024-dim vectors), the embedding model
//! is recorded on the collection and a different one is refused, and tenants and databases
//! are created on first use.

mod common;

use ingest::embed::ModelInfo;
use ingest::store::chroma::{ChromaConfig, ChromaStore};
use ingest::store::{MetaValue, Record, StoreError, VectorStore};
use testkit::ChromaServer;

fn model(id: &str, dimension: usize) -> ModelInfo {
    ModelInfo {
        id: id.into(),
        dimension,
    }
}

fn records(n: usize, dimension: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            id: format!("ns/v1/ConfigMap/cm-{i}"),
            document: format!("ConfigMap cm-{i} | namespace: ns | apiVersion: v1"),
            embedding: testkit::embed_text(&format!("ConfigMap cm-{i}"), dimension),
            metadata: [("kind".to_string(), MetaValue::Str("ConfigMap".into()))].into(),
            content_hash: format!("hash-{i}"),
        })
        .collect()
}

#[tokio::test]
async fn a_2000_row_upsert_of_1024_dim_vectors_is_split_and_fully_stored() {
    common::install_crypto();
    let chroma = ChromaServer::start();
    let store = ChromaStore::new(ChromaConfig::new(chroma.url())).unwrap();
    let m = model("voyage:voyage-3.5", 1024);
    store.ensure_collection("big", &m).await.unwrap();
    store.upsert("big", &records(2_000, 1024)).await.unwrap();
    assert_eq!(store.count("big").await.unwrap(), 2_000);
    let hashes = store.all_hashes("big", None).await.unwrap();
    assert_eq!(hashes.len(), 2_000);
    assert_eq!(hashes["ns/v1/ConfigMap/cm-1999"], "hash-1999");
}

#[tokio::test]
async fn a_collection_filled_by_one_model_refuses_another_with_a_message_saying_what_to_do() {
    common::install_crypto();
    let chroma = ChromaServer::start();
    let first = ChromaStore::new(ChromaConfig::new(chroma.url())).unwrap();
    first
        .ensure_collection("instances", &model("voyage:voyage-3.5", 1024))
        .await
        .unwrap();
    // A fresh process (no cache) configured with another model.
    let second = ChromaStore::new(ChromaConfig::new(chroma.url())).unwrap();
    let err = second
        .ensure_collection("instances", &model("local:all-MiniLM-L6-v2", 384))
        .await
        .unwrap_err();
    let StoreError::Rejected(message) = err else {
        panic!("expected a rejection, got {err:?}")
    };
    assert!(message.contains("voyage:voyage-3.5"), "{message}");
    assert!(message.contains("local:all-MiniLM-L6-v2"), "{message}");
    assert!(message.contains("delete the collection"), "{message}");
    // The same model is accepted again.
    second
        .ensure_collection("instances", &model("voyage:voyage-3.5", 1024))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_missing_tenant_and_database_are_created_on_first_use() {
    common::install_crypto();
    let chroma = ChromaServer::start();
    let mut config = ChromaConfig::new(chroma.url());
    config.tenant = "team-a".into();
    config.database = "clusters".into();
    let store = ChromaStore::new(config).unwrap();
    let m = model("voyage:voyage-3.5", 8);
    store.ensure_collection("instances", &m).await.unwrap();
    store.upsert("instances", &records(3, 8)).await.unwrap();
    assert_eq!(store.count("instances").await.unwrap(), 3);
}

#[tokio::test]
async fn an_unreachable_chroma_is_a_transient_error() {
    common::install_crypto();
    let port = testkit::free_port();
    let store = ChromaStore::new(ChromaConfig::new(format!("http://127.0.0.1:{port}"))).unwrap();
    let err = store
        .ensure_collection("instances", &model("voyage:voyage-3.5", 8))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(store.ready().await.unwrap_err().is_transient());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_upserts_are_all_stored_and_a_refused_row_fails_only_its_own_caller() {
    common::install_crypto();
    let chroma = ChromaServer::start();
    let store = std::sync::Arc::new(ChromaStore::new(ChromaConfig::new(chroma.url())).unwrap());
    let m = model("voyage:voyage-3.5", 64);
    store.ensure_collection("many", &m).await.unwrap();
    // Twelve callers at once (writes wait for one turn and may go to Chroma together); one
    // holds a metadata key Chroma refuses ('#...'), two hold the same id.
    let callers: Vec<Vec<Record>> = (0..12)
        .map(|c| {
            let mut rows: Vec<Record> = records(50, 64)
                .into_iter()
                .map(|mut r| {
                    r.id = format!("caller-{c}/{}", r.id);
                    r
                })
                .collect();
            if c == 7 {
                rows[20]
                    .metadata
                    .insert("#refused".into(), MetaValue::Str("x".into()));
            }
            if c < 2 {
                let mut shared = records(1, 64).remove(0);
                shared.id = "shared".into();
                shared.content_hash = format!("shared-by-{c}");
                rows.push(shared);
            }
            rows
        })
        .collect();
    let tasks: Vec<_> = callers
        .into_iter()
        .map(|rows| {
            let store = store.clone();
            tokio::spawn(async move { store.upsert("many", &rows).await })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    for (c, result) in results.iter().enumerate() {
        if c == 7 {
            assert!(
                matches!(result, Err(StoreError::Rejected(_))),
                "caller 7's refused row is its own error: {result:?}"
            );
        } else {
            assert!(result.is_ok(), "caller {c}: {result:?}");
        }
    }
    let hashes = store.all_hashes("many", None).await.unwrap();
    assert_eq!(
        hashes.len(),
        11 * 50 + 1,
        "every row of the eleven others, the shared id once"
    );
    assert!(hashes.contains_key("caller-0/ns/v1/ConfigMap/cm-49"));
    assert!(hashes.contains_key("caller-11/ns/v1/ConfigMap/cm-0"));
    assert!(
        !hashes.keys().any(|id| id.starts_with("caller-7/")),
        "nothing of caller 7"
    );
    assert!(
        hashes["shared"].starts_with("shared-by-"),
        "{:?}",
        hashes["shared"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deletes_and_upserts_each_leave_what_they_asked_for() {
    common::install_crypto();
    let chroma = ChromaServer::start();
    let store = std::sync::Arc::new(ChromaStore::new(ChromaConfig::new(chroma.url())).unwrap());
    store
        .ensure_collection("mixed", &model("voyage:voyage-3.5", 64))
        .await
        .unwrap();
    let rows_of = |c: usize| -> Vec<Record> {
        records(40, 64)
            .into_iter()
            .map(|mut r| {
                r.id = format!("caller-{c}/{}", r.id);
                r
            })
            .collect()
    };
    for c in 0..6 {
        store.upsert("mixed", &rows_of(c)).await.unwrap();
    }
    // At once: callers 0-5 delete their rows (and ids never stored), callers 6-11 write theirs.
    let tasks: Vec<_> = (0..12)
        .map(|c| {
            let store = store.clone();
            let rows = rows_of(c);
            tokio::spawn(async move {
                if c < 6 {
                    let mut ids: Vec<String> = rows.into_iter().map(|r| r.id).collect();
                    ids.push(format!("caller-{c}/never-stored"));
                    store.delete("mixed", &ids).await
                } else {
                    store.upsert("mixed", &rows).await
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let hashes = store.all_hashes("mixed", None).await.unwrap();
    assert_eq!(
        hashes.len(),
        6 * 40,
        "the six writers' rows, none of the deleted"
    );
    for c in 0..12 {
        let held = hashes
            .keys()
            .filter(|id| id.starts_with(&format!("caller-{c}/")))
            .count();
        assert_eq!(held, if c < 6 { 0 } else { 40 }, "caller {c}");
    }
}
