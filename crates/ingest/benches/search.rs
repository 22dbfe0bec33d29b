//! Search latency over 100,000 instance documents in the embedded store: the store alone
//! (a ready query vector) and end to end through `Searcher` (the query embedded by the local
//! model, then the store, then hybrid re-ranking; and `ask`, which adds the bridge through
//! a capabilities collection of 100 types), with the query embedding alone measured
//! in the same run as the baseline the end-to-end figures are built on.
//!
//!     cargo bench -p ingest --bench search
//!
//! Needs the local model (`cw model fetch`, or CW_MODEL_DIR). CW_BENCH_DOCS sets the document
//! count (default 100000), CW_BENCH_QUERIES the queries per figure (default 200).
//!
//! Documents are made exactly as the pipeline makes them (`document::to_document` of
//! generated `ResourceInstance`s). Embedding 100,000 of them with the local model would take
//! about 20 minutes at 80 documents/s, so the model embeds 2,000 distinct documents and the
//! 100,000 reuse those vectors: the embedded store scans every vector of the collection
//! (exact search), so its cost does not depend on the vectors' values, and the top hits
//! stay meaningful for the queries.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingest::capabilities::{to_metadata, NOT_ENRICHED};
use ingest::document::to_document;
use ingest::embed::local::{default_model_dir, LocalEmbedder};
use ingest::embed::{Embedder, InputType};
use ingest::search::{SearchMode, SearchRequest, Searcher};
use ingest::store::{Filter, Record, VectorStore};
use sync_model::{capability_id, Capability, ResourceInstance};

mod bench_run;
use bench_run::{cores, count_from_env, embedded_store, instance_of, percentile, runtime};

const BATCH: usize = 1_000;
const DISTINCT: usize = 2_000;

/// (kind, apiVersion, apiGroup, what it is)
const SHAPES: [(&str, &str, &str, &str); 10] = [
    (
        "Deployment",
        "apps/v1",
        "apps",
        "web frontend serving the shop",
    ),
    (
        "StatefulSet",
        "apps/v1",
        "apps",
        "PostgreSQL primary for orders",
    ),
    ("Service", "v1", "", "internal API endpoint"),
    ("ConfigMap", "v1", "", "application settings"),
    ("StatefulSet", "apps/v1", "apps", "Redis cache for sessions"),
    ("CronJob", "batch/v1", "batch", "nightly report job"),
    (
        "Deployment",
        "apps/v1",
        "apps",
        "payment worker consuming the queue",
    ),
    (
        "Cluster",
        "postgresql.cnpg.io/v1",
        "postgresql.cnpg.io",
        "CloudNativePG cluster for billing",
    ),
    (
        "Ingress",
        "networking.k8s.io/v1",
        "networking.k8s.io",
        "public entry for the storefront",
    ),
    (
        "StatefulSet",
        "apps/v1",
        "apps",
        "MySQL database for the catalogue",
    ),
];
/// The container image of each shape's objects ("" for kinds without pods).
const IMAGES: [&str; 10] = [
    "ghcr.io/acme/shop-web:2.4.1",
    "postgres:16.2",
    "",
    "",
    "redis:7.2.4",
    "ghcr.io/acme/reports:1.3.0",
    "ghcr.io/acme/payments:4.2.0",
    "",
    "",
    "mysql:8.0.36",
];
/// The types of the capabilities collection that `ask` bridges through: the shapes' own,
/// then custom types up to a cluster's usual hundred or so.
/// (kind, group, plural, description)
const TYPES: [(&str, &str, &str, &str); 7] = [
    ("Deployment", "apps", "deployments", "Runs stateless application replicas from a pod template, with rolling updates."),
    ("StatefulSet", "apps", "statefulsets", "Runs stateful applications such as databases, with stable names and persistent volumes per replica."),
    ("Service", "", "services", "A stable network endpoint and load balancing for a set of pods."),
    ("ConfigMap", "", "configmaps", "Configuration data as key-value pairs for pods."),
    ("CronJob", "batch", "cronjobs", "Runs jobs on a schedule."),
    ("Cluster", "postgresql.cnpg.io", "clusters", "CloudNativePG Cluster: a PostgreSQL database cluster with a primary and replicas."),
    ("Ingress", "networking.k8s.io", "ingresses", "HTTP routing from outside the cluster to services."),
];
const CUSTOM_TYPES: usize = 100;
const APPS: [&str; 10] = [
    "shop-web",
    "orders-db",
    "orders-api",
    "shop-config",
    "sessions-cache",
    "reports",
    "payments",
    "billing-pg",
    "storefront",
    "catalogue-mysql",
];

