//! The in-memory side of the embedded store: every vector (normalised, contiguous) and the
//! string metadata pairs that filters look at, so a filtered search is one linear scan.
//! SQLite stays the source of truth; this is rebuilt from it on open.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::embed::ModelInfo;
use crate::store::keys::TEXT_HASH_KEY;
use crate::store::{Filter, MetaValue, Metadata};

/// Interned strings of metadata keys and values: a filter compares two `u32`s per pair.
#[derive(Default)]
pub(super) struct Interner {
    symbols: HashMap<Box<str>, u32>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&sym) = self.symbols.get(s) {
            return sym;
        }
        let sym = self.symbols.len() as u32;
        self.symbols.insert(s.into(), sym);
        sym
    }

    pub fn lookup(&self, s: &str) -> Option<u32> {
        self.symbols.get(s).copied()
    }

    /// The strings of `wanted` (one pass over the interner, which keeps no reverse map).
    pub fn strings_of(&self, wanted: &HashSet<u32>) -> HashMap<u32, &str> {
        if wanted.is_empty() {
            return HashMap::new();
        }
        self.symbols
            .iter()
            .filter(|(_, sym)| wanted.contains(sym))
            .map(|(s, &sym)| (sym, &**s))
            .collect()
    }
}

/// One stored document as kept in memory.
pub(super) struct Entry {
    pub id: Arc<str>,
    pub document: Box<str>,
    /// As stored in SQLite; parsed only for the documents a search returns.
    pub metadata_json: Box<str>,
    pub content_hash: Box<str>,
    /// (key, value) of each string-valued metadata entry, sorted by key.
    pairs: Box<[(u32, u32)]>,
    /// The symbol of its `cw_text_hash`, if it has one (its key in `by_text`).
    text: Option<u32>,
}

/// Vectors per block of [`CollectionIndex::blocks`] (1 MiB at 1,024 dimensions).
const SLOTS_PER_BLOCK: usize = 256;

pub(super) struct CollectionIndex {
    pub model: ModelInfo,
    dimension: usize,
    /// Slot `s` owns `dimension` floats of block `s / SLOTS_PER_BLOCK`, L2-normalised.
    /// Fixed blocks instead of one growing `Vec`: growing never copies the vectors already
    /// held (a realloc of hundreds of MiB copied them, and briefly held them twice).
    blocks: Vec<Box<[f32]>>,
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
    by_id: HashMap<Arc<str>, u32>,
    /// The slots of the entries carrying each `cw_text_hash` (by the value's symbol): a
    /// sync's lookup of stored vectors by text is one probe a hash, not a scan.
    by_text: HashMap<u32, Vec<u32>>,
}

/// A filter with its strings replaced by symbols; a string never interned cannot match.
pub(super) enum CompiledFilter {
    Never,
    Eq(u32, u32),
    In(u32, Vec<u32>),
    And(Vec<CompiledFilter>),
    /// Never empty: an `Or` without branches that can match is [`CompiledFilter::Never`].
    Or(Vec<CompiledFilter>),
}

impl CompiledFilter {
    pub fn compile(filter: &Filter, interner: &Interner) -> CompiledFilter {
        match filter {
            Filter::Eq(key, value) => match (interner.lookup(key), interner.lookup(value)) {
                (Some(k), Some(v)) => CompiledFilter::Eq(k, v),
                _ => CompiledFilter::Never,
            },
            Filter::In(key, values) => {
                let values: Vec<u32> = values.iter().filter_map(|v| interner.lookup(v)).collect();
                match interner.lookup(key) {
                    Some(k) if !values.is_empty() => CompiledFilter::In(k, values),
                    _ => CompiledFilter::Never,
                }
            }
            Filter::And(parts) => {
                let parts: Vec<_> = parts.iter().map(|p| Self::compile(p, interner)).collect();
                if parts.iter().any(|p| matches!(p, CompiledFilter::Never)) {
                    CompiledFilter::Never
                } else {
                    CompiledFilter::And(parts)
                }
            }
            Filter::Or(any) => {
                let parts: Vec<_> = any
                    .iter()
                    .map(|p| Self::compile(p, interner))
                    .filter(|p| !matches!(p, CompiledFilter::Never))
                    .collect();
                if parts.is_empty() {
                    CompiledFilter::Never
                } else {
                    CompiledFilter::Or(parts)
                }
            }
        }
    }

