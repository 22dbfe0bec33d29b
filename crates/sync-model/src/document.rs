//! The document text rules: how an instance reads to an embedding model, and the content
//! hash that says whether a stored document is still current. Shared so that a sender (the
//! watcher on resync) and the ingest server agree on "unchanged" without asking each other.

use sha2::{Digest, Sha256};

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
    /// `Deployment nginx | namespace: default | apiVersion: apps/v1 | labels: app=nginx, tier=frontend | Main web server`
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
        for (key, value) in &self.annotations {
            if is_description_key(key) && !value.trim().is_empty() {
                text.push_str(" | ");
                text.push_str(value.trim());
            }
        }
        text
    }

    /// Hex SHA-256 over the document text and every indexed field: equal hashes mean the
    /// stored document, vector and metadata are all still current.
    pub fn content_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.document_text().as_bytes());
        h.update([0]);
        h.update(self.fingerprint());
        hex::encode(h.finalize())
    }
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
}
