//! `ask`: a question in plain words, answered by the resource types that match it and their
//! running instances, narrowed by the filters.

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::answer::{round, shorten, ClusterLine, HitLine};
use super::input::{bounded, non_empty, normalise_group, parse_health, parse_labels, HealthSchema};
use super::{index_error, RANKING_WINDOW};
use crate::server::CwMcp;

/// `ask`'s answers in all, by default and at most (the CLI's and the HTTP API's default is
/// the same 10).
pub const ASK_DEFAULT: usize = 10;
pub const ASK_MAX: usize = 50;

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AskParams {
    /// A question in plain words: "what databases are running?", "what serves TLS certificates?"
    pub question: String,
    /// Only this cluster's instances (an id from list_clusters); without it the whole index.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Only instances in this namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Only types of this kind (`Cluster`, `StatefulSet`).
    #[serde(default)]
    pub kind: Option<String>,
    /// Only types of this API group (`postgresql.cnpg.io`; `core`).
    #[serde(default)]
    pub api_group: Option<String>,
    /// Only instances with all of these labels (`key=value`).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Only instances of this health: `Failed` ("which databases are failing?"),
    /// `InProgress`, `Current`, `Terminating`, `Unknown`; or `unhealthy` (Failed or
    /// InProgress), `healthy` (Current), `failing` (Failed), `progressing` (InProgress).
    /// Any case; `in-progress` too.
    #[serde(default)]
    #[schemars(with = "Option<HealthSchema>")]
    pub health: Option<String>,
    /// Answers in all (running instances, best first, across types), 1 to 50 (default 10).
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AskAnswerLines {
    pub question: String,
    /// The matching types, best first, each with its running instances.
    pub types: Vec<AskType>,
    /// Per cluster asked (every cluster of the index without a cluster filter): its
    /// answers here and how many objects answer in all (for a question about health, how
    /// many of them are unhealthy: 0 means none is).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<ClusterLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AskType {
    pub id: String,
    pub kind: String,
    pub api_group: String,
    pub score: f64,
    /// Why this type answers the question (the start of its description).
    pub why: String,
    pub instances: Vec<HitLine>,
}

#[tool_router(router = ask_router, vis = "pub(super)")]
impl CwMcp {
    #[tool(
        description = "Answer a question about what runs in the cluster in one call: finds the \
resource types whose purpose matches the question (e.g. PostgreSQL and MySQL types for \
'what databases are running?'), then their running instances, best first. Filters narrow the \
types (kind, apiGroup) and the instances (namespace, labels, health: Failed for \
'which databases are failing?', unhealthy for Failed or InProgress). A question about health ('are any databases unhealthy?') \
is answered by its Failed and InProgress instances, or says that none is. Each instance carries its health with a reason when its status \
says one, and an id for get_resource for live details.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn ask(
        &self,
        Parameters(p): Parameters<AskParams>,
    ) -> Result<Json<AskAnswerLines>, String> {
        let question = non_empty(Some(&p.question)).ok_or(
            "question must not be empty: ask in plain words, e.g. \"what databases are running?\"",
        )?;
        let limit = bounded(p.limit, ASK_DEFAULT, ASK_MAX, "limit")?;
        let labels = parse_labels(&p.labels)?;
        let namespace = non_empty(p.namespace.as_deref());
        let kind = non_empty(p.kind.as_deref());
        let group = normalise_group(p.api_group.as_deref());
        let health = parse_health(p.health.as_deref())?;
        let filtered = namespace.is_some() || !labels.is_empty() || health.is_some();
        // Instances filtered out here are replaced by asking for more of each type.
        let fetch = if filtered { RANKING_WINDOW / 10 } else { limit };
        let answer = self
            .index
            .ask(&question, fetch, non_empty(p.cluster.as_deref()).as_deref())
            .await
            .map_err(index_error)?;
        let types: Vec<AskType> = answer
            .types
            .into_iter()
            .filter(|t| kind.as_ref().is_none_or(|k| &t.kind == k))
            .filter(|t| group.as_ref().is_none_or(|g| &t.group == g))
            .map(|t| AskType {
                instances: t
                    .instances
                    .iter()
                    .filter(|h| namespace.as_ref().is_none_or(|ns| &h.hit.namespace == ns))
                    .filter(|h| labels.iter().all(|(k, v)| h.hit.labels.get(k) == Some(v)))
                    .filter(|h| {
                        health.is_none_or(|want| {
                            h.hit.health.as_ref().is_some_and(|x| want.admits(x.status))
                        })
                    })
                    .take(limit)
                    .map(|h| HitLine {
                        owns: h.owns.clone(),
                        ..HitLine::from_hit(&h.hit, true)
                    })
                    .collect(),
                id: t.id,
                kind: t.kind,
                api_group: t.group,
                score: round(t.score),
                why: shorten(&t.reason, 160),
            })
            .collect();
        let asked_health: Vec<&str> = answer.health.iter().map(|h| h.as_str()).collect();
        let note = if types.is_empty() && !asked_health.is_empty() {
            Some(format!(
                "nothing {} answers the question",
                asked_health.join(" or ")
            ))
        } else if types.is_empty() {
            Some(
                "no resource type matches: rephrase with what the thing does (\"database\", \
                 \"certificates\"), or use search_resources with a name or kind"
                    .to_string(),
            )
        } else if answer.none_with_health {
            Some(format!(
                "none of the answers is {}: these are the answers of any health, each with its own",
                asked_health.join(" or ")
            ))
        } else {
            None
        };
        let clusters = ClusterLine::of(&answer.clusters, |c| {
            types
                .iter()
                .flat_map(|t| t.instances.iter())
                .filter(|h| h.cluster == c)
                .count()
        });
        Ok(Json(AskAnswerLines {
            question,
            types,
            clusters,
            note,
        }))
    }
}
