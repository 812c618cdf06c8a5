"""Every public JSON shape opsmith returns, defined once.

The CLI's ``--json`` output, the HTTP API's responses (FastAPI's ``response_model``, and so
``docs/openapi.json``) and the MCP tools' output schemas are all these ``TypedDict``\\s, so a
script can move between the three without changing its parsing. ``tests/test_skins.py``
sends the same request through each and compares the payloads.

They are ``TypedDict``\\s rather than pydantic models: the library builds plain dicts (cheap on
the hot path, ``json.dumps`` as they are), mypy checks them, and pydantic validates them and
derives their JSON schema, field descriptions included, wherever a skin needs one.

Where the HTTP API says more than the CLI it extends the CLI's shape, and only there:
``AskResponse`` adds the ``collection`` answered from to :class:`AskResult`, and
``ReviewResponse`` adds a ``summary`` to :class:`ReviewFindings`.

Names are the OpenAPI component names, which clients generated from ``docs/openapi.json`` use;
where one matches a library class (``Citation``, ``Finding``, ``IngestReport``), the schema is
that class's JSON form. Request bodies, which only the HTTP API takes, are in
:mod:`opsmith.serve.models`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from typing_extensions import TypedDict

from opsmith.config import RetrievalMode

__all__ = [
    "AlertAnswer",
    "AlertsResponse",
    "AskResponse",
    "AskResult",
    "Citation",
    "CollectionItem",
    "CollectionsResponse",
    "Command",
    "Finding",
    "InfoResponse",
    "IngestReport",
    "JobModel",
    "JobProgress",
    "JobResponse",
    "JobsResponse",
    "Problem",
    "ReviewFindings",
    "ReviewResponse",
    "ReviewSummary",
    "SearchHit",
    "SearchResponse",
    "SkippedPath",
    "SourceItem",
    "SourceResponse",
    "SourceSection",
    "SourcesResponse",
]

# Runbooks: search and ask ----------------------------------------------------------------------


class SearchHit(TypedDict):
    """One ranked chunk of a runbook."""

    source: Annotated[str, Field(description="The runbook's path, relative to the folder that was ingested.")]
    heading: Annotated[str, Field(description="Heading path of the chunk, e.g. 'Disk full > Diagnosis'.")]
    start_line: int
    end_line: int
    score: Annotated[float, Field(description="Ranking score in the retrieval mode (RRF fusion for hybrid).")]
    relevance: Annotated[float, Field(description="Cosine similarity to the query, comparable across modes.")]
    text: str


class SearchResponse(TypedDict):
    """The best chunks for a query, best first (``opsmith search --json``)."""

    query: str
    collection: str
    mode: RetrievalMode
    results: list[SearchHit]


class Citation(TypedDict):
    """A cited (or retrieved) runbook passage."""

    source: str
    heading: str
    start_line: int
    end_line: int
    score: float
    relevance: float
    number: Annotated[int, Field(description="The [n] used in the answer.")]


class Command(TypedDict):
    """A command from a quoted runbook section, to copy and run."""

    text: Annotated[str, Field(description="The command, whole (continued lines joined, prompt removed).")]
    source: Annotated[str, Field(description="The runbook it is from.")]
    line: Annotated[int, Field(description="The runbook line it starts on.")]


class AskResult(TypedDict):
    """A grounded answer or an honest refusal (``opsmith ask --json``, the MCP tool ``ask_runbooks``)."""

    question: str
    answer: str
    refused: Annotated[bool, Field(description="True when the runbooks do not cover the question.")]
    citations: list[Citation]
    provider: Annotated[str, Field(description="'none' for the extractive (quoting) answer, else the LLM provider.")]
    timings_ms: dict[str, float]
    model: str | None
    dropped_citations: Annotated[list[int], Field(description="Citation numbers the model made up (removed).")]
    usage: dict[str, int]
    error: Annotated[str | None, Field(description="Why the LLM call failed (the answer then quotes passages).")]
    retrieved: list[Citation]
    support: Annotated[float, Field(description="How well the retrieved passages support an answer (0..2).")]
    grounded: Annotated[
        bool,
        Field(
            description="False when the LLM's reply cited none of the runbook excerpts: then refused"
            " (require_citations, the default) or, with it off, an answer to flag as ungrounded. True for extractive"
            " answers."
        ),
    ]
    commands: Annotated[
        list[Command], Field(description="The commands of the quoted (or cited) runbook sections, in order.")
    ]
    not_covered: Annotated[
        list[str],
        Field(
            description="The question's specific terms (flags, tools, identifiers) that no runbook mentions: the"
            " answer covers the topic but not these."
        ),
    ]


class AskResponse(AskResult):
    """``opsmith ask --json``, plus the collection it answered from (``POST /v1/ask``)."""

    collection: str


# Runbooks: collections and sources -------------------------------------------------------------


class CollectionItem(TypedDict):
    name: str
    points: Annotated[int, Field(description="Number of chunks.")]
    embedder: str | None
    dimension: int | None


class CollectionsResponse(TypedDict):
    """The collections in the store (``opsmith collections list --json``)."""

    location: Annotated[str, Field(description="Local index folder or Qdrant server URL.")]
    default_collection: Annotated[str, Field(description="The collection tools use when none is given.")]
    collections: list[CollectionItem]


class SourceItem(TypedDict):
    source: str
    chunks: int


class SourcesResponse(TypedDict):
    """The runbooks indexed in a collection."""

    collection: str
    sources: list[SourceItem]


class SourceSection(TypedDict):
    """One indexed chunk of a runbook, its overlap with the previous chunk removed."""

    heading: str
    start_line: Annotated[int, Field(description="First line of the chunk in the original file (1-based).")]
    end_line: Annotated[int, Field(description="Last line of the chunk in the original file.")]
    text: str


class SourceResponse(TypedDict):
    """A runbook as indexed: its chunks in order, for opening a citation."""

    collection: str
    source: str
    title: str | None
    sections: list[SourceSection]


# Runbooks: ingest ------------------------------------------------------------------------------


class SkippedPath(TypedDict):
    """A path that was passed over, and why."""

    path: str
    reason: str


class IngestReport(TypedDict):
    """What one ingest did (``opsmith ingest --json``); counts are in files, except ``chunks``."""

    collection: str
    added: int
    changed: int
    unchanged: int
    removed: int
    kept_outside: Annotated[
        int, Field(description="Indexed runbooks gone from disk but not under the given paths: kept.")
    ]
    chunks: Annotated[int, Field(description="Chunks embedded and written by this run.")]
    seconds: float
    skipped: list[SkippedPath]
    warnings: Annotated[list[SkippedPath], Field(description="Files ingested with a caveat, and what it is.")]


class JobProgress(TypedDict):
    files_done: int
    files_total: int
    chunks_done: int
    chunks_total: int


class JobModel(TypedDict):
    """One background ingest."""

    id: str
    kind: Literal["ingest"]
    status: Literal["queued", "running", "succeeded", "failed"]
    collection: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    progress: JobProgress
    report: Annotated[IngestReport | None, Field(description="What `opsmith ingest --json` reports, once succeeded.")]
    error: str | None


class JobResponse(TypedDict):
    job: JobModel


class JobsResponse(TypedDict):
    jobs: list[JobModel]


# Terraform -------------------------------------------------------------------------------------


class Finding(TypedDict):
    """One problem at one line of one file."""

    severity: Literal["critical", "warning"]
    line: int
    issue: str
    fix: str
    file: Annotated[str, Field(description="The path as given (relative to the folder or module reviewed).")]
    resource: Annotated[str | None, Field(description="Block address, e.g. aws_s3_bucket.logs.")]
    rule: Annotated[str | None, Field(description="Rule id (OPS-S003...); null for LLM findings.")]
    source: Literal["rules", "llm"]


class ReviewFindings(TypedDict):
    """Findings grouped by category, sorted by file and line (``opsmith review --json``)."""

    security: list[Finding]
    cost: list[Finding]
    correctness: list[Finding]


class ReviewSummary(TypedDict):
    """Counts and the CI verdict of one review."""

    critical: int
    warning: int
    failed: Annotated[bool, Field(description="A finding is at or above fail_on (the CLI's exit status 1).")]
    fail_on: Literal["critical", "warning", "none"]
    files: Annotated[list[str], Field(description="The files reviewed.")]
    skipped: list[SkippedPath]
    warnings: list[str]


class ReviewResponse(ReviewFindings):
    """``opsmith review --json``, plus a summary (``POST /v1/review``)."""

    summary: ReviewSummary


# Incidents -------------------------------------------------------------------------------------


class AlertAnswer(TypedDict):
    """One firing alert's outcome: the question asked, the runbook it matched and the answer."""

    alertname: str
    fingerprint: str | None
    status: str
    question: Annotated[str, Field(description="What was asked of the runbooks, built from the alert.")]
    runbook: Annotated[str | None, Field(description="The indexed runbook the alert's runbook_url points at, if any.")]
    answer: AskResponse


class AlertsResponse(TypedDict):
    """The runbook answers to one Alertmanager notification."""

    alerts: Annotated[list[AlertAnswer], Field(description="One answer per firing alert.")]
    resolved: Annotated[int, Field(description="Resolved alerts in the payload (not answered).")]
    notified: Annotated[
        bool | None, Field(description="Whether the webhook took the message; null when none is configured.")
    ]
    notify_error: str | None


# The service -----------------------------------------------------------------------------------


class InfoResponse(TypedDict):
    """What a server is: version, default collection, answer mode and whether auth is on."""

    version: str
    collection: str
    provider: str
    model: str | None
    retrieval_mode: RetrievalMode
    vector_store: Annotated[
        str, Field(description="'qdrant' (embedded), 'qdrant server' or 'edge' (Qdrant Edge, in-process).")
    ]
    auth_required: bool


class Problem(TypedDict):
    """An RFC 9457 problem document; ``detail`` is the CLI's one-line message."""

    type: str
    title: str
    status: int
    detail: str
    request_id: str | None
