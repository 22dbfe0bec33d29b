//! Transform: one Kubernetes object's metadata (plus, for the types that read status, its
//! health and images) and its type become the `ResourceInstance` that cw indexes. Shared by
//! `cw watch` and `cw sync-instances` so both produce identical documents.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::DynamicObject;
use sync_model::{health, is_description_key, Owner, ResourceId, ResourceInstance, CLUSTER_SCOPE};

use crate::discovery::ResourceType;

/// Why an object cannot be indexed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// Every stored object has a name; one without is not a real object (e.g. a generateName
    /// template that was never created).
    #[error("object of kind {0} has no metadata.name")]
    MissingName(String),
}

/// Builds the indexed view of one object: namespace (`_cluster` when cluster-scoped), name,
/// kind, apiVersion, apiGroup, every label, only the description annotations (`description`
/// or `<prefix>/description`; never `kubectl.kubernetes.io/last-applied-configuration`,
/// which can hold a whole spec, secrets included), createdAt as RFC 3339 `...Z` and the
/// controlling owner.
///
/// The type, not the object, decides kind and apiVersion: metadata-only answers may omit
/// them, and the watcher watches one (preferred) version of each type.
pub fn extract_instance(
    ty: &ResourceType,
    meta: &ObjectMeta,
) -> Result<ResourceInstance, ExtractError> {
    let name = meta
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ExtractError::MissingName(ty.kind.clone()))?;
    let namespace = match (ty.namespaced, meta.namespace.as_deref()) {
        (true, Some(ns)) if !ns.is_empty() => ns,
        _ => CLUSTER_SCOPE,
    };
    let labels: BTreeMap<String, String> = meta.labels.clone().unwrap_or_default();
    let annotations: BTreeMap<String, String> = meta
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| is_description_key(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let created_at = meta
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .unwrap_or_default();
    Ok(ResourceInstance {
        id: ResourceId::new(Some(namespace), &ty.api_version, &ty.kind, name),
        namespace: namespace.to_string(),
        name: name.to_string(),
        kind: ty.kind.clone(),
        api_version: ty.api_version.clone(),
        api_group: ty.group.clone(),
        labels,
        annotations,
        created_at: rfc3339_z(&created_at),
        health: None,
        images: Vec::new(),
        owner: controller_of(meta),
    })
}

/// The owner reference that controls the object (`controller: true`), if any: a Pod's
/// ReplicaSet, a ReplicaSet's Deployment. Owners are in the object's namespace (or
/// cluster-scoped), so kind and name name them.
fn controller_of(meta: &ObjectMeta) -> Option<Owner> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| Owner {
            kind: r.kind.clone(),
            name: r.name.clone(),
        })
}

/// [`extract_instance`] of a whole object, with its health (the rules of
/// [`sync_model::health`]) and container images. Only these few fields are kept; the
/// object itself is dropped by the caller.
pub fn extract_with_status(
    ty: &ResourceType,
    obj: &DynamicObject,
) -> Result<ResourceInstance, ExtractError> {
    let mut instance = extract_instance(ty, &obj.metadata)?;
    instance.health = health::assess(&ty.group, &ty.kind, meta_facts(&obj.metadata), &obj.data);
    instance.images = sync_model::images_of(&ty.group, &ty.kind, &obj.data);
    Ok(instance)
}

/// What the health rules read of an object's metadata.
fn meta_facts(meta: &ObjectMeta) -> health::MetaFacts {
    health::MetaFacts {
        deleting: meta.deletion_timestamp.is_some(),
        generation: meta.generation,
    }
}

