"""Extraction into the landing zone: pages land one by one, resuming after the last that did."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from integration_platform.extraction.runner import EndpointExtractor, ExtractionSummary
from integration_platform.extraction.state import IncrementalState
from integration_platform.http.client import SourceClient
from integration_platform.http.clock import Clock
from integration_platform.http.graphql import GraphQLClient
from integration_platform.landing.zone import Attempt
from integration_platform.logs import bind_context
from integration_platform.specs.models import SourceSpec


@dataclass
class Landed:
    summary: ExtractionSummary
    extractor: EndpointExtractor | None  # None when the attempt had already fetched everything
    resumed_after_pages: int


async def extract_to_landing(spec: SourceSpec, endpoint: str, attempt: Attempt, *,
                             partition: str | None, run_id: str, state: IncrementalState,
                             full_refresh: bool, rate_limit_dir: Path | None = None,
                             clock: Clock | None = None) -> Landed:
    """Fetch the endpoint's pages into `attempt`, continuing it if an earlier run died."""
    with bind_context(source=spec.source, endpoint=endpoint, partition=partition,
                      run_id=run_id):
        return await _extract(spec, endpoint, attempt, partition=partition, run_id=run_id,
                              state=state, full_refresh=full_refresh,
                              rate_limit_dir=rate_limit_dir, clock=clock)


async def _extract(spec: SourceSpec, endpoint: str, attempt: Attempt, *,
                   partition: str | None, run_id: str, state: IncrementalState,
                   full_refresh: bool, rate_limit_dir: Path | None,
                   clock: Clock | None) -> Landed:
    landed, resume_from, finished = attempt.resume_point()
    if finished:
        attempt.mark_complete()
        return Landed(ExtractionSummary(spec.source, endpoint, partition), None, landed)
    async with SourceClient(spec, state_dir=rate_limit_dir, clock=clock) as client:
        graphql = GraphQLClient(client) if spec.kind == "graphql" else None
        if graphql is not None:
            await graphql.__aenter__()
        try:
            extractor = EndpointExtractor(spec, endpoint, client, partition=partition,
                                          state=state, full_refresh=full_refresh,
                                          resume_from=resume_from, graphql=graphql)
            async for page in extractor.pages():
                attempt.write_page(
                    landed + page.index + 1, page.fetched.content, records=len(page.records),
                    url=page.fetched.url, fetched_at=page.fetched.fetched_at, run_id=run_id,
                    request=page.fetched.request, next_request=page.next_request,
                    graphql_errors=page.fetched.graphql_errors)
        finally:
            if graphql is not None:
                await graphql.__aexit__(None, None, None)
    attempt.mark_complete()
    return Landed(extractor.summary, extractor, landed)
