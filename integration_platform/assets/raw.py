"""The raw asset factory: every endpoint of every spec becomes `raw/<source>/<endpoint>`.

Each asset extracts its partition into the landing zone (resuming an attempt a crash left
behind), loads it in one transaction under the warehouse write lock, publishes the read-only
copy, and reports a schema-drift check that blocks downstream assets on breaking changes.
(No `from __future__ import annotations` here: Dagster reads the config annotation at runtime.)
"""

import asyncio
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetsDefinition,
    BackfillPolicy,
    Backoff,
    Config,
    Failure,
    FreshnessPolicy,
    Jitter,
    MaterializeResult,
    MetadataValue,
    OpExecutionContext,
    RetryPolicy,
    asset,
)

from integration_platform.assets.partitions import (
    ClientPartition,
    parse_partition_key,
    partitions_for,
)
from integration_platform.assets.resources import (
    ApiSourceResource,
    LandingZoneResource,
    WarehouseResource,
)
from integration_platform.extraction.windows import UNPARTITIONED
from integration_platform.http.errors import (
    CircuitOpenError,
    ExtractionError,
    RequestFailed,
    RetriesExhausted,
)
from integration_platform.landing.ingest import Landed, extract_to_landing
from integration_platform.landing.lease import PartitionBusyError, PartitionLease
from integration_platform.landing.loader import LoadCountError, LoadResult, Stager, ensure_schema
from integration_platform.landing.warehouse import WarehouseBusyError
from integration_platform.landing.zone import Attempt
from integration_platform.specs.credentials import MissingCredentialsError
from integration_platform.specs.loader import SpecError
from integration_platform.specs.models import SourceSpec

DRIFT_CHECK = "schema_drift"
# A whole-step retry for what outlasts the HTTP engine's own retries (an API down for a
# minute, a long load holding the write lock).
RAW_RETRY_POLICY = RetryPolicy(
    max_retries=2, delay=5, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)


class RawLoadConfig(Config):
    full_refresh: bool = False
    """Ignore the incremental high-water mark and replace the whole partition."""
    resume: bool = True
    """Continue an extraction a crashed run left unfinished (set False to start over)."""
    accept_drift: bool = False
    """Records break the schema contract (a field gone or retyped) and that is the API's new
    shape: take it into the contract and load them. Without it such a partition is held: it
    keeps its previous rows and the run fails, saying what changed."""


def raw_asset_key(source: str, endpoint: str) -> AssetKey:
    return AssetKey(["raw", source, endpoint])


def api_resource_key(source: str) -> str:
    return f"api_{source}"


def raw_group(source: str, *, partitioned_by_day: bool) -> str:
    """`crm` for the client x day endpoints, `crm_reference` for those partitioned by client
    alone: a group is one kind of partition, so a group selection runs as one run
    (`dg launch --assets group:crm --partition-range ...`)."""
    return source if partitioned_by_day else f"{source}_reference"


def build_raw_asset(
    spec: SourceSpec, endpoint: str, *, retry_policy: RetryPolicy | None = RAW_RETRY_POLICY
) -> AssetsDefinition:
    config = spec.endpoints[endpoint]
    key = raw_asset_key(spec.source, endpoint)
    api_key = api_resource_key(spec.source)
    description = (config.description or f"{spec.source} {endpoint}") + (
        f"\n\nRaw records of `{spec.source}.{endpoint}` as received, one row per record, "
        f"in `raw.{spec.source}__{endpoint}` with lineage columns."
    )

    @asset(
        key=key,
        group_name=raw_group(spec.source, partitioned_by_day=config.is_partitioned),
        kinds={spec.kind, "duckdb"},
        description=description,
        partitions_def=partitions_for(config),
        retry_policy=retry_policy,
        # (client x day), or client alone for reference data. One run per backfill range:
        # partitions extract concurrently inside it, and `--partition-range` works.
        backfill_policy=BackfillPolicy.single_run(),
        # A scheduled source should have loaded yesterday by the end of today.
        freshness_policy=FreshnessPolicy.time_window(
            fail_window=timedelta(hours=48),
            warn_window=timedelta(hours=30),
        )
        if spec.schedule and config.is_partitioned
        else None,
        pool=f"api_{spec.source}",
        required_resource_keys={api_key, "warehouse", "landing"},
        check_specs=[
            AssetCheckSpec(
                DRIFT_CHECK,
                asset=key,
                blocking=True,
                description="Records match the endpoint's schema contract: error when a required "
                "field disappears, is renamed or changes type; warning on new fields.",
            )
        ],
        metadata={
            "source": spec.source,
            "endpoint": endpoint,
            "dagster/table_name": f"raw.{spec.source}__{endpoint}",
            "primary_key": ", ".join(config.primary_keys),
        },
    )
    def _raw(context: AssetExecutionContext, config: RawLoadConfig) -> Iterator[Any]:
        yield from materialize_raw(context, config, source=spec.source, endpoint=endpoint)

    return _raw


