//! Answer lines several tools share, kept compact: one small object per hit, no stored
//! documents, scores to three decimals.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;
use sync_model::search::{ClusterCount, GroupCount, SearchHit};

/// Labels shown per hit at most.
const MAX_LABELS: usize = 4;
const MAX_LABEL_CHARS: usize = 64;

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
