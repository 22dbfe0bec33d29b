//! The search API's request and answers (`POST /api/v1/search`), as `cw search`,
//! `cw ask` and any other client send and read them. The ranking lives in the ingest
//! crate; this is only the shape on the wire.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Health, HealthFilter, HealthStatus};

/// Which collection a search reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Collection {
    #[default]
    Instances,
    Capabilities,
}

/// How results are found and ranked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Vector similarity, boosted by exact matches of query terms.
    #[default]
    Hybrid,
    /// Vector similarity only.
    Semantic,
    /// Exact matches of query terms on names, kinds and label values; no embedding call.
    Keyword,
}

/// A search request, as `cw search` and `POST /api/v1/search` take it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct SearchRequest {
    pub query: String,
    pub collection: Collection,
    /// Only this cluster's objects (a cluster id such as `prod-eu`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    pub kind: Option<String>,
    /// The API group of the kind (`apps`, `postgresql.cnpg.io`; `""` for core types).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
    pub namespace: Option<String>,
    /// `key=value` pairs; all must hold.
    pub labels: Vec<String>,
    /// Only objects of this health: `Current`, `InProgress`, `Failed`, `Terminating` or
    /// `Unknown` (any case, with or without a dash: `failed`, `in-progress`), or
    /// `unhealthy` (Failed or InProgress), `healthy` (Current), `failing` (Failed),
    /// `progressing` (InProgress). Kinds without a health never match.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "unhealthy"))]
    pub health: Option<HealthFilter>,
    pub limit: Option<usize>,
    pub mode: SearchMode,
}

/// The body of `POST /api/v1/search`: a [`SearchRequest`], and `"ask": true` for the
/// semantic bridge (types first, then their instances).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SearchBody {
    #[serde(flatten)]
    pub request: SearchRequest,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ask: bool,
}

/// What a count is split by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub enum GroupBy {
    Kind,
    Namespace,
    /// By health (`Failed`, `Current`, ...; `none` for objects without one).
    Health,
    Cluster,
}

/// The body of `POST /api/v1/search/count`: how many stored objects match the filters of a
/// [`SearchRequest`] (its `limit` and `mode` are ignored). A query counts the objects whose
/// name, kind or a label value equals one of its words; a count has no similarity ranking.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CountBody {
    #[serde(flatten)]
    pub request: SearchRequest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<GroupBy>,
}

/// The answer to a count: the total and, when grouped, the count of each group, largest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CountAnswer {
    pub total: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupCount {
    pub key: String,
    pub count: usize,
}

/// One result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SearchHit {
    /// The object's id (`namespace/apiVersion/kind/name`), unique within its cluster.
    pub id: String,
    /// The cluster the object belongs to (empty for a capability).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The object's health when its kind has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Higher is better: similarity (1 − cosine distance) plus exact-match boosts.
    pub score: f32,
    /// Query terms that matched a name, kind or label value exactly.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub matched: Vec<String>,
    pub document: String,
    /// The object's controlling owner, as the index holds it (a Pod's ReplicaSet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<crate::Owner>,
}

/// The answer to a plain search: `{"results": [...]}`, and across a fleet how the page is
/// shared among the clusters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchResults {
    pub results: Vec<SearchHit>,
    /// Without a cluster filter on an index of several clusters: each cluster's share of the
    /// page (every cluster with results gets one, best first in turn) and, where the list is
    /// complete (a listing by filters, a keyword search), how many it holds in all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<ClusterCount>,
}

/// How many answers of one cluster the page shows, and how many there are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClusterCount {
    pub cluster: String,
    /// Its answers on this page.
    pub shown: usize,
    /// Its answers in all, counted in the store (at least `shown`): `total - shown` more
    /// than the page shows. Absent where a ranking by meaning has no end (a semantic
    /// search).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<usize>,
}

