//! all-MiniLM-L6-v2 as an ONNX graph for ONNX Runtime, built in memory from the pinned
//! `model.safetensors` and `config.json`: nothing but those files is needed, and no Python
//! or PyTorch export step exists to drift from them.
//!
//! The graph uses ONNX Runtime's fused CPU kernels for BERT (the `com.microsoft` operators
//! `EmbedLayerNormalization`, `Attention`, `SkipLayerNormalization`, `BiasGelu`), then
//! sentence-transformers' mean pooling over the attention mask and L2 normalisation, so one
//! run returns the finished vectors. Inputs: `input_ids` and `attention_mask`, int32
//! `[batch, sequence]`, padding on the right; output: `embedding`, float `[batch, hidden]`.

use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

use super::onnx_proto::{
    node, opset, tensor_value_info, Attribute, Dim, ElemType, Message, TensorHeader,
};

/// ONNX Runtime's own operator domain.
const MS: &str = "com.microsoft";

/// The BERT hyper-parameters of `config.json` that shape the graph.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub hidden_size: usize,
    pub num_attention_heads: usize,
    pub num_hidden_layers: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

fn default_act() -> String {
    "gelu".to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("not a safetensors file: {0}")]
    Safetensors(String),
    #[error("tensor {name}: {problem}")]
    Tensor { name: String, problem: String },
    #[error("config.json: {0}")]
    Config(String),
}

/// One f32 matrix or vector of the checkpoint, as stored (row-major, little-endian).
struct Weight<'a> {
    shape: Vec<usize>,
    data: &'a [u8],
}

impl Weight<'_> {
    fn f32_at(&self, i: usize) -> [u8; 4] {
        let b = &self.data[i * 4..i * 4 + 4];
        [b[0], b[1], b[2], b[3]]
    }
}

struct Checkpoint<'a> {
    tensors: SafeTensors<'a>,
    /// `bert.` in checkpoints saved from `BertForXxx`, empty in sentence-transformers'.
    prefix: &'static str,
}

impl<'a> Checkpoint<'a> {
    /// The first dimension of a tensor, whatever it is.
    fn rows(&self, name: &str) -> Result<usize, GraphError> {
        let full = format!("{}{name}", self.prefix);
        let view = self.tensors.tensor(&full).map_err(|e| GraphError::Tensor {
            name: full,
            problem: e.to_string(),
        })?;
        Ok(view.shape().first().copied().unwrap_or(0))
    }

    fn get(&self, name: &str, shape: &[usize]) -> Result<Weight<'a>, GraphError> {
        let full = format!("{}{name}", self.prefix);
        let view = self.tensors.tensor(&full).map_err(|e| GraphError::Tensor {
            name: full.clone(),
            problem: e.to_string(),
        })?;
        if view.dtype() != Dtype::F32 || view.shape() != shape {
            return Err(GraphError::Tensor {
                name: full,
                problem: format!(
                    "is {:?} {:?}, expected F32 {shape:?}",
                    view.dtype(),
                    view.shape()
                ),
            });
        }
        Ok(Weight {
            shape: view.shape().to_vec(),
            data: view.data(),
        })
    }
}

