//! The local model (all-MiniLM-L6-v2 on ONNX Runtime) against reference vectors computed by an
//! independent implementation (scripts/make-model-fixtures.py), plus a check that needs real
//! semantics. Needs the model files: `cw model fetch` (scripts/setup runs it) or CW_MODEL_DIR.

use std::path::PathBuf;

use sha2::Digest;

use ingest::embed::local::{
    default_model_dir, has_graph_file, LocalEmbedder, GRAPH_DATA_FILE, GRAPH_FILE,
    LOCAL_MODEL_DIMENSION, LOCAL_MODEL_ID, RUNTIME_LIBRARY,
};
use ingest::embed::{EmbedError, Embedder, InputType};

fn model_dir() -> PathBuf {
    std::env::var_os("CW_MODEL_DIR")
        .map(PathBuf::from)
        .or_else(default_model_dir)
        .expect("set HOME, XDG_CACHE_HOME or CW_MODEL_DIR")
}

fn embedder() -> LocalEmbedder {
    match LocalEmbedder::load(&model_dir()) {
        Ok(e) => e,
        Err(e) => panic!(
            "{e}\nThese tests need the local model: run `cargo run -p cw -- model fetch` (or scripts/setup), \
             or set CW_MODEL_DIR to a directory that holds it."
        ),
    }
}

struct Reference {
    text: String,
    vector: Vec<f32>,
}

fn references() -> Vec<Reference> {
    parse_references(include_str!("fixtures/minilm-reference.json"))
}

/// Each of `vectors` is within cosine `min` of its reference's vector; `what` names the
/// reference in the failure.
fn assert_within(refs: &[Reference], vectors: &[Vec<f32>], min: f32, what: &str) {
    for (r, v) in refs.iter().zip(vectors) {
        let sim = cosine(&r.vector, v);
        assert!(
            sim >= min,
            "cosine {sim:.5} {what} {:?}",
            &r.text[..r.text.len().min(60)]
        );
    }
}

