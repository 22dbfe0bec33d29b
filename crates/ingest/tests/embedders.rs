//! The real Voyage and OpenAI-compatible clients against the stand-in: wire format,
//! `input_type`, batching, and which failures are retried.

mod common;

use std::time::Duration;

use ingest::embed::openai::{OpenAiConfig, OpenAiEmbedder};
use ingest::embed::voyage::VoyageEmbedder;
use ingest::embed::{EmbedError, Embedder, InputType};
use ingest::retry::RetryPolicy;
use testkit::{Failure, VoyageStandin};

#[tokio::test]
async fn voyage_vectors_are_the_stand_ins_decoded_from_base64_with_the_right_input_type() {
    common::install_crypto();
    let voyage = VoyageStandin::start().await;
    let embedder = VoyageEmbedder::new(common::voyage_config(&voyage)).unwrap();
    let info = embedder.model_info().await.unwrap();
    assert_eq!(info.id, "voyage:voyage-3.5");
    assert_eq!(info.dimension, 1024);
    assert_eq!(
        voyage.requests(),
        0,
        "a known model's dimension needs no call"
    );

    let texts = vec![
        "Deployment nginx".to_string(),
        "StatefulSet postgres".to_string(),
    ];
    let vectors = embedder.embed(&texts, InputType::Document).await.unwrap();
    assert_eq!(vectors[0], testkit::embed_text("Deployment nginx", 1024));
    assert_eq!(
        vectors[1],
        testkit::embed_text("StatefulSet postgres", 1024)
    );
    embedder
        .embed(
            &["what databases are running?".to_string()],
            InputType::Query,
        )
        .await
        .unwrap();
    let stats = voyage.stats();
    assert_eq!(stats.document_inputs, 2);
    assert_eq!(stats.query_inputs, 1);
    assert_eq!(stats.base64_requests, 2);
}

#[tokio::test]
async fn server_errors_are_retried_until_they_pass_and_reported_transient_when_they_do_not() {
    common::install_crypto();
    let voyage = VoyageStandin::start().await;
    let embedder = VoyageEmbedder::new(common::voyage_config(&voyage)).unwrap();
    voyage.fail_next(2, Failure::Status(500));
    let v = embedder
        .embed(&["a".to_string()], InputType::Document)
        .await
        .unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(voyage.requests(), 3);

    voyage.go_down(503);
    let err = embedder
        .embed(&["a".to_string()], InputType::Document)
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn a_bad_api_key_is_permanent_and_not_retried() {
    common::install_crypto();
    let voyage = VoyageStandin::start_on("127.0.0.1:0".parse().unwrap(), Some("right".into()))
        .await
        .unwrap();
    let mut config = common::voyage_config(&voyage);
    config.api_key = "wrong".into();
    let embedder = VoyageEmbedder::new(config).unwrap();
    let err = embedder
        .embed(&["a".to_string()], InputType::Document)
        .await
        .unwrap_err();
    assert!(
        matches!(err, EmbedError::Permanent(ref m) if m.contains("401")),
        "{err:?}"
    );
    assert_eq!(voyage.requests(), 1);
}

#[tokio::test]
async fn a_retry_after_beyond_the_policy_fails_fast_as_transient() {
    common::install_crypto();
    let voyage = VoyageStandin::start().await;
    let mut config = common::voyage_config(&voyage);
    config.retry = RetryPolicy {
        max_retry_after: Duration::from_secs(2),
        ..config.retry
    };
    let embedder = VoyageEmbedder::new(config).unwrap();
    voyage.fail_next(
        1,
        Failure::RateLimited {
            retry_after_secs: 60,
        },
    );
    let started = std::time::Instant::now();
    let err = embedder
        .embed(&["a".to_string()], InputType::Document)
        .await
        .unwrap_err();
    assert!(err.is_transient());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn the_openai_compatible_client_batches_and_probes_the_dimension() {
    common::install_crypto();
    let voyage = VoyageStandin::start().await;
    let mut config = OpenAiConfig::new(voyage.openai_base_url(), "nomic-embed-text");
    config.max_inputs_per_request = 10;
    config.dimensions = None;
    let embedder = OpenAiEmbedder::new(config).unwrap();
    let info = embedder.model_info().await.unwrap();
    assert_eq!(info.id, "openai:nomic-embed-text");
    assert_eq!(info.dimension, 1024);
    voyage.reset_stats();
    let texts: Vec<String> = (0..25).map(|i| format!("Service svc-{i}")).collect();
    let vectors = embedder.embed(&texts, InputType::Document).await.unwrap();
    assert_eq!(vectors.len(), 25);
    assert_eq!(vectors[24], testkit::embed_text("Service svc-24", 1024));
    assert_eq!(voyage.requests(), 3);
}
