//! `ask`: the objects that answer a question, from two sources ranked by one score.
//! Directly: the hybrid search of the instances (their own text, exact names, namespaces and
//! label values). Through the bridge: the types whose capability document matches the
//! question, then their instances, which earn their type's similarity even when their own
//! text says nothing of what they are (a CRD's instances). An object keeps the better of its
//! two scores; the answers are grouped by type only for display. Types that match but have
//! no instance go to a separate `available` list and never displace a running answer.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use super::{
    boost_for, build_filter, checked_limit, exact_matches, meta_str, stored_health, to_search_hit,
    AskAnswer, AskHit, QueryTerms, Ranked, SearchError, SearchMode, Searcher, TypeMatch, Why,
    CANDIDATE_FACTOR, MIN_CANDIDATES,
};
use crate::document::{CLUSTER_KEY, HEALTH_KEY, OWNER_KIND_KEY, OWNER_NAME_KEY};
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

/// An answer scores at least this share of the best answer's score: what the question is
/// about, not everything near it ("what databases are running?" is not answered by a
/// Certificate of the database's namespace). A health answer scores at least this share of
/// the best answer of any health: "are any databases unhealthy?" is not answered by a
/// failing Job that has nothing to do with databases. (Half costs nothing on the relevance
/// sets; 0.6 loses expected answers: docs/search.md.)
const ANSWER_FLOOR: f32 = 0.5;

/// The ranked answers of one pass, before the cut to the limit.
struct Ranking {
    answers: Vec<Answer>,
    /// The bridged types' capability documents, by (kind, group).
    capabilities: HashMap<(String, String), Hit>,
    available: Vec<TypeMatch>,
}

/// What the answer to a question is made of, once ranked.
struct Finish<'a> {
    question: &'a str,
    words: &'a [String],
    limit: usize,
    ranking: Ranking,
    healths: Vec<sync_model::HealthStatus>,
    none_with_health: bool,
}

/// One answer being ranked: the candidate, and the type that bridged it, if any.
struct Answer {
    ranked: Ranked,
    capability: Option<String>,
    /// The answers it controls, folded into it (see [`fold_owned`]).
    owns: Vec<String>,
}

impl Searcher {
    /// The running objects that answer `question`, at most `limit` and none under
    /// [`ANSWER_FLOOR`] of the best one's score, best first and grouped by type; and the
    /// matching types that have nothing running.
    pub async fn ask(
        &self,
        question: &str,
        limit: Option<usize>,
    ) -> Result<AskAnswer, SearchError> {
        self.ask_in(question, limit, None, None).await
    }

    /// [`Searcher::ask`] among the objects of one cluster (all clusters when `None`) and of
    /// one health (`Failed`: "which databases are failing?"; `unhealthy`: Failed or
    /// InProgress). Without a health, a question
    /// that asks about health ("are any databases unhealthy?", "what is failing?") is
    /// answered by its `Failed` and `InProgress` objects. Health answers must answer the
    /// question about as well as its best answer of any health (at least
    /// [`ANSWER_FLOOR`] of that score), so that a failing Job does not answer a
    /// question about databases; when the question named something and none of its answers
    /// has the asked health, the answers of any health come back with
    /// `none_with_health` set. With a health, types are never listed as available: a type
    /// whose objects are all healthy does not have "nothing running".
    pub async fn ask_in(
        &self,
        question: &str,
        limit: Option<usize>,
        cluster: Option<&str>,
        health: Option<sync_model::HealthFilter>,
    ) -> Result<AskAnswer, SearchError> {
        use sync_model::HealthStatus;
        let limit = checked_limit(limit)?;
        self.check_cluster(cluster).await?;
        let in_cluster = build_filter(&sync_model::search::SearchRequest {
            cluster: cluster.map(str::to_string),
            ..Default::default()
        })?;
        if question.trim().is_empty() {
            return Err(SearchError::BadRequest("question must not be empty".into()));
        }
        let terms = QueryTerms::parse(question);
        let healths = match health {
            Some(h) => h.statuses().to_vec(),
            None if terms.asks_health => vec![HealthStatus::Failed, HealthStatus::InProgress],
            None => vec![],
        };
        let vector = self.embed_query(question).await?;
        let answer = |ranking, healths, none_with_health| Finish {
            question,
            words: &terms.words,
            limit,
            ranking,
            healths,
            none_with_health,
        };
        if healths.is_empty() {
            let mut ranking = self
                .rank_answers(&vector, &terms, limit, in_cluster.as_ref(), true)
                .await?;
            let best = ranking.answers.first().map_or(0.0, |a| a.ranked.score);
            ranking
                .answers
                .retain(|a| a.ranked.score >= ANSWER_FLOOR * best);
            return self.finish(answer(ranking, healths, false)).await;
        }

        let of_health = Filter::In(
            HEALTH_KEY.into(),
            healths.iter().map(|h| h.as_str().to_string()).collect(),
        );
        let in_scope = match in_cluster.clone() {
            Some(c) => Filter::And(vec![c, of_health]),
            None => of_health,
        };
        let of_that_health = self.rank_answers(&vector, &terms, limit, Some(&in_scope), false);
        if !terms.names_something {
            // "Is anything failing?": every object of that health answers.
            let ranking = of_that_health.await?;
            return self.finish(answer(ranking, healths, false)).await;
        }
        // Both rankings at once: the one of any health sets the floor.
        let (mut ranking, mut any_health) = tokio::try_join!(
            of_that_health,
            self.rank_answers(&vector, &terms, limit, in_cluster.as_ref(), false)
        )?;
        let best = any_health.answers.first().map_or(0.0, |a| a.ranked.score);
        let floor = ANSWER_FLOOR * best;
        ranking.answers.retain(|a| a.ranked.score >= floor);
        if ranking.answers.is_empty() && health.is_none() {
            // The same floor: the objects the question is about, not everything near them.
            any_health.answers.retain(|a| a.ranked.score >= floor);
            return self.finish(answer(any_health, healths, true)).await;
        }
        self.finish(answer(ranking, healths, false)).await
    }

