"""Every pagination style over synthetic pages: records, requests made, the end, the loops."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from integration_platform.http.errors import PaginationLoopError, ResponseShapeError
from integration_platform.http.pagination import (
    CursorPaginator,
    LinkHeaderPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PageLoopGuard,
    PageNumberPaginator,
    PageRequest,
    PageResponse,
    Paginator,
    RecordsRule,
    RelayPaginator,
    SinglePagePaginator,
    build_paginator,
    parse_link_header,
    select,
)
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

Serve = Callable[[PageRequest], PageResponse]


def drive(
    paginator: Paginator,
    serve: Serve,
    base: PageRequest | None = None,
    guard: PageLoopGuard | None = None,
) -> tuple[list[Any], list[PageRequest]]:
    """The engine's sequential loop, in miniature: every record, and every request made."""
    guard = guard or PageLoopGuard(max_pages=1000)  # a broken paginator fails, never hangs
    request: PageRequest | None = paginator.first_request(base or PageRequest("items"))
    records: list[Any] = []
    requests: list[PageRequest] = []
    while request is not None:
        guard.check_request(request)
        requests.append(request)
        response = serve(request)
        page = paginator.records(response)
        guard.check_page(page)
        records += page
        if guard.should_stop():
            break
        request = paginator.next_request(request, response)
    return records, requests


def fetch_all(
    paginator: Paginator, serve: Serve, base: PageRequest | None = None
) -> tuple[list[Any], list[PageRequest]]:
    """The engine's concurrent path: the first page, then every request all_requests lists."""
    first = paginator.first_request(base or PageRequest("items"))
    response = serve(first)
    rest = paginator.all_requests(first, response)
    assert rest is not None
    records = paginator.records(response)
    for request in rest:
        records += paginator.records(serve(request))
    return records, [first, *rest]


def items(n: int) -> list[dict[str, int]]:
    return [{"id": i} for i in range(n)]


def offset_api(n: int, *, cap: int | None = None, total: Any = "count") -> Serve:
    def serve(request: PageRequest) -> PageResponse:
        offset, limit = int(request.params["offset"]), int(request.params["limit"])
        limit = min(limit, cap or limit)
        return PageResponse(
            {"data": items(n)[offset : offset + limit], "total": n if total == "count" else total}
        )

    return serve


