//! LLM enrichment of capabilities against the OpenAI-compatible stand-in: the model is
//! asked once per changed schema and never for an unchanged one (also by a new pipeline on
//! the same store, i.e. after a restart); a failed enrichment stores the type without it
//! and the next sync of that type enriches it.

use std::sync::Arc;
use std::time::Duration;

use ingest::capabilities::{CapabilityPipeline, ENRICHMENT_KEY};
use ingest::embed::voyage::{VoyageConfig, VoyageEmbedder};
use ingest::enrich::{EnrichConfig, Enricher};
use ingest::retry::RetryPolicy;
use ingest::store::embedded::EmbeddedStore;
use ingest::store::{MetaValue, VectorStore};
use serde_json::json;
use sync_model::{Capability, CapabilitySyncPayload, Enrichment};
use testkit::{LlmStandin, VoyageStandin};

const COLLECTION: &str = "capabilities";

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_retries: 2,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(1),
    }
}

struct Setup {
    dir: tempfile::TempDir,
    voyage: VoyageStandin,
    llm: LlmStandin,
}

impl Setup {
    async fn start() -> Setup {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Setup {
            dir: tempfile::tempdir().expect("tempdir"),
            voyage: VoyageStandin::start().await,
            llm: LlmStandin::start().await,
        }
    }

    fn enricher(&self, api_key: Option<&str>) -> Arc<Enricher> {
        let mut config = EnrichConfig::new(self.llm.base_url(), "gpt-4o-mini");
        config.api_key = api_key.map(str::to_string);
        config.retry = quick_retries();
        Arc::new(Enricher::new(config).expect("enricher"))
    }

    /// A pipeline over the store in `dir`, opened afresh (as after a restart).
    /// A set-up, its store and an enriching pipeline over it.
    async fn enriching() -> (Setup, Arc<EmbeddedStore>, CapabilityPipeline) {
        let s = Setup::start().await;
        let store = s.open_store();
        let p = s.pipeline(store.clone(), true);
        (s, store, p)
    }

    fn pipeline(&self, store: Arc<EmbeddedStore>, enrich: bool) -> CapabilityPipeline {
        let mut config = VoyageConfig::new("test-key");
        config.base_url = self.voyage.base_url();
        config.retry = quick_retries();
        let embedder = Arc::new(VoyageEmbedder::new(config).expect("voyage client"));
        let p = CapabilityPipeline::new(store, embedder, COLLECTION.to_string());
        if enrich {
            p.with_enricher(self.enricher(None))
        } else {
            p
        }
    }

    fn open_store(&self) -> Arc<EmbeddedStore> {
        Arc::new(EmbeddedStore::open_in_dir(self.dir.path()).expect("embedded store"))
    }
}

fn cap(plural: &str, group: &str, kind: &str, description: &str) -> Capability {
    serde_json::from_value(json!({
        "id": format!("{plural}.{group}"), "kind": kind, "group": group, "versions": ["v1"],
        "plural": plural, "namespaced": true, "description": description,
        "fields": {"instances": "Number of instances"}
    }))
    .expect("capability")
}

fn payload(upserts: Vec<Capability>) -> CapabilitySyncPayload {
    CapabilitySyncPayload {
        cluster: None,
        upserts,
        deletes: vec![],
    }
}

fn postgres() -> Capability {
    cap(
        "clusters",
        "postgresql.cnpg.io",
        "Cluster",
        "A PostgreSQL cluster",
    )
}

fn redis() -> Capability {
    cap("redis", "redis.opstreelabs.in", "Redis", "A Redis cache")
}

/// (document, cw_enrichment) of a stored capability.
async fn stored(store: &EmbeddedStore, id: &str) -> (String, String) {
    let hit = store
        .get(COLLECTION, None, 100)
        .await
        .expect("store get")
        .into_iter()
        .find(|h| h.id == id)
        .unwrap_or_else(|| panic!("{id} is not stored"));
    let source = match hit.metadata.get(ENRICHMENT_KEY) {
        Some(MetaValue::Str(s)) => s.clone(),
        other => panic!("{ENRICHMENT_KEY}: {other:?}"),
    };
    (hit.document, source)
}

#[tokio::test]
async fn the_model_is_asked_once_per_changed_schema_and_never_for_an_unchanged_one() {
    let (s, store, p) = Setup::enriching().await;

    p.apply_sync(payload(vec![postgres(), redis()]))
        .await
        .unwrap();
    assert_eq!(s.llm.requests(), 2);
    let (doc, source) = stored(&store, "clusters.postgresql.cnpg.io").await;
    assert_eq!(source, "model");
    assert!(doc.contains("capabilities: database, postgresql"), "{doc}");
    assert!(doc.contains("use case: Stand-in answer for tests"), "{doc}");
    // The model was shown the schema, not an earlier answer.
    assert!(s.llm.prompts()[0].contains("fields: instances: Number of instances"));
    assert_eq!(s.llm.models(), vec!["gpt-4o-mini"; 2]);

    // Unchanged: neither the model nor the embedder is called.
    let embedded = s.voyage.stats().document_inputs;
    let o = p
        .apply_sync(payload(vec![postgres(), redis()]))
        .await
        .unwrap();
    assert_eq!(o.unchanged, 2);
    assert_eq!(s.llm.requests(), 2);
    assert_eq!(s.voyage.stats().document_inputs, embedded);
    // The hashes a resync diffs against are those of the capabilities as sent.
    let hashes = p
        .stored_hashes(&sync_model::ClusterId::default_cluster())
        .await
        .unwrap();
    assert_eq!(
        hashes["clusters.postgresql.cnpg.io"],
        postgres().content_hash()
    );

    // One schema changed: one more call.
    let mut changed = redis();
    changed.description = "A Redis cache with persistence".into();
    p.apply_sync(payload(vec![postgres(), changed]))
        .await
        .unwrap();
    assert_eq!(s.llm.requests(), 3);
    assert!(s.llm.prompts()[2].contains("with persistence"));
}

