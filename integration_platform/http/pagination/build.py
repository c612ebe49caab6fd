"""The paginator for an endpoint's pagination spec."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from integration_platform.http.pagination.base import Paginator
from integration_platform.http.pagination.cursor import CursorPaginator
from integration_platform.http.pagination.link_header import LinkHeaderPaginator
from integration_platform.http.pagination.next_url import NextUrlPaginator
from integration_platform.http.pagination.offset import OffsetPaginator
from integration_platform.http.pagination.page_number import PageNumberPaginator
from integration_platform.http.pagination.relay import RelayPaginator
from integration_platform.http.pagination.single import SinglePagePaginator
from integration_platform.http.pagination.slots import GraphQLVariables, PageSlots, QueryParams
from integration_platform.specs.models import (
    CursorPagination,
    LinkHeaderPagination,
    NextUrlPagination,
    OffsetPagination,
    PageNumberPagination,
    PaginationSpec,
    RelayPagination,
    SinglePage,
)

_PAGINATORS: dict[type[Any], Callable[[Any, str, PageSlots], Paginator]] = {
    SinglePage: SinglePagePaginator,
    OffsetPagination: OffsetPaginator,
    PageNumberPagination: PageNumberPaginator,
    CursorPagination: CursorPaginator,
    NextUrlPagination: NextUrlPaginator,
    LinkHeaderPagination: LinkHeaderPaginator,
    RelayPagination: RelayPaginator,
}


def build_paginator(spec: PaginationSpec, records_path: str, *, graphql: bool = False) -> Paginator:
    """The paginator for an endpoint's pagination spec: its page parameters go into the query
    string, or for a GraphQL source into the query's variables."""
    slots = GraphQLVariables() if graphql else QueryParams()
    return _PAGINATORS[type(spec)](spec, records_path, slots)
