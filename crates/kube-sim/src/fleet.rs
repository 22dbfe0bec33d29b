//! A fleet of simulated clusters that share what real fleets share: a platform stack identical
//! in every cluster (cert-manager, ingress-nginx, monitoring, logging, the same operators and
//! their custom resources), apps deployed in several environments with small differences
//! (replicas, the environment label, image tags, a canary here and there), apps of one
//! cluster only, custom types with statuses, and about 3% unhealthy objects. Deterministic
//! from a seed and the cluster's index; `objects` is exact per cluster (namespaces and CRDs
//! included, the simulator's four built-in namespaces not).

use serde::Serialize;
use serde_json::{json, Value};

use crate::error::{Result, SimError};
use crate::generator::{APPS, COMPONENTS, ENVS, TEAMS};
use crate::store::Store;

/// Environments the fleet's clusters run, in turn: cluster 0 prod, 1 staging, 2 dev, 3 prod...
pub const ENVIRONMENTS: &[&str] = ENVS;
/// Of the objects whose status tells their health (workloads, the operators' custom
/// resources; about half of a cluster), those unhealthy, per thousand: 3% of all objects.
pub const UNHEALTHY_PER_THOUSAND: u64 = 60;

/// One cluster of the fleet, as generated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetMember {
    /// `c01`, `c02`, ...: the cluster id and its kubeconfig context.
    pub id: String,
    pub environment: String,
    /// Objects generated (exactly the `objects` asked for).
    pub objects: usize,
    /// Objects whose status makes them unhealthy (Failed or InProgress).
    pub unhealthy: usize,
    /// Of `objects`: the platform stack (identical in every cluster), the environment's
    /// apps (shared by the clusters of one environment but for canaries), this cluster's own.
    pub platform: usize,
    pub environment_apps: usize,
    pub own: usize,
}

/// The id of cluster `index` (0-based) of a fleet of `clusters`: `c01`..`c50`, wider past 99.
pub fn cluster_id(index: usize, clusters: usize) -> String {
    let width = clusters.max(index + 1).to_string().len().max(2);
    format!("c{:0width$}", index + 1)
}

/// The environment of cluster `index`.
pub fn environment_of(index: usize) -> &'static str {
    ENVIRONMENTS[index % ENVIRONMENTS.len()]
}

