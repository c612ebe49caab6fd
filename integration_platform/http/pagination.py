"""Pagination as pure logic: given a request and what came back, where the records are and what
to ask for next. The engine sends the requests; nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit, urlunsplit

import httpx
import orjson

from integration_platform.http.errors import PaginationLoopError, ResponseShapeError
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

ParamValue = str | int | float | bool

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
    "RelayPaginator",
    "SinglePagePaginator",
    "build_paginator",
    "parse_link_header",
    "select",
]


# -- requests and responses -------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PageRequest:
    """One request to make; plain data, so it can be a checkpoint.

    `path` is relative to base_url or an absolute URL (from a next URL or a Link header). A
    followed URL's query string is moved into `params`, because httpx *replaces* a URL's query
    whenever `params=` is given. The one exception: a query repeating a key cannot be a mapping,
    so it stays in `path` with empty `params`; send `params=request.params or None` to keep it.
    Two requests are equal when they would send the same thing (same fingerprint).
    """

    path: str
    params: Mapping[str, ParamValue] = field(default_factory=dict)
    variables: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        # Private copies: a caller mutating its dict afterwards must not change a checkpoint.
        object.__setattr__(self, "params", dict(self.params))
        if self.variables is not None:
            object.__setattr__(self, "variables", dict(self.variables))

    def with_params(self, **changes: ParamValue | None) -> PageRequest:
        """A copy with these query parameters set; a value of None removes the parameter."""
        params = {**self.params, **changes}
        return replace(self, params={k: v for k, v in params.items() if v is not None})

    def with_variables(self, **changes: Any) -> PageRequest:
        """A copy with these GraphQL variables set (None is a real GraphQL value: null)."""
        return replace(self, variables={**(self.variables or {}), **changes})

    def fingerprint(self) -> str:
        """A stable hash of what would be sent: equal requests, equal fingerprints."""
        return _digest({"path": self.path, "params": self.params, "variables": self.variables})

    def to_checkpoint(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "params": dict(self.params),
            "variables": None if self.variables is None else dict(self.variables),
        }

    @classmethod
    def from_checkpoint(cls, checkpoint: Mapping[str, Any]) -> PageRequest:
        path, params = checkpoint.get("path"), checkpoint.get("params", {})
        variables = checkpoint.get("variables")
        if (
            not isinstance(path, str)
            or not isinstance(params, Mapping)
            or not all(isinstance(v, ParamValue) for v in params.values())
            or not (variables is None or isinstance(variables, Mapping))
        ):
            raise ValueError(
                f"not a pagination checkpoint: {checkpoint!r}. Expected {{'path': str, "
                "'params': {name: scalar}, 'variables': {...} or None}; delete the checkpoint "
                "to start the endpoint from its first page"
            )
        return cls(path=path, params=params, variables=variables)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PageRequest):
            return NotImplemented
        return self.fingerprint() == other.fingerprint()

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def describe(self) -> str:
        """The request in one short line, for error messages."""
        parts = [f"{k}={v}" for k, v in sorted(self.params.items())]
        parts += [f"${k}={v!r}" for k, v in sorted((self.variables or {}).items())]
        text = f"{self.path} with {', '.join(parts)}" if parts else self.path
        return text if len(text) <= 300 else text[:297] + "..."


@dataclass(frozen=True)
class PageResponse:
    """What came back for one PageRequest.

    `body` is the parsed JSON (for GraphQL: the `data` object). Header lookups are
    case-insensitive. `url`, when the engine knows it, is the URL the page was actually served
    from: relative next links resolve against it (RFC 3986), as a browser would.
    """

    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    url: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.headers, httpx.Headers):
            object.__setattr__(self, "headers", httpx.Headers(self.headers))


# -- dotted paths -----------------------------------------------------------------------------

_SEGMENT = re.compile(r"^([^\[\]]*)((?:\[\d+\])*)$")


def _keys(path: str) -> list[str | int]:
    """`data.items[0].id` -> ["data", "items", 0, "id"]; a bare number indexes a list too."""
    keys: list[str | int] = []
    for segment in path.split(".") if path else []:
        match = _SEGMENT.match(segment)
        if match is None:
            raise ValueError(f"{path!r} is not a dotted path (e.g. data.items or data.items[0])")
        name, indexes = match.groups()
        if name:
            keys.append(name)
        keys += [int(i) for i in re.findall(r"\d+", indexes)]
    return keys


def _where(keys: list[str | int]) -> str:
    return "the top level" if not keys else repr(".".join(str(k) for k in keys))


def _kind(value: Any) -> str:
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def _step(node: Any, key: str | int, done: list[str | int], path: str) -> Any:
    """One lookup, or a ResponseShapeError that says what was there instead."""
    if isinstance(node, Mapping):
        if str(key) in node:
            return node[str(key)]
        there = ", ".join(sorted(map(str, node))) or "none"
        raise ResponseShapeError(
            f"the response has no key {str(key)!r} at {_where(done)} (looking up {path!r}); "
            f"the keys there are: {there}. The API may have changed: check the path in the spec"
        )
    if isinstance(node, list) and (isinstance(key, int) or key.isdigit()):
        index = int(key)
        if index < len(node):
            return node[index]
        raise ResponseShapeError(
            f"the list at {_where(done)} has {len(node)} item(s), so there is no [{index}] "
            f"(looking up {path!r})"
        )
    raise ResponseShapeError(
        f"expected an object at {_where(done)} to look up {str(key)!r} (for {path!r}), "
        f"but found {_kind(node)}. The API may have changed: check the path in the spec"
    )


def select(body: Any, path: str) -> Any:
    """The value at a dotted path; "" is the body itself. A missing key is a ResponseShapeError
    naming the key and the keys that were there; a null on the way is one too."""
    node, done = body, list[str | int]()
    for key in _keys(path):
        if node is None and done:
            raise ResponseShapeError(
                f"{_where(done)} is null in the response, so {path!r} "
                "cannot be read. The API may have changed"
            )
        node = _step(node, key, done, path)
        done.append(key)
    return node


def _select_optional(body: Any, path: str) -> Any:
    """Like select, but a missing key or a null on the way is None (e.g. "no next cursor")."""
    node, done = body, list[str | int]()
    for key in _keys(path):
        if node is None or (isinstance(node, Mapping) and str(key) not in node):
            return None
        node = _step(node, key, done, path)
        done.append(key)
    return node


def _count(body: Any, path: str, what: str) -> int | None:
    """A total from the response: None when the API sends null (it does not know)."""
    value = select(body, path)
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    whole = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and float(value).is_integer()
        and value >= 0
    )
    if whole:
        return int(value)
    raise ResponseShapeError(
        f"{what} at {path!r} should be a whole number, but it is {value!r}: check "
        "the pagination path in the spec"
    )


# -- where page parameters go ------------------------------------------------------------------


class PageSlots(ABC):
    """Where a paginator reads and writes its page parameters (offset, page, cursor, size)."""

    what = "parameter"

    @abstractmethod
    def get(self, request: PageRequest, name: str) -> Any:
        """The value of `name` in the request, or None."""

    @abstractmethod
    def set(self, request: PageRequest, **changes: ParamValue) -> PageRequest:
        """A copy of the request with these values set."""

    def whole_number(self, request: PageRequest, name: str, default: int) -> int:
        value = self.get(request, name)
        value = default if value is None else value
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"request {self.what} {name}={value!r} is not a whole number"
            ) from None


class QueryParams(PageSlots):
    """REST: page parameters are query parameters."""

    def get(self, request: PageRequest, name: str) -> Any:
        return request.params.get(name)

    def set(self, request: PageRequest, **changes: ParamValue) -> PageRequest:
        return request.with_params(**changes)


class GraphQLVariables(PageSlots):
    """GraphQL: page parameters are variables of the query (`allPeople(page: $page)`)."""

    what = "variable"

    def get(self, request: PageRequest, name: str) -> Any:
        return (request.variables or {}).get(name)

    def set(self, request: PageRequest, **changes: ParamValue) -> PageRequest:
        return request.with_variables(**changes)


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


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
        return _digest(sample)
    return hashlib.sha256(text).hexdigest()


def _follow(reference: str, request: PageRequest, response: PageResponse) -> PageRequest:
    """The request for a next URL: resolved against the page's URL, query moved into params."""
    base = response.url or (request.path if urlsplit(request.path).scheme else None)
    url = urljoin(base, reference) if base else reference
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if len({name for name, _ in pairs}) < len(pairs):
        return PageRequest(path=url, params={}, variables=request.variables)
    return PageRequest(
        path=urlunsplit(parts._replace(query="")), params=dict(pairs), variables=request.variables
    )


