//! Who may do what at the simulator, as at a real API server: ServiceAccount tokens from the
//! TokenRequest API (`kubectl create token`), checked against the issuer's published keys,
//! authorized with the simulator's own RBAC objects; tokens of another simulator, expired or
//! for another audience refused; impersonation (`kubectl --as`) only for who may impersonate.
//! Fails, never skips, when kubectl is missing.
//!
//! kubectl (client-go) sends no bearer token over plain HTTP, which the simulator speaks, so
//! kubectl runs against open simulators (it is the superuser there) and ServiceAccount tokens
//! are presented through kube-rs; impersonation headers kubectl does send.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams};
use kube_sim::{SimConfig, SimHandle, SimServer};
use serde_json::{json, Value};

const ADMIN: &str = "admin-token";

mod kubectl_cluster;
use kubectl_cluster::Cluster;

/// `kubectl create token` for ServiceAccount `reader` of namespace `team`, then `flags`.
fn reader_token<'a>(flags: &[&'a str]) -> Vec<&'a str> {
    [&["create", "token", "reader", "-n", "team"][..], flags].concat()
}

/// kubectl's `args`, run as user `alice` of group `dev`.
fn as_alice_of_dev<'a>(args: &[&'a str]) -> Vec<&'a str> {
    [&["--as", "alice", "--as-group", "dev"][..], args].concat()
}

/// A Role of namespace `team` that reads `resource`, and its RoleBinding to `subject` (a
/// YAML flow mapping).
fn reader_role(role: &str, resource: &str, binding: &str, subject: &str) -> String {
    format!(
        r#"---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: {role}, namespace: team}}
rules:
- {{apiGroups: [""], resources: [{resource}], verbs: [get, list, watch]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {binding}, namespace: team}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {role}}}
subjects:
- {subject}
"#
    )
}

/// A simulator with namespace `team` and ServiceAccount `reader`, who may read pods there (a
/// Role and a RoleBinding), and group `dev`, who may read configmaps there.
async fn seeded(config: SimConfig) -> Cluster {
    let c = Cluster::start(config).await;
    let objects = r#"
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: reader, namespace: team}
---
apiVersion: v1
kind: Pod
metadata: {name: p1, namespace: team}
spec: {containers: [{name: c, image: nginx}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c1, namespace: team}
"#;
    let pods = reader_role(
        "pod-reader",
        "pods",
        "reader-reads-pods",
        "{kind: ServiceAccount, name: reader, namespace: team}",
    );
    let configmaps = reader_role(
        "configmap-reader",
        "configmaps",
        "dev-reads-configmaps",
        "{kind: Group, name: dev, apiGroup: rbac.authorization.k8s.io}",
    );
    c.sim
        .apply_manifests(&format!("{objects}{pods}{configmaps}"))
        .unwrap();
    c
}

fn admin_sim() -> SimConfig {
    SimConfig::default().with_token(ADMIN)
}

/// Without an admin token: kubectl's requests are the superuser's.
fn open_sim() -> SimConfig {
    SimConfig::default()
}

fn http() -> reqwest::Client {
    // reqwest is built without a crypto provider; install ring once (as the cw binary does).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn get_json(sim: &SimHandle, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut r = http().get(format!("{}{path}", sim.url()));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

/// The HTTP code and Status message of a failed kube-rs call.
fn status(err: kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(s) => (s.code, s.message),
        other => panic!("not a Status: {other:?}"),
    }
}

/// The names of the objects of type `K` in namespace `ns`, or the call's HTTP code and message.
async fn list<K>(client: &kube::Client, ns: &str) -> Result<Vec<String>, (u16, String)>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter_map(|o| o.meta().name.clone())
                .collect()
        })
        .map_err(status)
}

async fn list_pods(client: &kube::Client, ns: &str) -> Result<Vec<String>, (u16, String)> {
    list::<Pod>(client, ns).await
}

async fn list_configmaps(client: &kube::Client, ns: &str) -> Result<Vec<String>, (u16, String)> {
    list::<ConfigMap>(client, ns).await
}

