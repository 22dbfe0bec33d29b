//! The fleet form of the relevance harness (tests/relevance/fleet.yaml): the demo cluster and
//! generated ones, each indexed by `cw sync-capabilities` and `cw sync-instances` under its
//! own `--cluster-id` into one store, then asked fleet-wide and cluster by cluster. Health
//! questions are scored against the unhealthy objects the harness reads from the simulators
//! itself (kinds, images and statuses: [`Truth`]), never from cw's answers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kube_sim::{GeneratorConfig, SimConfig, SimHandle, SimServer};
use serde::Deserialize;
use serde_json::Value;

use super::{open_searcher, run_cw, workspace_root};
use ingest::search::{AskAnswer, SearchMode, SearchRequest, Searcher};

#[derive(Deserialize)]
pub struct FleetSet {
    fleets: BTreeMap<String, Vec<ClusterSpec>>,
    pub questions: Vec<FleetQuestion>,
}

#[derive(Deserialize, Clone)]
struct ClusterSpec {
    id: String,
    /// Manifests to seed (the demo); otherwise the generator's settings below.
    #[serde(default)]
    seeds: Vec<String>,
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    workloads: usize,
    #[serde(default)]
    crds: usize,
    #[serde(default)]
    objects: usize,
}

#[derive(Deserialize, Clone)]
pub struct FleetQuestion {
    pub q: String,
    /// What the unhealthy answers are: `database`, `key-value`, `queue` or `any`.
    #[serde(default)]
    unhealthy: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    /// Asked through `search` instead of `ask`.
    #[serde(default)]
    search: bool,
    /// "cluster Kind namespace/name" of objects the fleet-wide page must hold.
    #[serde(default)]
    expect: Vec<String>,
    /// Every cluster has answers on the fleet-wide page.
    #[serde(default)]
    every_cluster: bool,
    /// The recall every scope must reach.
    #[serde(default)]
    pub goal: Option<f64>,
}

pub fn load(file: &str) -> FleetSet {
    let path = workspace_root().join("tests/relevance").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An object as the harness reads it from a simulator.
#[derive(Debug, Clone)]
struct SimObject {
    cluster: String,
    /// `Kind namespace/name`.
    key: String,
    kind: String,
    /// Image repositories' last path segments, without tags (`postgresql`, `redis`).
    images: Vec<String>,
    unhealthy: bool,
}

/// What the harness calls a database, a key-value store and a queue, from an object's kind
/// and images alone: what an operator reading the manifests would say, written here apart
/// from cw's own catalogue.
const DATABASE_IMAGES: &[&str] = &[
    "postgres",
    "postgresql",
    "mysql",
    "mongo",
    "clickhouse-server",
    "redis",
];
const DATABASE_KINDS: &[&str] = &[
    "Cluster",
    "PostgresCluster",
    "MySQLCluster",
    "RedisFailover",
];
const KEY_VALUE_IMAGES: &[&str] = &["redis", "valkey", "etcd", "memcached"];
const KEY_VALUE_KINDS: &[&str] = &["RedisFailover"];
const QUEUE_IMAGES: &[&str] = &["kafka", "rabbitmq", "nats"];
const QUEUE_KINDS: &[&str] = &["Kafka", "KafkaCluster", "RabbitmqCluster"];

impl SimObject {
    fn is(&self, what: &str) -> bool {
        let (images, kinds) = match what {
            "any" => return true,
            "database" => (DATABASE_IMAGES, DATABASE_KINDS),
            "key-value" => (KEY_VALUE_IMAGES, KEY_VALUE_KINDS),
            "queue" => (QUEUE_IMAGES, QUEUE_KINDS),
            other => panic!("unknown answer class {other:?}"),
        };
        kinds.contains(&self.kind.as_str())
            || self.images.iter().any(|i| images.contains(&i.as_str()))
    }
}

fn int(o: &Value, p: &str) -> Option<i64> {
    o.pointer(p).and_then(Value::as_i64)
}

/// Unhealthy by its status alone: fewer replicas ready (or available) than wanted, a failed
/// Job, a Ready condition that is not True. Objects without a status are not counted.
fn unhealthy(o: &Value) -> bool {
    let Some(status) = o
        .get("status")
        .filter(|s| s.as_object().is_some_and(|m| !m.is_empty()))
    else {
        return false;
    };
    let kind = o["kind"].as_str().unwrap_or("");
    let want = int(o, "/spec/replicas").unwrap_or(1);
    let condition = |t: &str| {
        status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == t)
            .map(|c| c["status"].as_str().unwrap_or("").to_string())
    };
    match kind {
        "Deployment" => {
            int(o, "/status/readyReplicas").unwrap_or(0) < want
                || int(o, "/status/availableReplicas").unwrap_or(0) < want
        }
        "StatefulSet" => int(o, "/status/readyReplicas").unwrap_or(0) < want,
        "DaemonSet" => {
            int(o, "/status/numberReady").unwrap_or(0)
                < int(o, "/status/desiredNumberScheduled").unwrap_or(0)
        }
        "Job" => condition("Failed").as_deref() == Some("True"),
        "Service" | "ConfigMap" | "Namespace" => false,
        _ => condition("Ready").is_some_and(|s| s != "True"),
    }
}

