//! Answers only for those allowed to see them, end to end: two simulated clusters, each
//! with its own RBAC and ServiceAccount token issuer, a watcher each into one `cw serve`
//! (the binary: embedded store, Voyage stand-in, OIDC keys from a file, a tokens file, the
//! clusters' kubeconfigs for live reads). Three users (two OIDC, one from the tokens file) and
//! two ServiceAccounts (one per cluster) read through every path: HTTP search with and
//! without query words, ask, count and group-by, the cluster list, `cw clusters`, and MCP
//! (`search_resources`, `ask`, `list_clusters`, `get_resource` live, as the caller) through
//! the Python SDK. What each sees is compared with an expectation the test computes from
//! the objects and the grants it made, independently of cw. A deleted binding hides what it
//! granted and a new one shows it, within 15 s; a token of one cluster's issuer sees nothing
//! of the other; expired, wrongly signed and wrong-audience tokens are 401.
//!
//! Needs .venv with `mcp` (scripts/setup).

#[allow(dead_code)]
#[path = "../../ingest/src/access/identity/test_keys.rs"]
mod test_keys;

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::mcp_client::{drive, ok};
use common::watch::{self, Watching};
use common::{ask_instances, CwProcess};
use kube_sim::{SimConfig, SimHandle, SimServer};
use serde_json::{json, Value};
use test_keys::{now, TestKey};
use testkit::VoyageStandin;

const OPS: &str = "access-ops-token";
const CAROL: &str = "access-carol-token";
const ISSUER: &str = "https://idp.example.test";
const CLIENT_ID: &str = "cw";
const NAMESPACES: [&str; 3] = ["shop", "pay", "hr"];
const RBAC: &str = "rbac.authorization.k8s.io/v1";

/// One object as a caller may see it: cluster, namespace (`_cluster` for cluster-scoped),
/// kind, name.
type Seen = (String, String, String, String);

fn objects(sim: &SimHandle) {
    for ns in NAMESPACES {
        sim.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .expect("namespace");
        sim.apply(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": ns, "labels": {"app": "api"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "api"}},
                     "template": {"metadata": {"labels": {"app": "api"}},
                                  "spec": {"containers": [{"name": "api", "image": "ghcr.io/acme/api:1"}]}}}
        }))
        .expect("deployment");
        for svc in ["web", "db"] {
            sim.apply(json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": svc, "namespace": ns, "labels": {"app": svc}},
                "spec": {"ports": [{"port": 80}]}
            }))
            .expect("service");
        }
        sim.apply(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": ns}, "data": {"mode": "prod"}
        }))
        .expect("configmap");
    }
}

fn role(ns: &str, name: &str, rules: Value) -> Value {
    json!({"apiVersion": RBAC, "kind": "Role", "metadata": {"name": name, "namespace": ns}, "rules": rules})
}

fn role_binding(ns: &str, name: &str, role_kind: &str, role: &str, subject: Value) -> Value {
    json!({"apiVersion": RBAC, "kind": "RoleBinding", "metadata": {"name": name, "namespace": ns},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
           "subjects": [subject]})
}

fn service_viewer() -> Value {
    json!({"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": "svc-viewer"},
           "rules": [{"apiGroups": [""], "resources": ["services", "configmaps"], "verbs": ["get", "list", "watch"]}]})
}

fn user(name: &str) -> Value {
    json!({"kind": "User", "name": name, "apiGroup": "rbac.authorization.k8s.io"})
}

