"""What can go wrong talking to an API, as exceptions that say what happened and what to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


@dataclass(frozen=True)
class Attempt:
    """One try of a request: when, how long, and how it ended."""

    number: int
    outcome: str
    elapsed_seconds: float
    waited_seconds: float = 0.0


@dataclass
class RetriesExhausted(ExtractionError):
    """Every attempt failed: carries the request (secrets redacted) and each attempt's outcome."""

    request: str
    attempts: list[Attempt] = field(default_factory=list)

    def __str__(self) -> str:
        history = "; ".join(
            f"#{a.number} {a.outcome} after {a.elapsed_seconds:.2f}s" for a in self.attempts
        )
        return (
            f"{self.request} failed after {len(self.attempts)} attempts ({history}). "
            "The API kept failing: check its status, or raise retry.max_attempts."
        )


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