def page_api(n: int, *, first_page: int = 1, cap: int | None = None) -> Serve:
    def serve(request: PageRequest) -> PageResponse:
        page, size = int(request.params["page"]), int(request.params["per_page"])
        size = min(size, cap or size)
        start = (page - first_page) * size
        return PageResponse(
            {"data": items(n)[start : start + size], "meta": {"total_pages": -(-n // size)}}
        )

    return serve


def cursor_api(n: int, size: int, last_cursor: Any = None) -> Serve:
    def serve(request: PageRequest) -> PageResponse:
        start = int(request.params.get("cursor", 0))
        end = start + size
        return PageResponse(
            {"data": items(n)[start:end], "next_cursor": str(end) if end < n else last_cursor}
        )

    return serve


def ids(records: list[Any]) -> list[int]:
    return [record["id"] for record in records]


# -- select -----------------------------------------------------------------------------------


def test_select_returns_the_body_when_path_is_empty() -> None:
    body = [{"id": 1}]
    assert select(body, "") is body


def test_select_reads_nested_keys_and_list_indexes_when_path_is_dotted() -> None:
    body = {"data": {"items": [{"id": 1}, {"id": 2}]}}
    assert select(body, "data.items") == [{"id": 1}, {"id": 2}]
    assert select(body, "data.items[1].id") == 2
    assert select(body, "data.items.0.id") == 1


def test_select_names_the_missing_key_and_the_keys_present_when_a_key_is_missing() -> None:
    with pytest.raises(ResponseShapeError, match=r"no key 'results' at 'data'.*items, total"):
        select({"data": {"total": 3, "items": []}}, "data.results")


def test_select_raises_shape_error_when_the_path_crosses_a_list_as_if_an_object() -> None:
    with pytest.raises(ResponseShapeError, match=r"expected an object at 'data'.*found a list"):
        select({"data": [1, 2]}, "data.items")


def test_select_raises_shape_error_naming_the_null_when_the_path_crosses_null() -> None:
    with pytest.raises(ResponseShapeError, match=r"'data' is null"):
        select({"data": None}, "data.items")


# -- PageRequest ------------------------------------------------------------------------------


def test_checkpoint_round_trip_gives_an_equal_request_when_stored_as_json() -> None:
    request = PageRequest(
        "https://api.example.com/v1/items",
        {"cursor": "abc", "limit": 50, "active": True, "ratio": 0.5},
        {"first": 10, "after": None, "filter": {"tags": ["a", "b"]}},
    )
    restored = PageRequest.from_checkpoint(json.loads(json.dumps(request.to_checkpoint())))
    assert restored == request
    assert restored.fingerprint() == request.fingerprint()
    assert restored.params == request.params and restored.variables == request.variables


def test_from_checkpoint_raises_value_error_when_the_checkpoint_is_malformed() -> None:
    with pytest.raises(ValueError, match="not a pagination checkpoint"):
        PageRequest.from_checkpoint({"path": "items", "params": {"cursor": {"nested": 1}}})
    with pytest.raises(ValueError, match="not a pagination checkpoint"):
        PageRequest.from_checkpoint({"params": {}})


def test_fingerprint_is_the_same_when_params_are_given_in_another_order() -> None:
    a = PageRequest("items", {"offset": 100, "limit": 50})
    b = PageRequest("items", {"limit": 50, "offset": 100})
    assert a.fingerprint() == b.fingerprint()
    assert a == b and hash(a) == hash(b)


@pytest.mark.parametrize(
    "other",
    [
        PageRequest("items", {"offset": 200, "limit": 50}),
        PageRequest("items", {"offset": "100", "limit": 50}),
        PageRequest("other", {"offset": 100, "limit": 50}),
        PageRequest("items", {"offset": 100, "limit": 50}, {"after": "x"}),
    ],
)
def test_fingerprint_differs_when_anything_sent_differs(other: PageRequest) -> None:
    assert other.fingerprint() != PageRequest("items", {"offset": 100, "limit": 50}).fingerprint()


def test_with_params_returns_a_changed_copy_and_none_removes_when_params_change() -> None:
    request = PageRequest("items", {"status": "open", "cursor": "a"})
    changed = request.with_params(cursor=None, limit=10)
    assert changed.params == {"status": "open", "limit": 10}
    assert request.params == {"status": "open", "cursor": "a"}


def test_with_variables_starts_from_none_when_the_request_has_no_variables() -> None:
    assert PageRequest("graphql").with_variables(first=5).variables == {"first": 5}


def test_request_is_unchanged_when_the_caller_mutates_the_dict_it_passed() -> None:
    params: dict[str, str | int | float | bool] = {"cursor": "a"}
    request = PageRequest("items", params)
    params["cursor"] = "b"
    assert request.params == {"cursor": "a"}


# -- single page ------------------------------------------------------------------------------


def test_single_page_makes_one_request_when_the_body_is_a_list() -> None:
    paginator = SinglePagePaginator(SinglePage(type="single"), "")
    records, requests = drive(paginator, lambda r: PageResponse(items(3)))
    assert ids(records) == [0, 1, 2]
    assert requests == [PageRequest("items")]
    assert paginator.all_requests(requests[0], PageResponse(items(3))) == []


def test_single_page_gives_one_record_when_the_body_is_one_object() -> None:
    paginator = SinglePagePaginator(SinglePage(type="single"), "account")
    assert paginator.records(PageResponse({"account": {"id": 7}})) == [{"id": 7}]


def test_records_raises_shape_error_saying_what_to_set_when_records_path_is_no_list() -> None:
    paginator = OffsetPaginator(OffsetPagination(type="offset"), "data")
    with pytest.raises(ResponseShapeError, match=r"list of records at 'data'.*`records`"):
        paginator.records(PageResponse({"data": "oops"}))


# -- offset -----------------------------------------------------------------------------------


def offset(page_size: int = 100, total: bool = False) -> OffsetPaginator:
    spec = OffsetPagination(
        type="offset", page_size=page_size, total_path="total" if total else None
    )
    return OffsetPaginator(spec, "data")


def test_offset_fetches_every_record_once_and_stops_on_the_short_page_when_no_total() -> None:
    records, requests = drive(offset(), offset_api(250))
    assert ids(records) == list(range(250))
    assert [(r.params["offset"], r.params["limit"]) for r in requests] == [
        (0, 100),
        (100, 100),
        (200, 100),
    ]


def test_offset_ends_on_the_empty_page_when_the_count_is_a_multiple_of_page_size() -> None:
    records, requests = drive(offset(), offset_api(200))
    assert ids(records) == list(range(200))
    assert [r.params["offset"] for r in requests] == [0, 100, 200]


def test_offset_stops_without_an_empty_request_when_the_total_is_reached() -> None:
    records, requests = drive(offset(total=True), offset_api(200))
    assert ids(records) == list(range(200))
    assert [r.params["offset"] for r in requests] == [0, 100]


def test_offset_continues_past_short_pages_when_the_api_caps_the_limit_and_says_the_total() -> None:
    records, requests = drive(offset(total=True), offset_api(100, cap=40))
    assert ids(records) == list(range(100))
    assert [r.params["offset"] for r in requests] == [0, 40, 80]


def test_offset_keeps_the_endpoint_params_when_it_pages() -> None:
    _, requests = drive(offset(), offset_api(150), PageRequest("items", {"status": "open"}))
    assert [r.params["status"] for r in requests] == ["open", "open"]


@pytest.mark.parametrize(
    ("total", "remaining"),
    [
        (250, [100, 200]),
        (300, [100, 200]),
        (101, [100]),
        (100, []),
        (37, []),
        (0, []),
    ],
)
def test_offset_all_requests_lists_exactly_the_remaining_offsets_when_the_total_is_known(
    total: int, remaining: list[int]
) -> None:
    records, requests = fetch_all(offset(total=True), offset_api(total))
    assert [r.params["offset"] for r in requests[1:]] == remaining
    assert ids(records) == list(range(total))


def test_offset_all_requests_steps_by_the_served_page_when_the_api_caps_the_limit() -> None:
    records, requests = fetch_all(offset(total=True), offset_api(130, cap=40))
    assert [r.params["offset"] for r in requests[1:]] == [40, 80, 120]
    assert ids(records) == list(range(130))


def test_offset_all_requests_is_none_when_the_spec_has_no_total_path() -> None:
    paginator = offset()
    first = paginator.first_request(PageRequest("items"))
    assert paginator.all_requests(first, offset_api(250)(first)) is None


def test_offset_falls_back_to_following_pages_when_the_api_sends_a_null_total() -> None:
    paginator, serve = offset(total=True), offset_api(150, total=None)
    first = paginator.first_request(PageRequest("items"))
    assert paginator.all_requests(first, serve(first)) is None
    records, _ = drive(paginator, serve)
    assert ids(records) == list(range(150))


def test_offset_raises_shape_error_when_the_total_is_not_a_number() -> None:
    paginator = offset(total=True)
    first = paginator.first_request(PageRequest("items"))
    with pytest.raises(ResponseShapeError, match=r"the total at 'total' should be a whole number"):
        paginator.all_requests(first, offset_api(10, total="many")(first))


# -- page number ------------------------------------------------------------------------------


def pages(page_size: int = 100, total: bool = False, first_page: int = 1) -> PageNumberPaginator:
    spec = PageNumberPagination(
        type="page_number",
        page_size=page_size,
        first_page=first_page,
        total_pages_path="meta.total_pages" if total else None,
    )
    return PageNumberPaginator(spec, "data")


def test_page_number_stops_on_the_short_page_when_the_api_gives_no_page_count() -> None:
    records, requests = drive(pages(), page_api(250))
    assert ids(records) == list(range(250))
    assert [(r.params["page"], r.params["per_page"]) for r in requests] == [
        (1, 100),
        (2, 100),
        (3, 100),
    ]


def test_page_number_ends_on_the_empty_page_when_the_count_is_a_multiple_of_page_size() -> None:
    _, requests = drive(pages(), page_api(200))
    assert [r.params["page"] for r in requests] == [1, 2, 3]


def test_page_number_stops_at_the_last_page_when_total_pages_is_known() -> None:
    records, requests = drive(pages(total=True), page_api(200))
    assert ids(records) == list(range(200))
    assert [r.params["page"] for r in requests] == [1, 2]


def test_page_number_continues_past_short_pages_when_the_api_caps_per_page() -> None:
    records, requests = drive(pages(total=True), page_api(100, cap=30))
    assert ids(records) == list(range(100))
    assert [r.params["page"] for r in requests] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("count", "first_page", "remaining"),
    [
        (250, 1, [2, 3]),
        (300, 1, [2, 3]),
        (101, 1, [2]),
        (100, 1, []),
        (0, 1, []),
        (250, 0, [1, 2]),
    ],
)
def test_page_number_all_requests_lists_exactly_the_remaining_pages_when_total_pages_is_known(
    count: int, first_page: int, remaining: list[int]
) -> None:
    paginator, serve = (
        pages(total=True, first_page=first_page),
        page_api(count, first_page=first_page),
    )
    records, requests = fetch_all(paginator, serve)
    assert requests[0].params["page"] == first_page
    assert [r.params["page"] for r in requests[1:]] == remaining
    assert ids(records) == list(range(count))


def test_page_number_all_requests_is_none_when_the_spec_has_no_total_pages_path() -> None:
    paginator = pages()
    first = paginator.first_request(PageRequest("items"))
    assert paginator.all_requests(first, page_api(250)(first)) is None


# -- cursor -----------------------------------------------------------------------------------


def cursor(page_size: int | None = None, path: str = "next_cursor") -> CursorPaginator:
    return CursorPaginator(
        CursorPagination(type="cursor", cursor_path=path, page_size=page_size), "data"
    )


@pytest.mark.parametrize("last_cursor", [None, "", "absent"])
def test_cursor_follows_every_cursor_and_stops_when_the_last_page_has_none(
    last_cursor: str | None,
) -> None:
    serve = cursor_api(25, 10, last_cursor)

    def without_key(request: PageRequest) -> PageResponse:
        response = serve(request)
        if last_cursor == "absent" and response.body["next_cursor"] == "absent":
            del response.body["next_cursor"]
        return response

    records, requests = drive(cursor(), without_key)
    assert ids(records) == list(range(25))
    assert [r.params.get("cursor") for r in requests] == [None, "10", "20"]


def test_cursor_sends_the_page_size_only_when_the_spec_sets_one() -> None:
    _, with_size = drive(cursor(page_size=10), cursor_api(15, 10))
    _, without = drive(cursor(), cursor_api(15, 10))
    assert [r.params.get("limit") for r in with_size] == [10, 10]
    assert "limit" not in without[0].params


def test_cursor_stops_when_a_nested_cursor_parent_is_absent() -> None:
    paginator = cursor(path="meta.next")
    response = PageResponse({"data": items(2)})
    assert paginator.next_request(PageRequest("items"), response) is None


def test_cursor_stops_on_an_empty_page_even_when_a_cursor_is_given() -> None:
    response = PageResponse({"data": [], "next_cursor": "more"})
    assert cursor().next_request(PageRequest("items"), response) is None


def test_cursor_raises_shape_error_when_the_cursor_is_an_object() -> None:
    response = PageResponse({"data": items(1), "next_cursor": {"after": 1}})
    with pytest.raises(ResponseShapeError, match="cursor at 'next_cursor' should be a string"):
        cursor().next_request(PageRequest("items"), response)


def test_cursor_all_requests_is_none_when_pages_must_be_followed() -> None:
    first = PageRequest("items")
    assert cursor().all_requests(first, cursor_api(25, 10)(first)) is None


# -- next URL ---------------------------------------------------------------------------------


def next_url(page_size: int | None = None) -> NextUrlPaginator:
    return NextUrlPaginator(
        NextUrlPagination(type="next_url", next_url_path="links.next", page_size=page_size),
        "results",
    )


def test_next_url_follows_absolute_urls_with_their_query_in_params_when_given() -> None:
    second = "https://api.example.com/v1/items?page=2&size=2"
    bodies = {
        "1": {"results": items(2), "links": {"next": second}},
        "2": {"results": items(4)[2:], "links": {"next": None}},
    }
    records, requests = drive(
        next_url(page_size=2), lambda r: PageResponse(bodies[str(r.params.get("page", 1))])
    )
    assert ids(records) == [0, 1, 2, 3]
    assert requests[1] == PageRequest(
        "https://api.example.com/v1/items", {"page": "2", "size": "2"}
    )


def test_next_url_resolves_a_relative_url_against_the_page_url_when_the_engine_gives_it() -> None:
    response = PageResponse(
        {"results": items(1), "links": {"next": "/v1/items?cursor=b%2Bc"}},
        url="https://api.example.com/v1/items?cursor=a",
    )
    following = next_url().next_request(PageRequest("items", {"cursor": "a"}), response)
    assert following == PageRequest("https://api.example.com/v1/items", {"cursor": "b+c"})


def test_next_url_resolves_a_relative_url_against_the_absolute_request_when_no_page_url() -> None:
    response = PageResponse({"results": items(1), "links": {"next": "?page=3"}})
    request = PageRequest("https://api.example.com/v1/items", {"page": "2"})
    following = next_url().next_request(request, response)
    assert following == PageRequest("https://api.example.com/v1/items", {"page": "3"})


def test_next_url_keeps_a_relative_url_for_the_engine_when_no_base_is_known() -> None:
    response = PageResponse({"results": items(1), "links": {"next": "items?page=2"}})
    following = next_url().next_request(PageRequest("items", {"limit": 5}), response)
    assert following == PageRequest("items", {"page": "2"})


def test_next_url_keeps_the_query_in_the_path_when_it_repeats_a_key() -> None:
    url = "https://api.example.com/v1/items?status=open&status=new&page=2"
    response = PageResponse({"results": items(1), "links": {"next": url}})
    following = next_url().next_request(PageRequest("items"), response)
    assert following == PageRequest(url)


@pytest.mark.parametrize("links", [{"next": None}, {"next": ""}, {}])
def test_next_url_stops_when_the_response_has_no_next_url(links: dict[str, Any]) -> None:
    response = PageResponse({"results": items(1), "links": links})
    assert next_url().next_request(PageRequest("items"), response) is None


# -- Link header ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            '<https://a/x?page=2>; rel="next", <https://a/x?page=9>; rel="last"',
            [("https://a/x?page=2", ("next",)), ("https://a/x?page=9", ("last",))],
        ),
        ('<https://a/x?page=9>; rel="next last"', [("https://a/x?page=9", ("next", "last"))]),
        (
            '<https://a/x?p=2> ;title="Page, two";  REL = Next ,<https://a/x?p=1>;rel=prev',
            [("https://a/x?p=2", ("next",)), ("https://a/x?p=1", ("prev",))],
        ),
        ('<https://a/x?ids=1,2;3>; rel="next"; rel="last"', [("https://a/x?ids=1,2;3", ("next",))]),
        ("garbage, <https://a/x?p=2>; rel=next", [("https://a/x?p=2", ("next",))]),
        ('<https://a/x?p=2>; title="say \\"hi\\"";rel="next"', [("https://a/x?p=2", ("next",))]),
        ("", []),
    ],
)
def test_parse_link_header_finds_every_link_and_rel_when_spacing_and_quoting_vary(
    header: str, expected: list[tuple[str, tuple[str, ...]]]
) -> None:
    assert [(link.url, link.rels) for link in parse_link_header(header)] == expected


