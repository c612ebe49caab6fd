"""Runs one endpoint of a source: pages stream out one by one, never the whole dataset at once.

The runner plans the first request (endpoint params, partition window, incremental mark),
follows the paginator, fetches pages concurrently when the API tells the total, fans child
endpoints out over parent records within the source's rate limit, and guards against loops.
Each yielded page carries the request that would continue after it: that is the checkpoint.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gql import GraphQLRequest

from integration_platform.extraction.state import IncrementalState
from integration_platform.extraction.windows import (
    daily_window,
    format_instant,
    parse_instant,
    window_params,
)
from integration_platform.http.client import FetchedPage, SourceClient
from integration_platform.http.clock import Clock
from integration_platform.http.errors import ResponseShapeError
from integration_platform.http.graphql import GraphQLClient
from integration_platform.http.pagination import (
    PageLoopGuard,
    PageRequest,
    PageResponse,
    Paginator,
    build_paginator,
    select,
)
from integration_platform.logs import bind_context, get_logger
from integration_platform.specs.models import EndpointSpec, SourceSpec

_log = get_logger("integration_platform.extraction")

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass
class ExtractedPage:
    """One page of records, the response it came in, and where to continue after it."""

    index: int
    fetched: FetchedPage
    records: list[Any]
    next_request: PageRequest | None
    parent: Mapping[str, Any] | None = None


@dataclass
class ExtractionSummary:
    source: str
    endpoint: str
    partition: str | None
    records: int = 0
    pages: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    bytes: int = 0
    seconds: float = 0.0
    graphql_errors: int = 0
    high_water_mark: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "extra"}
        out["429s"] = out.pop("throttled")
        return {**out, **self.extra}


@asynccontextmanager
async def open_extractor(
    spec: SourceSpec,
    endpoint: str,
    *,
    state_dir: Path | None,
    partition: str | None = None,
    state: IncrementalState | None = None,
    full_refresh: bool = False,
    resume_from: PageRequest | None = None,
    clock: Clock | None = None,
) -> AsyncIterator[EndpointExtractor]:
    """An EndpointExtractor with the source's HTTP client (and, for a GraphQL source, its gql
    session) open for as long as the block runs."""
    async with SourceClient(spec, state_dir=state_dir, clock=clock) as client:
        graphql = GraphQLClient(client) if spec.kind == "graphql" else None
        if graphql is not None:
            await graphql.__aenter__()
        try:
            yield EndpointExtractor(
                spec,
                endpoint,
                client,
                partition=partition,
                state=state,
                full_refresh=full_refresh,
                resume_from=resume_from,
                graphql=graphql,
            )
        finally:
            if graphql is not None:
                await graphql.__aexit__(None, None, None)


class EndpointExtractor:
    """Pages of one endpoint for one partition (or none), as an async iterator."""

    def __init__(
        self,
        spec: SourceSpec,
        endpoint: str,
        client: SourceClient,
        *,
        partition: str | None = None,
        state: IncrementalState | None = None,
        full_refresh: bool = False,
        resume_from: PageRequest | None = None,
        graphql: GraphQLClient | None = None,
    ) -> None:
        if endpoint not in spec.endpoints:
            raise KeyError(
                f"{spec.source} has no endpoint {endpoint!r}; it has {', '.join(spec.endpoints)}"
            )
        self.spec = spec
        self.name = endpoint
        self.endpoint: EndpointSpec = spec.endpoints[endpoint]
        self.client = client
        self.partition = partition
        self.state = state
        self.full_refresh = full_refresh
        self.resume_from = resume_from
        self.graphql = graphql
        # For GraphQL the body is the response's `data`: `records` is a path inside it.
        self.paginator: Paginator = build_paginator(
            self.endpoint.pagination, self.endpoint.records, graphql=spec.kind == "graphql"
        )
        self._document: GraphQLRequest | None = None
        if spec.kind == "graphql":
            if graphql is None:
                raise ValueError(f"{spec.source} is a GraphQL source: pass a GraphQLClient")
            query_file = str(self.endpoint.query_file)
            self._document = GraphQLClient.parse(spec.query_text(endpoint), query_file)
            graphql.check(self._document, query_file)  # a misfit fails before the first page
        self.summary = ExtractionSummary(spec.source, endpoint, partition)
        self._mark: tuple[datetime | None, Any] | None = None

    # -- planning --------------------------------------------------------------------------

    def base_request(self, placeholders: Mapping[str, Any] | None = None) -> PageRequest:
        endpoint = self.endpoint
        values: dict[str, Any] = dict(endpoint.params)
        partitions = endpoint.partitions
        if self.partition is not None:
            if not endpoint.is_partitioned:
                raise ValueError(
                    f"{self.spec.source}.{self.name} is not partitioned: run it without a partition"
                )
            values.update(window_params(partitions, daily_window(self.partition)))
        incremental = endpoint.incremental
        if incremental and not self.full_refresh:
            mark = self._stored_mark()
            if mark is not None:
                since = parse_instant(mark)
                current = parse_instant(values.get(incremental.param))
                if since is None or current is None or since > current:
                    values[incremental.param] = (
                        format_instant(since, partitions.format) if since else mark
                    )
            elif incremental.initial_value and incremental.param not in values:
                values[incremental.param] = incremental.initial_value
        if placeholders:
            values = {k: _fill(v, placeholders) for k, v in values.items()}
        path = endpoint.path.format(**placeholders) if placeholders else endpoint.path
        if self.spec.kind == "graphql":
            variables = {
                k: _fill(v, placeholders) if placeholders else v
                for k, v in endpoint.variables.items()
            }
            return PageRequest(path=self.spec.graphql_path, variables={**variables, **values})
        return PageRequest(path=path, params=values)

    def _stored_mark(self) -> str | None:
        if self.state is None:
            return None
        return self.state.get(self.spec.source, self.name, self.partition)

    # -- running ---------------------------------------------------------------------------

    async def pages(self) -> AsyncIterator[ExtractedPage]:
        with bind_context(source=self.spec.source, endpoint=self.name, partition=self.partition):
            async for page in self._pages():
                yield page
        _log.info("extraction_finished", **self.summary.as_dict())

    async def _pages(self) -> AsyncIterator[ExtractedPage]:
        started = time.monotonic()
        before = self.client.stats.as_dict()
        try:
            if self.endpoint.parent is not None:
                async for page in self._child_pages():
                    yield self._account(page)
            else:
                first = self.resume_from or self.paginator.first_request(self.base_request())
                async for page in self._chain(first, parent=None):
                    yield self._account(page)
        finally:
            after = self.client.stats.as_dict()
            summary = self.summary
            summary.requests = int(after["requests"] - before["requests"])
            summary.retries = int(after["retries"] - before["retries"])
            summary.throttled = int(after["throttled"] - before["throttled"])
            summary.bytes = int(after["bytes"] - before["bytes"])
            summary.seconds = round(time.monotonic() - started, 3)

    def _account(self, page: ExtractedPage) -> ExtractedPage:
        self.summary.pages += 1
        self.summary.records += len(page.records)
        self.summary.graphql_errors += len(page.fetched.graphql_errors)
        if self.endpoint.incremental:
            self._track_mark(page.records)
        return page

    async def _fetch(self, request: PageRequest) -> FetchedPage:
        if self.graphql is not None and self._document is not None:
            return await self.graphql.fetch(
                self._document, request, errors_policy=self.endpoint.graphql_errors
            )
        return await self.client.fetch(request, method=self.endpoint.method)

    def _records(self, fetched: FetchedPage) -> list[Any]:
        response = PageResponse(body=fetched.body, headers=fetched.headers, url=fetched.url)
        records = self.paginator.records(response)
        if not isinstance(records, list):
            raise ResponseShapeError(
                f"{self.spec.source}.{self.name}: expected a list of records at "
                f"{self.endpoint.records or 'the top level'}, got {type(records).__name__}"
            )
        return records

    async def _chain(
        self, first: PageRequest, parent: Mapping[str, Any] | None
    ) -> AsyncIterator[ExtractedPage]:
        guard = PageLoopGuard(self.endpoint.max_pages)
        request: PageRequest | None = first
        index = 0
        while request is not None:
            guard.check_request(request)
            fetched = await self._fetch(request)
            response = PageResponse(body=fetched.body, headers=fetched.headers, url=fetched.url)
            records = self._records(fetched)
            guard.check_page(records)
            plan = self.paginator.all_requests(request, response) if index == 0 else None
            if plan is not None:
                yield ExtractedPage(index, fetched, records, plan[0] if plan else None, parent)
                async for page in self._fetch_in_order(plan, guard, parent):
                    yield page
                return
            following = self.paginator.next_request(request, response) if records else None
            yield ExtractedPage(index, fetched, records, following, parent)
            if guard.should_stop():
                return
            request, index = following, index + 1

    async def _fetch_in_order(
        self, plan: list[PageRequest], guard: PageLoopGuard, parent: Mapping[str, Any] | None
    ) -> AsyncIterator[ExtractedPage]:
        """Fetch known pages `concurrency` at a time, yielding them in order (bounded memory)."""
        in_flight: deque[asyncio.Task[FetchedPage]] = deque()
        upcoming = iter(plan)
        try:
            for request in upcoming:
                in_flight.append(asyncio.create_task(self._fetch(request)))
                if len(in_flight) >= self.spec.concurrency:
                    break
            position = 0
            while in_flight:
                fetched = await in_flight.popleft()
                following = next(upcoming, None)
                if following is not None:
                    in_flight.append(asyncio.create_task(self._fetch(following)))
                records = self._records(fetched)
                position += 1
                guard.check_page(records)
                resume = plan[position] if position < len(plan) else None
                yield ExtractedPage(position, fetched, records, resume, parent)
                if guard.should_stop():
                    return
        finally:
            for task in in_flight:
                task.cancel()

    async def _child_pages(self) -> AsyncIterator[ExtractedPage]:
        """Run the endpoint once per parent record, `parent.concurrency` parents at a time."""
        assert self.endpoint.parent is not None
        link = self.endpoint.parent
        parent_partition = (
            self.partition if self.spec.endpoints[link.endpoint].is_partitioned else None
        )
        parents = EndpointExtractor(
            self.spec,
            link.endpoint,
            self.client,
            partition=parent_partition,
            full_refresh=True,
            graphql=self.graphql,
        )
        queue: asyncio.Queue[ExtractedPage | BaseException | None] = asyncio.Queue(
            maxsize=link.concurrency * 2
        )
        slots = asyncio.Semaphore(link.concurrency)

        async def run_child(values: dict[str, Any]) -> None:
            try:
                first = self.paginator.first_request(self.base_request(values))
                async for page in self._chain(first, parent=values):
                    await queue.put(page)
            except BaseException as exc:  # handed to the consumer, which re-raises it
                await queue.put(exc)
            finally:
                slots.release()

        async def feed() -> None:
            tasks: set[asyncio.Task[None]] = set()
            try:
                async for parent_page in parents.pages():
                    for record in parent_page.records:
                        values = {name: select(record, path) for name, path in link.fields.items()}
                        await slots.acquire()
                        task = asyncio.create_task(run_child(values))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                await asyncio.gather(*tasks)
            except BaseException as exc:
                for task in tasks:
                    task.cancel()
                await queue.put(exc)
            finally:
                await queue.put(None)

        feeder = asyncio.create_task(feed())
        index = 0
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                item.index = index
                index += 1
                yield item
        finally:
            feeder.cancel()

    # -- incremental -----------------------------------------------------------------------

    def _track_mark(self, records: list[Any]) -> None:
        assert self.endpoint.incremental is not None
        path = self.endpoint.incremental.cursor_field
        for record in records:
            try:
                value = select(record, path)
            except ResponseShapeError:
                continue
            instant = parse_instant(value)
            if self._mark is None:
                self._mark = (instant, value)
                continue
            best_instant, best_value = self._mark
            if instant is not None and (best_instant is None or instant > best_instant):
                self._mark = (instant, value)
            elif instant is None and best_instant is None and value > best_value:
                self._mark = (None, value)

    def pending_mark(self) -> str | None:
        """The high-water mark this extraction reached, not stored yet (None: nothing to store)."""
        if self._mark is None or self.state is None or self.endpoint.incremental is None:
            return None
        instant, value = self._mark
        return str(format_instant(instant, "iso")) if instant else str(value)

    def commit_state(self) -> str | None:
        """Store the high-water mark: call once the extraction has landed successfully."""
        mark = self.pending_mark()
        if mark is None or self.state is None:
            return None
        self.state.set(self.spec.source, self.name, self.partition, mark)
        self.summary.high_water_mark = mark
        return mark


def _fill(value: Any, placeholders: Mapping[str, Any]) -> Any:
    """`{name}` placeholders of a param or GraphQL variable filled from the parent record.

    A value that is exactly one placeholder takes the parent's value as it is (an Int stays
    an Int for GraphQL); placeholders inside a longer string are formatted into it.
    """
    if not isinstance(value, str):
        return value
    whole = _PLACEHOLDER.fullmatch(value)
    if whole is not None and whole.group(1) in placeholders:
        return placeholders[whole.group(1)]
    return value.format(**placeholders)
