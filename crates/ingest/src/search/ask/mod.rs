//! `ask`: the objects that answer a question, from two sources ranked by one score.
//! Directly: the hybrid search of the instances (their own text, exact names, namespaces and
//! label values). Through the bridge: the types whose capability document matches the
//! question, then their instances, which earn their type's similarity even when their own
//! text says nothing of what they are (a CRD's instances). An object keeps the better of its
//! two scores; the answers are grouped by type only for display. Types that match but have
//! no instance go to a separate `available` list and never displace a running answer.
//!
//! A question is answered in one scope ([`scope`]: the asked cluster, else the whole index);
//! across a fleet its answers are split by cluster and the page shared among them
//! (`search::fleet`), each cluster saying how many objects answer there, counted in the store.

mod fold;
mod rank;
mod scope;

use std::collections::{HashMap, HashSet};

use sync_model::HealthStatus;

use super::fleet::{cluster_count, fair_share, fleet_pool, split_by_cluster};
use super::{
    build_filter, checked_limit, cluster_of, meta_str, software_answers, terms, to_search_hit,
    AskAnswer, AskHit, QueryTerms, Ranked, SearchError, Searcher, TypeMatch, Why,
};
use crate::store::{Filter, Hit};
use scope::ScopeAnswers;

/// An answer scores at least this share of the best answer's score: what the question is
/// about, not everything near it ("what databases are running?" is not answered by a
/// Certificate of the database's namespace). A health answer scores at least this share of
/// the best answer of any health: "are any databases unhealthy?" is not answered by a
/// failing Job that has nothing to do with databases. (Half costs nothing on the relevance
/// sets; 0.6 loses expected answers: docs/search.md.)
const ANSWER_FLOOR: f32 = 0.5;

/// One answer being ranked: the candidate, and the type that bridged it, if any.
struct Answer {
    ranked: Ranked,
    capability: Option<String>,
    /// The answers it controls, folded into it (see [`fold::fold_owned`]).
    owns: Vec<String>,
}

/// What one question asks, the same in every scope it is answered in.
struct Asked<'a> {
    terms: &'a QueryTerms,
    vector: &'a [f32],
    /// The custom and built-in types whose description matches, with their similarity.
    types: &'a [(Hit, f32)],
    limit: usize,
    /// How many answers the scope keeps before the page is shared among its clusters
    /// ([`fleet_pool`]): `limit` in one cluster.
    pool: usize,
    /// The healths the answers must have (none: any).
    healths: Vec<HealthStatus>,
    /// The health came with the request (`--health`), not from the question's words.
    health_asked_by_filter: bool,
}

impl Asked<'_> {
    /// How many candidates a store query reads: a few per answer of the page, and across a
    /// fleet at least the pool.
    fn candidates(&self) -> usize {
        super::CANDIDATE_FACTOR
            .saturating_mul(self.limit)
            .max(super::MIN_CANDIDATES)
            .max(self.pool)
    }
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
    /// InProgress). Without a health, a question that asks about health ("are any databases
    /// unhealthy?", "what is failing?") is answered by its `Failed` and `InProgress`
    /// objects: every one of the software, category or custom type the question names, and
    /// those that answer it about as well as its best answer of any health (at least
    /// [`ANSWER_FLOOR`] of that score, so that a failing Job does not answer a question
    /// about databases). When the store holds no object of that health that answers (a
    /// count, not the page), the answers of any health come back with `none_with_health`
    /// set. With a health, types are never listed as available: a type whose objects are
    /// all healthy does not have "nothing running".
    ///
    /// Without a cluster, an index of several clusters is asked as a whole (a pool of answers
    /// that grows with the clusters) and the page shared among those with answers;
    /// `clusters` says how many each shows and has.
    pub async fn ask_in(
        &self,
        question: &str,
        limit: Option<usize>,
        cluster: Option<&str>,
        health: Option<sync_model::HealthFilter>,
    ) -> Result<AskAnswer, SearchError> {
        let limit = checked_limit(limit)?;
        let cluster = cluster.filter(|c| !c.is_empty());
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
        // What the question is about, without the words of health: no document says its
        // object's health (it is filtered on), so "unhealthy" only pulls the question away
        // from the types and objects it asks about.
        let about = terms::without_health_words(question);
        let vector = self
            .embed_query(about.as_deref().unwrap_or(question))
            .await?;
        let types = self.matching_types(&vector).await?;
        let scope = self.scope(cluster, in_cluster.as_ref()).await?;
        let fleet_size = scope.fleet.as_ref().map_or(1, Vec::len);
        let asked = Asked {
            terms: &terms,
            vector: &vector,
            types: &types,
            limit,
            pool: fleet_pool(limit, fleet_size),
            healths,
            health_asked_by_filter: health.is_some(),
        };
        let answered = self.answer_scope(&asked, &scope).await?;
        self.finish(question, &asked, &scope, answered).await
    }

    /// The answer on one page: each cluster's share of the best `limit` ([`fair_share`]),
    /// grouped by type; and per cluster its answers on the page and in all. When the scope
    /// holds no object of the asked health that answers, the answers of any health, said so.
    async fn finish(
        &self,
        question: &str,
        asked: &Asked<'_>,
        scope: &super::fleet::Scope,
        answered: ScopeAnswers,
    ) -> Result<AskAnswer, SearchError> {
        let none_with_health = answered
            .any_health
            .as_ref()
            .is_some_and(|answers| !answers.is_empty());
        let answers = match (none_with_health, answered.any_health) {
            (true, Some(any)) => any,
            _ => answered.answers,
        };
        let clusters = scope.clusters();
        let lists = split_by_cluster(answers, scope.fleet.as_deref().unwrap_or_default(), |a| {
            cluster_of(&a.ranked.hit.metadata)
        });
        let mut page = fair_share(lists, asked.limit, |a: &Answer| a.ranked.score);
        page.sort_by(|a, b| {
            b.ranked
                .score
                .total_cmp(&a.ranked.score)
                .then_with(|| a.ranked.hit.id.cmp(&b.ranked.hit.id))
        });
        let clusters = clusters
            .iter()
            .map(|cluster| {
                let shown = page
                    .iter()
                    .filter(|a| cluster_of(&a.ranked.hit.metadata) == cluster)
                    .count();
                let total = answered.totals.get(cluster).copied().unwrap_or(0);
                cluster_count(cluster, shown, (!none_with_health).then_some(total))
            })
            .collect();
        let types = self
            .group_by_type(page, asked.terms, &answered.capabilities)
            .await?;
        Ok(AskAnswer {
            question: question.to_string(),
            types,
            available: answered.available,
            health: asked.healths.clone(),
            none_with_health,
            clusters,
        })
    }

    /// The answers (best first) grouped by type, the type of the best answer first. A type
    /// that the bridge matched carries its capability document as the reason.
    async fn group_by_type(
        &self,
        answers: Vec<Answer>,
        terms: &QueryTerms,
        bridged: &HashMap<(String, String), Hit>,
    ) -> Result<Vec<TypeMatch>, SearchError> {
        let ids = self.type_ids(&answers).await?;
        let mut groups: Vec<TypeMatch> = Vec::new();
        for a in answers {
            let kind = meta_str(&a.ranked.hit.metadata, "kind");
            let group = meta_str(&a.ranked.hit.metadata, "apiGroup");
            let why = Why {
                words: words_in(&a.ranked.hit, &terms.words),
                capability: a.capability,
                category: software_answers(&a.ranked.hit.metadata, terms),
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
    use crate::store::Metadata;

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