/// How an initializer's bytes are produced from the checkpoint.
enum Init<'a> {
    /// As stored.
    Copy(Weight<'a>),
    /// `nn.Linear` keeps `[out, in]`; MatMul wants `[in, out]`.
    Transposed(Weight<'a>),
    /// The fused Attention operator's `[hidden, 3 * hidden]`: Q, K and V side by side.
    QkvTransposed([Weight<'a>; 3]),
    /// Word embeddings with the (only) token type embedding added to every row: cw sends no
    /// token types, so every token is of type 0, and the sum is exact.
    WordsPlusType(Weight<'a>, Weight<'a>),
    /// Concatenation of vectors (the Q, K and V biases).
    Concat(Vec<Weight<'a>>),
    Int64(Vec<i64>),
}

impl Init<'_> {
    fn dims(&self) -> Vec<usize> {
        match self {
            Init::Copy(w) | Init::WordsPlusType(w, _) => w.shape.clone(),
            Init::Transposed(w) => vec![w.shape[1], w.shape[0]],
            Init::QkvTransposed(ws) => vec![ws[0].shape[1], 3 * ws[0].shape[0]],
            Init::Concat(ws) => vec![ws.iter().map(|w| w.shape[0]).sum()],
            Init::Int64(v) => vec![v.len()],
        }
    }

    fn elem(&self) -> ElemType {
        match self {
            Init::Int64(_) => ElemType::Int64,
            _ => ElemType::Float,
        }
    }

    fn byte_len(&self) -> usize {
        let elem = match self.elem() {
            ElemType::Int64 => 8,
            ElemType::Float | ElemType::Int32 => 4,
        };
        self.dims().iter().product::<usize>() * elem
    }

    fn write(&self, out: &mut impl RawOut) {
        match self {
            Init::Copy(w) => {
                out.raw(w.data);
            }
            Init::Transposed(w) => write_transposed(out, &[w]),
            Init::QkvTransposed(ws) => write_transposed(out, &[&ws[0], &ws[1], &ws[2]]),
            Init::WordsPlusType(words, types) => {
                let width = words.shape[1];
                let mut row = vec![0u8; width * 4];
                for r in 0..words.shape[0] {
                    for c in 0..width {
                        let v = f32::from_le_bytes(words.f32_at(r * width + c))
                            + f32::from_le_bytes(types.f32_at(c));
                        row[c * 4..c * 4 + 4].copy_from_slice(&v.to_le_bytes());
                    }
                    out.raw(&row);
                }
            }
            Init::Concat(ws) => {
                for w in ws {
                    out.raw(w.data);
                }
            }
            Init::Int64(v) => {
                for x in v {
                    out.raw(&x.to_le_bytes());
                }
            }
        }
    }
}

/// Row `r` of the result is row `r` of each `[out, in]` matrix's transpose, side by side.
fn write_transposed(out: &mut impl RawOut, ws: &[&Weight<'_>]) {
    let rows = ws[0].shape[1];
    let mut row = Vec::with_capacity(ws.iter().map(|w| w.shape[0]).sum::<usize>() * 4);
    for r in 0..rows {
        row.clear();
        for w in ws {
            let (outs, ins) = (w.shape[0], w.shape[1]);
            for c in 0..outs {
                row.extend_from_slice(&w.f32_at(c * ins + r));
            }
        }
        out.raw(&row);
    }
}

/// The graph's nodes and initializers, before encoding.
struct Builder<'a> {
    nodes: Vec<Message>,
    inits: Vec<(String, Init<'a>)>,
}

impl<'a> Builder<'a> {
    fn init(&mut self, name: &str, init: Init<'a>) -> String {
        self.inits.push((name.to_string(), init));
        name.to_string()
    }

    fn node(&mut self, op: &str, domain: &str, inputs: &[&str], out: &str, attrs: &[Attribute]) {
        self.nodes.push(node(op, domain, inputs, &[out], attrs));
    }
}

/// The ONNX model (protobuf bytes) of all-MiniLM-L6-v2 from its safetensors file and
/// config. The weights are copied into the model once; peak memory is about the model's
/// size next to `safetensors`.
pub fn build_model(safetensors: &[u8], config: &BertConfig) -> Result<Vec<u8>, GraphError> {
    let tensors = SafeTensors::deserialize(safetensors)
        .map_err(|e| GraphError::Safetensors(e.to_string()))?;
    Ok(encode(build_graph(tensors, config)?, None))
}

/// The same model as [`build_model`] with its weights as ONNX external data: `graph` receives
/// the protobuf bytes, whose large initializers point into `data_location` (a file name
/// relative to the graph file), and `data` receives that file's bytes, each tensor at an
/// offset aligned to [`EXTERNAL_ALIGNMENT`] so ONNX Runtime can map it from disk as it is.
pub fn write_external_model(
    safetensors: &[u8],
    config: &BertConfig,
    data_location: &str,
    graph: &mut impl std::io::Write,
    data: &mut impl std::io::Write,
) -> Result<(), ExternalWriteError> {
    let tensors = SafeTensors::deserialize(safetensors)
        .map_err(|e| GraphError::Safetensors(e.to_string()))?;
    let b = build_graph(tensors, config)?;
    let mut offset = 0usize;
    let mut external = Vec::with_capacity(b.inits.len());
    let mut out = WriteOut { w: data, err: None };
    for (_, init) in &b.inits {
        let len = init.byte_len();
        if len < EXTERNAL_MIN_BYTES {
            external.push(None);
            continue;
        }
        let start = offset.next_multiple_of(EXTERNAL_ALIGNMENT);
        out.raw(&vec![0u8; start - offset]);
        init.write(&mut out);
        offset = start + len;
        external.push(Some(start));
    }
    if let Some(e) = out.err {
        return Err(ExternalWriteError::Io(e));
    }
    let model = encode(b, Some((data_location, &external)));
    graph.write_all(&model).map_err(ExternalWriteError::Io)
}

/// Initializers this large or larger go to the external data file; smaller ones (biases,
/// layer norms, the pooling axes) stay in the graph.
const EXTERNAL_MIN_BYTES: usize = 4096;

/// Offsets of tensors in the external data file are multiples of the page size.
pub const EXTERNAL_ALIGNMENT: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ExternalWriteError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("writing the model: {0}")]
    Io(std::io::Error),
}

/// Where initializer bytes are appended: the model's protobuf buffer, or the external data
/// file (whose first error is kept and reported once everything is written).
trait RawOut {
    fn raw(&mut self, bytes: &[u8]);
}

impl RawOut for Message {
    fn raw(&mut self, bytes: &[u8]) {
        Message::raw(self, bytes);
    }
}

struct WriteOut<'w, W: std::io::Write> {
    w: &'w mut W,
    err: Option<std::io::Error>,
}

impl<W: std::io::Write> RawOut for WriteOut<'_, W> {
    fn raw(&mut self, bytes: &[u8]) {
        if self.err.is_none() {
            if let Err(e) = self.w.write_all(bytes) {
                self.err = Some(e);
            }
        }
    }
}

