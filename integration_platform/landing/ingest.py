"""Extraction into the landing zone: pages land one by one, resuming after the last that did."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from integration_platform.extraction.runner import (
    EndpointExtractor,
    ExtractionSummary,
    open_extractor,
)
from integration_platform.extraction.state import IncrementalState
from integration_platform.http.clock import Clock
from integration_platform.http.pagination import PageRequest
from integration_platform.landing.provenance import Pull
from integration_platform.landing.zone import Attempt
from integration_platform.logs import bind_context
from integration_platform.specs.models import SourceSpec


class _PageWriter:
    """Lands pages from a thread of its own, one after the other, in the order they came.

    Compressing a page, hashing it and fsyncing its manifest line release the GIL, so they run
    on another core while the event loop fetches and parses the next pages (2 of the ~10 s of
    CPU a million-record extraction spent on the loop; benchmarks/README.md, raw load). At
    most `backlog` pages wait; a failed write surfaces at the next page, and no page after it
    lands (a gap in the manifest would hide the failed page from a resume). On the way out,
    pages already handed over still land: each is whole and in order.
    """

    def __init__(self, backlog: int = 8) -> None:
        self._backlog = backlog
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="landing")
        self._pending: deque[Future[object]] = deque()
        self._failed = False

    def _write(self, write: Callable[..., object], args: Any, kwargs: Any) -> object:
        if self._failed:
            raise RuntimeError("not landed: an earlier page failed to land")
        try:
            return write(*args, **kwargs)
        except BaseException:
            self._failed = True
            raise

    async def submit(self, write: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        self._pending.append(self._executor.submit(self._write, write, args, kwargs))
        while self._pending and (len(self._pending) > self._backlog or self._pending[0].done()):
            await asyncio.wrap_future(self._pending.popleft())  # raises the write's error

    async def drain(self) -> None:
        while self._pending:
            await asyncio.wrap_future(self._pending.popleft())

    def __enter__(self) -> _PageWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._executor.shutdown(wait=True)


@dataclass
class Landed:
    summary: ExtractionSummary
    extractor: EndpointExtractor | None  # None when the attempt had already fetched everything
    resumed_after_pages: int


async def extract_to_landing(
    spec: SourceSpec,
    endpoint: str,
    attempt: Attempt,
    *,
    partition: str | None,
    run_id: str,
    state: IncrementalState,
    full_refresh: bool,
    rate_limit_dir: Path | None = None,
    clock: Clock | None = None,
) -> Landed:
    """Fetch the endpoint's pages into `attempt`, continuing it if an earlier run died."""
    with bind_context(source=spec.source, endpoint=endpoint, partition=partition, run_id=run_id):
        return await _extract(
            spec,
            endpoint,
            attempt,
            partition=partition,
            run_id=run_id,
            state=state,
            full_refresh=full_refresh,
            rate_limit_dir=rate_limit_dir,
            clock=clock,
        )


async def _extract(
    spec: SourceSpec,
    endpoint: str,
    attempt: Attempt,
    *,
    partition: str | None,
    run_id: str,
    state: IncrementalState,
    full_refresh: bool,
    rate_limit_dir: Path | None,
    clock: Clock | None,
) -> Landed:
    landed, checkpoint, finished = attempt.resume_point()
    resume_from = None if checkpoint is None else PageRequest.from_checkpoint(checkpoint)
    if finished:
        attempt.mark_complete()
        return Landed(ExtractionSummary(spec.source, endpoint, partition), None, landed)
    async with open_extractor(
        spec,
        endpoint,
        state_dir=rate_limit_dir,
        partition=partition,
        state=state,
        full_refresh=full_refresh,
        resume_from=resume_from,
        clock=clock,
    ) as extractor:
        try:
            with _PageWriter() as writer:
                async for page in extractor.pages():
                    await writer.submit(
                        attempt.write_page,
                        landed + page.index + 1,
                        page.fetched.content,
                        records=len(page.records),
                        url=page.fetched.url,
                        fetched_at=page.fetched.fetched_at,
                        run_id=run_id,
                        provenance=Pull(
                            request=page.fetched.request.to_checkpoint(),
                            next_request=(
                                None
                                if page.next_request is None
                                else page.next_request.to_checkpoint()
                            ),
                            graphql_errors=page.fetched.graphql_errors,
                        ),
                    )
                await writer.drain()
        finally:
            attempt.close()  # after the writer's last page
    attempt.mark_complete()
    return Landed(extractor.summary, extractor, landed)
