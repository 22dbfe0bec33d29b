//! The object store: every object of every type, one global resourceVersion counter, and the
//! bounded event history that watches replay from. All writes go through here, whether they come
//! from HTTP, from seeding or from a test's Rust call, so watchers see them the same way.
//!
//! Objects are kept serialized (full JSON and the metadata-only `PartialObjectMetadata` JSON) so a
//! list or a watch event fans out to many clients without serializing again.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use tokio::sync::watch;

use crate::error::{Result, SimError};
use crate::patch::{apply_patch, PatchType};
use crate::resources::{self, split_api_version, ResKey, ResourceType};
use crate::selector::{FieldSelector, LabelSelector};

/// How long a paginated list's snapshot stays valid for `continue`.
const SNAPSHOT_TTL: Duration = Duration::from_secs(300);
/// At most this many paginated lists in flight at once; the oldest are dropped first.
const MAX_SNAPSHOTS: usize = 512;

/// One stored object, kept serialized.
#[derive(Debug)]
pub struct StoredObject {
    pub namespace: String,
    pub name: String,
    pub rv: u64,
    pub labels: Vec<(String, String)>,
    pub api_version: String,
    pub json: Bytes,
    /// `{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{...}}`
    pub meta_json: Bytes,
}

impl StoredObject {
    fn from_value(v: &Value, rv: u64) -> Self {
        let meta = v.get("metadata").cloned().unwrap_or_else(|| json!({}));
        let s = |k: &str| {
            meta.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut labels: Vec<(String, String)> = meta
            .get("labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        labels.sort();
        let partial = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta});
        Self {
            namespace: s("namespace"),
            name: s("name"),
            rv,
            labels,
            api_version: v
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            // Serializing a Value cannot fail (keys are strings).
            json: Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
            meta_json: Bytes::from(serde_json::to_vec(&partial).unwrap_or_default()),
        }
    }

