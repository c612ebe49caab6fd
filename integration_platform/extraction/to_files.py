"""Run one extraction outside Dagster and write each page, unchanged, as a file."""

from __future__ import annotations

import os
from pathlib import Path

from integration_platform import environment
from integration_platform.extraction.runner import ExtractionSummary, open_extractor
from integration_platform.extraction.state import IncrementalState
from integration_platform.extraction.windows import check_partition_key
from integration_platform.http.clock import Clock
from integration_platform.logs import bind_context
from integration_platform.specs.models import SourceSpec


def state_root() -> Path:
    return environment.data_dir() / "state"


async def extract_to_directory(
    spec: SourceSpec,
    endpoint: str,
    out_dir: Path,
    *,
    partition: str | None = None,
    full_refresh: bool = False,
    clock: Clock | None = None,
    state: IncrementalState | None = None,
) -> ExtractionSummary:
    """Pages land as `page-000001.json` (raw bodies); marks advance only at the end."""
    check_partition_key(f"{spec.source}.{endpoint}", spec.endpoints[endpoint], partition)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = state or IncrementalState(state_root() / "incremental")
    with bind_context(source=spec.source, endpoint=endpoint, partition=partition):
        return await _extract(spec, endpoint, out_dir, partition, full_refresh, clock, state)


async def _extract(
    spec: SourceSpec,
    endpoint: str,
    out_dir: Path,
    partition: str | None,
    full_refresh: bool,
    clock: Clock | None,
    state: IncrementalState,
) -> ExtractionSummary:
    async with open_extractor(
        spec,
        endpoint,
        state_dir=state_root() / "ratelimit",
        partition=partition,
        state=state,
        full_refresh=full_refresh,
        clock=clock,
    ) as extractor:
        async for page in extractor.pages():
            target = out_dir / f"page-{page.index + 1:06d}.json"
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(page.fetched.content)
            os.replace(tmp, target)
        extractor.commit_state()
    return extractor.summary
