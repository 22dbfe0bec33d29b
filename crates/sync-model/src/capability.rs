//! Capabilities: one record per resource *type* (what the cluster can run), beside the
//! instances (what it runs). A search for "database" finds the types first, then their
//! instances: the semantic bridge. Built from discovery and CRD schemas by the watcher and
//! `cw sync-capabilities`; POSTed to `/api/v1/capabilities/sync`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::instance::null_as_default;
use crate::{rules, FieldError};

/// One resource type, e.g. `clusters.postgresql.cnpg.io`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Capability {
    /// `plural.group`, or just `plural` for the core group: the name Kubernetes gives a CRD.
    pub id: String,
    pub kind: String,
    /// Empty for the core group.
    #[serde(default, deserialize_with = "null_as_default")]
    pub group: String,
    /// Served versions, preferred first.
    #[serde(default, deserialize_with = "null_as_default")]
    pub versions: Vec<String>,
    pub plural: String,
    pub namespaced: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub short_names: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub categories: Vec<String>,
    /// What the type is for: a CRD schema's description, or cw's own words for built-ins.
    #[serde(default, deserialize_with = "null_as_default")]
    pub description: String,
    /// Top-level `spec` fields and their schema descriptions.
    #[serde(default, deserialize_with = "null_as_default")]
    pub fields: BTreeMap<String, String>,
    /// Inferred by a language model when enrichment is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrichment: Option<Enrichment>,
}

/// What a language model inferred from a type's schema.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Enrichment {
    #[serde(default, deserialize_with = "null_as_default")]
    pub capabilities: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub providers: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub complexity: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub use_case: String,
}

/// The body of `POST /api/v1/capabilities/sync`, shaped like the instances payload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CapabilitySyncPayload {
    /// The cluster that serves (upserts) or no longer serves (deletes) these types; absent
    /// for the server's default cluster. A type stays stored while any cluster serves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub upserts: Vec<Capability>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub deletes: Vec<String>,
}

/// The id of a type: `plural.group`, or `plural` for the core group.
pub fn capability_id(plural: &str, group: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

impl Capability {
    /// `Cluster (postgresql.cnpg.io) | plural: clusters | namespaced | ... | <description> | fields: ...`
    pub fn document_text(&self) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        let mut parts = vec![
            format!("{} ({group})", self.kind),
            format!("resource: {}", self.plural),
            if self.namespaced {
                "namespaced".to_string()
            } else {
                "cluster-scoped".to_string()
            },
        ];
        if !self.versions.is_empty() {
            parts.push(format!("versions: {}", self.versions.join(", ")));
        }
        if !self.short_names.is_empty() {
            parts.push(format!("short names: {}", self.short_names.join(", ")));
        }
        if !self.categories.is_empty() {
            parts.push(format!("categories: {}", self.categories.join(", ")));
        }
        if !self.description.trim().is_empty() {
            parts.push(self.description.trim().to_string());
        }
        if !self.fields.is_empty() {
            let fields: Vec<String> = self
                .fields
                .iter()
                .map(|(name, desc)| {
                    if desc.trim().is_empty() {
                        name.clone()
                    } else {
                        format!("{name}: {}", desc.trim())
                    }
                })
                .collect();
            parts.push(format!("fields: {}", fields.join("; ")));
        }
        if let Some(e) = &self.enrichment {
            if !e.capabilities.is_empty() {
                parts.push(format!("capabilities: {}", e.capabilities.join(", ")));
            }
            if !e.providers.is_empty() {
                parts.push(format!("providers: {}", e.providers.join(", ")));
            }
            if !e.use_case.trim().is_empty() {
                parts.push(format!("use case: {}", e.use_case.trim()));
            }
            if !e.complexity.trim().is_empty() {
                parts.push(format!("complexity: {}", e.complexity.trim()));
            }
        }
        parts.join(" | ")
    }

    /// Hex SHA-256 over the document text and every field; equal hashes mean unchanged.
    pub fn content_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.document_text().as_bytes());
        h.update([0]);
        h.update(serde_json::to_vec(self).unwrap_or_default());
        hex::encode(h.finalize())
    }

    fn check(&self, at: &str, out: &mut Vec<FieldError>) {
        let mut push = |field: &str, message: String| {
            out.push(FieldError {
                field: format!("{at}.{field}"),
                message,
            })
        };
        if let Err(m) = rules::check_kind(&self.kind) {
            push("kind", m);
        }
        if self.plural.is_empty()
            || !self
                .plural
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        {
            push(
                "plural",
                format!("{:?} must be a lowercase resource name", self.plural),
            );
        }
        if !self.group.is_empty() {
            if let Err(m) = rules::check_api_version(&format!("{}/v1", self.group)) {
                push("group", m);
            }
        }
        let expected = capability_id(&self.plural, &self.group);
        if self.id != expected {
            push(
                "id",
                format!("id {:?} does not match plural.group {expected:?}", self.id),
            );
        }
    }
}