fn images_of(o: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for p in [
        "/spec/template/spec/containers",
        "/spec/jobTemplate/spec/template/spec/containers",
        "/spec/containers",
    ] {
        for c in o.pointer(p).and_then(Value::as_array).into_iter().flatten() {
            if let Some(i) = c["image"].as_str() {
                out.push(i.to_string());
            }
        }
    }
    if let Some(i) = o.pointer("/spec/imageName").and_then(Value::as_str) {
        out.push(i.to_string());
    }
    out.iter()
        .map(|i| {
            let last = i.rsplit('/').next().unwrap_or(i);
            last.split([':', '@']).next().unwrap_or(last).to_string()
        })
        .collect()
}

fn objects_of(cluster: &str, sim: &SimHandle) -> Vec<SimObject> {
    let mut out = Vec::new();
    for (api_version, kind, _, _) in sim.served_types() {
        for o in sim.list(&api_version, &kind, None).unwrap_or_default() {
            let m = &o["metadata"];
            let ns = m["namespace"].as_str().unwrap_or(sync_model::CLUSTER_SCOPE);
            out.push(SimObject {
                cluster: cluster.to_string(),
                key: super::key(&kind, ns, m["name"].as_str().unwrap_or("")),
                kind: kind.clone(),
                images: images_of(&o),
                unhealthy: unhealthy(&o),
            });
        }
    }
    out
}

/// The fleet, running and indexed: its simulators (alive while it is), the objects they
/// hold and the searcher over the one store.
pub struct Fleet {
    _sims: Vec<SimHandle>,
    pub clusters: Vec<String>,
    objects: Vec<SimObject>,
    pub searcher: Searcher,
}

/// Starts the simulators of `fleet` in `set` and indexes each under its id into one store.
pub async fn start(set: &FleetSet, fleet: &str, work: &Path) -> Fleet {
    let specs = set
        .fleets
        .get(fleet)
        .unwrap_or_else(|| panic!("no fleet {fleet:?} in the set"));
    let data = work.join("data");
    let (mut sims, mut clusters, mut objects) = (Vec::new(), Vec::new(), Vec::new());
    for spec in specs {
        let mut config = SimConfig::default();
        for s in &spec.seeds {
            config = config.with_seed_path(workspace_root().join(s));
        }
        if spec.seeds.is_empty() {
            config = config.with_generator(GeneratorConfig {
                seed: spec.seed,
                workloads: spec.workloads,
                crds: spec.crds,
                objects: spec.objects,
                namespaces: 4,
            });
        }
        let sim = SimServer::start(config)
            .await
            .unwrap_or_else(|e| panic!("starting cluster {}: {e}", spec.id));
        let kubeconfig = work.join(format!("kubeconfig-{}", spec.id));
        sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        for command in ["sync-capabilities", "sync-instances"] {
            run_cw(&[command, "--cluster-id", &spec.id], &kubeconfig, &data);
        }
        println!("cluster {}: {} objects", spec.id, sim.object_count());
        objects.extend(objects_of(&spec.id, &sim));
        clusters.push(spec.id.clone());
        sims.push(sim);
    }
    Fleet {
        _sims: sims,
        clusters,
        objects,
        searcher: open_searcher(&data),
    }
}

