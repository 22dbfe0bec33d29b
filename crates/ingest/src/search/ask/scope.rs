//! One question answered in one scope (a cluster, or the whole index): its ranked answers
//! cut to the pool the page is shared from, how many objects answer in each cluster in all
//! (counted in the store, not read from the page), and for a question about health whether the store holds any answer of
//! that health at all, so that "none" is said only when it holds none.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::fold::fold_owned;
use super::rank::{bridge_score, direct_boost, is_built_in_group, Ranking};
use super::{Answer, Asked, ANSWER_FLOOR};
use crate::document::{HEALTH_KEY, SOFTWARE_KEY};
use crate::search::fleet::{both, Scope};
use crate::search::{
    cluster_of, exact_matches, meta_str, Ranked, SearchError, Searcher, TypeMatch,
};
use crate::store::keys::{API_GROUP_KEY, KIND_KEY};
use crate::store::{Filter, Hit};

/// A type by (kind, API group).
type TypeKey = (String, String);

/// One scope's answers.
pub(super) struct ScopeAnswers {
    /// Best first, owned answers folded into their owners, at most the pool.
    pub answers: Vec<Answer>,
    /// Objects that answer (of the asked health) by cluster, each at least its answers.
    pub totals: BTreeMap<String, usize>,
    pub capabilities: HashMap<TypeKey, Hit>,
    pub available: Vec<TypeMatch>,
    /// A question about health that names something, where the store holds no object of
    /// that health that answers it: its answers of any health.
    pub any_health: Option<Vec<Answer>>,
}

impl Searcher {
    /// `asked` in `scope`. A question about health is asked of the objects of that health
    /// (the filter is part of the store's queries, so that every one of them can answer, not
    /// only those among the nearest of any health), and besides the ranking, every object
    /// of that health whose software or custom type is what the question names answers
    /// ([`Searcher::add_exact_answers`]) whatever its score.
    pub(super) async fn answer_scope(
        &self,
        asked: &Asked<'_>,
        scope: &Scope,
    ) -> Result<ScopeAnswers, SearchError> {
        let in_scope = scope.filter.as_ref();
        if asked.healths.is_empty() {
            let mut ranking = self.rank_answers(asked, in_scope, true).await?;
            let floor = ANSWER_FLOOR * best(&ranking.answers);
            ranking.answers.retain(|a| a.ranked.score >= floor);
            let answering = answering_types(asked, &ranking.answers);
            let counted = self.count_answering(asked, &answering, in_scope).await?;
            return Ok(cut(ranking, counted, asked.pool));
        }
        let of_health = both(in_scope, health_filter(asked));
        if !asked.terms.names_something {
            // "Is anything failing?": every object of that health answers.
            let ranking = self.rank_answers(asked, Some(&of_health), false).await?;
            let counted = self.count_uncontrolled(Some(&of_health), &[]).await?;
            return Ok(cut(ranking, counted, asked.pool));
        }
        // Both rankings at once: the one of any health says what answers the question.
        let (mut ranking, mut any_health) = tokio::try_join!(
            self.rank_answers(asked, Some(&of_health), false),
            self.rank_answers(asked, in_scope, false)
        )?;
        let floor = ANSWER_FLOOR * best(&any_health.answers);
        any_health.answers.retain(|a| a.ranked.score >= floor);
        let answering = answering_types(asked, &any_health.answers);
        self.add_exact_answers(asked, &answering, &of_health, &mut ranking)
            .await?;
        ranking
            .answers
            .retain(|a| a.ranked.score >= floor || answers_exactly(a, &answering));
        let counted = self
            .count_answering(asked, &answering, Some(&of_health))
            .await?;
        let none = counted.values().all(|&n| n == 0);
        if ranking.answers.is_empty() && none && !asked.health_asked_by_filter {
            let mut answers = fold_owned(any_health.answers);
            answers.truncate(asked.pool);
            return Ok(ScopeAnswers {
                answers: vec![],
                totals: BTreeMap::new(),
                capabilities: any_health.capabilities,
                available: vec![],
                any_health: Some(answers),
            });
        }
        Ok(cut(ranking, counted, asked.pool))
    }

