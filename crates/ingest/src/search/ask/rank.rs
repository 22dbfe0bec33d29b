//! Ranking one question's answers in one scope: directly (the hybrid search of the
//! instances' own text, exact names, namespaces, labels and software) and through the bridge
//! (the custom types whose description matches the question lend their similarity to
//! their instances), each object keeping the better of its scores.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use super::{Answer, Asked};
use crate::search::{
    boost_for, exact_matches, meta_str, QueryTerms, Ranked, SearchError, SearchMode, Searcher,
    TypeMatch,
};
use crate::store::{Filter, Hit};

/// Types whose description is within this much of the best type's similarity are bridged.
const TYPE_SCORE_WINDOW: f32 = 0.12;
/// Types considered (nearest capability documents) before the window is applied.
const TYPE_CANDIDATES: usize = 8;
/// At most this many types are bridged.
const MAX_TYPES: usize = 6;
/// A bridged answer's score: mostly its type's similarity, a little its own (which orders
/// the instances of one type).
const BRIDGE_TYPE_WEIGHT: f32 = 0.8;
/// Types listed as available (matching, nothing running).
const MAX_AVAILABLE: usize = 3;

/// The ranked answers of one pass, before the cut to the limit.
pub(super) struct Ranking {
    pub answers: Vec<Answer>,
    /// The bridged types' capability documents, by (kind, group).
    pub capabilities: HashMap<(String, String), Hit>,
    pub available: Vec<TypeMatch>,
}

impl Searcher {
    /// The answers to `asked` among the objects `in_scope` admits, best first (not yet cut
    /// to its limit), the types that bridged them and, when `list_available`, the matching
    /// types with nothing running.
    pub(super) async fn rank_answers(
        &self,
        asked: &Asked<'_>,
        in_scope: Option<&Filter>,
        list_available: bool,
    ) -> Result<Ranking, SearchError> {
        let (vector, terms) = (asked.vector, asked.terms);
        let mut answers = self
            .direct_answers(vector, terms, asked.candidates(), in_scope)
            .await?;

        // The bridge: the matching types' instances, all read in one pass over the store.
        let types = asked.types;
        let mut by_type = self
            .instances_of_types(vector, types, asked, in_scope)
            .await?;
        let mut capabilities: HashMap<(String, String), Hit> = HashMap::new();
        let mut available = Vec::new();
        for (t, type_sim) in types {
            let (t, type_sim) = (t.clone(), *type_sim);
            let key = (
                meta_str(&t.metadata, "kind"),
                meta_str(&t.metadata, "group"),
            );
            let Some(instances) = by_type.remove(&key) else {
                if list_available {
                    available.push(TypeMatch {
                        id: t.id.clone(),
                        kind: key.0,
                        group: key.1,
                        score: type_sim,
                        reason: t.document.clone(),
                        instances: vec![],
                    });
                }
                continue;
            };
            // A built-in type's description says how its objects run, not what they are (a
            // Deployment may be a web shop or a database): its objects answer by their own
            // text, directly (and it is not listed as available: it has them). A custom
            // type's description says what every instance is.
            if !is_built_in_group(&key.1) {
                bridge(&mut answers, instances, &t.id, type_sim, terms);
                capabilities.insert(key, t);
            }
        }
        available.truncate(MAX_AVAILABLE);

        let mut answers: Vec<Answer> = answers.into_values().collect();
        answers.sort_by(|a, b| {
            b.ranked
                .score
                .total_cmp(&a.ranked.score)
                .then_with(|| a.ranked.hit.id.cmp(&b.ranked.hit.id))
        });
        Ok(Ranking {
            answers,
            capabilities,
            available,
        })
    }

    /// The instances that answer by their own text: the hybrid search's `candidates`,
    /// scored by similarity and exact matches, by id.
    async fn direct_answers(
        &self,
        vector: &[f32],
        terms: &QueryTerms,
        candidates: usize,
        in_scope: Option<&Filter>,
    ) -> Result<HashMap<String, Answer>, SearchError> {
        let mut answers: HashMap<String, Answer> = HashMap::new();
        for ranked in self
            .ranked(
                &self.instances_collection,
                Some(vector),
                terms,
                in_scope,
                candidates,
                SearchMode::Hybrid,
            )
            .await?
        {
            // Which types answer is the bridge's question: a word that names a kind ("service
            // mesh") does not lift every object of that kind here.
            let sim = ranked.sim.unwrap_or(0.0);
            let score = sim + direct_boost(&ranked.hit.metadata, &ranked.matched);
            answers.insert(
                ranked.hit.id.clone(),
                Answer {
                    ranked: Ranked { score, ..ranked },
                    capability: None,
                    owns: Vec::new(),
                },
            );
        }
        Ok(answers)
    }

