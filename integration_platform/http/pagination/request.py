"""What a paginator asks for and what comes back: plain data, so a request can be a checkpoint."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

ParamValue = str | int | float | bool


@dataclass(frozen=True, eq=False)
class PageRequest:
    """One request to make; plain data, so it can be a checkpoint.

    `path` is relative to base_url or an absolute URL (from a next URL or a Link header). A
    followed URL's query string is moved into `params`, because httpx *replaces* a URL's query
    whenever `params=` is given. The one exception: a query repeating a key cannot be a mapping,
    so it stays in `path` with empty `params`; send `params=request.params or None` to keep it.
    Two requests are equal when they would send the same thing (same fingerprint).
    """

    path: str
    params: Mapping[str, ParamValue] = field(default_factory=dict)
    variables: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        # Private copies: a caller mutating its dict afterwards must not change a checkpoint.
        object.__setattr__(self, "params", dict(self.params))
        if self.variables is not None:
            object.__setattr__(self, "variables", dict(self.variables))

    def with_params(self, **changes: ParamValue | None) -> PageRequest:
        """A copy with these query parameters set; a value of None removes the parameter."""
        params = {**self.params, **changes}
        return replace(self, params={k: v for k, v in params.items() if v is not None})

    def with_variables(self, **changes: Any) -> PageRequest:
        """A copy with these GraphQL variables set (None is a real GraphQL value: null)."""
        return replace(self, variables={**(self.variables or {}), **changes})

    def fingerprint(self) -> str:
        """A stable hash of what would be sent: equal requests, equal fingerprints."""
        return digest({"path": self.path, "params": self.params, "variables": self.variables})

    def to_checkpoint(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "params": dict(self.params),
            "variables": None if self.variables is None else dict(self.variables),
        }

    @classmethod
    def from_checkpoint(cls, checkpoint: Mapping[str, Any]) -> PageRequest:
        path, params = checkpoint.get("path"), checkpoint.get("params", {})
        variables = checkpoint.get("variables")
        if (
            not isinstance(path, str)
            or not isinstance(params, Mapping)
            or not all(isinstance(v, ParamValue) for v in params.values())
            or not (variables is None or isinstance(variables, Mapping))
        ):
            raise ValueError(
                f"not a pagination checkpoint: {checkpoint!r}. Expected {{'path': str, "
                "'params': {name: scalar}, 'variables': {...} or None}; delete the checkpoint "
                "to start the endpoint from its first page"
            )
        return cls(path=path, params=params, variables=variables)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PageRequest):
            return NotImplemented
        return self.fingerprint() == other.fingerprint()

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def describe(self) -> str:
        """The request in one short line, for error messages."""
        parts = [f"{k}={v}" for k, v in sorted(self.params.items())]
        parts += [f"${k}={v!r}" for k, v in sorted((self.variables or {}).items())]
        text = f"{self.path} with {', '.join(parts)}" if parts else self.path
        return text if len(text) <= 300 else text[:297] + "..."


@dataclass(frozen=True)
class PageResponse:
    """What came back for one PageRequest.

    `body` is the parsed JSON (for GraphQL: the `data` object). Header lookups are
    case-insensitive. `url`, when the engine knows it, is the URL the page was actually served
    from: relative next links resolve against it (RFC 3986), as a browser would.
    """

    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    url: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.headers, httpx.Headers):
            object.__setattr__(self, "headers", httpx.Headers(self.headers))


def digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
