//! The names of the metadata keys stored documents carry: those the document rules write
//! (`document`, `capabilities`) and searches filter on, and those the stores add for their
//! own bookkeeping. One list, below both, so that a store indexing a field and the rule that
//! writes it cannot drift apart.

// What an instance document says of its resource (`document::to_document`).

/// The cluster an instance belongs to.
pub const CLUSTER_KEY: &str = "cluster";
pub const NAMESPACE_KEY: &str = "namespace";
pub const NAME_KEY: &str = "name";
pub const KIND_KEY: &str = "kind";
pub const API_VERSION_KEY: &str = "apiVersion";
pub const API_GROUP_KEY: &str = "apiGroup";
pub const CREATED_AT_KEY: &str = "createdAt";
/// Prefix of one metadata key per label: `label.app` = `nginx`.
pub const LABEL_PREFIX: &str = "label.";
/// The well-known software an instance runs or is (`postgresql`): a
/// [`sync_model::software::Software`] key.
pub const SOFTWARE_KEY: &str = "software";
/// That software's category (`database`).
pub const CATEGORY_KEY: &str = "category";
/// The controlling owner's kind and name (`ReplicaSet`, `web-7d9f`).
pub const OWNER_KIND_KEY: &str = "ownerKind";
pub const OWNER_NAME_KEY: &str = "ownerName";
/// The coarse health (`Failed`), present when the instance has one.
pub const HEALTH_KEY: &str = "health";
/// The health's one-line reason.
pub const HEALTH_REASON_KEY: &str = "healthReason";
/// The SHA-256 of the document text (64 hex digits): how a sync finds a vector already
/// stored for the same text, in any cluster, instead of embedding it again
/// ([`crate::store::VectorStore::vectors_by_text`]). The full digest, not the 128-bit text
/// half of the content hash (which is its first 32 digits): this key crosses clusters, one
/// sender's text choosing the vector of another cluster's document, and 128 bits leave a
/// collision within 2^64 work of whoever writes texts; 32 more bytes a document keep it at
/// 2^128.
pub const TEXT_HASH_KEY: &str = "cw_text_hash";

// What a capability document says of its type (`capabilities::to_metadata`); `kind` as above.

/// The type's API group.
pub const GROUP_KEY: &str = "group";
/// The clusters serving a type: `prod=<hash>,staging=<hash>`, sorted.
pub const CLUSTERS_KEY: &str = "cw_clusters";
/// Where a capability document's enrichment came from.
pub const ENRICHMENT_KEY: &str = "cw_enrichment";

// What every store adds to a document.

/// Each document's content hash (`ResourceInstance::content_hash()`).
pub const CONTENT_HASH_KEY: &str = "cw_content_hash";

// Qdrant's payload holds what Chroma keeps beside the metadata (`qdrant::wire`).

/// The original cw id (a Qdrant point id is a UUID).
pub const ID_KEY: &str = "cw_id";
/// The document text.
pub const DOCUMENT_KEY: &str = "cw_document";
/// Every `label.<key>` as `"<key>=<value>"`, one indexed array.
pub const LABELS_KEY: &str = "cw_labels";

// What Chroma and Qdrant record on a collection.

/// The embedding model that filled the collection, and its dimension.
pub const MODEL_KEY: &str = "cw_embedding_model";
pub const DIMENSION_KEY: &str = "cw_embedding_dimension";
/// A random id cw writes into a collection's metadata when it creates (or first adopts) it:
/// a collection created anew, after the store lost or deleted the old one, has a new one.
/// Sync answers name it as the store generation, from which a watcher knows to resync.
pub const GENERATION_KEY: &str = "cw_generation";

/// The metadata key no document carries: what a store is asked for when a filter must match
/// nothing (an empty `Filter::Or`) in a language where an empty list means "anything".
pub const NEVER_KEY: &str = "cw_never";
