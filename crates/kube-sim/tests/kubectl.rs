//! The real `kubectl` (1.32) against the simulator: apply (create, then a change), get (list, one,
//! -o json, -l, -w), the imperative writes (`create <kind>`, which send protobuf; label, annotate,
//! scale, set image, patch of every type, rollout restart, edit, delete), a CRD followed by its
//! custom resources, and an unavailable aggregated API group. Validation stays on (no
//! `--validate=false`). Fails, never skips, when kubectl is missing.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use kube_sim::SimConfig;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

mod kubectl_cluster;
use kubectl_cluster::Cluster;

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports: [{containerPort: 80}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_creates_then_configures_and_get_label_delete_work() {
    let c = Cluster::start(SimConfig::default()).await;
    let f = c.write("web.yaml", DEPLOYMENT);
    assert!(c
        .ok(&["apply", "-f", path(&f)])
        .await
        .contains("deployment.apps/web created"));
    let f = c.write(
        "web.yaml",
        &DEPLOYMENT
            .replace("replicas: 1", "replicas: 3")
            .replace("nginx:1.25", "nginx:1.26"),
    );
    assert!(c
        .ok(&["apply", "-f", path(&f)])
        .await
        .contains("deployment.apps/web configured"));
    let stored = c
        .sim
        .get("apps/v1", "Deployment", Some("default"), "web")
        .unwrap();
    assert_eq!(stored["spec"]["replicas"], 3);
    assert_eq!(
        stored["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.26"
    );
    assert_eq!(
        stored["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(stored["metadata"]["generation"], 2);
    // Re-applying the same file changes nothing.
    assert!(c.ok(&["apply", "-f", path(&f)]).await.contains("unchanged"));

    assert!(c.ok(&["get", "deployments"]).await.contains("web"));
    let one: Value =
        serde_json::from_str(&c.ok(&["get", "deployment", "web", "-o", "json"]).await).unwrap();
    assert_eq!(one["metadata"]["labels"]["tier"], "front");
    assert!(c
        .ok(&["get", "deployments", "-l", "tier=front", "-o", "name"])
        .await
        .contains("deployment.apps/web"));
    assert!(c
        .ok(&["get", "deployments", "-l", "tier!=front", "-o", "name"])
        .await
        .trim()
        .is_empty());

    c.ok(&["label", "deployment", "web", "stage=canary"]).await;
    let labels = &c
        .sim
        .get("apps/v1", "Deployment", Some("default"), "web")
        .unwrap()["metadata"]["labels"];
    assert_eq!(labels["stage"], "canary");
    assert!(c
        .ok(&["get", "deploy", "-l", "stage in (canary)", "-o", "name"])
        .await
        .contains("web"));

    assert!(c
        .ok(&["delete", "deployment", "web"])
        .await
        .contains("deleted"));
    assert!(c
        .sim
        .get("apps/v1", "Deployment", Some("default"), "web")
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_sees_a_new_object() {
    let c = Cluster::start(SimConfig::default()).await;
    let mut child = c
        .cmd(&["get", "configmaps", "--watch", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Wait until kubectl holds its watch open before writing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while c.sim.open_watches() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "kubectl never opened a watch"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.sim
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late-arrival", "namespace": "default"}}))
        .unwrap();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("late-arrival") {
                return true;
            }
        }
        false
    })
    .await;
    let _ = child.kill().await;
    assert_eq!(
        found,
        Ok(true),
        "kubectl get -w did not print the new ConfigMap"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_creates_a_crd_then_gets_its_custom_resources() {
    let c = Cluster::start(SimConfig::default()).await;
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/demo");
    c.ok(&["apply", "-f", &format!("{demo}/10-crd-cloudnative-pg.yaml")])
        .await;
    let crd = c
        .ok(&["get", "crd", "clusters.postgresql.cnpg.io", "-o", "json"])
        .await;
    let crd: Value = serde_json::from_str(&crd).unwrap();
    assert_eq!(crd["status"]["conditions"][1]["type"], "Established");
    c.ok(&["create", "namespace", "data"]).await;
    let f = c.write(
        "pg.yaml",
        "apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata:\n  name: orders-db\n  namespace: data\n  labels: {app: orders}\nspec:\n  instances: 3\n",
    );
    assert!(c
        .ok(&["apply", "-f", path(&f)])
        .await
        .contains("cluster.postgresql.cnpg.io/orders-db created"));
    let f = c.write(
        "pg.yaml",
        &std::fs::read_to_string(&f)
            .unwrap()
            .replace("instances: 3", "instances: 5"),
    );
    assert!(c
        .ok(&["apply", "-f", path(&f)])
        .await
        .contains("configured"));
    let listed = c
        .ok(&["get", "clusters.postgresql.cnpg.io", "-n", "data"])
        .await;
    assert!(listed.contains("orders-db"), "{listed}");
    let one: Value = serde_json::from_str(
        &c.ok(&[
            "get",
            "cluster.postgresql.cnpg.io",
            "orders-db",
            "-n",
            "data",
            "-o",
            "json",
        ])
        .await,
    )
    .unwrap();
    assert_eq!(one["spec"]["instances"], 5);
    c.ok(&["delete", "crd", "clusters.postgresql.cnpg.io"])
        .await;
    assert!(c.sim.list("v1", "Namespace", None).unwrap().len() >= 5);
    let out = c
        .cmd(&["get", "clusters.postgresql.cnpg.io", "-A"])
        .output()
        .await
        .unwrap();
    assert!(
        !out.status.success(),
        "the custom resource type is gone after its CRD is deleted"
    );
}

fn stored(c: &Cluster, api_version: &str, kind: &str, name: &str) -> Value {
    c.sim
        .get(api_version, kind, Some("shop"), name)
        .unwrap_or_else(|e| panic!("{kind} {name} is not stored: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_commands_in_protobuf_store_the_objects_they_describe() {
    let c = Cluster::start(SimConfig::default()).await;
    assert!(c
        .ok(&["create", "namespace", "shop"])
        .await
        .contains("namespace/shop created"));
    assert!(c.sim.get("v1", "Namespace", None, "shop").is_ok());

    c.ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "shop",
        "--from-literal=mode=fast",
        "--from-literal=empty=",
    ])
    .await;
    let cm = stored(&c, "v1", "ConfigMap", "settings");
    assert_eq!(cm["data"], json!({"mode": "fast", "empty": ""}));
    assert!(cm["metadata"]["creationTimestamp"].is_string(), "{cm}");
    assert!(cm["metadata"].get("generateName").is_none(), "{cm}");

    c.ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "-n",
        "shop",
        "--from-literal=password=s3cr3t",
    ])
    .await;
    let secret = stored(&c, "v1", "Secret", "creds");
    assert_eq!(secret["data"]["password"], "czNjcjN0");

    c.ok(&[
        "create",
        "deployment",
        "web",
        "-n",
        "shop",
        "--image=nginx:1.25",
        "--replicas=2",
        "--port=80",
    ])
    .await;
    let d = stored(&c, "apps/v1", "Deployment", "web");
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
    assert!(
        d["spec"]["template"]["metadata"]
            .get("creationTimestamp")
            .is_none(),
        "an unset time stays unset: {d}"
    );
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.25");
    assert_eq!(container["ports"][0]["containerPort"], 80);

    c.ok(&[
        "create",
        "service",
        "clusterip",
        "web",
        "-n",
        "shop",
        "--tcp=80:8080",
    ])
    .await;
    let svc = stored(&c, "v1", "Service", "web");
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(svc["spec"]["type"], "ClusterIP");

    c.ok(&["create", "serviceaccount", "builder", "-n", "shop"])
        .await;
    stored(&c, "v1", "ServiceAccount", "builder");
    c.ok(&[
        "create",
        "role",
        "reader",
        "-n",
        "shop",
        "--verb=get,list",
        "--resource=configmaps",
    ])
    .await;
    let role = stored(&c, "rbac.authorization.k8s.io/v1", "Role", "reader");
    assert_eq!(role["rules"][0]["verbs"], json!(["get", "list"]));
    c.ok(&[
        "create",
        "rolebinding",
        "builder-reads",
        "-n",
        "shop",
        "--role=reader",
        "--serviceaccount=shop:builder",
    ])
    .await;
    let rb = stored(
        &c,
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "builder-reads",
    );
    assert_eq!(rb["subjects"][0]["name"], "builder");
    c.ok(&[
        "create",
        "job",
        "migrate",
        "-n",
        "shop",
        "--image=busybox",
        "--",
        "true",
    ])
    .await;
    let job = stored(&c, "batch/v1", "Job", "migrate");
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["command"],
        json!(["true"])
    );
    c.ok(&[
        "create",
        "cronjob",
        "nightly",
        "-n",
        "shop",
        "--image=busybox",
        "--schedule=0 3 * * *",
    ])
    .await;
    assert_eq!(
        stored(&c, "batch/v1", "CronJob", "nightly")["spec"]["schedule"],
        "0 3 * * *"
    );
    c.ok(&[
        "create",
        "ingress",
        "web",
        "-n",
        "shop",
        "--rule=shop.example.com/*=web:80",
    ])
    .await;
    let ing = stored(&c, "networking.k8s.io/v1", "Ingress", "web");
    assert_eq!(ing["spec"]["rules"][0]["host"], "shop.example.com");
    assert_eq!(
        ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["number"],
        80
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_changes_objects_with_label_annotate_scale_set_patch_rollout_edit_and_delete() {
    let c = Cluster::start(SimConfig::default()).await;
    c.ok(&["create", "namespace", "shop"]).await;
    c.ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "shop",
        "--from-literal=mode=fast",
        "--from-literal=old=1",
    ])
    .await;
    c.ok(&[
        "create",
        "deployment",
        "web",
        "-n",
        "shop",
        "--image=nginx:1.25",
    ])
    .await;

    c.ok(&["label", "configmap", "settings", "-n", "shop", "tier=back"])
        .await;
    c.ok(&[
        "annotate",
        "configmap",
        "settings",
        "-n",
        "shop",
        "owner=team-a",
    ])
    .await;
    let cm = stored(&c, "v1", "ConfigMap", "settings");
    assert_eq!(cm["metadata"]["labels"]["tier"], "back");
    assert_eq!(cm["metadata"]["annotations"]["owner"], "team-a");

    assert!(c
        .ok(&["scale", "deployment", "web", "-n", "shop", "--replicas=5"])
        .await
        .contains("scaled"));
    assert_eq!(
        stored(&c, "apps/v1", "Deployment", "web")["spec"]["replicas"],
        5
    );
    // The scale subresource as kubectl reads it.
    let scale: Value = serde_json::from_str(
        &c.ok(&[
            "get",
            "--raw",
            "/apis/apps/v1/namespaces/shop/deployments/web/scale",
        ])
        .await,
    )
    .unwrap();
    assert_eq!(scale["spec"]["replicas"], 5);
    assert_eq!(scale["status"]["selector"], "app=web");

    c.ok(&[
        "set",
        "image",
        "deployment/web",
        "-n",
        "shop",
        "nginx=nginx:1.26",
    ])
    .await;
    let containers =
        &stored(&c, "apps/v1", "Deployment", "web")["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["image"], "nginx:1.26");

    // Strategic merge: the container list is merged by name, so the image stays.
    c.ok(&[
        "patch", "deployment", "web", "-n", "shop", "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","env":[{"name":"MODE","value":"fast"}]}]}}}}"#,
    ])
    .await;
    let containers =
        &stored(&c, "apps/v1", "Deployment", "web")["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers.as_array().unwrap().len(), 1, "{containers}");
    assert_eq!(containers[0]["image"], "nginx:1.26");
    assert_eq!(containers[0]["env"][0]["value"], "fast");
    c.ok(&[
        "patch",
        "configmap",
        "settings",
        "-n",
        "shop",
        "--type=merge",
        "-p",
        r#"{"data":{"extra":"x"}}"#,
    ])
    .await;
    c.ok(&[
        "patch",
        "configmap",
        "settings",
        "-n",
        "shop",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/data/old"}]"#,
    ])
    .await;
    assert_eq!(
        stored(&c, "v1", "ConfigMap", "settings")["data"],
        json!({"mode": "fast", "extra": "x"})
    );

    assert!(c
        .ok(&["rollout", "restart", "deployment/web", "-n", "shop"])
        .await
        .contains("restarted"));
    let d = stored(&c, "apps/v1", "Deployment", "web");
    assert!(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string(),
        "{d}"
    );

    let editor = c.write(
        "edit.sh",
        "#!/bin/sh\nsed -i 's/mode: fast/mode: slow/' \"$1\"\n",
    );
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = c
        .cmd(&["edit", "configmap", "settings", "-n", "shop"])
        .env("KUBE_EDITOR", path(&editor))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stored(&c, "v1", "ConfigMap", "settings")["data"]["mode"],
        "slow"
    );

    c.ok(&["delete", "configmap", "settings", "-n", "shop"])
        .await;
    assert!(c
        .sim
        .get("v1", "ConfigMap", Some("shop"), "settings")
        .is_err());
    c.ok(&["delete", "namespace", "shop"]).await;
    assert!(c.sim.get("v1", "Namespace", None, "shop").is_err());
    assert!(
        c.sim
            .get("apps/v1", "Deployment", Some("shop"), "web")
            .is_err(),
        "deleting the namespace deleted what was in it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_warns_about_an_unavailable_aggregated_group_and_lists_everything_else() {
    let c = Cluster::start(SimConfig::default()).await;
    c.sim.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "still-listed", "namespace": "default"}}))
        .unwrap();
    c.sim
        .inject_fault(kube_sim::Fault::error(503).on_group("metrics.k8s.io"));
    let out = c.cmd(&["get", "configmaps"]).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("still-listed"));
    assert!(stderr.contains("metrics.k8s.io/v1beta1"), "{stderr}");
    assert!(c.sim.request_count("metrics.k8s.io", "discovery") >= 1);

    c.sim.clear_faults();
    let out = c
        .cmd(&["api-resources", "--api-group=metrics.k8s.io"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("metrics.k8s.io"), "{stderr}");
}
