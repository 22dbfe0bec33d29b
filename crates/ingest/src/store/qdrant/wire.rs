//! What cw sends to and reads from Qdrant's REST API: point ids, the payload layout, filters
//! in Qdrant's filter language, and the answers' shapes. Pure data, no I/O, so every rule is
//! tested here.
//!
//! Payload layout of one record: its metadata keys as they are (`kind`, `namespace`,
//! `label.app.kubernetes.io/name`, ...), plus `cw_id` (the original id, since the point id is
//! a UUID), `cw_document`, `cw_content_hash` and `cw_labels` (every `label.<key>` as
//! `"<key>=<value>"`, one indexed array, so that a label filter uses a payload index even
//! though label keys are not known in advance).

use std::collections::HashMap;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::store::keys::{
    API_GROUP_KEY, CATEGORY_KEY, CLUSTER_KEY, CONTENT_HASH_KEY, DIMENSION_KEY, DOCUMENT_KEY,
    ENRICHMENT_KEY, GENERATION_KEY, GROUP_KEY, HEALTH_KEY, ID_KEY, KIND_KEY, LABELS_KEY,
    LABEL_PREFIX, MODEL_KEY, NAMESPACE_KEY, NAME_KEY, NEVER_KEY, SOFTWARE_KEY, TEXT_HASH_KEY,
};
use crate::store::{Filter, MetaValue, Metadata, Record, StoreError};

/// The payload keys cw writes beside a record's metadata (never taken for metadata).
const RESERVED: [&str; 4] = [ID_KEY, DOCUMENT_KEY, CONTENT_HASH_KEY, LABELS_KEY];

/// Payload fields that get a keyword index when cw creates a collection: every field a search
/// or a sync filters on (`cw_text_hash`: a sync's lookup of vectors by text). Qdrant filters
/// unindexed fields too, but slowly, and refuses them in strict mode.
pub const INDEXED_FIELDS: [&str; 12] = [
    CLUSTER_KEY,
    NAMESPACE_KEY,
    NAME_KEY,
    KIND_KEY,
    API_GROUP_KEY,
    GROUP_KEY,
    HEALTH_KEY,
    SOFTWARE_KEY,
    CATEGORY_KEY,
    ENRICHMENT_KEY,
    LABELS_KEY,
    TEXT_HASH_KEY,
];

/// Namespace of the UUIDv5 point ids: `uuid5(POINT_ID_NAMESPACE, cw id)`. Any fixed UUID
/// would do; this one is cw's own, so the ids of two applications sharing a collection do
/// not collide by accident.
pub const POINT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x8c1d_5e5a_3b7f_4f0e_9a64_2d1c_7b0e_51a3);

/// The Qdrant point id of a cw id: Qdrant takes only unsigned integers and UUIDs.
pub fn point_id(id: &str) -> String {
    Uuid::new_v5(&POINT_ID_NAMESPACE, id.as_bytes()).to_string()
}

/// One point of an upsert, serialised straight from the record (no intermediate JSON tree).
pub struct PointOut<'a>(pub &'a Record);

impl Serialize for PointOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("id", &point_id(&r.id))?;
        m.serialize_entry("vector", &r.embedding)?;
        m.serialize_entry("payload", &PayloadOut(r))?;
        m.end()
    }
}

struct PayloadOut<'a>(&'a Record);

impl Serialize for PayloadOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(None)?;
        for (k, v) in r
            .metadata
            .iter()
            .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
        {
            m.serialize_entry(k, v)?;
        }
        m.serialize_entry(ID_KEY, &r.id)?;
        m.serialize_entry(DOCUMENT_KEY, &r.document)?;
        m.serialize_entry(CONTENT_HASH_KEY, &r.content_hash)?;
        m.serialize_entry(LABELS_KEY, &labels_of(&r.metadata))?;
        m.end()
    }
}