    /// The object as JSON.
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    /// The object as a client of `api_version` sees it, full or metadata-only.
    pub fn render(&self, api_version: &str, meta_only: bool) -> Bytes {
        if meta_only {
            return self.meta_json.clone();
        }
        if self.api_version == api_version {
            return self.json.clone();
        }
        let mut v = self.value();
        v["apiVersion"] = Value::String(api_version.to_string());
        Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// One change, as kept in the history.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub kind: EventKind,
    pub key: ResKey,
    pub obj: Arc<StoredObject>,
    /// The state before a modification (so label-selector watches can turn it into ADDED/DELETED).
    pub prev: Option<Arc<StoredObject>>,
}

/// What a list request asks for.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

/// One page of a list.
#[derive(Debug)]
pub struct ListPage {
    pub items: Vec<Arc<StoredObject>>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

struct Snapshot {
    created: Instant,
    rv: u64,
    items: Arc<Vec<Arc<StoredObject>>>,
}

type ObjectMap = BTreeMap<(String, String), Arc<StoredObject>>;

struct Inner {
    rv: u64,
    types: BTreeMap<ResKey, Arc<ResourceType>>,
    kinds: HashMap<(String, String), ResKey>,
    objects: HashMap<ResKey, ObjectMap>,
    history: VecDeque<Arc<Event>>,
    /// A watch may resume from any resourceVersion >= floor (everything after it is in history).
    floor: u64,
    capacity: usize,
    snapshots: HashMap<u64, Snapshot>,
    next_snapshot: u64,
    rng: StdRng,
    registry_generation: u64,
}

/// The shared store.
pub struct Store {
    inner: Mutex<Inner>,
    rv_tx: watch::Sender<u64>,
}

fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn not_found(ty: &ResourceType, name: &str) -> SimError {
    SimError::NotFound(format!("{} \"{}\" not found", ty.qualified_name(), name))
}

fn in_namespace<'a>(
    map: &'a ObjectMap,
    ns: &'a str,
) -> impl Iterator<Item = &'a Arc<StoredObject>> + 'a {
    map.range((ns.to_string(), String::new())..)
        .take_while(move |((n, _), _)| n == ns)
        .map(|(_, o)| o)
}

fn check_object_name(name: &str, ty: &ResourceType) -> Result<()> {
    let bad = |why: &str| {
        SimError::Invalid(format!(
            "{} \"{}\" is invalid: metadata.name: Invalid value: \"{}\": {}",
            ty.kind, name, name, why
        ))
    };
    if name.is_empty() || name.len() > 253 {
        return Err(bad("must be between 1 and 253 characters"));
    }
    if ty.group == "rbac.authorization.k8s.io" {
        // RBAC names are path segments (system:controller:..., with colons).
        if name.contains(['/', '%']) || name == "." || name == ".." {
            return Err(bad("may not contain '/' or '%'"));
        }
        return Ok(());
    }
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !ok_chars || !ends_ok(name.chars().next()) || !ends_ok(name.chars().last()) {
        return Err(bad(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        ));
    }
    if ty.plural == "namespaces" && (name.len() > 63 || name.contains('.')) {
        return Err(bad("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-' (at most 63)"));
    }
    Ok(())
}

fn check_labels(meta: &Map<String, Value>) -> Result<()> {
    let Some(labels) = meta.get("labels") else {
        return Ok(());
    };
    if labels.is_null() {
        return Ok(());
    }
    let labels = labels.as_object().ok_or_else(|| {
        SimError::BadRequest("metadata.labels must be an object of strings".into())
    })?;
    for (k, v) in labels {
        let v = v.as_str().ok_or_else(|| {
            SimError::BadRequest(format!("metadata.labels[{k}] must be a string"))
        })?;
        sync_model::rules::check_qualified_key(k).map_err(|e| {
            SimError::Invalid(format!("metadata.labels: Invalid value: {k:?}: {e}"))
        })?;
        sync_model::rules::check_label_value(v).map_err(|e| {
            SimError::Invalid(format!("metadata.labels: Invalid value: {v:?}: {e}"))
        })?;
    }
    if let Some(a) = meta.get("annotations") {
        if !a.is_null()
            && !a
                .as_object()
                .is_some_and(|m| m.values().all(Value::is_string))
        {
            return Err(SimError::BadRequest(
                "metadata.annotations must be an object of strings".into(),
            ));
        }
    }
    Ok(())
}

/// The object without server-owned bookkeeping, to see whether an update changes anything.
fn comparable(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    v
}

fn spec_part(v: &Value) -> Value {
    match v.as_object() {
        Some(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "metadata" | "status"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        None => Value::Null,
    }
}

fn crd_status(crd: &Value, ty: &ResourceType) -> Value {
    let now = now_rfc3339();
    let mut names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    names["singular"] = Value::String(ty.singular.clone());
    names["listKind"] = names
        .get("listKind")
        .cloned()
        .unwrap_or_else(|| Value::String(format!("{}List", ty.kind)));
    json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "acceptedNames": names,
        "storedVersions": [ty.storage_version],
    })
}

impl Inner {
    fn register(&mut self, ty: ResourceType) {
        let key = ty.key();
        self.kinds
            .insert((ty.group.clone(), ty.kind.clone()), key.clone());
        self.objects.entry(key.clone()).or_default();
        self.types.insert(key, Arc::new(ty));
        self.registry_generation += 1;
    }

    fn unregister(&mut self, key: &ResKey) {
        if let Some(ty) = self.types.remove(key) {
            self.kinds.remove(&(ty.group.clone(), ty.kind.clone()));
        }
        self.objects.remove(key);
        self.registry_generation += 1;
    }

    fn record(
        &mut self,
        kind: EventKind,
        key: ResKey,
        obj: Arc<StoredObject>,
        prev: Option<Arc<StoredObject>>,
    ) {
        self.history.push_back(Arc::new(Event {
            rv: obj.rv,
            kind,
            key,
            obj,
            prev,
        }));
        while self.history.len() > self.capacity {
            if let Some(old) = self.history.pop_front() {
                self.floor = old.rv;
            }
        }
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn uid(&mut self) -> String {
        let b: u128 = self.rng.random();
        let s = format!("{b:032x}");
        format!(
            "{}-{}-4{}-a{}-{}",
            &s[0..8],
            &s[8..12],
            &s[13..16],
            &s[17..20],
            &s[20..32]
        )
    }

    fn random_suffix(&mut self) -> String {
        const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..5)
            .map(|_| CHARS[self.rng.random_range(0..CHARS.len())] as char)
            .collect()
    }

    fn map(&self, key: &ResKey) -> Option<&ObjectMap> {
        self.objects.get(key)
    }

