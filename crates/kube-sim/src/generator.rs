//! A deterministic cluster generator for scale tests and benchmarks: N namespaces, M CRDs with
//! schemas and descriptions, K objects spread across built-in and custom types, with realistic
//! names, labels and description annotations. The same seed gives the same cluster.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::Result;
use crate::store::Store;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct GeneratorConfig {
    /// Seed of the generator (same seed, same cluster).
    #[arg(
        id = "gen_seed",
        long = "gen-seed",
        env = "KUBE_SIM_GEN_SEED",
        default_value_t = 42
    )]
    pub seed: u64,
    /// Namespaces to generate.
    #[arg(
        id = "gen_namespaces",
        long = "gen-namespaces",
        env = "KUBE_SIM_GEN_NAMESPACES",
        default_value_t = 0
    )]
    pub namespaces: usize,
    /// CustomResourceDefinitions to generate.
    #[arg(
        id = "gen_crds",
        long = "gen-crds",
        env = "KUBE_SIM_GEN_CRDS",
        default_value_t = 0
    )]
    pub crds: usize,
    /// Objects to generate, spread evenly across Deployments, StatefulSets, Services,
    /// ConfigMaps and the generated custom types.
    #[arg(
        id = "gen_objects",
        long = "gen-objects",
        env = "KUBE_SIM_GEN_OBJECTS",
        default_value_t = 0
    )]
    pub objects: usize,
    /// Realistic workloads to add (PostgreSQL, Kafka, Prometheus, a payments API... in
    /// teams' namespaces, with distractors and opaque custom types; see `workloads`).
    #[arg(
        id = "gen_workloads",
        long = "gen-workloads",
        env = "KUBE_SIM_GEN_WORKLOADS",
        default_value_t = 0
    )]
    pub workloads: usize,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            namespaces: 0,
            crds: 0,
            objects: 0,
            workloads: 0,
        }
    }
}

/// What was generated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GeneratedCluster {
    pub namespaces: Vec<String>,
    /// `(apiVersion, kind, plural)` of each generated custom type.
    pub custom_types: Vec<(String, String, String)>,
    pub objects: usize,
}

/// Names both generators draw from (this one and the fleet's, `crate::fleet`).
pub(crate) const TEAMS: &[&str] = &[
    "payments",
    "checkout",
    "search",
    "identity",
    "billing",
    "analytics",
    "catalog",
    "shipping",
    "notifications",
    "platform",
    "data",
    "ml",
    "support",
    "marketing",
    "inventory",
    "orders",
];
const SIZES: &[&str] = &["small", "medium", "large"];
pub(crate) const ENVS: &[&str] = &["prod", "staging", "dev"];
pub(crate) const APPS: &[&str] = &[
    "orders",
    "cart",
    "auth",
    "search",
    "ledger",
    "recommendations",
    "profile",
    "gateway",
    "reporting",
    "inventory",
    "pricing",
    "invoices",
    "sessions",
    "media",
    "feeds",
];
pub(crate) const COMPONENTS: &[(&str, &str)] = &[
    ("api", "serves the public HTTP API"),
    ("worker", "processes background jobs"),
    ("db", "stores the primary records"),
    ("cache", "caches hot reads"),
    ("queue", "buffers events between services"),
    ("frontend", "renders the web pages"),
];
/// (kind, plural, area, what it is)
const CUSTOM_KINDS: &[(&str, &str, &str, &str)] = &[
    (
        "PostgresCluster",
        "postgresclusters",
        "databases",
        "a highly available PostgreSQL cluster with streaming replicas",
    ),
    (
        "MySQLCluster",
        "mysqlclusters",
        "databases",
        "a MySQL InnoDB cluster with group replication",
    ),
    (
        "RedisFailover",
        "redisfailovers",
        "cache",
        "a Redis primary with Sentinel-managed failover",
    ),
    (
        "KafkaTopic",
        "kafkatopics",
        "messaging",
        "a Kafka topic with its partitions and retention",
    ),
    (
        "KafkaCluster",
        "kafkaclusters",
        "messaging",
        "a Kafka cluster of brokers and controllers",
    ),
    (
        "RabbitmqCluster",
        "rabbitmqclusters",
        "messaging",
        "a RabbitMQ message broker cluster",
    ),
    (
        "Bucket",
        "buckets",
        "storage",
        "an object storage bucket with lifecycle rules",
    ),
    (
        "Backup",
        "backups",
        "storage",
        "a one-off backup of a database to object storage",
    ),
    (
        "ScheduledBackup",
        "scheduledbackups",
        "storage",
        "a cron schedule of database backups",
    ),
    (
        "Certificate",
        "certificates",
        "security",
        "an X.509 certificate kept renewed from an issuer",
    ),
    (
        "Issuer",
        "issuers",
        "security",
        "a certificate authority that signs certificates",
    ),
    (
        "InferenceService",
        "inferenceservices",
        "ml",
        "a served machine learning model behind an HTTP endpoint",
    ),
    (
        "Dashboard",
        "dashboards",
        "observability",
        "a Grafana dashboard definition",
    ),
    (
        "AlertRule",
        "alertrules",
        "observability",
        "a Prometheus alerting rule group",
    ),
    (
        "Gateway",
        "gateways",
        "networking",
        "an ingress gateway with listeners",
    ),
    (
        "Pooler",
        "poolers",
        "databases",
        "a PgBouncer connection pooler in front of PostgreSQL",
    ),
    (
        "SearchCluster",
        "searchclusters",
        "search",
        "an OpenSearch cluster with data and master nodes",
    ),
    (
        "Workflow",
        "workflows",
        "pipelines",
        "a DAG of containerised steps",
    ),
    (
        "FeatureFlag",
        "featureflags",
        "config",
        "a feature flag with targeting rules",
    ),
    (
        "ExternalSecret",
        "externalsecrets",
        "security",
        "a secret synchronised from an external vault",
    ),
];