/// SplitMix64 of three words: the fleet's deterministic choices, each drawn from what it is
/// about (seed, cluster, object), so that changing one part never shifts another.
fn mix(a: u64, b: u64, c: u64) -> u64 {
    let mut z = a
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(b.wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(c.wrapping_mul(0x94D0_49BB_1331_11EB))
        .wrapping_add(0x2545_F491_4F6C_DD1D);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn pick<T: Copy>(items: &[T], r: u64) -> T {
    items[(r % items.len() as u64) as usize]
}

/// (group, kind, plural, namespaced, what it is): the operators' types every cluster serves.
const PLATFORM_TYPES: &[(&str, &str, &str, bool, &str)] = &[
    (
        "cert-manager.io",
        "Certificate",
        "certificates",
        true,
        "an X.509 certificate kept renewed by cert-manager",
    ),
    (
        "cert-manager.io",
        "Issuer",
        "issuers",
        true,
        "a certificate authority of one namespace",
    ),
    (
        "cert-manager.io",
        "ClusterIssuer",
        "clusterissuers",
        false,
        "a certificate authority of the whole cluster",
    ),
    (
        "monitoring.coreos.com",
        "ServiceMonitor",
        "servicemonitors",
        true,
        "the Services Prometheus scrapes",
    ),
    (
        "monitoring.coreos.com",
        "PrometheusRule",
        "prometheusrules",
        true,
        "Prometheus alerting and recording rules",
    ),
    (
        "postgresql.cnpg.io",
        "Cluster",
        "clusters",
        true,
        "a PostgreSQL cluster run by CloudNativePG",
    ),
    (
        "kafka.strimzi.io",
        "Kafka",
        "kafkas",
        true,
        "an Apache Kafka cluster run by Strimzi",
    ),
    (
        "kafka.strimzi.io",
        "KafkaTopic",
        "kafkatopics",
        true,
        "a Kafka topic with its partitions and retention",
    ),
    (
        "external-secrets.io",
        "ExternalSecret",
        "externalsecrets",
        true,
        "a Secret synchronised from an external vault",
    ),
    (
        "argoproj.io",
        "Application",
        "applications",
        true,
        "an Argo CD application deployed from Git",
    ),
];

/// (namespace, name, kind, image, what it does): the platform's workloads.
const PLATFORM_WORKLOADS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "cert-manager",
        "cert-manager",
        "Deployment",
        "quay.io/jetstack/cert-manager-controller:v1.15.3",
        "issues and renews certificates",
    ),
    (
        "cert-manager",
        "cert-manager-cainjector",
        "Deployment",
        "quay.io/jetstack/cert-manager-cainjector:v1.15.3",
        "injects CA bundles into webhooks",
    ),
    (
        "cert-manager",
        "cert-manager-webhook",
        "Deployment",
        "quay.io/jetstack/cert-manager-webhook:v1.15.3",
        "validates cert-manager resources",
    ),
    (
        "ingress-nginx",
        "ingress-nginx-controller",
        "Deployment",
        "registry.k8s.io/ingress-nginx/controller:v1.11.2",
        "routes HTTP traffic into the cluster",
    ),
    (
        "monitoring",
        "prometheus-operator",
        "Deployment",
        "quay.io/prometheus-operator/prometheus-operator:v0.76.0",
        "runs Prometheus and Alertmanager",
    ),
    (
        "monitoring",
        "kube-state-metrics",
        "Deployment",
        "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.13.0",
        "exports the state of Kubernetes objects as metrics",
    ),
    (
        "monitoring",
        "grafana",
        "Deployment",
        "docker.io/grafana/grafana:11.2.0",
        "serves the dashboards",
    ),
    (
        "monitoring",
        "prometheus-k8s",
        "StatefulSet",
        "quay.io/prometheus/prometheus:v2.54.1",
        "scrapes and stores metrics",
    ),
    (
        "monitoring",
        "alertmanager-main",
        "StatefulSet",
        "quay.io/prometheus/alertmanager:v0.27.0",
        "routes alerts to on-call",
    ),
    (
        "monitoring",
        "node-exporter",
        "DaemonSet",
        "quay.io/prometheus/node-exporter:v1.8.2",
        "exports node metrics",
    ),
    (
        "logging",
        "fluent-bit",
        "DaemonSet",
        "cr.fluentbit.io/fluent/fluent-bit:3.1.7",
        "ships container logs",
    ),
    (
        "external-secrets",
        "external-secrets",
        "Deployment",
        "ghcr.io/external-secrets/external-secrets:v0.10.3",
        "syncs secrets from the vault",
    ),
    (
        "cnpg-system",
        "cnpg-controller-manager",
        "Deployment",
        "ghcr.io/cloudnative-pg/cloudnative-pg:1.24.0",
        "operates PostgreSQL clusters",
    ),
    (
        "strimzi",
        "strimzi-cluster-operator",
        "Deployment",
        "quay.io/strimzi/operator:0.43.0",
        "operates Kafka clusters",
    ),
    (
        "argocd",
        "argocd-server",
        "Deployment",
        "quay.io/argoproj/argocd:v2.12.3",
        "serves the Argo CD API and UI",
    ),
    (
        "argocd",
        "argocd-repo-server",
        "Deployment",
        "quay.io/argoproj/argocd:v2.12.3",
        "renders manifests from Git",
    ),
    (
        "argocd",
        "argocd-application-controller",
        "StatefulSet",
        "quay.io/argoproj/argocd:v2.12.3",
        "syncs applications to the cluster",
    ),
];

const PLATFORM_NAMESPACES: &[&str] = &[
    "cert-manager",
    "ingress-nginx",
    "monitoring",
    "logging",
    "external-secrets",
    "cnpg-system",
    "strimzi",
    "argocd",
];

/// What the platform's dashboards, rules and applications are about.
const PLATFORM_TOPICS: &[&str] = &[
    "kubernetes-apiserver",
    "kubelet",
    "node",
    "etcd",
    "coredns",
    "ingress",
    "certificates",
    "postgres",
    "kafka",
    "jvm",
    "go-runtime",
    "http-latency",
    "http-errors",
    "storage",
    "network",
    "scheduler",
    "controller-manager",
    "capacity",
    "cost",
    "slo",
    "logging",
    "argocd",
    "external-secrets",
    "alertmanager",
    "prometheus",
    "grafana",
    "dns",
    "cpu-throttling",
    "memory-pressure",
    "pod-restarts",
];

