//! `cw search`, `cw ask` and `cw clusters`: clients of a running server's search API
//! ([`ApiClient`]), or, when no server is named and none answers on the default address,
//! readers of the local index (the embedded store opened read-only, searched in this
//! process). The ranking lives in `ingest::search`; this module chooses where to ask and
//! prints.

use anyhow::Context;
use ingest::search::Searcher;
use serde::de::DeserializeOwned;
use sync_model::search::{
    AskAnswer, AskHit, Collection, SearchBody, SearchHit, SearchMode, SearchRequest, SearchResults,
};
use sync_model::{api, HealthFilter};

use crate::api_client::{self, ApiClient, ApiClientArgs};
use crate::backend::{EmbedArgs, StoreArgs};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(clap::Args)]
pub struct ServerArgs {
    // The cw server to ask (see --local) and its token.
    #[command(flatten)]
    pub client: ApiClientArgs,
    /// Read the local index (the store and model flags below) without asking any server.
    #[arg(long, env = "CW_SEARCH_LOCAL", conflicts_with = "server")]
    pub local: bool,
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
    /// The local index: used with --local, or when no server is named or answers.
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub embed: EmbedArgs,
}

/// Where a search is answered.
enum Backend {
    Server(ApiClient),
    Local(Box<Searcher>),
}

impl ServerArgs {
    /// The named server; else the default address if a cw server answers there; else the
    /// local index.
    async fn backend(&self) -> anyhow::Result<Backend> {
        if !self.local {
            let client = self.client.client()?;
            if self.client.named().is_some() || client.answers().await {
                return Ok(Backend::Server(client));
            }
            tracing::info!(
                "no cw server answers at {}; reading the local index ({})",
                client.base(),
                self.store.describe()
            );
        }
        let store = self.store.build_reader().context(
            "reading the local index (or ask a running server with --server / CW_SERVER_URL)",
        )?;
        let embedder = self.embed.build_lazy()?;
        Ok(Backend::Local(Box::new(Searcher::new(
            store,
            embedder,
            self.store.instances_collection.clone(),
            self.store.capabilities_collection.clone(),
        ))))
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// What to look for, e.g. "postgres" or "web servers in shop".
    pub query: String,
    #[arg(long, value_enum, default_value = "instances")]
    pub collection: CollectionArg,
    #[arg(long)]
    pub kind: Option<String>,
    /// The kind's API group (`apps`, `postgresql.cnpg.io`; empty for core types).
    #[arg(long)]
    pub api_group: Option<String>,
    #[arg(long)]
    pub namespace: Option<String>,
    /// Only this cluster's objects (an id that `cw clusters` lists).
    #[arg(long)]
    pub cluster: Option<String>,
    /// `key=value`; repeat for several (all must match).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Only objects of this health: current, in-progress, failed, terminating, unknown (any
    /// case), or unhealthy (failed or in-progress), healthy (current), failing (failed),
    /// progressing (in-progress).
    #[arg(long)]
    pub health: Option<HealthFilter>,
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    #[arg(long, value_enum, default_value = "hybrid")]
    pub mode: ModeArg,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(clap::Args)]
pub struct AskArgs {
    /// A question, e.g. "what databases are running?"
    pub question: String,
    /// Answers (running objects), at most.
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// Only objects of this health: current, in-progress, failed, terminating, unknown (any
    /// case), or unhealthy (failed or in-progress), healthy (current), failing (failed),
    /// progressing (in-progress). "Which databases are failing?": `--health failed`.
    #[arg(long)]
    pub health: Option<HealthFilter>,
    /// Only this cluster's objects; without it the whole fleet answers, grouped by cluster.
    #[arg(long)]
    pub cluster: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(clap::Args)]
pub struct ClustersArgs {
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CollectionArg {
    Instances,
    Capabilities,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    Hybrid,
    Semantic,
    Keyword,
}

/// Posts `body` to the server's search endpoint and returns the answer, raw (for
/// `--output json`) and typed.
async fn post<T: DeserializeOwned>(
    client: &ApiClient,
    body: &SearchBody,
) -> anyhow::Result<(serde_json::Value, T)> {
    let value = client.post_value(api::SEARCH, body).await?;
    let typed = api_client::read(value.clone(), &api::url(client.base(), api::SEARCH))?;
    Ok((value, typed))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let request = SearchRequest {
        query: args.query.clone(),
        collection: match args.collection {
            CollectionArg::Instances => Collection::Instances,
            CollectionArg::Capabilities => Collection::Capabilities,
        },
        cluster: args.cluster.clone(),
        kind: args.kind.clone(),
        api_group: args.api_group.clone(),
        namespace: args.namespace.clone(),
        labels: args.labels.clone(),
        health: args.health,
        limit: Some(args.limit),
        mode: match args.mode {
            ModeArg::Hybrid => SearchMode::Hybrid,
            ModeArg::Semantic => SearchMode::Semantic,
            ModeArg::Keyword => SearchMode::Keyword,
        },
    };
    let body = SearchBody {
        request,
        ask: false,
    };
    let (value, results): (_, SearchResults) = match args.server.backend().await? {
        Backend::Server(client) => post(&client, &body).await?,
        Backend::Local(searcher) => {
            let results = searcher.search_page(&body.request).await?;
            (serde_json::to_value(&results)?, results)
        }
    };
    match args.server.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&value)?),
        Output::Table => {
            print_table(&results.results);
            let per_cluster = render_clusters(&results.clusters, &[]);
            if !per_cluster.is_empty() {
                print!("\n{per_cluster}");
            }
        }
    }
    Ok(())
}

