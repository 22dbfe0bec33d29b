# cw task runner. `just --list` shows every recipe. The scripts they call work without just.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Show the recipes.
default:
    @just --list

# Install everything the main job and the tests need (Chroma, just, Helm's library, the model).
setup:
    scripts/setup

# The main job on embedded defaults: index the current cluster (or the demo simulator) and search it.
demo:
    scripts/demo

# The whole test suite, exactly as CI runs it.
test:
    scripts/test

# Rust tests only (unit and integration), without set-up.
test-rust *ARGS:
    cargo nextest run --workspace {{ARGS}}

# Lint and render the Helm chart with Helm's own library, and check the rendered objects.
test-chart:
    scripts/test-chart

# Start a local Chroma server (PORT defaults to 8000, data in .cache/chroma).
chroma PORT="8000":
    scripts/chroma {{PORT}}

# Run the ingest server against a local Chroma.
serve *ARGS:
    cargo run -p cw -- serve {{ARGS}}

# Start the Kubernetes API simulator with the demo cluster; writes .cache/kubeconfig.
sim PORT="0":
    cargo run -p kube-sim -- --port {{PORT}} --seed deploy/demo --kubeconfig .cache/kubeconfig

# Relevance of search and ask (recall@5, MRR, nDCG@10) on the demo and a generated cluster: all, demo or generated.
eval-search WHICH="all":
    scripts/eval-search {{WHICH}}

# Benchmark the ingest server (10,000 instances; Chroma ceiling measured in the same run).
bench-ingest:
    scripts/bench-ingest

# Peak RSS of cw serve under one and four concurrent 16 MiB syncs (the load bound).
bench-load-bound *ARGS:
    scripts/bench-load-bound {{ARGS}}

# The fleet benchmark: N simulated clusters x M objects into one cw serve, a watcher each
# (`just bench-fleet --clusters 50 --objects 5000` is the full run of docs/scale.md).
bench-fleet *ARGS:
    scripts/bench-fleet {{ARGS}}

# Fuzz the ingest and search API against its OpenAPI document (schemathesis, long run).
fuzz-api *ARGS:
    scripts/fuzz-api {{ARGS}}

# Benchmark the Kubernetes API simulator (100,000 objects across 500 CRD types).
bench-sim:
    scripts/bench-sim

# The local embedding model against sentence-transformers on the same texts (installs PyTorch into .cache/bench-embed on first use).
bench-embed:
    scripts/bench-embed

# Benchmark the watcher (initial sync, RSS, change-to-store latency).
bench-watch:
    scripts/bench-watch

# The fault suite (issue 13): discovery 503, a 403 on a reconnect, kill -9, the API server
# restart, the ingest server down, SIGTERM during a resync; one table. `just faults --short`
# is the CI form.
faults *ARGS:
    scripts/faults {{ARGS}}

# End to end against kind (needs Docker and kind): install the chart, demo workload, search, delete.
e2e:
    scripts/e2e kind

# The same end-to-end scenario against the simulator and local processes (runs in CI).
e2e-sim:
    scripts/e2e sim

# Format and lint everything.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Regenerate deploy/manifests/cw.yaml from the chart (test-chart fails while it is stale).
manifests:
    .venv/bin/python deploy/helm.py manifests

# Build the cw container image (needs Docker; add --target runtime-local-model for the local embedding model).
image:
    docker build -t cw .
