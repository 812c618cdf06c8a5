"""The opsmith exception tree.

Every error a user can cause or fix derives from :class:`OpsmithError`. Messages
say what went wrong and end with the remedy, so the CLI can print ``str(err)`` as
one line and the HTTP API can return it as a problem document unchanged.

::

    OpsmithError
    ├── ConfigError                 bad or missing settings
    ├── InputError                  bad user input (paths, questions, files)
    │   ├── PathNotFoundError
    │   ├── PathNotAllowedError     outside the folders the service may read
    │   ├── EmptyQuestionError
    │   └── InvalidCollectionNameError
    ├── StoreError                  the vector store
    │   ├── CollectionNotFoundError
    │   ├── EmbedderMismatchError
    │   ├── IndexLockedError
    │   ├── IndexMissingError       the local index folder was deleted under a running process
    │   ├── SourceNotFoundError
    │   └── StoreUnavailableError
    ├── EmbedderError               the embedding model cannot be loaded
    ├── TemplateError               a prompt template is missing or invalid
    ├── ReviewFailedError           `opsmith review` could not finish (exit 2: 1 means findings)
    ├── StructuredOutputError       the model never produced valid structured output
    │   └── TruncatedOutputError    the output was cut off by the token limit
    └── ProviderError               an LLM provider call failed
        ├── ProviderAuthError       401/403: the key is wrong or missing
        ├── ProviderRateLimitError  429 after retries
        ├── ProviderTimeoutError    no answer within the timeout, after retries
        │   └── ProviderDeadlineError  the call's total deadline (llm_deadline) passed
        ├── ProviderUnavailableError  unreachable or 5xx after retries
        └── ProviderResponseError   an answer we cannot use
    ServiceError                    the HTTP service refuses a request (opsmith serve)
    ├── AuthenticationError         no or unknown bearer token (401)
    ├── PermissionDeniedError       the token may not use this route (403)
    ├── RateLimitedError            the token's request budget is spent (429)
    ├── RequestTooLargeError        the body is over the size limit (413)
    ├── LimitExceededError          too many files, bytes or alerts for one request (413)
    ├── RequestTimeoutError         the body did not arrive within its deadline (408)
    ├── ServiceBusyError            no LLM slot or body budget free right now (503, Retry-After)
    └── JobNotFoundError            no background job with that id (404)
"""

from __future__ import annotations

from pathlib import Path

from opsmith._display import mask_url, mask_urls


class OpsmithError(Exception):
    """Base class. ``str(err)`` is a complete, one-line, remedy-first message."""

    #: Process exit status the CLI uses for this error.
    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(OpsmithError):
    """Settings are invalid or incomplete."""

    exit_code = 2


class InputError(OpsmithError):
    """The user's input (a path, a file, a question) cannot be used."""

    exit_code = 2


class PathNotFoundError(InputError):
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        super().__init__(f"Path not found: {path} — check the spelling or pass an existing file or folder")


class PathNotAllowedError(InputError):
    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        super().__init__(f"Cannot ingest {path!r}: {reason}")


class EmptyQuestionError(InputError):
    def __init__(self) -> None:
        super().__init__('The question is empty — pass some text, e.g. opsmith ask "why is etcd slow?"')


class InvalidCollectionNameError(InputError):
    def __init__(self, name: str, rule: str) -> None:
        self.name = name
        shown = name if len(name) <= 40 else name[:40] + "…"
        super().__init__(
            f"Collection name {shown!r} is not allowed ({rule})"
            " — use letters, digits, '.', '_' or '-', starting with a letter or digit, e.g. --collection runbooks"
        )


class StoreError(OpsmithError):
    """The vector store cannot serve the request."""


class CollectionNotFoundError(StoreError):
    def __init__(self, collection: str, paths_hint: str = "PATH") -> None:
        self.collection = collection
        super().__init__(
            f"No index named '{collection}' — run `opsmith ingest {paths_hint} --collection {collection}` first"
        )


class EmbedderMismatchError(StoreError):
    def __init__(self, collection: str, indexed: str, requested: str) -> None:
        self.collection = collection
        self.indexed = indexed
        self.requested = requested
        super().__init__(
            f"Collection '{collection}' was embedded with {indexed} but the current embedder is {requested}"
            f" — set OPSMITH_EMBEDDER to {indexed.split(' (')[0]!r} or re-ingest into a new collection"
        )


class IndexLockedError(StoreError):
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        super().__init__(
            f"The local index at {path} is open in another opsmith process (an embedded index is single-process)"
            " — stop the other process (or ingest through its `opsmith serve` API), or run a Qdrant server"
            " and set OPSMITH_QDRANT_URL"
        )


