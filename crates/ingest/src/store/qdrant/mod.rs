//! A thin client over Qdrant's REST API (https://api.qdrant.tech/api-reference), implementing
//! [`VectorStore`]: the official Rust client speaks only gRPC, and cw needs a dozen calls.
//!
//! The rooms: [`client`] makes Qdrant's calls, retried with backoff while they fail
//! transiently; [`collection`] creates or checks a collection, its model, indexes and
//! generation; [`wire`] holds the point ids (UUIDv5 of cw's ids), the payload layout,
//! filters and answers.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::Method;
use serde_json::{json, Value};

use super::chunks::{send_in_chunks, write_in_chunks, Limits, IDS_PER_REQUEST, ROWS_PER_PAGE};
use super::keys::{CONTENT_HASH_KEY, ID_KEY, TEXT_HASH_KEY};
use super::model_check::check_dimensions;
use super::remote::{CallError, Http, Prepared};
use super::{tally_json, Filter, Hit, Metadata, Record, StoreError, Tally, VectorStore};
use crate::embed::ModelInfo;
use crate::retry::RetryPolicy;

mod client;
mod collection;
pub mod wire;

use collection::PreparedCollection;
use wire::{CountAnswer, PointIn, QueryAnswer, ScrollPage};

#[derive(Debug, Clone)]
pub struct QdrantConfig {
    /// `http://localhost:6333` (the REST port).
    pub url: String,
    /// Sent as the `api-key` header when set.
    pub api_key: Option<String>,
    /// One HTTP call's timeout (a timed-out call is retried).
    pub timeout: Duration,
    /// Points per upsert request at most.
    pub max_points_per_write: usize,
    /// Estimated request bytes per upsert request at most. Qdrant refuses bodies over its
    /// `service.max_request_size_mb` (32 MiB by default) with 413, which halves the batch.
    pub max_bytes_per_write: usize,
    pub retry: RetryPolicy,
    /// How a collection cw creates is spread over a Qdrant cluster.
    pub distribution: Distribution,
    /// The `ordering` of every write (Qdrant's default: weak).
    pub ordering: WriteOrdering,
}

/// How a collection cw creates is spread over the nodes of a Qdrant cluster: sent in the
/// create-collection body (https://qdrant.tech/documentation/guides/distributed_deployment/);
/// a collection that exists keeps what it was made with. 1, 1, 1 is one shard on one node,
/// Qdrant's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Distribution {
    /// Shards of a collection (spread over the nodes; more nodes than shards leave some idle).
    pub shard_number: u32,
    /// Copies of each shard, on distinct nodes: a node may fail with `replication_factor - 1`.
    pub replication_factor: u32,
    /// Copies that must acknowledge a write before it succeeds (at most the replication
    /// factor): more is safer, and a write fails while fewer copies are up.
    pub write_consistency_factor: u32,
}

impl Default for Distribution {
    fn default() -> Self {
        Distribution {
            shard_number: 1,
            replication_factor: 1,
            write_consistency_factor: 1,
        }
    }
}

impl Distribution {
    /// Refuses what Qdrant would refuse, or accept and then fail every write with.
    pub fn check(&self) -> Result<(), String> {
        if self.shard_number == 0 || self.replication_factor == 0 {
            return Err("the shard number and the replication factor are at least 1".into());
        }
        if self.write_consistency_factor == 0
            || self.write_consistency_factor > self.replication_factor
        {
            return Err(format!(
                "the write consistency factor ({}) must be between 1 and the replication factor ({})",
                self.write_consistency_factor, self.replication_factor
            ));
        }
        Ok(())
    }
}

/// The `ordering` of Qdrant's writes: which replica of a shard orders them
/// (https://qdrant.tech/documentation/guides/distributed_deployment/#write-ordering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteOrdering {
    /// Any replica, as it comes (Qdrant's default): fastest.
    #[default]
    Weak,
    /// The shard's leader while it is up; writes to one id from two replicas of cw are
    /// applied in one order on every copy.
    Medium,
    /// Always the leader: writes fail while it is down.
    Strong,
}

