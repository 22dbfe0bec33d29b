//! Capability records: one per resource type, built from discovery and, for custom
//! resources, from the CRD's schema (its description and the descriptions of its top-level
//! `spec` fields). Built-in types get short descriptions of cw's own, so that a question
//! like "what databases are running?" can find `StatefulSet` as well as a database CRD.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use kube::api::{Api, DynamicObject, ListParams};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sync_model::{capability_id, Capability, CapabilitySyncPayload};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::discovery::ResourceType;
use crate::metrics::Metrics;
use crate::sender::RetryConfig;
use crate::sink::{SinkError, SyncSink};

/// What discovery says of one type (its preferred version).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TypeInfo {
    /// Empty for the core group.
    pub group: String,
    /// Served versions of the group, preferred first.
    pub versions: Vec<String>,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
}

/// Builds the capability record of a type; `crd` is the CustomResourceDefinition object
/// (as JSON) when the type is a custom resource.
pub fn build_capability(info: &TypeInfo, crd: Option<&Value>) -> Capability {
    let (schema_description, fields) = crd
        .and_then(|crd| crd_schema(crd, info.versions.first().map(String::as_str)))
        .map(schema_descriptions)
        .unwrap_or_default();
    let description = match builtin_description(&info.group, &info.kind) {
        Some(d) => d.to_string(),
        None => schema_description,
    };
    Capability {
        id: capability_id(&info.plural, &info.group),
        kind: info.kind.clone(),
        group: info.group.clone(),
        versions: info.versions.clone(),
        plural: info.plural.clone(),
        namespaced: info.namespaced,
        short_names: info.short_names.clone(),
        categories: info.categories.clone(),
        description,
        fields,
        enrichment: None,
    }
}

/// The openAPIV3Schema of the given version of a CRD (or of its storage version).
pub fn crd_schema<'a>(crd: &'a Value, version: Option<&str>) -> Option<&'a Value> {
    let versions = crd.pointer("/spec/versions")?.as_array()?;
    let chosen = versions
        .iter()
        .find(|v| version.is_some() && v.get("name").and_then(Value::as_str) == version)
        .or_else(|| {
            versions
                .iter()
                .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        })
        .or_else(|| versions.first())?;
    chosen.pointer("/schema/openAPIV3Schema")
}

/// The schema's own description, and each top-level `spec` field with its description.
fn schema_descriptions(schema: &Value) -> (String, BTreeMap<String, String>) {
    let description = schema
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_string();
    let fields = schema
        .pointer("/properties/spec/properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .map(|(name, prop)| {
                    let d = prop
                        .get("description")
                        .and_then(Value::as_str)
                        .map(first_sentence)
                        .unwrap_or_default();
                    (name.clone(), d)
                })
                .collect()
        })
        .unwrap_or_default();
    (description, fields)
}

/// Schema field descriptions can run to pages; the first sentence says what it is.
fn first_sentence(s: &str) -> String {
    let s = s.trim();
    let end = s
        .char_indices()
        .find(|&(i, c)| c == '\n' || (c == '.' && s[i + 1..].starts_with(' ')))
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    let sentence = &s[..end];
    // Keep documents short enough for small embedding models' token windows.
    match sentence.char_indices().nth(200) {
        Some((i, _)) => sentence[..i].to_string(),
        None => sentence.to_string(),
    }
}

