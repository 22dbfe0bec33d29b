//! The fleet at a glance: every cluster the caller may see with its objects, its objects by
//! health as a bar, its last sync and contact (stale ones marked), and the kinds with the
//! most unhealthy objects. All of it from the store's counts and the clusters' records
//! (`Searcher::clusters`, `Searcher::count`), never a read of every document. The page's
//! script fetches [`fragment`] every ten seconds to refresh it in place.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use ingest::access::identity::Caller;
use sync_model::api::{age_text, ClustersResponse};
use sync_model::search::{CountBody, GroupBy, SearchRequest};
use sync_model::{HealthFilter, HealthStatus};

use super::{class_of, render, Chrome, HitView, PageError, SearchForm};
use crate::state::Web;
use sync_model::search::SearchMode;

/// Kinds listed among the most unhealthy at most.
const TOP_KINDS: usize = 10;
/// Unhealthy objects listed at most (a page of one read; the link lists them all).
const UNHEALTHY_LISTED: usize = 10;

pub struct ClusterRow {
    pub id: String,
    pub objects: usize,
    pub stale: bool,
    pub last_sync: String,
    pub last_contact: String,
    /// Each health with its count, in the order of the bar.
    pub health: Vec<Segment>,
    /// `12 Current, 1 Failed`: the bar's words.
    pub health_text: String,
    pub unhealthy: usize,
}

/// One health's share of a cluster's bar, in percent of its width.
pub struct Segment {
    pub status: &'static str,
    pub class: &'static str,
    pub count: usize,
    pub x: String,
    pub width: String,
}

pub struct KindRow {
    pub kind: String,
    pub count: usize,
}

pub struct Fleet {
    pub clusters: Vec<ClusterRow>,
    /// The first unhealthy objects, failures first.
    pub failing: Vec<HitView>,
    pub kinds: Vec<KindRow>,
    pub objects: usize,
    pub unhealthy: usize,
    pub stale: usize,
    pub stale_after: String,
}

/// The bar's order: what needs a look first.
const BAR_ORDER: [HealthStatus; 5] = [
    HealthStatus::Failed,
    HealthStatus::InProgress,
    HealthStatus::Terminating,
    HealthStatus::Unknown,
    HealthStatus::Current,
];

fn segments(health: &std::collections::BTreeMap<String, usize>) -> Vec<Segment> {
    let total: usize = health.values().sum();
    let mut x = 0.0_f64;
    BAR_ORDER
        .iter()
        .filter_map(|s| {
            let count = *health.get(s.as_str())?;
            if count == 0 || total == 0 {
                return None;
            }
            let width = 100.0 * count as f64 / total as f64;
            let seg = Segment {
                status: s.as_str(),
                class: class_of(*s),
                count,
                x: format!("{x:.3}%"),
                width: format!("{width:.3}%"),
            };
            x += width;
            Some(seg)
        })
        .collect()
}

pub fn rows(clusters: ClustersResponse) -> Vec<ClusterRow> {
    clusters
        .clusters
        .into_iter()
        .map(|c| {
            let health = segments(&c.health);
            let health_text = if health.is_empty() {
                "no health recorded".to_string()
            } else {
                health
                    .iter()
                    .map(|s| format!("{} {}", s.count, s.status))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let unhealthy = HealthFilter::Unhealthy
                .statuses()
                .iter()
                .map(|s| c.health.get(s.as_str()).copied().unwrap_or(0))
                .sum();
            ClusterRow {
                id: c.id.to_string(),
                objects: c.objects,
                stale: c.stale,
                last_sync: c.last_sync_age_secs.map(age_text).unwrap_or("never".into()),
                last_contact: c
                    .last_contact_age_secs
                    .map(age_text)
                    .unwrap_or("never".into()),
                health,
                health_text,
                unhealthy,
            }
        })
        .collect()
}

/// What the caller may see of the fleet.
pub async fn fleet(web: &Web, caller: &Caller) -> Result<Fleet, PageError> {
    let searcher = web.state.searcher_of(caller).await;
    let unhealthy_kinds = CountBody {
        request: SearchRequest {
            health: Some(HealthFilter::Unhealthy),
            ..Default::default()
        },
        group_by: Some(GroupBy::Kind),
    };
    let unhealthy_listing = SearchRequest {
        health: Some(HealthFilter::Unhealthy),
        mode: SearchMode::Keyword,
        limit: Some(UNHEALTHY_LISTED),
        ..Default::default()
    };
    let (clusters, counted, listed) = tokio::join!(
        searcher.clusters(web.state.stale_after()),
        searcher.count(&unhealthy_kinds),
        searcher.search(&unhealthy_listing)
    );
    let clusters = clusters?;
    let counted = counted?;
    let mut listed = listed?;
    // Failures first: what is broken before what is on its way.
    listed.sort_by_key(|h| h.health.as_ref().map(|h| h.status != HealthStatus::Failed));
    let failing = listed
        .iter()
        .map(|h| HitView::of(h, "unhealthy".into()))
        .collect();
    let stale_after = clusters
        .stale_after_secs
        .map(|s| format!("{s} s"))
        .unwrap_or_else(|| "the server's threshold".into());
    let clusters = rows(clusters);
    Ok(Fleet {
        failing,
        objects: clusters.iter().map(|c| c.objects).sum(),
        unhealthy: counted.total,
        stale: clusters.iter().filter(|c| c.stale).count(),
        clusters,
        kinds: counted
            .groups
            .into_iter()
            .filter(|g| g.count > 0)
            .take(TOP_KINDS)
            .map(|g| KindRow {
                kind: g.key,
                count: g.count,
            })
            .collect(),
        stale_after,
    })
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    chrome: Chrome,
    fleet: Fleet,
}

#[derive(Template)]
#[template(path = "fleet.html")]
struct FleetFragment {
    chrome: Chrome,
    fleet: Fleet,
}

/// `GET /`: the overview.
pub async fn page(State(web): State<Web>, caller: Caller) -> Response {
    let chrome = Chrome::new(web.state.authenticator().required(), SearchForm::default());
    match fleet(&web, &caller).await {
        Ok(fleet) => render(StatusCode::OK, &OverviewPage { chrome, fleet }),
        Err(e) => e.page(chrome),
    }
}

/// `GET /ui/overview`: the overview's clusters and kinds alone, for its script.
pub async fn fragment(State(web): State<Web>, caller: Caller) -> Response {
    let chrome = Chrome::new(web.state.authenticator().required(), SearchForm::default());
    match fleet(&web, &caller).await {
        Ok(fleet) => render(StatusCode::OK, &FleetFragment { chrome, fleet }),
        Err(e) => e.page(chrome),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_puts_failures_first_and_fills_its_width() {
        let health = [("Current".to_string(), 3), ("Failed".to_string(), 1)].into();
        let s = segments(&health);
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].status, s[0].x.as_str(), s[0].width.as_str()),
            ("Failed", "0.000%", "25.000%")
        );
        assert_eq!(
            (s[1].status, s[1].x.as_str(), s[1].width.as_str()),
            ("Current", "25.000%", "75.000%")
        );
    }
}