/// `ask`'s answer: the running objects that answer the question, best first and grouped
/// by type for display, and the types that would answer it but have nothing running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AskAnswer {
    pub question: String,
    /// The answers grouped by type, the type of the best answer first; within a type, best
    /// first. Every instance appears once.
    pub types: Vec<TypeMatch>,
    /// Types whose description answers the question but with no instance in the index:
    /// what the cluster can run, not what runs. Never counted among the answers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub available: Vec<TypeMatch>,
    /// The healths the answers were restricted to: the request's `health` (`unhealthy`:
    /// `Failed` and `InProgress`), or `Failed` and
    /// `InProgress` when the question itself asks about health ("are any databases
    /// unhealthy?", "what is failing?"). Empty: answers of any health.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health: Vec<HealthStatus>,
    /// True when the question asked about health but no object that answers it has one of
    /// those healths: `types` then holds the answers of any health ("no database is
    /// unhealthy; these are the databases").
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub none_with_health: bool,
    /// Per cluster asked (each cluster of the fleet without a cluster filter): its answers
    /// on the page and how many objects answer in all, counted in the store (those of the
    /// software, category or custom type the question names, and those the ranking found),
    /// so that the page says how many more each cluster has. A health question's counts are
    /// of its unhealthy answers; 0 means the store holds none there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<ClusterCount>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TypeMatch {
    /// `plural.group` of the type (`Kind.group` when the type has no capability record).
    pub id: String,
    pub kind: String,
    pub group: String,
    /// The best score among its answers (for an available type, its description's
    /// similarity).
    pub score: f32,
    /// The capability document when the type's description matched the question (the
    /// bridge); empty when only its objects' own text did.
    pub reason: String,
    pub instances: Vec<AskHit>,
}

/// One answer of `ask`: the object (as a search hit: kind, namespace, name, labels, the
/// one score that direct and bridged answers share) and why it answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AskHit {
    #[serde(flatten)]
    pub hit: SearchHit,
    #[serde(default)]
    pub why: Why,
    /// Objects it controls that answered too, folded into it instead of taking answers of
    /// their own: `Pod db-0`, `ReplicaSet web-7d9f [InProgress: 1/3 replicas ready]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owns: Vec<String>,
}

impl AskHit {
    /// Why it answers, as every surface says it: `words: payments; exact: label:team=finance;
    /// type: poolers.postgresql.cnpg.io`, or `similar text (0.42)` when only its text's
    /// meaning is near the question's.
    pub fn why_line(&self) -> String {
        let mut parts = Vec::new();
        if !self.why.words.is_empty() {
            parts.push(format!("words: {}", self.why.words.join(", ")));
        }
        if !self.hit.matched.is_empty() {
            parts.push(format!("exact: {}", self.hit.matched.join(", ")));
        }
        if let Some(c) = &self.why.category {
            parts.push(format!("category {c}"));
        }
        if let Some(c) = &self.why.capability {
            parts.push(format!("type: {c}"));
        }
        if parts.is_empty() {
            parts.push(format!("similar text ({:.2})", self.why.similarity));
        }
        parts.join("; ")
    }
}