/// alpha: alice lists Deployments in shop (a Role); the group payments views Services and
/// ConfigMaps in pay (a RoleBinding to a ClusterRole); bob gets the Service web of shop by
/// name; carol reads Namespaces and Deployments everywhere (a ClusterRoleBinding to an
/// aggregated ClusterRole); the ServiceAccount shop/reader views Services and ConfigMaps
/// in shop.
fn alpha_rbac(sim: &SimHandle) {
    sim.apply(service_viewer()).expect("svc-viewer");
    sim.apply(role(
        "shop",
        "deployer",
        json!([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]}]),
    ))
    .expect("role");
    sim.apply(alice_binding()).expect("binding");
    sim.apply(role_binding(
        "pay",
        "payments-view",
        "ClusterRole",
        "svc-viewer",
        json!({"kind": "Group", "name": "payments", "apiGroup": "rbac.authorization.k8s.io"}),
    ))
    .expect("binding");
    sim.apply(role("shop", "web-only", json!([{"apiGroups": [""], "resources": ["services"], "resourceNames": ["web"], "verbs": ["get"]}])))
        .expect("role");
    sim.apply(role_binding(
        "shop",
        "bob-web",
        "Role",
        "web-only",
        user("bob"),
    ))
    .expect("binding");
    sim.apply(json!({"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": "reader"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"cw.test/aggregate-to-reader": "true"}}]},
        "rules": []}))
        .expect("aggregated role");
    sim.apply(json!({"apiVersion": RBAC, "kind": "ClusterRole",
        "metadata": {"name": "reader-parts", "labels": {"cw.test/aggregate-to-reader": "true"}},
        "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]},
                  {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]}]}))
        .expect("aggregated part");
    sim.apply(json!({"apiVersion": RBAC, "kind": "ClusterRoleBinding", "metadata": {"name": "carol-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"},
        "subjects": [user("carol")]}))
        .expect("cluster binding");
    service_account_viewing(sim, "shop");
}

fn alice_binding() -> Value {
    role_binding("shop", "alice-deployer", "Role", "deployer", user("alice"))
}

/// beta: alice views Services and ConfigMaps everywhere (a ClusterRoleBinding); the
/// ServiceAccount pay/reader views them in pay.
fn beta_rbac(sim: &SimHandle) {
    sim.apply(service_viewer()).expect("svc-viewer");
    sim.apply(json!({"apiVersion": RBAC, "kind": "ClusterRoleBinding", "metadata": {"name": "alice-everywhere"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "svc-viewer"},
        "subjects": [user("alice")]}))
        .expect("cluster binding");
    service_account_viewing(sim, "pay");
}