fn parse_references(raw: &str) -> Vec<Reference> {
    let json: serde_json::Value = serde_json::from_str(raw).expect("fixture is JSON");
    json["sentences"]
        .as_array()
        .expect("sentences")
        .iter()
        .map(|s| Reference {
            text: s["text"].as_str().expect("text").to_string(),
            vector: s["vector"]
                .as_array()
                .expect("vector")
                .iter()
                .map(|x| x.as_f64().expect("number") as f32)
                .collect(),
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[tokio::test]
async fn vectors_match_the_reference_implementation_in_one_padded_batch() {
    let refs = references();
    assert_eq!(refs.len(), 8);
    let texts: Vec<String> = refs.iter().map(|r| r.text.clone()).collect();
    // Batch size 8: short sentences share a batch with a 256-token one, so padding must be masked.
    let vectors = embedder()
        .with_batch_size(8)
        .embed(&texts, InputType::Document)
        .await
        .expect("embed");
    for v in &vectors {
        assert_eq!(v.len(), LOCAL_MODEL_DIMENSION);
    }
    assert_within(&refs, &vectors, 0.999, "to the reference for");
}

/// sentence-transformers' own vectors (PyTorch on the CPU) for the same sentences and for
/// document texts as the pipeline makes them, embedded here in one batch of mixed lengths.
#[tokio::test]
async fn vectors_are_within_cosine_0_99_of_sentence_transformers() {
    let refs = parse_references(include_str!("fixtures/minilm-sentence-transformers.json"));
    assert!(
        refs.len() >= 12,
        "the fixture holds sentences and document texts"
    );
    let texts: Vec<String> = refs.iter().map(|r| r.text.clone()).collect();
    let vectors = embedder()
        .embed(&texts, InputType::Document)
        .await
        .expect("embed");
    assert_within(&refs, &vectors, 0.99, "to sentence-transformers for");
}

#[test]
fn each_sentence_alone_gets_the_same_vector_as_in_a_batch() {
    let e = embedder();
    let refs = references();
    let texts: Vec<String> = refs.iter().map(|r| r.text.clone()).collect();
    let batched = e
        .clone()
        .with_batch_size(8)
        .embed_blocking(&texts)
        .expect("batch");
    for (text, in_batch) in texts.iter().zip(&batched) {
        let alone = e
            .embed_blocking(std::slice::from_ref(text))
            .expect("single");
        assert!(
            cosine(&alone[0], in_batch) > 0.9999,
            "batch composition changed the vector of {text:?}"
        );
    }
}

#[tokio::test]
async fn postgres_database_is_nearer_to_postgresql_cluster_than_to_nginx_web_server() {
    let texts: Vec<String> = [
        "postgres database",
        "PostgreSQL cluster",
        "nginx web server",
    ]
    .map(String::from)
    .to_vec();
    let v = embedder()
        .embed(&texts, InputType::Query)
        .await
        .expect("embed");
    let (pg, web) = (cosine(&v[0], &v[1]), cosine(&v[0], &v[2]));
    assert!(
        pg > web + 0.2,
        "postgres~PostgreSQL {pg:.3} vs postgres~nginx {web:.3}"
    );
}

#[tokio::test]
async fn vectors_are_unit_length_in_input_order_and_the_model_is_named() {
    let e = embedder().with_batch_size(3);
    let info = e.model_info().await.expect("model_info");
    assert_eq!((info.id.as_str(), info.dimension), (LOCAL_MODEL_ID, 384));
    let texts: Vec<String> = (0..10).map(|i| "word ".repeat(i * 7 + 1)).collect();
    let all = e.embed(&texts, InputType::Document).await.expect("embed");
    assert_eq!(all.len(), texts.len());
    for (i, v) in all.iter().enumerate() {
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "vector {i} has norm {norm}");
        let alone = e
            .embed_blocking(std::slice::from_ref(&texts[i]))
            .expect("single");
        assert!(
            cosine(&alone[0], v) > 0.9999,
            "vector {i} is not the one for input {i}"
        );
    }
    assert!(e
        .embed(&[], InputType::Query)
        .await
        .expect("empty")
        .is_empty());
}

#[test]
fn a_missing_model_names_the_command_that_fetches_it() {
    let empty = tempfile::tempdir().expect("temp dir");
    match LocalEmbedder::load(empty.path()) {
        Err(EmbedError::ModelMissing(msg)) => {
            assert!(msg.contains("cw model fetch"), "{msg}");
            assert!(msg.contains("model.safetensors"), "{msg}");
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("an empty directory has no model"),
    }
}

#[tokio::test]
async fn open_checks_the_files_at_once_but_reads_the_weights_only_when_embedding() {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in ["config.json", "tokenizer.json", RUNTIME_LIBRARY] {
        std::fs::copy(model_dir().join(name), dir.path().join(name))
            .unwrap_or_else(|e| panic!("{name} from the local model (scripts/setup): {e}"));
    }
    std::fs::write(dir.path().join("model.safetensors"), b"not a model").expect("write");

    let lazy = LocalEmbedder::open(dir.path()).expect("open reads config.json only");
    let info = lazy
        .model_info()
        .await
        .expect("model info without the weights");
    assert_eq!(
        (info.id.as_str(), info.dimension),
        (LOCAL_MODEL_ID, LOCAL_MODEL_DIMENSION)
    );
    match lazy
        .embed(&["a pod".to_string()], InputType::Document)
        .await
    {
        Err(EmbedError::ModelMissing(msg)) => assert!(msg.contains("model.safetensors"), "{msg}"),
        other => panic!("the broken weights are read at the first embedding: {other:?}"),
    }
    assert!(
        matches!(
            LocalEmbedder::load(dir.path()),
            Err(EmbedError::ModelMissing(_))
        ),
        "load reads the weights at once"
    );
    assert!(
        matches!(
            LocalEmbedder::open(tempfile::tempdir().unwrap().path()),
            Err(EmbedError::ModelMissing(_))
        ),
        "open still refuses a directory without the model"
    );
}

/// SHA-256 of the graph file that this cw writes, under its versioned name.
const GRAPH_FILE_SHA256: &str = "cb911d765b642ba1bce0742430d1f9ea47940ab6559f1b17c21f478184bd5cce";

/// A model directory made of links to the fetched model's files (no graph file).
fn linked_model_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        RUNTIME_LIBRARY,
    ] {
        std::os::unix::fs::symlink(model_dir().join(name), dir.path().join(name))
            .unwrap_or_else(|e| panic!("link {name}: {e}"));
    }
    dir
}

/// Every reference sentence embedded by `e` is within cosine 0.999 of its reference vector.
fn assert_reference_vectors(e: &LocalEmbedder) {
    let refs = references();
    let texts: Vec<String> = refs.iter().map(|r| r.text.clone()).collect();
    let vectors = e.embed_blocking(&texts).expect("embed");
    assert_within(&refs, &vectors, 0.999, "for");
}

#[test]
fn the_first_load_writes_the_graph_file_beside_the_model_and_later_loads_use_it() {
    let dir = linked_model_dir();
    assert!(!has_graph_file(dir.path()));
    let first = LocalEmbedder::load(dir.path()).expect("first load");
    assert!(
        has_graph_file(dir.path()),
        "the first load leaves {GRAPH_FILE} and {GRAPH_DATA_FILE} beside the model"
    );
    assert_reference_vectors(&first);
    drop(first);
    // The file's name carries a version (`cw1`) so that a file written by an older cw is
    // not used: a change of the graph must change that version too.
    let graph = std::fs::read(dir.path().join(GRAPH_FILE)).expect("graph file");
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&graph)),
        GRAPH_FILE_SHA256,
        "the graph file changed: bump the version in GRAPH_FILE ({GRAPH_FILE}) and \
         GRAPH_DATA_FILE, then pin the new hash here"
    );
    let data = std::fs::metadata(dir.path().join(GRAPH_DATA_FILE)).expect("data file");
    let again = LocalEmbedder::load(dir.path()).expect("load from the graph file");
    assert_reference_vectors(&again);
    let after = std::fs::metadata(dir.path().join(GRAPH_DATA_FILE)).expect("data file");
    assert_eq!(
        data.modified().ok(),
        after.modified().ok(),
        "a second load reads the graph file, it does not write it again"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn a_model_directory_that_cannot_take_the_graph_file_is_loaded_from_memory() {
    let dir = linked_model_dir();
    // A directory where the data file would go: the rename into place fails.
    std::fs::create_dir(dir.path().join(GRAPH_DATA_FILE)).expect("block the data file");
    let e = LocalEmbedder::load(dir.path()).expect("loads from memory instead");
    assert_reference_vectors(&e);
    assert!(
        !dir.path().join(GRAPH_FILE).exists(),
        "no graph file without its data"
    );
}
