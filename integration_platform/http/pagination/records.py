"""Where an endpoint's records sit in a response: the one rule.

The paginators read each page's records with it, and the loader derives its SQL from the same
rule (`landing/loader/locate.py`), so what the extraction counts and what the loader reads
agree by construction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from integration_platform.http.errors import ResponseShapeError
from integration_platform.http.pagination.paths import kind_of, path_keys, place, select, step
from integration_platform.specs.models import PaginationSpec, RelayPagination, SinglePage

RecordsShape = Literal["list", "list_or_object", "connection"]


@dataclass(frozen=True)
class RecordsRule:
    """The records of a response body are found at `path` (a dotted path, "" for the body
    itself), held as `shape` says:

    - `list`: the value there is the list of records (every paginated endpoint);
    - `list_or_object`: a list, or a single object that is one record (an endpoint of one
      request);
    - `connection`: a GraphQL Relay connection, whose records are its `edges[].node`, or its
      `nodes` when it has no `edges`.
    """

    path: str
    shape: RecordsShape = "list"

    @property
    def keys(self) -> list[str | int]:
        """The path's keys and list indexes, from the body down."""
        return path_keys(self.path)

    def records(self, body: Any) -> list[Any]:
        """The records of one response body; a ResponseShapeError says what was there instead."""
        if self.shape == "connection":
            return self._nodes(self.connection(body))
        found = select(body, self.path)
        if self.shape == "list_or_object" and isinstance(found, Mapping):
            return [found]
        if not isinstance(found, list):
            raise ResponseShapeError(
                f"expected a list of records at {place(self.keys)}, but found "
                f"{kind_of(found)}: set the endpoint's `records` to the path of the list "
                '("" when the body itself is the list)'
            )
        return found

    def connection(self, body: Any) -> Mapping[str, Any]:
        """The Relay connection object at the path (a `connection` rule)."""
        path = self.path
        node, done = body, list[str | int]()
        for key in [*self.keys, None]:
            if node is None:
                raise ResponseShapeError(
                    f"the GraphQL data is null at {place(done)}, so the connection {path!r} "
                    "cannot be read: the API failed to resolve that field (a partial error: "
                    "see the response's `errors`) or the object no longer exists. Retry later; "
                    "if it persists, report it to the API's owner"
                )
            if key is not None:
                node = step(node, key, done, path)
                done.append(key)
        if not isinstance(node, Mapping):
            raise ResponseShapeError(
                f"expected a Relay connection object at {path!r}, "
                f"but found {kind_of(node)}: check connection_path in the spec"
            )
        return node

    def _nodes(self, connection: Mapping[str, Any]) -> list[Any]:
        if "edges" not in connection and isinstance(connection.get("nodes"), list):
            nodes: list[Any] = connection["nodes"]
        else:
            edges = select(connection, "edges")
            if not isinstance(edges, list):
                raise ResponseShapeError(
                    f"expected a list at '{self.path}.edges', but found {kind_of(edges)}"
                )
            nodes = [None if edge is None else select(edge, "node") for edge in edges]
        if any(node is None for node in nodes):
            raise ResponseShapeError(
                f"the connection {self.path!r} holds null nodes: the API failed to resolve some "
                "records (see the response's `errors`). Retry later, or report it to the API's "
                "owner"
            )
        return nodes


def records_rule(pagination: PaginationSpec, records_path: str) -> RecordsRule:
    """The rule for an endpoint: its `records` path, except that a Relay connection says itself
    where its records are; one request may answer with a single object."""
    if isinstance(pagination, RelayPagination):
        return RecordsRule(pagination.connection_path, "connection")
    if isinstance(pagination, SinglePage):
        return RecordsRule(records_path, "list_or_object")
    return RecordsRule(records_path, "list")
