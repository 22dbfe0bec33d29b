//! Vector stores: where documents, their vectors and their metadata live. The pipeline
//! only knows the [`VectorStore`] trait; Chroma, Qdrant and the embedded store implement it
//! and pass one conformance suite.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;

pub mod chroma;
mod chunks;
pub mod embedded;
pub mod keys;
mod model_check;
pub mod qdrant;
mod remote;

use crate::embed::ModelInfo;

/// A metadata value, limited to what Chroma stores.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum MetaValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

pub type Metadata = BTreeMap<String, MetaValue>;

/// One document as written to a store.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: String,
    pub document: String,
    pub embedding: Vec<f32>,
    pub metadata: Metadata,
    /// Digest of the document text (and whatever else decides whether it must be
    /// re-embedded); lets the pipeline skip unchanged documents.
    pub content_hash: String,
}

/// A metadata filter, the subset of Chroma's `where` that cw uses.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Metadata key equals the string value.
    Eq(String, String),
    /// Metadata key equals one of the values.
    In(String, Vec<String>),
    /// All of the filters hold.
    And(Vec<Filter>),
    /// One of the filters holds; `Or(vec![])` matches nothing (a caller who may see nothing
    /// sees nothing, never everything).
    Or(Vec<Filter>),
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: String,
    pub document: String,
    pub metadata: Metadata,
    /// Cosine distance (0 identical, 2 opposite), as Chroma reports in cosine space.
    pub distance: f32,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or answered 5xx: retry later.
    #[error("vector store unavailable: {0}")]
    Unavailable(String),
    /// The store was asked for something it refuses (e.g. mixing embedding models).
    #[error("vector store rejected the request: {0}")]
    Rejected(String),
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Documents counted by the values of some metadata keys ([`VectorStore::tally`]): one
/// entry per combination of values seen, in the order of the keys asked for.
pub type Tally = HashMap<Vec<Option<String>>, usize>;

/// Counts one document into `tally` by the string values of `keys` in its metadata, as
/// stores that answer JSON (Chroma's metadata, Qdrant's payload) return it.
pub(crate) fn tally_json(
    tally: &mut Tally,
    keys: &[&str],
    metadata: Option<&serde_json::Map<String, serde_json::Value>>,
) {
    let values = keys
        .iter()
        .map(|k| match metadata.and_then(|m| m.get(*k)) {
            Some(serde_json::Value::String(v)) => Some(v.clone()),
            _ => None,
        })
        .collect();
    *tally.entry(values).or_default() += 1;
}

/// What the pipeline needs of a store. Collections are created on first use; the store
/// remembers which embedding model filled a collection and refuses another.
#[async_trait]
pub trait VectorStore: Send + Sync {
    /// Creates the collection if needed and checks it was filled by `model`.
    async fn ensure_collection(
        &self,
        collection: &str,
        model: &ModelInfo,
    ) -> Result<(), StoreError>;
    /// Inserts or replaces records by id (implementations split large writes).
    async fn upsert(&self, collection: &str, records: &[Record]) -> Result<(), StoreError>;
    /// Deletes by id; unknown ids are not an error.
    async fn delete(&self, collection: &str, ids: &[String]) -> Result<(), StoreError>;
    /// The stored content hash of each of `ids` that exists.
    async fn content_hashes(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<HashMap<String, String>, StoreError>;
    /// The stored vector of each of `ids` that exists: a document whose metadata alone
    /// changed is written again with it instead of being embedded.
    async fn vectors(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<f32>>, StoreError>;
    /// One stored vector for each of `text_hashes` that some document of the collection
    /// carries as its `cw_text_hash` ([`keys::TEXT_HASH_KEY`]), whatever its cluster: the
    /// vector of the same text, which a sync writes instead of embedding that text again.
    /// Hashes no document carries are absent. Reads vectors of about one document per hash,
    /// not of every copy.
    async fn vectors_by_text(
        &self,
        collection: &str,
        text_hashes: &[String],
    ) -> Result<HashMap<String, Vec<f32>>, StoreError>;
    /// Every stored id matching `filter` (all when `None`) with its content hash (for
    /// resync and pruning; one cluster's ids with a `cluster` filter).
    async fn all_hashes(
        &self,
        collection: &str,
        filter: Option<&Filter>,
    ) -> Result<HashMap<String, String>, StoreError>;
    /// Merges `metadata` into the stored metadata of each existing id (the keys given
    /// replace the stored ones, the others are kept), without touching its vector,
    /// document or content hash; unknown ids are skipped. What a change of metadata alone
    /// costs: no embedding.
    async fn merge_metadata(
        &self,
        collection: &str,
        updates: &[(String, Metadata)],
    ) -> Result<(), StoreError>;
    /// Nearest documents to `vector` among those matching `filter`.
    async fn query(
        &self,
        collection: &str,
        vector: &[f32],
        filter: Option<&Filter>,
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError>;
    /// Documents matching `filter`, without a vector (keyword and filter-only search).
    async fn get(
        &self,
        collection: &str,
        filter: Option<&Filter>,
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError>;
    async fn count(&self, collection: &str) -> Result<usize, StoreError>;
    /// How many documents matching `filter` carry each combination of the string values of
    /// `keys` (`None` where a document has no string value for a key; with no keys, one
    /// entry with the total). What counts and group-bys read: no documents, vectors or other
    /// metadata, and memory for the combinations seen, not for the documents counted.
    async fn tally(
        &self,
        collection: &str,
        filter: Option<&Filter>,
        keys: &[&str],
    ) -> Result<Tally, StoreError>;
    /// Ok while the store answers.
    async fn ready(&self) -> Result<(), StoreError>;
    /// The stored record (text, metadata, content hash and vector) of each of `ids` that
    /// exists, in no particular order: what a reindex copies into the next generation.
    async fn records(&self, collection: &str, ids: &[String]) -> Result<Vec<Record>, StoreError>;
    /// The embedding model recorded for `collection`, `None` when it does not exist (or
    /// records none).
    async fn collection_model(&self, collection: &str) -> Result<Option<ModelInfo>, StoreError>;
    /// Removes `collection` with everything in it; a missing one is not an error (what
    /// `cw reindex --drop-previous` does to a generation's collections).
    async fn drop_collection(&self, collection: &str) -> Result<(), StoreError>;
    /// The identity of the collection's current incarnation, as last seen (no call to the
    /// store): a new value means it was created anew and lost what it held. `None` where
    /// the store cannot tell (the embedded store lives in the process that writes it).
    fn generation(&self, _collection: &str) -> Option<String> {
        None
    }
}
