//! The pages as a browser meets them, in process: a server with the shared token and a
//! user's token (a tokens file) over an embedded store holding a small cluster, with
//! alice's RBAC granting one namespace. Signed out, every page sends to the sign-in; a
//! wrong token gets the form again (401) and no cookie; a right one gets an HttpOnly,
//! SameSite=Strict cookie that the pages take and the JSON API does not; cluster text is
//! escaped; every answer carries the CSP; alice sees only what RBAC grants her.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use ingest::embed::{EmbedError, Embedder, InputType, ModelInfo};
use ingest::pipeline::Pipeline;
use ingest::server::credentials::TokensFile;
use ingest::server::{AppState, ServerConfig};
use ingest::store::embedded::EmbeddedStore;
use serde_json::json;
use sync_model::rbac::AccessSnapshot;
use sync_model::{ClusterId, SyncPayload};
use tower::ServiceExt;
use web::{Web, CONTENT_SECURITY_POLICY, SESSION_COOKIE};

const OPS: &str = "ops-token";
const ALICE: &str = "alice-token";
const DIM: usize = 16;
const MARKUP: &str = "<script>window.pwned=1</script><b>bold</b>";

/// A query "embedding" from the text's bytes: deterministic, no model.
struct HashEmbedder;

#[async_trait]
impl Embedder for HashEmbedder {
    async fn model_info(&self) -> Result<ModelInfo, EmbedError> {
        Ok(ModelInfo {
            id: "test:hash".into(),
            dimension: DIM,
        })
    }
    async fn embed(&self, texts: &[String], _: InputType) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0.1f32; DIM];
                for (i, b) in t.bytes().enumerate() {
                    v[i % DIM] += b as f32 / 255.0;
                }
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter().map(|x| x / n).collect()
            })
            .collect())
    }
}

struct Server {
    app: Router,
    _data: tempfile::TempDir,
}

fn object(ns: &str, kind: &str, name: &str, description: &str, failed: bool) -> serde_json::Value {
    let api_version = if kind == "Pod" { "v1" } else { "apps/v1" };
    let mut o = json!({
        "id": format!("{ns}/{api_version}/{kind}/{name}"),
        "namespace": ns, "name": name, "kind": kind,
        "apiVersion": api_version, "apiGroup": if kind == "Pod" { "" } else { "apps" },
        "labels": {"app": name},
        "annotations": {"description": description},
        "createdAt": "2026-02-20T10:00:00Z",
    });
    if failed {
        o["health"] = json!({"status": "Failed", "reason": "0/1 replicas ready"});
    } else {
        o["health"] = json!({"status": "Current"});
    }
    o
}

async fn server() -> Server {
    let data = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(EmbeddedStore::open_in_dir(data.path()).expect("store"));
    let tokens = data.path().join("tokens");
    std::fs::write(&tokens, format!("{ALICE} user=alice\n")).expect("tokens file");
    let pipeline = Pipeline::new(store, Arc::new(HashEmbedder), "instances");
    let state = AppState::new(
        pipeline,
        ServerConfig {
            auth_token: Some(OPS.into()),
            tokens_file: Some(Arc::new(TokensFile::open(&tokens).expect("tokens"))),
            ..Default::default()
        },
    );
    let payload: SyncPayload = serde_json::from_value(json!({
        "cluster": "demo",
        "upserts": [
            object("shop", "Deployment", "storefront", MARKUP, false),
            object("shop", "Deployment", "checkout", "checkout API", true),
            object("pay", "Deployment", "ledger", "the ledger", true),
        ],
        "deletes": [],
    }))
    .expect("payload");
    state.pipeline().apply_sync(payload).await.expect("sync");
    let rules: AccessSnapshot = serde_json::from_value(json!({
        "cluster": "demo",
        "roles": [{"namespace": "shop", "name": "viewer",
                   "rules": [{"verbs": ["get", "list"], "apiGroups": ["apps"], "resources": ["deployments"]}]}],
        "roleBindings": [{"namespace": "shop", "name": "alice",
                          "roleRef": {"kind": "Role", "name": "viewer", "apiGroup": "rbac.authorization.k8s.io"},
                          "subjects": [{"kind": "User", "name": "alice"}]}],
        "types": [{"group": "apps", "plural": "deployments", "kind": "Deployment", "namespaced": true}],
    }))
    .expect("rules");
    state
        .access_rules()
        .apply(&ClusterId::new("demo").expect("id"), &rules)
        .await
        .expect("rules stored");
    let app = ingest::server::router(state.clone()).merge(web::router(Web { state, live: None }));
    Server { app, _data: data }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn send(app: &Router, req: Request<Body>) -> Answer {
    let res = app.clone().oneshot(req).await.expect("answer");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), 4 << 20)
        .await
        .expect("body");
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get(app: &Router, path: &str, cookie: Option<&str>) -> Answer {
    let mut req = Request::get(path);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    send(app, req.body(Body::empty()).expect("request")).await
}