def test_parse_link_header_unescapes_quoted_parameter_values_when_they_hold_quotes() -> None:
    [link] = parse_link_header('<https://a/x>; title="say \\"hi\\""; rel=next')
    assert link.params["title"] == 'say "hi"'


@pytest.mark.parametrize(
    "header",
    [
        '<https://a/x?p=2>; rel="next last"',
        "<https://a/x?p=2>; REL=next",
        '<https://a/x?p=2>; title="a=b"; rel="next"',
        '<https://a/x?p=2>; title="a; b"; rel="next"',
        '<https://a/x?p=2;v=1>; rel="next"',
    ],
)
def test_httpx_links_miss_the_next_link_when_parse_link_header_finds_it(header: str) -> None:
    """Why parse_link_header exists: httpx's own Link parsing loses these next links. When this
    fails, httpx has caught up: LinkHeaderPaginator can read `Response.links` instead."""
    expected = header[1 : header.index(">")]
    httpx_next = httpx.Response(200, headers={"link": header}).links.get("next", {}).get("url")
    assert httpx_next != expected
    assert [link.url for link in parse_link_header(header) if "next" in link.rels] == [expected]


def link_pages(n: int, size: int, header_name: str = "Link") -> Serve:
    def serve(request: PageRequest) -> PageResponse:
        page = int(request.params.get("page", 1))
        start = (page - 1) * size
        links = [f'<https://api.example.com/items?page=1&per_page={size}>; rel="first"']
        if start + size < n:
            links.append(
                f'< https://api.example.com/items?per_page={size}&page={page + 1} >; rel="next"'
            )
        headers = httpx.Headers([(header_name, link) for link in links])
        return PageResponse(items(n)[start : start + size], headers)

    return serve