/// cw's own words for the built-in types: what each is for.
pub fn builtin_description(group: &str, kind: &str) -> Option<&'static str> {
    Some(match (group, kind) {
        ("", "Pod") => "The smallest deployable unit: one or more containers running together on a node, sharing network and storage.",
        ("", "Service") => "A stable network endpoint and load balancer in front of a set of pods; exposes an application inside or outside the cluster.",
        ("", "ConfigMap") => "Non-secret configuration data as key-value pairs or files, consumed by pods as environment variables or mounted files.",
        ("", "Secret") => "Sensitive data such as passwords, tokens and TLS keys, consumed by pods.",
        ("", "Namespace") => "A scope that groups and isolates resources, such as a team, an application or an environment.",
        ("", "Node") => "A worker machine (virtual or physical) in the cluster that runs pods.",
        ("", "ServiceAccount") => "An identity for processes running in pods, used to authenticate to the Kubernetes API.",
        ("", "PersistentVolumeClaim") => "A request for durable storage (a disk volume) by a pod, for data that must survive restarts such as database files.",
        ("", "PersistentVolume") => "A piece of durable storage provisioned in the cluster.",
        ("apps", "Deployment") => "Runs and updates a stateless application (such as a web server or API) as a set of identical, replaceable pods with rolling updates.",
        ("apps", "StatefulSet") => "Runs stateful applications that need stable identities and persistent storage per replica, such as databases (PostgreSQL, MySQL, Redis), message queues and clustered stores.",
        ("apps", "DaemonSet") => "Runs one pod on every node (or selected nodes), for node agents such as log collectors, monitoring agents and network plugins.",
        ("apps", "ReplicaSet") => "Keeps a fixed number of identical pods running; usually managed by a Deployment.",
        ("batch", "Job") => "Runs pods to completion for a one-off task such as a batch computation, migration or backup.",
        ("batch", "CronJob") => "Runs Jobs on a repeating schedule, such as nightly backups, reports or cleanups.",
        ("networking.k8s.io", "Ingress") => "Routes external HTTP and HTTPS traffic to services by host name and path, with TLS termination.",
        ("networking.k8s.io", "NetworkPolicy") => "Firewall rules that control which pods may talk to which, inside the cluster.",
        ("rbac.authorization.k8s.io", "Role") => "A set of permissions within one namespace.",
        ("rbac.authorization.k8s.io", "ClusterRole") => "A set of permissions across the whole cluster.",
        ("rbac.authorization.k8s.io", "RoleBinding") => "Grants a Role's permissions to users, groups or service accounts within a namespace.",
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => "Grants a ClusterRole's permissions to users, groups or service accounts across the cluster.",
        ("autoscaling", "HorizontalPodAutoscaler") => "Scales the number of pods of a workload up and down automatically from CPU, memory or custom metrics.",
        ("apiextensions.k8s.io", "CustomResourceDefinition") => "Defines a new resource type (a custom resource) served by the Kubernetes API, usually installed by an operator.",
        ("policy", "PodDisruptionBudget") => "Limits how many pods of an application may be down at once during voluntary disruptions such as node drains.",
        ("storage.k8s.io", "StorageClass") => "Describes a class of storage that volumes can be provisioned from dynamically.",
        ("scheduling.k8s.io", "PriorityClass") => "A priority that decides which pods are scheduled first and which are preempted.",
        ("coordination.k8s.io", "Lease") => "A lightweight lock used for leader election and node heartbeats.",
        ("discovery.k8s.io", "EndpointSlice") => "The network endpoints (pod addresses) behind a Service.",
        _ => return None,
    })
}

/// What one capability sync found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapabilityReport {
    pub types: usize,
    pub unchanged: usize,
    /// Records sent: `new` (not stored before) plus `changed` (stored with another hash).
    pub upserted: usize,
    #[serde(default)]
    pub new: usize,
    #[serde(default)]
    pub changed: usize,
    pub deleted: usize,
    /// Records the ingest server refused one by one (logged with its reasons); the others
    /// of their batch were still sent.
    #[serde(default)]
    pub rejected: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    #[error("discovering the cluster's resource types: {0}")]
    Discovery(kube::Error),
    #[error("listing CustomResourceDefinitions: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

impl CapabilityError {
    pub fn is_retryable(&self) -> bool {
        match self {
            CapabilityError::Discovery(_) | CapabilityError::Kube(_) => true,
            CapabilityError::Sink(e) => e.is_retryable(),
        }
    }