    /// Adds to `ranking` the objects `of_health` admits that are of the software, the
    /// category or the kind of store the question names, or instances of the `answering`
    /// custom types: the nearest of each (as many as a page can hold), scored as the ranking
    /// scores them, so that none is left out because others of any health were nearer.
    async fn add_exact_answers(
        &self,
        asked: &Asked<'_>,
        answering: &HashSet<TypeKey>,
        of_health: &Filter,
        ranking: &mut Ranking,
    ) -> Result<(), SearchError> {
        let n = asked.candidates();
        let software = asked.terms.software_candidates();
        let mut found: Vec<Hit> = Vec::new();
        if !software.is_empty() {
            let f = both(Some(of_health), Filter::In(SOFTWARE_KEY.into(), software));
            found.extend(
                self.store
                    .query(&self.instances_collection, asked.vector, Some(&f), n)
                    .await?,
            );
        }
        if !answering.is_empty() {
            let kinds: Vec<String> = answering.iter().map(|(k, _)| k.clone()).collect();
            let f = both(Some(of_health), Filter::In(KIND_KEY.into(), kinds));
            found.extend(
                self.store
                    .query(&self.instances_collection, asked.vector, Some(&f), n)
                    .await?
                    .into_iter()
                    .filter(|h| answering.contains(&type_key(h))),
            );
        }
        merge_exact(asked, answering, found, ranking);
        Ok(())
    }

    /// How many objects `filter` admits (not counting those another object controls) of
    /// the software, category or kind of store the question names, or of the `answering`
    /// custom types, by cluster.
    async fn count_answering(
        &self,
        asked: &Asked<'_>,
        answering: &HashSet<TypeKey>,
        filter: Option<&Filter>,
    ) -> Result<BTreeMap<String, usize>, SearchError> {
        let mut ways = Vec::new();
        let software = asked.terms.software_candidates();
        if !software.is_empty() {
            ways.push(Filter::In(SOFTWARE_KEY.into(), software));
        }
        for (kind, group) in answering {
            ways.push(Filter::And(vec![
                Filter::Eq(KIND_KEY.into(), kind.clone()),
                Filter::Eq(API_GROUP_KEY.into(), group.clone()),
            ]));
        }
        if ways.is_empty() {
            return Ok(BTreeMap::new());
        }
        self.count_uncontrolled(filter, &ways).await
    }
}

/// Merges the exact answers `found` into `ranking` (scored as the ranking scores them: by
/// their own text, or through their answering type when that is better), best first again.
fn merge_exact(
    asked: &Asked<'_>,
    answering: &HashSet<TypeKey>,
    found: Vec<Hit>,
    ranking: &mut Ranking,
) {
    let mut at: HashMap<String, usize> = ranking
        .answers
        .iter()
        .enumerate()
        .map(|(i, a)| (a.ranked.hit.id.clone(), i))
        .collect();
    for hit in found {
        let sim = 1.0 - hit.distance;
        let matched = exact_matches(&hit.metadata, asked.terms);
        let direct = sim + direct_boost(&hit.metadata, &matched);
        let bridged = asked
            .types
            .iter()
            .find(|(t, _)| type_of_capability(t) == type_key(&hit))
            .filter(|_| answering.contains(&type_key(&hit)))
            .map(|(t, type_sim)| (t.id.clone(), bridge_score(*type_sim, sim)));
        let score = bridged.as_ref().map_or(direct, |(_, b)| direct.max(*b));
        let capability = bridged.filter(|(_, b)| *b > direct).map(|(id, _)| id);
        match at.get(&hit.id) {
            Some(&i) => {
                // Found before only as an exact match, without its similarity.
                let a = &mut ranking.answers[i];
                if a.ranked.sim.is_none() || score > a.ranked.score {
                    a.ranked.sim = Some(sim);
                    a.ranked.score = a.ranked.score.max(score);
                    a.capability = a.capability.take().or(capability);
                }
            }
            None => {
                at.insert(hit.id.clone(), ranking.answers.len());
                ranking.answers.push(Answer {
                    ranked: Ranked {
                        hit,
                        sim: Some(sim),
                        matched,
                        score,
                    },
                    capability,
                    owns: Vec::new(),
                });
            }
        }
    }
    ranking.answers.sort_by(|a, b| {
        b.ranked
            .score
            .total_cmp(&a.ranked.score)
            .then_with(|| a.ranked.hit.id.cmp(&b.ranked.hit.id))
    });
}

