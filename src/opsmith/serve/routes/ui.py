"""The web UI: runbook Q&A at ``/``, Terraform review at ``/review``, their files under ``/static``."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["STATIC_DIR", "add_pages"]

STATIC_DIR = Path(str(files("opsmith.serve") / "static"))


def add_pages(app: FastAPI) -> None:
    """The two pages (left out of the OpenAPI document) and the static files they load."""

    @app.get("/", include_in_schema=False)
    async def chat_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.get("/review", include_in_schema=False)
    async def review_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "review.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