# -- Link headers (RFC 8288) ------------------------------------------------------------------
#
# Not httpx's `Response.links`: httpx 0.28 (the algorithm `requests` uses) splits on every `;`
# and `=`, so a `;` in a URL or a `;`/`=` in a quoted value cuts the link short and can drop
# its rel (the chain would end early, silently); it also keeps `rel="next last"` as one
# relation, matches `REL` case-sensitively and leaves `\"` escaped.
# test_httpx_links_miss_the_next_link_when_parse_link_header_finds_it measures this: when it
# fails, httpx has caught up, and LinkHeaderPaginator can read `links` and this parser go.

_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PARAM = re.compile(rf"[ \t]*;[ \t]*([^\s=;,]*)[ \t]*(?:=[ \t]*({_QUOTED}|[^\s;,]*))?")
_ENTRY = re.compile(  # separators, then a link or anything else up to the next link's comma
    rf"[ \t,]*(?:<(?P<url>[^>]*)>(?P<params>(?:{_PARAM.pattern})*)[ \t]*(?:,|$)"
    r'|(?:"(?:[^"\\]|\\.)*"?|<[^>]*>?|[^,"<])*,?)'
)


@dataclass(frozen=True)
class Link:
    """One link of a Link header: its target and its parameters (names lower-cased)."""

    url: str
    params: Mapping[str, str]

    @property
    def rels(self) -> tuple[str, ...]:
        """The relation types: `rel="next last"` is two of them (compared lower-case)."""
        return tuple(self.params.get("rel", "").lower().split())


