//! Who is asking, over the real router on a free port (embedded store, in-process stand-in
//! vectors): an OIDC ID token (keys from a test issuer's discovery document), a cluster's
//! ServiceAccount token and a tokens-file user are each a user, named as Kubernetes would
//! name them; expired, wrong-audience, wrongly signed and unknown tokens are 401 with the
//! reason and never the token; users write nothing and read what the RBAC rules name them in;
//! operators read as before.

#[allow(dead_code)]
#[path = "../src/access/identity/test_keys.rs"]
mod test_keys;

use std::sync::Arc;

use async_trait::async_trait;
use ingest::access::identity::{IdentityConfig, OidcConfig, OidcVerifier};
use ingest::embed::{EmbedError, Embedder, InputType, ModelInfo};
use ingest::pipeline::Pipeline;
use ingest::server::{self, AppState, ServerConfig};
use ingest::store::embedded::EmbeddedStore;
use serde_json::{json, Value};
use sync_model::rbac::ServiceAccountIssuer;
use sync_model::ClusterId;
use test_keys::{now, TestKey};

const DIMENSION: usize = 16;
const OPERATOR: &str = "ops-token";
const ALICE: &str = "alice-token";
const CLIENT_ID: &str = "cw-web";
const KIND: &str = "https://kubernetes.default.svc.cluster.local";

struct StandIn;

#[async_trait]
impl Embedder for StandIn {
    async fn model_info(&self) -> Result<ModelInfo, EmbedError> {
        Ok(ModelInfo {
            id: "standin:test".into(),
            dimension: DIMENSION,
        })
    }
    async fn embed(&self, texts: &[String], _: InputType) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts
            .iter()
            .map(|t| testkit::embed_text(t, DIMENSION))
            .collect())
    }
}

/// A test OIDC issuer on a free port: its discovery document and its keys.
async fn identity_provider(key: &TestKey) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let discovery = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/keys")});
    let jwks = key.jwks();
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || async move { axum::Json(discovery) }),
        )
        .route(
            "/keys",
            axum::routing::get(move || async move { axum::Json(jwks) }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    issuer
}

struct Server {
    url: String,
    http: reqwest::Client,
    issuer: String,
    idp: TestKey,
    cluster_a: TestKey,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::write(
            &tokens,
            format!("{OPERATOR} *\n{ALICE} user=alice groups=dev,qa\n"),
        )
        .unwrap();
        let idp = TestKey::rsa("idp-1");
        let issuer = identity_provider(&idp).await;
        let mut oidc = OidcConfig::new(issuer.clone(), CLIENT_ID);
        oidc.groups_claim = Some("groups".into());
        oidc.signing_algs = vec![
            jsonwebtoken::Algorithm::RS256,
            jsonwebtoken::Algorithm::ES256,
        ];
        let oidc = OidcVerifier::new(oidc).unwrap();
        assert_eq!(oidc.refresh().await.unwrap(), 1, "keys from discovery");
        let store = EmbeddedStore::open_in_dir(dir.path()).unwrap();
        let pipeline = Pipeline::new(Arc::new(store), Arc::new(StandIn), "instances");
        let state = AppState::new(
            pipeline,
            ServerConfig {
                tokens_file: Some(Arc::new(
                    server::credentials::TokensFile::open(&tokens).unwrap(),
                )),
                identity: IdentityConfig {
                    oidc: Some(Arc::new(oidc)),
                    ..IdentityConfig::default()
                },
                ..ServerConfig::default()
            },
        );
        // Two kind clusters: one issuer string, their own keys.
        let cluster_a = TestKey::ec("sa");
        let cluster_b = TestKey::ec("sa");
        for (id, key) in [("kind-a", &cluster_a), ("kind-b", &cluster_b)] {
            state.service_accounts().set(
                ClusterId::new(id).unwrap(),
                Some(ServiceAccountIssuer {
                    issuer: KIND.into(),
                    jwks: key.jwks(),
                }),
            );
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = server::router(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Server {
            url,
            http: reqwest::Client::new(),
            issuer,
            idp,
            cluster_a,
            _dir: dir,
        }
    }

    fn id_token(&self, changes: Value) -> String {
        let mut claims = json!({
            "iss": self.issuer, "aud": CLIENT_ID, "sub": "alice-42",
            "groups": ["dev"], "exp": now() + 300,
        });
        for (k, v) in changes.as_object().unwrap() {
            claims[k] = v.clone();
        }
        self.idp.sign(&claims)
    }

    fn sa_token(&self, key: &TestKey, changes: Value) -> String {
        let mut claims = json!({
            "iss": KIND, "aud": ["cw"], "exp": now() + 300,
            "sub": "system:serviceaccount:team-a:reader",
        });
        for (k, v) in changes.as_object().unwrap() {
            claims[k] = v.clone();
        }
        key.sign(&claims)
    }

    /// Status, `WWW-Authenticate` and JSON body of a request with `token`.
    async fn send(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Option<String>, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string());
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, challenge, body)
    }

    /// [`send`](Self::send) of `POST path` with `body`.
    async fn post(&self, token: &str, path: &str, body: Value) -> (u16, Option<String>, Value) {
        self.send(token, reqwest::Method::POST, path, Some(body))
            .await
    }

    async fn search(&self, token: &str) -> (u16, Option<String>, Value) {
        self.post(token, "/api/v1/search", json!({"query": "web"}))
            .await
    }
}