impl CapabilitySyncPayload {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.deletes.is_empty()
    }

    /// Every problem, each naming its item and field.
    pub fn check(&self) -> Result<(), Vec<FieldError>> {
        let mut problems = Vec::new();
        if let Some(cluster) = &self.cluster {
            if let Err(e) = crate::ClusterId::new(cluster) {
                problems.push(FieldError {
                    field: "cluster".into(),
                    message: e.to_string(),
                });
            }
        }
        for (i, c) in self.upserts.iter().enumerate() {
            c.check(&format!("upserts[{i}]"), &mut problems);
        }
        for (i, id) in self.deletes.iter().enumerate() {
            if id.is_empty() || id.contains('/') {
                problems.push(FieldError {
                    field: format!("deletes[{i}]"),
                    message: format!("{id:?} is not a type id such as clusters.postgresql.cnpg.io"),
                });
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cnpg() -> Capability {
        Capability {
            id: "clusters.postgresql.cnpg.io".into(),
            kind: "Cluster".into(),
            group: "postgresql.cnpg.io".into(),
            versions: vec!["v1".into()],
            plural: "clusters".into(),
            namespaced: true,
            short_names: vec![],
            categories: vec!["all".into()],
            description: "Cluster is the Schema for the PostgreSQL API".into(),
            fields: [(
                "instances".to_string(),
                "Number of instances required in the cluster".to_string(),
            )]
            .into(),
            enrichment: None,
        }
    }

    #[test]
    fn document_text_names_the_type_and_its_purpose() {
        let text = cnpg().document_text();
        assert!(
            text.starts_with("Cluster (postgresql.cnpg.io) | resource: clusters | namespaced"),
            "{text}"
        );
        assert!(text.contains("PostgreSQL API"));
        assert!(text.contains("instances: Number of instances"));
    }

    #[test]
    fn enrichment_changes_text_and_hash() {
        let plain = cnpg();
        let mut rich = cnpg();
        rich.enrichment = Some(Enrichment {
            capabilities: vec!["postgresql".into(), "database".into()],
            ..Default::default()
        });
        assert!(rich
            .document_text()
            .contains("capabilities: postgresql, database"));
        assert_ne!(plain.content_hash(), rich.content_hash());
    }

    #[test]
    fn ids_must_be_plural_dot_group() {
        let mut p = CapabilitySyncPayload {
            cluster: None,
            upserts: vec![cnpg()],
            deletes: vec!["deployments.apps".into()],
        };
        assert!(p.check().is_ok());
        p.upserts[0].id = "Cluster".into();
        p.deletes.push("a/b".into());
        let problems = p.check().unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["upserts[0].id", "deletes[1]"]);
        assert_eq!(capability_id("pods", ""), "pods");
    }

    #[test]
    fn null_lists_are_empty() {
        let c: Capability = serde_json::from_str(
            r#"{"id":"pods","kind":"Pod","group":null,"versions":null,"plural":"pods","namespaced":true,"shortNames":null,"categories":null,"description":null,"fields":null}"#,
        )
        .unwrap();
        assert!(c.short_names.is_empty() && c.fields.is_empty());
    }
}
