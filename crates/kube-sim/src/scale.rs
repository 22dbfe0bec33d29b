//! The `scale` subresource of Deployments, StatefulSets and ReplicaSets (`autoscaling/v1`
//! `Scale`), which `kubectl scale` reads and patches
//! (<https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/scale/>).

use serde_json::{json, Value};

use crate::error::SimError;
use crate::resources::ResourceType;

impl ResourceType {
    /// Whether the type has a `scale` subresource.
    pub fn has_scale(&self) -> bool {
        !self.custom
            && self.group == "apps"
            && matches!(
                self.plural.as_str(),
                "deployments" | "statefulsets" | "replicasets"
            )
    }
}

/// The `Scale` of an object: its desired replicas (1 when unset, the API server's default),
/// observed replicas and label selector.
pub fn scale_of(obj: &Value) -> Value {
    let meta = &obj["metadata"];
    let mut m = serde_json::Map::new();
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(k) {
            m.insert(k.to_string(), v.clone());
        }
    }
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": m,
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)},
        "status": {
            "replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    })
}

/// The merge patch that sets the parent's replicas to what a written `Scale` asks for.
pub fn replicas_patch(scale: &Value) -> Result<Value, SimError> {
    let n = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .ok_or_else(|| SimError::Invalid("Scale.spec.replicas: Required value".into()))?;
    if n < 0 {
        return Err(SimError::Invalid(format!(
            "Scale.spec.replicas: Invalid value: {n}: must be greater than or equal to 0"
        )));
    }
    Ok(json!({"spec": {"replicas": n}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_reports_desired_observed_replicas_and_the_selector() {
        let d = json!({"metadata": {"name": "web", "namespace": "default", "resourceVersion": "7"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "tier": "front"}}},
            "status": {"replicas": 2}});
        let s = scale_of(&d);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(
            s["status"],
            json!({"replicas": 2, "selector": "app=web,tier=front"})
        );
        assert_eq!(s["metadata"]["resourceVersion"], "7");
        assert_eq!(scale_of(&json!({"metadata": {}}))["spec"]["replicas"], 1);
    }

    #[test]
    fn a_negative_or_missing_replica_count_is_invalid() {
        assert_eq!(
            replicas_patch(&json!({"spec": {"replicas": -1}}))
                .unwrap_err()
                .code(),
            422
        );
        assert_eq!(
            replicas_patch(&json!({"spec": {}})).unwrap_err().code(),
            422
        );
        assert_eq!(
            replicas_patch(&json!({"spec": {"replicas": 0}})).unwrap(),
            json!({"spec": {"replicas": 0}})
        );
    }
}