    /// The best `limit` answers of a ranking, grouped by type.
    async fn finish(&self, f: Finish<'_>) -> Result<AskAnswer, SearchError> {
        let Ranking {
            answers,
            capabilities,
            available,
        } = f.ranking;
        let mut answers = fold_owned(answers);
        answers.truncate(f.limit);
        let types = self.group_by_type(answers, f.words, &capabilities).await?;
        Ok(AskAnswer {
            question: f.question.to_string(),
            types,
            available,
            health: f.healths,
            none_with_health: f.none_with_health,
        })
    }

    /// The answers to a question among the objects `scope` admits, best first (not yet cut
    /// to `limit`), the types that bridged them and, when `list_available`, the matching
    /// types with nothing running.
    async fn rank_answers(
        &self,
        vector: &[f32],
        terms: &QueryTerms,
        limit: usize,
        in_scope: Option<&Filter>,
        list_available: bool,
    ) -> Result<Ranking, SearchError> {
        let mut answers = self.direct_answers(vector, terms, limit, in_scope).await?;

        // The bridge: the matching types' instances, all read in one pass over the store.
        let types = self.matching_types(vector).await?;
        let mut by_type = self
            .instances_of_types(vector, &types, limit, in_scope)
            .await?;
        let mut capabilities: HashMap<(String, String), Hit> = HashMap::new();
        let mut available = Vec::new();
        for (t, type_sim) in types {
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

    /// The instances that answer by their own text: the hybrid search's candidates, scored
    /// by similarity and exact matches, by id.
    async fn direct_answers(
        &self,
        vector: &[f32],
        terms: &QueryTerms,
        limit: usize,
        in_scope: Option<&Filter>,
    ) -> Result<HashMap<String, Answer>, SearchError> {
        let candidates = CANDIDATE_FACTOR.saturating_mul(limit).max(MIN_CANDIDATES);
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

    /// The instances of the matching `types` nearest to the question, at most `limit` of
    /// each, by (kind, apiGroup): one query over the store.
    async fn instances_of_types(
        &self,
        vector: &[f32],
        types: &[(Hit, f32)],
        limit: usize,
        in_scope: Option<&Filter>,
    ) -> Result<HashMap<(String, String), Vec<Hit>>, SearchError> {
        let mut by_type: HashMap<(String, String), Vec<Hit>> = HashMap::new();
        if types.is_empty() {
            return Ok(by_type);
        }
        let kinds: Vec<String> = types
            .iter()
            .map(|(t, _)| meta_str(&t.metadata, "kind"))
            .collect();
        let n = limit.saturating_mul(types.len()).saturating_mul(4);
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
    async fn matching_types(&self, vector: &[f32]) -> Result<Vec<(Hit, f32)>, SearchError> {
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

    /// The answers (best first) grouped by type, the type of the best answer first. A type
    /// that the bridge matched carries its capability document as the reason.
    async fn group_by_type(
        &self,
        answers: Vec<Answer>,
        terms: &[String],
        bridged: &HashMap<(String, String), Hit>,
    ) -> Result<Vec<TypeMatch>, SearchError> {
        let ids = self.type_ids(&answers).await?;
        let mut groups: Vec<TypeMatch> = Vec::new();
        for a in answers {
            let kind = meta_str(&a.ranked.hit.metadata, "kind");
            let group = meta_str(&a.ranked.hit.metadata, "apiGroup");
            let why = Why {
                words: words_in(&a.ranked.hit, terms),
                capability: a.capability,
                similarity: a.ranked.sim.unwrap_or(0.0),
            };
            let hit = AskHit {
                hit: to_search_hit(a.ranked.hit, a.ranked.score, a.ranked.matched),
                why,
                owns: a.owns,
            };
            match groups
                .iter_mut()
                .find(|g| g.kind == kind && g.group == group)
            {
                Some(g) => g.instances.push(hit),
                None => {
                    let key = (kind.clone(), group.clone());
                    groups.push(TypeMatch {
                        id: ids
                            .get(&key)
                            .cloned()
                            .unwrap_or_else(|| format!("{kind}.{group}")),
                        reason: bridged
                            .get(&key)
                            .map(|t| t.document.clone())
                            .unwrap_or_default(),
                        score: hit.hit.score,
                        kind,
                        group,
                        instances: vec![hit],
                    });
                }
            }
        }
        Ok(groups)
    }

    /// `plural.group` of each answer's type, from the capabilities collection (one read).
    async fn type_ids(
        &self,
        answers: &[Answer],
    ) -> Result<HashMap<(String, String), String>, SearchError> {
        let kinds: Vec<String> = answers
            .iter()
            .map(|a| meta_str(&a.ranked.hit.metadata, "kind"))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if kinds.is_empty() {
            return Ok(HashMap::new());
        }
        let records = self
            .store
            .get(
                &self.capabilities_collection,
                Some(&Filter::In("kind".into(), kinds)),
                1_000,
            )
            .await?;
        Ok(records
            .into_iter()
            .map(|r| {
                let key = (
                    meta_str(&r.metadata, "kind"),
                    meta_str(&r.metadata, "group"),
                );
                (key, r.id)
            })
            .collect())
    }
}

/// Folds each answer into its controlling owner when the owner answers too (following the
/// chain: a Pod into its ReplicaSet's Deployment), keeping the order of the rest: a
/// workload's ReplicaSets and Pods carry its labels and images and answer whatever it
/// answers, and would otherwise fill the answers with copies of one workload. An owner
/// lists what it took in, each with its health when it has one.
fn fold_owned(answers: Vec<Answer>) -> Vec<Answer> {
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

/// The exact-match boost of a direct answer: names, namespaces and label values, not kinds.
fn direct_boost(m: &crate::store::Metadata, matched: &[String]) -> f32 {
    let not_kinds: Vec<String> = matched
        .iter()
        .filter(|m| !m.starts_with("kind:"))
        .cloned()
        .collect();
    boost_for(m, &not_kinds)
}

/// The bridge for one custom type that matches the question (similarity `type_sim`):
/// each of its `instances` scores at least its bridged score (mostly the type's
/// similarity), naming the type `type_id` as the answer's capability when that is better
/// than its direct score; an instance not yet an answer becomes one.
fn bridge(
    answers: &mut HashMap<String, Answer>,
    instances: Vec<Hit>,
    type_id: &str,
    type_sim: f32,
    terms: &QueryTerms,
) {
    for hit in instances {
        let sim = 1.0 - hit.distance;
        let bridged = BRIDGE_TYPE_WEIGHT * type_sim + (1.0 - BRIDGE_TYPE_WEIGHT) * sim;
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
fn is_built_in_group(group: &str) -> bool {
    !group.contains('.') || group.ends_with(".k8s.io")
}

/// The question's terms found as words of the object's text (name, namespace, labels and
/// description all appear in it).
fn words_in(hit: &Hit, terms: &[String]) -> Vec<String> {
    let text = hit.document.to_lowercase();
    let words: HashSet<&str> = text
        .split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '.' || c == '_'))
        .flat_map(|w| {
            let w = w.trim_matches(|c: char| c == '.' || c == '-');
            std::iter::once(w).chain(w.split(|c: char| !c.is_alphanumeric()))
        })
        .filter(|w| !w.is_empty())
        .collect();
    terms
        .iter()
        .filter(|t| words.contains(t.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::HEALTH_REASON_KEY;
    use crate::store::Metadata;

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

    #[test]
    fn words_are_whole_words_of_the_text_or_of_its_hyphenated_names() {
        let hit = Hit {
            id: "x".into(),
            document: "Deployment payments-api | namespace: finance | Charges credit cards.".into(),
            metadata: Metadata::new(),
            distance: 0.5,
        };
        let terms = QueryTerms::parse("who handles payments? credit finance card");
        assert_eq!(
            words_in(&hit, &terms.words),
            ["payments", "credit", "finance"]
        );
    }
}
