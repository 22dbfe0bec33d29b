//! What a caller's scope costs (issue 26's goals), in one run with its own baseline:
//! 100,000 instance documents over 1,000 namespaces in 5 clusters in the embedded store,
//! each cluster's RBAC of 2,000 roles and bindings; a caller bound (RoleBindings to the
//! `view`-like ClusterRole) in 50 namespaces. Prints search latency (p50, p99) unscoped (the
//! baseline) and scoped (the scope compiled for each query, as a request does), the hits a
//! scoped page holds, the time to compile a scope, and the memory of the five clusters'
//! authorizers (resident set before and after building them).
//!
//!     cargo bench -p ingest --bench rbac          (or scripts/bench-rbac)
//!
//! CW_BENCH_DOCS sets the document count (default 100000), CW_BENCH_QUERIES the queries per
//! figure (default 200). Vectors are random unit vectors of 384 dimensions (the local
//! model's): the embedded store scans every vector (exact search), so its cost does not
//! depend on their values; the query embedder is a hash of the text, the same for both runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ingest::access::rules::{AccessRules, RulesByCluster};
use ingest::access::Scope;
use ingest::document::to_document;
use ingest::embed::{EmbedError, Embedder, InputType, ModelInfo};
use ingest::search::{SearchMode, SearchRequest, Searcher};
use ingest::store::{Record, VectorStore};
use serde_json::json;
use sync_model::rbac::{AccessSnapshot, UserInfo};
use sync_model::{ClusterId, ResourceInstance};

mod bench_run;
use bench_run::{cores, count_from_env, embedded_store, instance_of, percentile, runtime};

const DIM: usize = 384;
const CLUSTERS: usize = 5;
const NAMESPACES: usize = 1_000;
const BATCH: usize = 1_000;
/// Roles and bindings per cluster: half Roles/ClusterRoles, half bindings.
const RBAC_OBJECTS: usize = 2_000;
const KINDS: [(&str, &str, &str, &str); 6] = [
    ("Deployment", "apps/v1", "apps", "deployments"),
    ("StatefulSet", "apps/v1", "apps", "statefulsets"),
    ("Service", "v1", "", "services"),
    ("ConfigMap", "v1", "", "configmaps"),
    ("Pod", "v1", "", "pods"),
    ("CronJob", "batch/v1", "batch", "cronjobs"),
];

/// A query "embedding" from the text's bytes: cheap, deterministic, the same for both runs.
struct HashEmbedder;

#[async_trait]
impl Embedder for HashEmbedder {
    async fn model_info(&self) -> Result<ModelInfo, EmbedError> {
        Ok(ModelInfo {
            id: "bench:hash".into(),
            dimension: DIM,
        })
    }
    async fn embed(&self, texts: &[String], _: InputType) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|t| unit(seed_of(t))).collect())
    }
}

fn seed_of(text: &str) -> u64 {
    text.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// A pseudo-random unit vector (xorshift).
fn unit(mut seed: u64) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIM)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 2000) as f32 / 1000.0 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

fn instance(i: usize) -> (ClusterId, ResourceInstance) {
    let cluster = ClusterId::new(&format!("c{}", i % CLUSTERS)).expect("cluster id");
    let (kind, api_version, api_group, _) = KINDS[(i / CLUSTERS) % KINDS.len()];
    let namespace = format!(
        "ns-{}",
        (i / CLUSTERS / KINDS.len()) % (NAMESPACES / CLUSTERS)
    );
    let name = format!("app-{i}");
    let labels = BTreeMap::from([("app".to_string(), format!("app-{}", i % 97))]);
    let instance = instance_of(
        (kind, api_version, api_group),
        namespace,
        name,
        labels,
        "a service of the shop",
    );
    (cluster, instance)
}

/// One cluster's RBAC: a `view` ClusterRole, 999 other ClusterRoles and Roles, and 1,000
/// bindings, of which `bound` RoleBindings bind `alice` to `view` in that many namespaces.
fn snapshot(cluster: usize, bound: usize) -> AccessSnapshot {
    let kinds: Vec<&str> = KINDS.iter().map(|k| k.3).collect();
    let mut roles = Vec::new();
    let mut cluster_roles = vec![json!({"name": "view", "rules": [
        {"verbs": ["get", "list", "watch"], "apiGroups": ["", "apps", "batch"], "resources": kinds},
    ]})];
    for r in 0..RBAC_OBJECTS / 2 - 1 {
        let rule = json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["configmaps", format!("r{r}")]});
        if r % 2 == 0 {
            roles.push(json!({"namespace": format!("ns-{}", r % 200), "name": format!("role-{r}"), "rules": [rule]}));
        } else {
            cluster_roles.push(json!({"name": format!("cr-{r}"), "rules": [rule]}));
        }
    }
    let mut role_bindings = Vec::new();
    for b in 0..RBAC_OBJECTS / 2 {
        let (user, role) = if b < bound {
            (
                "alice".to_string(),
                json!({"kind": "ClusterRole", "name": "view"}),
            )
        } else {
            (
                format!("user-{b}"),
                json!({"kind": "Role", "name": format!("role-{}", (b % 499) * 2)}),
            )
        };
        role_bindings.push(json!({
            "namespace": format!("ns-{}", if b < bound { b * 4 } else { b % 200 }),
            "name": format!("rb-{b}"),
            "roleRef": role,
            "subjects": [{"kind": "User", "name": user}, {"kind": "Group", "name": format!("team-{}", b % 50)}],
        }));
    }
    let types: Vec<_> = KINDS
        .iter()
        .map(|(kind, _, group, plural)| json!({"group": group, "plural": plural, "kind": kind, "namespaced": true}))
        .collect();
    serde_json::from_value(json!({
        "cluster": format!("c{cluster}"),
        "roles": roles,
        "clusterRoles": cluster_roles,
        "roleBindings": role_bindings,
        "types": types,
    }))
    .expect("a snapshot")
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn report(label: &str, mut times: Vec<Duration>, hits: usize) -> f64 {
    times.sort();
    let p99 = percentile(&times, 0.99);
    println!(
        "  {label}: p50 {:.1} ms, p99 {:.1} ms, {:.1} hits per query",
        percentile(&times, 0.5),
        p99,
        hits as f64 / times.len() as f64
    );
    p99
}

