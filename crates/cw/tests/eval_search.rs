//! The relevance harness: questions with the objects that answer them (tests/relevance/),
//! over the demo cluster and over a larger generated one, indexed by `cw sync-capabilities`
//! and `cw sync-instances` with the local model, then asked through `Searcher::search` and
//! `Searcher::ask` on the store those commands wrote (what `cw search` and `cw ask` run).
//! Prints recall@5, MRR and nDCG@10 per question, per class and overall.
//!
//! The demo form runs in CI and fails below the figures recorded in
//! tests/relevance/recorded.json; the generated form is `#[ignore]`d (scripts/eval-search
//! runs both). The fleet forms ([`fleet`], tests/relevance/fleet.yaml) index several clusters
//! into one store and print the recall of health questions per cluster and fleet-wide; the
//! small fleet runs in CI and fails below each question's goal or on a false "none".
//! Needs the local model: `cw model fetch` (or scripts/setup), or CW_MODEL_DIR.

mod common;
#[path = "eval_search/fleet.rs"]
mod fleet;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use common::{model_dir, workspace_root};
use ingest::embed::local::LocalEmbedder;
use ingest::search::{SearchMode, SearchRequest, Searcher};
use ingest::server::{DEFAULT_CAPABILITIES_COLLECTION, DEFAULT_INSTANCES_COLLECTION};
use ingest::store::embedded::EmbeddedStore;
use kube_sim::workloads::TOPICS_ANNOTATION;
use kube_sim::{GeneratorConfig, SimConfig, SimHandle, SimServer};
use serde::{Deserialize, Serialize};

/// Answers per question that the figures look at (the first 10, as `cw ask` prints).
const DEPTH: usize = 10;
/// How far below a recorded figure the demo form may fall: the file holds figures rounded
/// to two decimals, as the report prints them.
const TOLERANCE: f64 = 0.01;

#[derive(Deserialize)]
struct QuestionSet {
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    workloads: usize,
    questions: Vec<Question>,
}

#[derive(Deserialize, Clone)]
struct Question {
    q: String,
    class: String,
    split: String,
    /// "Kind namespace/name" of each answer (the demo set).
    #[serde(default)]
    expect: Vec<String>,
    /// The topic the answers carry in their topics annotation (the generated set).
    #[serde(default)]
    topic: Option<String>,
}

/// recall@5, MRR and nDCG@10 of one ranking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Figures {
    recall5: f64,
    mrr: f64,
    ndcg10: f64,
}

impl Figures {
    /// recall@5 counts the answers in the first five against the answers there could be
    /// (at most five); MRR is 1/rank of the first answer in the first ten; nDCG@10 uses
    /// binary gains.
    fn of(ranking: &[String], relevant: &BTreeSet<String>) -> Figures {
        let found = |k: usize| {
            ranking
                .iter()
                .take(k)
                .filter(|r| relevant.contains(*r))
                .count()
        };
        let recall5 = found(5) as f64 / relevant.len().clamp(1, 5) as f64;
        let mrr = ranking
            .iter()
            .take(DEPTH)
            .position(|r| relevant.contains(r))
            .map_or(0.0, |i| 1.0 / (i + 1) as f64);
        let gain = |i: usize| 1.0 / ((i + 2) as f64).log2();
        let dcg: f64 = ranking
            .iter()
            .take(DEPTH)
            .enumerate()
            .filter(|(_, r)| relevant.contains(*r))
            .map(|(i, _)| gain(i))
            .sum();
        let ideal: f64 = (0..relevant.len().min(DEPTH)).map(gain).sum();
        Figures {
            recall5,
            mrr,
            ndcg10: if dcg > 0.0 { dcg / ideal } else { 0.0 },
        }
    }

    fn mean(all: &[Figures]) -> Figures {
        let n = all.len().max(1) as f64;
        Figures {
            recall5: all.iter().map(|f| f.recall5).sum::<f64>() / n,
            mrr: all.iter().map(|f| f.mrr).sum::<f64>() / n,
            ndcg10: all.iter().map(|f| f.ndcg10).sum::<f64>() / n,
        }
    }

