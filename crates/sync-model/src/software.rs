//! Well-known software, recognised from an object's container images or from its custom
//! resource type, so that an object says what it is even when its name and description do
//! not: a StatefulSet `db-0` running `bitnami/postgresql` is a PostgreSQL database, a
//! CloudNativePG `Cluster` is one too. The document text names the software and what it is,
//! and search matches a question's words against its category exactly ("databases",
//! "monitoring", "logins") and against the kind of store it is ("key-value stores"). Part of
//! the text rules, so shared by every sender.
//!
//! What a question's category covers is decided here, in the catalogue, and nowhere else:
//! each product has its own category and, where people call it something more, the others
//! it answers too ([`Software::also`]). A **database** is what applications keep their data
//! in, whatever its data model ([`DataModel`]): relational, document, key-value, time-series,
//! graph, wide-column or column stores. So Redis and Valkey (key-value stores most people
//! call databases, run with persistence and replicas) are databases as well as caches, while
//! Memcached (no persistence) is a cache only. Monitoring's metrics stores (Prometheus,
//! VictoriaMetrics, Thanos, Mimir) keep time series but are monitoring: they answer "time-series
//! databases", not "databases". Search engines (Elasticsearch, OpenSearch) are search engines.

/// What a piece of software is, as a question names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Database,
    Cache,
    Queue,
    Monitoring,
    Tracing,
    Logging,
    SearchEngine,
    Auth,
    Proxy,
    Storage,
    Secrets,
    Delivery,
    Dns,
}

impl Category {
    const ALL: [Category; 13] = [
        Category::Database,
        Category::Cache,
        Category::Queue,
        Category::Monitoring,
        Category::Tracing,
        Category::Logging,
        Category::SearchEngine,
        Category::Auth,
        Category::Proxy,
        Category::Storage,
        Category::Secrets,
        Category::Delivery,
        Category::Dns,
    ];

    /// The stored name (metadata value): `database`, `search-engine`.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Database => "database",
            Category::Cache => "cache",
            Category::Queue => "queue",
            Category::Monitoring => "monitoring",
            Category::Tracing => "tracing",
            Category::Logging => "logging",
            Category::SearchEngine => "search-engine",
            Category::Auth => "auth",
            Category::Proxy => "proxy",
            Category::Storage => "storage",
            Category::Secrets => "secrets",
            Category::Delivery => "delivery",
            Category::Dns => "dns",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Lowercase words of a question that ask for this category (singulars included: the
    /// search side also tries a plural's singular).
    pub fn words(self) -> &'static [&'static str] {
        match self {
            Category::Database => &[
                "database",
                "databases",
                "db",
                "dbs",
                "rdbms",
                "sql",
                "nosql",
                "datastore",
                "datastores",
            ],
            Category::Cache => &["cache", "caches", "caching"],
            Category::Queue => &[
                "queue",
                "queues",
                "broker",
                "brokers",
                "messaging",
                "pubsub",
                "streaming",
            ],
            Category::Monitoring => &[
                "monitoring",
                "metrics",
                "metric",
                "observability",
                "alerting",
                "alerts",
                "alert",
                "dashboards",
                "dashboard",
            ],
            Category::Tracing => &["tracing", "traces", "trace", "observability"],
            Category::Logging => &["logging", "logs", "log"],
            Category::SearchEngine => &["search", "full-text", "search-engine"],
            Category::Auth => &[
                "auth",
                "authentication",
                "login",
                "logins",
                "sso",
                "identity",
                "oauth",
                "oidc",
                "sign-on",
                "iam",
            ],
            Category::Proxy => &[
                "proxy",
                "proxies",
                "reverse-proxy",
                "load-balancer",
                "webserver",
                "gateway",
            ],
            Category::Storage => &["storage", "s3", "object-storage", "bucket", "buckets"],
            Category::Secrets => &["secrets", "secret", "vault"],
            Category::Delivery => &["ci", "cd", "gitops", "pipeline", "pipelines"],
            Category::Dns => &["dns"],
        }
    }

    /// Two-word phrases that name this category (singular forms). Their words stand for
    /// the category alone: in "full-text search engines" the word `search` is not also a
    /// namespace or a team called `search`.
    pub fn phrases(self) -> &'static [[&'static str; 2]] {
        match self {
            Category::SearchEngine => &[["search", "engine"], ["full-text", "search"]],
            Category::Queue => &[
                ["message", "queue"],
                ["message", "broker"],
                ["event", "streaming"],
            ],
            Category::Database => &[["data", "store"]],
            Category::Auth => &[["identity", "provider"], ["single", "sign-on"]],
            Category::Proxy => &[["reverse", "proxy"], ["api", "gateway"]],
            Category::Storage => &[["object", "storage"], ["object", "store"]],
            Category::Secrets => &[["secret", "manager"], ["secrets", "manager"]],
            Category::Delivery => &[["continuous", "delivery"], ["continuous", "deployment"]],
            _ => &[],
        }
    }

    /// The categories a two-word phrase names ([`Category::phrases`]).
    pub fn asked_by_phrase<'a>(
        first: &'a str,
        second: &'a str,
    ) -> impl Iterator<Item = Category> + 'a {
        Category::ALL
            .into_iter()
            .filter(move |c| c.phrases().contains(&[first, second]))
    }

    /// The categories a question word asks for.
    pub fn asked_by(word: &str) -> impl Iterator<Item = Category> + '_ {
        Category::ALL
            .into_iter()
            .filter(move |c| c.words().contains(&word))
    }
}