fn main() {
    let n: usize = count_from_env("CW_BENCH_DOCS", 100_000);
    let rounds: usize = count_from_env("CW_BENCH_QUERIES", 200);
    let runtime = runtime();
    runtime.block_on(async move {
        let cores = cores();
        println!(
            "scoped search over {n} documents, {NAMESPACES} namespaces, {CLUSTERS} clusters (embedded store, {DIM} dimensions), {cores} cores, {rounds} queries per figure"
        );
        let embedder = Arc::new(HashEmbedder);
        let model = embedder.model_info().await.expect("model");
        let (_data, store) = embedded_store(&model, &["instances"]).await;
        let start = Instant::now();
        for chunk in (0..n).step_by(BATCH) {
            let records: Vec<Record> = (chunk..(chunk + BATCH).min(n))
                .map(|i| {
                    let (cluster, instance) = instance(i);
                    let doc = to_document(&instance, &cluster);
                    Record {
                        id: doc.id,
                        document: doc.text,
                        embedding: unit(i as u64 + 1),
                        metadata: doc.metadata,
                        content_hash: doc.content_hash,
                    }
                })
                .collect();
            store.upsert("instances", &records).await.expect("upsert");
        }
        println!("  setup: {n} documents stored in {:.1} s", start.elapsed().as_secs_f64());

        // The authorizers of five clusters of 2,000 roles and bindings: their memory.
        let snapshots: Vec<AccessSnapshot> = (0..CLUSTERS).map(|c| snapshot(c, 10)).collect();
        let before = resident_bytes();
        let rules = AccessRules::new(store.clone(), "instances");
        let start = Instant::now();
        for (c, s) in snapshots.iter().enumerate() {
            let cluster = ClusterId::new(&format!("c{c}")).expect("cluster id");
            rules.apply(&cluster, s).await.expect("rules");
        }
        let held: Arc<RulesByCluster> = rules.current();
        let after = resident_bytes();
        println!(
            "  access rules: {} clusters x {} roles and bindings stored and indexed in {:.2} s; resident set grew by {:.1} MiB (authorizers, types and the stored JSON's parts)",
            held.len(),
            RBAC_OBJECTS,
            start.elapsed().as_secs_f64(),
            (after.saturating_sub(before)) as f64 / (1024.0 * 1024.0)
        );

        let alice = UserInfo {
            name: "alice".into(),
            groups: vec!["system:authenticated".into()],
        };
        let start = Instant::now();
        let mut compiled = 0;
        for _ in 0..rounds {
            if let Scope::Limited(l) = Scope::of_user(&alice, None, &held) {
                compiled += l.clusters.len();
            }
        }
        let per = start.elapsed() / rounds as u32;
        println!(
            "  compiling alice's scope (50 namespaces over {} clusters): {:.3} ms each",
            compiled / rounds,
            per.as_secs_f64() * 1000.0
        );

        let everything = Searcher::new(store.clone(), embedder.clone(), "instances", "capabilities");
        let queries = ["web frontend", "database", "nightly job", "cache", "payments api"];
        for mode in [SearchMode::Semantic, SearchMode::Hybrid] {
            let request = |r: usize| SearchRequest {
                query: queries[r % queries.len()].into(),
                mode,
                limit: Some(10),
                ..Default::default()
            };
            let mut times = Vec::new();
            let mut hits = 0;
            for r in 0..rounds {
                let t = Instant::now();
                hits += everything.search(&request(r)).await.expect("search").len();
                times.push(t.elapsed());
            }
            let base = report(&format!("{mode:?} top-10, unscoped (baseline)"), times, hits);
            let mut times = Vec::new();
            let mut hits = 0;
            for r in 0..rounds {
                let t = Instant::now();
                let scope = Scope::of_user(&alice, None, &rules.current());
                hits += everything
                    .scoped(scope)
                    .search(&request(r))
                    .await
                    .expect("search")
                    .len();
                times.push(t.elapsed());
            }
            let scoped = report(&format!("{mode:?} top-10, alice's scope (50 namespaces)"), times, hits);
            println!("  {mode:?}: scoped p99 / unscoped p99 = {:.2}", scoped / base);
        }
    });
}