/// One question in one scope (a cluster, or `None`: the fleet).
#[derive(Debug, Clone)]
pub struct ScopeFigures {
    pub question: String,
    pub scope: Option<String>,
    /// Unhealthy objects of what the question names in the scope (the harness's count).
    pub truth: usize,
    /// Of those, how many the answer lists (directly or folded into an owner).
    pub found: usize,
    /// Answers in all on the page.
    pub answered: usize,
    pub limit: usize,
    /// The answer said that nothing of that health answers (no answers, or `noneWithHealth`).
    pub said_none: bool,
    /// How many answer in all, by the answer's per-cluster counts (summed over the fleet).
    pub counted: Option<usize>,
    /// How long `ask` took, in milliseconds.
    pub ms: f64,
}

impl ScopeFigures {
    /// Found against what the page could hold: the unhealthy objects, at most `limit`.
    pub fn recall(&self) -> f64 {
        if self.truth == 0 {
            return 1.0;
        }
        self.found as f64 / self.truth.min(self.limit) as f64
    }

    /// "None" said while the scope holds unhealthy answers.
    pub fn false_none(&self) -> bool {
        self.said_none && self.truth > 0
    }
}

fn answered_keys(answer: &AskAnswer) -> BTreeSet<(String, String)> {
    answer
        .types
        .iter()
        .flat_map(|t| t.instances.iter())
        .map(|h| {
            (
                h.hit.cluster.clone(),
                super::key(&h.hit.kind, &h.hit.namespace, &h.hit.name),
            )
        })
        .collect()
}

/// Every health question of `set`, fleet-wide and in each cluster.
pub async fn score_health(fleet: &Fleet, set: &FleetSet) -> Vec<ScopeFigures> {
    let mut out = Vec::new();
    for q in set.questions.iter().filter(|q| q.unhealthy.is_some()) {
        let what = q.unhealthy.as_deref().unwrap_or("any");
        let limit = q.limit.unwrap_or(super::DEPTH);
        let scopes = std::iter::once(None).chain(fleet.clusters.iter().cloned().map(Some));
        for scope in scopes {
            let truth: BTreeSet<(String, String)> = fleet
                .objects
                .iter()
                .filter(|o| scope.as_ref().is_none_or(|c| &o.cluster == c))
                .filter(|o| o.unhealthy && o.is(what))
                .map(|o| (o.cluster.clone(), o.key.clone()))
                .collect();
            let started = std::time::Instant::now();
            let answer = fleet
                .searcher
                .ask_in(&q.q, Some(limit), scope.as_deref(), None)
                .await
                .expect("ask");
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            let answered = answered_keys(&answer);
            let figures = ScopeFigures {
                question: q.q.clone(),
                scope: scope.clone(),
                truth: truth.len(),
                found: answered.intersection(&truth).count(),
                answered: answered.len(),
                limit,
                said_none: answer.types.is_empty() || answer.none_with_health,
                counted: answer
                    .clusters
                    .iter()
                    .map(|c| c.total)
                    .sum::<Option<usize>>(),
                ms,
            };
            if std::env::var_os("EVAL_SEARCH_VERBOSE").is_some() {
                let missed: Vec<&(String, String)> = truth.difference(&answered).collect();
                let extra: Vec<&(String, String)> = answered.difference(&truth).collect();
                println!(
                    "{:?} in {}: missed {missed:?}\n  not expected {extra:?}",
                    q.q,
                    scope.as_deref().unwrap_or("the fleet")
                );
            }
            out.push(figures);
        }
    }
    out
}