fn instance(i: usize) -> ResourceInstance {
    let (kind, api_version, api_group, what) = SHAPES[i % SHAPES.len()];
    let namespace = format!("team-{}", i % 50);
    let name = format!("{}-{i}", APPS[i % APPS.len()]);
    let mut labels = BTreeMap::new();
    labels.insert("app".to_string(), APPS[i % APPS.len()].to_string());
    labels.insert(
        "tier".to_string(),
        ["frontend", "backend", "data"][i % 3].to_string(),
    );
    let mut instance = instance_of(
        (kind, api_version, api_group),
        namespace,
        name,
        labels,
        what,
    );
    let image = IMAGES[i % IMAGES.len()];
    if !image.is_empty() {
        instance.images = vec![image.to_string()];
    }
    instance
}

fn capability(i: usize) -> Capability {
    let (kind, group, plural, description) = match TYPES.get(i) {
        Some(&(k, g, p, d)) => (k.to_string(), g.to_string(), p.to_string(), d.to_string()),
        None => (
            format!("Widget{i}"),
            format!("example{i}.io"),
            format!("widget{i}s"),
            format!("Widget{i} of the example{i} operator: its settings and status."),
        ),
    };
    Capability {
        id: capability_id(&plural, &group),
        kind,
        group,
        versions: vec!["v1".into()],
        plural,
        namespaced: true,
        short_names: Vec::new(),
        categories: Vec::new(),
        description,
        fields: BTreeMap::new(),
        enrichment: None,
    }
}

fn report(label: &str, mut times: Vec<Duration>, hits: usize) {
    times.sort();
    println!(
        "  {label:<58} p50 {:>7.2} ms  p99 {:>7.2} ms  ({:.1} hits/query)",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        hits as f64 / times.len() as f64
    );
}

const QUERIES: [&str; 8] = [
    "what databases are running?",
    "postgres",
    "redis cache",
    "orders-db-1",
    "nightly report job",
    "public web entry point",
    "message queue consumers",
    "mysql",
];

