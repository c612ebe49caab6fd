"""Stops an API from leading pagination round in circles."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from integration_platform.http.errors import PaginationLoopError
from integration_platform.http.pagination.request import PageRequest, digest


def _records_digest(records: list[Any]) -> str:
    """What a page holds, to spot a page served twice: its count and its first, middle and last
    records. Every page passes here, and dumping whole pages cost 5-7% of a million-record
    extraction (benchmarks/). The trade: two different pages that share their count and all
    three of those records would be taken for a repeat, which needs rows repeated across
    pages (a listing of identical rows)."""
    sample = [len(records), records[0], records[len(records) // 2], records[-1]]
    try:
        text = orjson.dumps(sample, default=str)
    except TypeError:  # what orjson cannot write (integers beyond 64 bits): the slow way
        return digest(sample)
    return hashlib.sha256(text).hexdigest()


class PageLoopGuard:
    """Stops an API from leading pagination round in circles.

    Call check_request before sending each request and check_page with each page's records;
    stop when should_stop() is true (max_pages reached: a limit the user chose, not an error).
    """

    def __init__(self, max_pages: int | None = None) -> None:
        self.max_pages = max_pages
        self._requests: set[str] = set()
        self._pages: dict[str, int] = {}
        self.pages = 0

    def check_request(self, request: PageRequest) -> None:
        fingerprint = request.fingerprint()
        if fingerprint in self._requests:
            raise PaginationLoopError(
                f"the API led back to a request already made ({request.describe()}) after "
                f"page {len(self._requests)}: following it would loop forever. This is a bug in "
                "the API: report it to its owner, or set max_pages on the endpoint"
            )
        self._requests.add(fingerprint)

    def check_page(self, records: list[Any]) -> None:
        self.pages += 1
        if not records:
            return
        digest = _records_digest(records)
        earlier = self._pages.get(digest)
        if earlier is not None:
            raise PaginationLoopError(
                f"page {self.pages} holds exactly the records of page {earlier}: the API served "
                "the same page again, so following it would loop or duplicate rows. This is a "
                "bug in the API: report it to its owner, or set max_pages on the endpoint"
            )
        self._pages[digest] = self.pages

    def should_stop(self) -> bool:
        """True once max_pages pages have been checked."""
        return self.max_pages is not None and self.pages >= self.max_pages