/// The scope's answers of `ranking`, folded, cut to `pool`; by cluster, `counted` in the
/// store, or the answers before the cut when the ranking found more.
fn cut(ranking: Ranking, mut counted: BTreeMap<String, usize>, pool: usize) -> ScopeAnswers {
    let mut answers = fold_owned(ranking.answers);
    let mut found: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &answers {
        *found.entry(cluster_of(&a.ranked.hit.metadata)).or_default() += 1;
    }
    for (cluster, n) in found {
        let total = counted.entry(cluster.to_string()).or_default();
        *total = (*total).max(n);
    }
    answers.truncate(pool);
    ScopeAnswers {
        answers,
        totals: counted,
        capabilities: ranking.capabilities,
        available: ranking.available,
        any_health: None,
    }
}

fn best(answers: &[Answer]) -> f32 {
    answers.first().map_or(0.0, |a| a.ranked.score)
}

/// The asked healths as a store filter.
fn health_filter(asked: &Asked<'_>) -> Filter {
    Filter::In(
        HEALTH_KEY.into(),
        asked
            .healths
            .iter()
            .map(|h| h.as_str().to_string())
            .collect(),
    )
}

fn type_key(hit: &Hit) -> TypeKey {
    (
        meta_str(&hit.metadata, KIND_KEY),
        meta_str(&hit.metadata, API_GROUP_KEY),
    )
}

fn type_of_capability(t: &Hit) -> TypeKey {
    (
        meta_str(&t.metadata, "kind"),
        meta_str(&t.metadata, "group"),
    )
}

/// The custom types the question matches that have an answer among `answers`: each of
/// their objects answers the question, as a CloudNativePG `Cluster` answers "databases".
fn answering_types(asked: &Asked<'_>, answers: &[Answer]) -> HashSet<TypeKey> {
    let matching: HashSet<TypeKey> = asked
        .types
        .iter()
        .map(|(t, _)| type_of_capability(t))
        .filter(|(_, group)| !is_built_in_group(group))
        .collect();
    answers
        .iter()
        .map(|a| type_key(&a.ranked.hit))
        .filter(|k| matching.contains(k))
        .collect()
}

/// An answer by what it is, not only by how near its text is: its software is named or of
/// the asked category or kind of store, or its type is one of the `answering` types.
fn answers_exactly(a: &Answer, answering: &HashSet<TypeKey>) -> bool {
    a.ranked.matched.iter().any(|m| {
        m.starts_with("software:") || m.starts_with("category:") || m.starts_with("model:")
    }) || answering.contains(&type_key(&a.ranked.hit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MetaValue, Metadata};

    fn answer(kind: &str, group: &str, matched: &[&str], score: f32) -> Answer {
        let metadata: Metadata = [(KIND_KEY, kind), (API_GROUP_KEY, group)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), MetaValue::Str(v.to_string())))
            .collect();
        Answer {
            ranked: Ranked {
                hit: Hit {
                    id: format!("{kind}/{score}"),
                    document: String::new(),
                    metadata,
                    distance: 0.5,
                },
                sim: Some(score),
                matched: matched.iter().map(|m| m.to_string()).collect(),
                score,
            },
            capability: None,
            owns: vec![],
        }
    }

    #[test]
    fn an_answer_by_its_software_or_an_answering_type_answers_exactly() {
        let answering: HashSet<TypeKey> = [(
            "PostgresCluster".to_string(),
            "databases.acme.io".to_string(),
        )]
        .into();
        assert!(answers_exactly(
            &answer("StatefulSet", "apps", &["category:database"], 0.1),
            &answering
        ));
        assert!(answers_exactly(
            &answer("Deployment", "apps", &["model:key-value"], 0.1),
            &answering
        ));
        assert!(answers_exactly(
            &answer("PostgresCluster", "databases.acme.io", &[], 0.1),
            &answering
        ));
        // A label or a name is a word of the question, not what the object is.
        assert!(!answers_exactly(
            &answer("Job", "batch", &["label:app=db", "name:db"], 0.9),
            &answering
        ));
        assert!(!answers_exactly(
            &answer("PostgresCluster", "other.io", &[], 0.1),
            &answering
        ));
    }
}
