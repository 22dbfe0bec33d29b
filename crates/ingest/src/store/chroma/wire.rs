//! What cw sends to and reads from Chroma: the column-wise upsert body (vectors as base64
//! little-endian f32, which Chroma accepts for writes: a quarter of the bytes of JSON
//! floats), filters in Chroma's `where`, and the answers' shapes. Pure data, no I/O.
//!
//! A record's metadata is stored as it is, plus `cw_content_hash`; the content hash is
//! taken out again on the way back.

use base64::Engine;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{json, Value};

use crate::store::keys::{CONTENT_HASH_KEY, NEVER_KEY, TEXT_HASH_KEY};
use crate::store::{Filter, Hit, MetaValue, Metadata, Record};

/// Chroma's errors are `{"error": "...", "message": "..."}`.
pub(super) fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct E {
        #[serde(default)]
        error: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<E>(body) {
        Ok(e) if !e.message.is_empty() => format!("{}: {}", e.error, e.message),
        _ => String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
    }
}

#[derive(Deserialize)]
pub(super) struct CollectionInfo {
    pub id: String,
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, Value>>,
}

/// Records serialized as Chroma's column-wise upsert body, the content hash added to each
/// metadata and vectors as base64.
pub(super) struct UpsertBody<'a> {
    pub rows: &'a [Record],
}

impl Serialize for UpsertBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Ids<'a>(&'a [Record]);
        struct Embeddings<'a>(&'a [Record]);
        struct Documents<'a>(&'a [Record]);
        struct Metadatas<'a>(&'a [Record]);
        struct WithHash<'a>(&'a Record);
        impl Serialize for Ids<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().map(|r| &r.id))
            }
        }
        impl Serialize for Embeddings<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().map(|r| encode_vector(&r.embedding)))
            }
        }
        impl Serialize for Documents<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().map(|r| &r.document))
            }
        }
        impl Serialize for Metadatas<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().map(WithHash))
            }
        }
        impl Serialize for WithHash<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(self.0.metadata.len() + 1))?;
                for (k, v) in &self.0.metadata {
                    if k != CONTENT_HASH_KEY {
                        m.serialize_entry(k, v)?;
                    }
                }
                m.serialize_entry(CONTENT_HASH_KEY, &self.0.content_hash)?;
                m.end()
            }
        }
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("ids", &Ids(self.rows))?;
        m.serialize_entry("embeddings", &Embeddings(self.rows))?;
        m.serialize_entry("documents", &Documents(self.rows))?;
        m.serialize_entry("metadatas", &Metadatas(self.rows))?;
        m.end()
    }
}