/// `label.<key>` string metadata as `"<key>=<value>"` (label keys never hold `=`).
fn labels_of(metadata: &Metadata) -> Vec<String> {
    metadata
        .iter()
        .filter_map(|(k, v)| match (k.strip_prefix(LABEL_PREFIX), v) {
            (Some(key), MetaValue::Str(value)) => Some(format!("{key}={value}")),
            _ => None,
        })
        .collect()
}

/// The upsert body of `records`: `{"points": [...]}`.
pub fn upsert_body(records: &[Record]) -> Result<Vec<u8>, StoreError> {
    #[derive(Serialize)]
    struct Body<'a> {
        points: Vec<PointOut<'a>>,
    }
    serde_json::to_vec(&Body {
        points: records.iter().map(PointOut).collect(),
    })
    .map_err(|e| StoreError::Rejected(format!("cannot encode records for Qdrant: {e}")))
}

/// Bytes of one point in JSON, estimated from its vector and text (to bound request sizes
/// without encoding twice): a float takes at most 16 characters.
pub fn estimated_point_bytes(r: &Record) -> usize {
    let meta: usize = r.metadata.keys().map(|k| k.len() * 2 + 64).sum();
    r.embedding.len() * 16 + r.document.len() + r.id.len() + r.content_hash.len() + meta + 200
}

/// The key of a payload field as a Qdrant JSON path: plain keys as they are, keys with dots,
/// slashes or other characters quoted (`"app.kubernetes.io/name"`), since a bare dot means
/// nesting.
fn json_path_key(key: &str) -> Result<String, StoreError> {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Ok(key.to_string());
    }
    if key.contains('"') {
        return Err(StoreError::Rejected(format!(
            "cannot filter on metadata key {key:?} in Qdrant: a JSON path cannot quote '\"'"
        )));
    }
    Ok(format!("\"{key}\""))
}

fn condition(key: &str, values: &[String], any: bool) -> Result<Value, StoreError> {
    let (field, values): (String, Vec<String>) = match key.strip_prefix(LABEL_PREFIX) {
        Some(label) => (
            LABELS_KEY.to_string(),
            values.iter().map(|v| format!("{label}={v}")).collect(),
        ),
        None => (json_path_key(key)?, values.to_vec()),
    };
    let matcher = if any {
        json!({ "any": values })
    } else {
        json!({ "value": values[0] })
    };
    Ok(json!({ "key": field, "match": matcher }))
}

/// cw's filter in Qdrant's filter language: `{"must": [conditions]}`, conditions
/// `{"key", "match": {"value"}}` or `{"match": {"any"}}`, label filters on `cw_labels`.
pub fn to_filter(filter: &Filter) -> Result<Value, StoreError> {
    fn conditions(f: &Filter, out: &mut Vec<Value>) -> Result<(), StoreError> {
        match f {
            Filter::Eq(k, v) => out.push(condition(k, std::slice::from_ref(v), false)?),
            Filter::In(k, vs) => out.push(condition(k, vs, true)?),
            Filter::And(all) => {
                for f in all {
                    conditions(f, out)?;
                }
            }
            // A nested filter is a condition: `{"should": [{"must": [..]}, ..]}`. Qdrant
            // ignores an empty `should`, so no branch at all asks for a key nothing has.
            Filter::Or(any) if any.is_empty() => {
                out.push(condition(NEVER_KEY, &[NEVER_KEY.to_string()], false)?)
            }
            Filter::Or(any) => {
                let branches = any
                    .iter()
                    .map(|f| {
                        let mut must = Vec::new();
                        conditions(f, &mut must)?;
                        Ok(json!({ "must": must }))
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                out.push(json!({ "should": branches }));
            }
        }
        Ok(())
    }
    let mut must = Vec::new();
    conditions(filter, &mut must)?;
    Ok(json!({ "must": must }))
}

/// Qdrant's answer envelope: `{"result": ..., "status": "ok", "time": ...}`.
#[derive(Deserialize)]
pub struct Envelope<T> {
    pub result: T,
}

/// The error envelope: `{"status": {"error": "..."}, "time": ...}`.
pub fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Status {
        error: Option<String>,
    }
    #[derive(Deserialize)]
    struct ErrorBody {
        status: Status,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody {
            status: Status { error: Some(e) },
        }) => e,
        _ => String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
    }
}

