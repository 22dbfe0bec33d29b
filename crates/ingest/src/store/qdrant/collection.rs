//! Qdrant's collections: created on first use with the model's dimension, cosine distance,
//! the model recorded in the collection's metadata (Qdrant 1.16+) and keyword indexes on
//! the fields searches filter on ([`wire::INDEXED_FIELDS`]); one made by someone else is
//! checked, and adopted only while empty and shaped for the model. Created with the
//! configured shards, replication and write consistency ([`super::Distribution`]). Each carries a
//! generation, a random id in its metadata, by which a collection made anew is told apart.

use reqwest::Method;
use serde_json::{json, Value};

use super::wire::{self, CollectionInfo};
use super::QdrantStore;
use crate::embed::ModelInfo;
use crate::store::keys::{DIMENSION_KEY, GENERATION_KEY, MODEL_KEY};
use crate::store::model_check::{model_mismatch, same_model, CollectionPlace};
use crate::store::remote::CallError;
use crate::store::StoreError;

/// A collection `ensure_collection` checked: the model it holds and its generation.
#[derive(Clone)]
pub(super) struct PreparedCollection {
    pub model: ModelInfo,
    pub generation: String,
}

fn place(collection: &str) -> CollectionPlace<'_> {
    CollectionPlace::Server {
        store: "Qdrant",
        collection,
    }
}

fn new_generation() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl QdrantStore {
    /// `ensure_collection`: finds or creates the collection, checks its model and shape,
    /// makes its indexes and learns its generation.
    pub(super) async fn prepare(
        &self,
        collection: &str,
        model: &ModelInfo,
    ) -> Result<(), StoreError> {
        if let Some(prepared) = self.collections.get(collection) {
            return same_model(place(collection), &prepared.model, model);
        }
        let info = match self.info(collection).await? {
            Some(info) => info,
            None => {
                self.create(collection, model).await?;
                self.info(collection).await?.ok_or_else(|| {
                    StoreError::Unavailable(format!(
                        "Qdrant collection {collection:?} vanished right after it was created"
                    ))
                })?
            }
        };
        self.check_model(collection, &info, model).await?;
        self.create_indexes(collection, &info).await?;
        let generation = match info.recorded_generation() {
            Some(g) => g,
            // Made by an older cw, or adopted: given a generation now (Qdrant merges
            // metadata keys), so that a collection made anew later is told apart.
            None => {
                let g = new_generation();
                self.call_result::<Value>(
                    Method::PATCH,
                    &self.collection_url(collection, ""),
                    Some(&json!({ "metadata": { GENERATION_KEY: g } })),
                )
                .await
                .map_err(StoreError::from)?;
                g
            }
        };
        let prepared = PreparedCollection {
            model: model.clone(),
            generation,
        };
        self.collections.insert(collection, prepared);
        Ok(())
    }

    pub(super) async fn info(&self, name: &str) -> Result<Option<CollectionInfo>, StoreError> {
        let r = self
            .call_result(Method::GET, &self.collection_url(name, ""), None)
            .await;
        self.collections.read(name, r)
    }

    async fn create(&self, name: &str, model: &ModelInfo) -> Result<(), StoreError> {
        let spread = self.config.distribution;
        let body = json!({
            "vectors": { "size": model.dimension, "distance": "Cosine" },
            "shard_number": spread.shard_number,
            "replication_factor": spread.replication_factor,
            "write_consistency_factor": spread.write_consistency_factor,
            "metadata": {
                MODEL_KEY: model.id,
                DIMENSION_KEY: model.dimension,
                GENERATION_KEY: new_generation(),
            },
        });
        match self
            .call_result::<Value>(Method::PUT, &self.collection_url(name, ""), Some(&body))
            .await
        {
            // Created by a concurrent writer: checked like any existing collection.
            Ok(_) | Err(CallError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates the keyword indexes of [`wire::INDEXED_FIELDS`] the collection lacks.
    async fn create_indexes(&self, name: &str, info: &CollectionInfo) -> Result<(), StoreError> {
        for field in wire::INDEXED_FIELDS {
            if info.payload_schema.contains_key(field) {
                continue;
            }
            self.call_result::<Value>(
                Method::PUT,
                &self.collection_url(name, "/index?wait=true"),
                Some(&json!({ "field_name": field, "field_schema": "keyword" })),
            )
            .await
            .map_err(StoreError::from)?;
        }
        Ok(())
    }

    /// Checks an existing collection holds `model`'s vectors; one without a model record is
    /// adopted only while empty and shaped for the model.
    async fn check_model(
        &self,
        name: &str,
        info: &CollectionInfo,
        model: &ModelInfo,
    ) -> Result<(), StoreError> {
        let shape = info.unnamed_vector();
        match info.recorded_model() {
            Some((id, dim)) if id == model.id && dim == Some(model.dimension as u64) => {}
            Some((id, dim)) => return Err(model_mismatch(place(name), &id, dim, model)),
            None => {
                let count = info.points_count.unwrap_or(0);
                if count > 0 {
                    return Err(StoreError::Rejected(format!(
                        "Qdrant collection {name:?} holds {count} points but does not say which \
                         embedding model made them; delete it or choose another collection name"
                    )));
                }
                self.call_result::<Value>(
                    Method::PATCH,
                    &self.collection_url(name, ""),
                    Some(&json!({ "metadata": {
                        MODEL_KEY: model.id, DIMENSION_KEY: model.dimension
                    }})),
                )
                .await
                .map_err(StoreError::from)?;
            }
        }
        match shape {
            Some((size, distance)) if size == model.dimension as u64 && distance == "Cosine" => {
                Ok(())
            }
            Some((size, distance)) => Err(StoreError::Rejected(format!(
                "Qdrant collection {name:?} stores vectors of {size} dimensions with {distance} \
                 distance; cw needs {} dimensions ({}) with Cosine distance. Delete it or choose \
                 another collection name",
                model.dimension, model.id
            ))),
            None => Err(StoreError::Rejected(format!(
                "Qdrant collection {name:?} uses named vectors; cw needs one unnamed vector. \
                 Choose another collection name"
            ))),
        }
    }
}
