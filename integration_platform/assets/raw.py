"""The raw asset factory: every endpoint of every spec becomes `raw/<source>/<endpoint>`.

Each asset extracts its partition into the landing zone (resuming an attempt a crash left
behind), loads it in one transaction under the warehouse write lock, publishes the read-only
copy, and reports a schema-drift check that blocks downstream assets on breaking changes.
(No `from __future__ import annotations` here: Dagster reads the config annotation at runtime.)
"""


import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import duckdb
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Backoff,
    Config,
    DailyPartitionsDefinition,
    Failure,
    Jitter,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
)

from integration_platform.assets.resources import LandingZoneResource, WarehouseResource
from integration_platform.http.errors import ExtractionError, RetriesExhausted
from integration_platform.landing.ingest import extract_to_landing
from integration_platform.landing.loader import LoadResult, ensure_schema, load_attempt
from integration_platform.landing.zone import UNPARTITIONED
from integration_platform.specs.models import EndpointSpec, SourceSpec

DRIFT_CHECK = "schema_drift"


class RawLoadConfig(Config):
    full_refresh: bool = False
    """Ignore the incremental high-water mark and replace the whole partition."""
    resume: bool = True
    """Continue an extraction a crashed run left unfinished (set False to start over)."""


def raw_asset_key(source: str, endpoint: str) -> AssetKey:
    return AssetKey(["raw", source, endpoint])


def api_resource_key(source: str) -> str:
    return f"api_{source}"


def partitions_for(endpoint: EndpointSpec) -> DailyPartitionsDefinition | None:
    if not endpoint.is_partitioned:
        return None
    window = endpoint.partitions
    assert window.start is not None
    end = window.end.isoformat() if window.end else None
    return DailyPartitionsDefinition(start_date=window.start.isoformat(), end_date=end,
                                     timezone="UTC")


def build_raw_asset(spec: SourceSpec, endpoint: str) -> AssetsDefinition:
    config = spec.endpoints[endpoint]
    key = raw_asset_key(spec.source, endpoint)
    api_key = api_resource_key(spec.source)
    description = (config.description or f"{spec.source} {endpoint}") + (
        f"\n\nRaw records of `{spec.source}.{endpoint}` as received, one row per record, "
        f"in `raw.{spec.source}__{endpoint}` with lineage columns.")

    @asset(
        key=key,
        group_name=spec.source,
        kinds={spec.kind, "duckdb"},
        description=description,
        partitions_def=partitions_for(config),
        retry_policy=RetryPolicy(max_retries=2, delay=5, backoff=Backoff.EXPONENTIAL,
                                 jitter=Jitter.PLUS_MINUS),
        pool=f"api_{spec.source}",
        required_resource_keys={api_key, "warehouse", "landing"},
        check_specs=[AssetCheckSpec(
            DRIFT_CHECK, asset=key, blocking=True,
            description="Records match the endpoint's schema contract: error when a required "
                        "field disappears, is renamed or changes type; warning on new fields.")],
        metadata={"source": spec.source, "endpoint": endpoint,
                  "dagster/table_name": f"raw.{spec.source}__{endpoint}",
                  "primary_key": ", ".join(config.primary_keys)},
    )
    def _raw(context: AssetExecutionContext, config: RawLoadConfig) -> Iterator[Any]:
        yield from materialize_raw(context, config, source=spec.source, endpoint=endpoint)

    return _raw


