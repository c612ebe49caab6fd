"""The paginator interface the engine drives: first request, records, next request."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from integration_platform.http.pagination.records import RecordsRule
from integration_platform.http.pagination.request import PageRequest, PageResponse
from integration_platform.http.pagination.slots import PageSlots, QueryParams


class Paginator(ABC):
    """One pagination style. The engine's loop:

    request = paginator.first_request(base)
    response = send(request); records = paginator.records(response)
    rest = paginator.all_requests(request, response)
    if rest is not None: send them all, concurrently (their records via records())
    else: while (request := paginator.next_request(request, response)) is not None: ...
    """

    def __init__(self, rule: RecordsRule, slots: PageSlots | None = None) -> None:
        self.rule = rule
        self.slots = slots or QueryParams()

    def first_request(self, base: PageRequest) -> PageRequest:
        return base

    def records(self, response: PageResponse) -> list[Any]:
        """The records of one page, where the endpoint's records rule says they are."""
        return self.rule.records(response.body)

    @abstractmethod
    def next_request(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        """The request for the page after this one, or None when this page was the last."""

    def all_requests(self, first: PageRequest, response: PageResponse) -> list[PageRequest] | None:
        """Every request after the first when the first page tells the total (so the engine
        may fetch them concurrently); None when pages must be followed one by one."""
        return None