/// The HTTP code with which the simulator refuses to list team's pods with `token`.
async fn pods_refused_with(c: &Cluster, token: &str) -> u16 {
    list_pods(&c.client_with_token(token), "team")
        .await
        .unwrap_err()
        .0
}

/// Verifies a token the way a relying party does: the issuer from the discovery document, the
/// key from its `jwks_uri` (both fetched from the simulator), the audience it was asked for.
async fn verify_with_published_keys(sim: &SimHandle, token: &str, audience: &str) -> Value {
    let (code, config) = get_json(sim, "/.well-known/openid-configuration", Some(ADMIN)).await;
    assert_eq!(code, 200, "{config}");
    let issuer = config["issuer"].as_str().unwrap().to_string();
    let jwks_uri = config["jwks_uri"].as_str().unwrap();
    assert_eq!(jwks_uri, format!("{issuer}/openid/v1/jwks"));
    assert_eq!(
        config["id_token_signing_alg_values_supported"],
        json!(["ES256"])
    );
    let (code, jwks) = get_json(sim, "/openid/v1/jwks", Some(ADMIN)).await;
    assert_eq!(code, 200, "{jwks}");
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwk = set
        .find(header.kid.as_deref().unwrap())
        .expect("the token's kid is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .expect("the token verifies with the published key")
        .claims
}

#[tokio::test]
async fn kubectl_create_token_prints_a_token_the_published_keys_verify() {
    let c = seeded(open_sim()).await;
    let token = c
        .ok(&reader_token(&["--audience", "cw", "--duration", "10m"]))
        .await;
    let claims = verify_with_published_keys(&c.sim, &token, "cw").await;
    assert_eq!(claims["iss"], json!(kube_sim::DEFAULT_ISSUER));
    assert_eq!(claims["sub"], json!("system:serviceaccount:team:reader"));
    assert_eq!(claims["aud"], json!(["cw"]));
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        600
    );
    assert_eq!(claims["nbf"], claims["iat"]);
    let sa = c
        .sim
        .get("v1", "ServiceAccount", Some("team"), "reader")
        .unwrap();
    assert_eq!(
        claims["kubernetes.io"],
        json!({"namespace": "team", "serviceaccount": {"name": "reader", "uid": sa["metadata"]["uid"]}})
    );
    assert_eq!(c.sim.jwks()["keys"][0]["kty"], json!("EC"));
}

#[tokio::test]
async fn token_requests_follow_the_api_servers_limits() {
    let c = seeded(open_sim()).await;
    let err = c.fails(&reader_token(&["--duration", "5m"])).await;
    assert!(
        err.contains("may not specify a duration less than 10 minutes"),
        "{err}"
    );
    let err = c.fails(&["create", "token", "nobody", "-n", "team"]).await;
    assert!(
        err.contains(r#"serviceaccounts "nobody" not found"#),
        "{err}"
    );
    // Without --audience or --duration: the API audience (the issuer), one hour.
    let token = c.ok(&reader_token(&[])).await;
    let claims = verify_with_published_keys(&c.sim, &token, kube_sim::DEFAULT_ISSUER).await;
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600
    );
}