/// Why an object answers: words of the question found in its own text, and the
/// capability (its type's description) that matched the question.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct Why {
    /// Question words (or their singulars) in the object's name, namespace, labels or
    /// description.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<String>,
    /// `plural.group` of the type whose description matched, when the bridge brought it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    /// What the object's well-known software is, when that is what the question asks for:
    /// `database (key-value store)` for Redis asked about databases, `key-value store`,
    /// `monitoring`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Similarity of the object's own text to the question (0 when only exact matches
    /// found it).
    pub similarity: f32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ask_body_is_a_search_request_with_the_ask_flag() {
        let body = SearchBody {
            request: SearchRequest {
                query: "databases".into(),
                limit: Some(5),
                ..Default::default()
            },
            ask: true,
        };
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["query"], "databases");
        assert_eq!(json["ask"], true);
        let back: SearchBody = serde_json::from_value(json).unwrap();
        assert_eq!(back, body);
        let plain: SearchBody = serde_json::from_str(r#"{"query":"x"}"#).unwrap();
        assert!(!plain.ask);
    }

    #[test]
    fn an_answer_from_before_the_why_and_available_fields_still_reads() {
        let old = r#"{"question":"q","types":[{"id":"clusters.postgresql.cnpg.io","kind":"Cluster",
            "group":"postgresql.cnpg.io","score":0.4,"reason":"r","instances":[{"id":"i","kind":"Cluster",
            "namespace":"data","name":"orders-db","labels":{},"score":0.4,"document":"d"}]}]}"#;
        let answer: AskAnswer = serde_json::from_str(old).unwrap();
        assert!(answer.available.is_empty());
        assert_eq!(answer.types[0].instances[0].hit.name, "orders-db");
        assert_eq!(answer.types[0].instances[0].why, Why::default());
        // And an old client, which knows only the search hit, reads a new answer's instances.
        let new = serde_json::to_value(&answer).unwrap();
        let hit: SearchHit =
            serde_json::from_value(new["types"][0]["instances"][0].clone()).unwrap();
        assert_eq!(hit.namespace, "data");
    }

    #[test]
    fn answers_without_per_cluster_counts_read_as_before_and_new_ones_carry_them() {
        let old: SearchResults = serde_json::from_str(r#"{"results":[]}"#).unwrap();
        assert!(old.clusters.is_empty());
        assert_eq!(
            serde_json::to_string(&old).unwrap(),
            r#"{"results":[]}"#,
            "nothing new on the wire when there is nothing to say"
        );
        let answer: AskAnswer = serde_json::from_str(r#"{"question":"q","types":[]}"#).unwrap();
        assert!(answer.clusters.is_empty());
        let new = AskAnswer {
            clusters: vec![ClusterCount {
                cluster: "gen-a".into(),
                shown: 3,
                total: Some(8),
            }],
            ..answer
        };
        let json = serde_json::to_value(&new).unwrap();
        assert_eq!(
            json["clusters"],
            serde_json::json!([{"cluster": "gen-a", "shown": 3, "total": 8}])
        );
        assert_eq!(serde_json::from_value::<AskAnswer>(json).unwrap(), new);
    }

    #[test]
    fn a_count_body_reads_filters_and_the_grouping_in_camel_case() {
        let body: CountBody = serde_json::from_str(
            r#"{"kind":"Cluster","apiGroup":"postgresql.cnpg.io","groupBy":"namespace"}"#,
        )
        .unwrap();
        assert_eq!(
            body.request.api_group.as_deref(),
            Some("postgresql.cnpg.io")
        );
        assert_eq!(body.group_by, Some(GroupBy::Namespace));
        let plain: CountBody = serde_json::from_str("{}").unwrap();
        assert_eq!(plain.group_by, None);
    }

    #[test]
    fn a_request_reads_the_health_words_people_type() {
        let body: SearchBody =
            serde_json::from_str(r#"{"query":"","health":"unhealthy"}"#).unwrap();
        assert_eq!(body.request.health, Some(HealthFilter::Unhealthy));
        let body: SearchBody =
            serde_json::from_str(r#"{"query":"","health":"in-progress"}"#).unwrap();
        assert_eq!(
            body.request.health,
            Some(HealthFilter::Is(HealthStatus::InProgress))
        );
        let err = serde_json::from_str::<SearchBody>(r#"{"query":"","health":"sick"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unhealthy") && err.contains("InProgress"),
            "{err}"
        );
    }

    #[cfg(feature = "openapi")]
    #[test]
    fn the_api_schema_documents_the_health_words_as_a_string() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(SearchRequest::schema()).unwrap();
        let health = &schema["properties"]["health"];
        assert!(health.to_string().contains("\"string\""), "{health}");
        assert!(
            health["description"]
                .as_str()
                .is_some_and(|d| d.contains("`unhealthy` (Failed or InProgress)")),
            "{health}"
        );
    }
}