/// The whole graph: the embeddings, each encoder layer, then the pooling.
fn build_graph<'a>(
    tensors: SafeTensors<'a>,
    config: &BertConfig,
) -> Result<Builder<'a>, GraphError> {
    check_config(config)?;
    let prefix = if tensors
        .names()
        .iter()
        .any(|n| n.starts_with("bert.embeddings."))
    {
        "bert."
    } else {
        ""
    };
    let ck = Checkpoint { tensors, prefix };
    let mut b = Builder {
        nodes: Vec::new(),
        inits: Vec::new(),
    };
    let mut x = add_embeddings(&mut b, &ck, config)?;
    for i in 0..config.num_hidden_layers {
        let layer = Layer { ck: &ck, config, i };
        let h1 = add_attention(&mut b, &layer, &x)?;
        x = add_feed_forward(&mut b, &layer, &h1)?;
    }
    add_pooling(&mut b, &x);
    Ok(b)
}

/// The graph is BERT's with exact gelu, and heads that split the hidden width evenly.
fn check_config(config: &BertConfig) -> Result<(), GraphError> {
    if config.hidden_act != "gelu" {
        return Err(GraphError::Config(format!(
            "hidden_act {:?}: only BERT's exact gelu is supported",
            config.hidden_act
        )));
    }
    if config.num_attention_heads == 0
        || !config
            .hidden_size
            .is_multiple_of(config.num_attention_heads)
    {
        return Err(GraphError::Config(format!(
            "hidden_size {} is not a multiple of num_attention_heads {}",
            config.hidden_size, config.num_attention_heads
        )));
    }
    Ok(())
}

/// The layer norms' `epsilon` attribute.
fn epsilon(config: &BertConfig) -> Attribute {
    Attribute::Float("epsilon", config.layer_norm_eps as f32)
}