fn crd(kind: &str, plural: &str, group: &str, what: &str) -> Value {
    let desc = |s: &str| json!({"type": "string", "description": s});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}"), "annotations": {"description": format!("{kind}: {what}.")}},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List"), "categories": ["all"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": format!("{kind} is {what}."),
                    "properties": {
                        "spec": {"type": "object", "description": format!("Desired state of the {kind}."), "properties": {
                            "size": desc("Size class of the instance (small, medium, large)."),
                            "version": desc("Version of the software to run."),
                            "replicas": {"type": "integer", "description": "Number of instances to keep running."},
                            "owner": desc("Team that owns this instance."),
                        }},
                        "status": {"type": "object", "description": format!("Observed state of the {kind}."), "properties": {
                            "phase": desc("Lifecycle phase: Pending, Ready or Failed."),
                        }},
                    },
                }},
            }],
        },
    })
}

/// The status a controller would have written, so that a watcher reading health has work
/// to do: workloads with their replica counts (one in ten Deployments short of one
/// available replica), custom objects with a Ready condition (one in twenty False). Drawn
/// from the object's index, not the random generator, so that every other generated value
/// stays what it was.
fn generated_status(kind: &str, name: &str, spec: &Value, j: usize) -> Option<Value> {
    let replicas = spec.get("replicas").and_then(Value::as_i64).unwrap_or(1);
    match kind {
        "Deployment" => {
            let available = if j.is_multiple_of(10) {
                replicas - 1
            } else {
                replicas
            };
            Some(json!({"observedGeneration": 1, "replicas": replicas,
                "updatedReplicas": replicas, "readyReplicas": available,
                "availableReplicas": available,
                "conditions": [
                    {"type": "Available", "status": if available == replicas { "True" } else { "False" },
                     "reason": "MinimumReplicasAvailable", "lastTransitionTime": "2026-02-20T10:00:00Z"},
                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                     "lastTransitionTime": "2026-02-20T10:00:00Z"}]}))
        }
        "StatefulSet" => Some(json!({"observedGeneration": 1, "replicas": replicas,
            "readyReplicas": replicas, "updatedReplicas": replicas, "currentReplicas": replicas,
            "currentRevision": format!("{name}-1"), "updateRevision": format!("{name}-1")})),
        "Service" | "ConfigMap" => None,
        _ => {
            let ready = !j.is_multiple_of(20);
            Some(
                json!({"observedGeneration": 1, "phase": if ready { "Ready" } else { "Failed" },
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                    "reason": if ready { "Reconciled" } else { "BackendUnreachable" },
                    "message": if ready { "All instances are ready" } else { "2 of 3 instances unreachable" },
                    "lastTransitionTime": "2026-02-20T10:00:00Z"}]}),
            )
        }
    }
}

