"""One request, no pagination."""

from __future__ import annotations

from integration_platform.http.pagination.base import Paginator
from integration_platform.http.pagination.records import records_rule
from integration_platform.http.pagination.request import PageRequest, PageResponse
from integration_platform.http.pagination.slots import PageSlots
from integration_platform.specs.models import SinglePage


class SinglePagePaginator(Paginator):
    """One request, no pagination. A single object as the body is one record."""

    def __init__(self, spec: SinglePage, records_path: str, slots: PageSlots | None = None) -> None:
        super().__init__(records_rule(spec, records_path), slots)

    def next_request(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        return None

    def all_requests(self, first: PageRequest, response: PageResponse) -> list[PageRequest] | None:
        return []