fn error_text(body: &Value) -> String {
    body.to_string()
}

#[tokio::test]
async fn oidc_service_account_and_tokens_file_users_are_recognised_by_name() {
    let s = Server::start().await;
    // Cluster kind-a holds one Service; its RBAC lets each of the three users, named as
    // Kubernetes would name them, list Services there.
    let service = json!({
        "id": "web/v1/Service/shop", "namespace": "web", "name": "shop", "kind": "Service",
        "apiVersion": "v1", "apiGroup": "", "labels": {"app": "shop"}, "annotations": {},
        "createdAt": "2026-02-20T10:00:00Z",
    });
    let (status, _, body) = s
        .post(
            OPERATOR,
            "/api/v1/instances/sync",
            json!({"cluster": "kind-a", "upserts": [service], "deletes": []}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let rules = json!({
        "cluster": "kind-a",
        "clusterRoles": [{"name": "svc", "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["services"]}]}],
        "clusterRoleBindings": [{"name": "readers", "roleRef": {"kind": "ClusterRole", "name": "svc"},
            "subjects": [
                {"kind": "User", "name": format!("{}#alice-42", s.issuer)},
                {"kind": "ServiceAccount", "name": "reader", "namespace": "team-a"},
                {"kind": "User", "name": "alice"},
            ]}],
        "types": [{"group": "", "plural": "services", "kind": "Service", "namespaced": true}],
        "issuer": {"issuer": KIND, "jwks": s.cluster_a.jwks()},
    });
    let (status, _, body) = s.post(OPERATOR, "/api/v1/access/sync", rules).await;
    assert_eq!(status, 200, "{body}");
    let cases = [
        (s.id_token(json!({})), format!("{}#alice-42", s.issuer)),
        (
            s.sa_token(&s.cluster_a, json!({})),
            "system:serviceaccount:team-a:reader".to_string(),
        ),
        (ALICE.to_string(), "alice".to_string()),
    ];
    for (token, user) in cases {
        let (status, _, body) = s.search(&token).await;
        assert_eq!(status, 200, "{user}: {body}");
        let hits = body["results"].as_array().cloned().unwrap_or_default();
        assert_eq!(
            hits.len(),
            1,
            "{user} is the name the binding names: {body}"
        );
        assert_eq!(hits[0]["name"], "shop", "{body}");
    }
    // Someone the rules name nowhere: known (not 401), and told they may read nothing
    // (403 naming them), never an empty answer that reads as "none".
    let (status, _, body) = s.search(&s.id_token(json!({"sub": "mallory"}))).await;
    assert_eq!(status, 403, "{body}");
    let text = error_text(&body);
    assert!(
        text.contains("may read nothing") && text.contains("mallory"),
        "{text}"
    );
    // Operators read as before.
    let (status, _, body) = s.search(OPERATOR).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = s
        .send(OPERATOR, reqwest::Method::GET, "/api/v1/clusters", None)
        .await;
    assert_eq!(status, 200, "{body}");
    // Every decision is counted.
    let metrics = reqwest::get(format!("{}/metrics", s.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"cw_auth_decisions_total{method="oidc",outcome="accepted"} 2"#,
        r#"cw_auth_decisions_total{method="service-account",outcome="accepted"} 1"#,
        r#"cw_auth_decisions_total{method="tokens_file",outcome="accepted"} 1"#,
        r#"cw_read_scopes_total{decision="scoped"} 3"#,
        r#"cw_read_scopes_total{decision="nothing"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

#[tokio::test]
async fn expired_wrong_audience_wrongly_signed_and_unknown_tokens_are_401_and_say_why() {
    let s = Server::start().await;
    let forged_idp = TestKey::ec("idp-1");
    let cases = [
        (s.id_token(json!({"exp": now() - 3600})), "expired"),
        (s.id_token(json!({"aud": "someone-else"})), "audience"),
        (
            forged_idp
                .sign(&json!({"iss": s.issuer, "aud": CLIENT_ID, "sub": "x", "exp": now() + 60})),
            "signature",
        ),
        (
            s.sa_token(
                &s.cluster_a,
                json!({"aud": "https://kubernetes.default.svc"}),
            ),
            "audience",
        ),
        (
            s.sa_token(&s.cluster_a, json!({"exp": now() - 3600})),
            "expired",
        ),
        (s.sa_token(&TestKey::ec("sa"), json!({})), "signature"),
        (
            s.sa_token(&s.cluster_a, json!({"iss": "https://elsewhere"})),
            "issuer",
        ),
        ("not-a-known-token".to_string(), "unknown token"),
    ];
    for (token, why) in cases {
        let (status, challenge, body) = s.search(&token).await;
        assert_eq!(status, 401, "{why}: {body}");
        assert_eq!(challenge.as_deref(), Some("Bearer"), "{why}");
        let text = error_text(&body);
        assert!(text.contains(why), "{why}: {text}");
        assert!(
            body["details"].as_array().is_some_and(|d| !d.is_empty()),
            "{body}"
        );
        assert!(!text.contains(&token), "the token is never echoed: {text}");
    }
}

#[tokio::test]
async fn users_write_nothing_and_read_no_hashes() {
    let s = Server::start().await;
    let users = [
        s.id_token(json!({})),
        s.sa_token(&s.cluster_a, json!({})),
        ALICE.to_string(),
    ];
    for token in &users {
        let sync = json!({"cluster": "kind-a", "upserts": []});
        let (status, _, body) = s.post(token, "/api/v1/instances/sync", sync).await;
        assert_eq!(status, 403, "{body}");
        assert!(error_text(&body).contains("may not write"), "{body}");
        for path in [
            "/api/v1/instances/hashes?cluster=kind-a",
            "/api/v1/capabilities/hashes?cluster=kind-a",
            "/api/v1/instances/parked",
        ] {
            let (status, _, body) = s.send(token, reqwest::Method::GET, path, None).await;
            assert_eq!(status, 403, "{path}: {body}");
        }
        let (status, _, body) = s
            .send(
                token,
                reqwest::Method::DELETE,
                "/api/v1/clusters/kind-a",
                None,
            )
            .await;
        assert_eq!(status, 403, "{body}");
    }
    // The operator may.
    let sync = json!({"cluster": "kind-a", "upserts": []});
    let (status, _, body) = s.post(OPERATOR, "/api/v1/instances/sync", sync).await;
    assert_eq!(status, 200, "{body}");
}