    /// The instances of the matching `types` nearest to the question, at most the asked
    /// pool of each, by (kind, apiGroup): one query over the store.
    async fn instances_of_types(
        &self,
        vector: &[f32],
        types: &[(Hit, f32)],
        asked: &Asked<'_>,
        in_scope: Option<&Filter>,
    ) -> Result<HashMap<(String, String), Vec<Hit>>, SearchError> {
        let limit = asked.pool;
        let mut by_type: HashMap<(String, String), Vec<Hit>> = HashMap::new();
        if types.is_empty() {
            return Ok(by_type);
        }
        let kinds: Vec<String> = types
            .iter()
            .map(|(t, _)| meta_str(&t.metadata, "kind"))
            .collect();
        // Four per answer and type in one cluster; across a fleet, the pool (the same
        // objects of many clusters are as near as each other) without multiplying it again.
        let n = asked
            .limit
            .saturating_mul(types.len())
            .saturating_mul(4)
            .max(asked.pool.saturating_mul(2));
        let of_kinds = Filter::In("kind".into(), kinds);
        let filter = match in_scope.cloned() {
            Some(c) => Filter::And(vec![c, of_kinds]),
            None => of_kinds,
        };
        for hit in self
            .store
            .query(&self.instances_collection, vector, Some(&filter), n)
            .await?
        {
            let key = (
                meta_str(&hit.metadata, "kind"),
                meta_str(&hit.metadata, "apiGroup"),
            );
            let of_type = by_type.entry(key).or_default();
            if of_type.len() < limit {
                of_type.push(hit);
            }
        }
        Ok(by_type)
    }

    /// The capability documents nearest to the question, kept while within
    /// [`TYPE_SCORE_WINDOW`] of the best, with their similarity.
    pub(super) async fn matching_types(
        &self,
        vector: &[f32],
    ) -> Result<Vec<(Hit, f32)>, SearchError> {
        let types = self
            .store
            .query(&self.capabilities_collection, vector, None, TYPE_CANDIDATES)
            .await?;
        let Some(best) = types.iter().map(|t| 1.0 - t.distance).reduce(f32::max) else {
            return Ok(vec![]);
        };
        Ok(types
            .into_iter()
            .map(|t| {
                let sim = 1.0 - t.distance;
                (t, sim)
            })
            .filter(|(_, sim)| *sim >= best - TYPE_SCORE_WINDOW)
            .take(MAX_TYPES)
            .collect())
    }
}

/// The exact-match boost of a direct answer: names, namespaces and label values, not kinds.
pub(super) fn direct_boost(m: &crate::store::Metadata, matched: &[String]) -> f32 {
    let not_kinds: Vec<String> = matched
        .iter()
        .filter(|m| !m.starts_with("kind:"))
        .cloned()
        .collect();
    boost_for(m, &not_kinds)
}

/// The score an instance earns through its type: mostly the type's similarity `type_sim`,
/// a little its own `sim`.
pub(super) fn bridge_score(type_sim: f32, sim: f32) -> f32 {
    BRIDGE_TYPE_WEIGHT * type_sim + (1.0 - BRIDGE_TYPE_WEIGHT) * sim
}

/// The bridge for one custom type that matches the question (similarity `type_sim`):
/// each of its `instances` scores at least its bridged score (mostly the type's
/// similarity), naming the type `type_id` as the answer's capability when that is better
/// than its direct score; an instance not yet an answer becomes one.
pub(super) fn bridge(
    answers: &mut HashMap<String, Answer>,
    instances: Vec<Hit>,
    type_id: &str,
    type_sim: f32,
    terms: &QueryTerms,
) {
    for hit in instances {
        let sim = 1.0 - hit.distance;
        let bridged = bridge_score(type_sim, sim);
        match answers.entry(hit.id.clone()) {
            Entry::Occupied(mut e) => {
                let a = e.get_mut();
                if bridged > a.ranked.score {
                    a.ranked.score = bridged;
                    a.capability = Some(type_id.to_string());
                }
            }
            Entry::Vacant(e) => {
                let matched = exact_matches(&hit.metadata, terms);
                let direct = sim + direct_boost(&hit.metadata, &matched);
                e.insert(Answer {
                    ranked: Ranked {
                        hit,
                        sim: Some(sim),
                        matched,
                        score: direct.max(bridged),
                    },
                    capability: Some(type_id.to_string()),
                    owns: Vec::new(),
                });
            }
        }
    }
}

/// Kubernetes' own API groups: the core group, the unqualified ones (`apps`, `batch`,
/// `autoscaling`, `policy`) and `*.k8s.io`.
pub(super) fn is_built_in_group(group: &str) -> bool {
    !group.contains('.') || group.ends_with(".k8s.io")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_groups_are_kubernetes_own() {
        for g in [
            "",
            "apps",
            "batch",
            "networking.k8s.io",
            "rbac.authorization.k8s.io",
        ] {
            assert!(is_built_in_group(g), "{g}");
        }
        for g in ["postgresql.cnpg.io", "cert-manager.io", "kafka.strimzi.io"] {
            assert!(!is_built_in_group(g), "{g}");
        }
    }
}
