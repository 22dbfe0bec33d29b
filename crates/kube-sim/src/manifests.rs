//! Manifests the tests of the simulator's users create again and again.

use serde_json::{json, Value};

/// A CustomResourceDefinition of a namespaced type `kind` (`plural.group`), served as `v1`
/// with a status subresource and any fields: what an operator's CRD amounts to for a
/// watcher.
pub fn custom_resource_definition(group: &str, kind: &str, plural: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind,
                      "listKind": format!("{kind}List")},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    })
}
