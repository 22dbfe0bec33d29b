//! The body of `POST /api/v1/instances/sync` and its answers.

use serde::{Deserialize, Serialize};
use validator::{Validate, ValidationErrors, ValidationErrorsKind};

use crate::instance::null_as_default;
use crate::{ClusterId, ResourceId, ResourceInstance};

/// `{cluster?, upserts:[ResourceInstance], deletes:[id]}`; `null` or missing lists mean
/// empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncPayload {
    /// The cluster the upserts and deletes belong to (a DNS label such as `prod-eu`); absent
    /// (the Go controller's payload) for the server's default cluster. Deletes remove only
    /// this cluster's documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub upserts: Vec<ResourceInstance>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub deletes: Vec<ResourceId>,
}

/// One thing wrong with a payload: where (`upserts[3].labels`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// The JSON body of every error answer: `{"error": "...", "details": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub details: Vec<FieldError>,
}

/// The answer to a successful sync: `{"status":"ok","upserted":N,"deleted":M}`, plus
/// `"parked":[...]` when some upserts could not be stored (the Go controller's answer has
/// no such field; it is left out when empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncResponse {
    pub status: String,
    /// Upserts stored (or already stored unchanged); parked ones are not counted.
    pub upserted: usize,
    pub deleted: usize,
    /// Upserts a downstream service refuses whatever is retried (e.g. a text the embedding
    /// provider will not take): not stored, listed by `GET /api/v1/instances/parked`, and
    /// retried when the same id is sent again (its next change, or the next resync, which
    /// finds it missing from the stored hashes). The other upserts of the batch are stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parked: Vec<ParkedInstance>,
    /// The current incarnation of the store's collection (Chroma's collection id). It
    /// changes when the collection is created anew (the store restarted on empty data, the
    /// collection deleted): everything stored before is gone, and a sender that sees it
    /// change resyncs. Absent where the store cannot tell.
    #[serde(
        default,
        rename = "storeGeneration",
        skip_serializing_if = "Option::is_none"
    )]
    pub store_generation: Option<String>,
}

impl SyncResponse {
    pub fn ok(upserted: usize, deleted: usize) -> Self {
        SyncResponse {
            status: "ok".into(),
            upserted,
            deleted,
            parked: Vec::new(),
            store_generation: None,
        }
    }

    /// The same answer, naming the store's generation (see `store_generation`).
    pub fn with_generation(mut self, generation: Option<String>) -> Self {
        self.store_generation = generation;
        self
    }

    /// The same answer, reporting `parked` upserts.
    pub fn with_parked(mut self, parked: Vec<ParkedInstance>) -> Self {
        self.parked = parked;
        self
    }
}

/// One upsert the server could not store because a downstream service (the embedding
/// provider, the vector store) refuses it whatever is retried, while its batch-mates were
/// stored. It stays parked until the same id is upserted (retried then) or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ParkedInstance {
    pub id: ResourceId,
    /// The cluster the instance belongs to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// What the refusing service said, e.g. the provider's 400 message.
    pub reason: String,
    /// RFC 3339 time of the latest refusal.
    pub parked_at: String,
    /// `ResourceInstance::content_hash()` of the refused version.
    pub content_hash: String,
}

