//! `get_resource`'s answer: one live object summarised for a model, in a few hundred tokens.
//! Spec and status become short `path: value` lines, conditions and recent events are kept,
//! and health is read from them. Secrets' data, `last-applied-configuration` and
//! annotations whose names suggest credentials are never returned.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

/// Lines of spec and of status at most.
const MAX_SPEC_LINES: usize = 30;
const MAX_STATUS_LINES: usize = 15;
/// Newest events kept.
const MAX_EVENTS: usize = 8;
/// Characters of one value (label, annotation, line, message) at most.
const MAX_VALUE_CHARS: usize = 160;
/// How deep spec and status are walked.
const MAX_DEPTH: usize = 6;

/// Annotation keys whose values are never returned: they copy whole objects (Secrets
/// included) or, by their name, hold credentials.
const SENSITIVE_ANNOTATION_WORDS: [&str; 6] = [
    "last-applied-configuration",
    "token",
    "password",
    "secret",
    "credential",
    "key",
];

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDetails {
    /// The index id: `namespace/apiVersion/kind/name` (`_cluster` for cluster-scoped).
    pub id: String,
    pub kind: String,
    pub api_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// `healthy`, `unhealthy`, `progressing` or `unknown`, with the evidence in `healthReason`.
    pub health: String,
    pub health_reason: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations, with credential-like values replaced by `[redacted]`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// `path: value` lines of the spec, scalars only, long lists cut.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub spec: Vec<String>,
    /// `path: value` lines of the status, conditions apart.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub status: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Newest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventLine>,
    /// The controllers above this object, nearest first: `ReplicaSet shop/web-7d9f`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
    /// For Secrets and ConfigMaps: the names of the data keys. Secret values are never returned.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub data_keys: Vec<String>,
    /// What was left out or could not be read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub since: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventLine {
    #[serde(rename = "type")]
    pub kind: String,
    pub reason: String,
    pub message: String,
    pub count: u64,
    pub last: String,
}

/// The summary of `object` (as the API server returns it) with its `events`.
pub fn summarise(id: &str, object: &Value, events: &[Value]) -> ResourceDetails {
    let meta = &object["metadata"];
    let kind = str_at(object, "kind");
    let is_secret = kind == "Secret";
    let labels = string_map(&meta["labels"]);
    let annotations = string_map(&meta["annotations"])
        .into_iter()
        .map(|(k, v)| {
            let lower = k.to_lowercase();
            if SENSITIVE_ANNOTATION_WORDS.iter().any(|w| lower.contains(w)) {
                (k, "[redacted]".to_string())
            } else {
                (k, v)
            }
        })
        .collect();
    let conditions = conditions_of(&object["status"]);
    let mut notes = Vec::new();
    let spec = if is_secret {
        vec![]
    } else {
        let mut lines = Vec::new();
        flatten("", &object["spec"], 0, &mut lines);
        cap_lines(lines, MAX_SPEC_LINES, "spec", &mut notes)
    };
    let status = {
        let mut lines = Vec::new();
        if let Some(status) = object["status"].as_object() {
            for (k, v) in status {
                if k != "conditions" {
                    flatten(k, v, 1, &mut lines);
                }
            }
        }
        cap_lines(lines, MAX_STATUS_LINES, "status", &mut notes)
    };
    let data_keys: Vec<String> = ["data", "stringData", "binaryData"]
        .iter()
        .filter_map(|f| object[*f].as_object())
        .flat_map(|m| m.keys().cloned())
        .collect();
    if is_secret && !data_keys.is_empty() {
        notes.push("Secret values are never returned; only their keys.".into());
    }
    let (health, health_reason) = health_of(object, &conditions);
    ResourceDetails {
        id: id.to_string(),
        kind,
        api_version: str_at(object, "apiVersion"),
        namespace: meta["namespace"].as_str().map(str::to_string),
        name: str_at(meta, "name"),
        created: meta["creationTimestamp"].as_str().map(str::to_string),
        health,
        health_reason,
        labels,
        annotations,
        spec,
        status,
        conditions,
        events: recent_events(events),
        owners: vec![],
        data_keys,
        notes,
    }
}

/// The controller reference of `object` (or its first owner), as an apiVersion, kind and name.
pub fn owner_of(object: &Value) -> Option<(String, String, String)> {
    let owners = object["metadata"]["ownerReferences"].as_array()?;
    let owner = owners
        .iter()
        .find(|o| o["controller"].as_bool() == Some(true))
        .or_else(|| owners.first())?;
    Some((
        str_at(owner, "apiVersion"),
        str_at(owner, "kind"),
        str_at(owner, "name"),
    ))
}

