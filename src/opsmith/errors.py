"""The opsmith exception tree.

Every error a user can cause or fix derives from :class:`OpsmithError`. Messages
say what went wrong and end with the remedy, so the CLI can print ``str(err)`` as
one line and the HTTP API can return it as a problem document unchanged.

::

    OpsmithError
    ├── ConfigError                 bad or missing settings
    ├── InputError                  bad user input (paths, questions, files)
    │   ├── PathNotFoundError
    │   └── EmptyQuestionError
    ├── StoreError                  the vector store
    │   ├── CollectionNotFoundError
    │   ├── EmbedderMismatchError
    │   ├── IndexLockedError
    │   └── StoreUnavailableError
    ├── EmbedderError               the embedding model cannot be loaded
    ├── TemplateError               a prompt template is missing or invalid
    ├── StructuredOutputError       the model never produced valid structured output
    │   └── TruncatedOutputError    the output was cut off by the token limit
    └── ProviderError               an LLM provider call failed
        ├── ProviderAuthError       401/403: the key is wrong or missing
        ├── ProviderRateLimitError  429 after retries
        ├── ProviderTimeoutError    no answer within the timeout, after retries
        ├── ProviderUnavailableError  unreachable or 5xx after retries
        └── ProviderResponseError   an answer we cannot use
"""

from __future__ import annotations

from pathlib import Path


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


class EmptyQuestionError(InputError):
    def __init__(self) -> None:
        super().__init__('The question is empty — pass some text, e.g. opsmith ask "why is etcd slow?"')


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
            f"The local index at {path} is open in another opsmith process (Qdrant local mode is single-process)"
            " — stop the other process, or run a Qdrant server and set OPSMITH_QDRANT_URL"
        )


class StoreUnavailableError(StoreError):
    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        super().__init__(
            f"Cannot reach Qdrant at {url} ({detail}) — check OPSMITH_QDRANT_URL and that the server is up"
        )


class EmbedderError(OpsmithError):
    """The embedding model cannot be loaded or run."""

    exit_code = 2


class TemplateError(OpsmithError):
    """A prompt template cannot be found, parsed or rendered."""

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


class ProviderUnavailableError(ProviderError):
    pass


class ProviderResponseError(ProviderError):
    pass