/// `cw clusters`: every cluster of the index with its object count, latest sync and
/// objects by health (`GET /api/v1/clusters`; from the local index, without last syncs).
pub async fn clusters(args: ClustersArgs) -> anyhow::Result<()> {
    let answer: api::ClustersResponse = match args.server.backend().await? {
        Backend::Server(client) => client.clusters().await?,
        Backend::Local(searcher) => api::ClustersResponse {
            clusters: searcher.clusters(&Default::default()).await?,
        },
    };
    match args.server.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&answer)?),
        Output::Table => print_clusters(&answer),
    }
    Ok(())
}

fn print_clusters(answer: &api::ClustersResponse) {
    if answer.clusters.is_empty() {
        println!("No clusters in the index.");
        return;
    }
    let rows: Vec<[String; 4]> = answer
        .clusters
        .iter()
        .map(|c| {
            let health: Vec<String> = c.health.iter().map(|(h, n)| format!("{h}={n}")).collect();
            [
                c.id.to_string(),
                c.objects.to_string(),
                c.last_sync.clone().unwrap_or_else(|| "-".into()),
                if health.is_empty() {
                    "-".into()
                } else {
                    health.join(",")
                },
            ]
        })
        .collect();
    print_columns(["CLUSTER", "OBJECTS", "LAST SYNC", "HEALTH"], &rows);
}

/// `rows` under `header`, each column as wide as its widest cell, two spaces apart.
fn print_columns<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let widths: Vec<usize> = (0..N)
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (c, cell) in cells.enumerate() {
            s.push_str(&format!("{cell:<w$}  ", w = widths[c]));
        }
        println!("{}", s.trim_end());
    };
    line(&mut header.iter().copied());
    for r in rows {
        line(&mut r.iter().map(String::as_str));
    }
}

pub async fn ask(args: AskArgs) -> anyhow::Result<()> {
    let body = SearchBody {
        request: SearchRequest {
            query: args.question.clone(),
            limit: Some(args.limit),
            health: args.health,
            cluster: args.cluster.clone(),
            ..SearchRequest::default()
        },
        ask: true,
    };
    let (value, answer): (_, AskAnswer) = match args.server.backend().await? {
        Backend::Server(client) => post(&client, &body).await?,
        Backend::Local(searcher) => {
            let answer = searcher
                .ask_in(
                    &args.question,
                    Some(args.limit),
                    args.cluster.as_deref(),
                    args.health,
                )
                .await?;
            (serde_json::to_value(&answer)?, answer)
        }
    };
    match args.server.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&value)?),
        Output::Table => print_answer(&answer),
    }
    Ok(())
}

