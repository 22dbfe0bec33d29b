//! How a resource instance becomes a stored document: the text an embedding model reads
//! (`ResourceInstance::document_text`, shared with senders), the metadata a search filters
//! on, and the content hash that decides whether it must be embedded again.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use sync_model::{ClusterId, ResourceInstance};

use crate::store::keys::{
    API_GROUP_KEY, API_VERSION_KEY, CREATED_AT_KEY, KIND_KEY, NAMESPACE_KEY, NAME_KEY,
};
use crate::store::{MetaValue, Metadata};

// The keys these documents carry live with the stores ([`crate::store::keys`]); the readers
// that know them as the document's find them here too.
pub use crate::store::keys::{
    CATEGORY_KEY, CLUSTER_KEY, HEALTH_KEY, HEALTH_REASON_KEY, LABEL_PREFIX, OWNER_KIND_KEY,
    OWNER_NAME_KEY, SOFTWARE_KEY, TEXT_HASH_KEY,
};

/// One instance, ready to embed and store (the vector comes later, only if needed).
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceDocument {
    /// The stored id: the instance id qualified by its cluster (`prod:default/v1/Pod/web`).
    pub id: String,
    pub text: String,
    pub metadata: Metadata,
    /// `ResourceInstance::content_hash()`: equal hashes mean nothing needs rewriting.
    pub content_hash: String,
}

/// The stored form of `instance` of `cluster`: text (images included), filterable metadata
/// (cluster, namespace, name, kind, apiVersion, apiGroup, createdAt, `label.<key>` per label
/// and, when known, `software`, `category`, `ownerKind`, `ownerName`, `health` and
/// `healthReason`; `cw_text_hash`, the [`text_hash`] by which any cluster's copy of the same
/// text reuses its vector) and content hash. The text and hash do not
/// depend on the cluster: a sender computes the same hash without knowing how the server
/// stores it.
pub fn to_document(instance: &ResourceInstance, cluster: &ClusterId) -> InstanceDocument {
    let mut metadata = Metadata::new();
    let mut put = |k: &str, v: &str| {
        metadata.insert(k.to_string(), MetaValue::Str(v.to_string()));
    };
    put(CLUSTER_KEY, cluster.as_str());
    put(NAMESPACE_KEY, &instance.namespace);
    put(NAME_KEY, &instance.name);
    put(KIND_KEY, &instance.kind);
    put(API_VERSION_KEY, &instance.api_version);
    put(API_GROUP_KEY, &instance.api_group);
    put(CREATED_AT_KEY, &instance.created_at);
    if let Some(software) = instance.software() {
        put(SOFTWARE_KEY, software.key());
        put(CATEGORY_KEY, software.category.as_str());
    }
    if let Some(owner) = &instance.owner {
        put(OWNER_KIND_KEY, &owner.kind);
        put(OWNER_NAME_KEY, &owner.name);
    }
    if let Some(health) = &instance.health {
        put(HEALTH_KEY, health.status.as_str());
        put(HEALTH_REASON_KEY, &health.reason);
    }
    for (key, value) in &instance.labels {
        metadata.insert(
            format!("{LABEL_PREFIX}{key}"),
            MetaValue::Str(value.clone()),
        );
    }
    let text = instance.document_text();
    metadata.insert(TEXT_HASH_KEY.to_string(), MetaValue::Str(text_hash(&text)));
    InstanceDocument {
        id: cluster.qualify(&instance.id),
        text,
        metadata,
        content_hash: instance.content_hash(),
    }
}

/// The SHA-256 of a document text, in hex: the value of `cw_text_hash` (why the full digest:
/// [`TEXT_HASH_KEY`]). Its first 32 digits are the text half of the content hash.
pub fn text_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The `cw_text_hash` a document's metadata holds, if any.
pub fn text_hash_of(metadata: &Metadata) -> Option<&str> {
    match metadata.get(TEXT_HASH_KEY)? {
        MetaValue::Str(h) => Some(h),
        _ => None,
    }
}