impl WriteOrdering {
    pub fn as_str(&self) -> &'static str {
        match self {
            WriteOrdering::Weak => "weak",
            WriteOrdering::Medium => "medium",
            WriteOrdering::Strong => "strong",
        }
    }
}

impl std::str::FromStr for WriteOrdering {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "weak" => Ok(WriteOrdering::Weak),
            "medium" => Ok(WriteOrdering::Medium),
            "strong" => Ok(WriteOrdering::Strong),
            other => Err(format!(
                "unknown write ordering {other:?}: weak, medium or strong"
            )),
        }
    }
}

impl QdrantConfig {
    pub fn new(url: impl Into<String>) -> Self {
        QdrantConfig {
            url: url.into(),
            api_key: None,
            timeout: Duration::from_secs(30),
            max_points_per_write: 500,
            max_bytes_per_write: 8 * 1024 * 1024,
            retry: RetryPolicy::default(),
            distribution: Distribution::default(),
            ordering: WriteOrdering::default(),
        }
    }
}

pub struct QdrantStore {
    http: Http,
    config: QdrantConfig,
    base: String,
    /// Collections prepared by `ensure_collection`: the model they hold, their generation.
    collections: Prepared<PreparedCollection>,
}

impl QdrantStore {
    /// Builds the client; nothing is called until first use. Needs a rustls crypto provider
    /// installed in the process (for https URLs).
    pub fn new(config: QdrantConfig) -> Result<Self, StoreError> {
        config
            .distribution
            .check()
            .map_err(|e| StoreError::Rejected(format!("Qdrant collections: {e}")))?;
        Ok(QdrantStore {
            http: Http::new(&client::QDRANT, &config.url, config.timeout)?,
            base: config.url.trim_end_matches('/').to_string(),
            config,
            collections: Prepared::new(),
        })
    }

    pub fn config(&self) -> &QdrantConfig {
        &self.config
    }

    /// The points of `ids` that exist, [`IDS_PER_REQUEST`] a request, with the payload keys
    /// asked for and their vectors if `with_vector`; none when the collection is missing.
    async fn points_by_ids(
        &self,
        collection: &str,
        ids: &[String],
        payload: Value,
        with_vector: bool,
    ) -> Result<Vec<PointIn>, StoreError> {
        let payload = &payload;
        let pages = send_in_chunks(ids, &Limits::items(IDS_PER_REQUEST), |chunk| async move {
            let points: Vec<String> = chunk.iter().map(|id| wire::point_id(id)).collect();
            let body = json!({
                "ids": points,
                "with_payload": payload,
                "with_vector": with_vector,
            });
            self.post::<Vec<PointIn>>(collection, "/points", &body)
                .await
        })
        .await;
        let pages = self
            .collections
            .read(collection, pages)?
            .unwrap_or_default();
        Ok(pages.into_iter().flatten().collect())
    }

    async fn upsert_request(&self, url: &str, records: &[Record]) -> Result<(), CallError> {
        let body = wire::upsert_body(records).map_err(CallError::Store)?;
        self.call(Method::PUT, url, Some(Bytes::from(body)))
            .await
            .map(|_| ())
    }

    /// Pages of a scroll over `collection` (Qdrant's `next_page_offset` cursor, so points
    /// written or deleted meanwhile cannot shift a page) until `limit` points or the end.
    async fn scroll(
        &self,
        collection: &str,
        filter: Option<&Filter>,
        with_payload: Value,
        limit: usize,
    ) -> Result<Vec<PointIn>, StoreError> {
        let mut out = Vec::new();
        self.scroll_pages(collection, filter, with_payload, limit, |page| {
            out.extend(page)
        })
        .await?;
        Ok(out)
    }