/// The distinct clusters of `hits`, sorted.
fn clusters_of<'a>(hits: impl Iterator<Item = &'a SearchHit>) -> Vec<&'a str> {
    let set: std::collections::BTreeSet<&str> = hits.map(|h| h.cluster.as_str()).collect();
    set.into_iter().collect()
}

/// The answers grouped by type: per answer the object (`namespace/name`), its score and
/// why it matched; then the types that would answer but have nothing running. Answers from
/// more than one cluster are grouped by cluster first.
fn print_answer(answer: &AskAnswer) {
    print!("{}", render_answer(answer));
}

/// What [`print_answer`] prints.
fn render_answer(answer: &AskAnswer) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let healths = answer
        .health
        .iter()
        .map(|h| h.as_str())
        .collect::<Vec<_>>()
        .join(" or ");
    if answer.types.is_empty() && healths.is_empty() {
        let _ = writeln!(out, "Nothing running answers {:?}.", answer.question);
    } else if answer.types.is_empty() {
        let _ = writeln!(out, "Nothing {healths} answers {:?}.", answer.question);
    } else if answer.none_with_health {
        let _ = writeln!(
            out,
            "None of the answers to {:?} is {healths}. The answers, of any health:\n",
            answer.question
        );
    } else if !healths.is_empty() {
        let _ = writeln!(out, "{healths} answers to {:?}:\n", answer.question);
    }
    let clusters = clusters_of(
        answer
            .types
            .iter()
            .flat_map(|t| t.instances.iter().map(|i| &i.hit)),
    );
    if clusters.len() > 1 {
        for cluster in clusters {
            let _ = writeln!(out, "== cluster {cluster} ==");
            render_types(&mut out, answer, Some(cluster));
        }
    } else {
        render_types(&mut out, answer, None);
    }
    out.push_str(&render_clusters(&answer.clusters, &answer.health));
    if !answer.available.is_empty() {
        let _ = writeln!(
            out,
            "Available, not running (the cluster has these types, no objects of them):"
        );
        for t in &answer.available {
            let _ = writeln!(out, "  {}  {}", t.id, shorten(&t.reason, 120));
        }
    }
    out
}

/// How many answers each cluster has on the page and in all (`healths`: what they are):
/// `gen-a  5 of 8 (3 more: --cluster gen-a --limit 8)`, `gen-b  none Failed or
/// InProgress`. Nothing for an answer without per-cluster counts.
fn render_clusters(
    clusters: &[sync_model::search::ClusterCount],
    healths: &[sync_model::HealthStatus],
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if clusters.is_empty() {
        return out;
    }
    let what = healths
        .iter()
        .map(|h| h.as_str())
        .collect::<Vec<_>>()
        .join(" or ");
    let width = clusters
        .iter()
        .map(|c| c.cluster.chars().count())
        .max()
        .unwrap_or(0);
    let header = if clusters.iter().any(|c| c.total.is_some()) {
        "Per cluster (shown of all that answer):"
    } else {
        "Per cluster:"
    };
    let _ = writeln!(out, "{header}");
    for c in clusters {
        let line = match c.total {
            Some(0) if what.is_empty() => "none".to_string(),
            Some(0) => format!("none {what}"),
            Some(total) if total > c.shown => format!(
                "{} of {total} ({} more: --cluster {} --limit {total})",
                c.shown,
                total - c.shown,
                c.cluster
            ),
            Some(total) => format!("{} of {total}", c.shown),
            None => format!("{} shown", c.shown),
        };
        let _ = writeln!(out, "  {:<width$}  {line}", c.cluster);
    }
    out
}