#[derive(Deserialize)]
pub struct CollectionInfo {
    pub config: CollectionConfig,
    #[serde(default)]
    pub payload_schema: HashMap<String, Value>,
    #[serde(default)]
    pub points_count: Option<u64>,
}

#[derive(Deserialize)]
pub struct CollectionConfig {
    pub params: CollectionParams,
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, Value>>,
}

#[derive(Deserialize)]
pub struct CollectionParams {
    /// One unnamed vector (`{"size", "distance"}`) or named ones (a map).
    #[serde(default)]
    pub vectors: Option<Value>,
}

impl CollectionInfo {
    /// `(size, distance)` of the collection's single unnamed vector.
    pub fn unnamed_vector(&self) -> Option<(u64, String)> {
        let v = self.config.params.vectors.as_ref()?;
        Some((
            v.get("size")?.as_u64()?,
            v.get("distance")?.as_str()?.to_string(),
        ))
    }

    /// The generation recorded in the collection's metadata ([`GENERATION_KEY`]).
    pub fn recorded_generation(&self) -> Option<String> {
        let meta = self.config.metadata.as_ref()?;
        Some(meta.get(GENERATION_KEY)?.as_str()?.to_string())
    }

    /// The model id and dimension recorded in the collection's metadata.
    pub fn recorded_model(&self) -> Option<(String, Option<u64>)> {
        let meta = self.config.metadata.as_ref()?;
        let model = meta.get(MODEL_KEY)?.as_str()?.to_string();
        Some((model, meta.get(DIMENSION_KEY).and_then(Value::as_u64)))
    }
}

/// A point as `retrieve` and `scroll` answer it.
#[derive(Deserialize)]
pub struct PointIn {
    #[serde(default)]
    pub payload: Option<serde_json::Map<String, Value>>,
    /// Only when asked for (`with_vector`); cw's collections have one unnamed vector.
    #[serde(default)]
    pub vector: Option<Vec<f32>>,
    /// Only in query answers.
    #[serde(default)]
    pub score: Option<f32>,
}

#[derive(Deserialize)]
pub struct ScrollPage {
    pub points: Vec<PointIn>,
    /// The id to start the next page from (Qdrant's cursor), absent after the last page.
    #[serde(default)]
    pub next_page_offset: Option<Value>,
}

#[derive(Deserialize)]
pub struct QueryAnswer {
    pub points: Vec<PointIn>,
}

#[derive(Deserialize)]
pub struct CountAnswer {
    pub count: usize,
}

impl PointIn {
    fn str_field(&self, key: &str) -> Option<&str> {
        self.payload.as_ref()?.get(key)?.as_str()
    }

    /// The original cw id (None for points cw did not write).
    pub fn cw_id(&self) -> Option<&str> {
        self.str_field(ID_KEY)
    }

    pub fn content_hash(&self) -> Option<&str> {
        self.str_field(CONTENT_HASH_KEY)
    }

    pub fn text_hash(&self) -> Option<&str> {
        self.str_field(TEXT_HASH_KEY)
    }

    pub fn document(&self) -> &str {
        self.str_field(DOCUMENT_KEY).unwrap_or_default()
    }