fn encode_vector(v: &[f32]) -> String {
    let mut bytes = Vec::with_capacity(v.len() * 4);
    for x in v {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Bytes of one row in an upsert body, estimated from its vector and text (to bound request
/// sizes without encoding twice): base64 of the vector, the document, metadata and JSON
/// punctuation.
pub(super) fn estimated_row_bytes(r: &Record) -> usize {
    r.embedding.len() * 4 * 4 / 3
        + r.document.len() * 2
        + r.metadata.keys().map(|k| k.len() + 64).sum::<usize>()
        + 200
}

/// The subset of Chroma's `where` that cw uses.
pub(super) fn to_where(filter: &Filter) -> Option<Value> {
    match filter {
        Filter::Eq(k, v) => Some(json!({ k: { "$eq": v } })),
        Filter::In(k, vs) => Some(json!({ k: { "$in": vs } })),
        Filter::And(all) => {
            let mut parts: Vec<Value> = all.iter().filter_map(to_where).collect();
            // Chroma wants at least two operands under $and.
            match parts.len() {
                0 => None,
                1 => parts.pop(),
                _ => Some(json!({ "$and": parts })),
            }
        }
        Filter::Or(any) => {
            let mut parts: Vec<Value> = Vec::with_capacity(any.len());
            for f in any {
                match to_where(f) {
                    Some(w) => parts.push(w),
                    // One branch without conditions matches everything: so does the whole.
                    None => return None,
                }
            }
            match parts.len() {
                0 => Some(json!({ NEVER_KEY: { "$eq": NEVER_KEY } })),
                1 => parts.pop(),
                _ => Some(json!({ "$or": parts })),
            }
        }
    }
}

fn to_metadata(raw: Option<serde_json::Map<String, Value>>) -> Metadata {
    raw.unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k != CONTENT_HASH_KEY)
        .filter_map(|(k, v)| {
            let v = match v {
                Value::String(s) => MetaValue::Str(s),
                Value::Bool(b) => MetaValue::Bool(b),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => MetaValue::Int(i),
                    None => MetaValue::Float(n.as_f64()?),
                },
                _ => return None,
            };
            Some((k, v))
        })
        .collect()
}

pub(super) type RawMeta = Option<serde_json::Map<String, Value>>;

#[derive(Deserialize)]
pub(super) struct GetResponse {
    pub ids: Vec<String>,
    #[serde(default)]
    documents: Option<Vec<Option<String>>>,
    #[serde(default)]
    pub embeddings: Option<Vec<Option<Vec<f32>>>>,
    #[serde(default)]
    pub metadatas: Option<Vec<RawMeta>>,
}

#[derive(Deserialize)]
pub(super) struct QueryResponse {
    ids: Vec<Vec<String>>,
    #[serde(default)]
    documents: Option<Vec<Vec<Option<String>>>>,
    #[serde(default)]
    metadatas: Option<Vec<Vec<RawMeta>>>,
    #[serde(default)]
    distances: Option<Vec<Vec<Option<f32>>>>,
}

pub(super) fn hash_of(meta: &RawMeta) -> Option<String> {
    match meta.as_ref()?.get(CONTENT_HASH_KEY)? {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// The `cw_text_hash` of a row's metadata.
pub(super) fn text_hash_of(meta: &RawMeta) -> Option<&str> {
    meta.as_ref()?.get(TEXT_HASH_KEY)?.as_str()
}

impl CollectionInfo {
    /// The embedding model recorded in the collection's metadata.
    pub(super) fn model(&self) -> Option<crate::embed::ModelInfo> {
        let meta = self.metadata.as_ref()?;
        Some(crate::embed::ModelInfo {
            id: meta
                .get(crate::store::keys::MODEL_KEY)?
                .as_str()?
                .to_string(),
            dimension: meta
                .get(crate::store::keys::DIMENSION_KEY)
                .and_then(Value::as_u64)
                .unwrap_or(0) as usize,
        })
    }
}

impl GetResponse {
    /// The rows as whole records (a get with documents, metadatas and embeddings).
    pub(super) fn into_records(self) -> Vec<crate::store::Record> {
        let mut docs = self.documents.unwrap_or_default().into_iter();
        let mut metas = self.metadatas.unwrap_or_default().into_iter();
        let mut vectors = self.embeddings.unwrap_or_default().into_iter();
        self.ids
            .into_iter()
            .map(|id| {
                let meta = metas.next().flatten();
                crate::store::Record {
                    id,
                    document: docs.next().flatten().unwrap_or_default(),
                    content_hash: hash_of(&meta).unwrap_or_default(),
                    metadata: to_metadata(meta),
                    embedding: vectors.next().flatten().unwrap_or_default(),
                }
            })
            .collect()
    }

    /// The rows as hits of a filter-only read (no vector was compared: distance 0).
    pub(super) fn into_hits(self) -> Vec<Hit> {
        let mut docs = self.documents.unwrap_or_default().into_iter();
        let mut metas = self.metadatas.unwrap_or_default().into_iter();
        self.ids
            .into_iter()
            .map(|id| Hit {
                id,
                document: docs.next().flatten().unwrap_or_default(),
                metadata: to_metadata(metas.next().flatten()),
                distance: 0.0,
            })
            .collect()
    }
}

impl QueryResponse {
    /// The nearest rows of the one query vector sent, as hits.
    pub(super) fn into_hits(self) -> Vec<Hit> {
        let ids = self.ids.into_iter().next().unwrap_or_default();
        let mut docs = first_query(self.documents);
        let mut metas = first_query(self.metadatas);
        let mut dists = first_query(self.distances);
        ids.into_iter()
            .map(|id| Hit {
                id,
                document: docs.next().flatten().unwrap_or_default(),
                metadata: to_metadata(metas.next().flatten()),
                distance: dists.next().flatten().unwrap_or(f32::MAX),
            })
            .collect()
    }
}

/// The column of the first (the only) query vector of a query answer.
fn first_query<T>(columns: Option<Vec<Vec<T>>>) -> std::vec::IntoIter<T> {
    columns
        .and_then(|c| c.into_iter().next())
        .unwrap_or_default()
        .into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_translate_to_chromas_where() {
        let f = Filter::And(vec![
            Filter::Eq("kind".into(), "Deployment".into()),
            Filter::In("namespace".into(), vec!["a".into(), "b".into()]),
        ]);
        assert_eq!(
            to_where(&f).unwrap(),
            json!({"$and": [{"kind": {"$eq": "Deployment"}}, {"namespace": {"$in": ["a", "b"]}}]})
        );
        // A one-operand $and is refused by Chroma: it is unwrapped.
        let one = Filter::And(vec![Filter::Eq("kind".into(), "Pod".into())]);
        assert_eq!(to_where(&one).unwrap(), json!({"kind": {"$eq": "Pod"}}));
        assert_eq!(to_where(&Filter::And(vec![])), None);
    }

    #[test]
    fn upsert_bodies_are_columns_with_base64_vectors_and_the_content_hash() {
        let r = Record {
            id: "a".into(),
            document: "doc".into(),
            embedding: vec![1.0, 0.0],
            metadata: [("kind".to_string(), MetaValue::Str("Pod".into()))].into(),
            content_hash: "h1".into(),
        };
        let body = serde_json::to_value(UpsertBody { rows: &[r] }).unwrap();
        assert_eq!(
            body,
            json!({
                "ids": ["a"],
                "embeddings": [encode_vector(&[1.0, 0.0])],
                "documents": ["doc"],
                "metadatas": [{"kind": "Pod", "cw_content_hash": "h1"}],
            })
        );
    }

    #[test]
    fn an_upsert_body_stays_under_its_estimated_size() {
        let rows: Vec<Record> = (0..3)
            .map(|i| Record {
                id: format!("ns/v1/ConfigMap/cm-{i}"),
                document: "ConfigMap cm | namespace: ns | apiVersion: v1".into(),
                embedding: vec![0.123_456_79; 1024],
                metadata: [
                    ("kind".to_string(), MetaValue::Str("ConfigMap".into())),
                    ("namespace".to_string(), MetaValue::Str("ns".into())),
                ]
                .into(),
                content_hash: "0123456789abcdef".into(),
            })
            .collect();
        let real = serde_json::to_vec(&UpsertBody { rows: &rows })
            .unwrap()
            .len();
        let estimated: usize = rows.iter().map(estimated_row_bytes).sum();
        assert!(real <= estimated, "{real} > {estimated}");
    }

    #[test]
    fn chromas_error_body_gives_the_message() {
        let body = br#"{"error":"NotFoundError","message":"Collection [x] does not exist"}"#;
        assert_eq!(
            error_message(body),
            "NotFoundError: Collection [x] does not exist"
        );
        assert_eq!(error_message(b"Bad gateway"), "Bad gateway");
    }
}
