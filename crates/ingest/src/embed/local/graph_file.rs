//! The model's ONNX graph on disk beside the checkpoint, its weights as ONNX external data,
//! so that ONNX Runtime maps them from the file instead of parsing and copying a 90 MB model
//! held in memory (that copy was the memory peak of the first embedding). Written once, by
//! `cw model fetch` or by the first load of a model directory without it, and atomically
//! (renamed into place complete); a directory that cannot take it (read-only) is loaded
//! from memory as before.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::graph::{write_external_model, BertConfig, ExternalWriteError, GraphError};

/// The graph (a few KiB; the layer norms and biases inline). The number names the graph
/// that [`super::graph`] builds: change it whenever that code makes a different graph, so
/// that the file of an older cw is not used.
pub const GRAPH_FILE: &str = "all-MiniLM-L6-v2.cw1.onnx";
/// The weights (about 90 MB) the graph file refers to, at page-aligned offsets.
pub const GRAPH_DATA_FILE: &str = "all-MiniLM-L6-v2.cw1.onnx.data";

#[derive(Debug, thiserror::Error)]
pub enum GraphFileError {
    /// The checkpoint cannot make the graph: loading it from memory fails the same way.
    #[error(transparent)]
    Model(#[from] GraphError),
    /// The directory cannot take the files (read-only, full): the model can still be
    /// loaded from memory.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Whether `dir` holds a complete graph file (both files are renamed into place whole,
/// the data first).
pub fn has_graph_file(dir: &Path) -> bool {
    dir.join(GRAPH_FILE).is_file() && dir.join(GRAPH_DATA_FILE).is_file()
}

/// The graph file of `dir`, written first from model.safetensors if it is not there.
/// Blocking.
pub fn ensure_graph_file(dir: &Path, config: &BertConfig) -> Result<PathBuf, GraphFileError> {
    if has_graph_file(dir) {
        return Ok(dir.join(GRAPH_FILE));
    }
    write_graph_file(dir, config)
}

/// Writes the graph file and its data into `dir` from model.safetensors (replacing any
/// there), each into a temporary file first, then renamed into place: data, then graph.
/// Another process writing at the same time writes the same bytes. Blocking; holds the
/// checkpoint (90 MB) in memory while it writes.
pub fn write_graph_file(dir: &Path, config: &BertConfig) -> Result<PathBuf, GraphFileError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GraphFileError::Io { path, source }
    };
    // The temporary files first: a directory that cannot take them is found before the
    // checkpoint is read.
    let temp = |name: &str| {
        tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .tempfile_in(dir)
            .map_err(io(&dir.join(name)))
    };
    let data_tmp = temp(GRAPH_DATA_FILE)?;
    let graph_tmp = temp(GRAPH_FILE)?;
    let checkpoint = dir.join("model.safetensors");
    let weights = std::fs::read(&checkpoint).map_err(io(&checkpoint))?;
    {
        let mut data = BufWriter::with_capacity(1 << 20, data_tmp.as_file());
        let mut graph = BufWriter::new(graph_tmp.as_file());
        write_external_model(&weights, config, GRAPH_DATA_FILE, &mut graph, &mut data).map_err(
            |e| match e {
                ExternalWriteError::Graph(e) => GraphFileError::Model(e),
                ExternalWriteError::Io(e) => io(data_tmp.path())(e),
            },
        )?;
        data.flush().map_err(io(data_tmp.path()))?;
        graph.flush().map_err(io(graph_tmp.path()))?;
    }
    drop(weights);
    for file in [&data_tmp, &graph_tmp] {
        let path = file.path().to_path_buf();
        // Readable by whoever may read the model files (temporary files are owner-only).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
                .map_err(io(&path))?;
        }
        file.as_file().sync_all().map_err(io(&path))?;
    }
    let target = |name: &str| dir.join(name);
    data_tmp
        .persist(target(GRAPH_DATA_FILE))
        .map_err(|e| io(&target(GRAPH_DATA_FILE))(e.error))?;
    graph_tmp
        .persist(target(GRAPH_FILE))
        .map_err(|e| io(&target(GRAPH_FILE))(e.error))?;
    Ok(target(GRAPH_FILE))
}
