//! The rule every store keeps: a collection holds the vectors of one embedding model. Here
//! are the refusals all three stores give when a caller brings another model, or a record
//! whose vector does not fit the collection.

use std::path::Path;

use super::{Record, StoreError};
use crate::embed::ModelInfo;

/// Where a collection lives, which decides what a user can do about a refusal.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CollectionPlace<'a> {
    /// A collection on a store server (`"Chroma"`, `"Qdrant"`).
    Server {
        store: &'static str,
        collection: &'a str,
    },
    /// A collection in the embedded store's file.
    File { path: &'a Path, collection: &'a str },
}

impl std::fmt::Display for CollectionPlace<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CollectionPlace::Server { store, collection } => {
                write!(f, "{store} collection {collection:?}")
            }
            CollectionPlace::File { path, collection } => {
                write!(f, "collection {collection:?} in {}", path.display())
            }
        }
    }
}

impl CollectionPlace<'_> {
    /// How to get past a refusal: another collection, or another file.
    fn remedy(&self) -> String {
        match self {
            CollectionPlace::Server { .. } => "run `cw reindex` with the new model's flags \
                to build the index for it beside this one, use another collection name \
                (--instances-collection / --capabilities-collection), or delete the collection \
                to re-index with the new model"
                .to_string(),
            CollectionPlace::File { path, .. } => format!(
                "run `cw reindex` with the new model's flags to build the index for it beside \
                 this one, point --data-dir at a new directory, or delete {} to re-index from \
                 scratch",
                path.display()
            ),
        }
    }
}

/// The refusal of `wanted` for a collection recorded as filled by model `stored` (of
/// `stored_dim` dimensions where the record says).
pub(crate) fn model_mismatch(
    place: CollectionPlace<'_>,
    stored: &str,
    stored_dim: Option<u64>,
    wanted: &ModelInfo,
) -> StoreError {
    let dim = stored_dim
        .map(|d| format!(" ({d} dimensions)"))
        .unwrap_or_default();
    StoreError::Rejected(format!(
        "{place} holds vectors of model {stored}{dim}, but this process embeds with {} ({} \
         dimensions); vectors of different models cannot be compared. Configure the same \
         embedding provider and model, {}",
        wanted.id,
        wanted.dimension,
        place.remedy()
    ))
}

/// Ok when the model a collection was prepared with is `wanted`, else the refusal.
pub(crate) fn same_model(
    place: CollectionPlace<'_>,
    stored: &ModelInfo,
    wanted: &ModelInfo,
) -> Result<(), StoreError> {
    if stored == wanted {
        return Ok(());
    }
    Err(model_mismatch(
        place,
        &stored.id,
        Some(stored.dimension as u64),
        wanted,
    ))
}

/// Refuses records whose vectors are not of the collection's `dimension`.
pub(crate) fn check_dimensions(
    collection: &str,
    records: &[Record],
    dimension: usize,
) -> Result<(), StoreError> {
    match records.iter().find(|r| r.embedding.len() != dimension) {
        None => Ok(()),
        Some(bad) => Err(StoreError::Rejected(format!(
            "record {:?} has a vector of {} dimensions; collection {collection:?} holds {dimension}",
            bad.id,
            bad.embedding.len(),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(id: &str, dimension: usize) -> ModelInfo {
        ModelInfo {
            id: id.into(),
            dimension,
        }
    }

    fn message(e: StoreError) -> String {
        match e {
            StoreError::Rejected(m) => m,
            other => panic!("a refusal is not retried: {other:?}"),
        }
    }

    #[test]
    fn a_server_collection_refusal_names_both_models_and_the_collection_flags() {
        let place = CollectionPlace::Server {
            store: "Chroma",
            collection: "instances",
        };
        let m = message(model_mismatch(
            place,
            "voyage:voyage-3.5",
            Some(1024),
            &model("local:all-MiniLM-L6-v2", 384),
        ));
        assert!(m.starts_with("Chroma collection \"instances\" holds vectors of model voyage:voyage-3.5 (1024 dimensions)"), "{m}");
        assert!(m.contains("local:all-MiniLM-L6-v2 (384 dimensions)"), "{m}");
        assert!(m.contains("--instances-collection"), "{m}");
        assert!(m.contains("delete the collection"), "{m}");
    }

    #[test]
    fn an_embedded_collection_refusal_points_at_the_data_directory() {
        let path = Path::new("/data/cw-index.sqlite3");
        let place = CollectionPlace::File {
            path,
            collection: "instances",
        };
        let stored = model("local:all-MiniLM-L6-v2", 384);
        assert!(same_model(place, &stored, &stored).is_ok());
        let m = message(same_model(place, &stored, &model("voyage:voyage-3.5", 1024)).unwrap_err());
        assert!(
            m.starts_with("collection \"instances\" in /data/cw-index.sqlite3 holds"),
            "{m}"
        );
        assert!(m.contains("--data-dir"), "{m}");
        assert!(m.contains("delete /data/cw-index.sqlite3"), "{m}");
        assert!(!m.contains("--instances-collection"), "{m}");
    }

    #[test]
    fn a_record_of_another_dimension_is_named() {
        let record = |id: &str, dim: usize| Record {
            id: id.into(),
            document: String::new(),
            embedding: vec![0.0; dim],
            metadata: Default::default(),
            content_hash: String::new(),
        };
        assert!(check_dimensions("c", &[record("a", 4), record("b", 4)], 4).is_ok());
        let m = message(check_dimensions("c", &[record("a", 4), record("b", 3)], 4).unwrap_err());
        assert!(m.contains("\"b\" has a vector of 3 dimensions"), "{m}");
    }
}
