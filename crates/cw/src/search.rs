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
        self.backend_for(false).await
    }

    /// Like [`ServerArgs::backend`]; `write`: the local store is opened for writing.
    async fn backend_for(&self, write: bool) -> anyhow::Result<Backend> {
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
        let store = if write {
            self.store.build()
        } else {
            self.store.build_reader()
        }
        .context(
            "opening the local index (or ask a running server with --server / CW_SERVER_URL)",
        )?;
        let embedder = self.embed.build_lazy()?;
        let generation = crate::backend::generation_store(store.clone(), &self.store)
            .active_snapshot(embedder.clone())
            .await
            .context("reading the index generation record")?;
        Ok(Backend::Local(Box::new(
            Searcher::new(
                store,
                embedder,
                self.store.instances_collection.clone(),
                self.store.capabilities_collection.clone(),
            )
            .in_generation(&generation),
        )))
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
#[command(args_conflicts_with_subcommands = true)]
pub struct ClustersArgs {
    #[command(subcommand)]
    pub action: Option<ClustersAction>,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(clap::Subcommand)]
pub enum ClustersAction {
    /// Retire a cluster: its objects, its place on the resource types' lists and its record
    /// leave the index in one call (DELETE /api/v1/clusters/NAME; the server's token must
    /// may write every cluster). Stop its watcher first, or its next sync brings it back.
    /// Removing a cluster the index does not hold removes nothing and succeeds.
    Remove(RemoveArgs),
}

#[derive(clap::Args)]
pub struct RemoveArgs {
    /// The cluster, as `cw clusters` lists it.
    pub name: sync_model::ClusterId,
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
            let per_cluster = render_cluster_counts(&results.clusters, &[]);
            if !per_cluster.is_empty() {
                print!("\n{per_cluster}");
            }
        }
    }
    Ok(())
}

/// `cw clusters`: every cluster of the index with its object count, last sync, last
/// contact, whether it is stale and its objects by health (`GET /api/v1/clusters`, or the
/// local index); `cw clusters remove NAME` retires one.
pub async fn clusters(args: ClustersArgs) -> anyhow::Result<()> {
    if let Some(ClustersAction::Remove(remove)) = args.action {
        return remove_cluster(remove).await;
    }
    let answer: api::ClustersResponse = match args.server.backend().await? {
        Backend::Server(client) => client.clusters().await?,
        Backend::Local(searcher) => {
            searcher
                .clusters(ingest::clusters::DEFAULT_STALE_AFTER)
                .await?
        }
    };
    match args.server.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&answer)?),
        Output::Table => print!("{}", render_clusters(&answer)),
    }
    Ok(())
}

/// `cw clusters remove NAME`: through the server, or on the local index when none answers.
async fn remove_cluster(args: RemoveArgs) -> anyhow::Result<()> {
    let removed = match args.server.backend_for(true).await? {
        Backend::Server(client) => client.remove_cluster(&args.name).await?,
        Backend::Local(searcher) => {
            let store = &args.server.store;
            let (instances, capabilities) = crate::backend::pipelines(
                searcher
                    .unscoped_store()
                    .context("the local index is read whole")?
                    .clone(),
                searcher.embedder.clone(),
                store,
                &crate::backend::EnrichArgs::off(),
            )?;
            ingest::clusters::retire::retire(&instances, &capabilities, &args.name).await?
        }
    };
    match args.server.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&removed)?),
        Output::Table => println!("{}", render_removed(&removed)),
    }
    Ok(())
}

/// What `cw clusters remove` says it did.
fn render_removed(r: &api::ClusterRemoved) -> String {
    if r.instances == 0 && r.types_left == 0 && r.types_deleted == 0 && !r.record {
        return format!(
            "The index holds nothing of cluster {}: nothing to remove.",
            r.cluster
        );
    }
    format!(
        "Removed cluster {}: {} objects deleted, {} resource types left to other clusters, {} \
         resource types only it served deleted.",
        r.cluster, r.instances, r.types_left, r.types_deleted
    )
}

/// The clusters as a table: how long ago each was synced and heard from, STALE past the
/// server's threshold, objects by health.
fn render_clusters(answer: &api::ClustersResponse) -> String {
    if answer.clusters.is_empty() {
        return "No clusters in the index.\n".into();
    }
    let ago = |secs: Option<u64>| secs.map(api::age_text).unwrap_or_else(|| "-".into());
    let rows: Vec<[String; 6]> = answer
        .clusters
        .iter()
        .map(|c| {
            let health: Vec<String> = c.health.iter().map(|(h, n)| format!("{h}={n}")).collect();
            [
                c.id.to_string(),
                c.objects.to_string(),
                ago(c.last_sync_age_secs),
                ago(c.last_contact_age_secs),
                if c.stale { "STALE" } else { "ok" }.to_string(),
                if health.is_empty() {
                    "-".into()
                } else {
                    health.join(",")
                },
            ]
        })
        .collect();
    let mut out = columns(
        [
            "CLUSTER",
            "OBJECTS",
            "LAST SYNC",
            "LAST CONTACT",
            "STATE",
            "HEALTH",
        ],
        &rows,
    );
    if let (true, Some(secs)) = (
        answer.clusters.iter().any(|c| c.stale),
        answer.stale_after_secs,
    ) {
        out.push_str(&format!(
            "\nSTALE: no word from its watcher for over {} (or never): its objects may be out of \
             date. Check the watcher, or retire the cluster with `cw clusters remove NAME`.\n",
            api::age_text(secs).trim_end_matches(" ago")
        ));
    }
    out
}

