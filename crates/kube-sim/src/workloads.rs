//! A realistic workload catalogue for relevance tests: teams' namespaces holding the
//! products a real cluster runs (PostgreSQL, MySQL in a Deployment, Kafka, Prometheus, a
//! payments API...), with product names, labels, description annotations and images, their
//! Services and ConfigMaps, distractors that mention a product without being one (a
//! PostgreSQL exporter, a Kafka web console, a migrations Job), and custom types whose
//! instances say nothing of what they are (only their type does).
//!
//! Workloads carry the status their controller would have written, a third of them short of a
//! ready replica (and a third of the migration Jobs failed), and CloudNativePG `Cluster`s
//! (a database operator's custom resources) come with a Ready condition, every other one
//! `Ready=False`: questions about health have answers and distractors in every cluster.
//!
//! Every object carries the annotation [`TOPICS_ANNOTATION`]: the questions it answers, as
//! words ("database postgres team:finance"). cw never indexes it (only description
//! annotations reach the index), so a relevance harness can read the expected answers from the
//! cluster without the index seeing them. The same seed gives the same cluster.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// The annotation that lists the topics an object answers (never indexed by cw).
pub const TOPICS_ANNOTATION: &str = "relevance.cw.dev/topics";

/// (team, what the team does): one namespace per team, labelled `team=<team>`.
const TEAMS: &[(&str, &str)] = &[
    ("finance", "payments, invoices and the ledger"),
    ("shop", "the online shop's storefront and checkout"),
    ("identity", "logins, accounts and tokens"),
    ("search", "product search and recommendations"),
    ("logistics", "warehouses, shipments and carriers"),
    ("marketing", "campaigns, newsletters and coupons"),
    ("analytics", "reporting and the data warehouse"),
    ("platform", "shared infrastructure for every team"),
];

/// Business domains that name workloads (`orders-postgres`, `ledger-kafka`).
const DOMAINS: &[&str] = &[
    "orders",
    "ledger",
    "catalog",
    "accounts",
    "shipments",
    "coupons",
    "reports",
    "inventory",
    "reviews",
    "sessions",
    "invoices",
    "events",
];

/// One kind of workload in the catalogue.
struct Product {
    /// Name suffix and `app.kubernetes.io/name`.
    slug: &'static str,
    kind: &'static str,
    image: &'static str,
    component: &'static str,
    /// Description; `{domain}` and `{team}` are replaced.
    description: &'static str,
    /// Topics the workload answers, besides `team:<team>`.
    topics: &'static str,
    /// Whether a Service fronts it (the Service answers nothing by itself).
    service: bool,
}