def test_link_header_follows_next_until_no_next_link_when_links_come_in_several_headers() -> None:
    paginator = LinkHeaderPaginator(LinkHeaderPagination(type="link_header", page_size=10), "")
    records, requests = drive(paginator, link_pages(25, 10))
    assert ids(records) == list(range(25))
    assert [r.params.get("page") for r in requests] == [None, "2", "3"]
    assert requests[0].params == {"per_page": 10}
    assert requests[1].path == "https://api.example.com/items"


def test_link_header_is_found_when_the_header_name_has_any_case() -> None:
    paginator = LinkHeaderPaginator(LinkHeaderPagination(type="link_header"), "")
    response = PageResponse(items(1), {"LINK": '<https://a/x?page=2>; rel="next"'})
    following = paginator.next_request(PageRequest("x"), response)
    assert following == PageRequest("https://a/x", {"page": "2"})


def test_link_header_follows_the_configured_rel_when_it_is_not_next() -> None:
    paginator = LinkHeaderPaginator(LinkHeaderPagination(type="link_header", rel="older"), "")
    header = '<https://a/x?page=2>; rel="next", <https://a/x?before=7>; rel="older"'
    following = paginator.next_request(PageRequest("x"), PageResponse(items(1), {"link": header}))
    assert following == PageRequest("https://a/x", {"before": "7"})


