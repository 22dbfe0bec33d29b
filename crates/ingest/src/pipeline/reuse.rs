//! Embeddings paid once per distinct text. The document text does not depend on the cluster
//! (`document::to_document`), and a fleet runs the same platform stack everywhere, so before
//! a sync embeds its changed documents each text is looked for, in this order:
//!
//! 1. in the store, by its `cw_text_hash` ([`VectorStore::vectors_by_text`]): any cluster's
//!    copy in the same collection, whose vectors are of this model (the collection refuses
//!    another), found after a restart as before, with no second cache to keep in step;
//! 2. among the texts a concurrent sync of this process is embedding right now: awaited, not
//!    embedded twice (watchers of a fleet send the same stack at the same moment);
//! 3. in the same batch: identical texts are embedded once.
//!
//! What is left goes to the provider. Only a provider call is counted in
//! `embeddings_requested`; every document given a vector without one is counted in
//! `embeddings_reused` by where the vector came from (`store`, `concurrent`, `batch`), so
//! the two add up to the changed documents written.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;

use super::embedding::embed_each_document;
use super::store_calls::observe_store;
use super::SyncError;
use crate::embed::{Embedder, ModelInfo, Refused};
use crate::metrics::IngestMetrics;
use crate::store::VectorStore;

/// A vector being made by a sync: `None` until its provider call answers.
type Pending = watch::Receiver<Option<Vec<f32>>>;

/// The texts (by hash) that syncs of this process are embedding now, with a way to await
/// each one's vector. An entry lives from the claim until the claiming sync has written its
/// documents (or failed): never a cache, so nothing here can disagree with the store.
#[derive(Default)]
pub(crate) struct InFlight {
    claims: Mutex<HashMap<String, (u64, Pending)>>,
    next_claim: AtomicU64,
}

/// The texts one sync embeds for others to await. Dropped once its documents are written
/// (or the sync failed): each entry leaves [`InFlight`], and a vector never published ends
/// the others' wait, so they embed that text themselves.
pub(crate) struct Claims {
    in_flight: Arc<InFlight>,
    id: u64,
    senders: HashMap<String, watch::Sender<Option<Vec<f32>>>>,
}

impl Claims {
    fn publish(&self, hash: &str, vector: &[f32]) {
        if let Some(tx) = self.senders.get(hash) {
            tx.send_replace(Some(vector.to_vec()));
        }
    }
}

impl Drop for Claims {
    fn drop(&mut self) {
        if self.senders.is_empty() {
            return;
        }
        // A poisoned lock only means another sync panicked holding it: the map is intact.
        let mut claims = self
            .in_flight
            .claims
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for hash in self.senders.keys() {
            if claims.get(hash).is_some_and(|(id, _)| *id == self.id) {
                claims.remove(hash);
            }
        }
    }
}

/// Where the vector of a distinct text came from.
#[derive(Clone, Copy)]
enum Source {
    Store,
    Concurrent,
    Provider,
}

/// What one sync's lookup decided for its distinct texts.
struct Plan {
    claims: Claims,
    /// Texts this sync embeds (indexes into the distinct texts), those it claimed first.
    claimed: Vec<usize>,
    /// Texts another sync is embedding, with the way to await each.
    awaited: Vec<(usize, Pending)>,
}

impl InFlight {
    /// Claims each of `wanted` (indexes into `hashes`) no other sync is embedding; the
    /// others are to be awaited.
    fn plan(self: &Arc<Self>, hashes: &[&str], wanted: Vec<usize>) -> Plan {
        let id = self.next_claim.fetch_add(1, Ordering::Relaxed);
        let mut plan = Plan {
            claims: Claims {
                in_flight: self.clone(),
                id,
                senders: HashMap::new(),
            },
            claimed: Vec::new(),
            awaited: Vec::new(),
        };
        let mut claims = self.claims.lock().unwrap_or_else(|p| p.into_inner());
        for i in wanted {
            let hash = hashes[i];
            match claims.get(hash) {
                Some((_, pending)) => plan.awaited.push((i, pending.clone())),
                None => {
                    let (tx, rx) = watch::channel(None);
                    claims.insert(hash.to_string(), (id, rx));
                    plan.claims.senders.insert(hash.to_string(), tx);
                    plan.claimed.push(i);
                }
            }
        }
        plan
    }
}

