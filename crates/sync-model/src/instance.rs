//! One Kubernetes object as cw indexes it: identity, labels, description annotations,
//! creation time and, for kinds whose status says so, its coarse health and container
//! images. Never the spec or status themselves.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use validator::{Validate, ValidationError};

use crate::{rules, Health, ResourceId, MAX_HEALTH_REASON_BYTES};

/// A resource instance, serialized exactly like the Go controller's `ResourceInstance`.
/// Maps are ordered so that documents and fingerprints do not depend on arrival order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
#[validate(schema(function = "check_id_matches_fields", skip_on_field_errors = true))]
pub struct ResourceInstance {
    #[validate(custom(function = "validate_id"))]
    pub id: ResourceId,
    #[validate(custom(function = "validate_namespace"))]
    pub namespace: String,
    #[validate(custom(function = "validate_name"))]
    pub name: String,
    #[validate(custom(function = "validate_kind"))]
    pub kind: String,
    #[validate(custom(function = "validate_api_version"))]
    pub api_version: String,
    /// Empty for the core group.
    #[serde(default, deserialize_with = "null_as_default")]
    pub api_group: String,
    #[serde(default, deserialize_with = "null_as_default")]
    #[validate(custom(function = "validate_labels"))]
    pub labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[validate(custom(function = "validate_annotations"))]
    pub annotations: BTreeMap<String, String>,
    #[validate(custom(function = "validate_timestamp"))]
    pub created_at: String,
    /// Coarse health from the object's status; absent when the kind has none that says
    /// anything (the Go controller never sends it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(custom(function = "validate_health"))]
    pub health: Option<Health>,
    /// Container images (init containers included) of a Pod or a workload's pod template,
    /// sorted and without duplicates.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[validate(custom(function = "validate_images"))]
    pub images: Vec<String>,
    /// The object's controlling owner (its `ownerReferences` entry with `controller: true`):
    /// a Pod's ReplicaSet or StatefulSet, a ReplicaSet's Deployment. Absent for objects
    /// nothing controls (and from the Go controller). Not part of the document text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(custom(function = "validate_owner"))]
    pub owner: Option<Owner>,
}

/// The controlling owner of an object, in its namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Owner {
    pub kind: String,
    pub name: String,
}

/// At most this many images per object: a Pod with more containers is not a real one.
pub const MAX_IMAGES: usize = 64;
/// The longest image reference accepted (registry, path, tag and digest).
pub const MAX_IMAGE_BYTES: usize = 512;

/// The group part of an apiVersion: `apps/v1` → `apps`, `v1` → `` (core).
pub fn api_group_of(api_version: &str) -> &str {
    api_version.split_once('/').map(|(g, _)| g).unwrap_or("")
}

impl ResourceInstance {
    /// A stable digest of everything cw indexes about the object, for change detection:
    /// two instances with the same fingerprint produce the same document.
    pub fn fingerprint(&self) -> [u8; 32] {
        // serde_json of a struct with BTreeMaps is canonical: field order is fixed and
        // map keys are sorted. Serializing plain strings and maps cannot fail.
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        Sha256::digest(&bytes).into()
    }
}

/// Go serializes nil maps and slices as `null`; treat that like a missing field.
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn rule_error(code: &'static str, result: Result<(), String>) -> Result<(), ValidationError> {
    result.map_err(|msg| ValidationError::new(code).with_message(msg.into()))
}

fn validate_id(id: &ResourceId) -> Result<(), ValidationError> {
    rule_error("id", id.parts().map(|_| ()).map_err(|e| e.to_string()))
}
fn validate_namespace(v: &str) -> Result<(), ValidationError> {
    rule_error("namespace", rules::check_namespace(v))
}
fn validate_name(v: &str) -> Result<(), ValidationError> {
    rule_error("name", rules::check_name(v))
}
fn validate_kind(v: &str) -> Result<(), ValidationError> {
    rule_error("kind", rules::check_kind(v))
}
fn validate_api_version(v: &str) -> Result<(), ValidationError> {
    rule_error("apiVersion", rules::check_api_version(v))
}
fn validate_timestamp(v: &str) -> Result<(), ValidationError> {
    rule_error("createdAt", rules::check_timestamp(v))
}

fn validate_health(h: &Health) -> Result<(), ValidationError> {
    if h.reason.len() > MAX_HEALTH_REASON_BYTES || h.reason.contains('\n') {
        return rule_error(
            "health",
            Err(format!(
                "health.reason must be one line of at most {MAX_HEALTH_REASON_BYTES} bytes"
            )),
        );
    }
    Ok(())
}

