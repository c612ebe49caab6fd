"""Where a paginator reads and writes its page parameters: query parameters or GraphQL variables."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from integration_platform.http.pagination.request import PageRequest, ParamValue


class PageSlots(ABC):
    """Where a paginator reads and writes its page parameters (offset, page, cursor, size)."""

    what = "parameter"

    @abstractmethod
    def get(self, request: PageRequest, name: str) -> Any:
        """The value of `name` in the request, or None."""

    @abstractmethod
    def set(self, request: PageRequest, **changes: ParamValue) -> PageRequest:
        """A copy of the request with these values set."""

    def whole_number(self, request: PageRequest, name: str, default: int) -> int:
        value = self.get(request, name)
        value = default if value is None else value
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"request {self.what} {name}={value!r} is not a whole number"
            ) from None


class QueryParams(PageSlots):
    """REST: page parameters are query parameters."""

    def get(self, request: PageRequest, name: str) -> Any:
        return request.params.get(name)

    def set(self, request: PageRequest, **changes: ParamValue) -> PageRequest:
        return request.with_params(**changes)


class GraphQLVariables(PageSlots):
    """GraphQL: page parameters are variables of the query (`allPeople(page: $page)`)."""

    what = "variable"

    def get(self, request: PageRequest, name: str) -> Any:
        return (request.variables or {}).get(name)

    def set(self, request: PageRequest, **changes: ParamValue) -> PageRequest:
        return request.with_variables(**changes)