@dataclass
class PartitionOutcome:
    partition: ClientPartition
    landed: Landed
    result: LoadResult
    attempt: Attempt
    mode: str
    lock_wait: float
    lease_wait: float = 0.0


class RawRun:
    """One run of one raw asset: its partitions extract concurrently, load one at a time.

    Each partition belongs to a client: its spec is resolved with that client's credentials,
    its pages, marks and rate limits live in that client's folders, its rows carry its id.
    """

    def __init__(
        self,
        context: AssetExecutionContext | OpExecutionContext,
        run_config: RawLoadConfig,
        source: str,
        endpoint: str,
    ) -> None:
        self.context = context
        self.config = run_config
        self.source, self.endpoint = source, endpoint
        self.api: ApiSourceResource = getattr(context.resources, api_resource_key(source))
        self.landing: LandingZoneResource = context.resources.landing
        self.warehouse_resource: WarehouseResource = context.resources.warehouse
        self.warehouse = self.warehouse_resource.warehouse()
        self.run_id = context.run.run_id
        self._specs: dict[str, SourceSpec] = {}

    def partitions(self) -> list[ClientPartition]:
        return [parse_partition_key(key) for key in self.context.partition_keys]

    def spec(self, client_id: str) -> SourceSpec:
        """The source's spec resolved with this client's credentials (once per run); a
        client without them, or a variable unset, fails the run at once (no retry can help)."""
        if client_id not in self._specs:
            try:
                self._specs[client_id] = self.api.spec(client_id)
            except (MissingCredentialsError, SpecError) as exc:
                raise Failure(
                    description=f"{self.source} for client {client_id}: {exc}", allow_retries=False
                ) from exc
        return self._specs[client_id]

    async def run(self) -> list[PartitionOutcome | BaseException]:
        """Each partition's outcome, or what stopped it (the others still finish)."""
        slots = asyncio.Semaphore(PARTITIONS_IN_FLIGHT)

        async def one(partition: ClientPartition) -> PartitionOutcome:
            # A slot lasts until the load: each partition in flight holds a Stager (up to
            # load_memory_mb), so a long backfill cannot pile up staged partitions.
            async with slots, self.lease(partition).held() as lease_wait:
                if lease_wait >= 1:
                    self.context.log.info(
                        f"waited {lease_wait:.0f} s for another run to finish partition {partition}"
                    )
                attempt, landed, mode, stager = await self.extract(partition)
                assert stager is not None
                # DuckDB work is blocking: keep it off the event loop so extractions go on.
                with stager:
                    outcome = await asyncio.to_thread(
                        self.load, partition, attempt, landed, mode, stager
                    )
                outcome.lease_wait = lease_wait
                return outcome

        return list(
            await asyncio.gather(*(one(p) for p in self.partitions()), return_exceptions=True)
        )

    def lease(self, partition: ClientPartition) -> PartitionLease:
        zone = self.landing.zone(partition.client_id)
        return PartitionLease(
            zone.lease_folder(self.source, self.endpoint, partition.day),
            what=f"{self.source}/{self.endpoint} partition {partition}",
            run_id=self.run_id,
            timeout_seconds=self.landing.lease_timeout_seconds,
        )

    async def extract(
        self, partition: ClientPartition, *, staging: bool = True
    ) -> tuple[Attempt, Landed, str, Stager | None]:
        """Land the partition's pages; with `staging`, a Stager stages them while they land
        (off when the load is another step, in another process: it stages from the pages)."""
        client, day = partition.client_id, partition.day
        spec = self.spec(client)
        endpoint_spec = spec.endpoints[self.endpoint]
        state = self.landing.incremental_state(client)
        # A full refresh must not continue an unfinished incremental attempt: those pages
        # hold only the changes since the mark, and a full refresh replaces the partition.
        resume = (
            self.config.resume
            and endpoint_spec.parent is None
            and not (self.config.full_refresh and endpoint_spec.incremental is not None)
        )
        attempt = self.landing.zone(client).open_attempt(
            self.source, self.endpoint, day, self.run_id, resume=resume
        )
        incremental = (
            endpoint_spec.incremental is not None
            and not self.config.full_refresh
            and state.get(self.source, self.endpoint, day) is not None
        )
        # DuckDB stages the pages on another core while they land.
        stager = self.stager(spec, attempt) if staging else None
        try:
            landed = await extract_to_landing(
                spec,
                self.endpoint,
                attempt,
                partition=day,
                run_id=self.run_id,
                state=state,
                full_refresh=self.config.full_refresh,
                rate_limit_dir=self.landing.rate_limit_dir(client),
            )
        except BaseException as exc:
            if stager is not None:
                stager.close()  # whatever stopped the extraction, nothing will be loaded
            if not isinstance(exc, ExtractionError):
                raise
            await asyncio.to_thread(
                _record_failed_request,
                self.warehouse_resource,
                self.source,
                self.endpoint,
                partition,
                self.run_id,
                exc,
            )
            raise Failure(
                description=f"{self.source}.{self.endpoint} [{partition}]: {exc}",
                metadata={
                    "landing_attempt": MetadataValue.path(str(attempt.folder)),
                    "pages_landed": len(attempt.entries()),
                },
                # A later try can succeed only when the API was failing, not when it refused.
                allow_retries=isinstance(exc, RetriesExhausted | CircuitOpenError),
            ) from exc
        if landed.resumed_after_pages:
            self.context.log.info(
                f"resumed {attempt.folder.name} after {landed.resumed_after_pages} landed page(s)"
            )
        return attempt, landed, "merge" if incremental else "replace", stager

    def stager(self, spec: SourceSpec, attempt: Attempt) -> Stager:
        # DuckDB's temp files, if it spills, go with the attempt.
        return Stager(
            spec,
            self.endpoint,
            attempt,
            temp_directory=attempt.temp_directory,
            memory_limit_mb=self.warehouse.load_memory_mb,
        )

    def load(
        self,
        partition: ClientPartition,
        attempt: Attempt,
        landed: Landed,
        mode: str,
        stager: Stager,
        *,
        mark: str | None = None,
    ) -> PartitionOutcome:
        """Load the landed attempt in one transaction under the write lock, then store the
        high-water mark (the extractor's, or `mark` when another step extracted)."""
        stager.finish()  # the last pages, before taking the lock
        with self.warehouse.locked() as lock_wait:
            try:
                result = stager.load(
                    self.warehouse.path,
                    partition=partition.day,
                    client_id=partition.client_id,
                    run_id=self.run_id,
                    mode="merge" if mode == "merge" else "replace",
                    on_breaking_drift="accept" if self.config.accept_drift else "hold",
                )
            except LoadCountError as exc:
                # The same pages would read the same way again: no retry.
                raise Failure(
                    description=str(exc),
                    allow_retries=False,
                    metadata={"landing_attempt": MetadataValue.path(str(attempt.folder))},
                ) from exc
        if landed.extractor is not None and not result.held:
            landed.extractor.commit_state()  # a held load must be fetched again next time
        elif mark is not None and not result.held:
            self.landing.incremental_state(partition.client_id).set(
                self.source, self.endpoint, partition.day, mark
            )
            landed.summary.high_water_mark = mark
        self.landing.zone(partition.client_id).prune(
            self.source, self.endpoint, partition.day, keep=self.landing.keep_attempts
        )
        return PartitionOutcome(partition, landed, result, attempt, mode, lock_wait)

    def publish(self) -> None:
        if self.warehouse_resource.publish:
            with self.warehouse.locked():
                self.warehouse.publish()