#[tokio::test]
async fn a_service_account_token_reads_what_its_role_binding_allows_and_nothing_else() {
    let c = seeded(open_sim()).await;
    let token = c.ok(&reader_token(&[])).await;
    let client = c.client_with_token(&token);
    assert_eq!(list_pods(&client, "team").await, Ok(vec!["p1".to_string()]));
    assert_eq!(
        list_pods(&client, "default").await,
        Err((
            403,
            r#"pods is forbidden: User "system:serviceaccount:team:reader" cannot list resource "pods" in API group "" in the namespace "default""#
                .to_string()
        ))
    );
    assert_eq!(list_configmaps(&client, "team").await.unwrap_err().0, 403);
    // kubectl as the ServiceAccount: discovery is open to it, pods are readable, secrets not.
    let sa = "system:serviceaccount:team:reader";
    let out = c
        .ok(&["--as", sa, "get", "pods", "-n", "team", "-o", "name"])
        .await;
    assert_eq!(out, "pod/p1");
    let err = c.fails(&["--as", sa, "get", "secrets", "-n", "team"]).await;
    assert!(
        err.contains(r#"secrets is forbidden: User "system:serviceaccount:team:reader" cannot list resource "secrets" in API group "" in the namespace "team""#),
        "{err}"
    );
    // A new binding takes effect at once; the admin API stays the admin's.
    c.sim
        .apply(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "reader-reads-configmaps", "namespace": "team"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmap-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "team"}]}))
        .unwrap();
    assert_eq!(
        list_configmaps(&client, "team").await,
        Ok(vec!["c1".to_string()])
    );
    let (code, _) = get_json(&c.sim, "/_sim/stats", Some(&token)).await;
    assert_eq!(code, 403);
}

#[tokio::test]
async fn tokens_of_another_simulator_expired_or_for_another_audience_are_unauthorized() {
    let c = seeded(admin_sim()).await;
    // The kind-like case: the same issuer string, another key.
    let other = seeded(admin_sim()).await;
    assert_eq!(c.sim.issuer(), other.sim.issuer());
    assert_ne!(c.sim.jwks(), other.sim.jwks());
    let foreign = other
        .sim
        .create_token("team", "reader", &[], Duration::from_secs(600))
        .unwrap();
    let own = c
        .sim
        .create_token("team", "reader", &[], Duration::from_secs(600))
        .unwrap();
    assert!(list_pods(&c.client_with_token(&own), "team").await.is_ok());
    assert_eq!(
        list_pods(&c.client_with_token(&foreign), "team").await,
        Err((401, "Unauthorized".to_string()))
    );
    let for_cw = c
        .sim
        .create_token("team", "reader", &["cw"], Duration::from_secs(600))
        .unwrap();
    assert_eq!(pods_refused_with(&c, &for_cw).await, 401);
    let short = c
        .sim
        .create_token("team", "reader", &[], Duration::from_secs(3))
        .unwrap();
    assert!(list_pods(&c.client_with_token(&short), "team")
        .await
        .is_ok());
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(pods_refused_with(&c, &short).await, 401);
    // A deleted ServiceAccount's token no longer authenticates.
    c.sim
        .delete("v1", "ServiceAccount", Some("team"), "reader")
        .unwrap();
    assert_eq!(pods_refused_with(&c, &own).await, 401);
    let (code, body) = get_json(&c.sim, "/openid/v1/jwks", None).await;
    assert_eq!((code, body["reason"].clone()), (401, json!("Unauthorized")));
}

#[tokio::test]
async fn an_api_audience_other_than_the_issuer_is_what_tokens_must_name() {
    let c = seeded(
        open_sim()
            .with_issuer("https://issuer.example")
            .with_api_audiences(&["api"]),
    )
    .await;
    let token = c.ok(&reader_token(&[])).await;
    let claims = verify_with_published_keys(&c.sim, &token, "api").await;
    assert_eq!(claims["iss"], json!("https://issuer.example"));
    assert!(list_pods(&c.client_with_token(&token), "team")
        .await
        .is_ok());
    let for_issuer = c
        .sim
        .create_token(
            "team",
            "reader",
            &["https://issuer.example"],
            Duration::from_secs(600),
        )
        .unwrap();
    assert_eq!(pods_refused_with(&c, &for_issuer).await, 401);
}