def test_link_header_stops_when_the_response_has_no_link_header() -> None:
    paginator = LinkHeaderPaginator(LinkHeaderPagination(type="link_header"), "")
    assert paginator.next_request(PageRequest("x"), PageResponse(items(1))) is None


# -- Relay ------------------------------------------------------------------------------------


def relay(path: str = "customers", page_size: int = 2) -> RelayPaginator:
    return RelayPaginator(
        RelayPagination(type="relay", connection_path=path, page_size=page_size), ""
    )


def connection(n: int, size: int, after: str | None) -> dict[str, Any]:
    start = 0 if after is None else int(after) + 1
    nodes = items(n)[start : start + size]
    return {
        "edges": [{"cursor": str(node["id"]), "node": node} for node in nodes],
        "pageInfo": {
            "hasNextPage": start + size < n,
            "endCursor": str(nodes[-1]["id"]) if nodes else None,
        },
    }


def test_relay_follows_end_cursors_until_has_next_page_is_false() -> None:
    def serve(request: PageRequest) -> PageResponse:
        assert request.variables is not None
        return PageResponse(
            {"customers": connection(5, request.variables["first"], request.variables.get("after"))}
        )

    records, requests = drive(relay(), serve, PageRequest("graphql", variables={"since": "x"}))
    assert ids(records) == [0, 1, 2, 3, 4]
    assert [r.variables for r in requests] == [
        {"since": "x", "first": 2},
        {"since": "x", "first": 2, "after": "1"},
        {"since": "x", "first": 2, "after": "3"},
    ]


