//! Search over the stored documents: semantic (vector), keyword (exact names, kinds, label
//! values and the well-known software an object runs or its category, no embedding call) or hybrid (both, exact matches winning over vague
//! similarity), with metadata filters; and `ask` (in [`ask`]), which fuses that search with
//! the semantic bridge (the resource *types* that answer a question, then their instances);
//! and counting by filters without ranking (in [`count`]). Across a fleet both ask the whole
//! index at once and share the page among its clusters ([`fleet`]).

mod ask;
mod clusters;
mod count;
mod fleet;
mod terms;

use std::collections::HashMap;
use std::sync::Arc;

use crate::access::{Scope, ScopedStore};
use crate::document::SOFTWARE_KEY;
use crate::embed::{EmbedError, Embedder, InputType};
use crate::store::{Filter, Hit, MetaValue, Metadata, StoreError, VectorStore};

pub use fleet::ClusterList;
pub use terms::QueryTerms;
pub(crate) use terms::{exact_matches, software_answers};

pub use sync_model::search::{
    AskAnswer, AskHit, ClusterCount, Collection, SearchBody, SearchHit, SearchMode, SearchRequest,
    SearchResults, TypeMatch, Why,
};

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("bad search request: {0}")]
    BadRequest(String),
    /// The request names a cluster the index holds nothing of: the caller fixes the name.
    #[error("unknown cluster {cluster:?}: {}", known_clusters(.known))]
    UnknownCluster { cluster: String, known: Vec<String> },
    /// A user whose grants hold in no cluster of the index: said, not answered with an empty
    /// (and so falsely reassuring) page.
    #[error(
        "{user} may read nothing in this index: no Role or ClusterRole bound to them lets them \
         list a type in any cluster it holds (ask a cluster's administrator for a binding)"
    )]
    NothingVisible { user: String },
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SearchError {
    pub fn is_transient(&self) -> bool {
        match self {
            SearchError::BadRequest(_)
            | SearchError::UnknownCluster { .. }
            | SearchError::NothingVisible { .. } => false,
            SearchError::Embed(e) => e.is_transient(),
            SearchError::Store(e) => e.is_transient(),
        }
    }
}

/// `known clusters: a, b`, or that there are none: what an unknown cluster's error adds.
pub fn known_clusters(known: &[String]) -> String {
    if known.is_empty() {
        "the index holds no clusters yet".into()
    } else {
        format!("known clusters: {}", known.join(", "))
    }
}

pub const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 1_000;
/// Candidates read per requested result before re-ranking.
const CANDIDATE_FACTOR: usize = 5;
const MIN_CANDIDATES: usize = 50;
/// Boosts for exact matches: enough that an exact name beats any vague similarity.
const NAME_BOOST: f32 = 0.6;
const KIND_BOOST: f32 = 0.3;
const LABEL_BOOST: f32 = 0.3;
const NAMESPACE_BOOST: f32 = 0.3;

/// A candidate before it becomes a hit: the stored document, its own similarity to the
/// query (none when only an exact match found it), the exact matches and its score.
pub(crate) struct Ranked {
    pub hit: Hit,
    pub sim: Option<f32>,
    pub matched: Vec<String>,
    pub score: f32,
}

/// Everything `search` and `ask` need: a store as one caller may read it, an embedder and
/// collection names (and the clusters of the index, as last read). [`Searcher::new`] reads
/// everything (the local index, an operator); [`Searcher::scoped`] is what one caller sees.
#[derive(Clone)]
pub struct Searcher {
    pub store: ScopedStore,
    pub embedder: Arc<dyn Embedder>,
    pub instances_collection: String,
    pub capabilities_collection: String,
    pub cluster_list: ClusterList,
    /// The cluster records' writer in this process, whose pending recounts say which
    /// records' counts are behind (`search::clusters`); `None` in a process that writes none.
    pub registry: Option<crate::clusters::ClusterRegistry>,
    /// The configured instances collection, which the side collections (cluster records)
    /// are named after whatever the generation read.
    pub base_collection: String,
}

impl Searcher {
    pub fn new(
        store: Arc<dyn VectorStore>,
        embedder: Arc<dyn Embedder>,
        instances_collection: impl Into<String>,
        capabilities_collection: impl Into<String>,
    ) -> Self {
        let (instances_collection, capabilities_collection) =
            (instances_collection.into(), capabilities_collection.into());
        Searcher {
            store: ScopedStore::new(
                store,
                Scope::Everything,
                &instances_collection,
                &capabilities_collection,
            ),
            embedder,
            base_collection: instances_collection.clone(),
            instances_collection,
            capabilities_collection,
            cluster_list: ClusterList::default(),
            registry: None,
        }
    }

