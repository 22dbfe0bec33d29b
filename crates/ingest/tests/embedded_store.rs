//! What the embedded store promises beyond the shared suite: its file keeps everything
//! across restarts, including which model filled each collection, and one process owns it.

use ingest::embed::ModelInfo;
use ingest::store::embedded::EmbeddedStore;
use ingest::store::{Filter, MetaValue, Record, StoreError, VectorStore};

fn model() -> ModelInfo {
    ModelInfo {
        id: "local:all-MiniLM-L6-v2".into(),
        dimension: 3,
    }
}

fn record(id: &str, kind: &str, embedding: Vec<f32>) -> Record {
    Record {
        id: id.into(),
        document: format!("{kind} {id}"),
        metadata: [("kind".to_string(), MetaValue::Str(kind.into()))].into(),
        embedding,
        content_hash: format!("h-{id}"),
    }
}

/// The store in `dir`, its `instances` collection made for [`model`].
async fn open_with_collection(dir: &std::path::Path) -> EmbeddedStore {
    let store = EmbeddedStore::open_in_dir(dir).expect("open");
    store
        .ensure_collection("instances", &model())
        .await
        .expect("ensure");
    store
}

#[tokio::test]
async fn reopening_the_file_keeps_records_vectors_and_deletes() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = open_with_collection(dir.path()).await;
        store
            .upsert(
                "instances",
                &[
                    record("a", "Pod", vec![1.0, 0.0, 0.0]),
                    record("b", "Service", vec![0.0, 1.0, 0.0]),
                    record("c", "Pod", vec![0.0, 0.0, 1.0]),
                ],
            )
            .await
            .expect("upsert");
        store
            .upsert(
                "instances",
                &[record("a", "Deployment", vec![0.0, 1.0, 1.0])],
            )
            .await
            .expect("replace");
        store
            .delete("instances", &["c".into()])
            .await
            .expect("delete");
    }
    let store = EmbeddedStore::open_in_dir(dir.path()).expect("reopen");
    assert_eq!(store.count("instances").await.expect("count"), 2);
    let hits = store
        .query("instances", &[0.0, 1.0, 1.0], None, 5)
        .await
        .expect("query");
    assert_eq!(hits[0].id, "a");
    assert!(hits[0].distance.abs() < 1e-5);
    let of_kind = async |kind: &str| {
        let filter = Filter::Eq("kind".into(), kind.into());
        store
            .get("instances", Some(&filter), 10)
            .await
            .expect("get")
    };
    let pods = of_kind("Pod").await;
    assert!(
        pods.is_empty(),
        "a is a Deployment now and c was deleted: {pods:?}"
    );
    let deployments = of_kind("Deployment").await;
    assert_eq!(deployments[0].document, "Deployment a");
}

#[tokio::test]
async fn the_model_that_filled_a_collection_is_remembered_across_restarts() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The collection is made and the file closed again.
    drop(open_with_collection(dir.path()).await);
    let store = EmbeddedStore::open_in_dir(dir.path()).expect("reopen");
    let voyage = ModelInfo {
        id: "voyage:voyage-3.5".into(),
        dimension: 1024,
    };
    match store.ensure_collection("instances", &voyage).await {
        Err(StoreError::Rejected(msg)) => {
            assert!(
                msg.contains("--data-dir"),
                "the message says what to do: {msg}"
            );
            assert!(
                msg.contains("local:all-MiniLM-L6-v2") && msg.contains("voyage:voyage-3.5"),
                "{msg}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    store
        .delete_collection("instances")
        .await
        .expect("delete collection");
    store
        .ensure_collection("instances", &voyage)
        .await
        .expect("a deleted collection can be refilled by another model");
}

#[tokio::test]
async fn vectors_of_the_wrong_dimension_are_rejected_and_change_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_with_collection(dir.path()).await;
    let result = store
        .upsert(
            "instances",
            &[
                record("ok", "Pod", vec![1.0, 0.0, 0.0]),
                record("bad", "Pod", vec![1.0, 0.0]),
            ],
        )
        .await;
    assert!(matches!(result, Err(StoreError::Rejected(_))), "{result:?}");
    assert_eq!(store.count("instances").await.expect("count"), 0);
}

#[tokio::test]
async fn a_second_open_of_the_same_file_is_refused_while_the_first_is_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = open_with_collection(dir.path()).await;
    match EmbeddedStore::open_in_dir(dir.path()) {
        Err(StoreError::Unavailable(msg)) => assert!(msg.contains("another cw process"), "{msg}"),
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("two owners of one store file would diverge"),
    }
    drop(first);
    EmbeddedStore::open_in_dir(dir.path()).expect("free again once the first is closed");
}

#[tokio::test]
async fn a_reader_sees_what_a_closed_writer_stored_refuses_writes_and_waits_for_no_writer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(ingest::store::embedded::STORE_FILE_NAME);
    let missing = EmbeddedStore::open_read_only(&path)
        .err()
        .expect("no file yet");
    assert!(
        missing.to_string().contains("cw sync-instances"),
        "{missing}"
    );
    assert!(!path.exists(), "a reader must not create the file");
    {
        let writer = EmbeddedStore::open(&path).expect("open");
        writer
            .ensure_collection("instances", &model())
            .await
            .expect("ensure");
        writer
            .upsert("instances", &[record("a", "Pod", vec![1.0, 0.0, 0.0])])
            .await
            .expect("upsert");
        // While the writer holds the file, a reader is told who holds it.
        let busy = EmbeddedStore::open_read_only(&path)
            .err()
            .expect("held by the writer");
        assert!(busy.to_string().contains("in use"), "{busy}");
    }
    let reader = EmbeddedStore::open_read_only(&path).expect("reader");
    let hits = reader
        .query("instances", &[1.0, 0.0, 0.0], None, 5)
        .await
        .expect("query");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].id, "a");
    let refused = reader
        .upsert("instances", &[record("b", "Pod", vec![0.0, 1.0, 0.0])])
        .await;
    assert!(
        matches!(refused, Err(StoreError::Rejected(_))),
        "{refused:?}"
    );
    drop(reader);
    // Once the reader is gone, a writer opens the file again.
    let writer = EmbeddedStore::open(&path).expect("reopen for writing");
    assert_eq!(writer.count("instances").await.expect("count"), 1);
}
