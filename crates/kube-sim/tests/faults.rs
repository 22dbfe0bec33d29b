//! Faults that real clusters have, as kube-rs sees them: one API group's discovery answering 503
//! (an aggregated API whose backend is down), one 403 on a watch reconnect, and an API server
//! restart after which every watch must relist.

mod common;

use std::time::Duration;

use common::{get_json, wait_for};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::discovery::Discovery;
use kube::runtime::watcher;
use kube_sim::{Fault, SimConfig, SimHandle, SimServer};
use serde_json::json;
use tokio::sync::mpsc;

async fn sim() -> SimHandle {
    SimServer::start(SimConfig::default())
        .await
        .expect("the simulator starts")
}

/// A kube-rs client that does not retry 503 by itself, so a test sees every answer.
fn client_without_retries(sim: &SimHandle) -> kube::Client {
    let mut config = sim.kube_config();
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

fn cm(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}})
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// The error of a full discovery, which must fail.
async fn discovery_error(client: &kube::Client) -> kube::Error {
    Discovery::new(client.clone())
        .run()
        .await
        .err()
        .expect("discovery fails")
}

async fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !ok() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_unavailable_aggregated_group_is_listed_but_its_discovery_answers_503_until_cleared() {
    let sim = sim().await;
    let client = client_without_retries(&sim);
    sim.inject_fault(Fault::error(503).on_group("metrics.k8s.io"));

    let groups: serde_json::Value = get_json(&client, "/apis").await;
    assert!(
        groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "metrics.k8s.io"
                && g["preferredVersion"]["groupVersion"] == "metrics.k8s.io/v1beta1"),
        "{groups}"
    );
    let err = discovery_error(&client).await;
    assert_eq!(status_code(&err), Some(503), "{err:?}");
    // Other groups still answer: only the one group's discovery fails.
    Discovery::new(client.clone())
        .filter(&["apps"])
        .run()
        .await
        .expect("apps discovery is unaffected");
    assert!(sim.request_count("metrics.k8s.io", "discovery") >= 1);

    sim.clear_faults();
    let discovery = Discovery::new(client).run().await.expect("recovered");
    assert!(
        discovery.groups().any(|g| g.name() == "metrics.k8s.io"),
        "the recovered group is discovered (with no resources)"
    );
}

#[tokio::test]
async fn a_discovery_fault_recovers_after_its_duration() {
    let sim = sim().await;
    let client = client_without_retries(&sim);
    sim.inject_fault(
        Fault::error(503)
            .on_group("metrics.k8s.io")
            .for_duration(Duration::from_millis(800)),
    );
    let err = discovery_error(&client).await;
    assert_eq!(status_code(&err), Some(503), "{err:?}");
    tokio::time::sleep(Duration::from_millis(900)).await;
    Discovery::new(client)
        .run()
        .await
        .expect("the fault expired");
    assert!(sim.faults().is_empty());
}

#[tokio::test]
async fn a_discovery_fault_of_n_requests_is_retried_through_by_kube_rs() {
    let sim = sim().await;
    // The default client retries 503 (kube's server_retry policy), so three failures in a row
    // end in a successful discovery after at least four requests for the group.
    sim.inject_fault(Fault::error(503).on_group("metrics.k8s.io").times(3));
    let discovery = Discovery::new(sim.client().unwrap()).run().await.unwrap();
    assert!(discovery.groups().any(|g| g.name() == "metrics.k8s.io"));
    // /apis/metrics.k8s.io/v1beta1 failed three times, then answered.
    assert!(
        sim.request_count("metrics.k8s.io", "discovery") >= 4,
        "{:?}",
        sim.request_counts()
    );
    assert!(sim.faults().is_empty(), "the fault was used up");
}

#[tokio::test]
async fn a_discovery_fault_on_a_served_group_fails_that_group_only() {
    let sim = sim().await;
    let client = client_without_retries(&sim);
    sim.inject_fault(Fault::error(500).on_group("batch"));
    let err = discovery_error(&client).await;
    assert_eq!(status_code(&err), Some(500), "{err:?}");
    // Resource requests of the group are not discovery: they still work.
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::all(client.clone());
    jobs.list(&Default::default()).await.expect("jobs list");
}

