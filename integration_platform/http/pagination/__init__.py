"""Pagination as pure logic: given a request and what came back, where the records are and what
to ask for next. The engine sends the requests; nothing here does I/O.

One module per pagination style; `records` holds the one rule for where records sit in a
response, `guard` the loop guard, `build` the paginator for a spec.
"""

from __future__ import annotations

from integration_platform.http.pagination.base import Paginator
from integration_platform.http.pagination.build import build_paginator
from integration_platform.http.pagination.cursor import CursorPaginator
from integration_platform.http.pagination.guard import PageLoopGuard
from integration_platform.http.pagination.link_header import (
    Link,
    LinkHeaderPaginator,
    parse_link_header,
)
from integration_platform.http.pagination.next_url import NextUrlPaginator
from integration_platform.http.pagination.offset import OffsetPaginator
from integration_platform.http.pagination.page_number import PageNumberPaginator
from integration_platform.http.pagination.paths import select
from integration_platform.http.pagination.records import RecordsRule, records_rule
from integration_platform.http.pagination.relay import RelayPaginator
from integration_platform.http.pagination.request import PageRequest, PageResponse, ParamValue
from integration_platform.http.pagination.single import SinglePagePaginator
from integration_platform.http.pagination.slots import GraphQLVariables, PageSlots, QueryParams

__all__ = [
    "CursorPaginator",
    "GraphQLVariables",
    "Link",
    "LinkHeaderPaginator",
    "NextUrlPaginator",
    "OffsetPaginator",
    "PageLoopGuard",
    "PageNumberPaginator",
    "PageRequest",
    "PageResponse",
    "PageSlots",
    "Paginator",
    "ParamValue",
    "QueryParams",
    "RecordsRule",
    "RelayPaginator",
    "SinglePagePaginator",
    "build_paginator",
    "parse_link_header",
    "records_rule",
    "select",
]
