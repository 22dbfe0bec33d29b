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
