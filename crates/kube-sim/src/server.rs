//! The HTTP side: one router, a dispatcher that turns Kubernetes REST paths into store calls, the
//! watch streams, and the admin (fault) API under `/_sim/`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tracing::debug;

use crate::access::{Access, Caller};
use crate::discovery;
use crate::error::SimError;
use crate::faults::{Fault, Faults};
use crate::patch::PatchType;
use crate::protobuf;
use crate::resources::ResourceType;
use crate::scale;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Event, EventKind, ListQuery, Store, StoredObject};
use crate::token_request;
use sync_model::rbac::authorizer::ResourceAttributes;
use sync_model::rbac::UserInfo;

/// Everything the handlers share.
pub struct Sim {
    pub store: Store,
    pub faults: Faults,
    pub access: Access,
    pub bookmark_interval: Duration,
    pub addr: SocketAddr,
    pub open_watches: AtomicUsize,
    /// Aggregated API groups (group -> version) listed in discovery without resources of their
    /// own, as an APIService such as metrics-server's adds them.
    pub aggregated: Mutex<BTreeMap<String, String>>,
}

impl Sim {
    /// Injects a fault; a discovery fault on a group nothing serves registers that group as an
    /// aggregated API at v1beta1 first, so `/apis` lists it while its discovery fails.
    pub fn inject_fault(&self, fault: Fault) {
        if let Some(g) = fault.group.as_deref().filter(|g| !g.is_empty()) {
            if !self.store.types().iter().any(|t| t.group == g) {
                self.aggregated_groups_mut()
                    .entry(g.to_string())
                    .or_insert_with(|| "v1beta1".to_string());
            }
        }
        self.faults.inject(fault);
    }

    pub fn add_aggregated_group(&self, group: &str, version: &str) {
        self.aggregated_groups_mut()
            .insert(group.to_string(), version.to_string());
    }

    pub fn aggregated_groups(&self) -> BTreeMap<String, String> {
        self.aggregated_groups_mut().clone()
    }

    fn aggregated_groups_mut(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.aggregated.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An API server restart: every open watch ends, and resuming from any resourceVersion
    /// handed out before gets 410 Expired (see [`Store::restart`]).
    pub fn restart(&self) {
        // History first: a watch reopened between the two steps must not resume.
        self.store.restart();
        self.faults.drop_watches();
    }
}

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new().fallback(dispatch).with_state(sim)
}

fn json_bytes(code: u16, body: Bytes) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn json_value(code: u16, v: &Value) -> Response {
    json_bytes(code, Bytes::from(serde_json::to_vec(v).unwrap_or_default()))
}

fn error_response(e: &SimError) -> Response {
    json_value(e.code(), &e.status())
}

fn not_found_path() -> Response {
    error_response(&SimError::NotFound(
        "the server could not find the requested resource".into(),
    ))
}

type Params = HashMap<String, String>;

fn flag(p: &Params, k: &str) -> Option<bool> {
    p.get(k).map(|v| v == "true" || v == "1")
}