const PRODUCTS: &[Product] = &[
    Product {
        slug: "postgres",
        kind: "StatefulSet",
        image: "postgres:16.2",
        component: "database",
        description:
            "PostgreSQL 16 primary with two streaming replicas, holding the {domain} tables.",
        topics: "database postgres",
        service: true,
    },
    Product {
        slug: "mysql",
        kind: "Deployment",
        image: "mysql:8.0.36",
        component: "database",
        description: "MySQL 8 server storing {domain} records for the {team} services.",
        topics: "database mysql",
        service: true,
    },
    Product {
        slug: "mongodb",
        kind: "StatefulSet",
        image: "mongo:7.0.8",
        component: "database",
        description: "MongoDB replica set of {domain} documents.",
        topics: "database mongodb",
        service: true,
    },
    Product {
        slug: "clickhouse",
        kind: "StatefulSet",
        image: "clickhouse/clickhouse-server:24.3",
        component: "database",
        description: "ClickHouse column store answering {domain} analytics queries.",
        topics: "database clickhouse",
        service: true,
    },
    Product {
        slug: "redis",
        kind: "StatefulSet",
        image: "redis:7.2.4",
        component: "cache",
        description: "Redis cache of hot {domain} lookups; losing it only slows requests.",
        // A key-value store is a database too, whatever it is used for here.
        topics: "cache database redis",
        service: true,
    },
    Product {
        slug: "memcached",
        kind: "Deployment",
        image: "memcached:1.6.26",
        component: "cache",
        description: "Memcached in front of the {domain} API's slow reads.",
        topics: "cache memcached",
        service: true,
    },
    Product {
        slug: "kafka",
        kind: "StatefulSet",
        image: "bitnami/kafka:3.7.0",
        component: "broker",
        description: "Kafka broker of the {domain} event stream (3 partitions per topic).",
        topics: "queue kafka",
        service: true,
    },
    Product {
        slug: "rabbitmq",
        kind: "StatefulSet",
        image: "rabbitmq:3.13-management",
        component: "broker",
        description: "RabbitMQ broker carrying {domain} jobs from the API to the workers.",
        topics: "queue rabbitmq",
        service: true,
    },
    Product {
        slug: "nats",
        kind: "Deployment",
        image: "nats:2.10.12",
        component: "broker",
        description: "NATS server for {domain} publish/subscribe messages.",
        topics: "queue nats",
        service: true,
    },
    Product {
        slug: "prometheus",
        kind: "Deployment",
        image: "prom/prometheus:v2.51.1",
        component: "server",
        description: "Prometheus server scraping the metrics of the {team} services.",
        topics: "monitoring prometheus",
        service: true,
    },
    Product {
        slug: "grafana",
        kind: "Deployment",
        image: "grafana/grafana:10.4.1",
        component: "dashboards",
        description: "Grafana dashboards of the {team} team's {domain} metrics.",
        topics: "monitoring grafana",
        service: true,
    },
    Product {
        slug: "alertmanager",
        kind: "StatefulSet",
        image: "prom/alertmanager:v0.27.0",
        component: "alerting",
        description: "Alertmanager routing the {team} team's alerts to the on-call pager.",
        topics: "monitoring alertmanager",
        service: true,
    },
    Product {
        slug: "fluent-bit",
        kind: "DaemonSet",
        image: "fluent/fluent-bit:3.0.2",
        component: "logging",
        description: "Fluent Bit on every node, shipping container logs to Loki.",
        topics: "logging",
        service: false,
    },
    Product {
        slug: "loki",
        kind: "StatefulSet",
        image: "grafana/loki:2.9.6",
        component: "logging",
        description: "Loki log store of the {team} team's containers.",
        topics: "logging loki",
        service: true,
    },
    Product {
        slug: "opensearch",
        kind: "StatefulSet",
        image: "opensearchproject/opensearch:2.13.0",
        component: "search-engine",
        description: "OpenSearch cluster indexing {domain} for full-text search.",
        topics: "search-engine opensearch",
        service: true,
    },
    Product {
        slug: "web",
        kind: "Deployment",
        image: "ghcr.io/acme/{domain}-web:2.3.1",
        component: "frontend",
        description: "Web frontend of the {domain} pages (Next.js), rendered for browsers.",
        topics: "frontend",
        service: true,
    },
    Product {
        slug: "payments-api",
        kind: "Deployment",
        image: "ghcr.io/acme/payments-api:4.2.0",
        component: "api",
        description: "Charges credit cards and issues refunds through Stripe for {domain}.",
        topics: "payments",
        service: true,
    },
    Product {
        slug: "payment-worker",
        kind: "Deployment",
        image: "ghcr.io/acme/payment-worker:4.2.0",
        component: "worker",
        description: "Settles pending card transactions with the payment provider every minute.",
        topics: "payments",
        service: false,
    },
    Product {
        slug: "keycloak",
        kind: "StatefulSet",
        image: "quay.io/keycloak/keycloak:24.0.2",
        component: "auth",
        description: "Keycloak: user logins, single sign-on and OAuth2 tokens for {domain}.",
        topics: "auth keycloak",
        service: true,
    },
    Product {
        slug: "mailer",
        kind: "Deployment",
        image: "ghcr.io/acme/mailer:1.8.0",
        component: "worker",
        description: "Sends transactional emails (order confirmations, password resets) over SMTP.",
        topics: "email",
        service: false,
    },
    // Distractors: they mention a product or a function without being an answer to it.
    Product {
        slug: "postgres-exporter",
        kind: "Deployment",
        image: "quay.io/prometheuscommunity/postgres-exporter:v0.15.0",
        component: "metrics",
        description: "Exports the {domain} PostgreSQL server's statistics as Prometheus metrics.",
        topics: "monitoring",
        service: true,
    },
    Product {
        slug: "pgadmin",
        kind: "Deployment",
        image: "dpage/pgadmin4:8.5",
        component: "admin-ui",
        description: "pgAdmin web console for the {team} team's database administrators.",
        topics: "",
        service: true,
    },
    Product {
        slug: "kafka-ui",
        kind: "Deployment",
        image: "provectuslabs/kafka-ui:v0.7.2",
        component: "admin-ui",
        description: "Web console to browse the {domain} Kafka topics and consumer groups.",
        topics: "",
        service: true,
    },
    Product {
        slug: "migrations",
        kind: "Job",
        image: "ghcr.io/acme/{domain}-migrations:2.3.1",
        component: "migration",
        description: "Applies the {domain} schema migrations to the database on each release.",
        topics: "",
        service: false,
    },
    Product {
        slug: "payments-settings",
        kind: "ConfigMap",
        image: "",
        component: "config",
        description: "Feature flags of the payments API: retry counts and the provider's timeout.",
        topics: "",
        service: false,
    },
];