/// How a store keeps its data, as people name kinds of databases: "a key-value store", "a
/// document store", "a time-series database".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataModel {
    Relational,
    Document,
    KeyValue,
    TimeSeries,
    Graph,
    WideColumn,
    Columnar,
}

impl DataModel {
    const ALL: [DataModel; 7] = [
        DataModel::Relational,
        DataModel::Document,
        DataModel::KeyValue,
        DataModel::TimeSeries,
        DataModel::Graph,
        DataModel::WideColumn,
        DataModel::Columnar,
    ];

    /// Its name in a match tag (`model:key-value`).
    pub fn as_str(self) -> &'static str {
        match self {
            DataModel::Relational => "relational",
            DataModel::Document => "document",
            DataModel::KeyValue => "key-value",
            DataModel::TimeSeries => "time-series",
            DataModel::Graph => "graph",
            DataModel::WideColumn => "wide-column",
            DataModel::Columnar => "columnar",
        }
    }

    /// What such a store is called: `key-value store`.
    pub fn describe(self) -> &'static str {
        match self {
            DataModel::Relational => "relational",
            DataModel::Document => "document store",
            DataModel::KeyValue => "key-value store",
            DataModel::TimeSeries => "time-series store",
            DataModel::Graph => "graph database",
            DataModel::WideColumn => "wide-column store",
            DataModel::Columnar => "column store",
        }
    }

    /// Question words that ask for this kind of store alone.
    pub fn words(self) -> &'static [&'static str] {
        match self {
            DataModel::Relational => &["relational"],
            DataModel::KeyValue => &["key-value"],
            DataModel::TimeSeries => &["tsdb", "time-series", "timeseries"],
            DataModel::WideColumn => &["wide-column"],
            DataModel::Columnar => &["columnar", "olap"],
            DataModel::Document | DataModel::Graph => &[],
        }
    }

    /// Two-word phrases that name this kind of store (singular forms): their words stand
    /// for it alone, as a category's phrases do.
    pub fn phrases(self) -> &'static [[&'static str; 2]] {
        match self {
            DataModel::Relational => &[["relational", "database"], ["sql", "database"]],
            DataModel::Document => &[
                ["document", "store"],
                ["document", "database"],
                ["document", "db"],
            ],
            DataModel::KeyValue => &[
                ["key-value", "store"],
                ["key-value", "database"],
                ["key-value", "db"],
                ["kv", "store"],
            ],
            DataModel::TimeSeries => &[
                ["time-series", "database"],
                ["time-series", "store"],
                ["time-series", "db"],
                ["timeseries", "database"],
                ["time", "series"],
            ],
            DataModel::Graph => &[["graph", "database"], ["graph", "db"], ["graph", "store"]],
            DataModel::WideColumn => &[
                ["wide-column", "store"],
                ["wide-column", "database"],
                ["column-family", "store"],
            ],
            DataModel::Columnar => &[
                ["column", "store"],
                ["columnar", "database"],
                ["column-oriented", "database"],
                ["analytical", "database"],
            ],
        }
    }

    /// The kinds of store a two-word phrase names ([`DataModel::phrases`]).
    pub fn asked_by_phrase<'a>(
        first: &'a str,
        second: &'a str,
    ) -> impl Iterator<Item = DataModel> + 'a {
        DataModel::ALL
            .into_iter()
            .filter(move |m| m.phrases().contains(&[first, second]))
    }

    /// The kinds of store a question word asks for.
    pub fn asked_by(word: &str) -> impl Iterator<Item = DataModel> + '_ {
        DataModel::ALL
            .into_iter()
            .filter(move |m| m.words().contains(&word))
    }
}

/// One piece of well-known software.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Software {
    /// As people write it: `PostgreSQL`.
    pub name: &'static str,
    /// What it is, in plain words for the embedding model: `relational SQL database`.
    pub about: &'static str,
    pub category: Category,
    /// The other categories it answers, where people call it more than its own (Redis: a
    /// cache, and a database too). The rules of what counts as what are the module's.
    pub also: &'static [Category],
    /// How it keeps data, when it is a store: questions for that kind of store ("key-value
    /// stores", "time-series databases") find it, and a database answer says it.
    pub model: Option<DataModel>,
    /// Lowercase names a question uses for it (`postgres`, `pg`), its own included.
    pub aka: &'static [&'static str],
    /// Usually runs beside the main container (an exporter, a mesh proxy): another image
    /// of the same object says better what the object is.
    pub sidecar: bool,
}