impl SyncPayload {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.deletes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.upserts.len() + self.deletes.len()
    }

    /// The payload's cluster, or `default` when it names none.
    pub fn cluster_or(&self, default: &ClusterId) -> Result<ClusterId, FieldError> {
        cluster_or(self.cluster.as_deref(), default)
    }

    /// Checks every item and returns every problem found, each naming its item and field,
    /// so that a sender can fix the whole batch at once.
    pub fn check(&self) -> Result<(), Vec<FieldError>> {
        let mut problems = Vec::new();
        if let Some(cluster) = &self.cluster {
            if let Err(e) = ClusterId::new(cluster) {
                problems.push(cluster_problem(e));
            }
        }
        for (i, item) in self.upserts.iter().enumerate() {
            if let Err(errors) = item.validate() {
                flatten(&format!("upserts[{i}]"), &errors, &mut problems);
            }
        }
        for (i, id) in self.deletes.iter().enumerate() {
            if let Err(e) = id.parts() {
                problems.push(FieldError {
                    field: format!("deletes[{i}]"),
                    message: e.to_string(),
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

/// The cluster a payload names, or `default` when it names none; a malformed one is the
/// payload's `cluster` field at fault.
pub fn cluster_or(named: Option<&str>, default: &ClusterId) -> Result<ClusterId, FieldError> {
    match named {
        None => Ok(default.clone()),
        Some(raw) => ClusterId::new(raw).map_err(cluster_problem),
    }
}

fn cluster_problem(e: crate::ClusterIdError) -> FieldError {
    FieldError {
        field: "cluster".into(),
        message: e.to_string(),
    }
}

fn flatten(prefix: &str, errors: &ValidationErrors, out: &mut Vec<FieldError>) {
    for (field, kind) in errors.errors() {
        let path = if field == "__all__" {
            prefix.to_string()
        } else {
            format!("{prefix}.{}", camel_case(field))
        };
        match kind {
            ValidationErrorsKind::Field(list) => {
                for e in list {
                    let message = e
                        .message
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_else(|| e.code.to_string());
                    // Struct-level checks name the field they are about in their code.
                    let path = if field == "__all__" {
                        format!("{prefix}.{}", e.code)
                    } else {
                        path.clone()
                    };
                    out.push(FieldError {
                        field: path,
                        message,
                    });
                }
            }
            ValidationErrorsKind::Struct(inner) => flatten(&path, inner, out),
            ValidationErrorsKind::List(items) => {
                for (i, inner) in items {
                    flatten(&format!("{path}[{i}]"), inner, out);
                }
            }
        }
    }
}

fn camel_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GO_PAYLOAD: &str = r#"{"upserts":[{"id":"default/apps/v1/Deployment/nginx","namespace":"default","name":"nginx","kind":"Deployment","apiVersion":"apps/v1","apiGroup":"apps","labels":{"app":"nginx"},"annotations":{"description":"Main web server"},"createdAt":"2026-02-20T10:00:00Z"}],"deletes":["default/apps/v1/Deployment/old-service"]}"#;

    #[test]
    fn the_go_controllers_payload_round_trips_byte_for_byte() {
        let p: SyncPayload = serde_json::from_str(GO_PAYLOAD).unwrap();
        assert_eq!(p.upserts.len(), 1);
        assert_eq!(p.upserts[0].api_group, "apps");
        assert_eq!(
            p.deletes[0].as_str(),
            "default/apps/v1/Deployment/old-service"
        );
        assert!(p.check().is_ok());
        assert_eq!(serde_json::to_string(&p).unwrap(), GO_PAYLOAD);
    }

    #[test]
    fn null_labels_annotations_and_lists_are_accepted_as_empty() {
        let p: SyncPayload = serde_json::from_str(
            r#"{"upserts":[{"id":"_cluster/v1/Node/n1","namespace":"_cluster","name":"n1","kind":"Node","apiVersion":"v1","apiGroup":"","labels":null,"annotations":null,"createdAt":"2026-02-20T10:00:00Z"}],"deletes":null}"#,
        )
        .unwrap();
        assert!(p.upserts[0].labels.is_empty());
        assert!(p.deletes.is_empty());
        assert!(p.check().is_ok());
        let empty: SyncPayload = serde_json::from_str(r#"{"upserts":null}"#).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn senders_emit_empty_lists_and_maps_not_null() {
        let json = serde_json::to_string(&SyncPayload::default()).unwrap();
        assert_eq!(json, r#"{"upserts":[],"deletes":[]}"#);
    }

    #[test]
    fn every_problem_is_reported_with_its_item_and_field() {
        let mut p: SyncPayload = serde_json::from_str(GO_PAYLOAD).unwrap();
        let mut bad = p.upserts[0].clone();
        bad.namespace = "Not_A_Namespace".into();
        bad.created_at = "soon".into();
        p.upserts.push(bad);
        p.deletes.push(ResourceId::from_raw("nonsense"));
        let problems = p.check().unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|f| f.field.as_str()).collect();
        assert!(fields.contains(&"upserts[1].namespace"), "{fields:?}");
        assert!(fields.contains(&"upserts[1].createdAt"), "{fields:?}");
        assert!(fields.contains(&"deletes[1]"), "{fields:?}");
        assert!(!fields.iter().any(|f| f.starts_with("upserts[0]")));
    }

    #[test]
    fn a_mismatched_id_is_reported_on_the_id_field() {
        let mut p: SyncPayload = serde_json::from_str(GO_PAYLOAD).unwrap();
        p.upserts[0].id = ResourceId::from_raw("default/apps/v1/Deployment/other");
        let problems = p.check().unwrap_err();
        assert_eq!(problems[0].field, "upserts[0].id");
        assert!(problems[0].message.contains("does not match"));
    }

    #[test]
    fn a_payload_names_its_cluster_or_belongs_to_the_default_one() {
        let default = ClusterId::new("central").unwrap();
        let go: SyncPayload = serde_json::from_str(GO_PAYLOAD).unwrap();
        assert_eq!(go.cluster, None);
        assert_eq!(go.cluster_or(&default).unwrap(), default);
        let mut named = go.clone();
        named.cluster = Some("prod-eu".into());
        assert!(named.check().is_ok());
        assert_eq!(named.cluster_or(&default).unwrap().as_str(), "prod-eu");
        let json = serde_json::to_string(&named).unwrap();
        assert!(
            json.starts_with(r#"{"cluster":"prod-eu","upserts":"#),
            "{json}"
        );
    }

    #[test]
    fn a_malformed_cluster_is_reported_on_the_cluster_field() {
        let mut p: SyncPayload = serde_json::from_str(GO_PAYLOAD).unwrap();
        p.cluster = Some("Prod_EU".into());
        let problems = p.check().unwrap_err();
        assert_eq!(problems[0].field, "cluster");
        assert!(problems[0].message.contains("DNS label"), "{problems:?}");
        let default = ClusterId::default_cluster();
        assert_eq!(p.cluster_or(&default).unwrap_err().field, "cluster");
    }

    #[test]
    fn wrong_types_fail_to_parse() {
        assert!(serde_json::from_str::<SyncPayload>(r#"{"upserts":"x"}"#).is_err());
        assert!(serde_json::from_str::<SyncPayload>(r#"{"deletes":[1]}"#).is_err());
    }
}