/// Kinds of the environments' apps, in turn.
const APP_KINDS: &[&str] = &[
    "Deployment",
    "Service",
    "ConfigMap",
    "Deployment",
    "ServiceAccount",
    "StatefulSet",
    "HorizontalPodAutoscaler",
    "Ingress",
    "Certificate",
    "ServiceMonitor",
    "Cluster",
    "KafkaTopic",
    "ExternalSecret",
    "CronJob",
    "Application",
];
/// Kinds of the apps of one cluster only, in turn.
const OWN_KINDS: &[&str] = &[
    "Deployment",
    "ConfigMap",
    "Service",
    "CronJob",
    "Certificate",
    "Cluster",
    "KafkaTopic",
];
const PURPOSES: &[&str] = &[
    "experiment",
    "migration",
    "backfill",
    "debug",
    "loadtest",
    "report",
    "replay",
    "preview",
];

/// One object being built: what every kind needs to become a manifest.
struct Spec<'a> {
    kind: &'a str,
    namespace: &'a str,
    name: String,
    labels: Value,
    description: String,
    image: String,
    replicas: i64,
    /// Drawn per cluster and object: whether this one's status says it is unhealthy.
    unhealthy: bool,
}

fn api_version_of(kind: &str) -> &'static str {
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" => "apps/v1",
        "CronJob" => "batch/v1",
        "HorizontalPodAutoscaler" => "autoscaling/v2",
        "Ingress" => "networking.k8s.io/v1",
        "ClusterRole" | "ClusterRoleBinding" => "rbac.authorization.k8s.io/v1",
        "Certificate" | "Issuer" | "ClusterIssuer" => "cert-manager.io/v1",
        "ServiceMonitor" | "PrometheusRule" => "monitoring.coreos.com/v1",
        "Cluster" => "postgresql.cnpg.io/v1",
        "Kafka" | "KafkaTopic" => "kafka.strimzi.io/v1",
        "ExternalSecret" => "external-secrets.io/v1",
        "Application" => "argoproj.io/v1",
        _ => "v1",
    }
}

fn ready_condition(ready: bool) -> Value {
    json!({"type": "Ready", "status": if ready { "True" } else { "False" },
        "reason": if ready { "Reconciled" } else { "BackendUnreachable" },
        "message": if ready { "Ready" } else { "2 of 3 instances unreachable" },
        "lastTransitionTime": "2026-02-20T10:00:00Z"})
}

