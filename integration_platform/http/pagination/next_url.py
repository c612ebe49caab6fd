"""Next-URL pagination: the body holds the next page's URL."""

from __future__ import annotations

from integration_platform.http.errors import ResponseShapeError
from integration_platform.http.pagination.chain import ChainPaginator, follow_url
from integration_platform.http.pagination.paths import kind_of, select_optional
from integration_platform.http.pagination.request import PageRequest, PageResponse
from integration_platform.specs.models import NextUrlPagination


class NextUrlPaginator(ChainPaginator[NextUrlPagination]):
    """The body holds the next page's URL, absolute or relative; absent, null or "" ends."""

    def next_request(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        if not self.records(response):
            return None
        url = select_optional(response.body, self.spec.next_url_path)
        if url is None or url == "":
            return None
        if not isinstance(url, str):
            raise ResponseShapeError(
                f"the next URL at {self.spec.next_url_path!r} should be a string, but it is "
                f"{kind_of(url)}: check next_url_path in the spec"
            )
        return follow_url(url, request, response)