    fn matches(&self, pairs: &[(u32, u32)]) -> bool {
        let value_of = |key: u32| value_of(pairs, key);
        match self {
            CompiledFilter::Never => false,
            CompiledFilter::Eq(k, v) => value_of(*k) == Some(*v),
            CompiledFilter::In(k, vs) => value_of(*k).is_some_and(|v| vs.contains(&v)),
            CompiledFilter::And(parts) => parts.iter().all(|p| p.matches(pairs)),
            CompiledFilter::Or(parts) => parts.iter().any(|p| p.matches(pairs)),
        }
    }
}

/// The value of `key` among an entry's pairs (sorted by key).
fn value_of(pairs: &[(u32, u32)], key: u32) -> Option<u32> {
    pairs
        .binary_search_by_key(&key, |&(k, _)| k)
        .ok()
        .map(|i| pairs[i].1)
}

/// What an upsert hands to the index once SQLite has committed it.
pub(super) struct NewEntry<'a> {
    pub id: &'a str,
    pub document: &'a str,
    pub metadata: &'a Metadata,
    pub metadata_json: String,
    pub content_hash: &'a str,
    pub embedding: &'a [f32],
}

/// The interned (key, value) pairs of `metadata`'s string values, sorted by key.
fn pairs_of(metadata: &Metadata, interner: &mut Interner) -> Box<[(u32, u32)]> {
    let mut pairs: Vec<(u32, u32)> = metadata
        .iter()
        .filter_map(|(k, v)| match v {
            MetaValue::Str(s) => Some((interner.intern(k), interner.intern(s))),
            _ => None,
        })
        .collect();
    pairs.sort_unstable();
    pairs.into()
}

/// The symbol of the `cw_text_hash` among `pairs`, if there is one.
fn text_of(pairs: &[(u32, u32)], interner: &Interner) -> Option<u32> {
    value_of(pairs, interner.lookup(TEXT_HASH_KEY)?)
}

impl CollectionIndex {
    pub fn new(model: ModelInfo) -> Self {
        Self {
            dimension: model.dimension,
            model,
            blocks: Vec::new(),
            entries: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            by_text: HashMap::new(),
        }
    }

    pub fn dimension(&self) -> usize {
        self.dimension
    }

