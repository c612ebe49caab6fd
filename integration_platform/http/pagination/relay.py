"""GraphQL Relay connections: `first`/`after` variables, `pageInfo` says when to stop."""

from __future__ import annotations

from collections.abc import Mapping

from integration_platform.http.errors import ResponseShapeError
from integration_platform.http.pagination.base import Paginator
from integration_platform.http.pagination.records import records_rule
from integration_platform.http.pagination.request import PageRequest, PageResponse
from integration_platform.http.pagination.slots import GraphQLVariables, PageSlots
from integration_platform.specs.models import RelayPagination


class RelayPaginator(Paginator):
    """GraphQL Relay connections: records are `edges[].node` (or `nodes`) of the connection at
    connection_path inside `data`; `first`/`after` variables; ends when hasNextPage is false.
    The endpoint's `records` path is not used: the connection says where the records are."""

    def __init__(
        self, spec: RelayPagination, records_path: str, slots: PageSlots | None = None
    ) -> None:
        super().__init__(records_rule(spec, records_path), GraphQLVariables())
        self.spec = spec

    def first_request(self, base: PageRequest) -> PageRequest:
        return base.with_variables(**{self.spec.size_variable: self.spec.page_size})

    def next_request(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        if not self.records(response):
            return None
        connection = self.rule.connection(response.body)
        path = f"{self.spec.connection_path}.pageInfo"
        info = connection.get("pageInfo")
        if not isinstance(info, Mapping) or "hasNextPage" not in info:
            raise ResponseShapeError(
                f"{path!r} with hasNextPage is missing: select "
                "`pageInfo { hasNextPage endCursor }` on the connection in the query"
            )
        if not info["hasNextPage"]:
            return None
        cursor = info.get("endCursor")
        if not isinstance(cursor, str) or cursor == "":
            raise ResponseShapeError(
                f"{path!r} says hasNextPage but gives no endCursor ({cursor!r}): select "
                "`pageInfo { hasNextPage endCursor }` in the query"
            )
        return request.with_variables(**{self.spec.cursor_variable: cursor})