# Partitions of one run in flight at once (extracting, or loading what they extracted); the
# source's shared rate limit still applies.
PARTITIONS_IN_FLIGHT = 3


def materialize_raw(
    context: AssetExecutionContext, run_config: RawLoadConfig, *, source: str, endpoint: str
) -> Iterator[Any]:
    raw_run = RawRun(context, run_config, source, endpoint)
    results = asyncio.run(raw_run.run())

    def succeeded(metadata: dict[str, Any], check: AssetCheckResult) -> Iterator[Any]:
        yield MaterializeResult(metadata=metadata, check_results=[check])

    yield from report_outcomes(raw_run, results, succeeded)


def report_outcomes(
    raw_run: RawRun,
    results: Sequence[PartitionOutcome | BaseException],
    succeeded: Callable[[dict[str, Any], AssetCheckResult], Iterator[Any]],
) -> Iterator[Any]:
    """Publish what loaded and report it: `succeeded(metadata, drift check)` when every
    partition loaded; else a materialization per loaded partition, the drift check and a
    Failure naming the partitions that did not load (held, or failed with their errors)."""
    source, endpoint = raw_run.source, raw_run.endpoint
    partitions = raw_run.partitions()
    outcomes = [r for r in results if isinstance(r, PartitionOutcome)]
    errors = {
        p: r for p, r in zip(partitions, results, strict=True) if isinstance(r, BaseException)
    }
    for error in errors.values():
        if not isinstance(error, Exception):
            raise error  # an interrupt, not a partition's failure
    loaded = [o for o in outcomes if not o.result.held]
    held = [o for o in outcomes if o.result.held]
    if loaded:
        raw_run.publish()
    if not errors and not held:
        yield from succeeded(_metadata(outcomes), _drift_check([o.result for o in outcomes]))
        return
    if len(errors) == 1 and not outcomes:
        raise next(iter(errors.values()))
    # Some partitions did not load. Say exactly which did (each its own materialization),
    # then fail the step for the rest: the warehouse and Dagster's record agree.
    for outcome in loaded:
        yield AssetMaterialization(
            asset_key=raw_asset_key(source, endpoint),
            partition=outcome.partition.key,
            metadata=_metadata([outcome]),
        )
    if outcomes:
        yield _drift_check([o.result for o in outcomes], held=held)
    problems = [_held_text(o) for o in held]
    problems += [f"Partition {p}: {error_text(e)}" for p, e in errors.items()]
    raise Failure(
        description=f"{source}.{endpoint}: {len(loaded)} of {len(partitions)} partition(s) "
        "loaded. " + " ".join(problems),
        metadata={
            "loaded_partitions": MetadataValue.json([str(o.partition) for o in loaded]),
            "held_partitions": MetadataValue.json([str(o.partition) for o in held]),
            "failed_partitions": MetadataValue.json([str(p) for p in errors]),
        },
        allow_retries=not held and all(retriable(e) for e in errors.values()),
    )


