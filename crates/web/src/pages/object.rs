//! One object's page: what the index holds of it (text, labels, health with its reason,
//! images, owner, and the objects it owns), as MCP's `get_resource` summarises an indexed
//! object ([`mcp::from_index`]); and, where the server has a connection to its cluster, its
//! live details as `get_resource` reads them ([`mcp::CwMcp::resource`]), acting as the
//! caller where the caller is a user.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use ingest::access::identity::Caller;
use ingest::search::Searcher;
use mcp::{GetResourceParams, ResourceDetails, Source};
use serde::Deserialize;
use sync_model::search::{SearchHit, SearchMode, SearchRequest};
use sync_model::ResourceId;

use super::{folded_line, render, Chrome, HealthView, PageError, SearchForm};
use crate::state::Web;

/// Index hits read to find the object by its name.
const LOOKUP_HITS: usize = 50;
/// Objects of its namespace read to find what it owns.
const OWNED_SCAN: usize = 500;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ObjectQuery {
    pub cluster: String,
    pub id: String,
}

pub struct ObjectView {
    pub indexed: ResourceDetails,
    pub health: Option<HealthView>,
    pub owned: Vec<(String, String)>,
    pub live: Option<ResourceDetails>,
    /// Why there are no live details, when there are none.
    pub live_note: Option<String>,
}

#[derive(Template)]
#[template(path = "object.html")]
struct ObjectPage {
    chrome: Chrome,
    o: ObjectView,
}

/// The object `q` names, as the caller may see it in the index.
async fn find(searcher: &Searcher, q: &ObjectQuery) -> Result<SearchHit, PageError> {
    let id = ResourceId::from_raw(q.id.trim().to_string());
    let parts = id.parts().map_err(|e| {
        PageError::bad_request(format!(
            "id is not an index id ({e}): follow a search hit's link"
        ))
    })?;
    let cluster = Some(q.cluster.trim().to_string()).filter(|c| !c.is_empty());
    let hits = searcher
        .search(&SearchRequest {
            query: parts.name.to_string(),
            kind: Some(parts.kind.to_string()),
            namespace: Some(parts.namespace.to_string()),
            cluster: cluster.clone(),
            mode: SearchMode::Keyword,
            limit: Some(LOOKUP_HITS),
            ..Default::default()
        })
        .await?;
    hits.into_iter()
        .find(|h| h.id == id.as_str() && cluster.as_ref().is_none_or(|c| &h.cluster == c))
        .ok_or_else(|| PageError {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "the index holds no {} {} in cluster {} that you may see: it may have been \
                 deleted since (search again)",
                parts.kind,
                parts.name,
                cluster.as_deref().unwrap_or("(any)")
            ),
        })
}

/// The objects of `hit`'s namespace whose controlling owner it is.
async fn owned(searcher: &Searcher, hit: &SearchHit) -> Vec<(String, String)> {
    if hit.namespace == sync_model::CLUSTER_SCOPE {
        return vec![];
    }
    let listed = searcher
        .search(&SearchRequest {
            cluster: Some(hit.cluster.clone()).filter(|c| !c.is_empty()),
            namespace: Some(hit.namespace.clone()),
            mode: SearchMode::Keyword,
            limit: Some(OWNED_SCAN),
            ..Default::default()
        })
        .await
        .unwrap_or_default();
    listed
        .iter()
        .filter(|h| {
            h.owner
                .as_ref()
                .is_some_and(|o| o.kind == hit.kind && o.name == hit.name)
        })
        .map(|h| (h.id.clone(), folded_line(h)))
        .collect()
}

/// The live details, where the caller reads `cluster` live through this server.
async fn live(
    web: &Web,
    caller: &Caller,
    hit: &SearchHit,
) -> (Option<ResourceDetails>, Option<String>) {
    let Some(live) = &web.live else {
        return (None, Some("this server reads no cluster live".into()));
    };
    let scoped = (live.caller_index)(caller.clone()).await;
    let access = scoped.cluster.unwrap_or_else(|| live.cluster.clone());
    if access.connection(&hit.cluster).is_none() {
        return (
            None,
            Some(format!(
                "this server has no connection to cluster {} that reads it as you",
                hit.cluster
            )),
        );
    }
    let server = mcp::CwMcp::new(scoped.index, access);
    let params = GetResourceParams {
        id: Some(hit.id.clone()),
        cluster: Some(hit.cluster.clone()),
        ..Default::default()
    };
    match server.resource(&params).await {
        Ok(details) if details.source == Source::Live => (Some(details), None),
        Ok(details) => (None, details.notes.first().cloned()),
        Err(e) => (None, Some(e)),
    }
}

/// `GET /object?cluster=...&id=...`.
pub async fn page(
    State(web): State<Web>,
    caller: Caller,
    q: Result<Query<ObjectQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let chrome = Chrome::new(web.state.authenticator().required(), SearchForm::default());
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let searcher = web.state.searcher_of(&caller).await;
    let hit = match find(&searcher, &q).await {
        Ok(hit) => hit,
        Err(e) => return e.page(chrome),
    };
    let (owned, (live, live_note)) =
        tokio::join!(owned(&searcher, &hit), live(&web, &caller, &hit));
    let o = ObjectView {
        indexed: mcp::from_index(&hit),
        health: hit.health.as_ref().map(HealthView::of),
        owned,
        live,
        live_note,
    };
    render(StatusCode::OK, &ObjectPage { chrome, o })
}
