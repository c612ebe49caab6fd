"""The raw assets as two steps each, extract then load, for runs spread over celery workers.

With Dagster's celery executor a step is the unit a queue routes, so each raw asset becomes a
graph-backed asset of the same key, partitions, backfill policy, pool, check and metadata:
`<asset>_extract` lands the partitions' pages on any worker (the source's pool), and
`<asset>_load` loads them on the `warehouse` queue, whose worker is DuckDB's one writer. What
the load needs crosses in a small picklable list (attempt folders, summaries, marks) through the
run's IO manager; the pages themselves stay in the landing zone, which every worker reaches.
Without workers (`CELERY_BROKER_URL` unset) the one-step assets of raw.py are used: no second
process, no second read of the pages.
(No `from __future__ import annotations` here: Dagster reads the config annotation at runtime.)
"""

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetsDefinition,
    Failure,
    GraphOut,
    In,
    Nothing,
    OpExecutionContext,
    Out,
    Output,
    RetryPolicy,
    config_mapping,
    graph,
    op,
)

from integration_platform.assets.partitions import ClientPartition, parse_partition_key
from integration_platform.assets.raw import (
    PARTITIONS_IN_FLIGHT,
    RAW_RETRY_POLICY,
    PartitionOutcome,
    RawLoadConfig,
    RawRun,
    api_resource_key,
    build_raw_asset,
    error_text,
    raw_assets,
    report_outcomes,
    retriable,
)
from integration_platform.celery_workers import WAREHOUSE_STEP_TAGS, uses_workers
from integration_platform.extraction.runner import ExtractionSummary
from integration_platform.landing.ingest import Landed
from integration_platform.landing.zone import landing_root
from integration_platform.specs.models import SourceSpec


@dataclass(frozen=True)
class ExtractedPartition:
    """What the load step needs of one landed partition (pickled between the two steps)."""

    partition_key: str
    attempt_folder: str
    mode: str
    summary: ExtractionSummary
    resumed_after_pages: int
    mark: str | None  # the high-water mark to store once the partition has loaded
    lease_wait: float


@dataclass(frozen=True)
class FailedPartition:
    """A partition whose extraction failed in a way no retry mends (a refusal, a bad spec)."""

    partition_key: str
    error: str


Extracted = list[ExtractedPartition | FailedPartition]


def platform_raw_assets(
    specs: dict[str, SourceSpec], *, retry_policy: RetryPolicy | None = RAW_RETRY_POLICY
) -> list[AssetsDefinition]:
    """The raw assets as the platform runs them: two steps each on celery workers
    (`CELERY_BROKER_URL` set), one step each in the run's process otherwise."""
    if not uses_workers():
        return raw_assets(specs, retry_policy=retry_policy)
    return [
        build_two_step_raw_asset(spec, endpoint, retry_policy=retry_policy)
        for spec in specs.values()
        for endpoint in spec.endpoints
    ]


def build_two_step_raw_asset(
    spec: SourceSpec, endpoint: str, *, retry_policy: RetryPolicy | None = RAW_RETRY_POLICY
) -> AssetsDefinition:
    """raw.build_raw_asset's asset (the same spec: key, partitions, backfill policy, check,
    metadata, freshness) computed by an extract op and a load op."""
    one_step = build_raw_asset(spec, endpoint, retry_policy=retry_policy)
    [asset_spec] = one_step.specs
    [check_spec] = one_step.check_specs
    name = asset_spec.key.to_python_identifier()
    source = spec.source
    resources = {api_resource_key(source), "warehouse", "landing"}

    @op(
        name=f"{name}_extract",
        out=Out(list),
        required_resource_keys=resources,
        retry_policy=retry_policy,
        pool=one_step.op.pool,  # the source's API budget, as the one-step asset
    )
    def extract(context: OpExecutionContext, config: RawLoadConfig) -> Extracted:
        return extract_partitions(RawRun(context, config, source, endpoint))

    @op(
        name=f"{name}_load",
        ins={"extracted": In(list)},
        out={"result": Out(Nothing), check_spec.get_python_identifier(): Out(Nothing)},
        required_resource_keys=resources,
        retry_policy=retry_policy,
        tags=WAREHOUSE_STEP_TAGS,
    )
    def load(context: OpExecutionContext, config: RawLoadConfig, extracted: Extracted) -> Any:
        yield from load_partitions(RawRun(context, config, source, endpoint), extracted)

    @config_mapping
    def same_config(config: RawLoadConfig) -> dict[str, Any]:
        # The run config users give the one-step asset works unchanged.
        values = {"config": config.model_dump()}
        return {extract.name: values, load.name: values}

    @graph(
        name=name,
        config=same_config,
        out={"result": GraphOut(), check_spec.get_python_identifier(): GraphOut()},
    )
    def steps() -> Any:
        loaded = load(extract())
        return {"result": loaded[0], check_spec.get_python_identifier(): loaded[1]}

    two_step = AssetsDefinition.from_graph(
        steps,
        keys_by_output_name={"result": asset_spec.key},
        partitions_def=asset_spec.partitions_def,
        backfill_policy=one_step.backfill_policy,
        group_name=asset_spec.group_name,
        check_specs=[check_spec],
    )
    return two_step.map_asset_specs(lambda _: asset_spec)


