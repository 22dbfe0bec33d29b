//! Answer lines several tools share, kept compact: one small object per hit, no stored
//! documents, scores to three decimals. Every value written in the cluster passes through
//! `untrusted::clean` here.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;
use sync_model::search::{ClusterCount, GroupCount, SearchHit};

use crate::untrusted::{clean, clean_value};

/// Labels shown per hit at most.
const MAX_LABELS: usize = 4;
/// Characters of a label's key or value shown at most (Kubernetes allows 63 in a value).
const MAX_LABEL_CHARS: usize = 64;
/// Characters of a health reason, an owned object's line or a why at most.
pub const MAX_LINE_CHARS: usize = 160;

/// The fields of a hit line that hold cluster text, as [`crate::untrusted::ClusterText`]
/// names them under `prefix` (`results[]`); `asked`: the lines of ask, with `owns` and `why`.
pub fn hit_fields(prefix: &str, asked: bool) -> Vec<String> {
    let mut fields = vec!["id", "kind", "namespace", "name", "labels", "health"];
    if asked {
        fields.extend(["owns", "why"]);
    }
    fields.iter().map(|f| format!("{prefix}.{f}")).collect()
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
    /// ask only: why it answers (`words: postgres; exact: label:app=postgres; type:
    /// clusters.postgresql.cnpg.io`, or `similar text (0.42)`), as `cw ask` prints it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

impl HitLine {
    /// The line of `hit`, its cluster text cleaned (the id is kept as it is: it is passed
    /// back to get_resource).
    pub fn from_hit(hit: &SearchHit, ranked: bool) -> Self {
        HitLine {
            id: hit.id.clone(),
            cluster: hit.cluster.clone(),
            kind: clean_value(&hit.kind),
            namespace: if hit.namespace == sync_model::CLUSTER_SCOPE {
                String::new()
            } else {
                clean_value(&hit.namespace)
            },
            name: clean_value(&hit.name),
            labels: key_labels(&hit.labels),
            health: hit
                .health
                .as_ref()
                .map(|h| clean(&h.to_string(), MAX_LINE_CHARS)),
            score: ranked.then(|| round(hit.score)),
            owns: Vec::new(),
            why: None,
        }
    }

    /// The line of one `ask` answer: the hit, the objects folded into it, why it answers.
    pub fn from_ask_hit(hit: &sync_model::search::AskHit) -> Self {
        HitLine {
            owns: hit.owns.iter().map(|o| clean(o, MAX_LINE_CHARS)).collect(),
            why: Some(clean(&hit.why_line(), MAX_LINE_CHARS)),
            ..HitLine::from_hit(&hit.hit, true)
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
            (
                clean(k, MAX_LABEL_CHARS),
                clean(&labels[k], MAX_LABEL_CHARS),
            )
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct GroupCountLine {
    pub key: String,
    pub count: usize,
}

impl From<GroupCount> for GroupCountLine {
    fn from(g: GroupCount) -> Self {
        GroupCountLine {
            key: clean_value(&g.key),
            count: g.count,
        }
    }
}

/// One cluster's answers on the page and in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterLine {
    pub cluster: String,
    /// Its answers on this page.
    pub shown: usize,
    /// Its answers in all, counted in the index (more than shown: ask again with this
    /// cluster, or page on); absent where a ranking by meaning has no end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<usize>,
}

impl ClusterLine {
    /// The lines of `clusters`, with `shown` counted on the answer as the tool cut it.
    pub fn of(clusters: &[ClusterCount], shown: impl Fn(&str) -> usize) -> Vec<ClusterLine> {
        clusters
            .iter()
            .map(|c| ClusterLine {
                shown: shown(&c.cluster),
                cluster: c.cluster.clone(),
                total: c.total,
            })
            .collect()
    }
}

/// A score to three decimals (as f64, so JSON shows `0.466`, not `0.4659999907016754`).
pub fn round(score: f32) -> f64 {
    (f64::from(score) * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