class IndexMissingError(StoreError):
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        super().__init__(
            f"The local index folder {path} was deleted or replaced while this process was running"
            " — restart the process (e.g. `opsmith serve`) to open a new index there, then ingest again"
        )


class SourceNotFoundError(StoreError):
    def __init__(self, collection: str, source: str) -> None:
        self.collection = collection
        self.source = source
        super().__init__(
            f"No runbook '{source}' in collection '{collection}' — list the collection's sources for the"
            f" indexed names, or run `opsmith ingest PATH --collection {collection}` to index it"
        )


class StoreUnavailableError(StoreError):
    def __init__(self, url: str, detail: str) -> None:
        # Masked: the message is printed and returned over HTTP, and a URL may hold a password.
        self.url = mask_url(url)
        super().__init__(
            f"Cannot reach Qdrant at {self.url} ({mask_urls(detail)})"
            " — check OPSMITH_QDRANT_URL and that the server is up"
        )


class EmbedderError(OpsmithError):
    """The embedding model cannot be loaded or run."""

    exit_code = 2


class TemplateError(OpsmithError):
    """A prompt template cannot be found, parsed or rendered."""

    exit_code = 2


class ReviewFailedError(OpsmithError):
    """``opsmith review`` could not finish. Exit 2, never 1: to CI, 1 means "the Terraform has findings"."""

    exit_code = 2


class StructuredOutputError(OpsmithError):
    """Every attempt to get schema-valid output failed.

    Carries ``attempts`` (how many calls were made), ``last_output`` (the last raw text),
    ``errors`` (the last validation errors) and ``usage`` (tokens over all attempts).
    """

    def __init__(
        self, message: str, *, attempts: int, last_output: str, errors: list[str], usage: object = None
    ) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.last_output = last_output
        self.errors = errors
        self.usage = usage


class TruncatedOutputError(StructuredOutputError):
    """The model hit its token limit, so the output is incomplete."""


class ProviderError(OpsmithError):
    """An LLM provider call failed. ``provider`` names it, ``status`` is the HTTP status if any."""

    def __init__(self, message: str, *, provider: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status


class ProviderAuthError(ProviderError):
    pass


class ProviderRateLimitError(ProviderError):
    pass


class ProviderTimeoutError(ProviderError):
    pass


class ProviderDeadlineError(ProviderTimeoutError):
    """The whole call, retries and streamed answer included, ran past ``deadline`` seconds."""

    def __init__(self, message: str, *, provider: str = "", deadline: float, status: int | None = None) -> None:
        super().__init__(message, provider=provider, status=status)
        self.deadline = deadline


class ProviderUnavailableError(ProviderError):
    pass


class ProviderResponseError(ProviderError):
    pass


class ServiceError(OpsmithError):
    """The HTTP service refuses a request; the message goes back as the problem's ``detail``."""


class AuthenticationError(ServiceError):
    def __init__(self, reason: str) -> None:
        super().__init__(
            f"{reason} — send 'Authorization: Bearer TOKEN' with a token from OPSMITH_API_TOKENS on the server"
        )


class PermissionDeniedError(ServiceError):
    def __init__(self, action: str) -> None:
        super().__init__(
            f"This token is read-only and cannot {action} — use a token listed without ':read' in OPSMITH_API_TOKENS"
        )


class RateLimitedError(ServiceError):
    def __init__(self, limit: int, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(
            f"Rate limit of {limit} requests per minute reached — retry in {max(1, round(retry_after))} s"
            " or raise OPSMITH_RATE_LIMIT_PER_MINUTE on the server"
        )


class RequestTooLargeError(ServiceError):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"Request body is larger than {limit:,} bytes — send fewer or smaller files,"
            " or raise OPSMITH_MAX_REQUEST_BYTES on the server"
        )


class LimitExceededError(ServiceError):
    """One request asks for more work than a per-request limit allows (files, bytes, alerts)."""

    def __init__(self, what: str, *, limit: int, setting: str, advice: str) -> None:
        self.limit = limit
        self.setting = setting
        super().__init__(f"{what}, over the limit of {limit:,} — {advice}, or raise {setting} on the server")


class RequestTimeoutError(ServiceError):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(
            f"The request body did not arrive within {seconds:g} s — send it in one go,"
            " or raise OPSMITH_BODY_READ_TIMEOUT on the server"
        )


class ServiceBusyError(ServiceError):
    """Every slot of a shared resource is taken; ``retry_after`` is a hint in seconds."""

    def __init__(self, what: str, *, setting: str, retry_after: float = 5.0) -> None:
        self.retry_after = retry_after
        self.setting = setting
        super().__init__(f"{what} — retry in {max(1, round(retry_after))} s, or raise {setting} on the server")


class JobNotFoundError(ServiceError):
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(
            f"No job '{job_id}' — jobs live in the server's memory until it restarts; list them with GET /v1/jobs"
        )