    /// This searcher with the process's cluster records' writer (see [`Searcher::registry`]).
    pub fn with_registry(mut self, registry: crate::clusters::ClusterRegistry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// This searcher reading the collections of index generation `snapshot`, embedding
    /// questions with its model, in the same scope.
    pub fn in_generation(&self, snapshot: &crate::generations::Snapshot) -> Searcher {
        if snapshot.instances == self.instances_collection
            && Arc::ptr_eq(&snapshot.embedder, &self.embedder)
        {
            return self.clone();
        }
        let store = ScopedStore::new(
            self.store.records_store_arc(),
            self.store.scope().clone(),
            &snapshot.instances,
            &snapshot.capabilities,
        );
        Searcher {
            store,
            embedder: snapshot.embedder.clone(),
            instances_collection: snapshot.instances.clone(),
            capabilities_collection: snapshot.capabilities.clone(),
            ..self.clone()
        }
    }

    /// This searcher as a caller with `scope` reads: every read of the instances and the
    /// capabilities carries it.
    pub fn scoped(&self, scope: Scope) -> Searcher {
        let store = ScopedStore::new(
            self.store.records_store_arc(),
            scope,
            &self.instances_collection,
            &self.capabilities_collection,
        );
        Searcher {
            store,
            ..self.clone()
        }
    }

    /// The store with nothing held back, when this searcher reads everything.
    pub fn unscoped_store(&self) -> Option<&Arc<dyn VectorStore>> {
        self.store.unscoped()
    }

    pub(crate) fn collection_name(&self, c: Collection) -> &str {
        match c {
            Collection::Instances => &self.instances_collection,
            Collection::Capabilities => &self.capabilities_collection,
        }
    }

    /// The best `limit` hits of `req`, best first (see [`Searcher::search_page`]).
    pub async fn search(&self, req: &SearchRequest) -> Result<Vec<SearchHit>, SearchError> {
        Ok(self.search_page(req).await?.results)
    }

    /// The best `limit` hits of `req`. Without a cluster filter on an index of several
    /// clusters, one pool is ranked over the whole index and the page shared among them
    /// ([`fleet::fair_share`]), with each cluster's share and, where the list is complete,
    /// its total.
    pub async fn search_page(&self, req: &SearchRequest) -> Result<SearchResults, SearchError> {
        let limit = checked_limit(req.limit)?;
        self.check_cluster(req.cluster.as_deref()).await?;
        let filter = build_filter(req)?;
        let terms = QueryTerms::parse(&req.query);
        if req.mode != SearchMode::Keyword && req.query.trim().is_empty() {
            return Err(SearchError::BadRequest(
                "query must not be empty (use mode keyword with filters to list)".into(),
            ));
        }
        let vector = match req.mode {
            SearchMode::Keyword => None,
            _ => Some(self.embed_query(&req.query).await?),
        };
        let collection = self.collection_name(req.collection);
        let candidates = CANDIDATE_FACTOR.saturating_mul(limit).max(MIN_CANDIDATES);
        let fleet = match (
            req.collection,
            req.cluster.as_deref().filter(|c| !c.is_empty()),
        ) {
            (Collection::Instances, None) => self.fleet_clusters().await?,
            _ => None,
        };
        if let (Some(clusters), true) = (&fleet, terms.is_empty()) {
            return self
                .fleet_listing(collection, filter.as_ref(), limit, clusters)
                .await;
        }
        // Across a fleet, one query over the whole index: a pool large enough for each
        // cluster's share.
        let candidates = match &fleet {
            Some(clusters) => candidates.max(fleet::fleet_pool(limit, clusters.len())),
            None => candidates,
        };
        let mut pool = self
            .ranked(
                collection,
                vector.as_deref(),
                &terms,
                filter.as_ref(),
                candidates,
                req.mode,
            )
            .await?;
        let Some(clusters) = fleet else {
            pool.truncate(limit);
            return Ok(SearchResults {
                results: pool.into_iter().map(Ranked::into_hit).collect(),
                clusters: vec![],
            });
        };
        // A keyword search's pool is complete when it holds fewer than were read: then each
        // cluster's list is its whole count.
        let complete = req.mode == SearchMode::Keyword && pool.len() < candidates;
        let lists =
            fleet::split_by_cluster(pool, &clusters, |r: &Ranked| cluster_of(&r.hit.metadata));
        let totals: Vec<Option<usize>> =
            lists.iter().map(|l| complete.then_some(l.len())).collect();
        let page = fleet::fair_share(lists, limit, |r: &Ranked| r.score);
        let results: Vec<SearchHit> = page.into_iter().map(Ranked::into_hit).collect();
        let counts = clusters
            .iter()
            .zip(totals)
            .map(|(c, total)| {
                let shown = results.iter().filter(|h| &h.cluster == c).count();
                fleet::cluster_count(c, shown, total)
            })
            .collect();
        Ok(SearchResults {
            results,
            clusters: counts,
        })
    }

    /// A listing by filters across `clusters`, by id: one read, and the store counts each
    /// cluster's.
    async fn fleet_listing(
        &self,
        collection: &str,
        filter: Option<&Filter>,
        limit: usize,
        clusters: &[String],
    ) -> Result<SearchResults, SearchError> {
        let hits = self.store.get(collection, filter, limit).await?;
        let totals = self.count_by_cluster(filter).await?;
        let results: Vec<SearchHit> = hits
            .into_iter()
            .map(|h| to_search_hit(h, 0.0, vec![]))
            .collect();
        let counts = clusters
            .iter()
            .map(|c| {
                let shown = results.iter().filter(|h| &h.cluster == c).count();
                fleet::cluster_count(c, shown, Some(totals.get(c).copied().unwrap_or(0)))
            })
            .collect();
        Ok(SearchResults {
            results,
            clusters: counts,
        })
    }

    /// How many objects `filter` admits in each cluster (every object: a listing shows
    /// owned objects too).
    async fn count_by_cluster(
        &self,
        filter: Option<&Filter>,
    ) -> Result<HashMap<String, usize>, SearchError> {
        let tally = self
            .store
            .tally(
                &self.instances_collection,
                filter,
                &[crate::document::CLUSTER_KEY],
            )
            .await?;
        let mut out = HashMap::new();
        for (values, n) in tally {
            let cluster = values.into_iter().next().flatten().unwrap_or_default();
            *out.entry(cluster).or_default() += n;
        }
        Ok(out)
    }

    /// Candidates of `collection` ranked best first: the nearest `candidates` to `vector`
    /// (unless keyword mode) and the exact keyword matches (unless semantic mode), scored
    /// by similarity plus exact-match boosts.
    pub(crate) async fn ranked(
        &self,
        collection: &str,
        vector: Option<&[f32]>,
        terms: &QueryTerms,
        filter: Option<&Filter>,
        candidates: usize,
        mode: SearchMode,
    ) -> Result<Vec<Ranked>, SearchError> {
        let mut hits: HashMap<String, (Hit, Option<f32>)> = HashMap::new();
        if let (Some(vector), true) = (vector, mode != SearchMode::Keyword) {
            for hit in self
                .store
                .query(collection, vector, filter, candidates)
                .await?
            {
                let sim = 1.0 - hit.distance;
                hits.insert(hit.id.clone(), (hit, Some(sim)));
            }
        }
        if mode != SearchMode::Semantic {
            for hit in self
                .keyword_candidates(collection, terms, filter, candidates)
                .await?
            {
                hits.entry(hit.id.clone()).or_insert((hit, None));
            }
        }
        let mut ranked: Vec<Ranked> = hits
            .into_values()
            .filter_map(|(hit, sim)| {
                let matched = exact_matches(&hit.metadata, terms);
                if mode == SearchMode::Keyword && matched.is_empty() && !terms.is_empty() {
                    return None;
                }
                let boost = if mode == SearchMode::Semantic {
                    0.0
                } else {
                    boost_for(&hit.metadata, &matched)
                };
                Some(Ranked {
                    score: sim.unwrap_or(0.0) + boost,
                    hit,
                    sim,
                    matched,
                })
            })
            .collect();
        ranked.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.hit.id.cmp(&b.hit.id))
        });
        Ok(ranked)
    }

    async fn embed_query(&self, text: &str) -> Result<Vec<f32>, SearchError> {
        let mut vectors = self
            .embedder
            .embed(&[text.to_string()], InputType::Query)
            .await?;
        vectors
            .pop()
            .ok_or_else(|| EmbedError::Permanent("the provider returned no vector".into()).into())
    }

    /// Documents whose name, kind or namespace is exactly one of the terms, or whose software
    /// or its category is one they name.
    async fn keyword_candidates(
        &self,
        collection: &str,
        terms: &QueryTerms,
        filter: Option<&Filter>,
        limit: usize,
    ) -> Result<Vec<Hit>, SearchError> {
        if terms.is_empty() {
            return Ok(self.store.get(collection, filter, limit).await?);
        }
        let mut out = Vec::new();
        let kinds: Vec<String> = terms.words.iter().flat_map(|t| kind_spellings(t)).collect();
        // The software named or of the asked categories, by key: the catalogue decides what
        // a category covers (Redis is a database too), not the stored category.
        for (key, values) in [
            ("name", terms.words.clone()),
            ("kind", kinds),
            ("namespace", terms.words.clone()),
            (SOFTWARE_KEY, terms.software_candidates()),
        ] {
            if values.is_empty() {
                continue;
            }
            let mut all = vec![Filter::In(key.into(), values)];
            if let Some(f) = filter {
                all.push(f.clone());
            }
            out.extend(
                self.store
                    .get(collection, Some(&Filter::And(all)), limit)
                    .await?,
            );
        }
        Ok(out)
    }
}