    /// The metadata as it was written: every payload field but cw's own, scalars only.
    pub fn metadata(&self) -> Metadata {
        let Some(payload) = &self.payload else {
            return Metadata::new();
        };
        payload
            .iter()
            .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
            .filter_map(|(k, v)| {
                let v = match v {
                    Value::String(s) => MetaValue::Str(s.clone()),
                    Value::Bool(b) => MetaValue::Bool(*b),
                    Value::Number(n) => match n.as_i64() {
                        Some(i) => MetaValue::Int(i),
                        None => MetaValue::Float(n.as_f64()?),
                    },
                    _ => return None,
                };
                Some((k.clone(), v))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            id: "default/apps/v1/Deployment/nginx".into(),
            document: "Deployment nginx".into(),
            embedding: vec![1.0, 0.5],
            metadata: [
                ("kind".to_string(), MetaValue::Str("Deployment".into())),
                (
                    "label.app.kubernetes.io/name".to_string(),
                    MetaValue::Str("nginx".into()),
                ),
                ("replicas".to_string(), MetaValue::Int(3)),
            ]
            .into(),
            content_hash: "h1".into(),
        }
    }

    #[test]
    fn point_ids_are_stable_uuid_v5_of_the_cw_id() {
        let id = point_id("default/apps/v1/Deployment/nginx");
        let parsed = Uuid::parse_str(&id).unwrap();
        assert_eq!(parsed.get_version_num(), 5);
        assert_eq!(id, point_id("default/apps/v1/Deployment/nginx"));
        assert_ne!(id, point_id("default/apps/v1/Deployment/nginx2"));
    }

    #[test]
    fn points_carry_the_id_document_hash_metadata_and_label_pairs() {
        let r = record();
        let v = serde_json::to_value(PointOut(&r)).unwrap();
        assert_eq!(
            v,
            json!({
                "id": point_id(&r.id),
                "vector": [1.0, 0.5],
                "payload": {
                    "kind": "Deployment",
                    "label.app.kubernetes.io/name": "nginx",
                    "replicas": 3,
                    "cw_id": r.id,
                    "cw_document": "Deployment nginx",
                    "cw_content_hash": "h1",
                    "cw_labels": ["app.kubernetes.io/name=nginx"],
                }
            })
        );
    }

    #[test]
    fn the_payload_reads_back_as_the_written_metadata() {
        let r = record();
        let v = serde_json::to_value(PointOut(&r)).unwrap();
        let p: PointIn = serde_json::from_value(json!({"payload": v["payload"]})).unwrap();
        assert_eq!(p.cw_id(), Some(r.id.as_str()));
        assert_eq!(p.document(), r.document);
        assert_eq!(p.content_hash(), Some("h1"));
        assert_eq!(p.metadata(), r.metadata);
    }

    #[test]
    fn filters_become_must_conditions_with_labels_on_the_label_array() {
        let f = Filter::And(vec![
            Filter::Eq("kind".into(), "Deployment".into()),
            Filter::In("namespace".into(), vec!["a".into(), "b".into()]),
            Filter::Eq("label.app.kubernetes.io/name".into(), "nginx".into()),
            Filter::And(vec![Filter::Eq("cw_enrichment".into(), "off".into())]),
        ]);
        assert_eq!(
            to_filter(&f).unwrap(),
            json!({"must": [
                {"key": "kind", "match": {"value": "Deployment"}},
                {"key": "namespace", "match": {"any": ["a", "b"]}},
                {"key": "cw_labels", "match": {"value": "app.kubernetes.io/name=nginx"}},
                {"key": "cw_enrichment", "match": {"value": "off"}},
            ]})
        );
        let labels_in = Filter::In("label.tier".into(), vec!["web".into(), "db".into()]);
        assert_eq!(
            to_filter(&labels_in).unwrap(),
            json!({"must": [{"key": "cw_labels", "match": {"any": ["tier=web", "tier=db"]}}]})
        );
    }

    #[test]
    fn keys_with_dots_or_slashes_are_quoted_json_paths() {
        assert_eq!(json_path_key("apiGroup").unwrap(), "apiGroup");
        assert_eq!(json_path_key("no-such_key1").unwrap(), "no-such_key1");
        assert_eq!(
            json_path_key("example.com/owner").unwrap(),
            "\"example.com/owner\""
        );
        assert!(matches!(
            json_path_key("a\"b"),
            Err(StoreError::Rejected(_))
        ));
    }

    #[test]
    fn error_messages_come_from_qdrants_error_envelope() {
        let body = br#"{"status":{"error":"Not found: Collection `x` doesn't exist!"},"time":0.1}"#;
        assert_eq!(
            error_message(body),
            "Not found: Collection `x` doesn't exist!"
        );
        assert_eq!(error_message(b"plain text"), "plain text");
    }
}
