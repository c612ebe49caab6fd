"""Which clients' marts lag behind their raw data, and by how much: the `client_lag` check.

A mart is as fresh as the last dbt build; a client's raw data that landed after that build has
been waiting for it since it landed. Per client, the lag is how long its oldest raw partition
landed after the build has waited (0 when the build read everything). The `client_lag_sensor`
reports the check on every mart each minute the figures change (the UI's Checks tab of each
mart, with the lag per client); it can also be run from the UI like any check.
"""

# No `from __future__ import annotations`: Dagster reads the check's context annotation.
import json
import time
from collections.abc import Iterable, Iterator, Sequence

from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetRecordsFilter,
    AssetsDefinition,
    DagsterInstance,
    MetadataValue,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    multi_asset_check,
    sensor,
)

from integration_platform.assets.partitions import CLIENTS_PARTITIONS, parse_partition_key
from integration_platform.automation.switch import default_status

CLIENT_LAG = "client_lag"
# A client whose raw data has waited longer than this for the marts fails the check (WARN):
# a build takes minutes; waiting for raw loads to finish is capped at the half-hour mark.
MAX_LAG_SECONDS = 45 * 60
# The sensor reports unchanged figures again after this long (so "lag 0" stays recent).
REPORT_AGAIN_SECONDS = 15 * 60


def mart_keys(assets: Iterable[AssetsDefinition]) -> list[AssetKey]:
    return sorted(
        (key for a in assets for key in a.keys if key.path[0] == "marts"),
        key=lambda k: k.to_user_string(),
    )


def client_lags(
    instance: DagsterInstance, raw_keys: Sequence[AssetKey], built_at: float | None, now: float
) -> dict[str, float]:
    """Seconds each registered client's raw data has waited for the build that `built_at`
    finished (None: never built: everything waits)."""
    waiting_since: dict[str, float] = {}
    for key in raw_keys:
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=key, after_timestamp=built_at), limit=10_000
        ).records
        for record in records:
            if not record.partition_key:
                continue
            client = parse_partition_key(record.partition_key).client_id
            waiting_since[client] = min(waiting_since.get(client, now), record.timestamp)
    clients = instance.get_dynamic_partitions(CLIENTS_PARTITIONS)
    return {
        c: round(max(0.0, now - waiting_since[c]), 3) if c in waiting_since else 0.0
        for c in clients
    }


def _lag_result(lags: dict[str, float]) -> tuple[bool, dict[str, MetadataValue]]:
    lagging = {c: s for c, s in lags.items() if s > 0}
    metadata: dict[str, MetadataValue] = {
        "clients lagging": MetadataValue.int(len(lagging)),
        "max lag (s)": MetadataValue.float(max(lags.values(), default=0.0)),
        "lag by client (s)": MetadataValue.json(dict(sorted(lags.items()))),
    }
    return all(s <= MAX_LAG_SECONDS for s in lags.values()), metadata


def _built_at(instance: DagsterInstance, mart: AssetKey) -> float | None:
    event = instance.get_latest_materialization_event(mart)
    return event.timestamp if event else None


def build_client_lag(
    marts: Sequence[AssetKey], raw_keys: Sequence[AssetKey]
) -> tuple[AssetsDefinition, SensorDefinition]:
    specs = [
        AssetCheckSpec(
            CLIENT_LAG,
            asset=mart,
            description="Per client, how long its newest raw data has waited for this mart "
            f"(warns over {MAX_LAG_SECONDS // 60} minutes).",
        )
        for mart in marts
    ]

    @multi_asset_check(specs=specs, can_subset=True, name="client_lag")
    def client_lag(context: AssetCheckExecutionContext) -> Iterator[AssetCheckResult]:
        now = time.time()
        for check in context.selected_asset_check_keys:
            built_at = _built_at(context.instance, check.asset_key)
            passed, metadata = _lag_result(client_lags(context.instance, raw_keys, built_at, now))
            yield AssetCheckResult(
                asset_key=check.asset_key,
                check_name=CLIENT_LAG,
                passed=passed,
                severity=AssetCheckSeverity.WARN,
                metadata=metadata,
            )

    @sensor(
        name="client_lag_sensor",
        minimum_interval_seconds=60,
        default_status=default_status(),
        description="Each minute, reports on every mart which clients' raw data waits for it "
        "and how long (the client_lag check).",
    )
    def client_lag_sensor(context: SensorEvaluationContext) -> SensorResult:
        now = time.time()
        previous = json.loads(context.cursor) if context.cursor else {}
        events, reported = [], {}
        for mart in marts:
            lags = client_lags(context.instance, raw_keys, _built_at(context.instance, mart), now)
            passed, metadata = _lag_result(lags)
            waiting = sorted(c for c, s in lags.items() if s > 0)
            state = {"passed": passed, "waiting": waiting, "at": now}
            before = previous.get(mart.to_user_string())
            if (
                before
                and before["passed"] == passed
                and before["waiting"] == waiting
                and now - before["at"] < REPORT_AGAIN_SECONDS
            ):
                reported[mart.to_user_string()] = before
                continue
            reported[mart.to_user_string()] = state
            events.append(
                AssetCheckEvaluation(
                    asset_key=mart,
                    check_name=CLIENT_LAG,
                    passed=passed,
                    severity=AssetCheckSeverity.WARN,
                    metadata=metadata,
                )
            )
        return SensorResult(asset_events=events, cursor=json.dumps(reported))

    return client_lag, client_lag_sensor
