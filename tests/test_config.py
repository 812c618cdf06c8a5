"""Settings: file, env and flag precedence, loud typos, and secrets that never print."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsmith.config import Settings, config_path, load_settings
from opsmith.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write_config(home: Path, text: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_flags_beat_env_which_beats_the_file(opsmith_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(opsmith_home, 'collection = "from-file"\ntop_k = 7\nprovider = "openai"\n')
    monkeypatch.setenv("OPSMITH_COLLECTION", "from-env")

    settings = load_settings()
    assert (settings.collection, settings.top_k, settings.provider) == ("from-env", 7, "openai")
    assert load_settings(collection="from-flag", top_k=None).collection == "from-flag"
    assert settings.home == opsmith_home
    assert settings.index_path == opsmith_home / "qdrant"


def test_opsmith_config_points_at_another_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = write_config(tmp_path / "elsewhere", "top_k = 9\n")
    monkeypatch.setenv("OPSMITH_CONFIG", str(elsewhere))
    assert config_path() == elsewhere
    assert load_settings().top_k == 9


def test_a_typo_in_the_file_is_an_error_naming_the_key(opsmith_home: Path) -> None:
    write_config(opsmith_home, "colection = 'runbooks'\n")
    with pytest.raises(ConfigError, match="colection") as caught:
        load_settings()
    assert "config.toml" in str(caught.value)


def test_a_bad_value_and_broken_toml_are_config_errors(opsmith_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSMITH_TOP_K", "zero")
    with pytest.raises(ConfigError, match="top_k"):
        load_settings()
    monkeypatch.delenv("OPSMITH_TOP_K")
    write_config(opsmith_home, "top_k = = 3\n")
    with pytest.raises(ConfigError, match="TOML"):
        load_settings()


def test_secrets_are_named_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-very-secret")
    settings = load_settings(provider="anthropic")
    public = json.dumps(settings.public_dict())
    assert "sk-ant-very-secret" not in public
    assert settings.public_dict()["llm_api_key"] == "<redacted>"
    assert settings.resolved_key_env == "ANTHROPIC_API_KEY"
    assert settings.resolved_model == "claude-sonnet-4-6"
    assert load_settings(provider="openai").public_dict()["llm_api_key"] == "not set ($OPENAI_API_KEY)"


def test_passwords_inside_url_settings_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSMITH_BASE_URL", "http://svc:LLM-PASS@vllm.internal:8000/v1")
    monkeypatch.setenv("OPSMITH_QDRANT_URL", "https://TOKEN-ONLY@qdrant.internal:6333/?api-key=QUERY-KEY&x=1")
    settings = load_settings()
    public = settings.public_dict()
    assert public["base_url"] == "http://svc:***@vllm.internal:8000/v1"
    assert public["qdrant_url"] == "https://***@qdrant.internal:6333/?api-key=***&x=1"
    for secret in ("LLM-PASS", "TOKEN-ONLY", "QUERY-KEY"):
        assert secret not in json.dumps(public)
    assert settings.base_url == "http://svc:LLM-PASS@vllm.internal:8000/v1"  # the setting itself is intact


def test_every_setting_is_documented() -> None:
    docs = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f"`OPSMITH_{name.upper()}`" not in docs]
    assert missing == []


def test_service_lists_come_from_the_file_as_lists_or_from_env_as_commas(
    opsmith_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "file-token-0123456789abcdef"
    write_config(
        opsmith_home,
        f'api_tokens = ["{secret}", "other-token-0123456789:read"]\n'
        'ingest_roots = ["/srv/runbooks", "/srv/more"]\ncors_origins = "https://a.example, https://b.example"\n',
    )
    settings = load_settings()
    assert [t.get_secret_value() for t in settings.api_tokens] == [secret, "other-token-0123456789:read"]
    assert settings.ingest_roots == [Path("/srv/runbooks"), Path("/srv/more")]
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert secret not in repr(settings)
    assert secret not in json.dumps(settings.public_dict())
    assert settings.public_dict()["api_tokens"] == "<redacted: 2 set>"

    monkeypatch.setenv("OPSMITH_API_TOKENS", " env-token-0123456789abc ,")
    assert [t.get_secret_value() for t in load_settings().api_tokens] == ["env-token-0123456789abc"]
