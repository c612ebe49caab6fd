"""Paginators that follow a chain from page to page (cursor, next URL, Link header)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urljoin, urlsplit, urlunsplit

from integration_platform.http.pagination.base import Paginator
from integration_platform.http.pagination.records import RecordsRule
from integration_platform.http.pagination.request import PageRequest, PageResponse
from integration_platform.http.pagination.slots import PageSlots


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


class ChainPaginator(Paginator):
    """Follows a chain (cursor, next URL, Link header); sends the page size only if one is set."""

    def __init__(
        self, rule: RecordsRule, slots: PageSlots | None, page_size: int | None, size_param: str
    ) -> None:
        super().__init__(rule, slots)
        self._page_size = page_size
        self._size_param = size_param

    def first_request(self, base: PageRequest) -> PageRequest:
        if self._page_size is None:
            return base
        return self.slots.set(base, **{self._size_param: self._page_size})