fn str_at(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

fn shorten(s: &str) -> String {
    match s.char_indices().nth(MAX_VALUE_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), shorten(v.as_str().unwrap_or_default())))
                .collect()
        })
        .unwrap_or_default()
}

fn cap_lines(
    mut lines: Vec<String>,
    max: usize,
    what: &str,
    notes: &mut Vec<String>,
) -> Vec<String> {
    if lines.len() > max {
        notes.push(format!("{} more {what} lines left out", lines.len() - max));
        lines.truncate(max);
    }
    lines
}

/// Scalars as `path: value`; lists of scalars joined; lists of objects walked with an index
/// (a container list reads `containers[0].image: nginx:1.27`).
fn flatten(path: &str, v: &Value, depth: usize, out: &mut Vec<String>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        Value::Null => {}
        Value::Object(m) => {
            if depth >= MAX_DEPTH {
                out.push(format!("{path}: {{…{} fields}}", m.len()));
                return;
            }
            for (k, v) in m {
                flatten(&join(k), v, depth + 1, out);
            }
        }
        Value::Array(items) => {
            if items.iter().all(|i| !i.is_object() && !i.is_array()) {
                let joined: Vec<String> = items.iter().map(scalar).collect();
                out.push(shorten(&format!("{path}: [{}]", joined.join(", "))));
            } else if depth >= MAX_DEPTH {
                out.push(format!("{path}: [{} items]", items.len()));
            } else {
                for (i, item) in items.iter().enumerate() {
                    flatten(&format!("{path}[{i}]"), item, depth + 1, out);
                }
            }
        }
        other => out.push(shorten(&format!("{path}: {}", scalar(other)))),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn conditions_of(status: &Value) -> Vec<Condition> {
    status["conditions"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| Condition {
                    kind: str_at(c, "type"),
                    status: str_at(c, "status"),
                    reason: str_at(c, "reason"),
                    message: shorten(c["message"].as_str().unwrap_or_default()),
                    since: str_at(c, "lastTransitionTime"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Condition types whose `True` means trouble (the others mean readiness).
const NEGATIVE_CONDITIONS: [&str; 6] = [
    "ReplicaFailure",
    "MemoryPressure",
    "DiskPressure",
    "PIDPressure",
    "NetworkUnavailable",
    "Failed",
];

/// Health from what the object says about itself: failing conditions, a failed phase,
/// fewer ready replicas than wanted. `unknown` when it says nothing.
fn health_of(object: &Value, conditions: &[Condition]) -> (String, String) {
    let bad: Vec<String> = conditions
        .iter()
        .filter(|c| {
            let negative = NEGATIVE_CONDITIONS.contains(&c.kind.as_str());
            (negative && c.status == "True") || (!negative && c.status == "False")
        })
        .map(|c| {
            let why = [c.reason.as_str(), c.message.as_str()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(": ");
            format!("{}={} {why}", c.kind, c.status).trim().to_string()
        })
        .collect();
    if !bad.is_empty() {
        return ("unhealthy".into(), bad.join("; "));
    }
    let status = &object["status"];
    let phase = status["phase"].as_str().unwrap_or_default();
    let lower = phase.to_lowercase();
    if ["failed", "crashloopbackoff", "error", "unhealthy", "lost"]
        .iter()
        .any(|p| lower.contains(p))
    {
        return ("unhealthy".into(), format!("phase {phase}"));
    }
    let wanted = object["spec"]["replicas"]
        .as_u64()
        .or_else(|| object["spec"]["instances"].as_u64());
    let ready = status["readyReplicas"]
        .as_u64()
        .or_else(|| status["readyInstances"].as_u64());
    if let Some(wanted) = wanted {
        let ready_n = ready.unwrap_or(0);
        if ready_n < wanted && (ready.is_some() || status.is_object()) {
            let state = if ready_n == 0 {
                "unhealthy"
            } else {
                "progressing"
            };
            return (state.into(), format!("{ready_n}/{wanted} ready"));
        }
        if ready.is_some() {
            return ("healthy".into(), format!("{ready_n}/{wanted} ready"));
        }
    }
    if ["pending", "progressing", "creating", "upgrading"]
        .iter()
        .any(|p| lower.contains(p))
    {
        return ("progressing".into(), format!("phase {phase}"));
    }
    if !conditions.is_empty() {
        let ok: Vec<&str> = conditions.iter().map(|c| c.kind.as_str()).collect();
        return ("healthy".into(), format!("conditions {}", ok.join(", ")));
    }
    if !phase.is_empty() {
        return ("healthy".into(), format!("phase {phase}"));
    }
    (
        "unknown".into(),
        "the object reports no status, conditions or phase".into(),
    )
}

fn recent_events(events: &[Value]) -> Vec<EventLine> {
    let mut lines: Vec<EventLine> = events
        .iter()
        .map(|e| EventLine {
            kind: str_at(e, "type"),
            reason: str_at(e, "reason"),
            message: shorten(e["message"].as_str().unwrap_or_default()),
            count: e["count"].as_u64().unwrap_or(1),
            last: ["lastTimestamp", "eventTime", "firstTimestamp"]
                .iter()
                .find_map(|k| e[*k].as_str())
                .or_else(|| e["metadata"]["creationTimestamp"].as_str())
                .unwrap_or_default()
                .to_string(),
        })
        .collect();
    // RFC 3339 timestamps in UTC sort as strings.
    lines.sort_by(|a, b| b.last.cmp(&a.last));
    lines.truncate(MAX_EVENTS);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_show_their_keys_never_their_values() {
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "data", "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"password\":\"aHVudGVyMg==\"}}",
                "api-token": "abc123",
                "owner": "team-data"
            }},
            "type": "Opaque",
            "data": {"password": "aHVudGVyMg=="},
            "stringData": {"username": "catalog"}
        });
        let details = summarise("data/v1/Secret/db", &secret, &[]);
        let text = serde_json::to_string(&details).unwrap();
        assert!(!text.contains("aHVudGVyMg"), "{text}");
        assert!(!text.contains("abc123"), "{text}");
        assert!(!text.contains("catalog"), "{text}");
        assert_eq!(details.data_keys, ["password", "username"]);
        assert_eq!(details.annotations["owner"], "team-data");
        assert_eq!(details.annotations["api-token"], "[redacted]");
    }

    #[test]
    fn a_false_ready_condition_makes_the_object_unhealthy_with_its_reason() {
        let deploy = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}},
            "status": {"readyReplicas": 3, "conditions": [
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "0 of 3 available"}
            ]}
        });
        let d = summarise("shop/apps/v1/Deployment/web", &deploy, &[]);
        assert_eq!(d.health, "unhealthy");
        assert!(
            d.health_reason.contains("MinimumReplicasUnavailable"),
            "{}",
            d.health_reason
        );
        assert!(d
            .spec
            .contains(&"template.spec.containers[0].image: nginx:1.27".to_string()));
    }

    #[test]
    fn ready_replicas_below_the_wanted_count_is_not_healthy() {
        let sts = |ready: u64| {
            json!({"kind": "StatefulSet", "metadata": {"name": "pg"},
                   "spec": {"replicas": 3}, "status": {"readyReplicas": ready}})
        };
        assert_eq!(summarise("x", &sts(0), &[]).health, "unhealthy");
        assert_eq!(summarise("x", &sts(2), &[]).health, "progressing");
        assert_eq!(summarise("x", &sts(3), &[]).health, "healthy");
        let bare = json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        assert_eq!(summarise("x", &bare, &[]).health, "unknown");
    }

    #[test]
    fn events_are_newest_first_and_capped() {
        let events: Vec<Value> = (0..20)
            .map(|i| {
                json!({"type": "Warning", "reason": "BackOff", "message": format!("restart {i}"),
                       "count": i, "lastTimestamp": format!("2026-01-01T00:00:{i:02}Z")})
            })
            .collect();
        let d = summarise(
            "x",
            &json!({"kind": "Pod", "metadata": {"name": "p"}}),
            &events,
        );
        assert_eq!(d.events.len(), MAX_EVENTS);
        assert_eq!(d.events[0].message, "restart 19");
    }

    #[test]
    fn the_controller_owner_is_preferred() {
        let pod = json!({"metadata": {"ownerReferences": [
            {"apiVersion": "v1", "kind": "Node", "name": "n1"},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f", "controller": true}
        ]}});
        assert_eq!(
            owner_of(&pod),
            Some(("apps/v1".into(), "ReplicaSet".into(), "web-7d9f".into()))
        );
    }
}