    /// The ingest server refuses the credentials (see `SinkError::Denied`).
    pub fn is_denied(&self) -> bool {
        matches!(self, CapabilityError::Sink(e) if e.is_denied())
    }
}

/// Capability records sent per request.
const CAPABILITY_BATCH: usize = 100;

/// The capability record of every type in `types`, CRD types with their CRD's schema, names
/// and served versions (one list of all CRDs).
pub async fn capability_records(
    client: &kube::Client,
    types: &[ResourceType],
) -> Result<Vec<Capability>, kube::Error> {
    let crd_type = ResourceType::new(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    );
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &crd_type.api_resource());
    // Page by page, each CRD cut down at once to what a record reads: Crossplane-sized CRD
    // sets hold hundreds of schemas of hundreds of KB, which must never be in memory whole.
    let mut crds: HashMap<String, Value> = HashMap::new();
    let mut params = ListParams::default().limit(CRD_PAGE);
    loop {
        let page = api.list(&params).await?;
        for crd in page.items {
            if let Some(name) = crd.metadata.name {
                crds.insert(name, trim_crd(crd.data));
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    Ok(types
        .iter()
        .map(|ty| {
            let crd = crds.get(&capability_id(&ty.plural, &ty.group));
            build_capability(&type_info(ty, crd), crd)
        })
        .collect())
}

/// CustomResourceDefinitions per list request of a capability sync.
const CRD_PAGE: u32 = 5;

/// What a capability record reads of a CRD (its `data`: everything but apiVersion, kind and
/// metadata), taken out of it: names' short names and categories, and per version its name,
/// served and storage flags, the schema's own description and the first sentence of each
/// top-level `spec` field's description.
fn trim_crd(mut data: Value) -> Value {
    let mut take = |pointer: &str| data.pointer_mut(pointer).map(Value::take);
    let short_names = take("/spec/names/shortNames");
    let categories = take("/spec/names/categories");
    let versions = match take("/spec/versions") {
        Some(Value::Array(versions)) => versions.into_iter().map(trim_version).collect(),
        _ => Vec::new(),
    };
    serde_json::json!({"spec": {
        "names": {"shortNames": short_names, "categories": categories},
        "versions": versions,
    }})
}

fn trim_version(mut v: Value) -> Value {
    let mut schema = v
        .pointer_mut("/schema/openAPIV3Schema")
        .map(Value::take)
        .unwrap_or(Value::Null);
    let fields: serde_json::Map<String, Value> = match schema
        .pointer_mut("/properties/spec/properties")
        .map(Value::take)
    {
        Some(Value::Object(props)) => props
            .into_iter()
            .map(|(name, prop)| {
                // Only the first sentence is ever read: keeping whole descriptions of
                // hundreds of fields of hundreds of CRDs would hold them all at once.
                let d = prop
                    .get("description")
                    .and_then(Value::as_str)
                    .map(first_sentence);
                (name, serde_json::json!({ "description": d }))
            })
            .collect(),
        _ => serde_json::Map::new(),
    };
    serde_json::json!({
        "name": v.get("name"),
        "served": v.get("served"),
        "storage": v.get("storage"),
        "schema": {"openAPIV3Schema": {
            "description": schema.get_mut("description").map(Value::take),
            "properties": {"spec": {"properties": fields}},
        }},
    })
}

/// Discovery's view of a type, completed from its CRD when it has one.
fn type_info(ty: &ResourceType, crd: Option<&Value>) -> TypeInfo {
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut versions = vec![ty.version.clone()];
    if let Some(served) = crd
        .and_then(|c| c.pointer("/spec/versions"))
        .and_then(Value::as_array)
    {
        for v in served {
            let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
            if v.get("served").and_then(Value::as_bool) == Some(true)
                && !name.is_empty()
                && !versions.iter().any(|have| have == name)
            {
                versions.push(name.to_string());
            }
        }
    }
    TypeInfo {
        group: ty.group.clone(),
        versions,
        kind: ty.kind.clone(),
        plural: ty.plural.clone(),
        namespaced: ty.namespaced,
        short_names: strings(crd.and_then(|c| c.pointer("/spec/names/shortNames"))),
        categories: strings(crd.and_then(|c| c.pointer("/spec/names/categories"))),
    }
}

/// The types whose capability records are kept: the watched ones, and the API groups whose
/// discovery fails (their types are unknown for now, so none of their records is deleted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchedTypes {
    pub types: Vec<ResourceType>,
    pub unavailable_groups: BTreeSet<String>,
}

impl WatchedTypes {
    /// Every type known to exist; no group unavailable.
    pub fn all(types: Vec<ResourceType>) -> Self {
        WatchedTypes {
            types,
            unavailable_groups: BTreeSet::new(),
        }
    }

    /// True when a stored record (`plural.group`, or `plural` for the core group) belongs to
    /// an unavailable group.
    fn keeps(&self, id: &str) -> bool {
        let group = id.split_once('.').map_or("", |(_, g)| g);
        self.unavailable_groups.contains(group)
    }
}

/// Makes the stored capabilities equal the records of the watched types: new and changed
/// records are sent, records of types no longer served are deleted (not those of an
/// unavailable group), unchanged ones cost nothing.
pub async fn sync_capabilities(
    client: &kube::Client,
    sink: &dyn SyncSink,
    watched: &WatchedTypes,
) -> Result<CapabilityReport, CapabilityError> {
    let types = &watched.types;
    let records = capability_records(client, types).await?;
    let stored = sink.stored_capability_hashes().await?;
    let mut report = CapabilityReport {
        types: records.len(),
        ..Default::default()
    };
    let wanted: HashMap<&str, ()> = records.iter().map(|r| (r.id.as_str(), ())).collect();
    let mut deletes: Vec<String> = stored
        .keys()
        .filter(|id| !wanted.contains_key(id.as_str()) && !watched.keeps(id))
        .cloned()
        .collect();
    deletes.sort();
    let upserts: Vec<Capability> = records
        .into_iter()
        .filter(|r| stored.get(&r.id) != Some(&r.content_hash()))
        .collect();
    report.unchanged = report.types - upserts.len();
    report.new = upserts
        .iter()
        .filter(|r| !stored.contains_key(&r.id))
        .count();
    report.changed = upserts.len() - report.new;
    send_changes(sink, deletes, upserts, &mut report).await?;
    Ok(report)
}

/// Sends deletes, then upserts, in batches. A batch the server refuses as invalid or too
/// large is split so that one bad record never keeps the others out; a record refused on
/// its own is counted in `rejected` and logged. Other failures end the sync with the error.
async fn send_changes(
    sink: &dyn SyncSink,
    deletes: Vec<String>,
    upserts: Vec<Capability>,
    report: &mut CapabilityReport,
) -> Result<(), SinkError> {
    let splittable =
        |e: &SinkError| matches!(e, SinkError::Invalid { .. } | SinkError::TooLarge(_));
    for chunk in deletes.chunks(CAPABILITY_BATCH) {
        let payload = CapabilitySyncPayload {
            cluster: None,
            upserts: Vec::new(),
            deletes: chunk.to_vec(),
        };
        sink.send_capabilities(&payload).await?;
        report.deleted += chunk.len();
    }
    for chunk in upserts.chunks(CAPABILITY_BATCH) {
        let payload = CapabilitySyncPayload {
            cluster: None,
            upserts: chunk.to_vec(),
            deletes: Vec::new(),
        };
        match sink.send_capabilities(&payload).await {
            Ok(_) => report.upserted += chunk.len(),
            Err(e) if splittable(&e) && chunk.len() > 1 => {
                warn!(error = %e, records = chunk.len(), "capability batch refused; sending its records one by one");
                for record in chunk {
                    let one = CapabilitySyncPayload {
                        cluster: None,
                        upserts: vec![record.clone()],
                        deletes: Vec::new(),
                    };
                    match sink.send_capabilities(&one).await {
                        Ok(_) => report.upserted += 1,
                        Err(e) if splittable(&e) => {
                            error!(id = %record.id, error = %e, "capability record refused; not stored");
                            report.rejected += 1;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) if splittable(&e) => {
                error!(id = %chunk[0].id, error = %e, "capability record refused; not stored");
                report.rejected += 1;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Keeps the capabilities current while the watcher runs: after every change of the watched
/// types (`types` is updated after each discovery, which CRD events trigger, and at each
/// resync) it syncs them, retrying with backoff until it succeeds. Level-triggered, so no
/// change is lost: a retry or a newer set of types always syncs the latest state.
pub async fn run_capability_sync(
    client: kube::Client,
    sink: Arc<dyn SyncSink>,
    mut types: watch::Receiver<WatchedTypes>,
    retry: RetryConfig,
    metrics: Metrics,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = types.changed() => if changed.is_err() { return },
        }
        let mut delays = retry.delays();
        loop {
            let current = types.borrow_and_update().clone();
            let synced = sync_capabilities(&client, sink.as_ref(), &current);
            // A sync waiting on an unresponsive server must not hold up shutdown.
            let Some(synced) = cancel.run_until_cancelled(synced).await else {
                return;
            };
            match synced {
                Ok(report) => {
                    metrics.capability_syncs.inc();
                    metrics
                        .capability_records_sent
                        .inc_by((report.upserted + report.deleted) as u64);
                    if report.upserted + report.deleted > 0 {
                        info!(?report, "capabilities synced");
                    }
                    break;
                }
                // A refused token is retried too (quietly: `access` logs the refusal once),
                // so that capabilities follow as soon as the server accepts it.
                Err(e) if e.is_retryable() || e.is_denied() => {
                    metrics.capability_sync_failures.inc();
                    let delay = delays.next().unwrap_or(retry.max_delay);
                    let retry_in_ms = delay.as_millis() as u64;
                    if e.is_denied() {
                        debug!(error = %e, retry_in_ms, "capability sync refused; will retry");
                    } else {
                        warn!(error = %e, retry_in_ms, "capability sync failed; will retry");
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                        // Newer types: retry at once with them.
                        changed = types.changed() => if changed.is_err() { return },
                    }
                }
                Err(e) => {
                    metrics.capability_sync_failures.inc();
                    error!(error = %e, "capability sync refused; capabilities are not kept current by this sink");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cnpg_info() -> TypeInfo {
        TypeInfo {
            group: "postgresql.cnpg.io".into(),
            versions: vec!["v1".into()],
            kind: "Cluster".into(),
            plural: "clusters".into(),
            namespaced: true,
            short_names: vec![],
            categories: vec!["all".into()],
        }
    }

    #[test]
    fn a_trimmed_crd_builds_the_same_record_as_the_whole_one() {
        let crd = json!({
            "spec": {
                "group": "postgresql.cnpg.io",
                "names": {"plural": "clusters", "kind": "Cluster", "shortNames": ["pgc"], "categories": ["all"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                        "description": "A PostgreSQL cluster.", "type": "object",
                        "properties": {"spec": {"type": "object", "properties": {
                            "instances": {"type": "integer", "description": format!("Number of instances. {}", "z".repeat(10_000))},
                            "storage": {"type": "object", "description": "Storage.", "properties": {"size": {"type": "string", "description": "x".repeat(10_000)}}}
                        }}, "status": {"type": "object", "description": "y".repeat(10_000)}}
                    }}}
                ]
            }
        });
        let info = cnpg_info();
        let whole = build_capability(&info, Some(&crd));
        let trimmed = trim_crd(crd.clone());
        assert_eq!(build_capability(&info, Some(&trimmed)), whole);
        assert_eq!(
            type_info(
                &ResourceType::new("postgresql.cnpg.io", "v1", "Cluster", "clusters", true),
                Some(&trimmed)
            )
            .short_names,
            ["pgc"]
        );
        assert!(
            trimmed.to_string().len() < 1_000,
            "the nested schema and status are dropped"
        );
    }

    #[test]
    fn a_crd_capability_carries_its_schema_descriptions() {
        let crd = json!({"spec": {"versions": [{"name": "v1", "served": true, "storage": true,
            "schema": {"openAPIV3Schema": {"description": "Cluster is the Schema for the PostgreSQL API",
              "properties": {"spec": {"properties": {
                 "instances": {"description": "Number of instances required in the cluster. Long text follows."},
                 "storage": {"type": "object"}}}}}}}]}});
        let c = build_capability(&cnpg_info(), Some(&crd));
        assert_eq!(c.id, "clusters.postgresql.cnpg.io");
        assert_eq!(
            c.description,
            "Cluster is the Schema for the PostgreSQL API"
        );
        assert_eq!(
            c.fields["instances"],
            "Number of instances required in the cluster"
        );
        assert_eq!(c.fields["storage"], "");
    }

    #[test]
    fn built_in_types_get_cws_own_description() {
        let info = TypeInfo {
            group: "apps".into(),
            versions: vec!["v1".into()],
            kind: "StatefulSet".into(),
            plural: "statefulsets".into(),
            namespaced: true,
            short_names: vec!["sts".into()],
            categories: vec!["all".into()],
        };
        let c = build_capability(&info, None);
        assert_eq!(c.id, "statefulsets.apps");
        assert!(c.description.contains("databases"));
        assert!(c.document_text().contains("short names: sts"));
    }

    /// Refuses (400) every payload that carries the record `bad.example.com`.
    #[derive(Default)]
    struct PickySink {
        stored: std::sync::Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl SyncSink for PickySink {
        async fn send(
            &self,
            _: &sync_model::SyncPayload,
        ) -> Result<sync_model::SyncResponse, SinkError> {
            unreachable!("instances are not sent here")
        }
        async fn stored_hashes(
            &self,
        ) -> Result<HashMap<sync_model::ResourceId, String>, SinkError> {
            Ok(HashMap::new())
        }
        async fn send_capabilities(
            &self,
            payload: &CapabilitySyncPayload,
        ) -> Result<sync_model::SyncResponse, SinkError> {
            if payload.upserts.iter().any(|c| c.id == "bad.example.com") {
                return Err(SinkError::Invalid {
                    error: "invalid record".into(),
                    details: Vec::new(),
                });
            }
            let mut stored = self.stored.lock().unwrap();
            stored.extend(payload.upserts.iter().map(|c| c.id.clone()));
            Ok(sync_model::SyncResponse::ok(payload.upserts.len(), 0))
        }
    }

    #[tokio::test]
    async fn one_refused_record_does_not_keep_the_others_of_its_batch_out() {
        let record = |plural: &str| {
            let mut info = cnpg_info();
            info.plural = plural.into();
            info.group = "example.com".into();
            build_capability(&info, None)
        };
        let upserts = vec![record("good"), record("bad"), record("fine")];
        let sink = PickySink::default();
        let mut report = CapabilityReport::default();
        send_changes(&sink, Vec::new(), upserts, &mut report)
            .await
            .unwrap();
        assert_eq!((report.upserted, report.rejected), (2, 1), "{report:?}");
        assert_eq!(
            *sink.stored.lock().unwrap(),
            ["good.example.com", "fine.example.com"]
        );
    }

    #[test]
    fn a_crd_without_schema_still_gets_a_record() {
        let c = build_capability(&cnpg_info(), Some(&json!({"spec": {}})));
        assert_eq!(c.kind, "Cluster");
        assert!(c.description.is_empty());
    }
}