fn main() {
    let n: usize = count_from_env("CW_BENCH_DOCS", 100_000);
    let rounds: usize = count_from_env("CW_BENCH_QUERIES", 200);
    let dir = std::env::var_os("CW_MODEL_DIR")
        .map(PathBuf::from)
        .or_else(default_model_dir)
        .expect("set HOME or CW_MODEL_DIR");
    let embedder = match LocalEmbedder::load(&dir) {
        Ok(e) => Arc::new(e),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let runtime = runtime();
    runtime.block_on(async move {
        let cores = cores();
        println!(
            "search over {n} instance documents (embedded store, local model all-MiniLM-L6-v2), {cores} cores, {rounds} queries per figure"
        );
        let model = embedder.model_info().await.expect("model info");
        let (_data, store) = embedded_store(&model, &["instances", "capabilities"]).await;

        let start = Instant::now();
        let distinct: Vec<String> = (0..DISTINCT.min(n))
            .map(|i| to_document(&instance(i), &sync_model::ClusterId::default_cluster()).text)
            .collect();
        let vectors = embedder
            .embed(&distinct, InputType::Document)
            .await
            .expect("embed documents");
        println!(
            "  setup: {} distinct documents embedded in {:.1} s",
            distinct.len(),
            start.elapsed().as_secs_f64()
        );
        let start = Instant::now();
        for chunk_start in (0..n).step_by(BATCH) {
            let records: Vec<Record> = (chunk_start..(chunk_start + BATCH).min(n))
                .map(|i| {
                    let doc = to_document(&instance(i), &sync_model::ClusterId::default_cluster());
                    Record {
                        id: doc.id,
                        document: doc.text,
                        embedding: vectors[i % vectors.len()].clone(),
                        metadata: doc.metadata,
                        content_hash: doc.content_hash,
                    }
                })
                .collect();
            store.upsert("instances", &records).await.expect("upsert");
        }
        println!(
            "  setup: {n} documents stored in {:.1} s",
            start.elapsed().as_secs_f64()
        );
        let types: Vec<Capability> = (0..TYPES.len().max(CUSTOM_TYPES)).map(capability).collect();
        let texts: Vec<String> = types.iter().map(Capability::document_text).collect();
        let type_vectors = embedder
            .embed(&texts, InputType::Document)
            .await
            .expect("embed types");
        let records: Vec<Record> = types
            .iter()
            .zip(texts)
            .zip(type_vectors)
            .map(|((c, text), embedding)| Record {
                id: c.id.clone(),
                document: text,
                embedding,
                metadata: to_metadata(c, NOT_ENRICHED),
                content_hash: c.content_hash(),
            })
            .collect();
        store
            .upsert("capabilities", &records)
            .await
            .expect("upsert types");
        println!("  setup: {} types in the capabilities collection", records.len());

        // Baseline: the query embedding alone.
        let mut query_vectors = Vec::new();
        let mut times = Vec::new();
        for r in 0..rounds {
            let q = QUERIES[r % QUERIES.len()].to_string();
            let t = Instant::now();
            let v = embedder
                .embed(&[q], InputType::Query)
                .await
                .expect("embed query");
            times.push(t.elapsed());
            query_vectors.extend(v);
        }
        report("query embedding alone (local model, baseline)", times, 0);

        // The store alone, with ready vectors.
        let kind_filter = Filter::Eq("kind".into(), "StatefulSet".into());
        for (label, filter) in [
            ("store only: top-10, no filter", None),
            ("store only: top-10, kind = StatefulSet (30%)", Some(&kind_filter)),
        ] {
            let mut times = Vec::new();
            let mut hits = 0;
            for v in &query_vectors {
                let t = Instant::now();
                hits += store
                    .query("instances", v, filter, 10)
                    .await
                    .expect("query")
                    .len();
                times.push(t.elapsed());
            }
            report(label, times, hits);
        }

        // End to end: Searcher (embedding, store, keyword candidates, re-ranking).
        let searcher = Searcher::new(
            store.clone(),
            embedder.clone(),
            "instances",
            "capabilities",
        );
        for (label, mode, kind, namespace) in [
            ("end to end: hybrid, no filter", SearchMode::Hybrid, None, None),
            ("end to end: semantic, no filter", SearchMode::Semantic, None, None),
            (
                "end to end: hybrid, kind + namespace filter",
                SearchMode::Hybrid,
                Some("StatefulSet"),
                Some("team-1"),
            ),
            ("end to end: keyword (no embedding)", SearchMode::Keyword, None, None),
        ] {
            let mut times = Vec::new();
            let mut hits = 0;
            for r in 0..rounds {
                let req = SearchRequest {
                    query: QUERIES[r % QUERIES.len()].into(),
                    kind: kind.map(String::from),
                    namespace: namespace.map(String::from),
                    mode,
                    ..Default::default()
                };
                let t = Instant::now();
                hits += searcher.search(&req).await.expect("search").len();
                times.push(t.elapsed());
            }
            report(label, times, hits);
        }
        // `ask`: the direct search fused with the bridge (types, then their instances).
        let mut times = Vec::new();
        let mut hits = 0;
        for r in 0..rounds {
            let t = Instant::now();
            let answer = searcher
                .ask(QUERIES[r % QUERIES.len()], Some(10))
                .await
                .expect("ask");
            times.push(t.elapsed());
            hits += answer.types.iter().map(|t| t.instances.len()).sum::<usize>();
        }
        report("end to end: ask (direct search + bridge), no filter", times, hits);
        let top = searcher
            .search(&SearchRequest {
                query: "what databases are running?".into(),
                limit: Some(5),
                ..Default::default()
            })
            .await
            .expect("search");
        println!("  top 5 for \"what databases are running?\":");
        for hit in top {
            println!("    {:.3}  {} {}/{}", hit.score, hit.kind, hit.namespace, hit.name);
        }
    });
}