    fn cells(&self) -> String {
        format!("{:.2} {:.2} {:.2}", self.recall5, self.mrr, self.ndcg10)
    }
}

/// Figures of `search` and `ask` over a set of questions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Pair {
    search: Figures,
    ask: Figures,
}

struct Scored {
    question: Question,
    search: Figures,
    ask: Figures,
    ask_ms: f64,
}

fn run_cw(args: &[&str], kubeconfig: &Path, data_dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_cw"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("CW_DATA_DIR", data_dir)
        .env("CW_MODEL_DIR", model_dir())
        .env("LOG_LEVEL", "warn")
        .env_remove("CHROMA_URL")
        .env_remove("CW_EMBEDDING_PROVIDER")
        .env_remove("CW_SYNC_ENDPOINT")
        .output()
        .expect("running cw");
    assert!(
        out.status.success(),
        "cw {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Indexes the simulator's cluster as a user would (`cw sync-capabilities`, then
/// `cw sync-instances`) and opens what they wrote, as `cw ask` does without a server.
async fn index(sim: &SimHandle, work: &Path) -> Searcher {
    let kubeconfig = work.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let data = work.join("data");
    run_cw(&["sync-capabilities"], &kubeconfig, &data);
    run_cw(&["sync-instances"], &kubeconfig, &data);
    open_searcher(&data)
}

/// The store the `cw` commands wrote in `data`, opened as `cw ask` does without a server.
fn open_searcher(data: &Path) -> Searcher {
    let store = EmbeddedStore::open_in_dir(data).expect("opening the store cw wrote");
    let embedder = LocalEmbedder::load(&model_dir()).expect("local model");
    Searcher::new(
        Arc::new(store),
        Arc::new(embedder),
        DEFAULT_INSTANCES_COLLECTION,
        DEFAULT_CAPABILITIES_COLLECTION,
    )
}

fn key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind} {namespace}/{name}")
}

/// The objects whose topics annotation holds each topic, from the simulator itself.
fn topics_of(sim: &SimHandle) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (api_version, kind, _, _) in sim.served_types() {
        for o in sim.list(&api_version, &kind, None).unwrap_or_default() {
            let m = &o["metadata"];
            let Some(topics) = m["annotations"][TOPICS_ANNOTATION].as_str() else {
                continue;
            };
            let ns = m["namespace"].as_str().unwrap_or("_cluster");
            let k = key(&kind, ns, m["name"].as_str().unwrap_or(""));
            for t in topics.split_whitespace() {
                out.entry(t.to_string()).or_default().insert(k.clone());
            }
        }
    }
    out
}