/// Token and position embeddings and their layer norm, in one fused node; returns the name
/// of its output, the first layer's input.
fn add_embeddings<'a>(
    b: &mut Builder<'a>,
    ck: &Checkpoint<'a>,
    config: &BertConfig,
) -> Result<String, GraphError> {
    let h = config.hidden_size;
    // The vocabulary and type counts are whatever the checkpoint holds; widths are checked.
    let vocab = ck.rows("embeddings.word_embeddings.weight")?;
    let words = ck.get("embeddings.word_embeddings.weight", &[vocab, h])?;
    let type_rows = ck.rows("embeddings.token_type_embeddings.weight")?;
    let types = ck.get("embeddings.token_type_embeddings.weight", &[type_rows, h])?;
    let words = b.init("word_embeddings", Init::WordsPlusType(words, types));
    let positions = b.init(
        "position_embeddings",
        Init::Copy(ck.get(
            "embeddings.position_embeddings.weight",
            &[config.max_position_embeddings, h],
        )?),
    );
    let gamma = b.init(
        "embeddings_ln_gamma",
        Init::Copy(ck.get("embeddings.LayerNorm.weight", &[h])?),
    );
    let beta = b.init(
        "embeddings_ln_beta",
        Init::Copy(ck.get("embeddings.LayerNorm.bias", &[h])?),
    );
    // Segment ids and embeddings left out (optional inputs): folded into the word embeddings.
    b.nodes.push(node(
        "EmbedLayerNormalization",
        MS,
        &[
            "input_ids",
            "",
            &words,
            &positions,
            "",
            &gamma,
            &beta,
            "attention_mask",
        ],
        &["x0", "mask_index"],
        &[epsilon(config)],
    ));
    Ok("x0".to_string())
}

/// Encoder layer `i` of the checkpoint.
struct Layer<'c, 'a> {
    ck: &'c Checkpoint<'a>,
    config: &'c BertConfig,
    i: usize,
}

impl<'a> Layer<'_, 'a> {
    /// The layer's tensor `name` (e.g. `attention.self.query.weight`), of `shape`.
    fn weight(&self, name: &str, shape: &[usize]) -> Result<Weight<'a>, GraphError> {
        self.ck
            .get(&format!("encoder.layer.{}.{name}", self.i), shape)
    }
}

/// The layer's self-attention (fused Q, K, V), its output projection, and the residual
/// layer norm; returns the name of the result.
fn add_attention<'a>(
    b: &mut Builder<'a>,
    layer: &Layer<'_, 'a>,
    x: &str,
) -> Result<String, GraphError> {
    let (i, h) = (layer.i, layer.config.hidden_size);
    let w = |n: &str, shape: &[usize]| layer.weight(n, shape);
    let qkv_w = b.init(
        &format!("l{i}_qkv_w"),
        Init::QkvTransposed([
            w("attention.self.query.weight", &[h, h])?,
            w("attention.self.key.weight", &[h, h])?,
            w("attention.self.value.weight", &[h, h])?,
        ]),
    );
    let qkv_b = b.init(
        &format!("l{i}_qkv_b"),
        Init::Concat(vec![
            w("attention.self.query.bias", &[h])?,
            w("attention.self.key.bias", &[h])?,
            w("attention.self.value.bias", &[h])?,
        ]),
    );
    let ctx = format!("l{i}_ctx");
    b.node(
        "Attention",
        MS,
        &[x, &qkv_w, &qkv_b, "mask_index"],
        &ctx,
        &[Attribute::Int(
            "num_heads",
            layer.config.num_attention_heads as i64,
        )],
    );
    let o_w = b.init(
        &format!("l{i}_o_w"),
        Init::Transposed(w("attention.output.dense.weight", &[h, h])?),
    );
    let o_b = b.init(
        &format!("l{i}_o_b"),
        Init::Copy(w("attention.output.dense.bias", &[h])?),
    );
    let ln1_g = b.init(
        &format!("l{i}_ln1_g"),
        Init::Copy(w("attention.output.LayerNorm.weight", &[h])?),
    );
    let ln1_b = b.init(
        &format!("l{i}_ln1_b"),
        Init::Copy(w("attention.output.LayerNorm.bias", &[h])?),
    );
    let attn_out = format!("l{i}_attn_out");
    b.node("MatMul", "", &[&ctx, &o_w], &attn_out, &[]);
    let h1 = format!("l{i}_h");
    // LayerNorm(attn_out + bias + x): the residual and the bias in one kernel.
    b.node(
        "SkipLayerNormalization",
        MS,
        &[&attn_out, x, &ln1_g, &ln1_b, &o_b],
        &h1,
        &[epsilon(layer.config)],
    );
    Ok(h1)
}