/// Generates a cluster into the store; deterministic for a given config.
pub fn generate(store: &Store, cfg: &GeneratorConfig) -> Result<GeneratedCluster> {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut out = GeneratedCluster::default();
    if cfg.workloads > 0 {
        for obj in crate::workloads::workload_objects(cfg.seed, cfg.workloads) {
            crate::seed::apply_object(store, obj)?;
        }
    }
    let ns_ty = store.type_for("v1", "Namespace")?;
    for i in 0..cfg.namespaces {
        let team = TEAMS[i % TEAMS.len()];
        let env = ENVS[(i / TEAMS.len()) % ENVS.len()];
        let round = i / (TEAMS.len() * ENVS.len());
        let name = if round == 0 {
            format!("{team}-{env}")
        } else {
            format!("{team}-{env}-{round}")
        };
        let obj = json!({"metadata": {"name": name, "labels": {"team": team, "environment": env},
            "annotations": {"description": format!("Workloads of the {team} team ({env}).")}}});
        if store.get(&ns_ty, "", &name).is_err() {
            store.create(&ns_ty, None, obj)?;
        }
        out.namespaces.push(name);
    }
    if out.namespaces.is_empty() {
        out.namespaces.push("default".into());
        if store.get(&ns_ty, "", "default").is_err() {
            store.create(&ns_ty, None, json!({"metadata": {"name": "default"}}))?;
        }
    }
    let crd_ty = store.type_for("apiextensions.k8s.io/v1", "CustomResourceDefinition")?;
    for i in 0..cfg.crds {
        let (kind, plural, area, what) = CUSTOM_KINDS[i % CUSTOM_KINDS.len()];
        let round = i / CUSTOM_KINDS.len();
        let group = if round == 0 {
            format!("{area}.acme.io")
        } else {
            format!("{area}{round}.acme.io")
        };
        let name = format!("{plural}.{group}");
        if store.get(&crd_ty, "", &name).is_err() {
            store.create(&crd_ty, None, crd(kind, plural, &group, what))?;
        }
        out.custom_types
            .push((format!("{group}/v1"), kind.to_string(), plural.to_string()));
    }
    let mut pool: Vec<(String, String, String)> = vec![
        ("apps/v1".into(), "Deployment".into(), "deployments".into()),
        (
            "apps/v1".into(),
            "StatefulSet".into(),
            "statefulsets".into(),
        ),
        ("v1".into(), "Service".into(), "services".into()),
        ("v1".into(), "ConfigMap".into(), "configmaps".into()),
    ];
    pool.extend(out.custom_types.iter().cloned());
    for j in 0..cfg.objects {
        let (api_version, kind, _) = &pool[j % pool.len()];
        let ns = &out.namespaces[rng.random_range(0..out.namespaces.len())];
        let team = ns.split('-').next().unwrap_or("platform");
        let app = APPS[rng.random_range(0..APPS.len())];
        let (component, purpose) = COMPONENTS[rng.random_range(0..COMPONENTS.len())];
        let name = format!("{app}-{component}-{j}");
        let labels = json!({
            "app.kubernetes.io/name": app,
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": format!("{team}-platform"),
            "team": team,
        });
        let description = format!("{kind} {name} of the {team} team: {purpose} for {app}.");
        let metadata = json!({"name": name, "namespace": ns, "labels": labels, "annotations": {"description": description}});
        let image = format!(
            "registry.acme.io/{team}/{app}-{component}:1.{}.{}",
            rng.random_range(0..20),
            rng.random_range(0..10)
        );
        let pod_template = json!({"metadata": {"labels": {"app.kubernetes.io/name": app, "app.kubernetes.io/component": component}},
            "spec": {"containers": [{"name": component, "image": image, "ports": [{"containerPort": 8080}]}]}});
        let selector = json!({"matchLabels": {"app.kubernetes.io/name": app, "app.kubernetes.io/component": component}});
        let body = match kind.as_str() {
            "Deployment" => {
                json!({"replicas": rng.random_range(1..5), "selector": selector, "template": pod_template})
            }
            "StatefulSet" => {
                json!({"replicas": rng.random_range(1..4), "serviceName": name, "selector": selector, "template": pod_template})
            }
            "Service" => {
                json!({"selector": {"app.kubernetes.io/name": app}, "ports": [{"port": 80, "targetPort": 8080}]})
            }
            "ConfigMap" => {
                json!({"LOG_LEVEL": "info", "FEATURE_SET": format!("{app}-{}", rng.random_range(1..9))})
            }
            _ => json!({"size": SIZES[rng.random_range(0..SIZES.len())],
                "version": format!("{}.{}", rng.random_range(10..17), rng.random_range(0..9)),
                "replicas": rng.random_range(1..4), "owner": team}),
        };
        let status = generated_status(kind, &name, &body, j);
        let field = if kind == "ConfigMap" { "data" } else { "spec" };
        let mut obj = json!({"apiVersion": api_version, "kind": kind, "metadata": metadata});
        obj[field] = body;
        if let Some(status) = status {
            obj["status"] = status;
        }
        let ty = store.type_for(api_version, kind)?;
        store.create(&ty, Some(ns), obj)?;
        out.objects += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_generates_the_same_cluster() {
        let cfg = GeneratorConfig {
            seed: 7,
            namespaces: 3,
            crds: 2,
            objects: 30,
            ..Default::default()
        };
        let dump = |s: &Store| {
            let mut names = Vec::new();
            for t in s.types() {
                let page = s.list(&t, &Default::default()).unwrap();
                names.extend(
                    page.items
                        .iter()
                        .map(|o| format!("{}/{}/{}", t.plural, o.namespace, o.name)),
                );
            }
            names
        };
        let (a, b) = (Store::new(100, 1), Store::new(100, 1));
        let ga = generate(&a, &cfg).unwrap();
        generate(&b, &cfg).unwrap();
        assert_eq!(ga.objects, 30);
        assert_eq!(ga.custom_types.len(), 2);
        assert_eq!(dump(&a), dump(&b));
    }
}