/// The types of `answer` with their answers (of `cluster` only, when given).
fn render_types(out: &mut String, answer: &AskAnswer, cluster: Option<&str>) {
    use std::fmt::Write;
    for t in &answer.types {
        let instances: Vec<&AskHit> = t
            .instances
            .iter()
            .filter(|i| cluster.is_none_or(|c| i.hit.cluster == c))
            .collect();
        if instances.is_empty() {
            continue;
        }
        let group = if t.group.is_empty() { "core" } else { &t.group };
        let _ = writeln!(out, "{} ({group})", t.kind);
        if !t.reason.is_empty() {
            let _ = writeln!(out, "  type matches: {}", shorten(&t.reason, 140));
        }
        for i in instances {
            let _ = writeln!(
                out,
                "  - {}{}  score {:.2}  {}",
                where_of(&i.hit),
                health_of(&i.hit)
                    .map(|h| format!("  [{h}]"))
                    .unwrap_or_default(),
                i.hit.score,
                why_of(i)
            );
            if !i.owns.is_empty() {
                let _ = writeln!(out, "      with {}", i.owns.join(", "));
            }
        }
        let _ = writeln!(out);
    }
}

/// `words: payments; exact: label:team=finance; type: poolers.postgresql.cnpg.io`.
fn why_of(a: &AskHit) -> String {
    let mut parts = Vec::new();
    if !a.why.words.is_empty() {
        parts.push(format!("words: {}", a.why.words.join(", ")));
    }
    if !a.hit.matched.is_empty() {
        parts.push(format!("exact: {}", a.hit.matched.join(", ")));
    }
    if let Some(c) = &a.why.category {
        parts.push(format!("category {c}"));
    }
    if let Some(c) = &a.why.capability {
        parts.push(format!("type: {c}"));
    }
    if parts.is_empty() {
        parts.push(format!("similar text ({:.2})", a.why.similarity));
    }
    format!("why: {}", parts.join("; "))
}

fn where_of(h: &SearchHit) -> String {
    if h.namespace.is_empty() || h.namespace == sync_model::CLUSTER_SCOPE {
        h.name.clone()
    } else {
        format!("{}/{}", h.namespace, h.name)
    }
}

/// `Failed: CrashLoopBackOff: container db`, or `-` when the object has no health.
fn health_of(h: &SearchHit) -> Option<String> {
    let health = h.health.as_ref()?;
    Some(if health.reason.is_empty() {
        health.status.to_string()
    } else {
        format!("{}: {}", health.status, shorten(&health.reason, 60))
    })
}

fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Labels worth a column: the well-known app labels first, then whatever else fits.
fn key_labels(h: &SearchHit) -> String {
    const KEYS: [&str; 4] = [
        "app.kubernetes.io/name",
        "app",
        "tier",
        "app.kubernetes.io/component",
    ];
    let mut out: Vec<String> = KEYS
        .iter()
        .filter_map(|k| h.labels.get(*k).map(|v| format!("{k}={v}")))
        .collect();
    if out.is_empty() {
        out = h
            .labels
            .iter()
            .take(2)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
    }
    shorten(&out.join(","), 48)
}

