"""Request and response bodies of the HTTP API; they are also its OpenAPI schema.

The response shapes are the CLI's ``--json`` documents (``opsmith ask --json`` and so on), so
a script can move between the CLI and the API without changing its parsing.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from opsmith.config import RetrievalMode, check_collection_name
from opsmith.errors import InvalidCollectionNameError


def _collection_name(value: str) -> str:
    try:
        return check_collection_name(value)
    except InvalidCollectionNameError as exc:
        raise ValueError(str(exc)) from None


#: A collection's name, checked by the one rule the CLI uses too (so the request fails at once, not its job).
CollectionName = Annotated[str, AfterValidator(_collection_name)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AskRequest(_Body):
    question: str = Field(min_length=1, max_length=4000, description="The question, in plain words.")
    collection: CollectionName | None = Field(
        None, description="Collection to answer from; the server's default when omitted."
    )
    k: int | None = Field(None, ge=1, le=100, description="Chunks to retrieve; the server's top_k when omitted.")
    stream: bool = Field(
        False, description="Answer as Server-Sent Events: `token` events, then one `answer` (or `error`) event."
    )


class SearchRequest(_Body):
    query: str = Field(min_length=1, max_length=4000)
    collection: CollectionName | None = None
    k: int = Field(5, ge=1, le=100)


class ReviewRequest(_Body):
    files: dict[str, str] = Field(
        min_length=1,
        description='Terraform files as {relative path: content}, e.g. {"main.tf": "resource ..."}; pass the whole'
        " module so references resolve. Files not ending in .tf are skipped and listed.",
    )
    fail_on: Literal["critical", "warning", "none"] = Field(
        "critical", description="summary.failed is true when a finding is at or above this severity."
    )


class IngestPathRequest(_Body):
    path: str = Field(description="Absolute server-side file or folder under one of the allowed ingest roots.")
    collection: CollectionName | None = None
    prune: bool = Field(
        True,
        description="Remove runbooks ingested from under `path` that are gone from it; runbooks from elsewhere stay.",
    )


class Citation(BaseModel):
    source: str
    heading: str
    start_line: int
    end_line: int
    score: float
    relevance: float
    number: int = Field(description="The [n] used in the answer.")


class AskResponse(BaseModel):
    """``opsmith ask --json``."""

    question: str
    answer: str
    refused: bool = Field(description="True when the runbooks do not cover the question.")
    citations: list[Citation]
    provider: str = Field(description="'none' for the extractive (quoting) answer, else the LLM provider.")
    timings_ms: dict[str, float]
    model: str | None
    dropped_citations: list[int] = Field(description="Citation numbers the model made up (removed).")
    usage: dict[str, int]
    error: str | None = Field(description="Why the LLM call failed (the answer then quotes passages).")
    retrieved: list[Citation]
    support: float = Field(description="How well the retrieved passages support an answer (0..2).")
    grounded: bool = Field(
        description="False when the LLM's reply cited none of the runbook excerpts: then refused (require_citations,"
        " the default) or, with it off, an answer to flag as ungrounded. True for extractive answers."
    )
    collection: str


class SearchHit(BaseModel):
    source: str
    heading: str
    start_line: int
    end_line: int
    score: float
    relevance: float
    text: str


class SearchResponse(BaseModel):
    """``opsmith search --json``."""

    query: str
    collection: str
    mode: RetrievalMode
    results: list[SearchHit]


class Finding(BaseModel):
    severity: Literal["critical", "warning"]
    line: int
    issue: str
    fix: str
    file: str
    resource: str | None
    rule: str | None
    source: Literal["rules", "llm"]


class SkippedPath(BaseModel):
    path: str
    reason: str


class ReviewSummary(BaseModel):
    critical: int
    warning: int
    failed: bool = Field(description="A finding is at or above fail_on (the CLI's exit status 1).")
    fail_on: str
    files: list[str]
    skipped: list[SkippedPath]
    warnings: list[str]


class ReviewResponse(BaseModel):
    """``opsmith review --json``, plus a summary."""

    security: list[Finding]
    cost: list[Finding]
    correctness: list[Finding]
    summary: ReviewSummary


class CollectionItem(BaseModel):
    name: str
    points: int
    embedder: str | None
    dimension: int | None


class CollectionsResponse(BaseModel):
    location: str
    default_collection: str
    collections: list[CollectionItem]


class SourceItem(BaseModel):
    source: str
    chunks: int


class SourcesResponse(BaseModel):
    collection: str
    sources: list[SourceItem]


class SourceSection(BaseModel):
    heading: str
    start_line: int
    end_line: int
    text: str


class SourceResponse(BaseModel):
    collection: str
    source: str
    title: str | None
    sections: list[SourceSection]


class JobProgress(BaseModel):
    files_done: int
    files_total: int
    chunks_done: int
    chunks_total: int


class JobModel(BaseModel):
    id: str
    kind: Literal["ingest"]
    status: Literal["queued", "running", "succeeded", "failed"]
    collection: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    progress: JobProgress
    report: dict[str, Any] | None = Field(description="What `opsmith ingest --json` reports, once succeeded.")
    error: str | None


class JobResponse(BaseModel):
    job: JobModel


class JobsResponse(BaseModel):
    jobs: list[JobModel]


class InfoResponse(BaseModel):
    version: str
    collection: str
    provider: str
    model: str | None
    retrieval_mode: RetrievalMode
    vector_store: str = Field(description="'qdrant' (embedded), 'qdrant server' or 'edge' (Qdrant Edge, in-process).")
    auth_required: bool


class Problem(BaseModel):
    """An RFC 9457 problem document; ``detail`` is the CLI's one-line message."""

    type: str
    title: str
    status: int
    detail: str
    request_id: str | None = None


class AlertAnswer(BaseModel):
    alertname: str
    fingerprint: str | None
    status: str
    question: str = Field(description="What was asked of the runbooks, built from the alert.")
    runbook: str | None = Field(description="The indexed runbook the alert's runbook_url points at, if any.")
    answer: AskResponse


class AlertsResponse(BaseModel):
    alerts: list[AlertAnswer] = Field(description="One answer per firing alert.")
    resolved: int = Field(description="Resolved alerts in the payload (not answered).")
    notified: bool | None = Field(description="Whether the webhook took the message; null when none is configured.")
    notify_error: str | None
