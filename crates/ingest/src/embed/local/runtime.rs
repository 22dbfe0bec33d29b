//! ONNX Runtime for the local model: the shared library that `cw model fetch` unpacked from
//! the `onnxruntime` wheel is loaded once per process, and one session runs the graph that
//! [`super::graph`] builds.

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;

/// The library is process-wide: the first path loaded is the one every session uses.
static RUNTIME: OnceLock<Result<(), String>> = OnceLock::new();

fn load_runtime(lib: &Path) -> Result<(), String> {
    RUNTIME
        .get_or_init(|| {
            let env = ort::init_from(lib).map_err(|e| e.to_string())?;
            env.with_name("cw").commit();
            Ok(())
        })
        .clone()
}

/// Where the session reads the ONNX model from.
pub(super) enum ModelSource<'a> {
    /// A model file on disk; its external data is mapped from the file beside it.
    File(&'a Path),
    /// Protobuf bytes with the weights inline (ONNX Runtime copies them).
    Memory(&'a [u8]),
}

fn build_session(model: ModelSource<'_>, threads: usize) -> ort::Result<Session> {
    let mut builder = Session::builder()?
        .with_optimization_level(GraphOptimizationLevel::Level3)?
        .with_intra_threads(threads)?
        .with_inter_threads(1)?
        // Waiting threads sleep instead of spinning between operators: the pipeline's other
        // work (documents, the store) shares these cores.
        .with_intra_op_spinning(false)?;
    match model {
        ModelSource::File(path) => builder.commit_from_file(path),
        ModelSource::Memory(bytes) => builder.commit_from_memory(bytes),
    }
}

/// One ONNX Runtime session of the local model. `run` takes `&mut` in `ort`, so calls are
/// serialised; a batch already uses every core.
pub(super) struct OrtSession {
    session: Mutex<Session>,
    dimension: usize,
}

impl OrtSession {
    /// Loads the runtime from `lib` (once per process) and compiles `model` with all of
    /// ONNX Runtime's graph optimisations, on `threads` cores.
    pub(super) fn new(
        lib: &Path,
        model: ModelSource<'_>,
        threads: usize,
        dimension: usize,
    ) -> Result<Self, String> {
        load_runtime(lib)?;
        let session = build_session(model, threads).map_err(|e| e.to_string())?;
        Ok(Self {
            session: Mutex::new(session),
            dimension,
        })
    }

    /// `rows` inputs of `width` token ids each (padded with id 0, `mask` 0 there): one
    /// L2-normalised vector per row.
    pub(super) fn embed(
        &self,
        rows: usize,
        width: usize,
        ids: Vec<i32>,
        mask: Vec<i32>,
    ) -> Result<Vec<Vec<f32>>, String> {
        let ids = Tensor::from_array(([rows, width], ids)).map_err(|e| e.to_string())?;
        let mask = Tensor::from_array(([rows, width], mask)).map_err(|e| e.to_string())?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session
            .run(ort::inputs!["input_ids" => ids, "attention_mask" => mask])
            .map_err(|e| e.to_string())?;
        let (shape, data) = outputs["embedding"]
            .try_extract_tensor::<f32>()
            .map_err(|e| e.to_string())?;
        if shape.len() != 2 || shape[0] as usize != rows || shape[1] as usize != self.dimension {
            return Err(format!(
                "the model returned shape {shape:?}, expected [{rows}, {}]",
                self.dimension
            ));
        }
        Ok(data.chunks(self.dimension).map(<[f32]>::to_vec).collect())
    }
}