/// The layer's feed-forward block (in, gelu, out) and the residual layer norm; returns
/// the name of the layer's output, the next layer's input.
fn add_feed_forward<'a>(
    b: &mut Builder<'a>,
    layer: &Layer<'_, 'a>,
    h1: &str,
) -> Result<String, GraphError> {
    let (i, h, ff) = (
        layer.i,
        layer.config.hidden_size,
        layer.config.intermediate_size,
    );
    let w = |n: &str, shape: &[usize]| layer.weight(n, shape);
    let i_w = b.init(
        &format!("l{i}_ff_in_w"),
        Init::Transposed(w("intermediate.dense.weight", &[ff, h])?),
    );
    let i_b = b.init(
        &format!("l{i}_ff_in_b"),
        Init::Copy(w("intermediate.dense.bias", &[ff])?),
    );
    let f_w = b.init(
        &format!("l{i}_ff_out_w"),
        Init::Transposed(w("output.dense.weight", &[h, ff])?),
    );
    let f_b = b.init(
        &format!("l{i}_ff_out_b"),
        Init::Copy(w("output.dense.bias", &[h])?),
    );
    let ln2_g = b.init(
        &format!("l{i}_ln2_g"),
        Init::Copy(w("output.LayerNorm.weight", &[h])?),
    );
    let ln2_b = b.init(
        &format!("l{i}_ln2_b"),
        Init::Copy(w("output.LayerNorm.bias", &[h])?),
    );
    let (ff_in, ff_act, ff_out) = (
        format!("l{i}_ff_in"),
        format!("l{i}_ff_act"),
        format!("l{i}_ff_out"),
    );
    b.node("MatMul", "", &[h1, &i_w], &ff_in, &[]);
    b.node("BiasGelu", MS, &[&ff_in, &i_b], &ff_act, &[]);
    b.node("MatMul", "", &[&ff_act, &f_w], &ff_out, &[]);
    let next = format!("x{}", i + 1);
    b.node(
        "SkipLayerNormalization",
        MS,
        &[&ff_out, h1, &ln2_g, &ln2_b, &f_b],
        &next,
        &[epsilon(layer.config)],
    );
    Ok(next)
}

/// sentence-transformers' Pooling(mean) and Normalize: the mean of the real tokens' states
/// (the mask keeps padding out), divided by its L2 norm.
fn add_pooling(b: &mut Builder<'_>, hidden: &str) {
    let ax1 = b.init("axis_1", Init::Int64(vec![1]));
    let ax2 = b.init("axis_2", Init::Int64(vec![2]));
    b.node(
        "Cast",
        "",
        &["attention_mask"],
        "mask_f",
        &[Attribute::Int("to", ElemType::Float as i64)],
    );
    b.node("Unsqueeze", "", &["mask_f", &ax2], "mask_3d", &[]);
    b.node("Mul", "", &[hidden, "mask_3d"], "masked", &[]);
    let keep = || Attribute::Int("keepdims", 0);
    b.node("ReduceSum", "", &["masked", &ax1], "summed", &[keep()]);
    b.node("ReduceSum", "", &["mask_3d", &ax1], "counts", &[keep()]);
    b.node("Div", "", &["summed", "counts"], "mean", &[]);
    b.node(
        "ReduceL2",
        "",
        &["mean", &ax1],
        "norm",
        &[Attribute::Int("keepdims", 1)],
    );
    b.node("Div", "", &["mean", "norm"], "embedding", &[]);
}

