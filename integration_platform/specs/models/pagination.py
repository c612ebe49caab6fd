"""How an endpoint pages: the `pagination:` block of an endpoint, one model per `type`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from integration_platform.specs.models.base import JsonPath, Strict


class SinglePage(Strict):
    type: Literal["single"]


class OffsetPagination(Strict):
    type: Literal["offset"]
    offset_param: str = "offset"
    limit_param: str = "limit"
    page_size: int = Field(100, ge=1)
    total_path: JsonPath | None = Field(None, description="where the response says the total")


class PageNumberPagination(Strict):
    type: Literal["page_number"]
    page_param: str = "page"
    size_param: str = "per_page"
    page_size: int = Field(100, ge=1)
    first_page: int = 1
    total_pages_path: JsonPath | None = None


class CursorPagination(Strict):
    type: Literal["cursor"]
    cursor_path: JsonPath = Field(description="where the response holds the next cursor")
    cursor_param: str = "cursor"
    page_size: int | None = Field(None, ge=1)
    size_param: str = "limit"


class NextUrlPagination(Strict):
    type: Literal["next_url"]
    next_url_path: JsonPath
    page_size: int | None = Field(None, ge=1)
    size_param: str = "limit"


class LinkHeaderPagination(Strict):
    """RFC 8288 `Link: <...>; rel="next"`."""

    type: Literal["link_header"]
    rel: str = "next"
    page_size: int | None = Field(None, ge=1)
    size_param: str = "per_page"


class RelayPagination(Strict):
    """GraphQL Relay connections: `connection_path` may point into nested objects."""

    type: Literal["relay"]
    connection_path: JsonPath = Field(description="e.g. customers, or customer.tickets")
    page_size: int = Field(50, ge=1)
    size_variable: str = "first"
    cursor_variable: str = "after"


PaginationSpec = Annotated[
    SinglePage
    | OffsetPagination
    | PageNumberPagination
    | CursorPagination
    | NextUrlPagination
    | LinkHeaderPagination
    | RelayPagination,
    Field(discriminator="type"),
]