/// `rows` under `header`, each column as wide as its widest cell, two spaces apart.
fn print_columns<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    print!("{}", columns(header, rows));
}

/// What [`print_columns`] prints.
fn columns<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
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
        format!("{}\n", s.trim_end())
    };
    let mut out = line(&mut header.iter().copied());
    for r in rows {
        out.push_str(&line(&mut r.iter().map(String::as_str)));
    }
    out
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
    out.push_str(&render_cluster_counts(&answer.clusters, &answer.health));
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
fn render_cluster_counts(
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
        let _ = writeln!(out, "{} ({})", shorten(&t.kind, 64), shorten(group, 64));
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
                let _ = writeln!(out, "      with {}", shorten(&i.owns.join(", "), 200));
            }
        }
        let _ = writeln!(out);
    }
}

/// `why: words: payments; exact: label:team=finance; type: poolers.postgresql.cnpg.io`.
fn why_of(a: &AskHit) -> String {
    format!("why: {}", shorten(&a.why_line(), 160))
}

fn where_of(h: &SearchHit) -> String {
    use sync_model::untrusted::clean_value;
    if h.namespace.is_empty() || h.namespace == sync_model::CLUSTER_SCOPE {
        clean_value(&h.name)
    } else {
        format!("{}/{}", clean_value(&h.namespace), clean_value(&h.name))
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

/// Cluster text as the terminal shows it: without control characters (no escape sequence
/// from an annotation reaches the terminal), invisible or bidi characters, cut to `max`.
fn shorten(s: &str, max: usize) -> String {
    sync_model::untrusted::clean(s, max)
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
                shorten(&h.kind, 64),
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
                    owner: None,
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

    fn cluster(
        id: &str,
        objects: usize,
        contact_age: Option<u64>,
        stale: bool,
    ) -> api::ClusterSummary {
        api::ClusterSummary {
            id: sync_model::ClusterId::new(id).unwrap(),
            objects,
            last_sync: contact_age.map(|_| "2026-02-20T10:00:00Z".into()),
            last_sync_age_secs: contact_age.map(|a| a + 3 * 3_600),
            last_contact: contact_age.map(|_| "2026-02-20T13:00:00Z".into()),
            last_contact_age_secs: contact_age,
            stale,
            health: [("Current".to_string(), objects)].into(),
        }
    }

    #[test]
    fn the_clusters_say_how_long_ago_and_mark_the_stale() {
        let answer = api::ClustersResponse {
            clusters: vec![
                cluster("gen-a", 430, Some(12), false),
                cluster("gen-b", 1524, Some(7_200), true),
                cluster("new", 0, None, true),
            ],
            stale_after_secs: Some(900),
        };
        let text = render_clusters(&answer);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0], "CLUSTER  OBJECTS  LAST SYNC  LAST CONTACT  STATE  HEALTH",
            "{text}"
        );
        assert_eq!(
            lines[1],
            "gen-a    430      3h ago     12s ago       ok     Current=430"
        );
        assert_eq!(
            lines[2],
            "gen-b    1524     5h ago     2h ago        STALE  Current=1524"
        );
        assert_eq!(
            lines[3],
            "new      0        -          -             STALE  Current=0"
        );
        assert!(
            text.contains("no word from its watcher for over 15m"),
            "{text}"
        );
        let fresh = api::ClustersResponse {
            clusters: vec![cluster("gen-a", 430, Some(12), false)],
            stale_after_secs: Some(900),
        };
        assert!(!render_clusters(&fresh).contains("STALE"));
    }

    #[test]
    fn a_removal_says_what_went_or_that_nothing_was_there() {
        let mut r = api::ClusterRemoved {
            cluster: sync_model::ClusterId::new("gen-b").unwrap(),
            instances: 1524,
            types_left: 30,
            types_deleted: 1,
            record: true,
        };
        assert!(render_removed(&r).starts_with("Removed cluster gen-b: 1524 objects deleted"));
        r = api::ClusterRemoved {
            instances: 0,
            types_left: 0,
            types_deleted: 0,
            record: false,
            ..r
        };
        assert_eq!(
            render_removed(&r),
            "The index holds nothing of cluster gen-b: nothing to remove."
        );
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
    fn cluster_text_reaches_the_terminal_without_escape_sequences_or_hidden_characters() {
        let mut a = answer(&[("prod-eu", "orders\u{1b}]0;pwned\u{7}-db\u{202e}")]);
        a.types[0].instances[0].hit.health = Some(sync_model::Health::new(
            sync_model::HealthStatus::Failed,
            "Ready=False: \u{1b}[2J\u{200b}gone",
        ));
        let text = render_answer(&a);
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{202e}'),
            "{text:?}"
        );
        assert!(text.contains("data/orders]0;pwned-db"), "{text}");
        assert!(text.contains("[Failed: Ready=False: [2Jgone]"), "{text}");
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
