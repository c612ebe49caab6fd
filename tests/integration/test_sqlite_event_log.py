"""The local profile's event log (orchestration/sqlite_events.py) keeps its SQLite connections
between events: what one instance writes, another opened on the same folder reads at once, a
long-lived process holds a bounded number of run databases open, and a wipe leaves a working
instance."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, asset, materialize

from integration_platform.orchestration.instance import prepare_dagster_home
from integration_platform.orchestration.sqlite_events import (
    OPEN_RUN_DATABASES,
    PooledSqliteEventLogStorage,
)


@asset
def numbers() -> list[int]:
    return [1, 2, 3]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("INTEGRATION_PLATFORM_DATA_DIR", str(tmp_path / "data"))
    return prepare_dagster_home()


def _storage(instance: DagsterInstance) -> PooledSqliteEventLogStorage:
    storage = instance.event_log_storage
    assert isinstance(storage, PooledSqliteEventLogStorage)
    return storage


def test_what_one_instance_writes_another_reads_at_once_when_connections_are_kept(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DAGSTER_HOME")  # a reader whose environment names no home
    with (
        DagsterInstance.from_config(str(home)) as writer,
        DagsterInstance.from_config(str(home)) as reader,
    ):
        first = materialize([numbers], instance=writer)
        assert first.success
        event = reader.get_latest_materialization_event(AssetKey("numbers"))
        assert event is not None and event.run_id == first.run_id
        second = materialize([numbers], instance=writer)
        event = reader.get_latest_materialization_event(AssetKey("numbers"))
        assert event is not None and event.run_id == second.run_id
        written = [e.dagster_event_type for e in writer.all_logs(second.run_id)]
        read = [e.dagster_event_type for e in reader.all_logs(second.run_id)]
        assert read == written and len(read) > 5
        assert (home / "history" / "runs" / f"{second.run_id}.db").exists()


def test_a_long_lived_process_keeps_a_bounded_number_of_run_databases_open(home: Path) -> None:
    with DagsterInstance.from_config(str(home)) as instance:
        runs = [materialize([numbers], instance=instance).run_id for _ in range(20)]
        open_shards = list(_storage(instance)._engines)
        assert len(open_shards) <= OPEN_RUN_DATABASES + 1  # and the index
        assert "index" in open_shards and runs[-1] in open_shards and runs[0] not in open_shards
        # a run whose database was closed is read again as written
        assert any(e.is_dagster_event for e in instance.all_logs(runs[0]))


def test_a_wiped_instance_goes_on_storing_events(home: Path) -> None:
    with DagsterInstance.from_config(str(home)) as instance:
        before = materialize([numbers], instance=instance).run_id
        instance.wipe()
        assert not (home / "history" / "runs" / f"{before}.db").exists()
        after = materialize([numbers], instance=instance)
        assert after.success
        event = instance.get_latest_materialization_event(AssetKey("numbers"))
        assert event is not None and event.run_id == after.run_id
