//! Search and ask in one box: the query and its filters (cluster, kind, namespace, health
//! in the CLI's words) come from the URL, so that a view can be shared and the browser's
//! back and forward restore it. A search lists hits with their health, labels and why they
//! matched, an owned object folded under its owner when both answered; an ask lists the
//! types that answer the question and their instances, grouped by cluster.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use ingest::access::identity::Caller;
use sync_model::search::{AskAnswer, SearchHit, SearchMode, SearchRequest, SearchResults};
use sync_model::HealthFilter;

use super::{folded_line, render, Chrome, HitView, PageError, SearchForm};
use crate::state::Web;

/// Hits on one page.
const PAGE: usize = 30;
/// Instances of each type an ask shows.
const ASK_INSTANCES: usize = 10;

/// The form read: the request it makes.
pub fn request_of(form: &SearchForm) -> Result<SearchRequest, PageError> {
    let given = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
    let health = HealthFilter::parse_optional(given(&form.health).as_deref())
        .map_err(PageError::bad_request)?;
    let query = form.q.trim().to_string();
    Ok(SearchRequest {
        // No words: a listing by the filters, which needs no ranking.
        mode: if query.is_empty() {
            SearchMode::Keyword
        } else {
            SearchMode::Hybrid
        },
        query,
        cluster: given(&form.cluster),
        kind: given(&form.kind),
        namespace: given(&form.namespace),
        health,
        limit: Some(PAGE),
        ..Default::default()
    })
}

/// Why a plain search hit answered.
fn why_of(hit: &SearchHit, listing: bool) -> String {
    if listing {
        "matches the filters".into()
    } else if !hit.matched.is_empty() {
        format!("exact: {} (score {:.2})", hit.matched.join(", "), hit.score)
    } else {
        format!("similar text (score {:.2})", hit.score)
    }
}

/// The hits as shown: each hit whose owner (same cluster and namespace) is on the page is
/// folded under it instead of taking a line of its own.
pub fn fold_owned(hits: &[SearchHit], listing: bool) -> Vec<HitView> {
    let owner_at = |hit: &SearchHit| {
        let owner = hit.owner.as_ref()?;
        hits.iter().position(|h| {
            h.cluster == hit.cluster
                && h.namespace == hit.namespace
                && h.kind == owner.kind
                && h.name == owner.name
        })
    };
    let mut views: Vec<Option<HitView>> = hits
        .iter()
        .map(|h| Some(HitView::of(h, why_of(h, listing))))
        .collect();
    let mut folded: Vec<(usize, usize)> = Vec::new();
    for (i, hit) in hits.iter().enumerate() {
        if let Some(o) = owner_at(hit).filter(|o| *o != i) {
            folded.push((o, i));
        }
    }
    // An owner that is itself folded keeps its own line: one level, never a hit lost.
    let folded_children: std::collections::BTreeSet<usize> =
        folded.iter().map(|(_, c)| *c).collect();
    for (owner, child) in folded {
        if folded_children.contains(&owner) {
            continue;
        }
        if let Some(view) = views[owner].as_mut() {
            view.owns.push(folded_line(&hits[child]));
        }
        views[child] = None;
    }
    views.into_iter().flatten().collect()
}

pub struct TypeView {
    pub kind: String,
    pub group: String,
    /// The type's description when it is what matched the question.
    pub reason: String,
    /// Instances by cluster, clusters by name.
    pub clusters: Vec<(String, Vec<HitView>)>,
    pub count: usize,
}

pub struct AskView {
    pub types: Vec<TypeView>,
    pub available: Vec<String>,
    pub health: String,
    pub none_with_health: bool,
    pub per_cluster: Vec<String>,
}

pub fn ask_view(answer: AskAnswer) -> AskView {
    let types = answer
        .types
        .into_iter()
        .map(|t| {
            let count = t.instances.len();
            let mut by_cluster: BTreeMap<String, Vec<HitView>> = BTreeMap::new();
            for i in &t.instances {
                let mut view = HitView::of(&i.hit, i.why_line());
                view.owns = i.owns.clone();
                by_cluster
                    .entry(i.hit.cluster.clone())
                    .or_default()
                    .push(view);
            }
            TypeView {
                kind: t.kind,
                group: t.group,
                reason: t.reason,
                clusters: by_cluster.into_iter().collect(),
                count,
            }
        })
        .collect();
    AskView {
        types,
        available: answer.available.into_iter().map(|t| t.id).collect(),
        health: answer
            .health
            .iter()
            .map(|h| h.as_str())
            .collect::<Vec<_>>()
            .join(" or "),
        none_with_health: answer.none_with_health,
        per_cluster: answer
            .clusters
            .iter()
            .map(|c| match c.total {
                Some(t) => format!("{}: {} shown of {t}", c.cluster, c.shown),
                None => format!("{}: {} shown", c.cluster, c.shown),
            })
            .collect(),
    }
}

