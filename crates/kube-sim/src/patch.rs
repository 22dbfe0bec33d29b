//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386), and a strategic merge patch
//! good enough for `kubectl apply`/`label`/`annotate` on built-in types.
//!
//! The real strategic merge patch reads `patchMergeKey`/`patchStrategy` from the Go types; here a
//! fixed table of the common list fields (containers by name, ports by containerPort/port,
//! volumeMounts by mountPath, ...) stands in for it, and any other list is replaced whole.

use serde_json::{Map, Value};

use crate::error::{Result, SimError};

/// The patch types of `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    /// Server-side apply; applied here as a strategic merge (no field ownership).
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Result<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Ok(Self::Json),
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(Self::Apply),
            other => Err(SimError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
            ))),
        }
    }
}

/// Applies `patch` (already parsed) to `doc`.
pub fn apply_patch(doc: &mut Value, kind: PatchType, patch: &Value) -> Result<()> {
    match kind {
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| SimError::BadRequest(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(doc, &ops)
                .map_err(|e| SimError::Invalid(format!("the JSON patch could not be applied: {e}")))
        }
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(SimError::BadRequest(
                    "a merge patch must be a JSON object".into(),
                ));
            }
            json_patch::merge(doc, patch);
            Ok(())
        }
        PatchType::Strategic | PatchType::Apply => {
            if !patch.is_object() {
                return Err(SimError::BadRequest(
                    "a strategic merge patch must be a JSON object".into(),
                ));
            }
            strategic_merge(doc, patch);
            Ok(())
        }
    }
}

/// The merge key of a list field, when its elements are objects (from the Kubernetes Go types).
fn merge_key(field: &str, sample: &Map<String, Value>) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "hostAliases_"
        | "resourceClaims" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "topologySpreadConstraints" => Some("topologyKey"),
        "hostAliases" => Some("ip"),
        "ports" if sample.contains_key("containerPort") => Some("containerPort"),
        "ports" if sample.contains_key("port") => Some("port"),
        _ => None,
    }
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

fn strategic_merge(target: &mut Value, patch: &Value) {
    let Some(pm) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if pm.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = strip_directives(patch);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(tm) = target.as_object_mut() else {
        return; // just made an object above
    };
    for (k, v) in pm {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(remove)) = (tm.get_mut(field), v.as_array()) {
                list.retain(|x| !remove.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue; // $setElementOrder/, $retainKeys, $patch: ordering and bookkeeping only
        }
        match v {
            Value::Null => {
                tm.remove(k);
            }
            Value::Object(inner)
                if inner.get("$patch").and_then(Value::as_str) == Some("delete") =>
            {
                tm.remove(k);
            }
            Value::Object(_) => {
                let slot = tm.entry(k.clone()).or_insert(Value::Null);
                strategic_merge(slot, v);
            }
            Value::Array(items) => {
                let slot = tm.entry(k.clone()).or_insert(Value::Array(vec![]));
                merge_list(slot, k, items);
            }
            other => {
                tm.insert(k.clone(), other.clone());
            }
        }
    }
    if let Some(Value::Array(keep)) = pm.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        tm.retain(|k, _| keep.contains(&k.as_str()));
    }
}

fn merge_list(target: &mut Value, field: &str, items: &[Value]) {
    let replace_all = items.iter().any(|i| {
        i.as_object().is_some_and(|m| {
            m.len() == 1 && m.get("$patch").and_then(Value::as_str) == Some("replace")
        })
    });
    let key = items
        .iter()
        .find_map(Value::as_object)
        .and_then(|sample| merge_key(field, sample));
    let (Some(key), false, Value::Array(existing)) = (key, replace_all, &mut *target) else {
        let kept: Vec<Value> = items
            .iter()
            .filter(|i| {
                !i.as_object()
                    .is_some_and(|m| m.contains_key("$patch") && m.len() == 1)
            })
            .map(strip_directives)
            .collect();
        *target = Value::Array(kept);
        return;
    };
    for item in items {
        let Some(id) = item.get(key) else { continue };
        let pos = existing.iter().position(|e| e.get(key) == Some(id));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                existing.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut existing[i], item),
            (None, false) => existing.push(strip_directives(item)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_patch_merges_containers_by_name_and_deletes_null_fields() {
        let mut doc = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "app", "image": "a:1", "ports": [{"containerPort": 80}]},
            {"name": "sidecar", "image": "s:1"}]}}},
            "metadata": {"labels": {"a": "1", "b": "2"}}});
        let patch = json!({"spec": {"replicas": 3, "template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [{"name": "app", "image": "a:2"}]}}},
            "metadata": {"labels": {"b": null, "c": "3"}}});
        apply_patch(&mut doc, PatchType::Strategic, &patch).unwrap();
        assert_eq!(doc["spec"]["replicas"], 3);
        let c = &doc["spec"]["template"]["spec"]["containers"];
        assert_eq!(c.as_array().unwrap().len(), 2);
        assert_eq!(c[0]["image"], "a:2");
        assert_eq!(c[0]["ports"][0]["containerPort"], 80);
        assert_eq!(doc["metadata"]["labels"], json!({"a": "1", "c": "3"}));
    }

    #[test]
    fn lists_without_a_merge_key_are_replaced() {
        let mut doc = json!({"spec": {"args": ["a", "b"]}});
        apply_patch(
            &mut doc,
            PatchType::Strategic,
            &json!({"spec": {"args": ["c"]}}),
        )
        .unwrap();
        assert_eq!(doc["spec"]["args"], json!(["c"]));
    }

    #[test]
    fn unknown_patch_content_types_are_unsupported_media() {
        assert_eq!(
            PatchType::from_content_type("text/plain")
                .unwrap_err()
                .code(),
            415
        );
    }
}
