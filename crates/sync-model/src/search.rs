//! The search API's request and answers (`POST /api/v1/search`), as `cw search`,
//! `cw ask` and any other client send and read them. The ranking lives in the ingest
//! crate; this is only the shape on the wire.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Which collection a search reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Collection {
    #[default]
    Instances,
    Capabilities,
}

/// How results are found and ranked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Vector similarity, boosted by exact matches of query terms.
    #[default]
    Hybrid,
    /// Vector similarity only.
    Semantic,
    /// Exact matches of query terms on names, kinds and label values; no embedding call.
    Keyword,
}

/// A search request, as `cw search` and `POST /api/v1/search` take it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct SearchRequest {
    pub query: String,
    pub collection: Collection,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    /// `key=value` pairs; all must hold.
    pub labels: Vec<String>,
    pub limit: Option<usize>,
    pub mode: SearchMode,
}

/// The body of `POST /api/v1/search`: a [`SearchRequest`], and `"ask": true` for the
/// semantic bridge (types first, then their instances).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SearchBody {
    #[serde(flatten)]
    pub request: SearchRequest,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ask: bool,
}

/// One result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SearchHit {
    pub id: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Higher is better: similarity (1 − cosine distance) plus exact-match boosts.
    pub score: f32,
    /// Query terms that matched a name, kind or label value exactly.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub matched: Vec<String>,
    pub document: String,
}

/// The answer to a plain search: `{"results": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchResults {
    pub results: Vec<SearchHit>,
}

/// `ask`'s answer: the matching types, each with why it matched and its instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AskAnswer {
    pub question: String,
    pub types: Vec<TypeMatch>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TypeMatch {
    /// `plural.group` of the type.
    pub id: String,
    pub kind: String,
    pub group: String,
    pub score: f32,
    /// The capability document that matched, i.e. why this type answers the question.
    pub reason: String,
    pub instances: Vec<SearchHit>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ask_body_is_a_search_request_with_the_ask_flag() {
        let body = SearchBody {
            request: SearchRequest {
                query: "databases".into(),
                limit: Some(5),
                ..Default::default()
            },
            ask: true,
        };
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["query"], "databases");
        assert_eq!(json["ask"], true);
        let back: SearchBody = serde_json::from_value(json).unwrap();
        assert_eq!(back, body);
        let plain: SearchBody = serde_json::from_str(r#"{"query":"x"}"#).unwrap();
        assert!(!plain.ask);
    }
}
