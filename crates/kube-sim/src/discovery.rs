//! Discovery documents (`/api`, `/apis`, `/apis/{group}/{version}`) and the small OpenAPI v3
//! documents kubectl reads before `apply`.
//!
//! kubectl 1.32 asks `/openapi/v3` whether a type's PATCH takes `fieldValidation`; when it does,
//! kubectl leaves validation to the server and never needs `/openapi/v2`
//! (k8s.io/kubectl/pkg/validation: ParamVerifyingSchema). The documents below advertise that and
//! nothing else, and do not offer strategic merge patch, so kubectl builds its patches from its
//! compiled-in types (built-ins) or falls back to JSON merge patch (custom resources).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::resources::{ResourceType, VERBS};

/// Groups with their served versions (preferred first), `""` being the core group.
fn groups(types: &[Arc<ResourceType>]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in types {
        let e = out.entry(t.group.clone()).or_default();
        for v in &t.versions {
            if !e.contains(v) {
                e.push(v.clone());
            }
        }
    }
    for vs in out.values_mut() {
        vs.sort_by_key(|v| crate::resources::version_priority(v));
    }
    out
}

pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let gv = |v: &str| json!({"groupVersion": format!("{name}/{v}"), "version": v});
    json!({
        "name": name,
        "versions": versions.iter().map(|v| gv(v)).collect::<Vec<_>>(),
        "preferredVersion": gv(versions.first().map(String::as_str).unwrap_or("v1")),
    })
}

/// Served groups plus the aggregated ones (group -> version) that no resource type serves.
fn all_groups(
    types: &[Arc<ResourceType>],
    aggregated: &BTreeMap<String, String>,
) -> BTreeMap<String, Vec<String>> {
    let mut gs = groups(types);
    for (g, v) in aggregated {
        gs.entry(g.clone()).or_insert_with(|| vec![v.clone()]);
    }
    gs
}

pub fn api_group_list(types: &[Arc<ResourceType>], aggregated: &BTreeMap<String, String>) -> Value {
    let groups: Vec<Value> = all_groups(types, aggregated)
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| group_doc(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group(
    types: &[Arc<ResourceType>],
    aggregated: &BTreeMap<String, String>,
    group: &str,
) -> Option<Value> {
    let gs = all_groups(types, aggregated);
    let vs = gs.get(group).filter(|_| !group.is_empty())?;
    let mut doc = group_doc(group, vs);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// `APIResourceList` of one group/version, or None when nothing is served there. An aggregated
/// group without resource types of its own has an empty list.
pub fn api_resource_list(
    types: &[Arc<ResourceType>],
    aggregated: &BTreeMap<String, String>,
    group: &str,
    version: &str,
) -> Option<Value> {
    let mut resources = Vec::new();
    for t in types
        .iter()
        .filter(|t| t.group == group && t.serves(version))
    {
        resources.push(json!({
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": VERBS,
            "shortNames": t.short_names,
            "categories": t.categories,
            "storageVersionHash": format!("{:x}", t.plural.len() * 7919 + t.kind.len()),
        }));
        if t.has_status {
            resources.push(json!({
                "name": format!("{}/status", t.plural),
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if t.has_scale() {
            // kubectl scale finds the Scale kind of the subresource here (group and version).
            resources.push(json!({
                "name": format!("{}/scale", t.plural),
                "singularName": "",
                "namespaced": t.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if aggregated.get(group).is_some_and(|v| v == version) {
        resources.extend(aggregated_resources(group));
    } else if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// What an aggregated group's discovery lists: metrics-server's two read-only metrics types for
/// `metrics.k8s.io` (client-go calls an empty list a failed discovery), nothing for others (a
/// custom metrics adapter without metrics). Their objects are not served.
fn aggregated_resources(group: &str) -> Vec<Value> {
    if group != "metrics.k8s.io" {
        return Vec::new();
    }
    [
        ("nodes", "NodeMetrics", false),
        ("pods", "PodMetrics", true),
    ]
    .into_iter()
    .map(|(plural, kind, namespaced)| {
        json!({"name": plural, "singularName": "", "namespaced": namespaced, "kind": kind,
                "verbs": ["get", "list"]})
    })
    .collect()
}

/// `/openapi/v3`: one entry per served group/version.
pub fn openapi_v3_root(types: &[Arc<ResourceType>], generation: u64) -> Value {
    let mut paths = serde_json::Map::new();
    for (g, vs) in groups(types) {
        for v in vs {
            let p = if g.is_empty() {
                format!("api/{v}")
            } else {
                format!("apis/{g}/{v}")
            };
            let url = format!("/openapi/v3/{p}?hash={generation:016X}");
            paths.insert(p, json!({"serverRelativeURL": url}));
        }
    }
    json!({"paths": paths})
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/{g}/{v}`: a PATCH operation per type, advertising
/// the `fieldValidation` parameter and the patch types the simulator applies.
pub fn openapi_v3_group_version(
    types: &[Arc<ResourceType>],
    group: &str,
    version: &str,
) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let mut any = false;
    for t in types
        .iter()
        .filter(|t| t.group == group && t.serves(version))
    {
        any = true;
        let path = if t.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
        } else {
            format!("{prefix}/{}/{{name}}", t.plural)
        };
        let body = json!({"schema": {"type": "object"}});
        paths.insert(
            path,
            json!({
                "patch": {
                    "operationId": format!("patch{}", t.kind),
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": t.kind},
                    "parameters": [
                        {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                        {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                        {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                    ],
                    "requestBody": {"content": {
                        "application/json-patch+json": body,
                        "application/merge-patch+json": body,
                        "application/apply-patch+yaml": body,
                    }},
                    "responses": {"200": {"description": "OK"}},
                }
            }),
        );
    }
    any.then(|| {
        json!({
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes (kube-sim)", "version": "v1.32.0"},
            "paths": paths,
            "components": {"schemas": {}},
        })
    })
}