impl Software {
    /// The stored name (metadata value): the first of [`Software::aka`].
    pub fn key(&self) -> &'static str {
        self.aka[0]
    }

    /// The software stored under `key`.
    pub fn by_key(key: &str) -> Option<&'static Software> {
        CATALOG.iter().find(|s| s.key() == key)
    }

    /// The software a question word names.
    pub fn named_by(word: &str) -> impl Iterator<Item = &'static Software> + '_ {
        CATALOG.iter().filter(move |s| s.aka.contains(&word))
    }

    /// Every category it answers: its own, then [`Software::also`].
    pub fn categories(&self) -> impl Iterator<Item = Category> + '_ {
        std::iter::once(self.category).chain(self.also.iter().copied())
    }

    /// Whether it answers a question that asks for `category`, said as an answer's reason:
    /// `database (key-value store)`, `database (relational)`, `cache`.
    pub fn answers(&self, category: Category) -> Option<String> {
        if !self.categories().any(|c| c == category) {
            return None;
        }
        Some(match (category, self.model) {
            (Category::Database, Some(m)) => format!("database ({})", m.describe()),
            _ => category.as_str().to_string(),
        })
    }

    /// The software of the catalogue that answers `category`.
    pub fn answering(category: Category) -> impl Iterator<Item = &'static Software> {
        CATALOG
            .iter()
            .filter(move |s| s.categories().any(|c| c == category))
    }

    /// The software of the catalogue that keeps its data as `model`.
    pub fn storing(model: DataModel) -> impl Iterator<Item = &'static Software> {
        CATALOG.iter().filter(move |s| s.model == Some(model))
    }
}

const fn sw(
    name: &'static str,
    about: &'static str,
    category: Category,
    aka: &'static [&'static str],
) -> Software {
    Software {
        name,
        about,
        category,
        also: &[],
        model: None,
        aka,
        sidecar: false,
    }
}

const fn sidecar(mut s: Software) -> Software {
    s.sidecar = true;
    s
}

/// `s`, a store of `model`.
const fn stores(model: DataModel, mut s: Software) -> Software {
    s.model = Some(model);
    s
}

/// `s`, answering the `also` categories besides its own.
const fn also(also: &'static [Category], mut s: Software) -> Software {
    s.also = also;
    s
}

use Category as C;
use DataModel as M;