/// Kubernetes timestamps are whole seconds in UTC; k8s-openapi's `Time` prints them in
/// jiff's form, which already ends in `Z`. Normalise through chrono so that the format does
/// not depend on that crate's choices: `2026-02-20T10:00:00Z`.
fn rfc3339_z(raw: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(raw) {
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        Err(_) => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::ResourceType;
    use sync_model::ResourceInstance;

    /// The ingest server accepts what extraction builds.
    fn assert_valid(i: &ResourceInstance) {
        let p = sync_model::SyncPayload {
            cluster: None,
            upserts: vec![i.clone()],
            deletes: vec![],
        };
        assert_eq!(p.check(), Ok(()), "{i:?}");
    }

    fn meta(json: serde_json::Value) -> ObjectMeta {
        serde_json::from_value(json).unwrap()
    }

    fn deployments() -> ResourceType {
        ResourceType::new("apps", "v1", "Deployment", "deployments", true)
    }

    #[test]
    fn a_deployment_becomes_the_contracts_instance() {
        let m = meta(serde_json::json!({
            "name": "nginx", "namespace": "default",
            "labels": {"app": "nginx"},
            "annotations": {"description": "Main web server"},
            "creationTimestamp": "2026-02-20T10:00:00Z"
        }));
        let i: ResourceInstance = extract_instance(&deployments(), &m).unwrap();
        assert_eq!(i.id.as_str(), "default/apps/v1/Deployment/nginx");
        assert_eq!(i.api_group, "apps");
        assert_eq!(i.api_version, "apps/v1");
        assert_eq!(i.labels["app"], "nginx");
        assert_eq!(i.annotations["description"], "Main web server");
        assert_eq!(i.created_at, "2026-02-20T10:00:00Z");
        assert_valid(&i);
    }

    #[test]
    fn only_description_annotations_are_kept_and_never_last_applied_configuration() {
        let m = meta(serde_json::json!({
            "name": "db", "namespace": "prod",
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{\"password\":\"hunter2\"}",
                "example.com/description": "Orders database",
                "description": "primary",
                "deployment.kubernetes.io/revision": "3"
            },
            "creationTimestamp": "2026-02-20T10:00:00Z"
        }));
        let i = extract_instance(&deployments(), &m).unwrap();
        let keys: Vec<&str> = i.annotations.keys().map(String::as_str).collect();
        assert_eq!(keys, ["description", "example.com/description"]);
        assert!(!serde_json::to_string(&i).unwrap().contains("hunter2"));
    }

    #[test]
    fn the_controlling_owner_is_kept_and_other_owners_are_not() {
        let pods = ResourceType::new("", "v1", "Pod", "pods", true);
        let m = meta(serde_json::json!({
            "name": "web-7d9f-x2x4q", "namespace": "shop",
            "creationTimestamp": "2026-02-20T10:00:00Z",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "extra", "uid": "u1"},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f",
                 "uid": "u2", "controller": true}
            ]
        }));
        let i = extract_instance(&pods, &m).unwrap();
        assert_eq!(
            i.owner,
            Some(Owner {
                kind: "ReplicaSet".into(),
                name: "web-7d9f".into()
            })
        );
        assert_valid(&i);
        let unowned = meta(serde_json::json!({
            "name": "solo", "namespace": "shop", "creationTimestamp": "2026-02-20T10:00:00Z",
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "extra", "uid": "u1"}]
        }));
        assert_eq!(extract_instance(&pods, &unowned).unwrap().owner, None);
    }

    #[test]
    fn cluster_scoped_objects_get_the_cluster_namespace_and_core_types_an_empty_group() {
        let nodes = ResourceType::new("", "v1", "Node", "nodes", false);
        let m = meta(
            serde_json::json!({"name": "worker-1", "creationTimestamp": "2026-02-20T10:00:00Z"}),
        );
        let i = extract_instance(&nodes, &m).unwrap();
        assert_eq!(i.id.as_str(), "_cluster/v1/Node/worker-1");
        assert_eq!(i.namespace, "_cluster");
        assert_eq!(i.api_group, "");
        assert_valid(&i);
    }

    #[test]
    fn a_whole_object_brings_its_health_and_images_and_nothing_else_of_its_spec() {
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "shop", "generation": 1,
                         "creationTimestamp": "2026-02-20T10:00:00Z"},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [
                {"image": "shop/api:2.1", "env": [{"name": "PASSWORD", "value": "hunter2"}]}]}}},
            "status": {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3,
                       "availableReplicas": 1, "readyReplicas": 1}
        }))
        .unwrap();
        let i = extract_with_status(&deployments(), &obj).unwrap();
        let health = i.health.clone().unwrap();
        assert_eq!(health.status, sync_model::HealthStatus::InProgress);
        assert_eq!(health.reason, "1/3 replicas available");
        assert_eq!(i.images, ["shop/api:2.1"]);
        assert!(!serde_json::to_string(&i).unwrap().contains("hunter2"));
        assert_valid(&i);
    }

    #[test]
    fn the_health_rules_see_the_deletion_and_generation_of_the_metadata() {
        let deploy = |metadata: serde_json::Value| -> DynamicObject {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata,
                "spec": {"replicas": 1},
                "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                           "availableReplicas": 1, "readyReplicas": 1}
            }))
            .unwrap()
        };
        let health = |obj: &DynamicObject| {
            let h = extract_with_status(&deployments(), obj).unwrap().health;
            h.map(|h| (h.status, h.reason)).unwrap()
        };
        let base = serde_json::json!({"name": "api", "namespace": "shop", "generation": 1});
        assert_eq!(
            health(&deploy(base.clone())).0,
            sync_model::HealthStatus::Current
        );
        let mut newer = base.clone();
        newer["generation"] = serde_json::json!(2);
        assert_eq!(
            health(&deploy(newer)),
            (
                sync_model::HealthStatus::InProgress,
                "generation 2 not yet observed (observed 1)".into()
            )
        );
        let mut deleting = base;
        deleting["deletionTimestamp"] = serde_json::json!("2026-02-20T10:00:00Z");
        assert_eq!(
            health(&deploy(deleting)).0,
            sync_model::HealthStatus::Terminating
        );
    }

    #[test]
    fn an_object_without_a_name_is_not_indexed() {
        let m = meta(serde_json::json!({"namespace": "default"}));
        assert!(extract_instance(&deployments(), &m).is_err());
    }
}
