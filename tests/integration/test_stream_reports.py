"""Stream loads reach Dagster: a flush into raw reports runless materializations of the raw
partitions it wrote, at most once per interval, in a real (temporary) Dagster instance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

from integration_platform.assets.partitions import register_clients
from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.landing.warehouse import Warehouse
from integration_platform.streams.dagster_reports import StreamLoadReporter
from integration_platform.streams.raw_sink import RawStreamSink
from integration_platform.streams.reader import StreamEvent
from tests.integration.test_sse_consumer import analytics_spec

EVENTS = AssetKey(["raw", "analytics", "events"])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    with DagsterInstance.from_config(str(_home(tmp_path))) as instance:
        register_clients(instance, DEMO_CLIENT_ID)
        yield instance


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


def _sink(tmp_path: Path, reporter: StreamLoadReporter) -> RawStreamSink:
    sink = RawStreamSink(
        analytics_spec("http://127.0.0.1:9"),
        "usage",
        warehouse=Warehouse(tmp_path / "warehouse.duckdb"),
        landing_root=tmp_path / "landing",
        run_id="test-run",
        publish_every_seconds=3600,
        reporter=reporter,
    )
    sink.resume()
    return sink


def _events(first_id: int, *days: str) -> list[StreamEvent]:
    return [
        StreamEvent(
            str(i),
            orjson.dumps(
                {
                    "event_id": i,
                    "user_id": "usr_1",
                    "event_type": "login",
                    "quantity": 1,
                    "occurred_at": f"{day}T12:00:00Z",
                    "properties": {},
                }
            ).decode(),
        )
        for i, day in enumerate(days, start=first_id)
    ]


def _reported(instance: DagsterInstance) -> list[tuple[str | None, int]]:
    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=EVENTS), limit=100)
    found = []
    for record in reversed(records.records):  # oldest first
        materialization = record.asset_materialization
        assert materialization is not None
        assert record.run_id == ""  # runless: no Dagster run wrote these rows
        found.append((materialization.partition, materialization.metadata["rows"].value))
    return found


def test_a_flush_reports_a_materialization_per_raw_partition_when_a_batch_spans_two_days(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    reporter = StreamLoadReporter(instance, report_every_seconds=300, clock=Clock())
    sink = _sink(tmp_path, reporter)

    sink.write(_events(1, "2025-06-01", "2025-06-01", "2025-06-02"))

    assert _reported(instance) == [("demo|2025-06-01", 2), ("demo|2025-06-02", 1)]
    # The raw asset's own partition keys (client x day), so the UI and automation match them.
    latest = instance.get_latest_materialization_event(EVENTS)
    assert latest is not None and latest.asset_materialization is not None
    assert latest.asset_materialization.metadata["via"].value == "stream"


def test_reports_wait_for_the_interval_and_add_up_the_rows_when_flushes_come_often(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    clock = Clock()
    reporter = StreamLoadReporter(instance, report_every_seconds=300, clock=clock)
    sink = _sink(tmp_path, reporter)

    sink.write(_events(1, "2025-06-01"))  # the first flush is reported at once
    clock.now += 10
    sink.write(_events(2, "2025-06-01", "2025-06-01"))
    clock.now += 10
    sink.write(_events(4, "2025-06-01"))
    assert _reported(instance) == [("demo|2025-06-01", 1)]  # nothing new within 300 s

    clock.now += 300
    sink.write(_events(5, "2025-06-01", "2025-06-02"))
    assert _reported(instance) == [
        ("demo|2025-06-01", 1),
        ("demo|2025-06-01", 4),  # the three flushes since the last report, in one event
        ("demo|2025-06-02", 1),
    ]

    clock.now += 1
    sink.write(_events(7, "2025-06-03"))
    reporter.flush()  # the consumer stops: what is pending is reported at once
    assert _reported(instance)[-1] == ("demo|2025-06-03", 1)


def test_a_day_outside_the_assets_partitions_is_loaded_but_not_reported_when_it_has_no_key(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    reporter = StreamLoadReporter(instance, report_every_seconds=0, clock=Clock())
    sink = _sink(tmp_path, reporter)

    result = sink.write(_events(1, "2024-06-01", "2025-06-01"))  # analytics starts 2025-01-01

    assert result.rows == 2
    assert _reported(instance) == [("demo|2025-06-01", 1)]