async fn dispatch(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_end_matches('/').to_string();
    let params: Params =
        serde_urlencoded::from_str::<Vec<(String, String)>>(uri.query().unwrap_or(""))
            .unwrap_or_default()
            .into_iter()
            .collect();
    match path.as_str() {
        "/healthz" | "/readyz" | "/livez" => return (StatusCode::OK, "ok").into_response(),
        _ => {}
    }
    let caller = match sim.access.authenticate(&sim.store, &headers) {
        Ok(c) => c,
        // The version is everyone's, as `system:public-info-viewer` grants it.
        Err(_) if path == "/version" => Caller::User(anonymous()),
        Err(e) => return error_response(&e),
    };
    let caller = match sim.access.impersonate(&sim.store, caller, &headers) {
        Ok(c) => c,
        Err(e) => return error_response(&e),
    };
    if let Some(rest) = path.strip_prefix("/_sim/") {
        if let Caller::User(u) = &caller {
            return error_response(&SimError::Forbidden(format!(
                "forbidden: User {:?} cannot {} path {path:?}",
                u.name,
                method.as_str().to_ascii_lowercase()
            )));
        }
        return admin(&sim, &method, rest, &body).await;
    }
    sim.faults.wait_unpaused().await;
    let segs: Vec<&str> = path
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let meta_only = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=PartialObjectMetadata"));
    let types = || sim.store.types();
    if let (&Method::GET, ["apis", group] | ["apis", group, _]) = (&method, segs.as_slice()) {
        let verdict = sim.faults.on_discovery(group);
        if !verdict.latency.is_zero() {
            tokio::time::sleep(verdict.latency).await;
        }
        if let Some(code) = verdict.error_code {
            return error_response(&SimError::Injected(code, format!("discovery of {group}")));
        }
    }
    let aggregated = || sim.aggregated_groups();
    let request = |method| Request {
        method,
        params: &params,
        headers: &headers,
        caller: &caller,
        meta_only,
    };
    match (method.clone(), segs.as_slice()) {
        // Non-resource paths (discovery, OpenAPI, issuer discovery) are open to every
        // authenticated user, as the `system:discovery` and
        // `system:service-account-issuer-discovery` roles make them on a real cluster.
        (Method::GET, [".well-known", "openid-configuration"]) => {
            json_value(200, &sim.access.issuer.openid_configuration())
        }
        (Method::GET, ["openid", "v1", "jwks"]) => json_value(200, &sim.access.issuer.jwks()),
        (Method::GET, ["version"]) => json_value(
            200,
            &json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0-kube-sim", "gitCommit": "kube-sim",
                "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23.0",
                "compiler": "gc", "platform": "linux/amd64"}),
        ),
        (Method::GET, ["api"]) => json_value(200, &discovery::api_versions(&sim.addr.to_string())),
        (Method::GET, ["apis"]) => {
            json_value(200, &discovery::api_group_list(&types(), &aggregated()))
        }
        (Method::GET, ["api", v]) => {
            match discovery::api_resource_list(&types(), &BTreeMap::new(), "", v) {
                Some(d) => json_value(200, &d),
                None => not_found_path(),
            }
        }
        (Method::GET, ["apis", g]) => match discovery::api_group(&types(), &aggregated(), g) {
            Some(d) => json_value(200, &d),
            None => not_found_path(),
        },
        (Method::GET, ["apis", g, v]) => {
            match discovery::api_resource_list(&types(), &aggregated(), g, v) {
                Some(d) => json_value(200, &d),
                None => not_found_path(),
            }
        }
        (Method::GET, ["openapi", "v3"]) => json_value(
            200,
            &discovery::openapi_v3_root(&types(), sim.store.registry_generation()),
        ),
        (Method::GET, ["openapi", "v3", "api", v]) => {
            match discovery::openapi_v3_group_version(&types(), "", v) {
                Some(d) => json_value(200, &d),
                None => not_found_path(),
            }
        }
        (Method::GET, ["openapi", "v3", "apis", g, v]) => {
            match discovery::openapi_v3_group_version(&types(), g, v) {
                Some(d) => json_value(200, &d),
                None => not_found_path(),
            }
        }
        (_, ["api", v, rest @ ..]) => resource(&sim, request(method), "", v, rest, body).await,
        (_, ["apis", g, v, rest @ ..]) => resource(&sim, request(method), g, v, rest, body).await,
        _ => not_found_path(),
    }
}

fn anonymous() -> UserInfo {
    UserInfo {
        name: "system:anonymous".into(),
        groups: vec!["system:unauthenticated".into()],
    }
}

/// What a resource handler needs of the request besides its path and body.
struct Request<'a> {
    method: Method,
    params: &'a Params,
    headers: &'a HeaderMap,
    caller: &'a Caller,
    meta_only: bool,
}