static CATALOG: &[Software] = &[
    stores(
        M::Relational,
        sw(
            "PostgreSQL",
            "relational SQL database",
            C::Database,
            &["postgresql", "postgres", "pg"],
        ),
    ),
    stores(
        M::Relational,
        sw(
            "MySQL",
            "relational SQL database",
            C::Database,
            &["mysql", "mariadb", "percona"],
        ),
    ),
    stores(
        M::Document,
        sw(
            "MongoDB",
            "NoSQL document database",
            C::Database,
            &["mongodb", "mongo"],
        ),
    ),
    // A cache here, and the key-value database most people name first.
    also(
        &[C::Database],
        stores(
            M::KeyValue,
            sw(
                "Redis",
                "in-memory cache and key-value store",
                C::Cache,
                &["redis", "valkey", "keydb"],
            ),
        ),
    ),
    sw(
        "Apache Kafka",
        "event streaming platform, message broker and queue",
        C::Queue,
        &["kafka"],
    ),
    sw(
        "RabbitMQ",
        "message broker and queue",
        C::Queue,
        &["rabbitmq", "rabbit"],
    ),
    sw(
        "Elasticsearch",
        "full-text search engine and analytics store",
        C::SearchEngine,
        &["elasticsearch", "elastic"],
    ),
    sw(
        "OpenSearch",
        "full-text search engine and analytics store",
        C::SearchEngine,
        &["opensearch"],
    ),
    stores(
        M::TimeSeries,
        sw(
            "Prometheus",
            "monitoring system and time-series database of metrics",
            C::Monitoring,
            &["prometheus"],
        ),
    ),
    sw(
        "Alertmanager",
        "monitoring alerts routing and notification",
        C::Monitoring,
        &["alertmanager"],
    ),
    stores(
        M::Columnar,
        sw(
            "ClickHouse",
            "column-oriented analytical SQL database",
            C::Database,
            &["clickhouse"],
        ),
    ),
    stores(
        M::WideColumn,
        sw(
            "Apache Cassandra",
            "wide-column NoSQL database",
            C::Database,
            &["cassandra", "scylla", "scylladb"],
        ),
    ),
    stores(
        M::Relational,
        sw(
            "CockroachDB",
            "distributed SQL database",
            C::Database,
            &["cockroachdb", "cockroach"],
        ),
    ),
    sw(
        "MinIO",
        "S3-compatible object storage",
        C::Storage,
        &["minio"],
    ),
    sidecar(sw(
        "Prometheus exporter",
        "exports monitoring metrics for Prometheus",
        C::Monitoring,
        &["exporter"],
    )),
    sw(
        "Keycloak",
        "identity provider: user login, single sign-on, OAuth2 and OpenID Connect",
        C::Auth,
        &["keycloak"],
    ),
    sw(
        "Grafana",
        "monitoring dashboards and visualisation of metrics and logs",
        C::Monitoring,
        &["grafana"],
    ),
    // A cache only: it keeps nothing across a restart.
    stores(
        M::KeyValue,
        sw("Memcached", "in-memory cache", C::Cache, &["memcached"]),
    ),
    sw(
        "NATS",
        "message broker for publish/subscribe and queues",
        C::Queue,
        &["nats"],
    ),
    sw(
        "Apache Pulsar",
        "message broker and event streaming",
        C::Queue,
        &["pulsar"],
    ),
    sw(
        "ActiveMQ",
        "message broker and queue",
        C::Queue,
        &["activemq", "artemis"],
    ),
    sw(
        "Redpanda",
        "Kafka-compatible event streaming and message broker",
        C::Queue,
        &["redpanda"],
    ),
    sw(
        "MQTT broker",
        "MQTT message broker",
        C::Queue,
        &["mqtt", "mosquitto", "emqx"],
    ),
    stores(
        M::TimeSeries,
        sw(
            "Thanos",
            "long-term storage and global query of Prometheus monitoring metrics",
            C::Monitoring,
            &["thanos"],
        ),
    ),
    stores(
        M::TimeSeries,
        sw(
            "VictoriaMetrics",
            "monitoring metrics time-series database",
            C::Monitoring,
            &["victoriametrics", "victoria-metrics"],
        ),
    ),
    stores(
        M::TimeSeries,
        sw(
            "Grafana Mimir",
            "long-term storage of Prometheus monitoring metrics",
            C::Monitoring,
            &["mimir"],
        ),
    ),
    sw(
        "kube-state-metrics",
        "exports Kubernetes object state as monitoring metrics",
        C::Monitoring,
        &["kube-state-metrics"],
    ),
    sw(
        "Prometheus Pushgateway",
        "push gateway for batch jobs' monitoring metrics",
        C::Monitoring,
        &["pushgateway"],
    ),
    sw(
        "Datadog Agent",
        "monitoring agent collecting metrics, traces and logs",
        C::Monitoring,
        &["datadog"],
    ),
    sw("Jaeger", "distributed tracing", C::Tracing, &["jaeger"]),
    sw(
        "Grafana Tempo",
        "distributed tracing backend",
        C::Tracing,
        &["tempo"],
    ),
    sw(
        "OpenTelemetry Collector",
        "collects and forwards traces, metrics and logs",
        C::Tracing,
        &["otel", "opentelemetry"],
    ),
    sw(
        "Loki",
        "log aggregation and log store",
        C::Logging,
        &["loki"],
    ),
    sw(
        "Fluent Bit",
        "log collector and forwarder",
        C::Logging,
        &["fluent-bit", "fluentbit"],
    ),
    sw(
        "Fluentd",
        "log collector and forwarder",
        C::Logging,
        &["fluentd"],
    ),
    sw(
        "Logstash",
        "log processing pipeline",
        C::Logging,
        &["logstash"],
    ),
    sw(
        "Promtail",
        "log shipper for Loki",
        C::Logging,
        &["promtail"],
    ),
    sw("Filebeat", "log shipper", C::Logging, &["filebeat"]),
    sw(
        "Apache Solr",
        "full-text search engine",
        C::SearchEngine,
        &["solr"],
    ),
    sw(
        "Meilisearch",
        "full-text search engine",
        C::SearchEngine,
        &["meilisearch"],
    ),
    sw(
        "Typesense",
        "full-text search engine",
        C::SearchEngine,
        &["typesense"],
    ),
    sw(
        "Dex",
        "OpenID Connect identity provider for user login",
        C::Auth,
        &["dex"],
    ),
    sw(
        "OAuth2 Proxy",
        "authentication proxy: user login through OAuth2 / OpenID Connect",
        C::Auth,
        &["oauth2-proxy"],
    ),
    sw(
        "Authelia",
        "authentication and single sign-on portal for user login",
        C::Auth,
        &["authelia"],
    ),
    sw(
        "authentik",
        "identity provider: user login and single sign-on",
        C::Auth,
        &["authentik"],
    ),
    sw(
        "NGINX",
        "web server, reverse proxy and load balancer",
        C::Proxy,
        &["nginx"],
    ),
    sw(
        "ingress-nginx",
        "ingress controller: reverse proxy and load balancer for HTTP traffic",
        C::Proxy,
        &["ingress-nginx"],
    ),
    sw(
        "Traefik",
        "reverse proxy, ingress controller and load balancer",
        C::Proxy,
        &["traefik"],
    ),
    sw(
        "HAProxy",
        "reverse proxy and load balancer",
        C::Proxy,
        &["haproxy"],
    ),
    sw(
        "Apache HTTP Server",
        "web server",
        C::Proxy,
        &["httpd", "apache"],
    ),
    sw(
        "Caddy",
        "web server and reverse proxy",
        C::Proxy,
        &["caddy"],
    ),
    sidecar(sw(
        "Envoy",
        "proxy of a service mesh or API gateway",
        C::Proxy,
        &["envoy"],
    )),
    sidecar(sw(
        "Istio proxy",
        "service mesh sidecar proxy",
        C::Proxy,
        &["istio-proxy", "proxyv2"],
    )),
    sidecar(sw(
        "Linkerd proxy",
        "service mesh sidecar proxy",
        C::Proxy,
        &["linkerd-proxy"],
    )),
    sw(
        "HashiCorp Vault",
        "secrets management",
        C::Secrets,
        &["vault"],
    ),
    sw(
        "Jenkins",
        "CI/CD build automation server",
        C::Delivery,
        &["jenkins"],
    ),
    sw(
        "Argo CD",
        "GitOps continuous delivery",
        C::Delivery,
        &["argocd", "argo-cd"],
    ),
    sw(
        "GitLab Runner",
        "CI/CD pipeline job runner",
        C::Delivery,
        &["gitlab-runner"],
    ),
    sw("CoreDNS", "cluster DNS server", C::Dns, &["coredns"]),
    stores(
        M::KeyValue,
        sw(
            "etcd",
            "distributed key-value store",
            C::Database,
            &["etcd"],
        ),
    ),
    stores(
        M::TimeSeries,
        sw(
            "InfluxDB",
            "time-series database",
            C::Database,
            &["influxdb"],
        ),
    ),
    stores(
        M::Graph,
        sw("Neo4j", "graph database", C::Database, &["neo4j"]),
    ),
    stores(
        M::Document,
        sw(
            "CouchDB",
            "NoSQL document database",
            C::Database,
            &["couchdb", "couchbase"],
        ),
    ),
    stores(
        M::Relational,
        sw(
            "Microsoft SQL Server",
            "relational SQL database",
            C::Database,
            &["mssql", "sqlserver", "sql-server"],
        ),
    ),
    stores(
        M::Relational,
        sw("TiDB", "distributed SQL database", C::Database, &["tidb"]),
    ),
    stores(
        M::KeyValue,
        sw(
            "TiKV",
            "distributed key-value database",
            C::Database,
            &["tikv"],
        ),
    ),
    stores(
        M::KeyValue,
        sw(
            "FoundationDB",
            "distributed key-value database",
            C::Database,
            &["foundationdb", "fdb"],
        ),
    ),
    stores(
        M::KeyValue,
        sw(
            "Aerospike",
            "key-value NoSQL database",
            C::Database,
            &["aerospike"],
        ),
    ),
    // Redis-compatible, and as much a database as Redis.
    also(
        &[C::Database],
        stores(
            M::KeyValue,
            sw(
                "Dragonfly",
                "in-memory cache and key-value store (Redis-compatible)",
                C::Cache,
                &["dragonfly", "dragonflydb"],
            ),
        ),
    ),
    stores(
        M::Document,
        sw(
            "ArangoDB",
            "multi-model database of documents and graphs",
            C::Database,
            &["arangodb", "arango"],
        ),
    ),
    stores(
        M::Graph,
        sw("Dgraph", "graph database", C::Database, &["dgraph"]),
    ),
    stores(
        M::TimeSeries,
        sw(
            "QuestDB",
            "time-series SQL database",
            C::Database,
            &["questdb"],
        ),
    ),
    stores(
        M::WideColumn,
        sw(
            "Apache HBase",
            "wide-column NoSQL database",
            C::Database,
            &["hbase"],
        ),
    ),
];

