//! The tools' inputs and outputs: JSON schemas a model reads, and answers kept compact (one
//! small object per hit, no stored documents). Inputs are lenient where a model may slip
//! (enumerations are checked here, so a wrong value is a tool error that says what to send,
//! not a protocol failure).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_model::search::{GroupCount, SearchHit};

/// Hits per page unless asked otherwise, and at most.
pub const DEFAULT_PAGE: usize = 20;
/// `ask`'s answers in all, by default and at most (the CLI's and the HTTP API's default is
/// the same 10).
pub const ASK_DEFAULT: usize = 10;
pub const ASK_MAX: usize = 50;
pub const MAX_PAGE: usize = 50;
/// Serialized answers are cut to this size (hits are dropped from the end of the page and
/// the cursor moves back to them): about 4,000 tokens.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024;
/// Groups listed by `group_by` at most; the rest are summed in `otherGroups`.
pub const MAX_GROUPS: usize = 50;
/// Labels shown per hit at most.
const MAX_LABELS: usize = 4;
const MAX_LABEL_CHARS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // read only for its schema: values are checked in `ResultMode::parse`
enum ModeSchema {
    List,
    Count,
    GroupBy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // read only for its schema
enum GroupBySchema {
    Kind,
    Namespace,
    Health,
}

/// The health words a model is shown; `parse_health` also reads them in any case and with
/// a dash (`failed`, `in-progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[allow(dead_code)] // read only for its schema: values are checked in `parse_health`
enum HealthSchema {
    Current,
    InProgress,
    Failed,
    Terminating,
    Unknown,
    #[serde(rename = "unhealthy")]
    Unhealthy,
    #[serde(rename = "healthy")]
    Healthy,
    #[serde(rename = "failing")]
    Failing,
    #[serde(rename = "progressing")]
    Progressing,
}

/// The health filter as a model may spell it (`failed`, `in-progress`, `unhealthy`), read
/// by sync-model's one reading of health words; the error names every accepted word.
pub fn parse_health(health: Option<&str>) -> Result<Option<sync_model::HealthFilter>, String> {
    sync_model::HealthFilter::parse_optional(health)
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchResourcesParams {
    /// Free text ranked by meaning and exact names ("postgres", "web servers that cache").
    /// Optional when a filter is given: without it, the filtered objects are listed by id.
    /// In count and group_by modes its words count exact matches of names, kinds or label values.
    #[serde(default)]
    pub query: Option<String>,
    /// Exact kind, as Kubernetes spells it: `Deployment`, `StatefulSet`, `Cluster`.
    #[serde(default)]
    pub kind: Option<String>,
    /// The kind's API group: `apps`, `postgresql.cnpg.io`; `core` for Pods, Services, ConfigMaps.
    #[serde(default)]
    pub api_group: Option<String>,
    /// Exact namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Only objects of this cluster (an id from list_clusters).
    #[serde(default)]
    pub cluster: Option<String>,
    /// Label filters `key=value`; all must hold.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Only objects of this health, read from their status: `Failed` (CrashLoopBackOff, a
    /// failed Job, Ready=False), `InProgress` (rolling out, pending), `Current`,
    /// `Terminating`, `Unknown`; or `unhealthy` (Failed or InProgress), `healthy` (Current),
    /// `failing` (Failed), `progressing` (InProgress). Any case; `in-progress` too. Kinds
    /// without a status that says anything have no health.
    #[serde(default)]
    #[schemars(with = "Option<HealthSchema>")]
    pub health: Option<String>,
    /// `list` (default): one page of hits. `count`: the number of matching objects only.
    /// `group_by`: counts per kind, namespace or health (see groupBy).
    #[serde(default)]
    #[schemars(with = "Option<ModeSchema>")]
    pub mode: Option<String>,
    /// With mode group_by: `kind` (default), `namespace` or `health`.
    #[serde(default)]
    #[schemars(with = "Option<GroupBySchema>")]
    pub group_by: Option<String>,
    /// Hits per page, 1 to 50 (default 20).
    #[serde(default)]
    pub limit: Option<u32>,
    /// nextCursor of the previous page, with the same query, filters and mode.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// The three answers of `search_resources`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultMode {
    List,
    Count,
    GroupBy(sync_model::search::GroupBy),
}

impl ResultMode {
    pub fn parse(mode: Option<&str>, group_by: Option<&str>) -> Result<Self, String> {
        use sync_model::search::GroupBy;
        let group = match group_by.map(str::trim).filter(|g| !g.is_empty()) {
            None | Some("kind") => GroupBy::Kind,
            Some("namespace") => GroupBy::Namespace,
            Some("health") => GroupBy::Health,
            Some(other) => {
                return Err(format!(
                    "groupBy {other:?} is not supported: use \"kind\", \"namespace\" or \"health\""
                ))
            }
        };
        match mode.map(str::trim).filter(|m| !m.is_empty()) {
            None | Some("list") => Ok(ResultMode::List),
            Some("count") => Ok(ResultMode::Count),
            Some("group_by") | Some("groupBy") | Some("group-by") => Ok(ResultMode::GroupBy(group)),
            Some(other) => Err(format!(
                "mode {other:?} is not supported: use \"list\" (hits), \"count\" (a number) \
                 or \"group_by\" (counts per kind, namespace or health)"
            )),
        }
    }
}

/// One hit in a line's worth of JSON.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HitLine {
    /// Pass to get_resource for live details.
    pub id: String,
    /// The cluster the object runs in (an id from list_clusters).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
    /// Up to four labels, the well-known app labels first.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Health read from the object's status, with its reason (`Failed: CrashLoopBackOff:
    /// container db`); absent for kinds without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// Relevance, higher is better (similarity plus exact-match boosts); absent when listing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// ask only: objects it controls that answered too (its ReplicaSets, Pods), folded
    /// into this answer, each with its health when it has one.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub owns: Vec<String>,
}

impl HitLine {
    pub fn from_hit(hit: &SearchHit, ranked: bool) -> Self {
        HitLine {
            id: hit.id.clone(),
            cluster: hit.cluster.clone(),
            kind: hit.kind.clone(),
            namespace: if hit.namespace == sync_model::CLUSTER_SCOPE {
                String::new()
            } else {
                hit.namespace.clone()
            },
            name: hit.name.clone(),
            labels: key_labels(&hit.labels),
            health: hit.health.as_ref().map(ToString::to_string),
            score: ranked.then(|| round(hit.score)),
            owns: Vec::new(),
        }
    }
}

/// The well-known app labels first, then others, up to [`MAX_LABELS`], values shortened.
fn key_labels(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    const FIRST: [&str; 5] = [
        "app.kubernetes.io/name",
        "app",
        "app.kubernetes.io/component",
        "tier",
        "app.kubernetes.io/part-of",
    ];
    let mut keys: Vec<&String> = FIRST
        .iter()
        .filter_map(|k| labels.get_key_value(*k).map(|(k, _)| k))
        .collect();
    for k in labels.keys() {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .take(MAX_LABELS)
        .map(|k| {
            let v = &labels[k];
            let v = match v.char_indices().nth(MAX_LABEL_CHARS) {
                Some((i, _)) => format!("{}…", &v[..i]),
                None => v.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// `search_resources`' answer.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchAnswer {
    /// `list`, `count` or `group_by`.
    pub mode: String,
    /// list: this page's hits, best first (or by id when listing without a query).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<HitLine>,
    /// list: pass as cursor (with the same parameters) for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// count and group_by: how many objects match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<usize>,
    /// group_by: objects per kind or namespace, largest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupCountLine>,
    /// group_by: objects in groups left out of `groups`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_groups: Option<usize>,
    /// What a caller should know: why the list ended, what to try next.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct GroupCountLine {
    pub key: String,
    pub count: usize,
}

impl From<GroupCount> for GroupCountLine {
    fn from(g: GroupCount) -> Self {
        GroupCountLine {
            key: g.key,
            count: g.count,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapabilitiesParams {
    /// What the resource type should do or be: "database", "TLS certificates", "message queue".
    pub query: String,
    /// Types to return, 1 to 20 (default 5).
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapabilitiesAnswer {
    pub types: Vec<TypeLine>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TypeLine {
    /// `plural.group` (`clusters.postgresql.cnpg.io`; `pods` for core types).
    pub id: String,
    pub kind: String,
    /// The API group, empty for core types.
    pub api_group: String,
    pub score: f64,
    /// The start of the type's description: why it matched.
    pub about: String,
}

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

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetResourceParams {
    /// The id from a search hit (`namespace/apiVersion/kind/name`); or give kind and name.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// Leave out for cluster-scoped objects.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `apps/v1`, `v1`; looked up in the index when left out.
    #[serde(default)]
    pub api_version: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClustersAnswer {
    pub clusters: Vec<ClusterLine>,
    pub note: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterLine {
    /// The cluster's name where the process knows it (its kubeconfig context), else `default`.
    pub name: String,
    /// Objects indexed.
    pub objects: usize,
    /// Resource types indexed (the capabilities collection).
    pub types: usize,
    /// Objects per kind, the ten largest.
    pub kinds: Vec<GroupCountLine>,
    /// Whether get_resource can read this cluster live from here.
    pub live_access: bool,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct InvestigateArgs {
    /// What to look into: "databases", "the checkout service", "TLS certificates".
    pub subject: String,
}

/// `""`, `core` and `v1` name the core group; anything else is the group itself.
pub fn normalise_group(group: Option<&str>) -> Option<String> {
    let g = group?.trim();
    match g {
        "" => None,
        "core" | "v1" => Some(String::new()),
        other => Some(other.to_string()),
    }
}

/// `None` for an absent or blank text.
pub fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A score to three decimals (as f64, so JSON shows `0.466`, not `0.4659999907016754`).
pub fn round(score: f32) -> f64 {
    (f64::from(score) * 1000.0).round() / 1000.0
}

/// Shortens to `max` characters, marking the cut.
pub fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_checked_with_a_message_that_names_the_choices() {
        use sync_model::search::GroupBy;
        assert_eq!(ResultMode::parse(None, None), Ok(ResultMode::List));
        assert_eq!(
            ResultMode::parse(Some("group_by"), Some("namespace")),
            Ok(ResultMode::GroupBy(GroupBy::Namespace))
        );
        let err = ResultMode::parse(Some("everything"), None).unwrap_err();
        assert!(err.contains("\"count\""), "{err}");
        assert!(ResultMode::parse(Some("count"), Some("team")).is_err());
        assert_eq!(
            ResultMode::parse(Some("group_by"), Some("health")),
            Ok(ResultMode::GroupBy(GroupBy::Health))
        );
    }

    #[test]
    fn the_health_filter_reads_as_a_model_may_spell_it_and_names_the_choices() {
        use sync_model::{HealthFilter, HealthStatus};
        assert_eq!(
            parse_health(Some("failed")),
            Ok(Some(HealthFilter::Is(HealthStatus::Failed)))
        );
        assert_eq!(
            parse_health(Some("unhealthy")),
            Ok(Some(HealthFilter::Unhealthy))
        );
        assert_eq!(parse_health(Some(" ")), Ok(None));
        let err = parse_health(Some("broken")).unwrap_err();
        assert!(err.contains("InProgress"), "{err}");
        assert!(err.contains("unhealthy"), "{err}");
    }

    #[test]
    fn hits_keep_four_labels_app_labels_first() {
        let labels: BTreeMap<String, String> = [
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("d", "4"),
            ("app", "web"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let kept = key_labels(&labels);
        assert_eq!(kept.len(), 4);
        assert_eq!(kept["app"], "web");
        assert!(!kept.contains_key("d"));
    }

    #[test]
    fn the_core_group_has_several_spellings() {
        assert_eq!(normalise_group(Some("core")), Some(String::new()));
        assert_eq!(normalise_group(Some("")), None);
        assert_eq!(normalise_group(Some("apps")), Some("apps".into()));
    }
}