#[tokio::test]
async fn impersonation_needs_the_right_to_impersonate_and_then_runs_as_the_user() {
    let c = seeded(open_sim()).await;
    // The admin may impersonate anyone; alice of group dev reads configmaps, not pods.
    let alice = c.impersonating("alice", &["dev"], None);
    assert_eq!(
        list_configmaps(&alice, "team").await,
        Ok(vec!["c1".to_string()])
    );
    assert_eq!(
        list_pods(&alice, "team").await,
        Err((
            403,
            r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "team""#
                .to_string()
        ))
    );
    // Impersonating the ServiceAccount gives its groups and bindings.
    let sa = c.impersonating("system:serviceaccount:team:reader", &[], None);
    assert_eq!(list_pods(&sa, "team").await, Ok(vec!["p1".to_string()]));

    // A ServiceAccount may not impersonate until a role lets it.
    let token = c.ok(&reader_token(&[])).await;
    let by_reader = c.impersonating("alice", &["dev"], Some(&token));
    assert_eq!(
        list_configmaps(&by_reader, "team").await,
        Err((
            403,
            r#"users "alice" is forbidden: User "system:serviceaccount:team:reader" cannot impersonate resource "users" in API group "" at the cluster scope"#
                .to_string()
        ))
    );
    c.sim
        .apply_manifests(
            r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: impersonate-alice}
rules:
- {apiGroups: [""], resources: [users], verbs: [impersonate], resourceNames: [alice]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: reader-impersonates-alice}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: impersonate-alice}
subjects:
- {kind: ServiceAccount, name: reader, namespace: team}
"#,
        )
        .unwrap();
    // Alice, yes; the group dev not yet.
    let (code, message) = list_configmaps(&by_reader, "team").await.unwrap_err();
    assert_eq!(code, 403);
    assert!(
        message.starts_with(r#"groups "dev" is forbidden"#),
        "{message}"
    );
    let alone = c.impersonating("alice", &[], Some(&token));
    assert_eq!(list_configmaps(&alone, "team").await.unwrap_err().0, 403);
    assert!(
        list_pods(&alone, "team").await.is_err(),
        "alice reads no pods"
    );
    let bob = c.impersonating("bob", &[], Some(&token));
    assert!(list_pods(&bob, "team")
        .await
        .unwrap_err()
        .1
        .starts_with(r#"users "bob" is forbidden"#));
}

#[tokio::test]
async fn kubectl_as_runs_with_the_impersonated_users_rbac() {
    let c = seeded(open_sim()).await;
    let out = c
        .ok(&as_alice_of_dev(&[
            "get",
            "configmaps",
            "-n",
            "team",
            "-o",
            "name",
        ]))
        .await;
    assert_eq!(out, "configmap/c1");
    let err = c
        .fails(&as_alice_of_dev(&["get", "pods", "-n", "team"]))
        .await;
    assert!(
        err.contains(r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "team""#),
        "{err}"
    );
    let err = c
        .fails(&["--as", "bob", "get", "configmaps", "-n", "team"])
        .await;
    assert!(
        err.contains(r#"User "bob" cannot list resource "configmaps""#),
        "{err}"
    );
}

#[tokio::test]
async fn an_open_simulator_stays_open_but_judges_tokens_and_impersonation() {
    let c = seeded(SimConfig::default()).await;
    let anyone = kube::Client::try_from(c.sim.kube_config()).unwrap();
    assert_eq!(
        list_configmaps(&anyone, "team").await,
        Ok(vec!["c1".to_string()])
    );
    let opaque = c.client_with_token("not-a-jwt");
    assert!(list_configmaps(&opaque, "team").await.is_ok());
    let token = c.ok(&reader_token(&[])).await;
    let reader = c.client_with_token(&token);
    assert!(list_pods(&reader, "team").await.is_ok());
    assert_eq!(list_configmaps(&reader, "team").await.unwrap_err().0, 403);
    let other = SimServer::start(SimConfig::default()).await.unwrap();
    other
        .apply_manifests(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: reader, namespace: team}\n",
        )
        .unwrap();
    let foreign = other
        .create_token("team", "reader", &[], Duration::from_secs(600))
        .unwrap();
    assert_eq!(pods_refused_with(&c, &foreign).await, 401);
    let bob = c.impersonating("bob", &[], None);
    assert_eq!(list_configmaps(&bob, "team").await.unwrap_err().0, 403);
    let (code, _) = get_json(&c.sim, "/openid/v1/jwks", None).await;
    assert_eq!(code, 200);
}