/// Image repository names (the last path segment; tags, registries and organisations are
/// ignored) and the key of the software they run.
const IMAGES: &[(&str, &str)] = &[
    ("postgres", "postgresql"),
    ("postgresql", "postgresql"),
    ("postgis", "postgresql"),
    ("postgresql-repmgr", "postgresql"),
    ("spilo", "postgresql"),
    ("spilo-16", "postgresql"),
    ("crunchy-postgres", "postgresql"),
    ("timescaledb", "postgresql"),
    ("mysql", "mysql"),
    ("mysql-server", "mysql"),
    ("mariadb", "mysql"),
    ("percona-server", "mysql"),
    ("percona-xtradb-cluster", "mysql"),
    ("mongo", "mongodb"),
    ("mongodb", "mongodb"),
    ("mongodb-community-server", "mongodb"),
    ("percona-server-mongodb", "mongodb"),
    ("redis", "redis"),
    ("redis-stack", "redis"),
    ("redis-stack-server", "redis"),
    ("redis-cluster", "redis"),
    ("valkey", "redis"),
    ("keydb", "redis"),
    ("memcached", "memcached"),
    ("kafka", "kafka"),
    ("cp-kafka", "kafka"),
    ("cp-server", "kafka"),
    ("rabbitmq", "rabbitmq"),
    ("nats", "nats"),
    ("pulsar", "pulsar"),
    ("activemq", "activemq"),
    ("activemq-artemis", "activemq"),
    ("redpanda", "redpanda"),
    ("eclipse-mosquitto", "mqtt"),
    ("emqx", "mqtt"),
    ("elasticsearch", "elasticsearch"),
    ("opensearch", "opensearch"),
    ("solr", "solr"),
    ("meilisearch", "meilisearch"),
    ("typesense", "typesense"),
    ("prometheus", "prometheus"),
    ("alertmanager", "alertmanager"),
    ("grafana", "grafana"),
    ("thanos", "thanos"),
    ("victoria-metrics", "victoriametrics"),
    ("vmagent", "victoriametrics"),
    ("vmsingle", "victoriametrics"),
    ("mimir", "mimir"),
    ("kube-state-metrics", "kube-state-metrics"),
    ("pushgateway", "pushgateway"),
    ("jaeger", "jaeger"),
    ("jaeger-collector", "jaeger"),
    ("tempo", "tempo"),
    ("opentelemetry-collector", "otel"),
    ("opentelemetry-collector-contrib", "otel"),
    ("loki", "loki"),
    ("fluent-bit", "fluent-bit"),
    ("fluentd", "fluentd"),
    ("logstash", "logstash"),
    ("promtail", "promtail"),
    ("filebeat", "filebeat"),
    ("clickhouse-server", "clickhouse"),
    ("clickhouse", "clickhouse"),
    ("cassandra", "cassandra"),
    ("scylla", "cassandra"),
    ("cockroach", "cockroachdb"),
    ("influxdb", "influxdb"),
    ("neo4j", "neo4j"),
    ("couchdb", "couchdb"),
    ("etcd", "etcd"),
    ("tidb", "tidb"),
    ("tikv", "tikv"),
    ("foundationdb", "foundationdb"),
    ("aerospike", "aerospike"),
    ("aerospike-server", "aerospike"),
    ("dragonfly", "dragonfly"),
    ("arangodb", "arangodb"),
    ("dgraph", "dgraph"),
    ("questdb", "questdb"),
    ("hbase", "hbase"),
    ("minio", "minio"),
    ("keycloak", "keycloak"),
    ("dex", "dex"),
    ("oauth2-proxy", "oauth2-proxy"),
    ("authelia", "authelia"),
    ("nginx", "nginx"),
    ("nginx-unprivileged", "nginx"),
    ("traefik", "traefik"),
    ("haproxy", "haproxy"),
    ("httpd", "httpd"),
    ("caddy", "caddy"),
    ("envoy", "envoy"),
    ("proxyv2", "istio-proxy"),
    ("linkerd-proxy", "linkerd-proxy"),
    ("vault", "vault"),
    ("jenkins", "jenkins"),
    ("argocd", "argocd"),
    ("gitlab-runner", "gitlab-runner"),
    ("coredns", "coredns"),
];

