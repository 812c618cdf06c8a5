# Every target uses the virtualenv in .venv. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch lies on disk on our machines; a bare `torch` would pull a multi-GB CUDA
# build. GPU users: `make install TORCH_SPEC=torch` (or pre-install your own torch).
TORCH_SPEC ?= torch==2.13.0
DEMO_COLLECTION ?= demo

.PHONY: install dev demo test lint bench clean

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

test: dev
	$(BIN)/python -m pytest

lint: dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

bench: install
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