/// ModelProto: ir_version = 1, opset_import = 8, producer_name = 2, graph = 7.
/// GraphProto: node = 1, name = 2, initializer = 5, input = 11, output = 12.
/// With `external` (the data file's name, and per initializer its offset there or `None`),
/// the initializers placed there are written as references to it.
fn encode(b: Builder<'_>, external: Option<(&str, &[Option<usize>])>) -> Vec<u8> {
    use super::onnx_proto::len_field_size;
    let inputs = [
        tensor_value_info(
            "input_ids",
            ElemType::Int32,
            &[Dim::Named("batch"), Dim::Named("sequence")],
        ),
        tensor_value_info(
            "attention_mask",
            ElemType::Int32,
            &[Dim::Named("batch"), Dim::Named("sequence")],
        ),
    ];
    let output = tensor_value_info(
        "embedding",
        ElemType::Float,
        &[Dim::Named("batch"), Dim::Named("hidden")],
    );
    let mut small = Message::new();
    for n in &b.nodes {
        small.message(1, n);
    }
    small.string(2, "all-MiniLM-L6-v2");
    for i in &inputs {
        small.message(11, i);
    }
    small.message(12, &output);
    let headers: Vec<TensorHeader> = b
        .inits
        .iter()
        .enumerate()
        .map(|(i, (name, init))| match external {
            Some((location, places)) => match places[i] {
                Some(offset) => {
                    TensorHeader::external(name, init.elem(), &init.dims(), location, offset)
                }
                None => TensorHeader::new(name, init.elem(), &init.dims()),
            },
            None => TensorHeader::new(name, init.elem(), &init.dims()),
        })
        .collect();
    let graph_len = small.len()
        + headers
            .iter()
            .map(|t| len_field_size(t.encoded_len()))
            .sum::<usize>();

    let mut model = Message::new();
    model.int(1, 8); // IR version 8 (ONNX 1.13+), which opset 18 needs
    model.message(8, &opset("", 18));
    model.message(8, &opset(MS, 1));
    model.string(2, "cw");
    model.reserve(len_field_size(graph_len));
    model.open(7, graph_len);
    model.raw(small.bytes());
    for ((_, init), header) in b.inits.iter().zip(&headers) {
        header.write(&mut model, 5, |out| init.write(out));
    }
    model.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;

    fn config() -> BertConfig {
        serde_json::from_str(
            r#"{"hidden_size": 4, "num_attention_heads": 2, "num_hidden_layers": 1,
                "intermediate_size": 8, "max_position_embeddings": 6, "layer_norm_eps": 1e-12}"#,
        )
        .expect("config")
    }

    fn checkpoint(tensors: &[(&str, Vec<usize>)]) -> Vec<u8> {
        let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
            .iter()
            .map(|(n, s)| {
                (
                    n.to_string(),
                    s.clone(),
                    vec![0u8; s.iter().product::<usize>() * 4],
                )
            })
            .collect();
        let views: Vec<(String, TensorView<'_>)> = data
            .iter()
            .map(|(n, s, d)| {
                (
                    n.clone(),
                    TensorView::new(Dtype::F32, s.clone(), d).expect("view"),
                )
            })
            .collect();
        safetensors::serialize(views, None).expect("serialize")
    }

    fn embeddings() -> Vec<(&'static str, Vec<usize>)> {
        vec![
            ("embeddings.word_embeddings.weight", vec![10, 4]),
            ("embeddings.token_type_embeddings.weight", vec![2, 4]),
            ("embeddings.position_embeddings.weight", vec![6, 4]),
            ("embeddings.LayerNorm.weight", vec![4]),
            ("embeddings.LayerNorm.bias", vec![4]),
        ]
    }

    #[test]
    fn a_checkpoint_without_a_layer_names_the_missing_tensor() {
        let bytes = checkpoint(&embeddings());
        let err = build_model(&bytes, &config()).expect_err("no encoder layer");
        assert!(
            err.to_string()
                .contains("encoder.layer.0.attention.self.query.weight"),
            "{err}"
        );
    }

    #[test]
    fn a_tensor_of_the_wrong_shape_is_refused_with_both_shapes() {
        let mut tensors = embeddings();
        tensors[3].1 = vec![5];
        let err = build_model(&checkpoint(&tensors), &config()).expect_err("wrong shape");
        let msg = err.to_string();
        assert!(
            msg.contains("embeddings.LayerNorm.weight") && msg.contains("[5]"),
            "{msg}"
        );
    }

    #[test]
    fn only_the_exact_gelu_is_accepted() {
        let mut cfg = config();
        cfg.hidden_act = "relu".into();
        let err = build_model(&checkpoint(&embeddings()), &cfg).expect_err("relu");
        assert!(err.to_string().contains("relu"), "{err}");
    }
}
