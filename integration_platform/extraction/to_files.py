"""Run one extraction outside Dagster and write each page, unchanged, as a file."""

from __future__ import annotations

import os
from pathlib import Path

from integration_platform import environment
from integration_platform.extraction.runner import EndpointExtractor, ExtractionSummary
from integration_platform.extraction.state import IncrementalState
from integration_platform.http.client import SourceClient
from integration_platform.http.clock import Clock
from integration_platform.http.graphql import GraphQLClient
from integration_platform.logs import bind_context
from integration_platform.specs.models import SourceSpec


def state_root() -> Path:
    return environment.data_dir() / "state"


async def extract_to_directory(spec: SourceSpec, endpoint: str, out_dir: Path, *,
                               partition: str | None = None, full_refresh: bool = False,
                               clock: Clock | None = None,
                               state: IncrementalState | None = None) -> ExtractionSummary:
    """Pages land as `page-000001.json` (raw bodies); marks advance only at the end."""
    out_dir.mkdir(parents=True, exist_ok=True)
    state = state or IncrementalState(state_root() / "incremental")
    with bind_context(source=spec.source, endpoint=endpoint, partition=partition):
        return await _extract(spec, endpoint, out_dir, partition, full_refresh, clock, state)


async def _extract(spec: SourceSpec, endpoint: str, out_dir: Path, partition: str | None,
                   full_refresh: bool, clock: Clock | None,
                   state: IncrementalState) -> ExtractionSummary:
    async with SourceClient(spec, state_dir=state_root() / "ratelimit", clock=clock) as client:
        graphql = GraphQLClient(client) if spec.kind == "graphql" else None
        if graphql is not None:
            await graphql.__aenter__()
        try:
            extractor = EndpointExtractor(spec, endpoint, client, partition=partition,
                                          state=state, full_refresh=full_refresh,
                                          graphql=graphql)
            async for page in extractor.pages():
                target = out_dir / f"page-{page.index + 1:06d}.json"
                tmp = target.with_suffix(".tmp")
                tmp.write_bytes(page.fetched.content)
                os.replace(tmp, target)
            extractor.commit_state()
        finally:
            if graphql is not None:
                await graphql.__aexit__(None, None, None)
    return extractor.summary