fn validate_owner(owner: &Owner) -> Result<(), ValidationError> {
    rule_error(
        "owner",
        rules::check_kind(&owner.kind)
            .and_then(|()| rules::check_name(&owner.name))
            .map_err(|m| format!("owner: {m}")),
    )
}

fn validate_images(images: &Vec<String>) -> Result<(), ValidationError> {
    if images.len() > MAX_IMAGES {
        return rule_error(
            "images",
            Err(format!("{} images; at most {MAX_IMAGES}", images.len())),
        );
    }
    for image in images {
        if image.is_empty() || image.len() > MAX_IMAGE_BYTES || image.contains(char::is_whitespace)
        {
            return rule_error(
                "images",
                Err(format!(
                    "image {image:?} must be 1 to {MAX_IMAGE_BYTES} bytes without spaces"
                )),
            );
        }
    }
    Ok(())
}

fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    for (k, v) in labels {
        rule_error("label", rules::check_qualified_key(k))?;
        rule_error("label", rules::check_label_value(v))?;
    }
    Ok(())
}

fn validate_annotations(annotations: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    let mut total = 0;
    for (k, v) in annotations {
        rule_error("annotation", rules::check_qualified_key(k))?;
        total += k.len() + v.len();
    }
    if total > rules::MAX_ANNOTATIONS_BYTES {
        return rule_error(
            "annotation",
            Err(format!(
                "annotations total {total} bytes; Kubernetes allows at most {}",
                rules::MAX_ANNOTATIONS_BYTES
            )),
        );
    }
    Ok(())
}

/// The id must be the one the fields describe, and apiGroup must be apiVersion's group:
/// otherwise a later delete by id would miss the stored document.
fn check_id_matches_fields(i: &ResourceInstance) -> Result<(), ValidationError> {
    let expected = ResourceId::new(Some(&i.namespace), &i.api_version, &i.kind, &i.name);
    if i.id != expected {
        return rule_error(
            "id",
            Err(format!(
                "id {:?} does not match namespace/apiVersion/kind/name {:?}",
                i.id.as_str(),
                expected.as_str()
            )),
        );
    }
    let group = api_group_of(&i.api_version);
    if i.api_group != group {
        return rule_error(
            "apiGroup",
            Err(format!(
                "apiGroup {:?} does not match apiVersion {:?} (expected {group:?})",
                i.api_group, i.api_version
            )),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixtures::nginx;

    #[test]
    fn a_well_formed_instance_validates() {
        assert!(nginx().validate().is_ok());
    }

    #[test]
    fn an_id_that_disagrees_with_the_fields_is_rejected() {
        let mut i = nginx();
        i.name = "other".into();
        let err = i.validate().unwrap_err().to_string();
        assert!(err.contains("does not match"), "{err}");
    }

    #[test]
    fn an_api_group_that_disagrees_with_the_api_version_is_rejected() {
        let mut i = nginx();
        i.api_group = "".into();
        assert!(i.validate().is_err());
    }

    #[test]
    fn bad_label_keys_are_rejected() {
        let mut i = nginx();
        i.labels.insert("bad key".into(), "x".into());
        assert!(i.validate().is_err());
    }

    #[test]
    fn fingerprints_change_with_labels_and_not_with_map_insertion_order() {
        let a = nginx();
        let mut b = nginx();
        b.labels.clear();
        b.labels.insert("tier".into(), "frontend".into());
        b.labels.insert("app".into(), "nginx".into());
        assert_eq!(a.fingerprint(), b.fingerprint());
        b.labels.insert("tier".into(), "web".into());
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn an_instance_without_health_or_images_serializes_like_the_go_controllers() {
        let json = serde_json::to_value(nginx()).unwrap();
        assert!(json.get("health").is_none());
        assert!(json.get("images").is_none());
        let back: ResourceInstance = serde_json::from_value(json).unwrap();
        assert_eq!(back, nginx());
    }

    #[test]
    fn health_and_images_travel_and_are_checked() {
        let mut i = nginx();
        i.health = Some(Health::new(
            crate::HealthStatus::Failed,
            "CrashLoopBackOff: container db",
        ));
        i.images = vec!["nginx:1.27".into()];
        let json = serde_json::to_value(&i).unwrap();
        assert_eq!(json["health"]["status"], "Failed");
        assert_eq!(json["images"][0], "nginx:1.27");
        assert!(i.validate().is_ok());
        i.images = vec!["bad image".into()];
        assert!(i.validate().is_err());
    }
}