/// The labels a document's metadata holds (`label.<key>`), read back as the instance had
/// them.
pub fn labels_of(metadata: &Metadata) -> BTreeMap<String, String> {
    metadata
        .iter()
        .filter_map(|(k, v)| match (k.strip_prefix(LABEL_PREFIX), v) {
            (Some(key), MetaValue::Str(v)) => Some((key.to_string(), v.clone())),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_labels_read_back_from_the_metadata_are_the_instances() {
        let instance = sync_model::fixtures::nginx();
        let doc = to_document(&instance, &ClusterId::default_cluster());
        assert_eq!(labels_of(&doc.metadata), instance.labels);
        assert!(!instance.labels.is_empty());
    }

    #[test]
    fn metadata_holds_every_filterable_field_and_one_key_per_label() {
        let instance = sync_model::fixtures::nginx();
        let doc = to_document(&instance, &ClusterId::new("prod-eu").unwrap());
        assert_eq!(doc.id, "prod-eu:default/apps/v1/Deployment/nginx");
        assert_eq!(
            doc.text,
            "Deployment nginx | namespace: default | apiVersion: apps/v1 | labels: app=nginx, tier=frontend | Main web server"
        );
        let s = |k: &str| match doc.metadata.get(k) {
            Some(MetaValue::Str(s)) => s.as_str(),
            other => panic!("{k}: {other:?}"),
        };
        assert_eq!(s("cluster"), "prod-eu");
        assert_eq!(s("namespace"), "default");
        assert_eq!(s("name"), "nginx");
        assert_eq!(s("kind"), "Deployment");
        assert_eq!(s("apiVersion"), "apps/v1");
        assert_eq!(s("apiGroup"), "apps");
        assert_eq!(s("createdAt"), "2026-02-20T10:00:00Z");
        assert_eq!(s("label.app"), "nginx");
        assert_eq!(s("label.tier"), "frontend");
        assert_eq!(doc.content_hash, instance.content_hash());
        assert!(!doc.metadata.contains_key(HEALTH_KEY));
    }

    #[test]
    fn the_text_hash_is_the_same_in_every_cluster_and_extends_the_content_hashs_text_half() {
        let instance = sync_model::fixtures::nginx();
        let prod = to_document(&instance, &ClusterId::new("prod").unwrap());
        let dev = to_document(&instance, &ClusterId::new("dev").unwrap());
        let hash = text_hash_of(&prod.metadata).expect("a text hash");
        assert_eq!(Some(hash), text_hash_of(&dev.metadata));
        assert_eq!(hash.len(), 64);
        assert_eq!(&hash[..32], &instance.content_hash()[32..]);
        let mut failing = instance.clone();
        failing.health = Some(sync_model::Health::new(
            sync_model::HealthStatus::Failed,
            "0/3 replicas available",
        ));
        let failing = to_document(&failing, &ClusterId::new("prod").unwrap());
        assert_eq!(text_hash_of(&failing.metadata), Some(hash));
        let mut relabelled = instance;
        relabelled.labels.insert("tier".into(), "backend".into());
        let relabelled = to_document(&relabelled, &ClusterId::new("prod").unwrap());
        assert_ne!(text_hash_of(&relabelled.metadata), Some(hash));
    }

    #[test]
    fn health_is_metadata_and_images_are_text() {
        let mut instance = sync_model::fixtures::nginx();
        instance.health = Some(sync_model::Health::new(
            sync_model::HealthStatus::Failed,
            "CrashLoopBackOff: container web",
        ));
        instance.images = vec!["nginx:1.27".into()];
        let doc = to_document(&instance, &ClusterId::new("prod-eu").unwrap());
        assert_eq!(
            doc.metadata.get(HEALTH_KEY),
            Some(&MetaValue::Str("Failed".into()))
        );
        assert_eq!(
            doc.metadata.get(HEALTH_REASON_KEY),
            Some(&MetaValue::Str("CrashLoopBackOff: container web".into()))
        );
        assert!(doc.text.contains("images: nginx:1.27"));
        assert!(!doc.text.contains("CrashLoopBackOff"));
    }

    #[test]
    fn well_known_software_is_named_in_the_text_and_kept_as_metadata() {
        let mut instance = sync_model::fixtures::nginx();
        instance.images = vec!["docker.io/bitnami/postgresql:16.2.0".into()];
        let doc = to_document(&instance, &ClusterId::new("prod-eu").unwrap());
        assert!(
            doc.text
                .contains("| software: PostgreSQL, relational SQL database |"),
            "{}",
            doc.text
        );
        let s = |k: &str| doc.metadata.get(k).cloned();
        assert_eq!(s(SOFTWARE_KEY), Some(MetaValue::Str("postgresql".into())));
        assert_eq!(s(CATEGORY_KEY), Some(MetaValue::Str("database".into())));
        instance.images = vec!["ghcr.io/acme/checkout:1.0".into()];
        let plain = to_document(&instance, &ClusterId::new("prod-eu").unwrap());
        assert!(!plain.text.contains("software:"));
        assert!(!plain.metadata.contains_key(SOFTWARE_KEY));
        assert_ne!(plain.content_hash, doc.content_hash);
    }
}
