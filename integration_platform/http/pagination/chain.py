"""Paginators that follow a chain from page to page (cursor, next URL, Link header)."""

from __future__ import annotations

from typing import Generic, TypeVar
from urllib.parse import parse_qsl, urljoin, urlsplit, urlunsplit

from integration_platform.http.pagination.base import Paginator
from integration_platform.http.pagination.records import records_rule
from integration_platform.http.pagination.request import PageRequest, PageResponse
from integration_platform.http.pagination.slots import PageSlots
from integration_platform.specs.models import (
    CursorPagination,
    LinkHeaderPagination,
    NextUrlPagination,
)

# The pagination specs of a chain: each has an optional page_size, sent as size_param.
ChainSpec = TypeVar("ChainSpec", bound=CursorPagination | NextUrlPagination | LinkHeaderPagination)


def follow_url(reference: str, request: PageRequest, response: PageResponse) -> PageRequest:
    """The request for a next URL: resolved against the page's URL, query moved into params."""
    base = response.url or (request.path if urlsplit(request.path).scheme else None)
    url = urljoin(base, reference) if base else reference
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if len({name for name, _ in pairs}) < len(pairs):
        return PageRequest(path=url, params={}, variables=request.variables)
    return PageRequest(
        path=urlunsplit(parts._replace(query="")), params=dict(pairs), variables=request.variables
    )


class ChainPaginator(Paginator, Generic[ChainSpec]):
    """Follows a chain (cursor, next URL, Link header); sends the page size only if one is set."""

    def __init__(self, spec: ChainSpec, records_path: str, slots: PageSlots | None = None) -> None:
        super().__init__(records_rule(spec, records_path), slots)
        self.spec = spec

    def first_request(self, base: PageRequest) -> PageRequest:
        if self.spec.page_size is None:
            return base
        return self.slots.set(base, **{self.spec.size_param: self.spec.page_size})