def parse_link_header(value: str) -> list[Link]:
    """Every link in a Link header value: `<url>; rel="next"; title="a, b", <url2>; rel=last`.

    Commas inside `<...>` or quoted strings do not split links; parameters come in any order,
    with optional whitespace around `;` and `=`. A repeated parameter keeps its first value
    (RFC 8288 §3.3). Malformed entries are skipped, never guessed at.
    """
    links: list[Link] = []
    for entry in _ENTRY.finditer(value):
        if entry["url"] is None:
            continue  # a malformed entry
        params: dict[str, str] = {}
        for name, param in _PARAM.findall(entry["params"]):
            if re.fullmatch(_QUOTED, param):
                param = re.sub(r"\\(.)", r"\1", param[1:-1])
            if name:
                params.setdefault(name.lower(), param)
        links.append(Link(url=entry["url"].strip(), params=params))
    return links


# -- paginators -------------------------------------------------------------------------------


class Paginator(ABC):
    """One pagination style. The engine's loop:

    request = paginator.first_request(base)
    response = send(request); records = paginator.records(response)
    rest = paginator.all_requests(request, response)
    if rest is not None: send them all, concurrently (their records via records())
    else: while (request := paginator.next_request(request, response)) is not None: ...
    """

    def __init__(self, records_path: str, slots: PageSlots | None = None) -> None:
        self.records_path = records_path
        self.slots = slots or QueryParams()

    def first_request(self, base: PageRequest) -> PageRequest:
        return base

    def records(self, response: PageResponse) -> list[Any]:
        """The records of one page: the list at the endpoint's `records` path."""
        records = select(response.body, self.records_path)
        if not isinstance(records, list):
            raise ResponseShapeError(
                f"expected a list of records at {_where(_keys(self.records_path))}, but found "
                f"{_kind(records)}: set the endpoint's `records` to the path of the list "
                '("" when the body itself is the list)'
            )
        return records

    @abstractmethod
    def next_request(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        """The request for the page after this one, or None when this page was the last."""

    def all_requests(self, first: PageRequest, response: PageResponse) -> list[PageRequest] | None:
        """Every request after the first when the first page tells the total (so the engine
        may fetch them concurrently); None when pages must be followed one by one."""
        return None


class SinglePagePaginator(Paginator):
    """One request, no pagination. A single object as the body is one record."""

    def __init__(self, spec: SinglePage, records_path: str, slots: PageSlots | None = None) -> None:
        super().__init__(records_path, slots)

    def records(self, response: PageResponse) -> list[Any]:
        found = select(response.body, self.records_path)
        return [found] if isinstance(found, Mapping) else super().records(response)

    def next_request(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        return None

    def all_requests(self, first: PageRequest, response: PageResponse) -> list[PageRequest] | None:
        return []


class OffsetPaginator(Paginator):
    """`offset`/`limit`: the next offset is this one plus the records received.

    Ends on an empty page, on a short page, or when the offset reaches the total. When the
    response tells the total, a short page does not end it: an API that caps `limit` below
    page_size serves short pages all along, and stopping there would silently drop records.
    """

    def __init__(
        self, spec: OffsetPagination, records_path: str, slots: PageSlots | None = None
    ) -> None:
        super().__init__(records_path, slots)
        self.spec = spec

    def first_request(self, base: PageRequest) -> PageRequest:
        return self.slots.set(
            base, **{self.spec.offset_param: 0, self.spec.limit_param: self.spec.page_size}
        )

    def _total(self, response: PageResponse) -> int | None:
        path = self.spec.total_path
        return None if path is None else _count(response.body, path, "the total")

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


class PageNumberPaginator(Paginator):
    """`page`/`per_page`: ends on an empty page, a short page, or the last of total_pages
    (when the response tells total_pages, a short page does not end it; see OffsetPaginator)."""

    def __init__(
        self, spec: PageNumberPagination, records_path: str, slots: PageSlots | None = None
    ) -> None:
        super().__init__(records_path, slots)
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
        total = None if path is None else _count(response.body, path, "the number of pages")
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


class _ChainPaginator(Paginator):
    """Follows a chain (cursor, next URL, Link header); sends the page size only if one is set."""

    def __init__(
        self, records_path: str, slots: PageSlots | None, page_size: int | None, size_param: str
    ) -> None:
        super().__init__(records_path, slots)
        self._page_size = page_size
        self._size_param = size_param

    def first_request(self, base: PageRequest) -> PageRequest:
        if self._page_size is None:
            return base
        return self.slots.set(base, **{self._size_param: self._page_size})


class CursorPaginator(_ChainPaginator):
    """An opaque cursor from the body, sent back as `cursor_param`; absent, null or "" ends."""

    def __init__(
        self, spec: CursorPagination, records_path: str, slots: PageSlots | None = None
    ) -> None:
        super().__init__(records_path, slots, spec.page_size, spec.size_param)
        self.spec = spec

    def next_request(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        if not self.records(response):
            return None
        cursor = _select_optional(response.body, self.spec.cursor_path)
        if cursor is None or cursor == "":
            return None
        if isinstance(cursor, bool) or not isinstance(cursor, str | int | float):
            raise ResponseShapeError(
                f"the cursor at {self.spec.cursor_path!r} should be a string, but it is "
                f"{_kind(cursor)}: check cursor_path in the spec"
            )
        return self.slots.set(request, **{self.spec.cursor_param: cursor})


class NextUrlPaginator(_ChainPaginator):
    """The body holds the next page's URL, absolute or relative; absent, null or "" ends."""

    def __init__(
        self, spec: NextUrlPagination, records_path: str, slots: PageSlots | None = None
    ) -> None:
        super().__init__(records_path, slots, spec.page_size, spec.size_param)
        self.spec = spec

    def next_request(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        if not self.records(response):
            return None
        url = _select_optional(response.body, self.spec.next_url_path)
        if url is None or url == "":
            return None
        if not isinstance(url, str):
            raise ResponseShapeError(
                f"the next URL at {self.spec.next_url_path!r} should be a string, but it is "
                f"{_kind(url)}: check next_url_path in the spec"
            )
        return _follow(url, request, response)


class LinkHeaderPaginator(_ChainPaginator):
    """RFC 8288 `Link: <url>; rel="next"`: follows the link whose rel includes spec.rel."""

    def __init__(
        self, spec: LinkHeaderPagination, records_path: str, slots: PageSlots | None = None
    ) -> None:
        super().__init__(records_path, slots, spec.page_size, spec.size_param)
        self.spec = spec

    def next_request(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        if not self.records(response):
            return None
        rel = self.spec.rel.lower()
        for value in httpx.Headers(response.headers).get_list("link"):
            for link in parse_link_header(value):
                if rel in link.rels and link.url:
                    return _follow(link.url, request, response)
        return None


class RelayPaginator(Paginator):
    """GraphQL Relay connections: records are `edges[].node` (or `nodes`) of the connection at
    connection_path inside `data`; `first`/`after` variables; ends when hasNextPage is false.
    The endpoint's `records` path is not used: the connection says where the records are."""

    def __init__(
        self, spec: RelayPagination, records_path: str, slots: PageSlots | None = None
    ) -> None:
        super().__init__(records_path, GraphQLVariables())
        self.spec = spec

    def first_request(self, base: PageRequest) -> PageRequest:
        return base.with_variables(**{self.spec.size_variable: self.spec.page_size})

    def _connection(self, response: PageResponse) -> Mapping[str, Any]:
        path = self.spec.connection_path
        node, done = response.body, list[str | int]()
        for key in [*_keys(path), None]:
            if node is None:
                raise ResponseShapeError(
                    f"the GraphQL data is null at {_where(done)}, so the connection {path!r} "
                    "cannot be read: the API failed to resolve that field (a partial error: "
                    "see the response's `errors`) or the object no longer exists. Retry later; "
                    "if it persists, report it to the API's owner"
                )
            if key is not None:
                node = _step(node, key, done, path)
                done.append(key)
        if not isinstance(node, Mapping):
            raise ResponseShapeError(
                f"expected a Relay connection object at {path!r}, "
                f"but found {_kind(node)}: check connection_path in the spec"
            )
        return node

    def records(self, response: PageResponse) -> list[Any]:
        connection = self._connection(response)
        path = self.spec.connection_path
        if "edges" not in connection and isinstance(connection.get("nodes"), list):
            nodes: list[Any] = connection["nodes"]
        else:
            edges = select(connection, "edges")
            if not isinstance(edges, list):
                raise ResponseShapeError(
                    f"expected a list at '{path}.edges', but found {_kind(edges)}"
                )
            nodes = [None if edge is None else select(edge, "node") for edge in edges]
        if any(node is None for node in nodes):
            raise ResponseShapeError(
                f"the connection {path!r} holds null nodes: the API failed to resolve some "
                "records (see the response's `errors`). Retry later, or report it to the API's "
                "owner"
            )
        return nodes

    def next_request(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        if not self.records(response):
            return None
        connection = self._connection(response)
        path = f"{self.spec.connection_path}.pageInfo"
        info = connection.get("pageInfo")
        if not isinstance(info, Mapping) or "hasNextPage" not in info:
            raise ResponseShapeError(
                f"{path!r} with hasNextPage is missing: select "
                "`pageInfo { hasNextPage endCursor }` on the connection in the query"
            )
        if not info["hasNextPage"]:
            return None
        cursor = info.get("endCursor")
        if not isinstance(cursor, str) or cursor == "":
            raise ResponseShapeError(
                f"{path!r} says hasNextPage but gives no endCursor ({cursor!r}): select "
                "`pageInfo { hasNextPage endCursor }` in the query"
            )
        return request.with_variables(**{self.spec.cursor_variable: cursor})


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


# -- loop guard -------------------------------------------------------------------------------


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