async fn score(
    searcher: &Searcher,
    set: &QuestionSet,
    topics: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<Scored> {
    let mut out = Vec::new();
    for q in &set.questions {
        let relevant: BTreeSet<String> = match &q.topic {
            Some(t) => topics.get(t).cloned().unwrap_or_default(),
            None => q.expect.iter().cloned().collect(),
        };
        assert!(!relevant.is_empty(), "no answers to {:?}", q.q);
        let hits = searcher
            .search(&SearchRequest {
                query: q.q.clone(),
                limit: Some(DEPTH),
                mode: SearchMode::Hybrid,
                ..Default::default()
            })
            .await
            .expect("search");
        let search: Vec<String> = hits
            .iter()
            .map(|h| key(&h.kind, &h.namespace, &h.name))
            .collect();
        let started = Instant::now();
        let answer = searcher.ask(&q.q, Some(DEPTH)).await.expect("ask");
        let ask_ms = started.elapsed().as_secs_f64() * 1000.0;
        // The answers best first, whatever type groups them for display.
        let mut answers: Vec<(f32, String)> = answer
            .types
            .iter()
            .flat_map(|t| t.instances.iter())
            .map(|h| (h.hit.score, key(&h.hit.kind, &h.hit.namespace, &h.hit.name)))
            .collect();
        answers.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut seen = BTreeSet::new();
        let ask: Vec<String> = answers
            .into_iter()
            .map(|(_, k)| k)
            .filter(|k| seen.insert(k.clone()))
            .collect();
        let scored = Scored {
            question: q.clone(),
            search: Figures::of(&search, &relevant),
            ask: Figures::of(&ask, &relevant),
            ask_ms,
        };
        if std::env::var_os("EVAL_SEARCH_VERBOSE").is_some() {
            println!(
                "{:?}\n  expected {relevant:?}\n  search {search:?}\n  ask    {ask:?}",
                q.q
            );
            // Why each answer came: its score, and the type that bridged it (`via`).
            for t in &answer.types {
                for h in &t.instances {
                    let via = h.why.capability.as_deref().unwrap_or("-");
                    println!(
                        "    {:.3} {} (own {:.3}, via {via})",
                        h.hit.score,
                        key(&h.hit.kind, &h.hit.namespace, &h.hit.name),
                        h.why.similarity
                    );
                }
            }
            let available: Vec<String> = answer
                .available
                .iter()
                .map(|t| format!("{} {:.3}", t.id, t.score))
                .collect();
            println!("  available {available:?}");
        }
        out.push(scored);
    }
    out
}

/// Prints the per-question table and the means per class and split; returns the means
/// per split (`tune`, `report`, `all`) and per `report` class.
fn report(name: &str, scored: &[Scored]) -> BTreeMap<String, Pair> {
    println!("\n== {name}: recall@5 MRR nDCG@10 (search | ask), ask latency");
    println!(
        "{:<6} {:<8} {:<40} {:<14} | {:<14} {:>7}",
        "split", "class", "question", "search", "ask", "ask ms"
    );
    for s in scored {
        println!(
            "{:<6} {:<8} {:<40} {:<14} | {:<14} {:>7.1}",
            s.question.split,
            s.question.class,
            s.question.q,
            s.search.cells(),
            s.ask.cells(),
            s.ask_ms
        );
    }
    let mut groups: BTreeMap<String, Vec<&Scored>> = BTreeMap::new();
    for s in scored {
        groups.entry("all".into()).or_default().push(s);
        groups.entry(s.question.split.clone()).or_default().push(s);
        groups
            .entry(format!("{} {}", s.question.split, s.question.class))
            .or_default()
            .push(s);
    }
    let mut out = BTreeMap::new();
    println!(
        "{:<20} {:>3} {:<14} | {:<14}",
        "group", "n", "search", "ask"
    );
    for (group, members) in &groups {
        let search: Vec<Figures> = members.iter().map(|s| s.search).collect();
        let ask: Vec<Figures> = members.iter().map(|s| s.ask).collect();
        let pair = Pair {
            search: Figures::mean(&search),
            ask: Figures::mean(&ask),
        };
        println!(
            "{group:<20} {:>3} {:<14} | {:<14}",
            members.len(),
            pair.search.cells(),
            pair.ask.cells()
        );
        out.insert(group.clone(), pair);
    }
    let mut ms: Vec<f64> = scored.iter().map(|s| s.ask_ms).collect();
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
    println!(
        "ask latency over {} questions: p50 {:.1} ms, max {:.1} ms",
        ms.len(),
        pct(0.5),
        pct(1.0)
    );
    out
}

fn load(file: &str) -> QuestionSet {
    let path = workspace_root().join("tests/relevance").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Writes the figures where scripts/eval-search asks (EVAL_SEARCH_OUT), for recording.
fn save(name: &str, figures: &BTreeMap<String, Pair>) {
    if let Some(dir) = std::env::var_os("EVAL_SEARCH_OUT") {
        let path = Path::new(&dir).join(format!("{name}.json"));
        let text = serde_json::to_string_pretty(figures).expect("figures as JSON");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_cluster_answers_at_least_as_well_as_recorded() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let work = tempfile::tempdir().expect("temp dir");
    let sim = SimServer::start(
        SimConfig::default()
            .with_seed_path(workspace_root().join("deploy/demo"))
            .with_seed_path(workspace_root().join("tests/relevance/demo-bridge.yaml")),
    )
    .await
    .expect("starting kube-sim with the demo cluster");
    let searcher = index(&sim, work.path()).await;
    let set = load("demo.yaml");
    let scored = score(&searcher, &set, &BTreeMap::new()).await;
    let figures = report("demo cluster", &scored);
    save("demo", &figures);

    let recorded: BTreeMap<String, Pair> = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("tests/relevance/recorded.json"))
            .expect("tests/relevance/recorded.json"),
    )
    .expect("recorded figures");
    let mut regressions = Vec::new();
    for (group, want) in &recorded {
        let Some(got) = figures.get(group) else {
            regressions.push(format!("{group}: no longer measured"));
            continue;
        };
        for (what, g, w) in [
            ("search recall@5", got.search.recall5, want.search.recall5),
            ("search MRR", got.search.mrr, want.search.mrr),
            ("search nDCG@10", got.search.ndcg10, want.search.ndcg10),
            ("ask recall@5", got.ask.recall5, want.ask.recall5),
            ("ask MRR", got.ask.mrr, want.ask.mrr),
            ("ask nDCG@10", got.ask.ndcg10, want.ask.ndcg10),
        ] {
            if g < w - TOLERANCE {
                regressions.push(format!("{group}: {what} {g:.3} < recorded {w:.3}"));
            }
        }
    }
    // `ask` must answer at least as well as a plain search, class by class.
    for (group, got) in &figures {
        if group.starts_with("report") && got.ask.recall5 < got.search.recall5 - TOLERANCE {
            regressions.push(format!(
                "{group}: ask recall@5 {:.3} < search's {:.3}",
                got.ask.recall5, got.search.recall5
            ));
        }
    }
    assert!(
        regressions.is_empty(),
        "relevance fell below the recorded figures (tests/relevance/recorded.json):\n{}",
        regressions.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the full form: scripts/eval-search"]
async fn the_generated_cluster_answers() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let work = tempfile::tempdir().expect("temp dir");
    let set = load("generated.yaml");
    let sim = SimServer::start(SimConfig::default().with_generator(GeneratorConfig {
        seed: set.seed,
        workloads: set.workloads,
        ..Default::default()
    }))
    .await
    .expect("starting kube-sim with the generated cluster");
    println!("generated cluster: {} objects", sim.object_count());
    let searcher = index(&sim, work.path()).await;
    let topics = topics_of(&sim);
    let scored = score(&searcher, &set, &topics).await;
    let figures = report("generated cluster", &scored);
    save("generated", &figures);
}

/// Runs the fleet set on `fleet` (small or full): prints recall per question and scope, and
/// returns what falls short of the set's goals (a scope below a question's goal, a false
/// "none", an expected object missing from a fleet-wide page).
async fn run_fleet(fleet_name: &str) -> Vec<String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let work = tempfile::tempdir().expect("temp dir");
    let set = fleet::load("fleet.yaml");
    let started = Instant::now();
    let fleet = fleet::start(&set, fleet_name, work.path()).await;
    println!(
        "fleet {fleet_name}: {} clusters indexed in {:.0} s",
        fleet.clusters.len(),
        started.elapsed().as_secs_f64()
    );
    let figures = fleet::score_health(&fleet, &set).await;
    fleet::report(&format!("{fleet_name} fleet"), &figures);
    let mut failures = fleet::check_fleet_pages(&fleet, &set).await;
    for f in &figures {
        let scope = f.scope.as_deref().unwrap_or("the fleet");
        if f.false_none() {
            failures.push(format!(
                "{:?} in {scope}: said none while {} are unhealthy",
                f.question, f.truth
            ));
        }
        let goal = set
            .questions
            .iter()
            .find(|q| q.q == f.question)
            .and_then(|q| q.goal);
        if let Some(goal) = goal.filter(|g| f.recall() < *g) {
            failures.push(format!(
                "{:?} in {scope}: recall {:.2} < {goal} ({} of {})",
                f.question,
                f.recall(),
                f.found,
                f.truth
            ));
        }
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_fleet_answers_health_questions_in_every_cluster_and_fleet_wide() {
    let failures = run_fleet("small").await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the full form: scripts/eval-search fleet"]
async fn the_full_fleet_answers_health_questions_in_every_cluster_and_fleet_wide() {
    let failures = run_fleet("full").await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