/// The manifest of `s`, with the status its controller would have written.
fn manifest(s: &Spec) -> Value {
    let api_version = api_version_of(s.kind);
    let mut metadata = json!({"name": s.name, "labels": s.labels,
        "annotations": {"description": s.description}});
    if !s.namespace.is_empty() {
        metadata["namespace"] = json!(s.namespace);
    }
    let name = s.labels["app.kubernetes.io/name"].clone();
    let selector = json!({"matchLabels": {"app.kubernetes.io/name": name}});
    let template = json!({"metadata": {"labels": {"app.kubernetes.io/name": name}},
        "spec": {"containers": [{"name": "main", "image": s.image, "ports": [{"containerPort": 8080}]}]}});
    let (want, bad) = (s.replicas, s.unhealthy);
    let (spec, status): (Value, Option<Value>) = match s.kind {
        "Deployment" => (
            json!({"replicas": want, "selector": selector, "template": template}),
            Some(if bad {
                json!({"observedGeneration": 1, "replicas": want, "updatedReplicas": want,
                    "readyReplicas": 0, "availableReplicas": 0, "unavailableReplicas": want,
                    "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
                        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                         "message": format!("ReplicaSet \"{}\" has timed out progressing.", s.name)}]})
            } else {
                json!({"observedGeneration": 1, "replicas": want, "updatedReplicas": want,
                    "readyReplicas": want, "availableReplicas": want,
                    "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]})
            }),
        ),
        "StatefulSet" => {
            let ready = if bad { want - 1 } else { want };
            (
                json!({"replicas": want, "serviceName": s.name, "selector": selector, "template": template}),
                Some(
                    json!({"observedGeneration": 1, "replicas": want, "readyReplicas": ready,
                    "updatedReplicas": want, "currentReplicas": want,
                    "currentRevision": format!("{}-1", s.name), "updateRevision": format!("{}-1", s.name)}),
                ),
            )
        }
        "DaemonSet" => {
            let ready = if bad { 5 } else { 6 };
            (
                json!({"selector": selector, "template": template}),
                Some(json!({"observedGeneration": 1, "desiredNumberScheduled": 6,
                    "currentNumberScheduled": 6, "updatedNumberScheduled": 6,
                    "numberAvailable": ready, "numberReady": ready})),
            )
        }
        "Service" => (
            json!({"selector": {"app.kubernetes.io/name": name},
                "ports": [{"port": 80, "targetPort": 8080}], "type": "ClusterIP"}),
            None,
        ),
        "ConfigMap" | "ServiceAccount" | "ClusterRole" | "ClusterRoleBinding" => {
            (Value::Null, None)
        }
        "CronJob" => (
            json!({"schedule": "17 3 * * *", "jobTemplate": {"spec": {"template": template}}}),
            None,
        ),
        "HorizontalPodAutoscaler" => (
            json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": s.name},
                "minReplicas": want, "maxReplicas": want * 3}),
            None,
        ),
        "Ingress" => (
            json!({"ingressClassName": "nginx", "rules": [{"host": format!("{}.acme.io", s.name)}]}),
            None,
        ),
        "ServiceMonitor" | "PrometheusRule" => (json!({"selector": selector}), None),
        _ => (
            json!({"instances": want, "owner": s.labels["team"].clone()}),
            Some(json!({"observedGeneration": 1, "conditions": [ready_condition(!bad)]})),
        ),
    };
    let mut obj = json!({"apiVersion": api_version, "kind": s.kind, "metadata": metadata});
    match s.kind {
        "ConfigMap" => obj["data"] = json!({"LOG_LEVEL": "info"}),
        "ServiceAccount" | "ClusterRole" | "ClusterRoleBinding" => {}
        _ => obj["spec"] = spec,
    }
    if let Some(status) = status {
        obj["status"] = status;
    }
    obj
}

/// Whether `obj` has a status that reads unhealthy by the kstatus rules.
fn is_unhealthy(obj: &Value) -> bool {
    let status = &obj["status"];
    let cond = |t: &str| {
        status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == t && c["status"] == "False")
    };
    match obj["kind"].as_str().unwrap_or_default() {
        "Deployment" => cond("Available"),
        "StatefulSet" => status["readyReplicas"] != status["replicas"],
        "DaemonSet" => status["numberReady"] != status["desiredNumberScheduled"],
        _ => cond("Ready"),
    }
}

fn crd(group: &str, kind: &str, plural: &str, namespaced: bool, what: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}"),
            "annotations": {"description": format!("{kind}: {what}.")}},
        "spec": {
            "group": group, "scope": if namespaced { "Namespaced" } else { "Cluster" },
            "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind,
                      "listKind": format!("{kind}List")},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "description": format!("{kind} is {what}."),
                    "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    })
}

fn namespace(name: &str, labels: Value, description: String) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": labels, "annotations": {"description": description}}})
}

/// The objects of cluster `index` in the order they are created (namespaces and CRDs
/// first), exactly `objects` of them; `None` for an index past the fleet is not a thing:
/// any index is a cluster.
pub fn cluster_objects(seed: u64, index: usize, objects: usize) -> Result<Vec<Value>> {
    let env = environment_of(index);
    // Health varies per cluster: drawn from seed, cluster and the object's position.
    let unhealthy =
        |k: u64| mix(seed ^ 0x4845_414c, index as u64 + 1, k) % 1000 < UNHEALTHY_PER_THOUSAND;
    let mut out = platform_core(&unhealthy);
    let team_namespaces = TEAMS.len();
    let minimum = out.len() + team_namespaces + 2;
    if objects < minimum {
        return Err(SimError::BadRequest(format!(
            "a fleet cluster needs at least {minimum} objects (the platform stack and the teams' namespaces); {objects} asked"
        )));
    }
    let platform = out.len().max(objects / 5);
    for k in 0..platform - out.len() {
        out.push(platform_filler(k, &unhealthy));
    }
    let rest = objects - platform;
    let env_apps = (rest * 3 / 4).max(team_namespaces + 1);
    for team in TEAMS {
        out.push(namespace(
            team,
            json!({"team": team, "environment": env}),
            format!("Workloads of the {team} team ({env})."),
        ));
    }
    for k in 0..env_apps - team_namespaces {
        out.push(environment_app(seed, index, env, k as u64, &unhealthy));
    }
    for k in 0..objects - platform - env_apps {
        out.push(own_app(seed, index, env, k as u64, &unhealthy));
    }
    Ok(out)
}