fn checked_limit(limit: Option<usize>) -> Result<usize, SearchError> {
    match limit.unwrap_or(DEFAULT_LIMIT) {
        0 => Err(SearchError::BadRequest("limit must be at least 1".into())),
        n if n > MAX_LIMIT => Err(SearchError::BadRequest(format!(
            "limit must be at most {MAX_LIMIT}"
        ))),
        n => Ok(n),
    }
}

/// cluster, kind, apiGroup, namespace and every `key=value` label, all of which must hold.
pub fn build_filter(req: &SearchRequest) -> Result<Option<Filter>, SearchError> {
    let mut all = Vec::new();
    if let Some(cluster) = req.cluster.as_deref().filter(|c| !c.is_empty()) {
        let cluster = sync_model::ClusterId::new(cluster)
            .map_err(|e| SearchError::BadRequest(e.to_string()))?;
        all.push(Filter::Eq(
            crate::document::CLUSTER_KEY.into(),
            cluster.to_string(),
        ));
    }
    if let Some(kind) = req.kind.as_deref().filter(|k| !k.is_empty()) {
        all.push(Filter::Eq("kind".into(), kind.to_string()));
    }
    // Core types have the empty group, so an empty apiGroup is a filter too.
    if let Some(group) = req.api_group.as_deref() {
        all.push(Filter::Eq("apiGroup".into(), group.to_string()));
    }
    if let Some(ns) = req.namespace.as_deref().filter(|n| !n.is_empty()) {
        all.push(Filter::Eq("namespace".into(), ns.to_string()));
    }
    if let Some(health) = req.health {
        let key = crate::document::HEALTH_KEY;
        all.push(match health.statuses() {
            [one] => Filter::Eq(key.into(), one.as_str().to_string()),
            many => Filter::In(
                key.into(),
                many.iter().map(|h| h.as_str().to_string()).collect(),
            ),
        });
    }
    for label in &req.labels {
        let (k, v) = label.split_once('=').ok_or_else(|| {
            SearchError::BadRequest(format!(
                "label filter {} must be key=value",
                sync_model::untrusted::echo(label)
            ))
        })?;
        if k.is_empty() {
            return Err(SearchError::BadRequest(format!(
                "label filter {} has an empty key",
                sync_model::untrusted::echo(label)
            )));
        }
        all.push(Filter::Eq(format!("label.{k}"), v.to_string()));
    }
    Ok(match all.len() {
        0 => None,
        1 => all.pop(),
        _ => Some(Filter::And(all)),
    })
}