def _metadata(outcomes: list[PartitionOutcome]) -> dict[str, Any]:
    """What the loads of these partitions did, in numbers that reconcile: records (extracted)
    = rows_loaded + dead_letters + duplicates_superseded."""
    summaries = [o.landed.summary for o in outcomes]
    results = [o.result for o in outcomes]
    last = outcomes[-1]
    metadata: dict[str, Any] = {
        "records": sum(r.records_extracted for r in results),
        "rows_loaded": sum(r.rows for r in results),
        "dagster/row_count": sum(r.rows for r in results),
        "dead_letters": sum(r.dead_letters for r in results),
        "duplicates_superseded": sum(r.duplicates for r in results),
        "pages": sum(s.pages for s in summaries),
        "requests": sum(s.requests for s in summaries),
        "retries": sum(s.retries for s in summaries),
        "429s": sum(s.throttled for s in summaries),
        "bytes": sum(s.bytes for s in summaries),
        "extract_seconds": round(sum(s.seconds for s in summaries), 3),
        "load_seconds": round(sum(r.seconds for r in results), 3),
        "lock_wait_seconds": round(sum(o.lock_wait for o in outcomes), 3),
        "lease_wait_seconds": round(sum(o.lease_wait for o in outcomes), 3),
        "schema_hash": last.result.schema_hash,
        "table": last.result.table,
        "load_mode": last.mode,
        "resumed_after_pages": sum(o.landed.resumed_after_pages for o in outcomes),
        "landing_attempt": MetadataValue.path(str(last.attempt.folder)),
        "preview": MetadataValue.md(_preview_markdown(last.result)),
    }
    if len(outcomes) > 1:
        metadata["partitions"] = len(outcomes)
        metadata["rows_per_partition"] = MetadataValue.json(
            {str(o.partition): o.result.rows for o in outcomes}
        )
    return metadata