#[tokio::test]
async fn after_a_restart_an_unchanged_type_is_not_sent_again() {
    let s = Setup::start().await;
    {
        let p = s.pipeline(s.open_store(), true);
        p.apply_sync(payload(vec![postgres()])).await.unwrap();
    }
    assert_eq!(s.llm.requests(), 1);
    // A new store handle and a new pipeline: only what the store kept is known.
    let store = s.open_store();
    let p = s.pipeline(store.clone(), true);
    let o = p.apply_sync(payload(vec![postgres()])).await.unwrap();
    assert_eq!(o.unchanged, 1);
    assert_eq!(s.llm.requests(), 1);
    let (doc, _) = stored(&store, "clusters.postgresql.cnpg.io").await;
    assert!(doc.contains("capabilities: database, postgresql"), "{doc}");
}

#[tokio::test]
async fn a_failed_enrichment_stores_the_type_unenriched_and_the_next_sync_enriches_it() {
    let (s, store, p) = Setup::enriching().await;
    s.llm.go_down(500);
    let o = p.apply_sync(payload(vec![postgres()])).await.unwrap();
    assert_eq!(o.embedded, 1);
    // Retried like the embedders (1 + 2 retries), then given up.
    assert_eq!(s.llm.requests(), 3);
    let (doc, source) = stored(&store, "clusters.postgresql.cnpg.io").await;
    assert_eq!(source, "failed");
    assert!(!doc.contains("capabilities:"), "{doc}");
    assert!(doc.contains("A PostgreSQL cluster"));
    assert!(p
        .metrics()
        .encode()
        .contains("cw_ingest_enrichments_failed_total 1"));
    // A resync would send it again: its hash is reported empty.
    assert_eq!(
        p.stored_hashes(&sync_model::ClusterId::default_cluster())
            .await
            .unwrap()["clusters.postgresql.cnpg.io"],
        ""
    );

    s.llm.recover();
    let o = p.apply_sync(payload(vec![postgres()])).await.unwrap();
    assert_eq!(o.embedded, 1);
    assert_eq!(s.llm.requests(), 4);
    let (doc, source) = stored(&store, "clusters.postgresql.cnpg.io").await;
    assert_eq!(source, "model");
    assert!(doc.contains("capabilities: database, postgresql"), "{doc}");
    assert_eq!(
        p.stored_hashes(&sync_model::ClusterId::default_cluster())
            .await
            .unwrap()["clusters.postgresql.cnpg.io"],
        postgres().content_hash()
    );

    // Enriched now: not asked again.
    p.apply_sync(payload(vec![postgres()])).await.unwrap();
    assert_eq!(s.llm.requests(), 4);
}

#[tokio::test]
async fn types_stored_while_enrichment_was_off_are_enriched_once_it_is_on() {
    let s = Setup::start().await;
    let store = s.open_store();
    s.pipeline(store.clone(), false)
        .apply_sync(payload(vec![postgres()]))
        .await
        .unwrap();
    assert_eq!(s.llm.requests(), 0);
    assert_eq!(stored(&store, "clusters.postgresql.cnpg.io").await.1, "off");

    let p = s.pipeline(store.clone(), true);
    p.apply_sync(payload(vec![postgres()])).await.unwrap();
    assert_eq!(s.llm.requests(), 1);
    assert_eq!(
        stored(&store, "clusters.postgresql.cnpg.io").await.1,
        "model"
    );
    p.apply_sync(payload(vec![postgres()])).await.unwrap();
    assert_eq!(s.llm.requests(), 1);
}

#[tokio::test]
async fn a_failed_embedding_does_not_make_the_retry_ask_the_model_again() {
    let (s, store, p) = Setup::enriching().await;
    s.voyage.go_down(500);
    assert!(p.apply_sync(payload(vec![postgres()])).await.is_err());
    assert_eq!(store.count(COLLECTION).await.unwrap(), 0);
    assert_eq!(s.llm.requests(), 1);
    s.voyage.recover();
    p.apply_sync(payload(vec![postgres()])).await.unwrap();
    assert_eq!(s.llm.requests(), 1);
    assert_eq!(
        stored(&store, "clusters.postgresql.cnpg.io").await.1,
        "model"
    );
}

#[tokio::test]
async fn an_enrichment_sent_with_the_type_is_kept_and_the_model_not_asked() {
    let (s, store, p) = Setup::enriching().await;
    let mut c = postgres();
    c.enrichment = Some(Enrichment {
        capabilities: vec!["sql".into()],
        ..Enrichment::default()
    });
    p.apply_sync(payload(vec![c])).await.unwrap();
    assert_eq!(s.llm.requests(), 0);
    let (doc, source) = stored(&store, "clusters.postgresql.cnpg.io").await;
    assert_eq!(source, "sender");
    assert!(doc.contains("capabilities: sql"), "{doc}");
}

#[tokio::test]
async fn the_api_key_is_sent_as_a_bearer_token() {
    let s = Setup::start().await;
    let enricher = s.enricher(Some("llm-key"));
    let e = enricher.enrich(&postgres()).await.unwrap();
    assert_eq!(e.complexity, "medium");
    assert_eq!(
        s.llm.authorizations(),
        vec![Some("Bearer llm-key".to_string())]
    );
    // Without a key, no header.
    s.enricher(None).enrich(&postgres()).await.unwrap();
    assert_eq!(s.llm.authorizations()[1], None);
}