    fn vector(&self, slot: usize) -> &[f32] {
        let at = (slot % SLOTS_PER_BLOCK) * self.dimension;
        &self.blocks[slot / SLOTS_PER_BLOCK][at..at + self.dimension]
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn upsert(&mut self, new: NewEntry<'_>, interner: &mut Interner) {
        let pairs = pairs_of(new.metadata, interner);
        let entry = Entry {
            id: Arc::from(new.id),
            document: new.document.into(),
            metadata_json: new.metadata_json.into(),
            content_hash: new.content_hash.into(),
            text: text_of(&pairs, interner),
            pairs,
        };
        let slot = match self.by_id.get(new.id) {
            Some(&slot) => slot,
            None => match self.free.pop() {
                Some(slot) => slot,
                None => {
                    if self.entries.len().is_multiple_of(SLOTS_PER_BLOCK) {
                        self.blocks
                            .push(vec![0.0; SLOTS_PER_BLOCK * self.dimension].into_boxed_slice());
                    }
                    self.entries.push(None);
                    (self.entries.len() - 1) as u32
                }
            },
        };
        let s = slot as usize;
        let dimension = self.dimension;
        let at = (s % SLOTS_PER_BLOCK) * dimension;
        let target = &mut self.blocks[s / SLOTS_PER_BLOCK][at..at + dimension];
        target.copy_from_slice(new.embedding);
        normalize(target);
        self.by_id.insert(entry.id.clone(), slot);
        self.unlink_text(slot);
        self.link_text(entry.text, slot);
        self.entries[s] = Some(entry);
    }

    /// Files `slot` under its entry's text hash `text`.
    fn link_text(&mut self, text: Option<u32>, slot: u32) {
        if let Some(t) = text {
            self.by_text.entry(t).or_default().push(slot);
        }
    }

    /// Takes `slot`'s entry (if any) off the list of its text hash.
    fn unlink_text(&mut self, slot: u32) {
        let Some(t) = self.entries[slot as usize].as_ref().and_then(|e| e.text) else {
            return;
        };
        if let Some(slots) = self.by_text.get_mut(&t) {
            slots.retain(|&s| s != slot);
            if slots.is_empty() {
                self.by_text.remove(&t);
            }
        }
    }

    /// The vector of some entry carrying the text hash whose symbol is `text`,
    /// L2-normalised like [`Self::vector_of`].
    pub fn vector_of_text(&self, text: u32) -> Option<&[f32]> {
        let &slot = self.by_text.get(&text)?.first()?;
        Some(self.vector(slot as usize))
    }

    /// Replaces the metadata of `id`'s entry (its vector, document and hash are kept);
    /// nothing when there is no such entry.
    pub fn set_metadata(
        &mut self,
        id: &str,
        metadata: &Metadata,
        metadata_json: String,
        interner: &mut Interner,
    ) {
        let Some(&slot) = self.by_id.get(id) else {
            return;
        };
        self.unlink_text(slot);
        let pairs = pairs_of(metadata, interner);
        let text = text_of(&pairs, interner);
        if let Some(entry) = self.entries[slot as usize].as_mut() {
            entry.pairs = pairs;
            entry.text = text;
            entry.metadata_json = metadata_json.into();
            self.link_text(text, slot);
        }
    }

    pub fn remove(&mut self, id: &str) {
        if let Some(slot) = self.by_id.remove(id) {
            self.unlink_text(slot);
            self.entries[slot as usize] = None;
            self.free.push(slot);
        }
    }

    pub fn entry(&self, id: &str) -> Option<&Entry> {
        self.by_id
            .get(id)
            .and_then(|&slot| self.entries[slot as usize].as_ref())
    }

    /// The vector stored for `id`, L2-normalised (the same for cosine distance).
    pub fn vector_of(&self, id: &str) -> Option<&[f32]> {
        let &slot = self.by_id.get(id)?;
        Some(self.vector(slot as usize))
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().flatten()
    }

    /// The `limit` entries nearest to `query` by cosine distance (1 - cosine similarity, as
    /// Chroma's cosine space reports it), nearest first; ties by id.
    pub fn nearest(
        &self,
        query: &[f32],
        filter: Option<&CompiledFilter>,
        limit: usize,
    ) -> Vec<(f32, &Entry)> {
        if limit == 0 {
            return Vec::new();
        }
        let mut q = query.to_vec();
        normalize(&mut q);
        let mut scored: Vec<(f32, u32)> = Vec::with_capacity(self.len());
        for (slot, entry) in self.entries.iter().enumerate() {
            let Some(entry) = entry else { continue };
            if let Some(f) = filter {
                if !f.matches(&entry.pairs) {
                    continue;
                }
            }
            let v = self.vector(slot);
            scored.push((1.0 - dot(&q, v), slot as u32));
        }
        let by_distance = |a: &(f32, u32), b: &(f32, u32)| {
            a.0.total_cmp(&b.0).then_with(|| {
                let (ea, eb) = (&self.entries[a.1 as usize], &self.entries[b.1 as usize]);
                ea.as_ref().map(|e| &e.id).cmp(&eb.as_ref().map(|e| &e.id))
            })
        };
        if scored.len() > limit {
            scored.select_nth_unstable_by(limit - 1, by_distance);
            scored.truncate(limit);
        }
        scored.sort_unstable_by(by_distance);
        scored
            .into_iter()
            .filter_map(|(d, slot)| self.entries[slot as usize].as_ref().map(|e| (d, e)))
            .collect()
    }

    /// How many entries matching `filter` carry each combination of the values of `keys`
    /// (symbols; `None` for a key never interned), as symbols: nothing allocated per entry.
    pub fn tally(
        &self,
        filter: Option<&CompiledFilter>,
        keys: &[Option<u32>],
    ) -> HashMap<Vec<Option<u32>>, usize> {
        let mut counts: HashMap<Vec<Option<u32>>, usize> = HashMap::new();
        let mut values: Vec<Option<u32>> = Vec::with_capacity(keys.len());
        for entry in self.entries() {
            if filter.is_some_and(|f| !f.matches(&entry.pairs)) {
                continue;
            }
            values.clear();
            values.extend(
                keys.iter()
                    .map(|k| k.and_then(|k| value_of(&entry.pairs, k))),
            );
            match counts.get_mut(&values) {
                Some(n) => *n += 1,
                None => {
                    counts.insert(values.clone(), 1);
                }
            }
        }
        counts
    }

    /// Entries matching `filter`, ordered by id, at most `limit`.
    pub fn matching(&self, filter: Option<&CompiledFilter>, limit: usize) -> Vec<&Entry> {
        let mut found: Vec<&Entry> = self
            .entries()
            .filter(|e| filter.is_none_or(|f| f.matches(&e.pairs)))
            .collect();
        found.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        found.truncate(limit);
        found
    }
}

/// Scales `v` to unit length; a zero vector stays zero (distance 1 to everything).
fn normalize(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Eight independent sums so the compiler can keep them in SIMD registers (a single running
/// sum is a dependency chain it may not reorder).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> Metadata {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), MetaValue::Str(v.to_string())))
            .collect()
    }

    fn index_with(docs: &[(&str, Vec<f32>, Metadata)]) -> (CollectionIndex, Interner) {
        let mut interner = Interner::default();
        let mut index = CollectionIndex::new(ModelInfo {
            id: "test".into(),
            dimension: docs[0].1.len(),
        });
        for (id, v, m) in docs {
            index.upsert(
                NewEntry {
                    id,
                    document: id,
                    metadata: m,
                    metadata_json: String::new(),
                    content_hash: "h",
                    embedding: v,
                },
                &mut interner,
            );
        }
        (index, interner)
    }

    #[test]
    fn vectors_across_several_blocks_are_each_found_and_slots_are_reused() {
        // 3 blocks' worth of one-hot vectors in 8 dimensions, rotated so each is distinct
        // in direction: vector i points at axis i % 8 with a tilt of i.
        let n = 2 * SLOTS_PER_BLOCK + 7;
        let vector = |i: usize| {
            let mut v = vec![0.0f32; 8];
            v[i % 8] = 1.0;
            v[(i + 1) % 8] = i as f32 / n as f32;
            v
        };
        let ids: Vec<String> = (0..n).map(|i| format!("d{i}")).collect();
        let docs: Vec<(&str, Vec<f32>, Metadata)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), vector(i), meta(&[])))
            .collect();
        let (mut index, mut interner) = index_with(&docs);
        assert_eq!(index.blocks.len(), 3);
        for i in [0, SLOTS_PER_BLOCK - 1, SLOTS_PER_BLOCK, n - 1] {
            let found = index.nearest(&vector(i), None, 1);
            assert_eq!(&*found[0].1.id, ids[i].as_str(), "vector {i}");
        }
        // A removed slot is reused: no new block, and the new vector answers in its place.
        index.remove("d3");
        index.upsert(
            NewEntry {
                id: "new",
                document: "new",
                metadata: &meta(&[]),
                metadata_json: String::new(),
                content_hash: "h",
                embedding: &vector(3),
            },
            &mut interner,
        );
        assert_eq!(index.blocks.len(), 3);
        assert_eq!(&*index.nearest(&vector(3), None, 1)[0].1.id, "new");
    }

    #[test]
    fn a_text_hash_finds_a_vector_while_any_entry_carries_it() {
        let (mut index, mut interner) = index_with(&[
            ("a", vec![1.0, 0.0], meta(&[(TEXT_HASH_KEY, "t1")])),
            ("b", vec![1.0, 0.0], meta(&[(TEXT_HASH_KEY, "t1")])),
            ("c", vec![0.0, 2.0], meta(&[(TEXT_HASH_KEY, "t2")])),
        ]);
        let sym = |s: &str| interner.lookup(s).expect("interned");
        let (t1, t2) = (sym("t1"), sym("t2"));
        assert_eq!(index.vector_of_text(t2), Some(&[0.0, 1.0][..]));
        index.remove("a");
        assert_eq!(index.vector_of_text(t1), Some(&[1.0, 0.0][..]));
        // b's text changes: t1 is carried by nobody.
        index.upsert(
            NewEntry {
                id: "b",
                document: "b",
                metadata: &meta(&[(TEXT_HASH_KEY, "t3")]),
                metadata_json: String::new(),
                content_hash: "h",
                embedding: &[0.0, 1.0],
            },
            &mut interner,
        );
        assert_eq!(index.vector_of_text(t1), None);
        let t3 = interner.lookup("t3").expect("interned");
        assert_eq!(index.vector_of_text(t3), Some(&[0.0, 1.0][..]));
        index.set_metadata("c", &meta(&[]), String::new(), &mut interner);
        assert_eq!(index.vector_of_text(t2), None);
    }

    #[test]
    fn dot_matches_the_plain_sum_for_lengths_not_multiple_of_eight() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 - i as f32 * 0.1).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-4);
    }

    #[test]
    fn filter_on_unknown_value_or_key_matches_nothing() {
        let (index, interner) = index_with(&[("a", vec![1.0, 0.0], meta(&[("kind", "Pod")]))]);
        for filter in [
            Filter::Eq("kind".into(), "Service".into()),
            Filter::Eq("nope".into(), "Pod".into()),
            Filter::In("kind".into(), vec![]),
        ] {
            let compiled = CompiledFilter::compile(&filter, &interner);
            assert!(index.matching(Some(&compiled), 10).is_empty(), "{filter:?}");
        }
    }

    #[test]
    fn a_key_matches_only_its_own_value_not_another_keys() {
        let (index, interner) = index_with(&[(
            "a",
            vec![1.0, 0.0],
            meta(&[("kind", "Pod"), ("name", "Service")]),
        )]);
        let compiled =
            CompiledFilter::compile(&Filter::Eq("kind".into(), "Service".into()), &interner);
        assert!(index.matching(Some(&compiled), 10).is_empty());
    }

    #[test]
    fn removed_slots_are_reused_and_not_returned() {
        let (mut index, mut interner) = index_with(&[
            ("a", vec![1.0, 0.0], meta(&[])),
            ("b", vec![0.0, 1.0], meta(&[])),
        ]);
        index.remove("a");
        index.upsert(
            NewEntry {
                id: "c",
                document: "c",
                metadata: &meta(&[]),
                metadata_json: String::new(),
                content_hash: "h",
                embedding: &[1.0, 1.0],
            },
            &mut interner,
        );
        let ids: Vec<&str> = index
            .nearest(&[1.0, 0.0], None, 10)
            .iter()
            .map(|(_, e)| &*e.id)
            .collect();
        assert_eq!(ids, ["c", "b"]);
        assert_eq!(index.len(), 2);
    }
}
