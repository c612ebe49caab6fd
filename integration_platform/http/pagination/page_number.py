"""`page`/`per_page` pagination."""

from __future__ import annotations

from integration_platform.http.pagination.base import Paginator
from integration_platform.http.pagination.paths import count_at
from integration_platform.http.pagination.records import records_rule
from integration_platform.http.pagination.request import PageRequest, PageResponse
from integration_platform.http.pagination.slots import PageSlots
from integration_platform.specs.models import PageNumberPagination


class PageNumberPaginator(Paginator):
    """`page`/`per_page`: ends on an empty page, a short page, or the last of total_pages
    (when the response tells total_pages, a short page does not end it; see OffsetPaginator)."""

    def __init__(
        self, spec: PageNumberPagination, records_path: str, slots: PageSlots | None = None
    ) -> None:
        super().__init__(records_rule(spec, records_path), slots)
        self.spec = spec

    def first_request(self, base: PageRequest) -> PageRequest:
        return self.slots.set(
            base,
            **{
                self.spec.page_param: self.spec.first_page,
                self.spec.size_param: self.spec.page_size,
            },
        )

    def _last_page(self, response: PageResponse) -> int | None:
        path = self.spec.total_pages_path
        total = None if path is None else count_at(response.body, path, "the number of pages")
        return None if total is None else self.spec.first_page + total - 1

    def next_request(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        records = self.records(response)
        if not records:
            return None
        page = self.slots.whole_number(request, self.spec.page_param, self.spec.first_page)
        last = self._last_page(response)
        if last is not None and page >= last:
            return None
        if last is None and len(records) < self.spec.page_size:
            return None
        return self.slots.set(request, **{self.spec.page_param: page + 1})

    def all_requests(self, first: PageRequest, response: PageResponse) -> list[PageRequest] | None:
        last = self._last_page(response)
        if last is None:
            return None
        if not self.records(response):
            return []
        page = self.slots.whole_number(first, self.spec.page_param, self.spec.first_page)
        return [
            self.slots.set(first, **{self.spec.page_param: number})
            for number in range(page + 1, last + 1)
        ]