/// The fleet-wide questions with expected objects: the expected objects missing from the
/// page, and the clusters without an answer on it when every cluster should have one.
pub async fn check_fleet_pages(fleet: &Fleet, set: &FleetSet) -> Vec<String> {
    let mut failures = Vec::new();
    for q in set.questions.iter().filter(|q| q.unhealthy.is_none()) {
        let limit = q.limit.unwrap_or(super::DEPTH);
        let page: Vec<(String, String)> = if q.search {
            fleet
                .searcher
                .search_page(&SearchRequest {
                    query: q.q.clone(),
                    limit: Some(limit),
                    mode: SearchMode::Hybrid,
                    ..Default::default()
                })
                .await
                .expect("search")
                .results
                .into_iter()
                .map(|h| {
                    (
                        h.cluster.clone(),
                        super::key(&h.kind, &h.namespace, &h.name),
                    )
                })
                .collect()
        } else {
            let answer = fleet
                .searcher
                .ask_in(&q.q, Some(limit), None, None)
                .await
                .expect("ask");
            answered_keys(&answer).into_iter().collect()
        };
        let on_page: BTreeSet<String> = page.iter().map(|(c, k)| format!("{c} {k}")).collect();
        println!(
            "{} {:?} fleet-wide, first {limit}: {:?}",
            if q.search { "search" } else { "ask" },
            q.q,
            page.iter()
                .map(|(c, k)| format!("{c}: {k}"))
                .collect::<Vec<_>>()
        );
        for e in &q.expect {
            if let Some(rank) = rank_in_one_query(fleet, &q.q, e).await {
                println!(
                    "  {e}: {rank} objects of the whole index are nearer to {:?}",
                    q.q
                );
            }
            if !on_page.contains(e) {
                failures.push(format!(
                    "{:?} fleet-wide: {e} not in the first {limit}",
                    q.q
                ));
            }
        }
        if q.every_cluster {
            let present: BTreeSet<&String> = page.iter().map(|(c, _)| c).collect();
            for c in &fleet.clusters {
                if !present.contains(c) {
                    failures.push(format!("{:?} fleet-wide: no answer of cluster {c}", q.q));
                }
            }
        }
    }
    failures
}

/// How many objects of the whole index are nearer to `query` than `expected` ("cluster
/// Kind namespace/name"): where one query over the fleet, without a share per cluster, would
/// rank it.
async fn rank_in_one_query(fleet: &Fleet, query: &str, expected: &str) -> Option<usize> {
    use ingest::embed::InputType;
    let vector = fleet
        .searcher
        .embedder
        .embed(&[query.to_string()], InputType::Query)
        .await
        .ok()?
        .pop()?;
    let all = fleet
        .searcher
        .store
        .query(
            &fleet.searcher.instances_collection,
            &vector,
            None,
            fleet.objects.len(),
        )
        .await
        .ok()?;
    all.iter().position(|h| {
        let m = |k: &str| match h.metadata.get(k) {
            Some(ingest::store::MetaValue::Str(v)) => v.clone(),
            _ => String::new(),
        };
        format!(
            "{} {}",
            m("cluster"),
            super::key(&m("kind"), &m("namespace"), &m("name"))
        ) == expected
    })
}

/// The table of recall per question and scope: `counted` is what the answer says answers
/// in all (its per-cluster totals).
pub fn report(name: &str, figures: &[ScopeFigures]) {
    println!("\n== {name}: unhealthy answers found / unhealthy objects (recall of what the page can hold)");
    println!(
        "{:<36} {:<8} {:>5} {:>5} {:>8} {:>7} {:>7} {:>6} {:>7}",
        "question", "scope", "truth", "found", "answered", "counted", "recall", "none?", "ask ms"
    );
    for f in figures {
        println!(
            "{:<36} {:<8} {:>5} {:>5} {:>8} {:>7} {:>7.2} {:>6} {:>7.1}",
            f.question,
            f.scope.as_deref().unwrap_or("fleet"),
            f.truth,
            f.found,
            f.answered,
            f.counted.map_or("-".to_string(), |n| n.to_string()),
            f.recall(),
            if f.false_none() {
                "FALSE"
            } else if f.said_none {
                "yes"
            } else {
                "-"
            },
            f.ms
        );
    }
    let mut ms: Vec<f64> = figures.iter().map(|f| f.ms).collect();
    ms.sort_by(f64::total_cmp);
    if let (Some(p50), Some(max)) = (ms.get(ms.len() / 2), ms.last()) {
        println!(
            "ask latency over {} asks: p50 {p50:.1} ms, max {max:.1} ms",
            ms.len()
        );
    }
}