/// Kinds are CamelCase (`StatefulSet`); a term is tried as written and capitalised.
fn kind_spellings(term: &str) -> Vec<String> {
    let mut c = term.chars();
    let capitalised = match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    };
    if capitalised == term {
        vec![term.to_string()]
    } else {
        vec![term.to_string(), capitalised]
    }
}

/// The cluster a document belongs to (empty for one that predates clusters).
pub(crate) fn cluster_of(m: &Metadata) -> &str {
    match m.get(crate::document::CLUSTER_KEY) {
        Some(MetaValue::Str(s)) => s,
        _ => "",
    }
}

pub(crate) fn meta_str(m: &Metadata, key: &str) -> String {
    match m.get(key) {
        Some(MetaValue::Str(s)) => s.clone(),
        Some(MetaValue::Int(i)) => i.to_string(),
        Some(MetaValue::Float(f)) => f.to_string(),
        Some(MetaValue::Bool(b)) => b.to_string(),
        None => String::new(),
    }
}

fn boost_for(_m: &Metadata, matched: &[String]) -> f32 {
    let mut boost = 0.0;
    let (mut name, mut kind, mut label, mut namespace) = (false, false, false, false);
    for m in matched {
        if m.starts_with("name:") && !name {
            name = true;
            boost += NAME_BOOST;
        } else if m.starts_with("namespace:") && !namespace {
            namespace = true;
            boost += NAMESPACE_BOOST;
        } else if m.starts_with("kind:") && !kind {
            kind = true;
            boost += KIND_BOOST;
        } else if (m.starts_with("label:")
            || m.starts_with("software:")
            || m.starts_with("category:")
            || m.starts_with("model:"))
            && !label
        {
            // What the object is, said by a label or by the software it runs: one boost,
            // however many say it.
            label = true;
            boost += LABEL_BOOST;
        }
    }
    boost
}