/// The platform stack's fixed part: namespaces, operators' CRDs, workloads with their
/// ServiceAccounts, Services and ServiceMonitors, two ClusterIssuers. Identical everywhere
/// but for health.
fn platform_core(unhealthy: &dyn Fn(u64) -> bool) -> Vec<Value> {
    let mut out: Vec<Value> = PLATFORM_NAMESPACES
        .iter()
        .map(|ns| {
            namespace(
                ns,
                json!({"app.kubernetes.io/part-of": "platform"}),
                format!("Platform namespace {ns}, managed by the platform team."),
            )
        })
        .collect();
    out.extend(
        PLATFORM_TYPES
            .iter()
            .map(|(g, k, p, n, w)| crd(g, k, p, *n, w)),
    );
    for (i, (ns, name, kind, image, what)) in PLATFORM_WORKLOADS.iter().enumerate() {
        let labels = json!({"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": ns,
            "app.kubernetes.io/managed-by": "argocd", "team": "platform"});
        let mut spec = Spec {
            kind,
            namespace: ns,
            name: name.to_string(),
            labels,
            description: format!("{kind} {name}: {what}."),
            image: image.to_string(),
            replicas: 2,
            unhealthy: unhealthy(1_000_000 + i as u64),
        };
        out.push(manifest(&spec));
        spec.unhealthy = false;
        for (kind, what) in [
            ("ServiceAccount", "the identity"),
            ("Service", "the endpoint"),
            ("ServiceMonitor", "the metrics scrape"),
        ] {
            spec.kind = kind;
            spec.description = format!("{kind} {name}: {what} of {name}.");
            out.push(manifest(&spec));
        }
    }
    for (name, what) in [
        ("letsencrypt-prod", "Let's Encrypt production ACME issuer"),
        ("letsencrypt-staging", "Let's Encrypt staging ACME issuer"),
    ] {
        out.push(manifest(&Spec {
            kind: "ClusterIssuer",
            namespace: "",
            name: name.into(),
            labels: json!({"app.kubernetes.io/name": name, "team": "platform"}),
            description: format!("ClusterIssuer {name}: the {what}."),
            image: String::new(),
            replicas: 1,
            unhealthy: false,
        }));
    }
    out
}

/// The platform's `k`th dashboard, rule group or platform application: the same in every
/// cluster.
fn platform_filler(k: usize, unhealthy: &dyn Fn(u64) -> bool) -> Value {
    let topic = PLATFORM_TOPICS[k / 3 % PLATFORM_TOPICS.len()];
    let round = k / (3 * PLATFORM_TOPICS.len());
    let suffix = if round == 0 {
        String::new()
    } else {
        format!("-{round}")
    };
    let (kind, ns, name, what) = match k % 3 {
        0 => (
            "ConfigMap",
            "monitoring",
            format!("grafana-dashboard-{topic}{suffix}"),
            format!("the Grafana dashboard of {topic}"),
        ),
        1 => (
            "PrometheusRule",
            "monitoring",
            format!("{topic}-rules{suffix}"),
            format!("alerting rules for {topic}"),
        ),
        _ => (
            "Application",
            "argocd",
            format!("platform-{topic}{suffix}"),
            format!("the platform's {topic} stack deployed from Git"),
        ),
    };
    manifest(&Spec {
        kind,
        namespace: ns,
        labels: json!({"app.kubernetes.io/name": topic, "app.kubernetes.io/part-of": "platform", "team": "platform"}),
        description: format!("{kind} {name}: {what}."),
        name,
        image: String::new(),
        replicas: 1,
        unhealthy: unhealthy(2_000_000 + k as u64),
    })
}