/// Watcher events as text: "initdone", "apply:NAME", "error:CODE".
fn watch_configmaps(sim: &SimHandle) -> mpsc::UnboundedReceiver<String> {
    let api: Api<ConfigMap> = Api::namespaced(client_without_retries(sim), "default");
    common::spawn_watch(
        watcher::watcher(api, watcher::Config::default()),
        |e| match e {
            watcher::Error::WatchFailed(e)
            | watcher::Error::WatchStartFailed(e)
            | watcher::Error::InitialListFailed(e) => status_code(e).unwrap_or(0).to_string(),
            watcher::Error::WatchError(s) => s.code.to_string(),
            e => e.to_string(),
        },
    )
}

#[tokio::test]
async fn one_403_on_a_watch_reconnect_reaches_the_watcher_once_then_it_resumes() {
    let sim = sim().await;
    let mut rx = watch_configmaps(&sim);
    wait_for(&mut rx, "initdone").await;
    wait_until("the watch is open", || sim.open_watches() == 1).await;
    let lists = sim.request_count("configmaps", "list");
    sim.inject_fault(
        Fault::error(403)
            .on_resource("configmaps")
            .on_verb("watch")
            .times(1),
    );
    sim.drop_watches();
    // The reconnect takes the 403; only then write, so the dropped watch cannot deliver it.
    wait_until("the reconnect met the fault", || sim.faults().is_empty()).await;
    sim.create(cm("after-403")).unwrap();
    let seen = wait_for(&mut rx, "apply:after-403").await;
    assert_eq!(
        seen.iter().filter(|l| *l == "error:403").count(),
        1,
        "{seen:?}"
    );
    assert_eq!(
        sim.request_count("configmaps", "list"),
        lists,
        "the watcher resumed from its resourceVersion without relisting"
    );
}

#[tokio::test]
async fn an_api_server_restart_ends_every_watch_and_makes_every_watcher_relist() {
    let sim = sim().await;
    sim.create(cm("before")).unwrap();
    let mut a = watch_configmaps(&sim);
    let mut b = watch_configmaps(&sim);
    wait_for(&mut a, "initdone").await;
    wait_for(&mut b, "initdone").await;
    wait_until("both watches are open", || sim.open_watches() == 2).await;
    let lists = sim.request_count("configmaps", "list");
    let rv = sim.resource_version();

    assert_eq!(sim.restart_api_server(), 2);
    assert!(sim.resource_version() > rv);
    for rx in [&mut a, &mut b] {
        let seen = wait_for(rx, "initdone").await;
        assert!(seen.contains(&"error:410".to_string()), "{seen:?}");
        assert!(seen.contains(&"initapply:before".to_string()), "{seen:?}");
    }
    assert!(sim.expired_watches() >= 2);
    assert_eq!(sim.request_count("configmaps", "list"), lists + 2);
    sim.create(cm("after")).unwrap();
    wait_for(&mut a, "apply:after").await;
    wait_for(&mut b, "apply:after").await;
}

#[tokio::test]
async fn the_admin_api_restarts_with_downtime_and_registers_aggregated_groups() {
    let sim = sim().await;
    // reqwest is built without a crypto provider; install ring once (as the cw binary does).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let url = sim.url();
    for (path, body) in [
        (
            "apigroups",
            json!({"group": "custom.metrics.k8s.io", "version": "v1beta2"}),
        ),
        (
            "faults",
            json!({"group": "custom.metrics.k8s.io", "errorCode": 503, "forMs": 60000}),
        ),
    ] {
        let r = http
            .post(format!("{url}/_sim/{path}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}");
    }
    let r = http
        .get(format!("{url}/apis/custom.metrics.k8s.io/v1beta2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let faults: serde_json::Value = http
        .get(format!("{url}/_sim/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(faults[0]["group"], "custom.metrics.k8s.io");
    assert_eq!(faults[0]["forMs"], 60000);

    let rv = sim.resource_version();
    let started = std::time::Instant::now();
    let restart = http
        .post(format!("{url}/_sim/restart"))
        .json(&json!({"downtimeMs": 500}))
        .send();
    let during = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = std::time::Instant::now();
        http.get(format!("{url}/api/v1/namespaces/default/configmaps"))
            .send()
            .await
            .unwrap();
        t.elapsed()
    };
    let (r, waited) = tokio::join!(restart, during);
    let r: serde_json::Value = r.unwrap().json().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(
        waited >= Duration::from_millis(300),
        "a request during the downtime waited {waited:?}"
    );
    assert_eq!(r["resourceVersion"], (rv + 1).to_string());
    let w = http
        .get(format!(
            "{url}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(w.contains("\"code\":410"), "{w}");
}