/// Images known by organisation and name: their name alone says nothing (`controller`,
/// `server`, `proxy`, `agent`), so it counts only under that organisation.
/// (organisation, name, software key)
const ORG_IMAGES: &[(&str, &str, &str)] = &[
    ("ingress-nginx", "controller", "ingress-nginx"),
    ("goauthentik", "server", "authentik"),
    ("linkerd", "proxy", "linkerd-proxy"),
    ("jaegertracing", "all-in-one", "jaeger"),
    ("datadog", "agent", "datadog"),
    ("mssql", "server", "mssql"),
    ("mssql", "mssql-server", "mssql"),
];

/// Custom resource types of well-known operators: (API group, kind, software key).
const TYPES: &[(&str, &str, &str)] = &[
    ("postgresql.cnpg.io", "Cluster", "postgresql"),
    ("acid.zalan.do", "postgresql", "postgresql"),
    (
        "postgres-operator.crunchydata.com",
        "PostgresCluster",
        "postgresql",
    ),
    ("kubedb.com", "Postgres", "postgresql"),
    ("kubedb.com", "MySQL", "mysql"),
    ("kubedb.com", "MongoDB", "mongodb"),
    ("kubedb.com", "Redis", "redis"),
    ("mysql.oracle.com", "InnoDBCluster", "mysql"),
    ("pxc.percona.com", "PerconaXtraDBCluster", "mysql"),
    ("ps.percona.com", "PerconaServerMySQL", "mysql"),
    ("k8s.mariadb.com", "MariaDB", "mysql"),
    ("psmdb.percona.com", "PerconaServerMongoDB", "mongodb"),
    (
        "mongodbcommunity.mongodb.com",
        "MongoDBCommunity",
        "mongodb",
    ),
    ("redis.redis.opstreelabs.in", "Redis", "redis"),
    ("redis.redis.opstreelabs.in", "RedisCluster", "redis"),
    ("databases.spotahome.com", "RedisFailover", "redis"),
    ("kafka.strimzi.io", "Kafka", "kafka"),
    ("rabbitmq.com", "RabbitmqCluster", "rabbitmq"),
    (
        "elasticsearch.k8s.elastic.co",
        "Elasticsearch",
        "elasticsearch",
    ),
    ("opensearch.opster.io", "OpenSearchCluster", "opensearch"),
    ("monitoring.coreos.com", "Prometheus", "prometheus"),
    ("monitoring.coreos.com", "Alertmanager", "alertmanager"),
    (
        "clickhouse.altinity.com",
        "ClickHouseInstallation",
        "clickhouse",
    ),
    ("k8ssandra.io", "K8ssandraCluster", "cassandra"),
    ("cassandra.datastax.com", "CassandraDatacenter", "cassandra"),
    ("crdb.cockroachlabs.com", "CrdbCluster", "cockroachdb"),
    ("minio.min.io", "Tenant", "minio"),
    ("k8s.keycloak.org", "Keycloak", "keycloak"),
    ("grafana.integreatly.org", "Grafana", "grafana"),
    ("pingcap.com", "TidbCluster", "tidb"),
    ("dragonflydb.io", "Dragonfly", "dragonfly"),
    (
        "apps.foundationdb.org",
        "FoundationDBCluster",
        "foundationdb",
    ),
];

/// The repository of an image reference, lowercase: `quay.io/org/name:tag@sha256:…` →
/// (`name`, `org`).
fn repository(image: &str) -> (String, String) {
    let image = image.split('@').next().unwrap_or(image).to_lowercase();
    let mut segments = image.rsplit('/');
    let last = segments.next().unwrap_or_default();
    // After the last slash a colon starts the tag (a registry's port comes before it).
    let name = last.split(':').next().unwrap_or_default().to_string();
    let org = segments.next().unwrap_or_default().to_string();
    (name, org)
}

