"""Cursor pagination: an opaque cursor from the body, sent back as a parameter."""

from __future__ import annotations

from integration_platform.http.errors import ResponseShapeError
from integration_platform.http.pagination.chain import ChainPaginator
from integration_platform.http.pagination.paths import kind_of, select_optional
from integration_platform.http.pagination.request import PageRequest, PageResponse
from integration_platform.specs.models import CursorPagination


class CursorPaginator(ChainPaginator[CursorPagination]):
    """An opaque cursor from the body, sent back as `cursor_param`; absent, null or "" ends."""

    def next_request(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        if not self.records(response):
            return None
        cursor = select_optional(response.body, self.spec.cursor_path)
        if cursor is None or cursor == "":
            return None
        if isinstance(cursor, bool) or not isinstance(cursor, str | int | float):
            raise ResponseShapeError(
                f"the cursor at {self.spec.cursor_path!r} should be a string, but it is "
                f"{kind_of(cursor)}: check cursor_path in the spec"
            )
        return self.slots.set(request, **{self.spec.cursor_param: cursor})
