"""The request bodies of the HTTP API (and so its OpenAPI schema for them); unknown fields are refused.

The responses are the shapes every skin shares, in :mod:`opsmith.schemas`; the Alertmanager
payload is :class:`opsmith.integrations.alertmanager.AlertmanagerPayload`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from opsmith.config import check_collection_name
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
