//! The HTTP sink against a stand-in of the ingest server: what is retried, what is not.

mod common;

use std::time::Duration;

use common::{install_crypto, instance, StandIn};
use sync_model::{ResourceId, SyncPayload};
use watcher::{HttpSink, SinkError, SyncSink};

#[tokio::test]
async fn a_payload_is_applied_and_the_stored_hashes_come_back() {
    install_crypto();
    let store = StandIn::start().await;
    let sink = HttpSink::new(&store.sync_url, None, Duration::from_secs(5)).unwrap();
    let web = instance("default", "web", "a");
    sink.send(&SyncPayload {
        cluster: None,
        upserts: vec![web.clone()],
        deletes: vec![],
    })
    .await
    .unwrap();
    let hashes = sink.stored_hashes().await.unwrap();
    assert_eq!(hashes.get(&web.id), Some(&web.content_hash()));
}

#[tokio::test]
async fn a_bad_payload_is_rejected_with_the_servers_details_and_a_down_server_is_retryable() {
    install_crypto();
    let store = StandIn::start().await;
    let sink = HttpSink::new(&store.sync_url, None, Duration::from_secs(5)).unwrap();
    let mut bad = instance("default", "web", "a");
    bad.namespace = "Not_Valid".into();
    let err = sink
        .send(&SyncPayload {
            cluster: None,
            upserts: vec![bad],
            deletes: vec![],
        })
        .await
        .unwrap_err();
    match err {
        SinkError::Invalid { details, .. } => {
            assert!(
                details.iter().any(|d| d.field == "upserts[0].namespace"),
                "{details:?}"
            );
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    store.set_down(true);
    let err = sink.send(&SyncPayload::default()).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    // A refused connection is retryable too.
    let gone = HttpSink::new(
        "http://127.0.0.1:9/api/v1/instances/sync",
        None,
        Duration::from_secs(2),
    )
    .unwrap();
    assert!(gone.stored_hashes().await.unwrap_err().is_retryable());
}

#[tokio::test]
async fn the_bearer_token_is_sent_and_a_missing_one_is_a_refusal_of_the_credentials() {
    install_crypto();
    let store = StandIn::start().await;
    store.state.lock().unwrap().token = Some("s3cret".into());
    let without = HttpSink::new(&store.sync_url, None, Duration::from_secs(5)).unwrap();
    let p = SyncPayload {
        cluster: None,
        upserts: vec![],
        deletes: vec![ResourceId::from_raw("default/v1/Pod/x")],
    };
    assert!(matches!(without.send(&p).await, Err(SinkError::Denied(_))));
    let with = HttpSink::new(
        &store.sync_url,
        Some("s3cret".into()),
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(with.send(&p).await.is_ok());
}
