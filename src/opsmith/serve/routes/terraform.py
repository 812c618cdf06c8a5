"""``POST /v1/review``: Terraform review, as ``opsmith review --json`` plus a summary."""

from __future__ import annotations

from fastapi import APIRouter

from opsmith.config import Settings
from opsmith.errors import InputError, LimitExceededError
from opsmith.schemas import ReviewResponse
from opsmith.serve.models import ReviewRequest
from opsmith.serve.service import ServiceDep, with_llm_slot

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["terraform"])


@router.post("/review", response_model=ReviewResponse)
async def review(body: ReviewRequest, service: ServiceDep) -> ReviewResponse:
    """Review Terraform: `{security, cost, correctness}` findings as `opsmith review --json`, plus a summary."""
    _check_review(body.files, service.settings)
    result = await with_llm_slot(service, lambda: service.backend.review(body.files))
    return {**result.to_dict(), "summary": result.summary(body.fail_on)}


def _shown(name: str) -> str:
    return name if len(name) <= 60 else name[:57] + "…"


def _check_review(files: dict[str, str], settings: Settings) -> None:
    """The per-request limits of ``/v1/review``, and text that can be written as UTF-8, before any work."""
    if len(files) > settings.max_review_files:
        raise LimitExceededError(
            f"The review sends {len(files):,} files",
            limit=settings.max_review_files,
            setting="OPSMITH_MAX_REVIEW_FILES",
            advice="review the module in parts",
        )
    total = 0
    for name, content in files.items():
        for part, text in (("name", name), ("content", content)):
            try:
                total += len(text.encode("utf-8"))
            except UnicodeEncodeError as exc:  # a lone surrogate, e.g. "\ud83d" from a cut emoji
                raise InputError(
                    f"File {_shown(name)!r} holds a character that is not valid Unicode text"
                    f" ({text[exc.start]!r} at offset {exc.start} of its {part}) — send the file as valid UTF-8"
                ) from None
    if total > settings.max_review_bytes:
        raise LimitExceededError(
            f"The review's files hold {total:,} bytes",
            limit=settings.max_review_bytes,
            setting="OPSMITH_MAX_REVIEW_BYTES",
            advice="review the module in parts",
        )