def materialize_raw(context: AssetExecutionContext, run_config: RawLoadConfig, *, source: str,
                    endpoint: str) -> Iterator[Any]:
    spec: SourceSpec = getattr(context.resources, api_resource_key(source)).spec()
    endpoint_spec = spec.endpoints[endpoint]
    landing: LandingZoneResource = context.resources.landing
    warehouse_resource: WarehouseResource = context.resources.warehouse
    warehouse = warehouse_resource.warehouse()
    zone, state = landing.zone(), landing.incremental_state()
    partition = context.partition_key if context.has_partition_key else None
    run_id = context.run.run_id

    resume = run_config.resume and endpoint_spec.parent is None
    attempt = zone.open_attempt(source, endpoint, partition, run_id, resume=resume)
    incremental = (endpoint_spec.incremental is not None and not run_config.full_refresh
                   and state.get(source, endpoint, partition) is not None)
    try:
        landed = asyncio.run(extract_to_landing(
            spec, endpoint, attempt, partition=partition, run_id=run_id, state=state,
            full_refresh=run_config.full_refresh, rate_limit_dir=landing.rate_limit_dir()))
    except ExtractionError as exc:
        _record_failed_request(warehouse, source, endpoint, partition, run_id, exc)
        raise Failure(
            description=f"{source}.{endpoint}: {exc}",
            metadata={"landing_attempt": MetadataValue.path(str(attempt.folder)),
                      "pages_landed": len(attempt.entries())},
        ) from exc
    if landed.resumed_after_pages:
        context.log.info(f"resumed {attempt.folder.name} after "
                         f"{landed.resumed_after_pages} landed page(s)")

    with warehouse.locked() as lock_wait:
        connection = duckdb.connect(str(warehouse.path))
        try:
            result = load_attempt(connection, spec=spec, endpoint=endpoint, attempt=attempt,
                                  partition=partition, run_id=run_id,
                                  mode="merge" if incremental else "replace")
        finally:
            connection.close()
        if warehouse_resource.publish:
            warehouse.publish()
    if landed.extractor is not None:
        landed.extractor.commit_state()
    zone.prune(source, endpoint, partition, keep=landing.keep_attempts)

    summary = landed.summary
    yield MaterializeResult(
        metadata={
            "records": summary.records,
            "rows_loaded": result.rows,
            "dagster/row_count": result.rows,
            "dead_letters": result.dead_letters,
            "pages": summary.pages,
            "requests": summary.requests,
            "retries": summary.retries,
            "429s": summary.throttled,
            "bytes": summary.bytes,
            "extract_seconds": summary.seconds,
            "load_seconds": result.seconds,
            "lock_wait_seconds": round(lock_wait, 3),
            "schema_hash": result.schema_hash,
            "table": result.table,
            "load_mode": "merge" if incremental else "replace",
            "resumed_after_pages": landed.resumed_after_pages,
            "landing_attempt": MetadataValue.path(str(attempt.folder)),
            "preview": MetadataValue.md(_preview_markdown(result)),
        },
        check_results=[_drift_check(result)],
    )


def _drift_check(result: LoadResult) -> AssetCheckResult:
    report = result.drift
    breaking = report.breaking
    return AssetCheckResult(
        check_name=DRIFT_CHECK,
        passed=not breaking and not report.new_fields,
        severity=AssetCheckSeverity.ERROR if breaking else AssetCheckSeverity.WARN,
        description=report.summary(),
        metadata={"difference": MetadataValue.json(report.as_dict()),
                  "dead_letters": result.dead_letters,
                  "schema_hash": result.schema_hash,
                  "contract_created": result.contract_created},
    )


def _preview_markdown(result: LoadResult) -> str:
    if not result.preview:
        return "_no records_"
    columns = [k for k, v in result.preview[0].items()
               if not isinstance(v, dict | list)][:8]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for record in result.preview:
        cells = [str(record.get(c, "")).replace("|", "\\|")[:40] for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _record_failed_request(warehouse: Any, source: str, endpoint: str, partition: str | None,
                           run_id: str, exc: ExtractionError) -> None:
    attempts = len(exc.attempts) if isinstance(exc, RetriesExhausted) else 1
    request = exc.request if isinstance(exc, RetriesExhausted) else ""
    with warehouse.connect() as connection:
        ensure_schema(connection)
        connection.execute(
            "INSERT INTO raw._failed_requests VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [source, endpoint, partition or UNPARTITIONED, run_id, request, str(exc)[:2000],
             attempts, datetime.now(UTC)])


def raw_assets(specs: dict[str, SourceSpec]) -> list[AssetsDefinition]:
    return [build_raw_asset(spec, endpoint)
            for spec in specs.values() for endpoint in spec.endpoints]

