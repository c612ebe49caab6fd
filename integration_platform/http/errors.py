"""What can go wrong talking to an API, as exceptions that say what happened and what to do."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import httpx


class ExtractionError(Exception):
    """Base of every error the HTTP engine raises on purpose."""


class AuthError(ExtractionError):
    """Credentials were refused (after one refresh, for tokens): permanent, never retried."""


class PermanentHTTPError(ExtractionError):
    """A status that retrying cannot fix (400, 403, 404, 422, 401 after refresh, ...)."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class TransientHTTPError(ExtractionError):
    """A failure worth retrying: 429/5xx, timeouts, dropped connections, truncated bodies."""

    def __init__(
        self, message: str, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


class ConnectionRefused(TransientHTTPError):
    """Nothing listens at the address: the connection was refused before any byte went out."""

    def __init__(self, message: str, origin: str) -> None:
        super().__init__(message)
        self.origin = origin


def is_connection_refused(exc: BaseException) -> bool:
    """Whether a transport error comes from a refused connection (httpx wraps the OSError)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ConnectionRefusedError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


@dataclass(frozen=True)
class Attempt:
    """One try of a request: when, how long, and how it ended."""

    number: int
    outcome: str
    elapsed_seconds: float
    waited_seconds: float = 0.0


@dataclass
class RequestFailed(ExtractionError):
    """A request that failed for good: the request (secrets redacted) and each attempt's outcome."""

    request: str
    attempts: list[Attempt] = field(default_factory=list)


@dataclass
class RetriesExhausted(RequestFailed):
    """Every attempt failed with an error worth retrying (429, 5xx, timeouts, ...)."""

    # The retry setting that ended the tries: the one to raise if the API recovers slowly.
    limit: str = "retry.max_attempts"

    def __str__(self) -> str:
        history = "; ".join(
            f"#{a.number} {a.outcome} after {a.elapsed_seconds:.2f}s" for a in self.attempts
        )
        return (
            f"{self.request} failed after {len(self.attempts)} attempts ({history}). "
            f"The API kept failing: check its status, or raise {self.limit}."
        )


@dataclass
class SourceUnreachable(RequestFailed):
    """Nothing answers at the source's address (connections refused): retrying cannot help
    until the API is started or base_url is fixed, so it is not retried further."""

    source: str = ""
    origin: str = ""

    def __str__(self) -> str:
        hint = (
            "if this is the sandbox, is it up? (`make sandbox`)"
            if is_loopback(self.origin)
            else "check the source's base_url, and that the API is up and reachable from here"
        )
        return (
            f"{self.source}: nothing answers at {self.origin} (connection refused, "
            f"{len(self.attempts)} attempt{'s' if len(self.attempts) != 1 else ''}); {hint}"
        )


def is_loopback(url: str) -> bool:
    """Whether a URL points at this machine (where the sandbox runs)."""
    host = httpx.URL(url).host
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class CircuitOpenError(ExtractionError):
    """The source failed too often in a row; calls are refused until the cool-down ends."""


class PaginationLoopError(ExtractionError):
    """The API handed back a cursor or page it had already given: following it would loop."""


class GraphQLResponseError(ExtractionError):
    """An `errors` array came back (HTTP 200 included) and the endpoint does not accept it."""

    def __init__(self, message: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.errors = errors


class ResponseShapeError(ExtractionError):
    """The response parsed, but not into the shape the spec promised (an API that changed)."""
