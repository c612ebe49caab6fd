"""The instance `make run` prepares: Dagster's run queue, its limits and the warehouse pool."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterInstance
from dagster._core.instance.config import PoolGranularity
from dagster._core.run_coordinator import QueuedRunCoordinator

from integration_platform.orchestration.instance import prepare_dagster_home
from integration_platform.transform.dbt_assets import WAREHOUSE_POOL


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("INTEGRATION_PLATFORM_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "dagster_home"


def test_runs_queue_four_at_a_time_and_dbt_builds_one_at_a_time_when_make_run_prepares_it(
    home: Path,
) -> None:
    prepare_dagster_home()

    with DagsterInstance.from_config(str(home)) as instance:
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, QueuedRunCoordinator)
        assert coordinator.dequeue_interval_seconds == 1
        config = instance.get_concurrency_config()
        assert config.run_queue_config is not None
        assert config.run_queue_config.max_concurrent_runs == 4
        assert config.pool_config.default_pool_limit == 4
        # A run holds its pools' slots from launch to end (and waits in the queue for them).
        assert config.pool_config.pool_granularity == PoolGranularity.RUN
        assert instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == 1


def test_a_warehouse_limit_someone_set_stays_when_the_platform_starts_again(home: Path) -> None:
    prepare_dagster_home()
    with DagsterInstance.from_config(str(home)) as instance:
        instance.event_log_storage.set_concurrency_slots(WAREHOUSE_POOL, 2)

    prepare_dagster_home()

    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == 2