def test_relay_reads_a_nested_connection_when_the_path_is_dotted() -> None:
    def serve(request: PageRequest) -> PageResponse:
        assert request.variables is not None
        tickets = connection(3, request.variables["first"], request.variables.get("after"))
        return PageResponse({"customer": {"id": "c1", "tickets": tickets}})

    records, requests = drive(relay("customer.tickets"), serve, PageRequest("graphql"))
    assert ids(records) == [0, 1, 2]
    assert len(requests) == 2


def test_relay_reads_nodes_when_the_connection_has_nodes_instead_of_edges() -> None:
    body = {"customers": {"nodes": items(2), "pageInfo": {"hasNextPage": False}}}
    assert ids(relay().records(PageResponse(body))) == [0, 1]


@pytest.mark.parametrize(
    ("body", "null_at"),
    [
        ({"customer": {"tickets": None}}, "'customer.tickets'"),
        ({"customer": None}, "'customer'"),
    ],
)
def test_relay_raises_shape_error_naming_the_null_when_a_connection_is_null(
    body: dict[str, Any], null_at: str
) -> None:
    with pytest.raises(ResponseShapeError, match=rf"null at {null_at}.*partial error"):
        relay("customer.tickets").records(PageResponse(body))


def test_relay_raises_shape_error_when_has_next_page_comes_without_end_cursor() -> None:
    body = {"customers": {"edges": [{"node": {"id": 1}}], "pageInfo": {"hasNextPage": True}}}
    with pytest.raises(ResponseShapeError, match="endCursor"):
        relay().next_request(PageRequest("graphql", variables={}), PageResponse(body))


