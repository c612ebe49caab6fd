"""Fresh marts with no one acting, on the real platform (`integration-platform up`: the Dagster
webserver and daemon, the sandbox, the webhook receiver, the stream consumer, the API).

One platform serves the whole module. crm's schedule ticks every minute, so a scheduled raw
day lands within the first minutes; the webhook sender pushes billing events all along. The
tests wait on what the daemon does, with deadlines that hold on a loaded 2-core machine.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pytest
from dagster import AssetKey, DagsterRunStatus

from integration_platform.run_kinds import AUTOMATION, KIND_TAG, SCHEDULED, WEBHOOK_DRAIN
from tests.e2e.platform import Platform, eventually, specs_copy, start_platform, stop_platform

DIM_CUSTOMERS = AssetKey(["marts", "dim_customers"])
YESTERDAY = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
# A scheduled day: the schedule ticks within a minute, the raw run and the dbt build after it
# take minutes on a busy 2-core machine.
REFRESH_SECONDS = 1200

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3000)]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("platform")
    sources = specs_copy(root / "sources", {"crm": "* * * * *"})
    # Streams report their loads every 20 s here (300 by default).
    started = start_platform(
        root, env={"SOURCES_PATH": str(sources), "STREAM_REPORT_EVERY_SECONDS": "20"}
    )
    try:
        # One tick is enough (each tick requests the day again): stop crm's schedules once
        # it has ticked, as a user would in the UI.
        eventually(
            lambda: started.runs(**{KIND_TAG: SCHEDULED}),
            timeout=REFRESH_SECONDS,
            what="crm's schedule to tick",
            platform=started,
        )
        for schedule in ("crm_daily_schedule", "crm_reference_schedule"):
            started.stop_schedule(schedule)
        yield started
    finally:
        output = stop_platform(started)
        # Stopping the platform leaves no run marked failed by the stop itself.
        assert "Traceback" not in output, output[-3000:]


def _end_time(platform: Platform, run_id: str) -> float:
    record = platform.instance.get_run_record_by_id(run_id)
    assert record is not None and record.end_time is not None
    return float(record.end_time)


def _built_after(platform: Platform, after: float) -> Any:
    """The latest materialization of dim_customers, if an automation run made it after
    `after` and succeeded."""
    event = platform.instance.get_latest_materialization_event(DIM_CUSTOMERS)
    if event is None or event.timestamp <= after:
        return None
    run = platform.instance.get_run_by_id(event.run_id)
    if run is None or run.status != DagsterRunStatus.SUCCESS:
        return None
    return event


def _published(platform: Platform) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(platform.data / "warehouse.published.duckdb"), read_only=True)


def test_a_scheduled_raw_day_refreshes_the_marts_with_no_one_acting_when_it_lands(
    platform: Platform,
) -> None:
    def scheduled_crm() -> Any:
        runs = platform.runs(DagsterRunStatus.SUCCESS, **{KIND_TAG: SCHEDULED})
        day = [r for r in runs if r.tags.get("dagster/partition", "").endswith(YESTERDAY)]
        reference = [r for r in runs if r.tags.get("dagster/partition") == "demo"]
        return (day[0], reference[0]) if day and reference else None

    day, reference = eventually(
        scheduled_crm,
        timeout=REFRESH_SECONDS,
        what=f"crm's schedules to land {YESTERDAY} and the reference data",
        platform=platform,
        every=5,
    )
    assert (day.job_name, reference.job_name) == ("crm_daily", "crm_reference")
    ended = max(_end_time(platform, day.run_id), _end_time(platform, reference.run_id))
    built = eventually(
        lambda: _built_after(platform, ended),
        timeout=REFRESH_SECONDS,
        what="the automation to rebuild the marts after the scheduled runs",
        platform=platform,
        every=5,
    )
    run = platform.instance.get_run_by_id(built.run_id)
    assert run is not None
    assert run.tags[KIND_TAG] == AUTOMATION  # Dagster's automation_sensor requested it
    assert run.tags.get("dagster/sensor_name") == "automation_sensor"
    # The marts read what landed: the build's summary counts every raw row the schedule
    # loaded. (The sandbox's records are dated 2025, so yesterday's day is empty; crm's
    # reference data, its companies, is not.)
    with _published(platform) as warehouse:
        raw = warehouse.execute(
            "select count(*) from raw.crm__companies where _client_id = 'demo'"
        ).fetchall()
        summary = warehouse.execute(
            "select rows from marts.raw_load_summary where source = 'crm' "
            "and endpoint = 'companies' and client_id = 'demo'"
        ).fetchall()
        day_rows = warehouse.execute(
            "select count(*) from raw.crm__contacts where _partition_key = ?",
            [f"demo|{YESTERDAY}"],
        ).fetchall()
    assert raw[0][0] > 0 and summary == raw
    assert day_rows == [(0,)]


def test_one_dbt_build_at_a_time_and_each_serves_every_landing_before_it(
    platform: Platform,
) -> None:
    """The webhook drain lands billing events all along: each drain is followed by a build
    that started after it, and no two builds ever overlapped."""
    drains = eventually(
        lambda: platform.runs(DagsterRunStatus.SUCCESS, **{KIND_TAG: WEBHOOK_DRAIN}),
        timeout=REFRESH_SECONDS,
        what="a webhook drain run",
        platform=platform,
        every=5,
    )
    drained = min(_end_time(platform, run.run_id) for run in drains)
    eventually(
        lambda: _built_after(platform, drained),
        timeout=REFRESH_SECONDS,
        what="a build after the webhook drain",
        platform=platform,
        every=5,
    )
    builds = sorted(
        (
            platform.instance.get_run_record_by_id(run.run_id)
            for run in platform.runs(**{KIND_TAG: AUTOMATION})
        ),
        key=lambda record: record.start_time or 0,  # type: ignore[union-attr]
    )
    finished = [b for b in builds if b is not None and b.end_time is not None]
    assert finished
    for before, after in itertools.pairwise(finished):
        assert after.start_time is not None and before.end_time is not None
        assert after.start_time >= before.end_time - 1, "two dbt builds overlapped"
    failed = [
        b.dagster_run.run_id for b in finished if b.dagster_run.status != DagsterRunStatus.SUCCESS
    ]
    assert not failed, f"automation builds failed: {failed}\n{platform.log_tail()}"


def test_a_mart_column_carries_its_lineage_back_to_staging_when_read_from_the_instance(
    platform: Platform,
) -> None:
    eventually(
        lambda: platform.instance.get_latest_materialization_event(DIM_CUSTOMERS),
        timeout=REFRESH_SECONDS,
        what="a build of the marts",
        platform=platform,
        every=5,
    )
    # Walk dagster/column_lineage from dim_customers.email upstream, asset by asset.
    frontier = [(DIM_CUSTOMERS, "email")]
    seen: set[tuple[AssetKey, str]] = set()
    while frontier:
        key, column = frontier.pop()
        if (key, column) in seen:
            continue
        seen.add((key, column))
        event = platform.instance.get_latest_materialization_event(key)
        if event is None or event.asset_materialization is None:
            continue
        metadata = event.asset_materialization.metadata
        lineage = metadata.get("dagster/column_lineage")
        if lineage is None:
            continue
        for dep in lineage.value.deps_by_column.get(column, []):  # type: ignore[attr-defined]
            frontier.append((dep.asset_key, dep.column_name))
    layers = {key.path[0] for key, _ in seen}
    assert {"marts", "intermediate", "staging"} <= layers, sorted(seen)
    schema = platform.instance.get_latest_materialization_event(DIM_CUSTOMERS)
    assert schema is not None and schema.asset_materialization is not None
    columns = schema.asset_materialization.metadata["dagster/column_schema"].value
    types = {c.name: c.type for c in columns.columns}  # type: ignore[attr-defined]
    assert types["email"].lower() == "varchar"
    assert schema.asset_materialization.metadata["dagster/row_count"].value > 0  # type: ignore[operator]


def test_a_stream_flush_is_reported_to_dagster_and_refreshes_the_marts_when_it_lands(
    platform: Platform,
) -> None:
    """The stream consumer loads events outside any run; its reports (runless
    materializations of the raw asset) count as updates, so a build follows."""
    events = AssetKey(["raw", "analytics", "events"])

    def reported() -> Any:
        records = platform.instance.fetch_materializations(events, limit=100).records
        runless = [r for r in records if not r.run_id]
        return min(runless, key=lambda r: r.timestamp) if runless else None

    report = eventually(
        reported,
        timeout=REFRESH_SECONDS,
        what="a stream report of raw/analytics/events",
        platform=platform,
        every=5,
    )
    assert report.partition_key.startswith("demo|")
    materialization = report.event_log_entry.asset_materialization
    assert materialization is not None and materialization.metadata["rows"].value > 0  # type: ignore[operator]
    eventually(
        lambda: _built_after(platform, report.timestamp),
        timeout=REFRESH_SECONDS,
        what="a build after the stream report",
        platform=platform,
        every=5,
    )
