//! One Kubernetes object as cw indexes it: identity, labels, description annotations and
//! creation time. Never spec or status.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use validator::{Validate, ValidationError};

use crate::{rules, ResourceId};

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
}

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
}