def test_relay_raises_shape_error_when_the_query_does_not_select_page_info() -> None:
    body = {"customers": {"edges": [{"node": {"id": 1}}]}}
    with pytest.raises(ResponseShapeError, match=r"pageInfo \{ hasNextPage endCursor \}"):
        relay().next_request(PageRequest("graphql", variables={}), PageResponse(body))


def test_relay_raises_shape_error_when_an_edge_node_is_null() -> None:
    body = {
        "customers": {
            "edges": [{"node": {"id": 1}}, {"node": None}],
            "pageInfo": {"hasNextPage": False},
        }
    }
    with pytest.raises(ResponseShapeError, match="null nodes"):
        relay().records(PageResponse(body))


# -- loop guard -------------------------------------------------------------------------------


def test_guard_raises_loop_error_naming_the_cursor_when_the_api_repeats_a_cursor() -> None:
    def stuck(request: PageRequest) -> PageResponse:  # hands back the cursor it was given
        given = request.params.get("cursor")
        return PageResponse({"data": [{"id": given}], "next_cursor": given or "c1"})

    with pytest.raises(PaginationLoopError, match=r"cursor=c1.*after page 2.*max_pages"):
        drive(cursor(), stuck)


def test_guard_raises_loop_error_when_the_api_serves_the_same_page_again() -> None:
    def repeats(request: PageRequest) -> PageResponse:  # serves page 2 again for page 3
        start = min(int(request.params["offset"]), 10)
        return PageResponse({"data": items(100)[start : start + 10]})

    with pytest.raises(PaginationLoopError, match=r"page 3 holds exactly the records of page 2"):
        drive(offset(page_size=10), repeats)


def test_guard_accepts_several_empty_pages_when_nothing_repeats() -> None:
    guard = PageLoopGuard()
    guard.check_page([])
    guard.check_page([])
    guard.check_page([{"id": 1}])
    assert guard.pages == 3


def test_guard_says_stop_after_max_pages_when_pages_remain() -> None:
    records, requests = drive(offset(page_size=10), offset_api(100), guard=PageLoopGuard(3))
    assert len(requests) == 3
    assert ids(records) == list(range(30))


def test_guard_never_says_stop_when_max_pages_is_none() -> None:
    guard = PageLoopGuard(None)
    for number in range(500):
        guard.check_page([{"id": number}])
    assert not guard.should_stop()


# -- build_paginator --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "kind", "rule"),
    [
        ({"type": "single"}, SinglePagePaginator, RecordsRule("data", "list_or_object")),
        ({"type": "offset"}, OffsetPaginator, RecordsRule("data")),
        ({"type": "page_number"}, PageNumberPaginator, RecordsRule("data")),
        ({"type": "cursor", "cursor_path": "next"}, CursorPaginator, RecordsRule("data")),
        ({"type": "next_url", "next_url_path": "next"}, NextUrlPaginator, RecordsRule("data")),
        ({"type": "link_header"}, LinkHeaderPaginator, RecordsRule("data")),
        (
            {"type": "relay", "connection_path": "customers"},
            RelayPaginator,
            RecordsRule("customers", "connection"),
        ),
    ],
)
def test_build_paginator_picks_the_class_and_the_records_rule_for_the_style_when_given_a_spec(
    spec: dict[str, Any], kind: type[Paginator], rule: RecordsRule
) -> None:
    parsed: PaginationSpec = TypeAdapter(PaginationSpec).validate_python(spec)
    paginator = build_paginator(parsed, "data")
    assert type(paginator) is kind
    assert paginator.rule == rule