/// One row per hit; a CLUSTER column first when the hits come from more than one cluster.
fn print_table(hits: &[SearchHit]) {
    if hits.is_empty() {
        println!("No results.");
        return;
    }
    let fleet = clusters_of(hits.iter()).len() > 1;
    let rows: Vec<[String; 5]> = hits
        .iter()
        .map(|h| {
            [
                h.kind.clone(),
                if fleet {
                    format!("{}: {}", h.cluster, where_of(h))
                } else {
                    where_of(h)
                },
                health_of(h).unwrap_or_else(|| "-".into()),
                key_labels(h),
                format!("{:.3}", h.score),
            ]
        })
        .collect();
    let header = [
        "KIND",
        if fleet { "CLUSTER: NAME" } else { "NAME" },
        "HEALTH",
        "LABELS",
        "SCORE",
    ];
    print_columns(header, &rows);
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_model::search::{TypeMatch, Why};

    fn answer(hits: &[(&str, &str)]) -> AskAnswer {
        let instances = hits
            .iter()
            .map(|(cluster, name)| AskHit {
                hit: SearchHit {
                    id: format!("data/apps/v1/StatefulSet/{name}"),
                    cluster: cluster.to_string(),
                    kind: "StatefulSet".into(),
                    health: None,
                    namespace: "data".into(),
                    name: name.to_string(),
                    labels: Default::default(),
                    score: 0.5,
                    matched: vec![],
                    document: String::new(),
                },
                why: Why::default(),
                owns: vec![],
            })
            .collect();
        AskAnswer {
            question: "what databases are running?".into(),
            types: vec![TypeMatch {
                id: "statefulsets.apps".into(),
                kind: "StatefulSet".into(),
                group: "apps".into(),
                score: 0.5,
                reason: String::new(),
                instances,
            }],
            available: vec![],
            health: vec![],
            none_with_health: false,
            clusters: vec![],
        }
    }

    #[test]
    fn an_answer_from_several_clusters_is_grouped_by_cluster() {
        let text = render_answer(&answer(&[
            ("prod-eu", "orders-db"),
            ("staging", "orders-db"),
            ("prod-eu", "ledger-db"),
        ]));
        let prod = text.find("== cluster prod-eu ==").expect(&text);
        let staging = text.find("== cluster staging ==").expect(&text);
        assert!(prod < staging, "{text}");
        let (prod_part, staging_part) = text.split_at(staging);
        assert!(prod_part.contains("data/ledger-db") && prod_part.contains("data/orders-db"));
        assert!(staging_part.contains("data/orders-db") && !staging_part.contains("ledger-db"));
    }

    #[test]
    fn an_answer_from_one_cluster_has_no_cluster_headings() {
        let text = render_answer(&answer(&[
            ("prod-eu", "orders-db"),
            ("prod-eu", "ledger-db"),
        ]));
        assert!(!text.contains("== cluster"), "{text}");
        assert!(text.starts_with("StatefulSet (apps)"), "{text}");
    }

    #[test]
    fn an_answer_says_per_cluster_how_many_more_it_has_and_where_none_is_unhealthy() {
        use sync_model::search::ClusterCount;
        use sync_model::HealthStatus;
        let mut a = answer(&[("gen-a", "orders-db"), ("demo", "ledger-db")]);
        a.health = vec![HealthStatus::Failed, HealthStatus::InProgress];
        a.clusters = vec![
            ClusterCount {
                cluster: "demo".into(),
                shown: 1,
                total: Some(1),
            },
            ClusterCount {
                cluster: "gen-a".into(),
                shown: 1,
                total: Some(4),
            },
            ClusterCount {
                cluster: "gen-b".into(),
                shown: 0,
                total: Some(0),
            },
        ];
        let text = render_answer(&a);
        assert!(
            text.contains("Per cluster (shown of all that answer):\n"),
            "{text}"
        );
        assert!(text.contains("  demo   1 of 1\n"), "{text}");
        assert!(
            text.contains("  gen-a  1 of 4 (3 more: --cluster gen-a --limit 4)\n"),
            "{text}"
        );
        assert!(
            text.contains("  gen-b  none Failed or InProgress\n"),
            "{text}"
        );
    }

    #[test]
    fn why_says_which_category_the_software_answers() {
        let mut a = answer(&[("demo", "sessions-redis")]);
        let hit = &mut a.types[0].instances[0];
        hit.why.category = Some("database (key-value store)".into());
        hit.hit.matched = vec!["category:database".into()];
        assert_eq!(
            why_of(hit),
            "why: exact: category:database; category database (key-value store)"
        );
    }

    #[test]
    fn a_health_question_says_which_health_it_answers_and_when_none_has_it() {
        use sync_model::HealthStatus;
        let mut a = answer(&[("prod-eu", "orders-db")]);
        a.health = vec![HealthStatus::Failed, HealthStatus::InProgress];
        let text = render_answer(&a);
        assert!(
            text.starts_with("Failed or InProgress answers to \"what databases are running?\":"),
            "{text}"
        );
        a.none_with_health = true;
        let text = render_answer(&a);
        assert!(
            text.starts_with(
                "None of the answers to \"what databases are running?\" is Failed or InProgress."
            ),
            "{text}"
        );
        assert!(text.contains("data/orders-db"), "{text}");
        a.types.clear();
        a.none_with_health = false;
        assert_eq!(
            render_answer(&a),
            "Nothing Failed or InProgress answers \"what databases are running?\".\n"
        );
    }
}