    /// [`Self::scroll`] a page at a time: each page is handed to `visit` and dropped.
    async fn scroll_pages(
        &self,
        collection: &str,
        filter: Option<&Filter>,
        with_payload: Value,
        limit: usize,
        mut visit: impl FnMut(Vec<PointIn>),
    ) -> Result<(), StoreError> {
        let filter = filter.map(wire::to_filter).transpose()?;
        let mut read = 0;
        if limit == 0 {
            // Qdrant refuses a page of 0 points.
            return Ok(());
        }
        let mut offset: Option<Value> = None;
        loop {
            let page_size = (limit - read).min(ROWS_PER_PAGE);
            let mut body = json!({
                "limit": page_size,
                "with_payload": with_payload,
                "with_vector": false,
            });
            if let Some(f) = &filter {
                body["filter"] = f.clone();
            }
            if let Some(o) = &offset {
                body["offset"] = o.clone();
            }
            let r = self
                .post::<ScrollPage>(collection, "/points/scroll", &body)
                .await;
            let Some(page) = self.collections.read(collection, r)? else {
                return Ok(());
            };
            read += page.points.len();
            visit(page.points);
            match page.next_page_offset {
                Some(next) if !next.is_null() && read < limit => offset = Some(next),
                _ => return Ok(()),
            }
        }
    }
}

/// How much one upsert request may carry.
fn write_limits(config: &QdrantConfig) -> Limits<Record> {
    Limits {
        max_items: config.max_points_per_write,
        max_bytes: config.max_bytes_per_write,
        bytes_of: wire::estimated_point_bytes,
    }
}

fn to_hit(p: PointIn, distance: f32) -> Option<Hit> {
    Some(Hit {
        id: p.cw_id()?.to_string(),
        document: p.document().to_string(),
        metadata: p.metadata(),
        distance,
    })
}

#[async_trait]
impl VectorStore for QdrantStore {
    async fn ensure_collection(
        &self,
        collection: &str,
        model: &ModelInfo,
    ) -> Result<(), StoreError> {
        self.prepare(collection, model).await
    }

    async fn upsert(&self, collection: &str, records: &[Record]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let model = self.collections.for_write(collection)?.model;
        check_dimensions(collection, records, model.dimension)?;
        let url = &self.write_url(collection, "/points");
        write_in_chunks(
            records,
            &write_limits(&self.config),
            |part| self.upsert_request(url, part),
            CallError::is_too_large,
        )
        .await
        .map_err(|e| self.collections.failed(collection, e))
    }

