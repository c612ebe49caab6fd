"""`offset`/`limit` pagination."""

from __future__ import annotations

from integration_platform.http.pagination.base import Paginator
from integration_platform.http.pagination.paths import count_at
from integration_platform.http.pagination.records import records_rule
from integration_platform.http.pagination.request import PageRequest, PageResponse
from integration_platform.http.pagination.slots import PageSlots
from integration_platform.specs.models import OffsetPagination


class OffsetPaginator(Paginator):
    """`offset`/`limit`: the next offset is this one plus the records received.

    Ends on an empty page, on a short page, or when the offset reaches the total. When the
    response tells the total, a short page does not end it: an API that caps `limit` below
    page_size serves short pages all along, and stopping there would silently drop records.
    """

    def __init__(
        self, spec: OffsetPagination, records_path: str, slots: PageSlots | None = None
    ) -> None:
        super().__init__(records_rule(spec, records_path), slots)
        self.spec = spec

    def first_request(self, base: PageRequest) -> PageRequest:
        return self.slots.set(
            base, **{self.spec.offset_param: 0, self.spec.limit_param: self.spec.page_size}
        )

    def _total(self, response: PageResponse) -> int | None:
        path = self.spec.total_path
        return None if path is None else count_at(response.body, path, "the total")

    def next_request(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        records = self.records(response)
        if not records:
            return None
        offset = self.slots.whole_number(request, self.spec.offset_param, 0) + len(records)
        total = self._total(response)
        if total is not None and offset >= total:
            return None
        if total is None and len(records) < self.spec.page_size:
            return None
        return self.slots.set(request, **{self.spec.offset_param: offset})

    def all_requests(self, first: PageRequest, response: PageResponse) -> list[PageRequest] | None:
        total = self._total(response)
        if total is None:
            return None
        # Step by what a page really holds: the API may cap (or ignore) the limit we asked for.
        step = len(self.records(response))
        if step == 0:
            return []
        start = self.slots.whole_number(first, self.spec.offset_param, 0) + step
        return [
            self.slots.set(first, **{self.spec.offset_param: offset})
            for offset in range(start, total, step)
        ]
