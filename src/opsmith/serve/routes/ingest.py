"""Ingest over HTTP: ``POST /v1/ingest`` (uploaded files, or a folder under an allowed root) starts a
background job; ``GET /v1/jobs[/{id}]`` reports its progress and, when done, its report."""

from __future__ import annotations

import errno
import shutil
import uuid
from pathlib import Path, PurePosixPath

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from opsmith.config import check_collection_name
from opsmith.errors import InputError, PermissionDeniedError
from opsmith.schemas import JobResponse, JobsResponse, Problem
from opsmith.serve.jobs import Job
from opsmith.serve.models import IngestPathRequest
from opsmith.serve.problems import problem_response, request_id
from opsmith.serve.security import ApiToken, resolve_ingest_path
from opsmith.serve.service import Service, ServiceDep, in_thread

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["runbooks"])


@router.post(
    "/ingest",
    status_code=202,
    response_model=JobResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["files"],
                        "properties": {
                            "files": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                                "description": "Runbook files; a filename may be a relative path (db/disk.md).",
                            },
                            "collection": {"type": "string"},
                        },
                    }
                },
                "application/json": {"schema": IngestPathRequest.model_json_schema()},
            },
        }
    },
    responses={403: {"model": Problem, "description": "Read-only token, or a path outside the allowed roots."}},
)
async def ingest(request: Request, service: ServiceDep) -> Response:
    """Index runbooks in the background: upload files (multipart) or name a folder under an allowed root.
    Poll `GET /v1/jobs/{id}` (the `Location` header) for progress and the report."""
    token: ApiToken | None = getattr(request.state, "token", None)
    if token is not None and token.read_only:
        raise PermissionDeniedError("ingest runbooks")
    content_type = request.headers.get("content-type", "")
    settings = service.settings
    if content_type.startswith("multipart/form-data"):
        job = await _ingest_uploads(request, service)
    elif content_type.startswith("application/json"):
        body = IngestPathRequest.model_validate_json(await request.body())
        real = resolve_ingest_path(body.path, settings.ingest_roots)
        roots = [root.expanduser().resolve() for root in settings.ingest_roots]
        job = service.jobs.submit_ingest(
            [real], collection=body.collection or settings.collection, prune=body.prune, within=roots
        )
    else:
        return problem_response(
            415,
            'Send multipart/form-data with files, or JSON {"path": ...} — other content types are not read',
            request_id(request),
        )
    return JSONResponse({"job": job.to_dict()}, status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})


@router.get("/jobs", response_model=JobsResponse)
async def jobs(service: ServiceDep) -> JobsResponse:
    """Recent background jobs, newest first (kept in memory until the server restarts)."""
    return {"jobs": [job.to_dict() for job in service.jobs.recent()]}


@router.get("/jobs/{job_id}", response_model=JobResponse)
async def job(job_id: str, service: ServiceDep) -> JobResponse:
    """One job's status, progress (files and chunks) and, when done, its report or error."""
    return {"job": service.jobs.get(job_id).to_dict()}


#: Longest file or folder name an upload may use, in UTF-8 bytes (Linux's NAME_MAX), and the
#: longest relative path: longer ones cannot be written under the upload folder.
_MAX_NAME_BYTES = 255
_MAX_PATH_BYTES = 1024
#: A non-file form field (``collection``) is a name, not a document.
_MAX_FIELD_BYTES = 4096
#: Errors that mean "this name cannot be a file here", as opposed to a disk that is full.
_NAME_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.EINVAL})
_HIDDEN = "hidden (a part of its name starts with '.'), so not ingested — rename it to ingest it"


def _shown(name: str) -> str:
    return name if len(name) <= 60 else name[:57] + "…"


def _check_upload_names(names: list[str]) -> None:
    """Refuse names that could not be laid out as files: duplicates, too long, a file used as a folder."""
    if len(set(names)) != len(names):
        raise InputError("Two uploaded files have the same name — give each a distinct relative path")
    given = set(names)
    for name in names:
        parts = PurePosixPath(name).parts
        longest = max(len(part.encode("utf-8", "replace")) for part in parts)
        if longest > _MAX_NAME_BYTES or len(name.encode("utf-8", "replace")) > _MAX_PATH_BYTES:
            raise InputError(
                f"Upload name {_shown(name)!r} is too long (at most {_MAX_NAME_BYTES} bytes per file or folder"
                f" name and {_MAX_PATH_BYTES} in all) — shorten it"
            )
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in given:
                raise InputError(
                    f"Upload names {_shown(folder)!r} and {_shown(name)!r} use {_shown(folder)!r} as both a file and"
                    " a folder — rename one of them"
                )


def _write_uploads(uploads: list[tuple[UploadFile, str]], folder: Path) -> None:
    for upload, name in uploads:
        target = folder / name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as out:
                upload.file.seek(0)
                shutil.copyfileobj(upload.file, out, 1 << 20)
        except OSError as exc:
            if exc.errno not in _NAME_ERRNOS:
                raise
            # Said without the server's folder: the client only knows the name it sent.
            raise InputError(
                f"Cannot store the upload {_shown(name)!r} ({exc.strerror or 'invalid name'}) — rename it"
            ) from None


async def _ingest_uploads(request: Request, service: Service) -> Job:
    from opsmith.rag.indexing import SkippedFile
    from opsmith.rag.loaders import SUPPORTED_SUFFIXES
    from opsmith.review.inmemory import safe_relative_path

    settings = service.settings
    try:
        form = await request.form(max_files=settings.max_upload_files, max_fields=20, max_part_size=_MAX_FIELD_BYTES)
    except StarletteHTTPException as exc:  # python-multipart's verdict on the form itself
        raise InputError(
            f"Cannot read the upload ({exc.detail}) — send at most {settings.max_upload_files:,} files as form"
            " field 'files', and the collection as a short text field 'collection'"
        ) from None
    folder = settings.home / "uploads" / uuid.uuid4().hex
    try:
        uploads = [item for item in form.getlist("files") if isinstance(item, UploadFile)]
        if not uploads:
            raise InputError("No files in the upload — send them as multipart form field 'files' (repeat it per file)")
        collection_field = form.get("collection")
        collection = (
            check_collection_name(collection_field)
            if isinstance(collection_field, str) and collection_field
            else settings.collection
        )
        names = [safe_relative_path(upload.filename or "") for upload in uploads]
        _check_upload_names(names)
        # Ingest never reads hidden files: they are reported in the job, not written at all.
        hidden = [name for name in names if any(part.startswith(".") for part in PurePosixPath(name).parts)]
        skip = set(hidden)
        kept = [(upload, name) for upload, name in zip(uploads, names, strict=True) if name not in skip]
        if not any(PurePosixPath(name).suffix.lower() in SUPPORTED_SUFFIXES for _, name in kept):
            kinds = " ".join(sorted(SUPPORTED_SUFFIXES))
            raise InputError(
                f"None of the {len(names)} uploaded files can be ingested (looked for {kinds}; names with a part"
                " starting with '.' are skipped) — upload runbooks in one of these formats"
            )
        await in_thread(lambda: _write_uploads(kept, folder))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        await form.close()
    # Uploads add to the collection: nothing else in it is pruned.
    return service.jobs.submit_ingest(
        [folder],
        collection=collection,
        prune=False,
        cleanup=folder,
        skipped=[SkippedFile(name, _HIDDEN) for name in hidden],
    )