/// The ServiceAccount `ns`/reader, who views Services and ConfigMaps in `ns`.
fn service_account_viewing(sim: &SimHandle, ns: &str) {
    sim.apply(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader", "namespace": ns}}))
        .expect("service account");
    let account = json!({"kind": "ServiceAccount", "name": "reader", "namespace": ns});
    sim.apply(role_binding(
        ns,
        "reader-view",
        "ClusterRole",
        "svc-viewer",
        account,
    ))
    .expect("binding");
}

/// What the grants above let each caller read, written from the grants, not from cw.
fn allowed(caller: &str, (cluster, ns, kind, name): &Seen) -> bool {
    let namespaced = ns != "_cluster";
    let svc_or_cm = kind == "Service" || kind == "ConfigMap";
    match (caller, cluster.as_str()) {
        ("alice", "alpha") => ns == "shop" && kind == "Deployment",
        ("alice", "beta") => namespaced && svc_or_cm,
        ("bob", "alpha") => {
            (ns == "pay" && svc_or_cm) || (ns == "shop" && kind == "Service" && name == "web")
        }
        ("carol", "alpha") => kind == "Namespace" || kind == "Deployment",
        ("sa-alpha", "alpha") => ns == "shop" && svc_or_cm,
        ("sa-beta", "beta") => ns == "pay" && svc_or_cm,
        _ => false,
    }
}

/// A watcher of the test's types in `sim`, sending to `base` as cluster `id`, once ready.
async fn start_watcher(sim: &SimHandle, base: &str, id: &str) -> Watching {
    watch::start_as_cluster(
        sim,
        &["namespaces", "deployments", "services", "configmaps"],
        base,
        OPS,
        id,
    )
    .await
}

/// The status and JSON body (null if none) of `req` sent with `token`.
async fn answer(req: reqwest::RequestBuilder, token: &str) -> (u16, Value) {
    let resp = req
        .bearer_auth(token)
        .send()
        .await
        .expect("cw serve answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

struct Fleet {
    serve: CwProcess,
    alpha: SimHandle,
    beta: SimHandle,
    idp: TestKey,
    _watchers: Vec<Watching>,
    _voyage: VoyageStandin,
    _work: tempfile::TempDir,
}

impl Fleet {
    fn oidc_token(&self, name: &str, groups: &[&str]) -> String {
        self.idp.sign(&json!({
            "iss": ISSUER, "aud": CLIENT_ID, "sub": name, "groups": groups,
            "exp": now() + 600, "iat": now(),
        }))
    }

    fn tokens(&self) -> Vec<(&'static str, String)> {
        let sa = |sim: &SimHandle, ns: &str| {
            sim.create_token(ns, "reader", &["cw"], Duration::from_secs(600))
                .expect("a ServiceAccount token")
        };
        vec![
            ("alice", self.oidc_token("alice", &["dev"])),
            ("bob", self.oidc_token("bob", &["payments"])),
            ("carol", CAROL.to_string()),
            ("sa-alpha", sa(&self.alpha, "shop")),
            ("sa-beta", sa(&self.beta, "pay")),
        ]
    }

    /// Status and JSON body of `POST path` with `body`, as `token`'s caller.
    async fn post_status(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        let url = format!("{}{path}", self.serve.base);
        answer(self.serve.http.post(url).json(&body), token).await
    }

    /// Status and JSON body of `GET path`, as `token`'s caller.
    async fn get_status(&self, token: &str, path: &str) -> (u16, Value) {
        let url = format!("{}{path}", self.serve.base);
        answer(self.serve.http.get(url), token).await
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> Value {
        let (status, answer) = self.post_status(token, path, body).await;
        assert_eq!(status, 200, "{path}: {answer}");
        answer
    }

    /// Polls (15 s at most) until `token`'s listing shows `item`, or with `shown` false no
    /// longer shows it; else fails saying `what`.
    async fn wait_listed(&self, token: &str, item: &Seen, shown: bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.listed(token).await.contains(item) != shown {
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every object a keyword listing shows `token`'s caller.
    async fn listed(&self, token: &str) -> BTreeSet<Seen> {
        let answer = self
            .post(
                token,
                "/api/v1/search",
                json!({"query": "", "mode": "keyword", "limit": 1000}),
            )
            .await;
        seen_of(answer["results"].as_array().expect("results"))
    }
}

fn seen_of(hits: &[Value]) -> BTreeSet<Seen> {
    hits.iter()
        .map(|h| {
            let s = |k: &str| h[k].as_str().unwrap_or_default().to_string();
            let ns = match s("namespace") {
                n if n.is_empty() => "_cluster".to_string(),
                n => n,
            };
            (s("cluster"), ns, s("kind"), s("name"))
        })
        .collect()
}

async fn start_fleet() -> Fleet {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let work = tempfile::tempdir().expect("temp dir");
    let alpha = SimServer::start(SimConfig::default()).await.expect("alpha");
    let beta = SimServer::start(SimConfig::default()).await.expect("beta");
    for sim in [&alpha, &beta] {
        objects(sim);
    }
    alpha_rbac(&alpha);
    beta_rbac(&beta);

    let idp = TestKey::ec("idp-1");
    let jwks = work.path().join("jwks.json");
    std::fs::write(&jwks, idp.jwks().to_string()).expect("jwks file");
    let tokens = work.path().join("tokens");
    std::fs::write(&tokens, format!("{OPS} *\n{CAROL} user=carol groups=ops\n")).expect("tokens");
    let kubeconfigs = work.path().join("clusters");
    alpha
        .write_kubeconfig(kubeconfigs.join("alpha"))
        .expect("kubeconfig");
    beta.write_kubeconfig(kubeconfigs.join("beta"))
        .expect("kubeconfig");
    let voyage = VoyageStandin::start().await;
    let mut serve = CwProcess::serve(
        work.path(),
        &[
            (
                "CW_DATA_DIR",
                work.path().join("data").display().to_string(),
            ),
            ("CW_EMBEDDING_PROVIDER", "voyage".into()),
            ("VOYAGE_API_KEY", "test".into()),
            ("VOYAGE_BASE_URL", voyage.base_url()),
            ("CW_INGEST_TOKEN", OPS.into()),
            ("CW_INGEST_TOKENS_FILE", tokens.display().to_string()),
            ("CW_OIDC_ISSUER_URL", ISSUER.into()),
            ("CW_OIDC_CLIENT_ID", CLIENT_ID.into()),
            ("CW_OIDC_USERNAME_PREFIX", "-".into()),
            ("CW_OIDC_GROUPS_CLAIM", "groups".into()),
            ("CW_OIDC_SIGNING_ALGS", "ES256".into()),
            ("CW_OIDC_JWKS_FILE", jwks.display().to_string()),
            ("CW_CLUSTER_KUBECONFIGS", kubeconfigs.display().to_string()),
        ],
    );
    serve.wait_ready().await;
    let watchers = vec![
        start_watcher(&alpha, &serve.base, "alpha").await,
        start_watcher(&beta, &serve.base, "beta").await,
    ];
    let fleet = Fleet {
        serve,
        alpha,
        beta,
        idp,
        _watchers: watchers,
        _voyage: voyage,
        _work: work,
    };
    // Indexed: the operator sees both clusters' objects; carol sees alpha's Namespaces (the
    // access rules arrived).
    // Before alpha's rules arrive, carol may read nothing (403).
    let carol_ready = async || {
        let (status, answer) = fleet
            .post_status(
                CAROL,
                "/api/v1/search",
                json!({"query": "", "mode": "keyword", "limit": 1000}),
            )
            .await;
        let hits = answer["results"].as_array().cloned().unwrap_or_default();
        status == 200 && seen_of(&hits).iter().any(|s| s.2 == "Namespace")
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = fleet.listed(OPS).await;
        let clusters: BTreeSet<&str> = all.iter().map(|s| s.0.as_str()).collect();
        let services = all.iter().filter(|s| s.2 == "Service").count();
        if clusters.len() == 2 && services == 12 && carol_ready().await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not indexed in time: {} objects",
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    fleet
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_path_answers_each_caller_what_rbac_grants_and_nothing_else() {
    let fleet = start_fleet().await;
    let everything = fleet.listed(OPS).await;
    assert!(everything.len() >= 30, "{everything:?}");

    for (caller, token) in fleet.tokens() {
        let expected: BTreeSet<Seen> = everything
            .iter()
            .filter(|s| allowed(caller, s))
            .cloned()
            .collect();
        assert!(!expected.is_empty(), "{caller} is granted something");

        // A listing without query words.
        assert_eq!(
            fleet.listed(&token).await,
            expected,
            "{caller}: keyword listing"
        );

        // A search with query words: a full page, all of it allowed.
        let answer = fleet
            .post(
                &token,
                "/api/v1/search",
                json!({"query": "web service settings", "limit": 3}),
            )
            .await;
        let hits = seen_of(answer["results"].as_array().expect("results"));
        assert_eq!(
            hits.len(),
            expected.len().min(3),
            "{caller}: a full page: {answer}"
        );
        assert!(
            hits.is_subset(&expected),
            "{caller}: {hits:?} not within {expected:?}"
        );
        for c in answer["clusters"].as_array().into_iter().flatten() {
            let cluster = c["cluster"].as_str().unwrap_or_default();
            assert!(
                expected.iter().any(|s| s.0 == cluster),
                "{caller}: names cluster {cluster}: {answer}"
            );
        }

        // Ask: every instance allowed.
        let answer = fleet
            .post(
                &token,
                "/api/v1/search",
                json!({"query": "which services and deployments run?", "ask": true}),
            )
            .await;
        let instances: Vec<Value> = ask_instances(&answer).into_iter().cloned().collect();
        let asked = seen_of(&instances);
        assert!(
            asked.is_subset(&expected),
            "{caller}: ask answered {asked:?}"
        );

        // Counts and group-bys count what the caller may see, and nothing else.
        let count = fleet
            .post(&token, "/api/v1/search/count", json!({"groupBy": "kind"}))
            .await;
        assert_eq!(count["total"], expected.len(), "{caller}: {count}");
        for g in count["groups"].as_array().into_iter().flatten() {
            let kind = g["key"].as_str().unwrap_or_default();
            let n = expected.iter().filter(|s| s.2 == kind).count();
            assert_eq!(g["count"], n, "{caller}: {kind}: {count}");
        }

        // The cluster list: only the clusters where the caller sees something, with their
        // counts.
        let (status, clusters) = fleet.get_status(&token, "/api/v1/clusters").await;
        assert_eq!(status, 200, "{clusters}");
        let listed: BTreeSet<(String, u64)> = clusters["clusters"]
            .as_array()
            .expect("clusters")
            .iter()
            .map(|c| {
                (
                    c["id"].as_str().unwrap_or_default().to_string(),
                    c["objects"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        let mut wanted = BTreeSet::new();
        for cluster in ["alpha", "beta"] {
            let n = expected.iter().filter(|s| s.0 == cluster).count() as u64;
            if n > 0 {
                wanted.insert((cluster.to_string(), n));
            }
        }
        assert_eq!(listed, wanted, "{caller}: {clusters}");

        // MCP through the Python SDK, with the caller's token.
        let (own, other) = expected
            .iter()
            .next()
            .map(|s| (s.clone(), s.0.clone()))
            .expect("one");
        let hidden = everything
            .iter()
            .find(|s| !allowed(caller, s) && s.0 == other && s.1 != "_cluster")
            .cloned()
            .expect("something hidden in the same cluster");
        let plan = json!({"calls": [
            {"tool": "search_resources", "args": {"mode": "count", "kind": "Service"}},
            {"tool": "search_resources", "args": {"kind": "Service"}},
            {"tool": "ask", "args": {"question": "what services run?"}},
            {"tool": "list_clusters"},
            {"tool": "get_resource", "args": {"kind": own.2, "name": own.3, "namespace": if own.1 == "_cluster" { Value::Null } else { json!(own.1) }, "cluster": own.0}},
            {"tool": "get_resource", "args": {"kind": hidden.2, "name": hidden.3, "namespace": hidden.1, "cluster": hidden.0}},
        ]});
        let url = format!("{}/mcp", fleet.serve.base);
        let report = drive(&["http", &url, &token], plan, &[]);
        let services: BTreeSet<Seen> = expected
            .iter()
            .filter(|s| s.2 == "Service")
            .cloned()
            .collect();
        assert_eq!(
            ok(&report, 0)["total"],
            services.len(),
            "{caller}: MCP count"
        );
        let listed = seen_of(
            ok(&report, 1)["results"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[]),
        );
        assert_eq!(listed, services, "{caller}: MCP search_resources");
        let answer = ok(&report, 2).to_string();
        let ask_hits: Vec<Value> = ask_instances(ok(&report, 2)).into_iter().cloned().collect();
        assert!(
            seen_of(&ask_hits).is_subset(&expected),
            "{caller}: MCP ask {answer}"
        );
        let mcp_clusters: BTreeSet<String> = ok(&report, 3)["clusters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                c["id"]
                    .as_str()
                    .or(c["name"].as_str())
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        let wanted_clusters: BTreeSet<String> = wanted.iter().map(|(c, _)| c.clone()).collect();
        assert_eq!(
            mcp_clusters,
            wanted_clusters,
            "{caller}: MCP list_clusters {}",
            ok(&report, 3)
        );
        let live = ok(&report, 4);
        assert_eq!(live["name"], own.3, "{caller}: get_resource {live}");
        let denied = &report["calls"][5];
        assert_eq!(
            denied["isError"], true,
            "{caller}: get_resource of {hidden:?} must fail: {denied}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_take_effect_within_seconds_and_bad_tokens_are_refused() {
    let fleet = start_fleet().await;
    let alice = fleet.oidc_token("alice", &["dev"]);
    let shop_api: Seen = (
        "alpha".into(),
        "shop".into(),
        "Deployment".into(),
        "api".into(),
    );
    assert!(fleet.listed(&alice).await.contains(&shop_api));

    // Revoked: the binding is deleted in alpha.
    let start = Instant::now();
    fleet
        .alpha
        .delete(RBAC, "RoleBinding", Some("shop"), "alice-deployer")
        .expect("delete the binding");
    fleet
        .wait_listed(&alice, &shop_api, false, "the revoked binding still shows")
        .await;
    let hidden_after = start.elapsed();
    // alpha is now a cluster alice sees nothing of: unknown to her, and the error names only
    // the clusters she sees.
    let (status, answer) = fleet
        .post_status(&alice, "/api/v1/search/count", json!({"cluster": "alpha"}))
        .await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(
        answer["details"][0]["message"], "known clusters: beta",
        "{answer}"
    );

    // Granted again.
    let start = Instant::now();
    fleet
        .alpha
        .apply(alice_binding())
        .expect("the binding again");
    fleet
        .wait_listed(&alice, &shop_api, true, "the new binding does not show")
        .await;
    println!(
        "binding deleted: hidden after {:.1} s; created: shown after {:.1} s",
        hidden_after.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );

    // A ServiceAccount token signed by alpha's issuer sees nothing of beta, even where beta
    // has a ServiceAccount of the same name bound.
    let sa_alpha = fleet
        .alpha
        .create_token("pay", "reader", &["cw"], Duration::from_secs(600));
    assert!(sa_alpha.is_err(), "alpha has no pay/reader");
    let sa_alpha = fleet
        .alpha
        .create_token("shop", "reader", &["cw"], Duration::from_secs(600))
        .expect("token");
    assert!(fleet.listed(&sa_alpha).await.iter().all(|s| s.0 == "alpha"));

    // Refused: expired, wrongly signed, wrong audience, unknown.
    // Expired beyond the minute of leeway kube-apiserver allows too.
    let expired = fleet.idp.sign(&json!({
        "iss": ISSUER, "aud": CLIENT_ID, "sub": "alice", "exp": now() - 120, "iat": now() - 720,
    }));
    let wrong_audience = fleet
        .beta
        .create_token("pay", "reader", &["not-cw"], Duration::from_secs(600))
        .expect("token");
    let other_idp = TestKey::ec("idp-1");
    let forged = other_idp
        .sign(&json!({"iss": ISSUER, "aud": CLIENT_ID, "sub": "alice", "exp": now() + 600}));
    let mut tampered = fleet.oidc_token("alice", &["dev"]);
    tampered.truncate(tampered.len() - 4);
    tampered.push_str("AAAA");
    for (what, token) in [
        ("expired", expired),
        ("wrong audience", wrong_audience),
        ("signed by another key", forged),
        ("tampered", tampered),
        ("unknown", "no-such-token".to_string()),
    ] {
        let (status, body) = fleet
            .post_status(&token, "/api/v1/search", json!({"query": "web"}))
            .await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(
            !body.to_string().contains(&token),
            "{what}: the token is echoed: {body}"
        );
        let (status, _) = fleet.get_status(&token, "/api/v1/clusters").await;
        assert_eq!(status, 401, "{what}: clusters");
    }

    // `cw clusters` as alice (her token): both clusters, each with what she sees.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cw"))
        .args(["clusters", "--server", &fleet.serve.base, "--token", &alice])
        .env_remove("CW_INGEST_TOKEN")
        .output()
        .expect("cw clusters");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("alpha") && text.contains("beta"), "{text}");
    let sa_beta = fleet
        .beta
        .create_token("pay", "reader", &["cw"], Duration::from_secs(600))
        .expect("token");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cw"))
        .args([
            "clusters",
            "--server",
            &fleet.serve.base,
            "--token",
            &sa_beta,
        ])
        .env_remove("CW_INGEST_TOKEN")
        .output()
        .expect("cw clusters");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("beta") && !text.contains("alpha"), "{text}");
}