async fn sign_in(app: &Router, token: &str) -> Answer {
    let body = format!("token={}", token.replace(' ', "+"));
    send(
        app,
        Request::post(web::SIGN_IN)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("request"),
    )
    .await
}

/// The `name=value` of the session cookie a sign-in set.
async fn session_of(app: &Router, token: &str) -> String {
    let signed = sign_in(app, token).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    let set = signed.headers[header::SET_COOKIE].to_str().expect("ascii");
    set.split(';').next().expect("pair").to_string()
}

#[tokio::test]
async fn signed_out_every_page_sends_to_the_sign_in_and_shows_nothing() {
    let s = server().await;
    for path in [
        "/",
        "/ui/overview",
        "/search?q=ledger",
        "/object?cluster=demo&id=pay/apps/v1/Deployment/ledger",
    ] {
        let a = get(&s.app, path, None).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(a.headers[header::LOCATION], web::SIGN_IN, "{path}");
        assert!(!a.body.contains("ledger"), "{path}: {}", a.body);
    }
    // A cookie the authenticator refuses is no session either, and is cleared.
    let a = get(&s.app, "/", Some(&format!("{SESSION_COOKIE}=d3Jvbmc"))).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(a.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let form = get(&s.app, web::SIGN_IN, None).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(
        form.body.contains(r#"<label for="token">"#),
        "{}",
        form.body
    );
}

#[tokio::test]
async fn a_wrong_token_gets_the_form_again_with_why_and_no_cookie() {
    let s = server().await;
    let a = sign_in(&s.app, "not-a-token").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.headers.get(header::SET_COOKIE).is_none());
    assert!(a.body.contains("unknown token"), "{}", a.body);
    assert!(a.body.contains(r#"name="token""#));
    assert!(
        !a.body.contains("not-a-token"),
        "the token is never repeated"
    );
}

#[tokio::test]
async fn a_right_token_is_kept_in_a_strict_http_only_cookie_that_opens_the_pages() {
    let s = server().await;
    let signed = sign_in(&s.app, OPS).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER);
    assert_eq!(signed.headers[header::LOCATION], web::OVERVIEW);
    let set = signed.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(set.starts_with("cw_session="), "{set}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(flag), "{flag} in {set}");
    }
    let cookie = session_of(&s.app, OPS).await;
    let overview = get(&s.app, "/", Some(&cookie)).await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
    assert!(overview.body.contains("demo"), "{}", overview.body);
    assert!(overview.body.contains("3 objects"), "{}", overview.body);
    assert!(overview.body.contains("2 unhealthy"), "{}", overview.body);
    // Sign-out clears it.
    let out = send(
        &s.app,
        Request::post(web::SIGN_OUT)
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
}

#[tokio::test]
async fn the_json_api_never_takes_the_session_cookie() {
    let s = server().await;
    let cookie = session_of(&s.app, OPS).await;
    let a = send(
        &s.app,
        Request::post("/api/v1/search")
            .header(header::COOKIE, &cookie)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"query":"","mode":"keyword"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    let clusters = get(&s.app, "/api/v1/clusters", Some(&cookie)).await;
    assert_eq!(clusters.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn every_answer_carries_the_content_security_policy_and_no_sniffing() {
    let s = server().await;
    let cookie = session_of(&s.app, OPS).await;
    let form = get(&s.app, web::SIGN_IN, None).await;
    let css = form
        .body
        .split(r#"<link rel="stylesheet" href=""#)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("stylesheet link")
        .to_string();
    for (path, cookie) in [
        (web::SIGN_IN, None),
        ("/", None),
        ("/", Some(cookie.as_str())),
        ("/search?q=storefront", Some(cookie.as_str())),
        (css.as_str(), None),
    ] {
        let a = get(&s.app, path, cookie).await;
        assert_eq!(
            a.headers[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY,
            "{path}"
        );
        assert_eq!(
            a.headers[header::X_CONTENT_TYPE_OPTIONS],
            "nosniff",
            "{path}"
        );
        assert_eq!(a.headers[header::REFERRER_POLICY], "no-referrer", "{path}");
    }
    assert!(CONTENT_SECURITY_POLICY.contains("script-src 'self'"));
    assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
    let asset = get(&s.app, &css, None).await;
    assert_eq!(asset.status, StatusCode::OK);
    assert!(asset.headers[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let page = get(&s.app, "/", Some(&cookie)).await;
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
    assert!(
        !page.body.contains("style=\""),
        "no inline style attributes"
    );
    assert!(!page.body.contains("<script>"), "no inline script");
}

#[tokio::test]
async fn cluster_text_is_shown_as_text_never_as_markup() {
    let s = server().await;
    let cookie = session_of(&s.app, OPS).await;
    let page = get(
        &s.app,
        "/object?cluster=demo&id=shop%2Fapps%2Fv1%2FDeployment%2Fstorefront",
        Some(&cookie),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    // Escaped as entities (askama writes `&#60;`; `&lt;` would do as well).
    let shown = page.body.replace("&#60;", "<").replace("&#62;", ">");
    let shown = shown.replace("&lt;", "<").replace("&gt;", ">");
    assert!(shown.contains(MARKUP), "{}", page.body);
    assert!(!page.body.contains("<script>window"), "{}", page.body);
    assert!(!page.body.contains("<b>bold"), "{}", page.body);
}

#[tokio::test]
async fn the_object_page_shows_the_health_reason_and_labels() {
    let s = server().await;
    let cookie = session_of(&s.app, OPS).await;
    let page = get(
        &s.app,
        "/object?cluster=demo&id=pay%2Fapps%2Fv1%2FDeployment%2Fledger",
        Some(&cookie),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Failed"), "{}", page.body);
    assert!(page.body.contains("0/1 replicas ready"), "{}", page.body);
    assert!(page.body.contains("app=ledger"), "{}", page.body);
    let missing = get(
        &s.app,
        "/object?cluster=demo&id=pay%2Fapps%2Fv1%2FDeployment%2Fnope",
        Some(&cookie),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_health_filter_lists_only_objects_of_that_health() {
    let s = server().await;
    let cookie = session_of(&s.app, OPS).await;
    let page = get(&s.app, "/search?health=failing", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("ledger") && page.body.contains("checkout"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("Deployment</span> storefront"),
        "{}",
        page.body
    );
    let wrong = get(&s.app, "/search?q=x&health=sick", Some(&cookie)).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(
        wrong.body.contains("unhealthy"),
        "names the words: {}",
        wrong.body
    );
}

#[tokio::test]
async fn a_user_sees_only_what_their_rbac_grants() {
    let s = server().await;
    let cookie = session_of(&s.app, ALICE).await;
    let listing = get(&s.app, "/search?cluster=demo", Some(&cookie)).await;
    assert_eq!(listing.status, StatusCode::OK, "{}", listing.body);
    assert!(listing.body.contains("storefront"), "{}", listing.body);
    assert!(listing.body.contains("checkout"), "{}", listing.body);
    assert!(
        !listing.body.contains("ledger"),
        "pay is not granted: {}",
        listing.body
    );
    let overview = get(&s.app, "/", Some(&cookie)).await;
    assert!(overview.body.contains("2 objects"), "{}", overview.body);
    assert!(overview.body.contains("1 unhealthy"), "{}", overview.body);
    let hidden = get(
        &s.app,
        "/object?cluster=demo&id=pay%2Fapps%2Fv1%2FDeployment%2Fledger",
        Some(&cookie),
    )
    .await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND, "{}", hidden.body);
    assert!(!hidden.body.contains("the ledger"));
}

#[tokio::test]
async fn a_sign_in_posted_from_another_site_sets_no_cookie() {
    let s = server().await;
    let a = send(
        &s.app,
        Request::post(web::SIGN_IN)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "cross-site")
            .body(Body::from(format!("token={OPS}")))
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(a.headers.get(header::SET_COOKIE).is_none());
}