pub enum Answer {
    /// Nothing asked yet.
    Empty,
    Hits {
        hits: Vec<HitView>,
        shown: usize,
        per_cluster: Vec<String>,
    },
    Ask(AskView),
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    chrome: Chrome,
    answer: Answer,
    title: String,
}

fn per_cluster(results: &SearchResults) -> Vec<String> {
    results
        .clusters
        .iter()
        .map(|c| match c.total {
            Some(t) => format!("{}: {} shown of {t}", c.cluster, c.shown),
            None => format!("{}: {} shown", c.cluster, c.shown),
        })
        .collect()
}

async fn answer(web: &Web, caller: &Caller, form: &SearchForm) -> Result<Answer, PageError> {
    if form.is_empty() {
        return Ok(Answer::Empty);
    }
    let req = request_of(form)?;
    let searcher = web.state.searcher_of(caller).await;
    if form.asks() {
        if req.query.is_empty() {
            return Err(PageError::bad_request(
                "ask needs a question: type one in the box, or Search to list by the filters",
            ));
        }
        let answer = searcher
            .ask_in(
                &req.query,
                Some(ASK_INSTANCES),
                req.cluster.as_deref(),
                req.health,
            )
            .await?;
        return Ok(Answer::Ask(ask_view(answer)));
    }
    let listing = req.query.is_empty();
    let results = searcher.search_page(&req).await?;
    Ok(Answer::Hits {
        shown: results.results.len(),
        per_cluster: per_cluster(&results),
        hits: fold_owned(&results.results, listing),
    })
}

/// `GET /search?q=...&cluster=...&kind=...&namespace=...&health=...&mode=ask`.
pub async fn page(
    State(web): State<Web>,
    caller: Caller,
    form: Result<Query<SearchForm>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let form = form.map(|Query(f)| f).unwrap_or_default();
    let filters: Vec<String> = [
        ("cluster", &form.cluster),
        ("kind", &form.kind),
        ("namespace", &form.namespace),
        ("health", &form.health),
    ]
    .into_iter()
    .filter(|(_, v)| !v.trim().is_empty())
    .map(|(k, v)| format!("{k} {}", v.trim()))
    .collect();
    let title = match (form.q.trim(), form.asks()) {
        ("", _) if !filters.is_empty() => format!("Objects with {}", filters.join(", ")),
        ("", _) => "Search".to_string(),
        (q, true) => format!("Ask: {q}"),
        (q, false) => format!("Search: {q}"),
    };
    let chrome = Chrome::new(web.state.authenticator().required(), form.clone());
    match answer(&web, &caller, &form).await {
        Ok(answer) => render(
            StatusCode::OK,
            &SearchPage {
                chrome,
                answer,
                title,
            },
        ),
        Err(e) => e.page(chrome),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_model::{Health, HealthStatus, Owner};

    fn hit(kind: &str, name: &str, owner: Option<(&str, &str)>) -> SearchHit {
        SearchHit {
            id: format!("data/v1/{kind}/{name}"),
            cluster: "demo".into(),
            kind: kind.into(),
            namespace: "data".into(),
            name: name.into(),
            labels: Default::default(),
            health: Some(Health::new(HealthStatus::Failed, "0/1 ready")),
            score: 0.5,
            matched: vec![],
            document: String::new(),
            owner: owner.map(|(k, n)| Owner {
                kind: k.into(),
                name: n.into(),
            }),
        }
    }

    #[test]
    fn an_owned_hit_is_folded_under_its_owner_on_the_page() {
        let hits = [
            hit("StatefulSet", "db", None),
            hit("Pod", "db-0", Some(("StatefulSet", "db"))),
            hit("Pod", "web-1", Some(("ReplicaSet", "web-7d"))),
        ];
        let views = fold_owned(&hits, false);
        let names: Vec<&str> = views.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["db", "web-1"]);
        assert_eq!(views[0].owns, ["Pod db-0 [Failed: 0/1 ready]"]);
        assert_eq!(views[1].owner.as_deref(), Some("ReplicaSet web-7d"));
    }

    #[test]
    fn the_health_filter_takes_the_clis_words_and_names_them_when_wrong() {
        let form = |health: &str| SearchForm {
            q: "db".into(),
            health: health.into(),
            ..Default::default()
        };
        assert_eq!(
            request_of(&form("unhealthy")).unwrap().health,
            Some(HealthFilter::Unhealthy)
        );
        assert_eq!(
            request_of(&form("in-progress")).unwrap().health,
            Some(HealthFilter::Is(HealthStatus::InProgress))
        );
        let e = request_of(&form("sick")).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("unhealthy"), "{}", e.message);
        let listing = request_of(&SearchForm {
            kind: "Pod".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(listing.mode, SearchMode::Keyword);
    }
}