    fn namespace_exists(&self, ns: &str) -> bool {
        self.map(&resources::namespace_key())
            .is_some_and(|m| m.contains_key(&(String::new(), ns.to_string())))
    }

    fn store(&mut self, key: &ResKey, obj: Arc<StoredObject>) -> Option<Arc<StoredObject>> {
        self.objects
            .entry(key.clone())
            .or_default()
            .insert((obj.namespace.clone(), obj.name.clone()), obj)
    }

    fn create(
        &mut self,
        ty: &ResourceType,
        ns: Option<&str>,
        mut obj: Value,
    ) -> Result<Arc<StoredObject>> {
        let m = obj
            .as_object_mut()
            .ok_or_else(|| SimError::BadRequest("the request body must be a JSON object".into()))?;
        check_type_fields(m, ty)?;
        m.insert("apiVersion".into(), Value::String(ty.storage_api_version()));
        m.insert("kind".into(), Value::String(ty.kind.clone()));
        let meta = m
            .entry("metadata")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| SimError::BadRequest("metadata must be an object".into()))?;
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            let prefix = meta
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if prefix.is_empty() {
                return Err(SimError::Invalid(format!(
                    "{} is invalid: metadata.name: Required value: name or generateName is required",
                    ty.kind
                )));
            }
            name = format!("{prefix}{}", self.random_suffix());
        }
        check_object_name(&name, ty)?;
        check_labels(meta)?;
        let body_ns = meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let namespace = if ty.namespaced {
            let ns = match (ns, body_ns.as_str()) {
                (Some(p), b) if !b.is_empty() && b != p => {
                    return Err(SimError::BadRequest(
                        "the namespace of the provided object does not match the namespace sent on the request".into(),
                    ))
                }
                (Some(p), _) => p.to_string(),
                (None, b) if !b.is_empty() => b.to_string(),
                (None, _) => "default".to_string(),
            };
            if !self.namespace_exists(&ns) {
                return Err(SimError::NotFound(format!("namespaces \"{ns}\" not found")));
            }
            meta.insert("namespace".into(), Value::String(ns.clone()));
            ns
        } else {
            meta.remove("namespace");
            String::new()
        };
        let key = ty.key();
        if self
            .map(&key)
            .is_some_and(|m| m.contains_key(&(namespace.clone(), name.clone())))
        {
            return Err(SimError::AlreadyExists(format!(
                "{} \"{}\" already exists",
                ty.qualified_name(),
                name
            )));
        }
        let uid = self.uid();
        let rv = self.rv + 1;
        let meta = obj
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| SimError::BadRequest("metadata must be an object".into()))?;
        meta.insert("name".into(), Value::String(name));
        meta.insert("uid".into(), Value::String(uid));
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        meta.insert("creationTimestamp".into(), Value::String(now_rfc3339()));
        meta.insert("generation".into(), json!(1));
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        if key == resources::crd_key() {
            let new_ty = resources::type_from_crd(&obj)?;
            if self.types.contains_key(&new_ty.key()) {
                return Err(SimError::Invalid(format!(
                    "CustomResourceDefinition is invalid: spec.names.plural: the resource {} is already served",
                    new_ty.qualified_name()
                )));
            }
            obj["status"] = crd_status(&obj, &new_ty);
            self.register(new_ty);
        }
        if key == resources::namespace_key() && obj.get("status").is_none() {
            obj["status"] = json!({"phase": "Active"});
        }
        let rv = self.next_rv();
        let stored = Arc::new(StoredObject::from_value(&obj, rv));
        self.store(&key, stored.clone());
        self.record(EventKind::Added, key, stored.clone(), None);
        Ok(stored)
    }

    fn get(&self, ty: &ResourceType, ns: &str, name: &str) -> Result<Arc<StoredObject>> {
        self.map(&ty.key())
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
            .cloned()
            .ok_or_else(|| not_found(ty, name))
    }

    fn update(
        &mut self,
        ty: &ResourceType,
        ns: &str,
        name: &str,
        mut new: Value,
        status_only: bool,
    ) -> Result<Arc<StoredObject>> {
        let old_obj = self.get(ty, ns, name)?;
        let old = old_obj.value();
        let nm = new
            .as_object_mut()
            .ok_or_else(|| SimError::BadRequest("the request body must be a JSON object".into()))?;
        check_type_fields(nm, ty)?;
        let body_name = nm
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or(name);
        if body_name != name {
            return Err(SimError::BadRequest(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let sent_rv = nm
            .get("metadata")
            .and_then(|m| m.get("resourceVersion"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if !sent_rv.is_empty() && sent_rv != old_obj.rv.to_string() {
            return Err(SimError::Conflict(format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                ty.qualified_name(),
                name
            )));
        }
        let mut result = if status_only {
            let mut r = old.clone();
            match nm.get("status") {
                Some(s) => r["status"] = s.clone(),
                None => {
                    if let Some(m) = r.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            r
        } else {
            let mut r = new.clone();
            let rm = r
                .as_object_mut()
                .ok_or_else(|| SimError::BadRequest("body must be an object".into()))?;
            if ty.has_status {
                match old.get("status") {
                    Some(s) => rm.insert("status".into(), s.clone()),
                    None => rm.remove("status"),
                };
            }
            let meta = rm
                .entry("metadata")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .ok_or_else(|| SimError::BadRequest("metadata must be an object".into()))?;
            check_labels(meta)?;
            for k in [
                "uid",
                "creationTimestamp",
                "generation",
                "namespace",
                "name",
            ] {
                match old.pointer(&format!("/metadata/{k}")) {
                    Some(v) => meta.insert(k.into(), v.clone()),
                    None => meta.remove(k),
                };
            }
            r
        };
        result["apiVersion"] = Value::String(ty.storage_api_version());
        result["kind"] = Value::String(ty.kind.clone());
        if !status_only && spec_part(&result) != spec_part(&old) {
            let gen = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            result["metadata"]["generation"] = json!(gen + 1);
        }
        let key = ty.key();
        if key == resources::crd_key() {
            let new_ty = resources::type_from_crd(&result)?;
            if new_ty.key() != ty_key_of_crd(&old) {
                return Err(SimError::Invalid(
                    "CustomResourceDefinition is invalid: spec.group and spec.names.plural are immutable".into(),
                ));
            }
            if !status_only {
                result["status"] = crd_status(&result, &new_ty);
            }
            if self.types.get(&new_ty.key()).map(|t| t.as_ref()) != Some(&new_ty) {
                self.register(new_ty);
            }
        }
        result["metadata"]["resourceVersion"] = Value::String(old_obj.rv.to_string());
        if comparable(&result) == comparable(&old) {
            // A no-op write changes nothing: same resourceVersion, no event (as the real server).
            return Ok(old_obj);
        }
        let rv = self.next_rv();
        result["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let stored = Arc::new(StoredObject::from_value(&result, rv));
        self.store(&key, stored.clone());
        self.record(EventKind::Modified, key, stored.clone(), Some(old_obj));
        Ok(stored)
    }

    fn delete(&mut self, ty: &ResourceType, ns: &str, name: &str) -> Result<Arc<StoredObject>> {
        let key = ty.key();
        let existing = self.get(ty, ns, name)?;
        if key == resources::crd_key() {
            // Instances go first, each with its DELETED event; then the type leaves discovery.
            let crd_key = ty_key_of_crd(&existing.value());
            if let Some(inst_ty) = self.types.get(&crd_key).cloned() {
                let all: Vec<Arc<StoredObject>> = self
                    .map(&crd_key)
                    .map(|m| m.values().cloned().collect())
                    .unwrap_or_default();
                for o in all {
                    self.delete(&inst_ty, &o.namespace, &o.name)?;
                }
                self.unregister(&crd_key);
            }
        }
        if key == resources::namespace_key() {
            let namespaced: Vec<Arc<ResourceType>> = self
                .types
                .values()
                .filter(|t| t.namespaced)
                .cloned()
                .collect();
            for t in namespaced {
                let inside: Vec<String> = self
                    .map(&t.key())
                    .map(|m| in_namespace(m, name).map(|o| o.name.clone()).collect())
                    .unwrap_or_default();
                for n in inside {
                    self.delete(&t, name, &n)?;
                }
            }
        }
        if let Some(m) = self.objects.get_mut(&key) {
            m.remove(&(ns.to_string(), name.to_string()));
        }
        let rv = self.next_rv();
        let mut v = existing.value();
        v["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let gone = Arc::new(StoredObject::from_value(&v, rv));
        self.record(EventKind::Deleted, key, gone.clone(), None);
        Ok(gone)
    }

    fn list_all(&self, ty: &ResourceType, q: &ListQuery) -> Vec<Arc<StoredObject>> {
        let Some(map) = self.map(&ty.key()) else {
            return vec![];
        };
        let keep = |o: &&Arc<StoredObject>| {
            (q.labels.is_empty() || q.labels.matches(&o.labels))
                && (q.fields.is_empty() || q.fields.matches(&o.namespace, &o.name))
        };
        match q.namespace.as_deref() {
            Some(ns) if ty.namespaced => in_namespace(map, ns).filter(keep).cloned().collect(),
            _ => map.values().filter(keep).cloned().collect(),
        }
    }
}

fn ty_key_of_crd(crd: &Value) -> ResKey {
    let s = |p: &str| {
        crd.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (s("/spec/group"), s("/spec/names/plural"))
}

fn check_type_fields(m: &Map<String, Value>, ty: &ResourceType) -> Result<()> {
    if let Some(av) = m
        .get("apiVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        let (g, v) = split_api_version(av);
        if g != ty.group || !ty.serves(v) {
            return Err(SimError::BadRequest(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                ty.api_version(ty.preferred_version())
            )));
        }
    }
    if let Some(kind) = m
        .get("kind")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        if kind != ty.kind {
            return Err(SimError::BadRequest(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                ty.kind
            )));
        }
    }
    Ok(())
}

fn encode_token(id: u64, offset: usize, rv: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{id}:{offset}:{rv}"))
}

fn decode_token(t: &str) -> Option<(u64, usize, u64)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let mut it = s.split(':');
    Some((
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    ))
}

impl Store {
    pub fn new(history_capacity: usize, seed: u64) -> Self {
        let mut inner = Inner {
            rv: 0,
            types: BTreeMap::new(),
            kinds: HashMap::new(),
            objects: HashMap::new(),
            history: VecDeque::new(),
            floor: 0,
            capacity: history_capacity.max(1),
            snapshots: HashMap::new(),
            next_snapshot: 1,
            rng: StdRng::seed_from_u64(seed),
            registry_generation: 0,
        };
        for t in resources::builtin_types() {
            inner.register(t);
        }
        let (rv_tx, _) = watch::channel(0);
        Self {
            inner: Mutex::new(inner),
            rv_tx,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock would be a simulator bug; keep serving the data anyway.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, rv: u64) {
        self.rv_tx.send_replace(rv);
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.rv_tx.subscribe()
    }

    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    pub fn registry_generation(&self) -> u64 {
        self.lock().registry_generation
    }

    pub fn types(&self) -> Vec<Arc<ResourceType>> {
        self.lock().types.values().cloned().collect()
    }

    /// The type served at `group/version` under `plural`.
    pub fn find_type(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.lock()
            .types
            .get(&(group.to_string(), plural.to_string()))
            .filter(|t| t.serves(version))
            .cloned()
    }

    /// The type of an object by its `apiVersion` and `kind`.
    pub fn type_for(&self, api_version: &str, kind: &str) -> Result<Arc<ResourceType>> {
        let (g, v) = split_api_version(api_version);
        let inner = self.lock();
        inner
            .kinds
            .get(&(g.to_string(), kind.to_string()))
            .and_then(|k| inner.types.get(k))
            .filter(|t| t.serves(v))
            .cloned()
            .ok_or_else(|| {
                SimError::NotFound(format!(
                    "no matches for kind \"{kind}\" in version \"{api_version}\""
                ))
            })
    }

    pub fn object_count(&self) -> usize {
        self.lock().objects.values().map(BTreeMap::len).sum()
    }

    pub fn create(
        &self,
        ty: &ResourceType,
        ns: Option<&str>,
        obj: Value,
    ) -> Result<Arc<StoredObject>> {
        let mut inner = self.lock();
        let r = inner.create(ty, ns, obj);
        let rv = inner.rv;
        drop(inner);
        self.publish(rv);
        r
    }

    pub fn get(&self, ty: &ResourceType, ns: &str, name: &str) -> Result<Arc<StoredObject>> {
        self.lock().get(ty, ns, name)
    }

    pub fn update(
        &self,
        ty: &ResourceType,
        ns: &str,
        name: &str,
        obj: Value,
        status_only: bool,
    ) -> Result<Arc<StoredObject>> {
        let mut inner = self.lock();
        let r = inner.update(ty, ns, name, obj, status_only);
        let rv = inner.rv;
        drop(inner);
        self.publish(rv);
        r
    }

    /// Patches an object; server-side apply of a missing object creates it.
    pub fn patch(
        &self,
        ty: &ResourceType,
        ns: &str,
        name: &str,
        kind: PatchType,
        patch: &Value,
        status_only: bool,
    ) -> Result<Arc<StoredObject>> {
        let mut inner = self.lock();
        let r = (|| {
            let current = match inner.get(ty, ns, name) {
                Ok(o) => o,
                Err(SimError::NotFound(_)) if kind == PatchType::Apply && !status_only => {
                    let mut obj = patch.clone();
                    obj["metadata"]["name"] = Value::String(name.to_string());
                    let ns = ty.namespaced.then_some(ns);
                    return inner.create(ty, ns, obj);
                }
                Err(e) => return Err(e),
            };
            let mut doc = current.value();
            apply_patch(&mut doc, kind, patch)?;
            // A patch that does not name a resourceVersion applies to the current one.
            if doc.pointer("/metadata/resourceVersion").is_none() && doc.get("metadata").is_some() {
                doc["metadata"]["resourceVersion"] = Value::String(current.rv.to_string());
            }
            inner.update(ty, ns, name, doc, status_only)
        })();
        let rv = inner.rv;
        drop(inner);
        self.publish(rv);
        r
    }

    pub fn delete(&self, ty: &ResourceType, ns: &str, name: &str) -> Result<Arc<StoredObject>> {
        let mut inner = self.lock();
        let r = inner.delete(ty, ns, name);
        let rv = inner.rv;
        drop(inner);
        self.publish(rv);
        r
    }

    pub fn delete_collection(
        &self,
        ty: &ResourceType,
        q: &ListQuery,
    ) -> Result<Vec<Arc<StoredObject>>> {
        let mut inner = self.lock();
        let victims = inner.list_all(ty, q);
        let mut out = Vec::with_capacity(victims.len());
        let mut err = None;
        for v in victims {
            match inner.delete(ty, &v.namespace, &v.name) {
                Ok(o) => out.push(o),
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        let rv = inner.rv;
        drop(inner);
        self.publish(rv);
        match err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// One page of a list; pages after the first come from a snapshot taken at the first, so a
    /// paginated list is consistent at one resourceVersion (as etcd gives the real server).
    pub fn list(&self, ty: &ResourceType, q: &ListQuery) -> Result<ListPage> {
        let mut inner = self.lock();
        let limit = q.limit.filter(|l| *l > 0);
        if let Some(token) = q.continue_token.as_deref().filter(|t| !t.is_empty()) {
            let (id, offset, rv) = decode_token(token)
                .ok_or_else(|| SimError::BadRequest("continue key is not valid".into()))?;
            let snap = inner.snapshots.get(&id).filter(|s| s.rv == rv).map(|s| s.items.clone()).ok_or_else(|| {
                SimError::Expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into(),
                )
            })?;
            let end = limit.map_or(snap.len(), |l| (offset + l).min(snap.len()));
            let items = snap.get(offset..end).map(<[_]>::to_vec).unwrap_or_default();
            let more = end < snap.len();
            if !more {
                inner.snapshots.remove(&id);
            }
            return Ok(ListPage {
                items,
                resource_version: rv,
                continue_token: more.then(|| encode_token(id, end, rv)),
                remaining: more.then(|| snap.len() - end),
            });
        }
        let all = inner.list_all(ty, q);
        let rv = inner.rv;
        match limit {
            Some(l) if all.len() > l => {
                let now = Instant::now();
                inner
                    .snapshots
                    .retain(|_, s| now.duration_since(s.created) < SNAPSHOT_TTL);
                if inner.snapshots.len() >= MAX_SNAPSHOTS {
                    if let Some(oldest) = inner
                        .snapshots
                        .iter()
                        .min_by_key(|(_, s)| s.created)
                        .map(|(k, _)| *k)
                    {
                        inner.snapshots.remove(&oldest);
                    }
                }
                let id = inner.next_snapshot;
                inner.next_snapshot += 1;
                let items = all[..l].to_vec();
                let remaining = all.len() - l;
                inner.snapshots.insert(
                    id,
                    Snapshot {
                        created: now,
                        rv,
                        items: Arc::new(all),
                    },
                );
                Ok(ListPage {
                    items,
                    resource_version: rv,
                    continue_token: Some(encode_token(id, l, rv)),
                    remaining: Some(remaining),
                })
            }
            _ => Ok(ListPage {
                items: all,
                resource_version: rv,
                continue_token: None,
                remaining: None,
            }),
        }
    }

    /// The current objects for a watch that starts with them, and the resourceVersion they are at.
    pub fn watch_initial(&self, ty: &ResourceType, q: &ListQuery) -> (Vec<Arc<StoredObject>>, u64) {
        let inner = self.lock();
        (inner.list_all(ty, q), inner.rv)
    }

    /// Checks that a watch may resume from `rv` (410 Expired when history no longer covers it).
    pub fn check_resume(&self, rv: u64) -> Result<()> {
        let inner = self.lock();
        if rv < inner.floor {
            return Err(too_old(rv, inner.floor));
        }
        Ok(())
    }

    /// The events after `pos`, and the position to continue from.
    pub fn events_after(&self, pos: u64) -> Result<(Vec<Arc<Event>>, u64)> {
        let inner = self.lock();
        if pos < inner.floor {
            return Err(too_old(pos, inner.floor));
        }
        let start = inner.history.partition_point(|e| e.rv <= pos);
        let events = inner.history.range(start..).cloned().collect();
        Ok((events, inner.rv.max(pos)))
    }

    /// Forgets all history: watches resuming from before now get 410 Expired.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.floor = inner.rv;
        inner.snapshots.clear();
    }

    /// What an API server restart does to resumption: the watch cache starts empty at a newer
    /// resourceVersion (etcd moved on while the server was down), so a watch resuming from any
    /// resourceVersion handed out before gets 410 Expired, and paginated lists in flight too.
    pub fn restart(&self) {
        let mut inner = self.lock();
        inner.rv += 1;
        inner.history.clear();
        inner.floor = inner.rv;
        inner.snapshots.clear();
    }
}

fn too_old(rv: u64, floor: u64) -> SimError {
    SimError::Expired(format!("too old resource version: {rv} ({floor})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (Store, Arc<ResourceType>) {
        let s = Store::new(3, 1);
        let cm = s.type_for("v1", "ConfigMap").unwrap();
        s.create(
            &s.type_for("v1", "Namespace").unwrap(),
            None,
            json!({"metadata": {"name": "default"}}),
        )
        .unwrap();
        (s, cm)
    }

    #[test]
    fn stale_resource_versions_conflict_on_update() {
        let (s, cm) = store();
        let o = s
            .create(&cm, Some("default"), json!({"metadata": {"name": "a"}}))
            .unwrap();
        let mut v = o.value();
        v["data"] = json!({"k": "1"});
        s.update(&cm, "default", "a", v.clone(), false).unwrap();
        let err = s.update(&cm, "default", "a", v, false).unwrap_err();
        assert_eq!(err.code(), 409);
    }

    /// ConfigMaps `c0`, `c1`, ... in `default`.
    fn create_configmaps(s: &Store, cm: &ResourceType, n: usize) {
        for i in 0..n {
            s.create(
                cm,
                Some("default"),
                json!({"metadata": {"name": format!("c{i}")}}),
            )
            .unwrap();
        }
    }

    #[test]
    fn history_overflow_makes_old_resource_versions_expire() {
        let (s, cm) = store();
        let first = s.resource_version();
        create_configmaps(&s, &cm, 5);
        assert_eq!(s.events_after(first).unwrap_err().code(), 410);
        let recent = s.resource_version() - 2;
        assert_eq!(s.events_after(recent).unwrap().0.len(), 2);
    }

    #[test]
    fn pages_stay_consistent_while_objects_change() {
        let (s, cm) = store();
        create_configmaps(&s, &cm, 5);
        let q = ListQuery {
            limit: Some(2),
            ..Default::default()
        };
        let p1 = s.list(&cm, &q).unwrap();
        s.delete(&cm, "default", "c4").unwrap();
        let q2 = ListQuery {
            limit: Some(10),
            continue_token: p1.continue_token.clone(),
            ..Default::default()
        };
        let p2 = s.list(&cm, &q2).unwrap();
        assert_eq!(p1.items.len() + p2.items.len(), 5);
        assert_eq!(p2.resource_version, p1.resource_version);
        assert!(p2.continue_token.is_none());
    }
}
