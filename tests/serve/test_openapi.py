"""The OpenAPI document checked into docs/ is the one the app serves."""

from __future__ import annotations

import json
from pathlib import Path

from opsmith.serve.app import openapi_document

REPO = Path(__file__).resolve().parents[2]


def test_checked_in_openapi_matches_the_app() -> None:
    checked_in = json.loads((REPO / "docs" / "openapi.json").read_text(encoding="utf-8"))
    assert checked_in == openapi_document(), "docs/openapi.json is stale — run: make openapi"


def test_every_v1_route_but_info_declares_bearer_auth() -> None:
    document = openapi_document()
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert set(scheme) == {"type", "scheme", "description"}
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    # A client reading only the document learns where tokens come from and when they are needed.
    assert "OPSMITH_API_TOKENS" in scheme["description"]
    assert "GET /v1/info" in scheme["description"]
    assert "auth_required" in scheme["description"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            secured = operation.get("security") == [{"bearerAuth": []}]
            expected = path.startswith("/v1/") and path != "/v1/info"
            assert secured == expected, f"{method.upper()} {path}"


def test_the_documented_routes_exist() -> None:
    paths = openapi_document()["paths"]
    for path, method in [
        ("/v1/ask", "post"),
        ("/v1/search", "post"),
        ("/v1/review", "post"),
        ("/v1/ingest", "post"),
        ("/v1/jobs/{job_id}", "get"),
        ("/v1/collections", "get"),
        ("/v1/alerts/alertmanager", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ]:
        assert method in paths[path], f"{method.upper()} {path}"
    ingest_body = paths["/v1/ingest"]["post"]["requestBody"]["content"]
    assert set(ingest_body) == {"multipart/form-data", "application/json"}
    assert "text/event-stream" in paths["/v1/ask"]["post"]["responses"]["200"]["content"]
