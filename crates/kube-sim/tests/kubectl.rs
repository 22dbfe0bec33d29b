//! The real `kubectl` (1.32) against the simulator: apply (create, then a change), get (list, one,
//! -o json, -l, -w), label, delete, and a CRD followed by its custom resources. Validation stays
//! on (no `--validate=false`). Fails, never skips, when kubectl is missing.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use kube_sim::{SimConfig, SimHandle, SimServer};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

struct Cluster {
    sim: SimHandle,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Self {
        let ok = std::process::Command::new("kubectl")
            .args(["version", "--client"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(ok, "kubectl is not installed: these tests drive the real kubectl 1.32 (install it, e.g. from https://dl.k8s.io or apt.kubernetes.io)");
        let sim = SimServer::start(SimConfig::default()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        sim.write_kubeconfig(dir.path().join("kubeconfig")).unwrap();
        Self { sim, dir }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.args(args)
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env("KUBECACHEDIR", self.dir.path().join("cache"))
            .env("HOME", self.dir.path())
            .kill_on_drop(true);
        c
    }

    async fn run(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{stdout}\n{stderr}"
        );
        stdout
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

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
    let c = Cluster::start().await;
    let f = c.write("web.yaml", DEPLOYMENT);
    assert!(c
        .run(&["apply", "-f", path(&f)])
        .await
        .contains("deployment.apps/web created"));
    let f = c.write(
        "web.yaml",
        &DEPLOYMENT
            .replace("replicas: 1", "replicas: 3")
            .replace("nginx:1.25", "nginx:1.26"),
    );
    assert!(c
        .run(&["apply", "-f", path(&f)])
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
    assert!(c
        .run(&["apply", "-f", path(&f)])
        .await
        .contains("unchanged"));

    assert!(c.run(&["get", "deployments"]).await.contains("web"));
    let one: Value =
        serde_json::from_str(&c.run(&["get", "deployment", "web", "-o", "json"]).await).unwrap();
    assert_eq!(one["metadata"]["labels"]["tier"], "front");
    assert!(c
        .run(&["get", "deployments", "-l", "tier=front", "-o", "name"])
        .await
        .contains("deployment.apps/web"));
    assert!(c
        .run(&["get", "deployments", "-l", "tier!=front", "-o", "name"])
        .await
        .trim()
        .is_empty());

    c.run(&["label", "deployment", "web", "stage=canary"]).await;
    let labels = &c
        .sim
        .get("apps/v1", "Deployment", Some("default"), "web")
        .unwrap()["metadata"]["labels"];
    assert_eq!(labels["stage"], "canary");
    assert!(c
        .run(&["get", "deploy", "-l", "stage in (canary)", "-o", "name"])
        .await
        .contains("web"));

    assert!(c
        .run(&["delete", "deployment", "web"])
        .await
        .contains("deleted"));
    assert!(c
        .sim
        .get("apps/v1", "Deployment", Some("default"), "web")
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_sees_a_new_object() {
    let c = Cluster::start().await;
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
    let c = Cluster::start().await;
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/demo");
    c.run(&["apply", "-f", &format!("{demo}/10-crd-cloudnative-pg.yaml")])
        .await;
    let crd = c
        .run(&["get", "crd", "clusters.postgresql.cnpg.io", "-o", "json"])
        .await;
    let crd: Value = serde_json::from_str(&crd).unwrap();
    assert_eq!(crd["status"]["conditions"][1]["type"], "Established");
    // (`kubectl create namespace` sends protobuf, which the simulator does not speak; apply sends JSON.)
    let ns = c.write(
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: data\n",
    );
    c.run(&["apply", "-f", path(&ns)]).await;
    let f = c.write(
        "pg.yaml",
        "apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata:\n  name: orders-db\n  namespace: data\n  labels: {app: orders}\nspec:\n  instances: 3\n",
    );
    assert!(c
        .run(&["apply", "-f", path(&f)])
        .await
        .contains("cluster.postgresql.cnpg.io/orders-db created"));
    let f = c.write(
        "pg.yaml",
        &std::fs::read_to_string(&f)
            .unwrap()
            .replace("instances: 3", "instances: 5"),
    );
    assert!(c
        .run(&["apply", "-f", path(&f)])
        .await
        .contains("configured"));
    let listed = c
        .run(&["get", "clusters.postgresql.cnpg.io", "-n", "data"])
        .await;
    assert!(listed.contains("orders-db"), "{listed}");
    let one: Value = serde_json::from_str(
        &c.run(&[
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
    c.run(&["delete", "crd", "clusters.postgresql.cnpg.io"])
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