/// The software an image runs, if it is well known.
pub fn software_of_image(image: &str) -> Option<&'static Software> {
    let (name, org) = repository(image);
    if name.is_empty() {
        return None;
    }
    let key = ORG_IMAGES
        .iter()
        .find(|(o, n, _)| *o == org && *n == name)
        .map(|&(_, _, k)| k)
        .or_else(|| {
            let generic = ORG_IMAGES.iter().any(|(_, n, _)| *n == name);
            IMAGES
                .iter()
                .find(|(n, _)| !generic && *n == name)
                .map(|&(_, k)| k)
        })
        .or_else(|| {
            (name.ends_with("-exporter") || name.ends_with("_exporter")).then_some("exporter")
        })?;
    Software::by_key(key)
}

/// The software of a custom resource type, if it is a well-known operator's ([`TYPES`]) or
/// named after its software ([`software_named_by_kind`]).
pub fn software_of_type(api_group: &str, kind: &str) -> Option<&'static Software> {
    TYPES
        .iter()
        .find(|(g, k, _)| *g == api_group && *k == kind)
        .and_then(|&(_, _, key)| Software::by_key(key))
        .or_else(|| software_named_by_kind(api_group, kind))
}

/// What may follow the software's name in the kind of a custom resource that is the
/// software itself (`PostgresCluster`, `RedisFailover`, `MongoDBCommunity`, `EtcdCluster`),
/// not one of its parts or helpers (`KafkaTopic`, `PostgresBackup`, `PrometheusRule`).
const KIND_OF_THE_THING_ITSELF: &[&str] = &[
    "",
    "cluster",
    "instance",
    "server",
    "database",
    "db",
    "failover",
    "replicaset",
    "sentinel",
    "standalone",
    "community",
    "enterprise",
    "stack",
    "agent",
];

/// The software a custom type is named after, whoever its operator: the kind is a name of
/// the software (four letters at least: `pg` in `PgBouncer` is not PostgreSQL), alone or
/// followed by a word of [`KIND_OF_THE_THING_ITSELF`]. Kubernetes' own types never are.
fn software_named_by_kind(api_group: &str, kind: &str) -> Option<&'static Software> {
    let built_in = !api_group.contains('.') || api_group.ends_with(".k8s.io");
    if built_in {
        return None;
    }
    let kind = kind.to_lowercase();
    CATALOG.iter().filter(|s| !s.sidecar).find(|s| {
        s.aka.iter().any(|name| {
            name.len() >= 4
                && kind
                    .strip_prefix(name)
                    .is_some_and(|rest| KIND_OF_THE_THING_ITSELF.contains(&rest))
        })
    })
}