/// What a sync needs to find or make vectors for its texts.
pub(crate) struct Reuse<'a> {
    pub store: &'a dyn VectorStore,
    pub collection: &'a str,
    pub embedder: &'a dyn Embedder,
    pub model: &'a ModelInfo,
    pub metrics: &'a IngestMetrics,
    pub in_flight: &'a Arc<InFlight>,
}

impl Reuse<'_> {
    /// One answer per text of `texts` (whose text hashes are `hashes`): a vector found or
    /// made, or the provider's refusal. Returns the claims to hold until the documents are
    /// written. A provider or store failure is returned before anything is written.
    pub async fn vectors_for(
        &self,
        texts: &[String],
        hashes: &[String],
    ) -> Result<(Vec<Result<Vec<f32>, Refused>>, Claims), SyncError> {
        // The distinct texts, and for each text the index of its distinct one.
        let mut first_of: HashMap<&str, usize> = HashMap::new();
        let mut distinct: Vec<usize> = Vec::new();
        let slot: Vec<usize> = hashes
            .iter()
            .enumerate()
            .map(|(i, h)| {
                *first_of.entry(h.as_str()).or_insert_with(|| {
                    distinct.push(i);
                    distinct.len() - 1
                })
            })
            .collect();
        let distinct_hashes: Vec<&str> = distinct.iter().map(|&i| hashes[i].as_str()).collect();
        let mut found: Vec<Option<(Result<Vec<f32>, Refused>, Source)>> =
            vec![None; distinct.len()];

        let stored = self.stored(&distinct_hashes).await?;
        let mut missing = Vec::new();
        for (d, hash) in distinct_hashes.iter().enumerate() {
            match stored.get(*hash) {
                Some(v) => found[d] = Some((Ok(v.clone()), Source::Store)),
                None => missing.push(d),
            }
        }
        drop(stored);

        let Plan {
            claims,
            claimed,
            awaited,
        } = self.in_flight.plan(&distinct_hashes, missing);
        let answers = self.embed(texts, &distinct, &claimed).await?;
        for (d, answer) in claimed.into_iter().zip(answers) {
            if let Ok(v) = &answer {
                claims.publish(distinct_hashes[d], v);
            }
            found[d] = Some((answer, Source::Provider));
        }
        // Only after publishing: a sync holding claims never waits, so none waits in a circle.
        let mut leftover = Vec::new();
        for (d, mut pending) in awaited {
            match pending.wait_for(Option::is_some).await {
                Ok(v) => found[d] = v.clone().map(|v| (Ok(v), Source::Concurrent)),
                // Its sync failed, or the provider refused the text: try it here.
                Err(_) => leftover.push(d),
            }
        }
        let answers = self.embed(texts, &distinct, &leftover).await?;
        for (d, answer) in leftover.into_iter().zip(answers) {
            found[d] = Some((answer, Source::Provider));
        }

        let mut reused = [0u64; 3];
        let results = slot
            .iter()
            .enumerate()
            .map(|(i, &d)| match &found[d] {
                Some((Ok(v), source)) => {
                    match source {
                        Source::Store => reused[0] += 1,
                        Source::Concurrent => reused[1] += 1,
                        // The first copy was the provider's input; the others share it.
                        Source::Provider if distinct[d] != i => reused[2] += 1,
                        Source::Provider => {}
                    }
                    Ok(v.clone())
                }
                Some((Err(refused), _)) => Err(refused.clone()),
                None => Err(Refused {
                    reason: "no vector was made for this text".into(),
                }),
            })
            .collect();
        for (n, from) in reused.into_iter().zip(["store", "concurrent", "batch"]) {
            if n > 0 {
                self.metrics
                    .embeddings_reused
                    .get_or_create(&[("from", from)])
                    .inc_by(n);
            }
        }
        tracing::debug!(
            documents = texts.len(),
            distinct = distinct.len(),
            from_store = reused[0],
            concurrent = reused[1],
            same_batch = reused[2],
            "vectors reused instead of embedded"
        );
        Ok((results, claims))
    }

    /// The stored vectors of `hashes` of this model's dimension (a vector of another is not
    /// this model's, whatever the collection says).
    async fn stored(&self, hashes: &[&str]) -> Result<HashMap<String, Vec<f32>>, SyncError> {
        if hashes.is_empty() {
            return Ok(HashMap::new());
        }
        let owned: Vec<String> = hashes.iter().map(|h| h.to_string()).collect();
        let t = Instant::now();
        let mut stored = self.store.vectors_by_text(self.collection, &owned).await?;
        observe_store(self.metrics, "vectors_by_text", t);
        stored.retain(|_, v| v.len() == self.model.dimension);
        Ok(stored)
    }

    /// The provider's answers for the distinct texts `which` (indexes into `distinct`,
    /// which indexes `texts`).
    async fn embed(
        &self,
        texts: &[String],
        distinct: &[usize],
        which: &[usize],
    ) -> Result<Vec<Result<Vec<f32>, Refused>>, SyncError> {
        let asked: Vec<String> = which.iter().map(|&d| texts[distinct[d]].clone()).collect();
        embed_each_document(self.embedder, self.model, self.metrics, &asked).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::{EmbedError, InputType};
    use crate::store::embedded::EmbeddedStore;

    /// Records every text it is asked to embed; a text's vector is its length and 1.
    #[derive(Default)]
    struct Counting {
        asked: Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl Embedder for Counting {
        async fn model_info(&self) -> Result<ModelInfo, EmbedError> {
            Ok(model())
        }
        async fn embed(&self, texts: &[String], _: InputType) -> Result<Vec<Vec<f32>>, EmbedError> {
            self.asked.lock().unwrap().extend(texts.iter().cloned());
            Ok(texts.iter().map(|t| vec![t.len() as f32, 1.0]).collect())
        }
    }

    fn model() -> ModelInfo {
        ModelInfo {
            id: "test:2d".into(),
            dimension: 2,
        }
    }

    #[tokio::test]
    async fn identical_texts_of_one_chunk_are_embedded_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open_in_dir(dir.path()).unwrap();
        store.ensure_collection("c", &model()).await.unwrap();
        let embedder = Counting::default();
        let metrics = IngestMetrics::new();
        let in_flight = Arc::new(InFlight::default());
        let reuse = Reuse {
            store: &store,
            collection: "c",
            embedder: &embedder,
            model: &model(),
            metrics: &metrics,
            in_flight: &in_flight,
        };
        let texts: Vec<String> = ["xx", "yyy", "xx", "xx"].map(String::from).into();
        let hashes: Vec<String> = texts
            .iter()
            .map(|t| crate::document::text_hash(t))
            .collect();
        let (results, claims) = reuse.vectors_for(&texts, &hashes).await.unwrap();
        assert_eq!(*embedder.asked.lock().unwrap(), ["xx", "yyy"]);
        let vectors: Vec<Vec<f32>> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            vectors,
            [
                vec![2.0, 1.0],
                vec![3.0, 1.0],
                vec![2.0, 1.0],
                vec![2.0, 1.0]
            ]
        );
        let batch = metrics
            .embeddings_reused
            .get_or_create(&[("from", "batch")])
            .get();
        assert_eq!(batch, 2);
        // Once the sync is done, nothing of it is left in flight.
        drop(claims);
        assert!(in_flight.claims.lock().unwrap().is_empty());
    }
}