/// The request as kube-apiserver's RBAC sees it (`RequestInfoFactory`): a named GET is `get`
/// even with `watch=true`; a list or watch selecting one `metadata.name` names that object;
/// a request on a namespace object is in that namespace.
fn attributes<'a>(t: &'a Target, verb: &'a str, params: &'a Params) -> ResourceAttributes<'a> {
    let verb = if verb == "watch" && t.name.is_some() {
        "get"
    } else {
        verb
    };
    let selected = || {
        params
            .get("fieldSelector")?
            .split(',')
            .find_map(|r| r.trim().strip_prefix("metadata.name="))
    };
    let name = match (t.name.as_deref(), verb) {
        (Some(n), _) => n,
        (None, "list" | "watch") => selected().unwrap_or(""),
        _ => "",
    };
    let namespace = match (
        &t.namespace,
        t.ty.group.is_empty() && t.ty.plural == "namespaces",
    ) {
        (_, true) => name,
        (Some(ns), _) => ns.as_str(),
        (None, _) => "",
    };
    ResourceAttributes {
        verb,
        api_group: &t.ty.group,
        resource: &t.ty.plural,
        subresource: t.sub.as_deref().unwrap_or(""),
        namespace,
        name,
    }
}

/// A parsed resource path.
struct Target {
    ty: Arc<ResourceType>,
    version: String,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_target(sim: &Sim, group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let find = |plural: &str| sim.store.find_type(group, version, plural);
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, ..] if find(plural).is_some_and(|t| t.namespaced) => {
            (Some(ns.to_string()), &rest[2..])
        }
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, s] => (*p, Some(n.to_string()), Some(s.to_string())),
        _ => return None,
    };
    let ty = find(plural)?;
    if namespace.is_none() && ty.namespaced && name.is_some() {
        return None;
    }
    Some(Target {
        ty,
        version: version.to_string(),
        namespace,
        name,
        sub,
    })
}

fn list_query(params: &Params, namespace: Option<&str>) -> Result<ListQuery, SimError> {
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or("");
    let labels = LabelSelector::parse(param("labelSelector"))?;
    let fields = FieldSelector::parse(param("fieldSelector"))?;
    let limit = match params.get("limit").filter(|l| !l.is_empty()) {
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| SimError::BadRequest(format!("invalid limit {l:?}")))?,
        ),
        None => None,
    };
    Ok(ListQuery {
        namespace: namespace.map(str::to_string),
        labels,
        fields,
        limit,
        continue_token: params.get("continue").cloned(),
    })
}

/// The object of a create or update body: JSON, or protobuf as kubectl's typed clients send it.
fn decode_object_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, SimError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.starts_with(protobuf::MEDIA_TYPE) {
        return protobuf::decode_object(body);
    }
    if ct.contains("cbor") {
        // client-go sends CBOR only behind a feature gate and falls back to JSON after a 415.
        return Err(SimError::UnsupportedMediaType(format!(
            "kube-sim reads JSON and protobuf, not {ct:?}"
        )));
    }
    parse_body(body, false)
}

fn parse_body(body: &[u8], yaml: bool) -> Result<Value, SimError> {
    if yaml {
        return serde_yaml::from_slice(body)
            .map_err(|e| SimError::BadRequest(format!("error decoding YAML: {e}")));
    }
    serde_json::from_slice(body)
        .map_err(|e| SimError::BadRequest(format!("error decoding JSON: {e}")))
}

