# syntax=docker/dockerfile:1
#
# opsmith with its embedded defaults (bundled embedder, local Qdrant index under /data, no LLM
# needed), running as a non-root user. Build and run: see docs/integrations.md.
#
#   docker build -t opsmith .
#   docker run --rm -p 8080:8080 -v opsmith-data:/data -e OPSMITH_API_TOKENS="$(openssl rand -hex 32)" opsmith
#
# The container binds 0.0.0.0, so bearer-token auth is on: it refuses to start without a token.
#
# Not built by CI: the machines that run this project's CI have no Docker engine.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: a virtualenv with CPU-only torch and opsmith --------------------------------
FROM ${PYTHON_IMAGE} AS builder

ARG TORCH_SPEC=torch
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/opsmith
ENV PATH=/opt/opsmith/bin:$PATH

# CPU torch first, from the PyTorch index: PyPI's default build bundles CUDA and is several GB larger.
RUN pip install --index-url "${TORCH_INDEX_URL}" "${TORCH_SPEC}"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[rag,mcp,serve]" && opsmith --help > /dev/null

# ---- runtime: the virtualenv, a non-root user and a data volume ------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PATH=/opt/opsmith/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OPSMITH_HOME=/data \
    OPSMITH_CACHE_DIR=/opt/opsmith/cache \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

RUN groupadd --system --gid 10001 opsmith \
    && useradd --system --uid 10001 --gid opsmith --home-dir /data --no-create-home --shell /usr/sbin/nologin opsmith

# Same path as in the builder: the virtualenv's scripts point at /opt/opsmith/bin/python.
COPY --from=builder /opt/opsmith /opt/opsmith

# Export the bundled embedder to ONNX at build time (into OPSMITH_CACHE_DIR), so the first
# question after start does not pay for it. Done in this stage, where the weights' final path
# and timestamps (the cache key) are the ones the server will see.
RUN OPSMITH_HOME=/tmp/opsmith-build python -c "from opsmith.config import load_settings; from opsmith.rag.embedder import load_embedder; load_embedder(load_settings())" \
    && rm -rf /tmp/opsmith-build \
    && chmod -R a+rX /opt/opsmith/cache \
    && mkdir -p /data \
    && chown opsmith:opsmith /data

USER opsmith
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=4)"]

ENTRYPOINT ["opsmith"]
# The HTTP API, web UI and /metrics. For the MCP server instead:
#   docker run ... opsmith mcp --transport http --host 0.0.0.0 --port 8080
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