/// Custom types whose instances carry no description: only the type says what they are.
/// (group, kind, plural, the type's description, topics of every instance)
const OPAQUE_TYPES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "kafka.strimzi.io",
        "Kafka",
        "kafkas",
        "Strimzi Kafka: an Apache Kafka cluster of brokers that stores and streams event messages between services.",
        "queue kafka",
    ),
    (
        "postgresql.cnpg.io",
        "Pooler",
        "poolers",
        "CloudNativePG Pooler: a PgBouncer connection pooler in front of a PostgreSQL cluster, sharing a few database connections among many clients.",
        "pooler",
    ),
    (
        "keda.sh",
        "ScaledObject",
        "scaledobjects",
        "KEDA ScaledObject: scales a Deployment on event sources such as queue length, Kafka lag or cron schedules, down to zero replicas.",
        "event-autoscaling",
    ),
    (
        "networking.istio.io",
        "VirtualService",
        "virtualservices",
        "Istio VirtualService: traffic routing rules of the service mesh (retries, timeouts, canary weights, header matches).",
        "mesh-routing",
    ),
];

fn fill(template: &str, domain: &str, team: &str) -> String {
    template.replace("{domain}", domain).replace("{team}", team)
}

fn topics(own: &str, team: &str) -> String {
    let mut t = own.to_string();
    if !t.is_empty() {
        t.push(' ');
    }
    t.push_str("team:");
    t.push_str(team);
    t
}

fn opaque_crd(group: &str, kind: &str, plural: &str, what: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}"), "annotations": {"description": what}},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": what,
                    "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                }},
            }],
        },
    })
}

/// Every how many workloads one is short of a ready replica (or, for a Job, failed).
const UNHEALTHY_EVERY: usize = 3;

