//! Folding answers into their owners: a workload's ReplicaSets and Pods carry its labels
//! and images and answer whatever it answers; the workload lists them instead.

use std::collections::HashMap;

use super::Answer;
use crate::document::{CLUSTER_KEY, OWNER_KIND_KEY, OWNER_NAME_KEY};
use crate::search::{meta_str, stored_health};

/// Folds each answer into its controlling owner when the owner answers too (following the
/// chain: a Pod into its ReplicaSet's Deployment), keeping the order of the rest: a
/// workload's ReplicaSets and Pods carry its labels and images and answer whatever it
/// answers, and would otherwise fill the answers with copies of one workload. An owner
/// lists what it took in, each with its health when it has one.
pub(super) fn fold_owned(answers: Vec<Answer>) -> Vec<Answer> {
    type Key = (String, String, String, String);
    let key_of = |m: &crate::store::Metadata, kind: &str, name: &str| -> Key {
        (
            meta_str(m, CLUSTER_KEY),
            meta_str(m, "namespace"),
            meta_str(m, kind),
            meta_str(m, name),
        )
    };
    let index: HashMap<Key, usize> = answers
        .iter()
        .enumerate()
        .map(|(i, a)| (key_of(&a.ranked.hit.metadata, "kind", "name"), i))
        .collect();
    let owner_of = |i: usize| -> Option<usize> {
        let m = &answers[i].ranked.hit.metadata;
        if meta_str(m, OWNER_KIND_KEY).is_empty() {
            return None;
        }
        index
            .get(&key_of(m, OWNER_KIND_KEY, OWNER_NAME_KEY))
            .copied()
            .filter(|&o| o != i)
    };
    // The answer each one folds into: the last owner up its chain that also answers.
    let roots: Vec<usize> = (0..answers.len())
        .map(|i| {
            let mut at = i;
            for _ in 0..8 {
                match owner_of(at) {
                    Some(o) => at = o,
                    None => break,
                }
            }
            at
        })
        .collect();
    let mut folded: HashMap<usize, Vec<String>> = HashMap::new();
    for (i, &root) in roots.iter().enumerate() {
        if root != i {
            folded
                .entry(root)
                .or_default()
                .push(describe(&answers[i].ranked.hit.metadata));
        }
    }
    answers
        .into_iter()
        .enumerate()
        .filter(|(i, _)| roots[*i] == *i)
        .map(|(i, mut a)| {
            a.owns = folded.remove(&i).unwrap_or_default();
            a
        })
        .collect()
}

/// `Pod db-0`, with ` [Failed: CrashLoopBackOff: container db]` when it has a health.
fn describe(m: &crate::store::Metadata) -> String {
    let name = format!("{} {}", meta_str(m, "kind"), meta_str(m, "name"));
    match stored_health(m) {
        Some(h) => format!("{name} [{h}]"),
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{HEALTH_KEY, HEALTH_REASON_KEY};
    use crate::search::Ranked;
    use crate::store::{Hit, Metadata};

    fn answer(cluster: &str, kind: &str, name: &str, owner: Option<(&str, &str)>) -> Answer {
        let mut m = Metadata::new();
        let mut put = |k: &str, v: &str| {
            m.insert(k.to_string(), crate::store::MetaValue::Str(v.to_string()));
        };
        put(CLUSTER_KEY, cluster);
        put("namespace", "shop");
        put("kind", kind);
        put("name", name);
        if let Some((k, n)) = owner {
            put(OWNER_KIND_KEY, k);
            put(OWNER_NAME_KEY, n);
        }
        if kind == "Pod" {
            put(HEALTH_KEY, "Failed");
            put(HEALTH_REASON_KEY, "CrashLoopBackOff: container web");
        }
        Answer {
            ranked: Ranked {
                hit: Hit {
                    id: format!("{cluster}:{kind}/{name}"),
                    document: String::new(),
                    metadata: m,
                    distance: 0.5,
                },
                sim: Some(0.5),
                matched: vec![],
                score: 0.5,
            },
            capability: None,
            owns: vec![],
        }
    }

    #[test]
    fn owned_answers_fold_into_their_owner_up_the_chain_within_one_cluster() {
        let answers = vec![
            answer(
                "a",
                "Pod",
                "web-7d9f-x2x4q",
                Some(("ReplicaSet", "web-7d9f")),
            ),
            answer("a", "Deployment", "web", None),
            answer("a", "ReplicaSet", "web-7d9f", Some(("Deployment", "web"))),
            answer("a", "Pod", "db-0", Some(("StatefulSet", "db"))),
            answer(
                "b",
                "Pod",
                "web-7d9f-k8s9z",
                Some(("ReplicaSet", "web-7d9f")),
            ),
        ];
        let folded = fold_owned(answers);
        let left: Vec<(String, Vec<String>)> = folded
            .iter()
            .map(|a| (meta_str(&a.ranked.hit.metadata, "name"), a.owns.clone()))
            .collect();
        assert_eq!(
            left,
            [
                (
                    "web".to_string(),
                    vec![
                        "Pod web-7d9f-x2x4q [Failed: CrashLoopBackOff: container web]".to_string(),
                        "ReplicaSet web-7d9f".to_string()
                    ]
                ),
                // Its owner does not answer: it stays an answer of its own.
                ("db-0".to_string(), vec![]),
                // Another cluster's ReplicaSet of the same name is not its owner.
                ("web-7d9f-k8s9z".to_string(), vec![]),
            ]
        );
    }
}
