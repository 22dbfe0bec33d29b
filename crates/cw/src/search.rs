//! `cw search` and `cw ask`: clients of a running server's `POST /api/v1/search`.
//! The ranking lives in `ingest::search`; this module sends the request and prints.

use anyhow::{bail, Context};
use serde::de::DeserializeOwned;
use sync_model::api;
use sync_model::search::{
    AskAnswer, Collection, SearchBody, SearchHit, SearchMode, SearchRequest, SearchResults,
};
use watcher::TokenArgs;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(clap::Args)]
pub struct ServerArgs {
    /// The cw server (`cw serve` or `cw run`) to ask.
    #[arg(long, env = "CW_SERVER_URL", default_value = "http://localhost:3000")]
    pub server: String,
    // The bearer token of the server's API.
    #[command(flatten)]
    pub token: TokenArgs,
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
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
    /// `key=value`; repeat for several (all must match).
    #[arg(long = "label")]
    pub labels: Vec<String>,
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
    /// Instances per matching type.
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
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
    server: &ServerArgs,
    body: &SearchBody,
) -> anyhow::Result<(serde_json::Value, T)> {
    let url = api::url(api::base_url(&server.server), api::SEARCH);
    let mut req = reqwest::Client::new().post(&url).json(body);
    if let Some(t) = server.token.get() {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.with_context(|| {
        format!("cannot reach the cw server at {url} (is `cw serve` or `cw run` running? --server)")
    })?;
    let status = resp.status();
    let value: serde_json::Value = resp
        .json()
        .await
        .with_context(|| format!("{url} answered {status} without JSON"))?;
    if !status.is_success() {
        let error = value.get("error").and_then(|e| e.as_str()).unwrap_or("");
        bail!("search failed ({status}): {error}");
    }
    let typed = serde_json::from_value(value.clone()).context("unexpected search answer")?;
    Ok((value, typed))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let request = SearchRequest {
        query: args.query.clone(),
        collection: match args.collection {
            CollectionArg::Instances => Collection::Instances,
            CollectionArg::Capabilities => Collection::Capabilities,
        },
        kind: args.kind.clone(),
        api_group: args.api_group.clone(),
        namespace: args.namespace.clone(),
        labels: args.labels.clone(),
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
    let (value, results): (_, SearchResults) = post(&args.server, &body).await?;
    match args.server.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&value)?),
        Output::Table => print_table(&results.results),
    }
    Ok(())
}

pub async fn ask(args: AskArgs) -> anyhow::Result<()> {
    let body = SearchBody {
        request: SearchRequest {
            query: args.question.clone(),
            limit: Some(args.limit),
            ..SearchRequest::default()
        },
        ask: true,
    };
    let (value, answer): (_, AskAnswer) = post(&args.server, &body).await?;
    match args.server.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&value)?),
        Output::Table => print_answer(&answer),
    }
    Ok(())
}

fn print_answer(answer: &AskAnswer) {
    if answer.types.is_empty() {
        println!("No resource type matches {:?}.", answer.question);
    }
    for t in &answer.types {
        let group = if t.group.is_empty() { "core" } else { &t.group };
        println!("{} ({group})  score {:.2}", t.kind, t.score);
        println!("  why: {}", shorten(&t.reason, 160));
        if t.instances.is_empty() {
            println!("  (no instances running)");
        }
        for i in &t.instances {
            println!("  - {}  score {:.2}", where_of(i), i.score);
        }
        println!();
    }
}

fn where_of(h: &SearchHit) -> String {
    if h.namespace.is_empty() || h.namespace == sync_model::CLUSTER_SCOPE {
        h.name.clone()
    } else {
        format!("{}/{}", h.namespace, h.name)
    }
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

fn print_table(hits: &[SearchHit]) {
    if hits.is_empty() {
        println!("No results.");
        return;
    }
    let rows: Vec<[String; 4]> = hits
        .iter()
        .map(|h| {
            [
                h.kind.clone(),
                where_of(h),
                key_labels(h),
                format!("{:.3}", h.score),
            ]
        })
        .collect();
    let header = ["KIND", "NAME", "LABELS", "SCORE"];
    let widths: Vec<usize> = (0..4)
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: [&str; 4]| {
        let mut s = String::new();
        for (c, cell) in cells.iter().enumerate() {
            s.push_str(&format!("{cell:<w$}  ", w = widths[c]));
        }
        println!("{}", s.trim_end());
    };
    line(header);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3]]);
    }
}