/// The status the workload's controller would have written: all replicas ready, or one
/// short when `short` (a Job: complete, or failed after its retries).
fn workload_status(kind: &str, name: &str, replicas: i64, short: bool) -> Option<Value> {
    let ready = if short { replicas - 1 } else { replicas };
    match kind {
        "Deployment" => Some(json!({"observedGeneration": 1, "replicas": replicas,
            "updatedReplicas": replicas, "readyReplicas": ready, "availableReplicas": ready,
            "conditions": [
                {"type": "Available", "status": if short { "False" } else { "True" },
                 "reason": if short { "MinimumReplicasUnavailable" } else { "MinimumReplicasAvailable" },
                 "lastTransitionTime": "2026-02-20T10:00:00Z"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "lastTransitionTime": "2026-02-20T10:00:00Z"}]})),
        "StatefulSet" => Some(json!({"observedGeneration": 1, "replicas": replicas,
            "readyReplicas": ready, "currentReplicas": replicas, "updatedReplicas": replicas,
            "currentRevision": format!("{name}-7d9f"), "updateRevision": format!("{name}-7d9f")})),
        "DaemonSet" => Some(
            json!({"observedGeneration": 1, "desiredNumberScheduled": replicas,
            "currentNumberScheduled": replicas, "updatedNumberScheduled": replicas,
            "numberAvailable": ready, "numberReady": ready}),
        ),
        "Job" if short => Some(
            json!({"failed": 6, "conditions": [{"type": "Failed", "status": "True",
            "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}),
        ),
        "Job" => {
            Some(json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}))
        }
        _ => None,
    }
}

fn workload(p: &Product, name: &str, ns: &str, domain: &str, team: &str, short: bool) -> Value {
    let labels = json!({
        "app.kubernetes.io/name": p.slug,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": p.component,
        "team": team,
    });
    let metadata = json!({"name": name, "namespace": ns, "labels": labels, "annotations": {
        "description": fill(p.description, domain, team),
        TOPICS_ANNOTATION: topics(p.topics, team),
    }});
    let container = json!({"name": p.slug, "image": fill(p.image, domain, team)});
    let template = json!({"metadata": {"labels": {"app.kubernetes.io/instance": name}},
        "spec": {"containers": [container], "restartPolicy": if p.kind == "Job" { "OnFailure" } else { "Always" }}});
    let selector = json!({"matchLabels": {"app.kubernetes.io/instance": name}});
    let replicas = match p.kind {
        "StatefulSet" | "DaemonSet" => 3,
        "Deployment" => 2,
        _ => 1,
    };
    let (api_version, field, body) = match p.kind {
        "Deployment" => (
            "apps/v1",
            "spec",
            json!({"replicas": replicas, "selector": selector, "template": template}),
        ),
        "StatefulSet" => (
            "apps/v1",
            "spec",
            json!({"replicas": replicas, "serviceName": name, "selector": selector, "template": template}),
        ),
        "DaemonSet" => (
            "apps/v1",
            "spec",
            json!({"selector": selector, "template": template}),
        ),
        "Job" => ("batch/v1", "spec", json!({"template": template})),
        _ => ("v1", "data", json!({"RETRIES": "3", "TIMEOUT": "5s"})),
    };
    let mut obj = json!({"apiVersion": api_version, "kind": p.kind, "metadata": metadata});
    obj[field] = body;
    if let Some(status) = workload_status(p.kind, name, replicas, short) {
        obj["status"] = status;
    }
    obj
}

/// Topics that name a category or a function rather than a product: a Service fronting a
/// PostgreSQL server answers "postgres" but is not itself one of "the databases".
const CATEGORIES: &[&str] = &[
    "database",
    "cache",
    "queue",
    "monitoring",
    "logging",
    "search-engine",
    "frontend",
    "payments",
    "auth",
    "email",
];

fn service(p: &Product, name: &str, ns: &str, team: &str) -> Value {
    let products: Vec<&str> = p
        .topics
        .split_whitespace()
        .filter(|t| !CATEGORIES.contains(t))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns,
            "labels": {"app.kubernetes.io/name": p.slug, "app.kubernetes.io/instance": name, "team": team},
            "annotations": {TOPICS_ANNOTATION: topics(&products.join(" "), team)}},
        "spec": {"selector": {"app.kubernetes.io/instance": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    })
}

/// The objects of a cluster of about `workloads` workloads (plus their Services, the teams'
/// namespaces, the opaque custom types with their instances and one CloudNativePG `Cluster`
/// per [`DATABASE_CLUSTER_EVERY`] workloads), CRDs first.
pub fn workload_objects(seed: u64, workloads: usize) -> Vec<Value> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for (group, kind, plural, what, _) in OPAQUE_TYPES {
        out.push(opaque_crd(group, kind, plural, what));
    }
    for (team, what) in TEAMS {
        out.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": team,
            "labels": {"team": team}, "annotations": {"description": format!("The {team} team: {what}."),
            TOPICS_ANNOTATION: topics("", team)}}}));
    }
    let mut taken = std::collections::HashSet::new();
    // Products in turn, so every product appears about workloads / PRODUCTS.len() times;
    // the team and the domain are drawn at random.
    let opaque_every = PRODUCTS.len() / 2;
    let mut made = 0;
    let mut j = 0usize;
    while made < workloads {
        let (team, _) = TEAMS[rng.random_range(0..TEAMS.len())];
        let domain = DOMAINS[rng.random_range(0..DOMAINS.len())];
        if j % opaque_every == opaque_every - 1 {
            // An instance of an opaque type: named after its domain only, no description.
            let (group, kind, _, _, t) = OPAQUE_TYPES[(j / opaque_every) % OPAQUE_TYPES.len()];
            let name = domain.to_string();
            if taken.insert((team, kind, name.clone())) {
                out.push(json!({"apiVersion": format!("{group}/v1"), "kind": kind,
                    "metadata": {"name": name, "namespace": team, "labels": {"team": team},
                        "annotations": {TOPICS_ANNOTATION: topics(t, team)}},
                    "spec": {"replicas": 1}}));
                made += 1;
            }
        } else {
            let p = &PRODUCTS[j % PRODUCTS.len()];
            let name = format!("{domain}-{}", p.slug);
            if taken.insert((team, p.kind, name.clone())) {
                let short = made % UNHEALTHY_EVERY == 0;
                out.push(workload(p, &name, team, domain, team, short));
                if p.service {
                    out.push(service(p, &name, team, team));
                }
                made += 1;
            }
        }
        j += 1;
        if j > workloads * 20 {
            break; // every name taken: fewer workloads than asked
        }
    }
    // Drawn after every workload, so that the workloads are what they were before these.
    out.splice(0..0, [database_cluster_crd()]);
    for i in 0..workloads / DATABASE_CLUSTER_EVERY {
        let (team, _) = TEAMS[rng.random_range(0..TEAMS.len())];
        let domain = DOMAINS[rng.random_range(0..DOMAINS.len())];
        out.push(database_cluster(&format!("{domain}-pg"), team, i % 2 == 1));
    }
    out
}

