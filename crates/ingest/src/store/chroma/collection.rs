//! Chroma's collections: found, or created with cosine space and the embedding model in
//! their metadata, and checked to hold that model's vectors. Chroma addresses a collection
//! by an id given at creation, so the id and the model it was checked for are kept from the
//! first `ensure_collection` on (in [`Prepared`]).
//!
//! [`Prepared`]: crate::store::remote::Prepared

use serde_json::{json, Map, Value};

use super::wire::CollectionInfo;
use super::ChromaStore;
use crate::embed::ModelInfo;
use crate::store::keys::{DIMENSION_KEY, MODEL_KEY};
use crate::store::model_check::{model_mismatch, same_model, CollectionPlace};
use crate::store::StoreError;

#[derive(Debug, Clone)]
pub(super) struct CollectionHandle {
    pub id: String,
    pub model: ModelInfo,
}

fn place(collection: &str) -> CollectionPlace<'_> {
    CollectionPlace::Server {
        store: "Chroma",
        collection,
    }
}

impl ChromaStore {
    /// The id of an existing collection, or None (reads of a collection that was never
    /// written find nothing rather than failing).
    pub(super) async fn lookup(&self, name: &str) -> Result<Option<String>, StoreError> {
        if let Some(h) = self.collections.get(name) {
            return Ok(Some(h.id));
        }
        let url = format!("{}/{name}", self.collections_url);
        let found = self
            .call_json::<CollectionInfo>(self.http.client.get(url))
            .await;
        Ok(self.collections.read(name, found)?.map(|c| c.id))
    }

    /// `ensure_collection`: gets or creates the collection (cosine space, the model in its
    /// metadata) and checks it holds `model`'s vectors.
    pub(super) async fn prepare(
        &self,
        collection: &str,
        model: &ModelInfo,
    ) -> Result<(), StoreError> {
        if let Some(h) = self.collections.get(collection) {
            return same_model(place(collection), &h.model, model);
        }
        self.ensure_database().await?;
        let info: CollectionInfo = self
            .post(
                &self.collections_url,
                &json!({
                    "name": collection,
                    "get_or_create": true,
                    "configuration": { "hnsw": { "space": "cosine" } },
                    "metadata": { MODEL_KEY: model.id, DIMENSION_KEY: model.dimension },
                }),
            )
            .await
            .map_err(StoreError::from)?;
        let meta = info.metadata.clone().unwrap_or_default();
        let stored_model = meta.get(MODEL_KEY).and_then(Value::as_str);
        let stored_dim = meta.get(DIMENSION_KEY).and_then(Value::as_u64);
        match stored_model {
            Some(m) if m == model.id && stored_dim == Some(model.dimension as u64) => {}
            Some(m) => return Err(model_mismatch(place(collection), m, stored_dim, model)),
            None => self.adopt(collection, &info.id, meta, model).await?,
        }
        let handle = CollectionHandle {
            id: info.id,
            model: model.clone(),
        };
        self.collections.insert(collection, handle);
        Ok(())
    }

    /// A collection created by someone else without a model record is adopted, `model`
    /// recorded in its metadata, only while it is empty.
    async fn adopt(
        &self,
        collection: &str,
        id: &str,
        mut meta: Map<String, Value>,
        model: &ModelInfo,
    ) -> Result<(), StoreError> {
        let url = format!("{}/{id}", self.collections_url);
        let count: usize = self
            .call_json(self.http.client.get(format!("{url}/count")))
            .await
            .map_err(StoreError::from)?;
        if count > 0 {
            return Err(StoreError::Rejected(format!(
                "Chroma collection {collection:?} holds {count} documents but does not say \
                 which embedding model made them; delete it or choose another collection name"
            )));
        }
        meta.insert(MODEL_KEY.into(), json!(model.id));
        meta.insert(DIMENSION_KEY.into(), json!(model.dimension));
        self.call(
            self.http
                .client
                .put(url)
                .json(&json!({ "new_metadata": meta })),
        )
        .await
        .map_err(StoreError::from)?;
        Ok(())
    }
}
