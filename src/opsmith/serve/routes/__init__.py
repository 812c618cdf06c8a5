"""The HTTP API's routes, one module per noun (its OpenAPI tag); each parses, calls the backend and renders.

* :mod:`.info`: ``GET /v1/info``, and ``/healthz``, ``/readyz``, ``/metrics`` for probes;
* :mod:`.runbooks`: ``POST /v1/ask`` (JSON or Server-Sent Events), ``POST /v1/search``,
  ``GET /v1/collections[/{name}/sources[/{source}]]``;
* :mod:`.terraform`: ``POST /v1/review``;
* :mod:`.ingest`: ``POST /v1/ingest`` (uploads or a server-side folder) and ``GET /v1/jobs[/{id}]``;
* :mod:`.incidents`: ``POST /v1/alerts/alertmanager``;
* :mod:`.ui`: the web UI (``/``, ``/review``, ``/static/*``).
"""

from __future__ import annotations

from fastapi import FastAPI

from opsmith.serve.routes import incidents, info, ingest, runbooks, terraform, ui

__all__ = ["add_routes"]


def add_routes(app: FastAPI) -> None:
    """Every route, in the order the OpenAPI document lists them."""
    for router in (info.api, runbooks.router, terraform.router, ingest.router, incidents.router, info.probes):
        app.include_router(router)
    ui.add_pages(app)