def _held_text(outcome: PartitionOutcome) -> str:
    result = outcome.result
    return (
        f"Partition {outcome.partition} held: its "
        f"{result.records_extracted} new record(s) break the schema contract "
        f"({result.drift.summary()}), so it keeps its previous {result.rows_kept} row(s) "
        f"and nothing was replaced; the new pages are in {outcome.attempt.folder}. If "
        "this is the API's new shape, run again with config accept_drift: true (or "
        "update the contract in the spec); otherwise report it to the API's owner."
    )


def error_text(error: BaseException) -> str:
    if isinstance(error, Failure) and error.description:
        return error.description
    return f"{type(error).__name__}: {error}"


def retriable(error: BaseException) -> bool:
    """Whether a later try could succeed: an API that kept failing, a busy warehouse or
    partition; not a refusal, a wrong shape or counts that do not add up."""
    if isinstance(error, Failure):
        return bool(error.allow_retries)
    return isinstance(error, WarehouseBusyError | PartitionBusyError)


def _drift_check(
    results: list[LoadResult], held: Sequence[PartitionOutcome] = ()
) -> AssetCheckResult:
    """One check result for the run: the worst drift any of its partitions showed."""
    worst = max(
        results,
        key=lambda r: (
            r.drift.breaking and not r.drift_accepted,
            r.drift.breaking,
            bool(r.drift.new_fields),
        ),
    )
    report = worst.drift
    blocking = report.breaking and not worst.drift_accepted
    description = report.summary()
    if worst.drift_accepted:
        description = f"accepted into the contract (accept_drift): {description}"
    metadata: dict[str, Any] = {
        "difference": MetadataValue.json(report.as_dict()),
        "dead_letters": sum(r.dead_letters for r in results),
        "schema_hash": worst.schema_hash,
        "contract_created": any(r.contract_created for r in results),
    }
    if held:
        description = f"{len(held)} partition(s) held, previous rows kept: {description}"
        metadata["held"] = MetadataValue.json(
            {
                str(o.partition): {
                    "rows_kept": o.result.rows_kept,
                    "records_not_loaded": o.result.records_extracted,
                    "landing_attempt": str(o.attempt.folder),
                }
                for o in held
            }
        )
    return AssetCheckResult(
        check_name=DRIFT_CHECK,
        passed=not blocking and not report.new_fields,
        severity=AssetCheckSeverity.ERROR if blocking else AssetCheckSeverity.WARN,
        description=description,
        metadata=metadata,
    )


def _preview_markdown(result: LoadResult) -> str:
    if not result.preview:
        return "_no records_"
    columns = [k for k, v in result.preview[0].items() if not isinstance(v, dict | list)][:8]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for record in result.preview:
        cells = [str(record.get(c, "")).replace("|", "\\|")[:40] for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _record_failed_request(
    warehouse: WarehouseResource,
    source: str,
    endpoint: str,
    partition: ClientPartition,
    run_id: str,
    exc: ExtractionError,
) -> None:
    attempts = len(exc.attempts) if isinstance(exc, RequestFailed) else 1
    request = exc.request if isinstance(exc, RequestFailed) else ""
    with warehouse.read_write() as connection:
        ensure_schema(connection)
        connection.execute(
            "INSERT INTO raw._failed_requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                source,
                endpoint,
                partition.day or UNPARTITIONED,
                run_id,
                request,
                str(exc)[:2000],
                attempts,
                datetime.now(UTC),
                partition.client_id,
            ],
        )


def raw_assets(
    specs: dict[str, SourceSpec], *, retry_policy: RetryPolicy | None = RAW_RETRY_POLICY
) -> list[AssetsDefinition]:
    return [
        build_raw_asset(spec, endpoint, retry_policy=retry_policy)
        for spec in specs.values()
        for endpoint in spec.endpoints
    ]