    /// One `set_payload` call per distinct change (Qdrant sets one payload on many points),
    /// on the ids that exist: Qdrant refuses the whole call for an unknown point. Not for
    /// `label.*` keys, whose `cw_labels` array it would leave stale.
    async fn merge_metadata(
        &self,
        collection: &str,
        updates: &[(String, Metadata)],
    ) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = updates.iter().map(|(id, _)| id.clone()).collect();
        let existing = self.content_hashes(collection, &ids).await?;
        let mut by_change: Vec<(&Metadata, Vec<String>)> = Vec::new();
        for (id, changes) in updates.iter().filter(|(id, _)| existing.contains_key(id)) {
            match by_change.iter_mut().find(|(c, _)| *c == changes) {
                Some((_, points)) => points.push(wire::point_id(id)),
                None => by_change.push((changes, vec![wire::point_id(id)])),
            }
        }
        let url = &self.write_url(collection, "/points/payload");
        for (changes, points) in by_change {
            send_in_chunks(
                &points,
                &Limits::items(IDS_PER_REQUEST),
                |chunk| async move {
                    let body = json!({ "payload": changes, "points": chunk });
                    self.call_result::<Value>(Method::POST, url, Some(&body))
                        .await
                },
            )
            .await
            .map_err(|e| self.collections.failed(collection, e))?;
        }
        Ok(())
    }

    async fn delete(&self, collection: &str, ids: &[String]) -> Result<(), StoreError> {
        let url = &self.write_url(collection, "/points/delete");
        let deleted = send_in_chunks(ids, &Limits::items(IDS_PER_REQUEST), |chunk| async move {
            let points: Vec<String> = chunk.iter().map(|id| wire::point_id(id)).collect();
            self.call_result::<Value>(Method::POST, url, Some(&json!({ "points": points })))
                .await
        })
        .await;
        // Nothing to delete from a collection that does not exist.
        self.collections.read(collection, deleted)?;
        Ok(())
    }

    async fn content_hashes(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        let points = self
            .points_by_ids(collection, ids, json!([ID_KEY, CONTENT_HASH_KEY]), false)
            .await?;
        Ok(points
            .iter()
            .filter_map(|p| Some((p.cw_id()?.to_string(), p.content_hash()?.to_string())))
            .collect())
    }

    async fn vectors(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<f32>>, StoreError> {
        let points = self
            .points_by_ids(collection, ids, json!([ID_KEY]), true)
            .await?;
        Ok(points
            .into_iter()
            .filter_map(|p| Some((p.cw_id()?.to_string(), p.vector?)))
            .collect())
    }

    /// A scroll where `cw_text_hash` matches any of a chunk of the hashes (a keyword index
    /// answers it), with vectors, a page as long as the hashes still wanted: Qdrant cannot
    /// answer one point per value, and orders points by their (random) ids, so each page asks
    /// again for those not found yet; each finds at least one more.
    async fn vectors_by_text(
        &self,
        collection: &str,
        text_hashes: &[String],
    ) -> Result<HashMap<String, Vec<f32>>, StoreError> {
        let mut out: HashMap<String, Vec<f32>> = HashMap::new();
        for chunk in Limits::items(IDS_PER_REQUEST).chunks(text_hashes) {
            let mut wanted: Vec<String> = chunk.to_vec();
            while !wanted.is_empty() {
                let filter = wire::to_filter(&Filter::In(TEXT_HASH_KEY.into(), wanted.clone()))?;
                let body = json!({
                    "filter": filter,
                    "limit": wanted.len(),
                    "with_payload": [TEXT_HASH_KEY],
                    "with_vector": true,
                });
                let r = self
                    .post::<ScrollPage>(collection, "/points/scroll", &body)
                    .await;
                let Some(page) = self.collections.read(collection, r)? else {
                    return Ok(out);
                };
                let (points, before) = (page.points.len(), out.len());
                for p in page.points {
                    if let (Some(h), Some(v)) = (p.text_hash().map(str::to_string), p.vector) {
                        out.entry(h).or_insert(v);
                    }
                }
                if points < wanted.len() || out.len() == before {
                    break;
                }
                wanted.retain(|h| !out.contains_key(h));
            }
        }
        Ok(out)
    }

    async fn all_hashes(
        &self,
        collection: &str,
        filter: Option<&Filter>,
    ) -> Result<HashMap<String, String>, StoreError> {
        let points = self
            .scroll(
                collection,
                filter,
                json!([ID_KEY, CONTENT_HASH_KEY]),
                usize::MAX,
            )
            .await?;
        Ok(points
            .iter()
            .filter_map(|p| {
                Some((
                    p.cw_id()?.to_string(),
                    p.content_hash().unwrap_or_default().to_string(),
                ))
            })
            .collect())
    }

    async fn query(
        &self,
        collection: &str,
        vector: &[f32],
        filter: Option<&Filter>,
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        if limit == 0 {
            return Ok(vec![]);
        }
        let mut body = json!({ "query": vector, "limit": limit, "with_payload": true });
        if let Some(f) = filter {
            body["filter"] = wire::to_filter(f)?;
        }
        let r = self
            .post::<QueryAnswer>(collection, "/points/query", &body)
            .await;
        let Some(answer) = self.collections.read(collection, r)? else {
            return Ok(vec![]);
        };
        Ok(answer
            .points
            .into_iter()
            .filter_map(|p| {
                // Qdrant's cosine score is the similarity; cw's distance is 1 − similarity,
                // as Chroma reports in cosine space.
                let distance = p.score.map_or(f32::MAX, |s| 1.0 - s);
                to_hit(p, distance)
            })
            .collect())
    }

    async fn get(
        &self,
        collection: &str,
        filter: Option<&Filter>,
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        let points = self.scroll(collection, filter, json!(true), limit).await?;
        // No vector was compared: a filter-only read.
        Ok(points.into_iter().filter_map(|p| to_hit(p, 0.0)).collect())
    }

    async fn count(&self, collection: &str) -> Result<usize, StoreError> {
        let r = self
            .post::<CountAnswer>(collection, "/points/count", &json!({ "exact": true }))
            .await;
        Ok(self.collections.read(collection, r)?.map_or(0, |c| c.count))
    }

    async fn tally(
        &self,
        collection: &str,
        filter: Option<&Filter>,
        keys: &[&str],
    ) -> Result<Tally, StoreError> {
        let mut counts = Tally::new();
        let payload = if keys.is_empty() {
            json!(false)
        } else {
            json!(keys)
        };
        self.scroll_pages(collection, filter, payload, usize::MAX, |points| {
            for p in points {
                tally_json(&mut counts, keys, p.payload.as_ref());
            }
        })
        .await?;
        Ok(counts)
    }

    /// The collection's `cw_generation`, as read when it was last prepared.
    fn generation(&self, collection: &str) -> Option<String> {
        self.collections.get(collection).map(|p| p.generation)
    }

    async fn ready(&self) -> Result<(), StoreError> {
        // Listing collections proves both that Qdrant answers and that it takes the key;
        // not retried, the probe itself is asked again.
        self.attempt(&Method::GET, &format!("{}/collections", self.base), None)
            .await
            .map(|_| ())
            .map_err(CallError::not_ready)
    }

    async fn records(&self, collection: &str, ids: &[String]) -> Result<Vec<Record>, StoreError> {
        let points = self
            .points_by_ids(collection, ids, json!(true), true)
            .await?;
        Ok(points
            .into_iter()
            .filter_map(|p| {
                Some(Record {
                    id: p.cw_id()?.to_string(),
                    document: p.document().to_string(),
                    metadata: p.metadata(),
                    content_hash: p.content_hash().unwrap_or_default().to_string(),
                    embedding: p.vector?,
                })
            })
            .collect())
    }

    async fn collection_model(&self, collection: &str) -> Result<Option<ModelInfo>, StoreError> {
        Ok(self.info(collection).await?.and_then(|info| {
            let (id, dim) = info.recorded_model()?;
            Some(ModelInfo {
                id,
                dimension: dim.unwrap_or(0) as usize,
            })
        }))
    }

    async fn drop_collection(&self, collection: &str) -> Result<(), StoreError> {
        let gone = self
            .call_result::<Value>(Method::DELETE, &self.collection_url(collection, ""), None)
            .await;
        self.collections.forget(collection);
        self.collections.read(collection, gone).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MetaValue;

    fn record(i: usize, dim: usize) -> Record {
        Record {
            id: format!("ns/v1/ConfigMap/cm-{i}"),
            document: "ConfigMap".into(),
            embedding: vec![0.5; dim],
            metadata: [("kind".to_string(), MetaValue::Str("ConfigMap".into()))].into(),
            content_hash: "h".into(),
        }
    }

    fn sizes(batches: Vec<&[Record]>) -> Vec<usize> {
        batches.iter().map(|b| b.len()).collect()
    }

    fn write_batches(records: &[Record], max_points: usize, max_bytes: usize) -> Vec<&[Record]> {
        let mut config = QdrantConfig::new("http://localhost:6333");
        config.max_points_per_write = max_points;
        config.max_bytes_per_write = max_bytes;
        write_limits(&config).chunks(records)
    }

    #[test]
    fn writes_are_split_by_points_and_by_bytes() {
        let records: Vec<Record> = (0..7).map(|i| record(i, 4)).collect();
        assert_eq!(sizes(write_batches(&records, 3, usize::MAX)), [3, 3, 1]);

        let big: Vec<Record> = (0..10).map(|i| record(i, 1024)).collect();
        let max_bytes = 3 * wire::estimated_point_bytes(&big[0]);
        assert_eq!(sizes(write_batches(&big, 1_000, max_bytes)), [3, 3, 3, 1]);
        // One point over the limit still goes, alone.
        assert_eq!(sizes(write_batches(&big[..2], 1_000, 1)), [1, 1]);
        // A body's real size stays under the estimate.
        let real = wire::upsert_body(&big[..3]).unwrap().len();
        assert!(real <= 3 * wire::estimated_point_bytes(&big[0]), "{real}");
    }
}