/// The health stored in a document's metadata, if it has one.
pub(crate) fn stored_health(m: &Metadata) -> Option<sync_model::Health> {
    match m.get(crate::document::HEALTH_KEY) {
        Some(MetaValue::Str(s)) => sync_model::HealthStatus::parse_loose(s).map(|status| {
            sync_model::Health::new(status, meta_str(m, crate::document::HEALTH_REASON_KEY))
        }),
        _ => None,
    }
}

impl Ranked {
    fn into_hit(self) -> SearchHit {
        to_search_hit(self.hit, self.score, self.matched)
    }
}

pub(crate) fn to_search_hit(hit: Hit, score: f32, matched: Vec<String>) -> SearchHit {
    let labels = crate::document::labels_of(&hit.metadata);
    let health = stored_health(&hit.metadata);
    // A stored instance id is `<cluster>:<id>`: the hit shows the two apart, so that its
    // id is the object's own (what `kubectl` and the Go controller's ids name).
    let (cluster, id) = match sync_model::split_stored_id(&hit.id) {
        Some((cluster, id)) => (cluster.to_string(), id.to_string()),
        None => (
            meta_str(&hit.metadata, crate::document::CLUSTER_KEY),
            hit.id,
        ),
    };
    let owner_kind = meta_str(&hit.metadata, crate::document::OWNER_KIND_KEY);
    let owner = (!owner_kind.is_empty()).then(|| sync_model::Owner {
        kind: owner_kind,
        name: meta_str(&hit.metadata, crate::document::OWNER_NAME_KEY),
    });
    SearchHit {
        cluster,
        owner,
        kind: meta_str(&hit.metadata, "kind"),
        health,
        namespace: meta_str(&hit.metadata, "namespace"),
        name: meta_str(&hit.metadata, "name"),
        labels,
        score,
        matched,
        document: hit.document,
        id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_combine_kind_namespace_and_labels() {
        let req = SearchRequest {
            kind: Some("Deployment".into()),
            namespace: Some("shop".into()),
            labels: vec!["app=web".into()],
            ..Default::default()
        };
        assert_eq!(
            build_filter(&req).unwrap(),
            Some(Filter::And(vec![
                Filter::Eq("kind".into(), "Deployment".into()),
                Filter::Eq("namespace".into(), "shop".into()),
                Filter::Eq("label.app".into(), "web".into()),
            ]))
        );
        let bad = SearchRequest {
            labels: vec!["novalue".into()],
            ..Default::default()
        };
        assert!(matches!(
            build_filter(&bad),
            Err(SearchError::BadRequest(_))
        ));
    }

    #[test]
    fn a_health_word_filters_on_every_status_it_names() {
        use sync_model::{HealthFilter, HealthStatus};
        let of = |health| {
            build_filter(&SearchRequest {
                health: Some(health),
                ..Default::default()
            })
            .unwrap()
        };
        assert_eq!(
            of(HealthFilter::Unhealthy),
            Some(Filter::In(
                "health".into(),
                vec!["Failed".into(), "InProgress".into()]
            ))
        );
        assert_eq!(
            of(HealthFilter::Is(HealthStatus::Failed)),
            Some(Filter::Eq("health".into(), "Failed".into()))
        );
    }

    #[test]
    fn a_label_and_the_software_saying_what_an_object_is_boost_once() {
        let m = Metadata::new();
        let matched: Vec<String> = [
            "name:postgres",
            "label:app=postgres",
            "software:postgresql",
            "category:database",
            "kind:statefulset",
        ]
        .map(String::from)
        .to_vec();
        let boost = boost_for(&m, &matched);
        assert!((boost - (NAME_BOOST + KIND_BOOST + LABEL_BOOST)).abs() < 1e-6);
    }

    #[test]
    fn limits_are_checked() {
        assert!(checked_limit(Some(0)).is_err());
        assert!(checked_limit(Some(MAX_LIMIT + 1)).is_err());
        assert_eq!(checked_limit(None).unwrap(), DEFAULT_LIMIT);
    }
}