/// One CloudNativePG `Cluster` (a database operator's custom resource) per this many workloads.
const DATABASE_CLUSTER_EVERY: usize = 12;

/// CloudNativePG's `Cluster` type, with a status subresource (so that a watcher reads health).
fn database_cluster_crd() -> Value {
    let what = "Cluster is the Schema for the PostgreSQL API of CloudNativePG: a PostgreSQL \
                database cluster of a primary and its streaming replicas.";
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "clusters.postgresql.cnpg.io"},
        "spec": {
            "group": "postgresql.cnpg.io",
            "scope": "Namespaced",
            "names": {"kind": "Cluster", "plural": "clusters", "singular": "cluster", "listKind": "ClusterList"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": what,
                    "properties": {
                        "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    },
                }},
            }],
        },
    })
}

/// A CloudNativePG `Cluster` of three instances, ready or (`failed`) `Ready=False` because
/// its instances cannot be reached.
fn database_cluster(name: &str, team: &str, failed: bool) -> Value {
    let condition = if failed {
        json!({"type": "Ready", "status": "False", "reason": "BackendUnreachable",
            "message": "2 of 3 instances unreachable", "lastTransitionTime": "2026-02-20T10:00:00Z"})
    } else {
        json!({"type": "Ready", "status": "True", "reason": "ClusterIsReady",
            "message": "Cluster is Ready", "lastTransitionTime": "2026-02-20T10:00:00Z"})
    };
    json!({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
        "metadata": {"name": name, "namespace": team, "labels": {"team": team},
            "annotations": {TOPICS_ANNOTATION: topics("database postgres", team)}},
        "spec": {"instances": 3, "imageName": "ghcr.io/cloudnative-pg/postgresql:16.2", "storage": {"size": "20Gi"}},
        "status": {"observedGeneration": 1, "instances": 3, "readyInstances": if failed { 1 } else { 3 },
            "phase": if failed { "Failed" } else { "Cluster in healthy state" },
            "conditions": [condition]}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_workloads_and_every_object_has_topics() {
        let a = workload_objects(3, 200);
        assert_eq!(a, workload_objects(3, 200));
        let workloads = a
            .iter()
            .filter(|o| {
                !["Service", "Namespace", "CustomResourceDefinition"]
                    .contains(&o["kind"].as_str().unwrap_or(""))
            })
            .count();
        // The workloads asked for, and the database operator's clusters drawn after them.
        assert_eq!(workloads, 200 + 200 / DATABASE_CLUSTER_EVERY);
        for o in a.iter().filter(|o| o["kind"] != "CustomResourceDefinition") {
            let t = o["metadata"]["annotations"][TOPICS_ANNOTATION]
                .as_str()
                .unwrap_or("");
            assert!(t.contains("team:"), "{o}");
        }
        let opaque = a.iter().filter(|o| o["kind"] == "Kafka").count();
        assert!(opaque >= 3, "{opaque} Strimzi Kafka instances");
    }

    #[test]
    fn a_third_of_the_workloads_are_short_of_a_ready_replica_and_every_other_database_cluster_failed(
    ) {
        let a = workload_objects(3, 240);
        let replicas = |o: &Value, p: &str| o.pointer(p).and_then(Value::as_i64).unwrap_or(0);
        let sets: Vec<&Value> = a
            .iter()
            .filter(|o| ["Deployment", "StatefulSet"].contains(&o["kind"].as_str().unwrap_or("")))
            .collect();
        let short = sets
            .iter()
            .filter(|o| replicas(o, "/status/readyReplicas") < replicas(o, "/spec/replicas"))
            .count();
        assert!(
            (sets.len() / 4..sets.len() / 2).contains(&short),
            "{short} of {} short",
            sets.len()
        );
        let clusters: Vec<&Value> = a.iter().filter(|o| o["kind"] == "Cluster").collect();
        assert_eq!(clusters.len(), 240 / DATABASE_CLUSTER_EVERY);
        let failed = clusters
            .iter()
            .filter(|o| o.pointer("/status/conditions/0/status") == Some(&json!("False")))
            .count();
        assert_eq!(failed, clusters.len() / 2);
    }
}
