"""``GET /v1/info`` (what this server is), and the probes: ``/healthz``, ``/readyz``, ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from opsmith import __version__
from opsmith.errors import StoreError
from opsmith.schemas import InfoResponse
from opsmith.serve.metrics import CONTENT_TYPE_LATEST
from opsmith.serve.service import ServiceDep, in_thread

__all__ = ["api", "probes"]

api = APIRouter(prefix="/v1", tags=["service"])
probes = APIRouter(tags=["service"])


@api.get("/info", response_model=InfoResponse)
async def info(service: ServiceDep) -> InfoResponse:
    """What this server is: version, default collection, answer mode and whether auth is on (no auth needed)."""
    settings = service.settings
    return {
        "version": __version__,
        "collection": settings.collection,
        "provider": service.backend.provider,
        "model": service.backend.model,
        "retrieval_mode": settings.retrieval_mode,
        "vector_store": "qdrant server" if settings.qdrant_url else settings.vector_store,
        "auth_required": service.authenticator.required,
    }


@probes.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok", "version": __version__}


@probes.get(
    "/readyz",
    responses={
        503: {
            "description": "Still loading the embedder and store, loading failed, or the store cannot serve"
            " (the embedded index folder is gone, the Qdrant server does not answer)."
        }
    },
)
async def readyz(service: ServiceDep) -> Response:
    """Readiness: the embedder and the store are loaded, and the store can serve now."""
    if not service.backend.loaded:
        return JSONResponse(service.readiness, status_code=503)
    try:
        await in_thread(lambda: service.backend.store().check())
    except StoreError as exc:
        return JSONResponse({"status": "failed", "detail": str(exc)}, status_code=503)
    return JSONResponse({"status": "ready"})


@probes.get("/metrics", response_class=Response)
async def metrics(service: ServiceDep) -> Response:
    """Prometheus metrics (text exposition format)."""
    return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)