def extract_partitions(raw_run: RawRun) -> Extracted:
    """Land every partition (concurrently, each under its lease); a failure that a retry could
    mend fails the step once the others have landed (the retry resumes them), one it cannot is
    handed to the load step, which loads the rest and then fails naming it."""

    async def one(partition: ClientPartition) -> ExtractedPartition:
        async with slots, raw_run.lease(partition).held() as lease_wait:
            attempt, landed, mode, _ = await raw_run.extract(partition, staging=False)
            mark = landed.extractor.pending_mark() if landed.extractor is not None else None
            return ExtractedPartition(
                partition.key,
                str(attempt.folder),
                mode,
                landed.summary,
                landed.resumed_after_pages,
                mark,
                lease_wait,
            )

    async def all_partitions() -> list[ExtractedPartition | BaseException]:
        return list(await asyncio.gather(*(one(p) for p in partitions), return_exceptions=True))

    partitions = raw_run.partitions()
    slots = asyncio.Semaphore(PARTITIONS_IN_FLIGHT)
    results = asyncio.run(all_partitions())
    errors = {
        p: r for p, r in zip(partitions, results, strict=True) if isinstance(r, BaseException)
    }
    for error in errors.values():
        if not isinstance(error, Exception):
            raise error  # an interrupt, not a partition's failure
    if len(errors) == len(partitions) == 1:
        raise next(iter(errors.values()))
    transient = {p: e for p, e in errors.items() if retriable(e)}
    if transient:
        raise Failure(
            description=f"{raw_run.source}.{raw_run.endpoint}: "
            + " ".join(f"Partition {p}: {error_text(e)}" for p, e in transient.items()),
            allow_retries=True,
        )
    return [
        FailedPartition(p.key, error_text(r)) if isinstance(r, BaseException) else r
        for p, r in zip(partitions, results, strict=True)
    ]


def load_partitions(raw_run: RawRun, extracted: Extracted) -> Iterator[Any]:
    """Load each landed partition (one transaction each, under the warehouse's write lock and
    the partition's lease), publish, then report as the one-step asset does."""

    async def one(item: ExtractedPartition) -> PartitionOutcome:
        partition = parse_partition_key(item.partition_key)
        async with raw_run.lease(partition).held():
            zone = raw_run.landing.zone(partition.client_id)
            attempt = zone.attempt(landing_root(item.attempt_folder))
            landed = Landed(item.summary, None, item.resumed_after_pages)
            with raw_run.stager(raw_run.spec(partition.client_id), attempt) as stager:
                outcome = await asyncio.to_thread(
                    raw_run.load, partition, attempt, landed, item.mode, stager, mark=item.mark
                )
        outcome.lease_wait = item.lease_wait
        return outcome

    async def in_turn() -> list[PartitionOutcome | BaseException]:
        results: list[PartitionOutcome | BaseException] = []
        for item in extracted:
            if isinstance(item, FailedPartition):
                results.append(Failure(description=item.error, allow_retries=False))
                continue
            try:
                results.append(await one(item))
            except Exception as exc:  # the others still load; report_outcomes names it
                results.append(exc)
        return results

    def succeeded(metadata: dict[str, Any], check: AssetCheckResult) -> Iterator[Any]:
        yield Output(None, output_name="result", metadata=metadata)
        yield check

    yield from report_outcomes(raw_run, asyncio.run(in_turn()), succeeded)