/// The `k`th app object of the environments: the same name, team and version line in every
/// cluster; the environment label, the image tag and the replicas follow the environment,
/// and one workload in twenty of a cluster runs a canary tag of its own.
fn environment_app(
    seed: u64,
    index: usize,
    env: &str,
    k: u64,
    unhealthy: &dyn Fn(u64) -> bool,
) -> Value {
    let r = mix(seed, 0, k);
    let team = pick(TEAMS, r);
    let app = pick(APPS, r >> 8);
    let (component, purpose) = pick(COMPONENTS, r >> 16);
    let kind = APP_KINDS[k as usize % APP_KINDS.len()];
    let (major, minor, patch) = (1 + (r >> 24) % 3, (r >> 28) % 20, (r >> 36) % 10);
    let mut tag = match env {
        "prod" => format!("v{major}.{minor}.{patch}"),
        "staging" => format!("v{major}.{}.0", minor + 1),
        _ => format!("v{major}.{}.0-dev.{}", minor + 1, (r >> 40) % 50),
    };
    if mix(seed ^ 0xCA4A, index as u64 + 1, k) % 20 == 0 {
        tag.push_str("-canary");
    }
    let name = format!("{app}-{component}-{k}");
    let replicas = match env {
        "prod" => 3 + ((r >> 44) % 4) as i64,
        "staging" => 2,
        _ => 1,
    };
    manifest(&Spec {
        kind,
        namespace: team,
        labels: json!({"app.kubernetes.io/name": app, "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": format!("{team}-{app}"), "team": team, "environment": env}),
        description: format!("{kind} {name} of the {team} team: {purpose} for {app}."),
        image: format!("registry.acme.io/{team}/{app}-{component}:{tag}"),
        name,
        replicas,
        unhealthy: unhealthy(3_000_000 + k),
    })
}

/// The `k`th object of this cluster only: experiments, migrations, backfills.
fn own_app(seed: u64, index: usize, env: &str, k: u64, unhealthy: &dyn Fn(u64) -> bool) -> Value {
    let r = mix(seed ^ 0x0_5E1F, index as u64 + 1, k);
    let team = pick(TEAMS, r);
    let app = pick(APPS, r >> 8);
    let purpose = pick(PURPOSES, r >> 16);
    let kind = OWN_KINDS[k as usize % OWN_KINDS.len()];
    let name = format!("{app}-{purpose}-{:06x}", (r >> 24) & 0xFF_FFFF);
    manifest(&Spec {
        kind,
        namespace: team,
        labels: json!({"app.kubernetes.io/name": app, "app.kubernetes.io/component": purpose,
            "team": team, "environment": env}),
        description: format!("{kind} {name}: a {purpose} of {app} by the {team} team."),
        image: format!(
            "registry.acme.io/{team}/{app}-{purpose}:sha-{:07x}",
            (r >> 32) & 0xFFF_FFFF
        ),
        name,
        replicas: 1,
        unhealthy: unhealthy(4_000_000 + k),
    })
}

