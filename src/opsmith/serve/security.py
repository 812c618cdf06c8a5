"""Who may call the API, how often, and which server folders an ingest may read.

* Bearer tokens come from ``OPSMITH_API_TOKENS`` (``TOKEN`` or ``TOKEN:read``). Every request
  is compared with every token in constant time (:func:`hmac.compare_digest`, no early exit),
  so response timing says nothing about how much of a guess was right.
* Logs and metrics name a token by a short fingerprint of its hash, never by the token.
* The rate limit is a token bucket per token (per client address when auth is off).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pydantic import SecretStr

from opsmith.config import Settings
from opsmith.errors import AuthenticationError, ConfigError, PathNotAllowedError, RateLimitedError

__all__ = [
    "MIN_TOKEN_LENGTH",
    "ApiToken",
    "Authenticator",
    "RateLimiter",
    "auth_required",
    "is_loopback",
    "parse_tokens",
    "resolve_ingest_path",
]

#: Shorter tokens are refused at start-up: they can be guessed.
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class ApiToken:
    """One accepted token. ``id`` is safe to log; ``read_only`` tokens cannot ingest."""

    id: str
    secret: bytes
    read_only: bool = False


def parse_tokens(values: Sequence[SecretStr]) -> list[ApiToken]:
    """Tokens from settings; raises :class:`ConfigError` (without echoing them) when one is unusable."""
    tokens: list[ApiToken] = []
    for number, value in enumerate(values, start=1):
        raw = value.get_secret_value().strip()
        secret, _, scope = raw.partition(":")
        if scope not in ("", "read"):
            raise ConfigError(
                f"API token #{number} ends in an unknown scope (only ':read' is known)"
                " — fix OPSMITH_API_TOKENS: TOKEN or TOKEN:read, comma-separated"
            )
        if len(secret) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                f"API token #{number} is shorter than {MIN_TOKEN_LENGTH} characters"
                " — generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        fingerprint = hashlib.sha256(secret.encode()).hexdigest()[:8]
        tokens.append(ApiToken(id=f"tok-{fingerprint}", secret=secret.encode(), read_only=scope == "read"))
    return tokens


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the service on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: assume it is reachable from elsewhere


def auth_required(settings: Settings, host: str) -> bool:
    """``api_auth``: on, off, or auto (on when tokens are set or ``host`` is not loopback)."""
    if settings.api_auth != "auto":
        return settings.api_auth == "on"
    return bool(settings.api_tokens) or not is_loopback(host)


class Authenticator:
    """Checks the ``Authorization`` header against the configured tokens."""

    def __init__(self, tokens: Sequence[ApiToken], *, required: bool) -> None:
        if required and not tokens:
            raise ConfigError(
                "Authentication is on but no API token is set — set OPSMITH_API_TOKENS (comma-separated),"
                " or bind 127.0.0.1 for local use"
            )
        self.tokens = list(tokens)
        self.required = required

    def identify(self, authorization: str | None) -> ApiToken | None:
        """The caller's token; None when auth is off. Raises :class:`AuthenticationError`."""
        if not self.required:
            return None
        if not authorization:
            raise AuthenticationError("No bearer token")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise AuthenticationError("The Authorization header is not 'Bearer TOKEN'")
        given = credentials.strip().encode()
        found: ApiToken | None = None
        for token in self.tokens:  # every token is compared: no early exit on a match
            if hmac.compare_digest(given, token.secret):
                found = token
        if found is None:
            raise AuthenticationError("Unknown bearer token")
        return found


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests, refilled continuously; 0 turns it off."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens left, last refill time)
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Spend one request for ``key``; raises :class:`RateLimitedError` when none is left."""
        if self.per_minute <= 0:
            return
        now = self._clock()
        rate = self.per_minute / 60.0
        with self._lock:
            left, last = self._buckets.get(key, (float(self.per_minute), now))
            left = min(float(self.per_minute), left + (now - last) * rate)
            if left < 1.0:
                self._buckets[key] = (left, now)
                raise RateLimitedError(self.per_minute, (1.0 - left) / rate)
            self._buckets[key] = (left - 1.0, now)
            if len(self._buckets) > 10_000:
                self._forget_full(now, rate)

    def _forget_full(self, now: float, rate: float) -> None:
        # A bucket that has refilled completely carries no information: drop it to bound memory.
        full = [k for k, (left, last) in self._buckets.items() if left + (now - last) * rate >= self.per_minute]
        for key in full:
            del self._buckets[key]


def resolve_ingest_path(given: str, roots: Sequence[Path]) -> Path:
    """The real path of a server-side ingest request, refused unless inside one of ``roots``.

    ``..`` components are refused outright; the rest is checked after resolving symlinks, so
    a link that leads out of a root is refused too. Existence is checked only after
    containment, so the API cannot be used to probe for files elsewhere.
    """
    if not roots:
        raise PathNotAllowedError(
            given,
            "this server reads no server-side folders — upload the files instead, or set OPSMITH_INGEST_ROOTS"
            " on the server",
        )
    if not given or "\x00" in given:
        raise PathNotAllowedError(given, "the path is empty or malformed — name a folder under an allowed root")
    if ".." in PurePosixPath(given).parts:
        raise PathNotAllowedError(given, "'..' is not allowed — give the folder's full path under an allowed root")
    candidate = Path(given)
    if not candidate.is_absolute():
        raise PathNotAllowedError(given, "the path is relative — give an absolute path under an allowed root")
    real_roots = [root.expanduser().resolve() for root in roots]
    real = candidate.resolve()
    if not any(real == root or real.is_relative_to(root) for root in real_roots):
        shown = ", ".join(str(root) for root in roots)
        raise PathNotAllowedError(given, f"it is outside the allowed roots ({shown}) — move it under one of them")
    if not real.exists():
        from opsmith.errors import PathNotFoundError

        raise PathNotFoundError(given)
    return real