/// What an object runs: its type's software for an operator's resource, otherwise the first
/// image that names software, an image that runs beside another (an exporter, a mesh proxy)
/// only when no other does.
pub fn software_of(api_group: &str, kind: &str, images: &[String]) -> Option<&'static Software> {
    if let Some(s) = software_of_type(api_group, kind) {
        return Some(s);
    }
    let found: Vec<&'static Software> =
        images.iter().filter_map(|i| software_of_image(i)).collect();
    found
        .iter()
        .find(|s| !s.sidecar)
        .or_else(|| found.first())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(image: &str) -> Option<&'static str> {
        software_of_image(image).map(|s| s.name)
    }

    #[test]
    fn images_are_recognised_whatever_their_registry_tag_or_digest() {
        assert_eq!(name_of("postgres:16.2"), Some("PostgreSQL"));
        assert_eq!(name_of("bitnami/postgresql:16.2.0"), Some("PostgreSQL"));
        assert_eq!(
            name_of("registry.example.com:5000/mirror/postgres:16@sha256:abcd"),
            Some("PostgreSQL")
        );
        assert_eq!(
            name_of("quay.io/keycloak/keycloak:24.0.2"),
            Some("Keycloak")
        );
        assert_eq!(
            name_of("clickhouse/clickhouse-server:24.3"),
            Some("ClickHouse")
        );
        assert_eq!(name_of("memcached"), Some("Memcached"));
        assert_eq!(name_of("datadog/agent:7"), Some("Datadog Agent"));
        assert_eq!(
            name_of("quay.io/prometheuscommunity/postgres-exporter:v0.15.0"),
            Some("Prometheus exporter")
        );
        assert_eq!(name_of("ghcr.io/acme/payments-api:4.2.0"), None);
        assert_eq!(name_of("ghcr.io/acme/postgres-migrations:1"), None);
        assert_eq!(name_of(""), None);
    }

    #[test]
    fn the_main_container_wins_over_a_sidecar() {
        let images = vec![
            "docker.io/istio/proxyv2:1.22".to_string(),
            "quay.io/prometheuscommunity/postgres-exporter:v0.15.0".to_string(),
            "postgres:16".to_string(),
        ];
        assert_eq!(
            software_of("apps", "StatefulSet", &images).unwrap().name,
            "PostgreSQL"
        );
        let only_sidecars = &images[..2];
        assert_eq!(
            software_of("apps", "StatefulSet", only_sidecars)
                .unwrap()
                .name,
            "Istio proxy"
        );
    }

    #[test]
    fn operator_resources_are_their_software() {
        let s = software_of("postgresql.cnpg.io", "Cluster", &[]).unwrap();
        assert_eq!((s.name, s.category), ("PostgreSQL", Category::Database));
        assert!(software_of("postgresql.cnpg.io", "Backup", &[]).is_none());
        assert!(software_of("apps", "Deployment", &[]).is_none());
    }

    #[test]
    fn custom_types_named_after_their_software_are_that_software() {
        let key = |g, k| software_of_type(g, k).map(|s| s.key());
        assert_eq!(
            key("databases.acme.io", "PostgresCluster"),
            Some("postgresql")
        );
        assert_eq!(key("databases.acme.io", "MySQLCluster"), Some("mysql"));
        assert_eq!(key("cache.acme.io", "RedisFailover"), Some("redis"));
        assert_eq!(key("etcd.database.coreos.com", "EtcdCluster"), Some("etcd"));
        assert_eq!(key("messaging.acme.io", "KafkaCluster"), Some("kafka"));
        // Parts and helpers of the software are not the software.
        assert_eq!(key("messaging.acme.io", "KafkaTopic"), None);
        assert_eq!(key("monitoring.coreos.com", "PrometheusRule"), None);
        assert_eq!(key("pgbouncer.acme.io", "PgBouncer"), None);
        assert_eq!(key("search.acme.io", "SearchCluster"), None);
        // Kubernetes' own kinds are never named after software.
        assert_eq!(key("apps", "Deployment"), None);
    }

    #[test]
    fn question_words_find_categories_and_software() {
        let cats: Vec<Category> = Category::asked_by("login").collect();
        assert_eq!(cats, [Category::Auth]);
        assert_eq!(
            Category::asked_by("databases").next(),
            Some(Category::Database)
        );
        assert!(Category::asked_by("payments").next().is_none());
        let names: Vec<&str> = Software::named_by("postgres").map(|s| s.name).collect();
        assert_eq!(names, ["PostgreSQL"]);
    }

    #[test]
    fn every_table_names_software_of_the_catalog() {
        for (image, key) in IMAGES {
            assert!(Software::by_key(key).is_some(), "{image}: {key}");
        }
        for (org, name, key) in ORG_IMAGES {
            assert!(Software::by_key(key).is_some(), "{org}/{name}: {key}");
        }
        for (group, kind, key) in TYPES {
            assert!(Software::by_key(key).is_some(), "{group} {kind}: {key}");
        }
    }

    #[test]
    fn generic_image_names_count_only_under_their_organisation() {
        assert_eq!(
            name_of("registry.k8s.io/ingress-nginx/controller:v1.10.0"),
            Some("ingress-nginx")
        );
        assert_eq!(name_of("ghcr.io/acme/controller:1"), None);
        assert_eq!(
            name_of("ghcr.io/goauthentik/server:2024.2"),
            Some("authentik")
        );
        assert_eq!(name_of("ghcr.io/acme/server:1"), None);
    }

    #[test]
    fn a_key_value_store_is_a_database_and_a_cache_only_a_cache() {
        let redis = software_of_image("valkey/valkey:8").unwrap();
        assert_eq!(
            redis.answers(Category::Database).as_deref(),
            Some("database (key-value store)")
        );
        assert_eq!(redis.answers(Category::Cache).as_deref(), Some("cache"));
        let memcached = software_of_image("memcached:1.6").unwrap();
        assert_eq!(memcached.answers(Category::Database), None);
        let mongo = software_of_image("mongo:7").unwrap();
        assert_eq!(
            mongo.answers(Category::Database).as_deref(),
            Some("database (document store)")
        );
        // Monitoring keeps time series, but is not what "databases" asks for.
        let prometheus = software_of_image("prom/prometheus:v2").unwrap();
        assert_eq!(prometheus.answers(Category::Database), None);
        assert!(Software::storing(DataModel::TimeSeries).any(|s| s.key() == "prometheus"));
        let databases: Vec<&str> = Software::answering(Category::Database)
            .map(|s| s.key())
            .collect();
        for key in [
            "postgresql",
            "mongodb",
            "redis",
            "etcd",
            "influxdb",
            "neo4j",
            "cassandra",
        ] {
            assert!(databases.contains(&key), "{key} is a database");
        }
        for key in ["memcached", "prometheus", "elasticsearch", "loki"] {
            assert!(!databases.contains(&key), "{key} is not a database");
        }
    }

    #[test]
    fn kinds_of_store_are_asked_by_their_phrases() {
        let asked = |a, b| DataModel::asked_by_phrase(a, b).collect::<Vec<_>>();
        assert_eq!(asked("key-value", "store"), [DataModel::KeyValue]);
        assert_eq!(asked("document", "database"), [DataModel::Document]);
        assert_eq!(asked("time", "series"), [DataModel::TimeSeries]);
        assert_eq!(asked("graph", "database"), [DataModel::Graph]);
        assert_eq!(asked("wide-column", "store"), [DataModel::WideColumn]);
        assert!(asked("message", "queue").is_empty());
        assert_eq!(
            DataModel::asked_by("tsdb").collect::<Vec<_>>(),
            [DataModel::TimeSeries]
        );
    }

    #[test]
    fn every_entry_has_a_unique_key_and_categories_round_trip() {
        let mut keys: Vec<&str> = CATALOG.iter().map(Software::key).collect();
        keys.sort_unstable();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n, "duplicate keys");
        for s in CATALOG {
            assert_eq!(Software::by_key(s.key()), Some(s));
            assert_eq!(Category::parse(s.category.as_str()), Some(s.category));
        }
    }
}
