//! The document text rules: how an instance reads to an embedding model, and the content
//! hash that says whether a stored document is still current and, if not, whether only its
//! metadata (health, creation time) changed, so that its vector can stay. Shared so that a
//! sender (the watcher on resync) and the ingest server agree on "unchanged" without asking
//! each other.

use sha2::{Digest, Sha256};

use crate::software::{software_of, Software};
use crate::{ResourceInstance, CLUSTER_SCOPE};

/// True for annotation keys that describe an object in words: `description` or
/// `<prefix>/description`.
pub fn is_description_key(key: &str) -> bool {
    key == "description"
        || key
            .rsplit_once('/')
            .is_some_and(|(_, n)| n == "description")
}

impl ResourceInstance {
    /// `Deployment nginx | namespace: default | apiVersion: apps/v1 | labels: app=nginx, tier=frontend | images: nginx:1.27 | software: NGINX, web server, reverse proxy and load balancer | Main web server`
    ///
    /// The software line names what a well-known image or operator's resource is
    /// ([`crate::software`]), so that "databases" finds a `bitnami/postgresql` StatefulSet
    /// whose name and description never say so.
    ///
    /// Health is not part of the text: it changes often and is filtered on, not searched
    /// for in words, and a change of it must not cost an embedding.
    pub fn document_text(&self) -> String {
        let mut text = format!("{} {}", self.kind, self.name);
        if self.namespace == CLUSTER_SCOPE {
            text.push_str(" | cluster-scoped");
        } else {
            text.push_str(" | namespace: ");
            text.push_str(&self.namespace);
        }
        text.push_str(" | apiVersion: ");
        text.push_str(&self.api_version);
        if !self.labels.is_empty() {
            text.push_str(" | labels: ");
            let labels: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            text.push_str(&labels.join(", "));
        }
        if !self.images.is_empty() {
            text.push_str(IMAGES_FIELD);
            text.push_str(&self.images.join(", "));
        }
        if let Some(software) = self.software() {
            text.push_str(" | software: ");
            text.push_str(software.name);
            text.push_str(", ");
            text.push_str(software.about);
        }
        for (key, value) in &self.annotations {
            if is_description_key(key) && !value.trim().is_empty() {
                text.push_str(" | ");
                text.push_str(value.trim());
            }
        }
        text
    }

    /// The well-known software this object runs or is, if any.
    pub fn software(&self) -> Option<&'static Software> {
        software_of(&self.api_group, &self.kind, &self.images)
    }

    /// 64 hex digits in two halves. The first 32: the first 128 bits of a SHA-256 over the
    /// document text and every indexed field (equal means the stored document, vector and
    /// metadata are all still current; the same digits as before health existed, so an
    /// upgrade resends nothing). The last 32: the same over the text alone (equal means
    /// the stored vector is still right, and only metadata needs writing).
    pub fn content_hash(&self) -> String {
        let text = self.document_text();
        let mut full = Sha256::new();
        full.update(text.as_bytes());
        full.update([0]);
        full.update(self.fingerprint());
        let full = hex::encode(full.finalize());
        let text = hex::encode(Sha256::digest(text.as_bytes()));
        format!("{}{}", &full[..HALF], &text[..HALF])
    }
}

/// Hex digits in each half of a content hash.
const HALF: usize = 32;

/// True when a stored content hash says the stored document is current: nothing to write.
/// Compares the halves that cover everything, so that hashes stored before the text half
/// existed (a plain SHA-256) still match.
pub fn content_unchanged(stored: &str, current: &str) -> bool {
    matches!((stored.get(..HALF), current.get(..HALF)), (Some(a), Some(b)) if a == b)
}

/// How the images part of a document text starts.
const IMAGES_FIELD: &str = " | images: ";

/// The images a document text names ([`ResourceInstance::document_text`]), for readers
/// that hold only the stored text (`get_resource` answering from the index). Images hold
/// no whitespace and labels no `|`, so the part ends at the next ` | `.
pub fn images_of_document(text: &str) -> Vec<String> {
    let Some((_, rest)) = text.split_once(IMAGES_FIELD) else {
        return Vec::new();
    };
    let part = rest.split_once(" | ").map_or(rest, |(images, _)| images);
    part.split(", ")
        .filter(|i| !i.is_empty())
        .map(str::to_string)
        .collect()
}

/// True when a stored content hash says the stored vector is still right for the current
/// document text: a change is metadata only (health, creation time) and needs no embedding.
pub fn text_unchanged(stored: &str, current: &str) -> bool {
    matches!(
        (stored.get(HALF..2 * HALF), current.get(HALF..2 * HALF)),
        (Some(a), Some(b)) if a == b
    )
}

#[cfg(test)]
mod tests {

    use crate::fixtures::nginx;

    #[test]
    fn document_text_reads_like_the_contract_example() {
        assert_eq!(
            nginx().document_text(),
            "Deployment nginx | namespace: default | apiVersion: apps/v1 | labels: app=nginx, tier=frontend | Main web server"
        );
    }

    #[test]
    fn only_description_annotations_reach_the_text() {
        let mut i = nginx();
        i.annotations
            .insert("example.com/description".into(), "Serves the shop".into());
        i.annotations.insert(
            "kubectl.kubernetes.io/last-applied-configuration".into(),
            "{secret}".into(),
        );
        let text = i.document_text();
        assert!(text.contains("Serves the shop"));
        assert!(!text.contains("secret"));
    }

    #[test]
    fn content_hash_changes_with_any_indexed_field() {
        let a = nginx();
        let mut b = nginx();
        assert_eq!(a.content_hash(), b.content_hash());
        b.created_at = "2026-02-21T10:00:00Z".into();
        assert_ne!(a.content_hash(), b.content_hash());
    }

    #[test]
    fn a_health_change_changes_the_hash_but_not_its_text_half() {
        let a = nginx();
        let mut b = nginx();
        b.health = Some(crate::Health::new(
            crate::HealthStatus::Failed,
            "0/3 replicas available",
        ));
        let (ha, hb) = (a.content_hash(), b.content_hash());
        assert_eq!(ha.len(), 64);
        assert!(!super::content_unchanged(&ha, &hb));
        assert!(super::text_unchanged(&ha, &hb));
        assert_eq!(a.document_text(), b.document_text());
    }

    #[test]
    fn a_new_image_is_a_change_of_the_text() {
        let mut a = nginx();
        a.images = vec!["nginx:1.27".into()];
        let mut b = a.clone();
        b.images = vec!["nginx:1.28".into()];
        assert!(a.document_text().contains("images: nginx:1.27"));
        assert!(!super::text_unchanged(&a.content_hash(), &b.content_hash()));
    }

    #[test]
    fn the_images_of_a_document_text_read_back() {
        let mut i = nginx();
        assert!(super::images_of_document(&i.document_text()).is_empty());
        i.images = vec![
            "nginx:1.27".into(),
            "registry.example.com/sidecar@sha256:ab".into(),
        ];
        assert_eq!(super::images_of_document(&i.document_text()), i.images);
        i.annotations.clear();
        assert_eq!(super::images_of_document(&i.document_text()), i.images);
    }

    #[test]
    fn a_hash_stored_before_the_text_half_existed_still_reads_as_unchanged() {
        use sha2::{Digest, Sha256};
        let i = nginx();
        let mut h = Sha256::new();
        h.update(i.document_text().as_bytes());
        h.update([0]);
        h.update(i.fingerprint());
        let old = hex::encode(h.finalize());
        assert!(super::content_unchanged(&old, &i.content_hash()));
    }
}