/// Creates cluster `index` of a fleet of `clusters` in `store`.
pub fn generate_member(
    store: &Store,
    seed: u64,
    index: usize,
    clusters: usize,
    objects: usize,
) -> Result<FleetMember> {
    let all = cluster_objects(seed, index, objects)?;
    let platform = platform_core(&|_| false).len().max(objects / 5);
    let env_apps = ((objects - platform) * 3 / 4).max(TEAMS.len() + 1);
    let mut unhealthy = 0;
    for obj in all {
        if is_unhealthy(&obj) {
            unhealthy += 1;
        }
        let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        let ty = store.type_for(&api_version, &kind)?;
        let ns = obj["metadata"]["namespace"].as_str().map(str::to_string);
        store.create(&ty, ns.as_deref().filter(|_| ty.namespaced), obj)?;
    }
    Ok(FleetMember {
        id: cluster_id(index, clusters),
        environment: environment_of(index).to_string(),
        objects,
        unhealthy,
        platform,
        environment_apps: env_apps,
        own: objects - platform - env_apps,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// What the document text is made of: kind, namespace, name, labels, images, description.
    fn text_of(o: &Value) -> String {
        format!(
            "{} {}/{} {} {} {}",
            o["kind"],
            o["metadata"]["namespace"],
            o["metadata"]["name"],
            o["metadata"]["labels"],
            o.pointer("/spec/template/spec/containers/0/image")
                .unwrap_or(&Value::Null),
            o["metadata"]["annotations"]["description"]
        )
    }

    fn texts(seed: u64, index: usize, objects: usize) -> Vec<String> {
        cluster_objects(seed, index, objects)
            .unwrap()
            .iter()
            .map(text_of)
            .collect()
    }

    #[test]
    fn cluster_ids_are_zero_padded_and_widen_past_99() {
        assert_eq!(cluster_id(0, 50), "c01");
        assert_eq!(cluster_id(49, 50), "c50");
        assert_eq!(cluster_id(0, 250), "c001");
    }

    #[test]
    fn a_cluster_has_exactly_the_objects_asked_for_and_the_same_seed_gives_the_same_cluster() {
        for objects in [200, 1000, 5000] {
            let a = cluster_objects(7, 3, objects).unwrap();
            assert_eq!(a.len(), objects);
            assert_eq!(a, cluster_objects(7, 3, objects).unwrap());
        }
        assert_ne!(
            cluster_objects(7, 3, 1000).unwrap(),
            cluster_objects(8, 3, 1000).unwrap()
        );
        assert!(cluster_objects(7, 0, 50).is_err());
    }

    #[test]
    fn the_platform_stack_is_identical_in_every_cluster() {
        let platform = |i| texts(1, i, 5000)[..1000].to_vec();
        assert_eq!(platform(0), platform(1));
        assert_eq!(platform(0), platform(49));
        assert!(platform(0)
            .iter()
            .any(|t| t.contains("cert-manager-controller:v1.15.3")));
    }

    #[test]
    fn clusters_of_one_environment_share_their_apps_but_for_a_few_canaries() {
        let (a, b, staging) = (texts(1, 0, 5000), texts(1, 3, 5000), texts(1, 1, 5000));
        let apps = 1000..4000;
        let same = apps.clone().filter(|&i| a[i] == b[i]).count();
        // Only workloads carry an image; one in twenty of those runs a canary tag.
        assert!(same > 2_850 && same < 3_000, "{same} of 3,000 shared");
        let across = apps.filter(|&i| a[i] == staging[i]).count();
        assert!(across < 1_600, "prod and staging share {across} of 3,000");
        let own_a: BTreeSet<_> = a[4000..].iter().collect();
        assert!(
            b[4000..].iter().all(|t| !own_a.contains(t)),
            "a cluster's own apps are its own"
        );
    }

    #[test]
    fn two_to_five_percent_of_objects_are_unhealthy_with_custom_types_among_them() {
        let objs = cluster_objects(1, 5, 5000).unwrap();
        let bad: Vec<&Value> = objs.iter().filter(|o| is_unhealthy(o)).collect();
        let rate = bad.len() as f64 / objs.len() as f64;
        assert!(
            (0.01..=0.05).contains(&rate),
            "{} unhealthy of 5,000",
            bad.len()
        );
        assert!(bad
            .iter()
            .any(|o| o["kind"] == "Cluster" && o["status"]["conditions"][0]["status"] == "False"));
        assert!(bad.iter().any(|o| o["kind"] == "Deployment"));
    }

    #[test]
    fn a_member_is_created_in_the_store_with_its_statuses() {
        let store = Store::new(10_000, 1);
        let m = generate_member(&store, 1, 1, 2, 400).unwrap();
        assert_eq!(m.id, "c02");
        assert_eq!(m.environment, "staging");
        assert_eq!(store.object_count(), 400);
        assert_eq!(m.platform + m.environment_apps + m.own, 400);
        let ty = store.type_for("postgresql.cnpg.io/v1", "Cluster").unwrap();
        let page = store.list(&ty, &Default::default()).unwrap();
        assert!(!page.items.is_empty());
        assert!(page
            .items
            .iter()
            .all(|o| o.value()["status"]["conditions"][0]["type"] == "Ready"));
    }
}
