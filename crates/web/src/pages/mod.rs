//! The pages: each a handler that reads through the caller's scoped searcher and a template
//! of its own (`templates/`), beside what they share: the frame of every page ([`Chrome`]:
//! assets, the search box with its filters, sign-out), how a hit is shown ([`HitView`]) and
//! how a refusal becomes an error page ([`PageError`]).

pub mod object;
pub mod overview;
pub mod search;

use askama::Template;
use axum::http::header::{self, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ingest::search::SearchError;
use serde::Deserialize;
use sync_model::search::SearchHit;
use sync_model::{Health, HealthStatus};

use crate::assets::{SCRIPT, STYLE};
use crate::paths;

/// The search box and its filters, as the URL holds them (`/search?q=...&health=...`).
/// Empty fields are no filter.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SearchForm {
    pub q: String,
    pub cluster: String,
    pub kind: String,
    pub namespace: String,
    /// A word of `sync_model::health::HEALTH_WORDS` (`unhealthy`, `failed`, ...).
    pub health: String,
    /// `ask`: the types that answer the question, then their instances.
    pub mode: String,
}

impl SearchForm {
    pub fn asks(&self) -> bool {
        self.mode == "ask"
    }

    pub fn is_empty(&self) -> bool {
        [
            &self.q,
            &self.cluster,
            &self.kind,
            &self.namespace,
            &self.health,
        ]
        .iter()
        .all(|v| v.trim().is_empty())
    }
}

/// The health words the form offers, as the CLI's `--health` takes them.
pub const HEALTH_CHOICES: [(&str, &str); 7] = [
    ("", "any health"),
    ("unhealthy", "unhealthy (failed or progressing)"),
    ("healthy", "healthy"),
    ("failing", "failing"),
    ("progressing", "progressing"),
    ("terminating", "terminating"),
    ("unknown", "unknown"),
];

/// What every page shows around its content.
pub struct Chrome {
    pub css: &'static str,
    pub js: &'static str,
    /// The server asks for a sign-in: the page offers sign-out.
    pub session: bool,
    pub form: SearchForm,
    pub health_choices: &'static [(&'static str, &'static str)],
    pub paths: Paths,
}

/// The paths the templates link to.
pub struct Paths {
    pub overview: &'static str,
    pub search: &'static str,
    pub object: &'static str,
    pub sign_in: &'static str,
    pub sign_out: &'static str,
    pub fragment: &'static str,
}

const PATHS: Paths = Paths {
    overview: paths::OVERVIEW,
    search: paths::SEARCH,
    object: paths::OBJECT,
    sign_in: paths::SIGN_IN,
    sign_out: paths::SIGN_OUT,
    fragment: paths::OVERVIEW_FRAGMENT,
};

impl Chrome {
    pub fn new(session: bool, form: SearchForm) -> Chrome {
        Chrome {
            css: &STYLE.path,
            js: &SCRIPT.path,
            session,
            form,
            health_choices: &HEALTH_CHOICES,
            paths: PATHS,
        }
    }

    /// The sign-in page's: no search box.
    pub fn signed_out() -> Chrome {
        Chrome::new(false, SearchForm::default())
    }
}

/// `template` as HTML with `status`; never kept by a cache (it holds what one caller may see).
pub fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => {
            let mut res = (status, html).into_response();
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "a page could not be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// Why a page cannot show what was asked: the status the API would answer, and its message.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
}

impl PageError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        PageError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl From<SearchError> for PageError {
    fn from(e: SearchError) -> Self {
        let message = e.to_string();
        // The status is the API's for the same error (chosen in one place, ingest's edge).
        let status = ingest::server::ApiError::from(e).into_response().status();
        PageError { status, message }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    chrome: Chrome,
    status: u16,
    message: &'a str,
}

impl PageError {
    pub fn page(&self, chrome: Chrome) -> Response {
        render(
            self.status,
            &ErrorPage {
                chrome,
                status: self.status.as_u16(),
                message: &self.message,
            },
        )
    }
}

/// A health as a badge: its word, a class for its colour, and its reason.
pub struct HealthView {
    pub status: &'static str,
    pub class: &'static str,
    pub reason: String,
}

impl HealthView {
    pub fn of(health: &Health) -> HealthView {
        HealthView {
            status: health.status.as_str(),
            class: class_of(health.status),
            reason: health.reason.clone(),
        }
    }
}

/// The CSS class of a health status.
pub fn class_of(status: HealthStatus) -> &'static str {
    match status {
        HealthStatus::Current => "h-current",
        HealthStatus::InProgress => "h-progress",
        HealthStatus::Failed => "h-failed",
        HealthStatus::Terminating => "h-terminating",
        HealthStatus::Unknown => "h-unknown",
    }
}

/// One object in a list: what identifies it, its health and labels, why it answered, and
/// the objects it owns that answered too (folded under it).
pub struct HitView {
    pub id: String,
    pub cluster: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub health: Option<HealthView>,
    pub labels: Vec<(String, String)>,
    pub why: String,
    pub owner: Option<String>,
    pub owns: Vec<String>,
}

impl HitView {
    pub fn of(hit: &SearchHit, why: String) -> HitView {
        HitView {
            id: hit.id.clone(),
            cluster: hit.cluster.clone(),
            kind: hit.kind.clone(),
            namespace: shown_namespace(&hit.namespace).to_string(),
            name: hit.name.clone(),
            health: hit.health.as_ref().map(HealthView::of),
            labels: hit
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            why,
            owner: hit.owner.as_ref().map(|o| format!("{} {}", o.kind, o.name)),
            owns: vec![],
        }
    }
}

/// The namespace as people read it: blank for cluster-scoped objects.
pub fn shown_namespace(namespace: &str) -> &str {
    if namespace == sync_model::CLUSTER_SCOPE {
        ""
    } else {
        namespace
    }
}

/// `Pod db-0 [Failed: CrashLoopBackOff]`: an owned object folded under its owner.
pub fn folded_line(hit: &SearchHit) -> String {
    match &hit.health {
        Some(h) => format!("{} {} [{h}]", hit.kind, hit.name),
        None => format!("{} {}", hit.kind, hit.name),
    }
}

impl Chrome {
    /// Whether the health select shows `word`.
    pub fn health_selected(&self, word: &str) -> bool {
        self.form.health.trim().eq_ignore_ascii_case(word)
    }
}