async fn resource(
    sim: &Arc<Sim>,
    req: Request<'_>,
    group: &str,
    version: &str,
    rest: &[&str],
    body: Bytes,
) -> Response {
    let Request {
        method,
        params,
        headers,
        caller,
        meta_only,
    } = req;
    let Some(t) = parse_target(sim, group, version, rest) else {
        return not_found_path();
    };
    let watch = flag(params, "watch").unwrap_or(false);
    let verb = match (&method, t.name.is_some(), watch) {
        (&Method::GET, false, true) | (&Method::GET, true, true) => "watch",
        (&Method::GET, false, false) => "list",
        (&Method::GET, true, false) => "get",
        (&Method::POST, _, _) => "create",
        (&Method::PUT, _, _) => "update",
        (&Method::PATCH, _, _) => "patch",
        (&Method::DELETE, true, _) => "delete",
        (&Method::DELETE, false, _) => "deletecollection",
        _ => "unknown",
    };
    if let Err(e) = sim
        .access
        .authorize(&sim.store, caller, &attributes(&t, verb, params))
    {
        return error_response(&e);
    }
    let verdict = sim
        .faults
        .on_request(&t.ty.plural, &t.ty.qualified_name(), verb);
    if !verdict.latency.is_zero() {
        tokio::time::sleep(verdict.latency).await;
    }
    if let Some(code) = verdict.error_code {
        let e = SimError::Injected(code, format!("{verb} {}", t.ty.qualified_name()));
        return error_response(&e);
    }
    match handle(sim, &method, verb, t, params, headers, body, meta_only).await {
        Ok(r) => r,
        Err(e) => {
            debug!(%method, verb, error = %e, "request failed");
            error_response(&e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    sim: &Arc<Sim>,
    method: &Method,
    verb: &str,
    t: Target,
    params: &Params,
    headers: &HeaderMap,
    body: Bytes,
    meta_only: bool,
) -> Result<Response, SimError> {
    let ty = t.ty.clone();
    let api_version = ty.api_version(&t.version);
    let ns = t.namespace.clone().unwrap_or_default();
    let render = |o: &Arc<StoredObject>| o.render(&api_version, meta_only);
    if t.sub.as_deref() == Some("token") && ty.group.is_empty() && ty.plural == "serviceaccounts" {
        if verb != "create" {
            return Err(SimError::MethodNotAllowed(format!(
                "the server does not allow this method on the requested resource ({verb} serviceaccounts/token)"
            )));
        }
        let name = t.name.clone().unwrap_or_default();
        let request = decode_object_body(headers, &body)?;
        let out = token_request::create(&sim.store, &sim.access.issuer, &ns, &name, request)?;
        return Ok(json_value(201, &out));
    }
    if t.sub.as_deref() == Some("scale") && ty.has_scale() {
        let name = t.name.clone().unwrap_or_default();
        return scale_subresource(sim, verb, &ty, &ns, &name, headers, &body);
    }
    if let Some(sub) = t.sub.as_deref() {
        if sub != "status" || !ty.has_status {
            return Err(SimError::NotFound(
                "the server could not find the requested resource".into(),
            ));
        }
    }
    let status_only = t.sub.is_some();
    let name = t.name.clone().unwrap_or_default();
    match verb {
        "watch" => {
            let mut q = list_query(params, t.namespace.as_deref())?;
            if let Some(n) = t.name.as_deref() {
                q.fields = FieldSelector::parse(&format!("metadata.name={n}"))?;
            }
            Ok(start_watch(sim, ty, api_version, q, params, meta_only))
        }
        "list" => {
            let q = list_query(params, t.namespace.as_deref())?;
            let page = sim.store.list(&ty, &q)?;
            Ok(json_bytes(
                200,
                list_body(
                    &ty,
                    &api_version,
                    &page.items,
                    page.resource_version,
                    page.continue_token.as_deref(),
                    page.remaining,
                    meta_only,
                ),
            ))
        }
        "get" => Ok(json_bytes(200, render(&sim.store.get(&ty, &ns, &name)?))),
        "create" => {
            if t.name.is_some() {
                return Err(SimError::MethodNotAllowed(format!(
                    "the server does not allow this method on the requested resource (post {})",
                    ty.qualified_name()
                )));
            }
            if ty.namespaced && t.namespace.is_none() {
                return Err(SimError::MethodNotAllowed(
                    "create of a namespaced resource needs a namespace in the path".into(),
                ));
            }
            let obj = decode_object_body(headers, &body)?;
            let created = sim.store.create(&ty, t.namespace.as_deref(), obj)?;
            Ok(json_bytes(201, render(&created)))
        }
        "update" => {
            if t.name.is_none() {
                return Err(SimError::MethodNotAllowed(format!(
                    "the server does not allow this method on the requested resource (put {})",
                    ty.qualified_name()
                )));
            }
            let obj = decode_object_body(headers, &body)?;
            Ok(json_bytes(
                200,
                render(&sim.store.update(&ty, &ns, &name, obj, status_only)?),
            ))
        }
        "patch" => {
            if t.name.is_none() {
                return Err(SimError::MethodNotAllowed(format!(
                    "the server does not allow this method on the requested resource (patch {})",
                    ty.qualified_name()
                )));
            }
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let kind = PatchType::from_content_type(ct)?;
            let patch = parse_body(&body, kind == PatchType::Apply)?;
            let before = sim.store.get(&ty, &ns, &name).ok().map(|o| o.rv);
            let out = sim
                .store
                .patch(&ty, &ns, &name, kind, &patch, status_only)?;
            let code = if before.is_none() { 201 } else { 200 };
            Ok(json_bytes(code, render(&out)))
        }
        "delete" => {
            if status_only {
                return Err(SimError::MethodNotAllowed(
                    "delete is not allowed on status".into(),
                ));
            }
            Ok(json_bytes(200, render(&sim.store.delete(&ty, &ns, &name)?)))
        }
        "deletecollection" => {
            let q = list_query(params, t.namespace.as_deref())?;
            let gone = sim.store.delete_collection(&ty, &q)?;
            let rv = sim.store.resource_version();
            Ok(json_bytes(
                200,
                list_body(&ty, &api_version, &gone, rv, None, None, meta_only),
            ))
        }
        _ => Err(SimError::MethodNotAllowed(format!(
            "the server does not allow this method on the requested resource ({method})"
        ))),
    }
}

/// `GET`, `PUT` and `PATCH` of `.../scale`: an `autoscaling/v1` `Scale` view of the object whose
/// writes change only `spec.replicas`.
fn scale_subresource(
    sim: &Sim,
    verb: &str,
    ty: &ResourceType,
    ns: &str,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, SimError> {
    let current = || {
        sim.store
            .get(ty, ns, name)
            .map(|o| scale::scale_of(&o.value()))
    };
    let set_replicas = |scale: &Value| -> Result<Value, SimError> {
        let patch = scale::replicas_patch(scale)?;
        let o = sim
            .store
            .patch(ty, ns, name, PatchType::Merge, &patch, false)?;
        Ok(scale::scale_of(&o.value()))
    };
    let out = match verb {
        "get" => current()?,
        "update" => set_replicas(&decode_object_body(headers, body)?)?,
        "patch" => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let kind = PatchType::from_content_type(ct)?;
            let patch = parse_body(body, kind == PatchType::Apply)?;
            let mut scale = current()?;
            crate::patch::apply_patch(&mut scale, kind, &patch)?;
            set_replicas(&scale)?
        }
        _ => {
            return Err(SimError::MethodNotAllowed(format!(
                "the server does not allow this method on the requested resource ({verb} {}/scale)",
                ty.qualified_name()
            )))
        }
    };
    Ok(json_value(200, &out))
}

fn list_body(
    ty: &ResourceType,
    api_version: &str,
    items: &[Arc<StoredObject>],
    rv: u64,
    continue_token: Option<&str>,
    remaining: Option<usize>,
    meta_only: bool,
) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = continue_token {
        meta["continue"] = json!(c);
    }
    if let Some(r) = remaining {
        meta["remainingItemCount"] = json!(r);
    }
    let (av, kind) = if meta_only {
        (
            "meta.k8s.io/v1".to_string(),
            "PartialObjectMetadataList".to_string(),
        )
    } else {
        (api_version.to_string(), format!("{}List", ty.kind))
    };
    let size: usize = items.iter().map(|o| if meta_only { o.meta_json.len() } else { o.json.len() } + 1).sum();
    let mut out = BytesMut::with_capacity(size + 256);
    out.put_slice(
        format!(
            r#"{{"apiVersion":{},"kind":{},"metadata":{},"items":["#,
            json!(av),
            json!(kind),
            meta
        )
        .as_bytes(),
    );
    for (i, o) in items.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(&o.render(api_version, meta_only));
    }
    out.put_slice(b"]}");
    out.freeze()
}

fn event_line(kind: &str, object: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(object.len() + 32);
    b.put_slice(br#"{"type":""#);
    b.put_slice(kind.as_bytes());
    b.put_slice(br#"","object":"#);
    b.put_slice(object);
    b.put_slice(b"}\n");
    b.freeze()
}

fn bookmark_line(
    ty: &ResourceType,
    api_version: &str,
    rv: u64,
    initial_end: bool,
    meta_only: bool,
) -> Bytes {
    let (av, kind) = if meta_only {
        (
            "meta.k8s.io/v1".to_string(),
            "PartialObjectMetadata".to_string(),
        )
    } else {
        (api_version.to_string(), ty.kind.clone())
    };
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let obj = json!({"kind": kind, "apiVersion": av, "metadata": meta});
    event_line("BOOKMARK", &serde_json::to_vec(&obj).unwrap_or_default())
}

/// Which event (if any) a watch with these filters sees for a change; a modification that moves
/// an object into or out of a label selector becomes ADDED or DELETED, as on a real server.
fn visible<'a>(
    ev: &'a Event,
    ty: &ResourceType,
    q: &ListQuery,
) -> Option<(EventKind, &'a StoredObject)> {
    if ev.key.0 != ty.group || ev.key.1 != ty.plural {
        return None;
    }
    if let Some(ns) = q.namespace.as_deref() {
        if ev.obj.namespace != ns {
            return None;
        }
    }
    let matches = |o: &StoredObject| {
        (q.labels.is_empty() || q.labels.matches(&o.labels))
            && (q.fields.is_empty() || q.fields.matches(&o.namespace, &o.name))
    };
    let now = matches(&ev.obj);
    match ev.kind {
        EventKind::Added | EventKind::Deleted => now.then_some((ev.kind, &ev.obj)),
        EventKind::Modified => {
            let before = ev.prev.as_deref().is_some_and(matches);
            match (before, now) {
                (true, true) => Some((EventKind::Modified, &ev.obj)),
                (false, true) => Some((EventKind::Added, &ev.obj)),
                (true, false) => Some((EventKind::Deleted, &ev.obj)),
                (false, false) => None,
            }
        }
    }
}

fn start_watch(
    sim: &Arc<Sim>,
    ty: Arc<ResourceType>,
    api_version: String,
    q: ListQuery,
    params: &Params,
    meta_only: bool,
) -> Response {
    let rv_param = params.get("resourceVersion").cloned().unwrap_or_default();
    let send_initial = flag(params, "sendInitialEvents");
    let initial = send_initial.unwrap_or(rv_param.is_empty() || rv_param == "0");
    let bookmarks = flag(params, "allowWatchBookmarks").unwrap_or(false);
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    // Subscribe before reading the state, so no change falls between the two.
    let mut rv_rx = sim.store.subscribe();
    // Catch up with the history at once: changes after `start` may predate this request.
    rv_rx.mark_changed();
    let mut drop_rx = sim.faults.drop_signal();
    drop_rx.borrow_and_update();
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    let (initial_objects, start) = if initial {
        sim.store.watch_initial(&ty, &q)
    } else {
        match rv_param.parse::<u64>() {
            Ok(rv) => match sim.store.check_resume(rv) {
                Ok(()) => (vec![], rv),
                // A real server answers 200 and then an ERROR event with the 410 Status.
                Err(e) => {
                    sim.store_expired();
                    let line = event_line(
                        "ERROR",
                        &serde_json::to_vec(&e.status()).unwrap_or_default(),
                    );
                    return json_bytes(200, line);
                }
            },
            Err(_) => {
                return error_response(&SimError::BadRequest(format!(
                    "invalid resource version {rv_param:?}"
                )))
            }
        }
    };
    let sim = sim.clone();
    sim.open_watches.fetch_add(1, Ordering::SeqCst);
    tokio::spawn(async move {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let send_all = async {
            let mut chunk = BytesMut::new();
            for o in &initial_objects {
                chunk.put_slice(&event_line("ADDED", &o.render(&api_version, meta_only)));
                if chunk.len() > 64 * 1024 && tx.send(chunk.split().freeze()).await.is_err() {
                    return false;
                }
            }
            if send_initial == Some(true) {
                chunk.put_slice(&bookmark_line(&ty, &api_version, start, true, meta_only));
            }
            chunk.is_empty() || tx.send(chunk.freeze()).await.is_ok()
        };
        let ok = match deadline {
            Some(d) => tokio::time::timeout_at(d, send_all).await.unwrap_or(false),
            None => send_all.await,
        };
        if ok {
            follow(
                &sim,
                &ty,
                &api_version,
                &q,
                start,
                bookmarks,
                deadline,
                meta_only,
                &tx,
                rv_rx,
                drop_rx,
            )
            .await;
        }
        sim.open_watches.fetch_sub(1, Ordering::SeqCst);
    });
    let stream = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|o| o.map(Ok::<_, std::convert::Infallible>))
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

#[allow(clippy::too_many_arguments)]
async fn follow(
    sim: &Sim,
    ty: &ResourceType,
    api_version: &str,
    q: &ListQuery,
    start: u64,
    bookmarks: bool,
    deadline: Option<tokio::time::Instant>,
    meta_only: bool,
    tx: &mpsc::Sender<Bytes>,
    mut rv_rx: tokio::sync::watch::Receiver<u64>,
    mut drop_rx: tokio::sync::watch::Receiver<u64>,
) {
    let mut pos = start;
    let far = tokio::time::Instant::now() + Duration::from_secs(86400 * 365);
    let end = tokio::time::sleep_until(deadline.unwrap_or(far));
    tokio::pin!(end);
    let mut tick = tokio::time::interval(sim.bookmark_interval);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tx.closed() => return,
            _ = drop_rx.changed() => return,
            _ = &mut end => return,
            _ = tick.tick(), if bookmarks => {
                if tx.send(bookmark_line(ty, api_version, pos, false, meta_only)).await.is_err() {
                    return;
                }
            }
            changed = rv_rx.changed() => {
                if changed.is_err() {
                    return;
                }
                sim.faults.wait_unpaused().await;
                match sim.store.events_after(pos) {
                    Err(e) => {
                        sim.store_expired();
                        let _ = tx.send(event_line("ERROR", &serde_json::to_vec(&e.status()).unwrap_or_default())).await;
                        return;
                    }
                    Ok((events, next)) => {
                        let mut chunk = BytesMut::new();
                        for ev in &events {
                            if let Some((kind, obj)) = visible(ev, ty, q) {
                                chunk.put_slice(&event_line(kind.as_str(), &obj.render(api_version, meta_only)));
                            }
                        }
                        pos = next;
                        if !chunk.is_empty() && tx.send(chunk.freeze()).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }
}

impl Sim {
    /// Counts a watch that was answered 410 Expired, for tests to assert on.
    fn store_expired(&self) {
        self.faults.on_request("_expired", "_expired", "watch");
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RestartRequest {
    #[serde(default)]
    downtime_ms: Option<u64>,
}

#[derive(serde::Deserialize)]
struct AggregatedGroup {
    group: String,
    #[serde(default = "default_aggregated_version")]
    version: String,
}

fn default_aggregated_version() -> String {
    "v1beta1".to_string()
}

/// `POST /_sim/restart`, optionally `{"downtimeMs": N}`: requests wait out the downtime (as
/// clients retrying a restarting server do) and the answer comes after it.
async fn admin_restart(sim: &Sim, body: &[u8]) -> Response {
    let n = sim.open_watches.load(Ordering::SeqCst);
    let downtime = match serde_json::from_slice::<RestartRequest>(body) {
        Ok(r) => r.downtime_ms.map(Duration::from_millis),
        Err(_) if body.iter().all(u8::is_ascii_whitespace) => None,
        Err(e) => {
            return error_response(&SimError::BadRequest(format!(
                "invalid restart request: {e}"
            )))
        }
    };
    match downtime {
        Some(d) => {
            sim.faults.set_paused(true);
            sim.restart();
            tokio::time::sleep(d).await;
            sim.faults.set_paused(false);
        }
        None => sim.restart(),
    }
    json_value(
        200,
        &json!({"droppedWatches": n, "resourceVersion": sim.store.resource_version().to_string()}),
    )
}

async fn admin(sim: &Sim, method: &Method, rest: &str, body: &[u8]) -> Response {
    let ok = |v: Value| json_value(200, &v);
    match (method, rest) {
        (&Method::POST, "watches/drop") => {
            let n = sim.open_watches.load(Ordering::SeqCst);
            sim.faults.drop_watches();
            ok(json!({"dropped": n}))
        }
        (&Method::POST, "history/compact") => {
            sim.store.compact();
            ok(json!({"compactedAt": sim.store.resource_version().to_string()}))
        }
        (&Method::POST, "pause") => {
            sim.faults.set_paused(true);
            ok(json!({"paused": true}))
        }
        (&Method::POST, "resume") => {
            sim.faults.set_paused(false);
            ok(json!({"paused": false}))
        }
        (&Method::POST, "restart") => admin_restart(sim, body).await,
        (&Method::GET, "apigroups") => ok(json!(sim.aggregated_groups())),
        (&Method::POST, "apigroups") => match serde_json::from_slice::<AggregatedGroup>(body) {
            Ok(g) => {
                sim.add_aggregated_group(&g.group, &g.version);
                ok(json!(sim.aggregated_groups()))
            }
            Err(e) => error_response(&SimError::BadRequest(format!("invalid API group: {e}"))),
        },
        (&Method::GET, "faults") => ok(json!(sim.faults.list())),
        (&Method::POST, "faults") => match serde_json::from_slice::<Fault>(body) {
            Ok(f) => {
                sim.inject_fault(f);
                ok(json!(sim.faults.list()))
            }
            Err(e) => error_response(&SimError::BadRequest(format!("invalid fault: {e}"))),
        },
        (&Method::DELETE, "faults") => {
            sim.faults.clear();
            ok(json!([]))
        }
        (&Method::GET, "counters") => ok(json!(sim.faults.counts())),
        (&Method::DELETE, "counters") => {
            sim.faults.reset_counts();
            ok(json!({}))
        }
        (&Method::GET, "stats") => ok(json!({
            "resourceVersion": sim.store.resource_version().to_string(),
            "objects": sim.store.object_count(),
            "openWatches": sim.open_watches.load(Ordering::SeqCst),
            "paused": sim.faults.is_paused(),
        })),
        (&Method::POST, "manifests") => {
            let text = String::from_utf8_lossy(body);
            match crate::seed::apply_manifests(&sim.store, &text, "request body") {
                Ok(n) => ok(json!({"applied": n})),
                Err(e) => error_response(&e),
            }
        }
        _ => not_found_path(),
    }
}
