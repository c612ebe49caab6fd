"""The instance `make run` prepares: Dagster's run queue, its limits and the warehouse pool; in
the production profile, on PostgreSQL (a database of each test's own: tests/postgres.py)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    EventLogEntry,
    MaterializeResult,
    RunsFilter,
    asset,
    materialize,
)
from dagster._core.instance.config import PoolGranularity
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES
from dagster._core.storage.tags import (
    PARENT_RUN_ID_TAG,
    RETRY_NUMBER_TAG,
    ROOT_RUN_ID_TAG,
    WILL_RETRY_TAG,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.utils import make_new_run_id
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.auto_run_reexecution.event_log_consumer import EventLogConsumerDaemon
from dagster._daemon.monitoring.run_monitoring import monitor_started_run, monitor_starting_run
from dagster._utils.tags import TagConcurrencyLimitsCounter
from dagster_graphql.test.utils import execute_dagster_graphql
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from integration_platform.assets.partitions import CLIENT_TAG, RANGE_END_TAG, RANGE_START_TAG
from integration_platform.clients.syncs import Sync
from integration_platform.orchestration.dagster_graphql import DagsterGraphQL, DagsterRefused
from integration_platform.orchestration.instance import (
    PRODUCTION,
    PROFILE_FILES,
    PROFILE_VARIABLE,
    InstanceProfileError,
    prepare_dagster_home,
)
from integration_platform.orchestration.orchestrator import Orchestrator
from integration_platform.orchestration.planner import SOURCE_TAG, SYNC_TAG
from integration_platform.orchestration.sqlite_events import PooledSqliteEventLogStorage
from integration_platform.transform.dbt_assets import WAREHOUSE_POOL
from tests.postgres import scratch_database


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("INTEGRATION_PLATFORM_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "dagster_home"


def test_runs_queue_four_at_a_time_and_dbt_builds_one_at_a_time_when_make_run_prepares_it(
    home: Path,
) -> None:
    prepare_dagster_home()

    assert (home / "dagster.yaml").read_text() == PROFILE_FILES["local"].read_text().replace(
        "${DAGSTER_HOME}", str(home.resolve())
    )
    with DagsterInstance.from_config(str(home)) as instance:
        # Dagster's SQLite event log in its usual folder, its connections kept (sqlite_events.py)
        events = instance.event_log_storage
        assert isinstance(events, PooledSqliteEventLogStorage)
        assert Path(events._base_dir) == home.resolve() / "history" / "runs"
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


@pytest.fixture
def dagster_database() -> Iterator[str]:
    """A PostgreSQL database of the test's own for Dagster's storage, dropped at its end."""
    with scratch_database("dagster") as url:
        # dagster-postgres connects with psycopg2, which the URL must name.
        yield url.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


@pytest.fixture
def production(home: Path, dagster_database: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(PROFILE_VARIABLE, PRODUCTION)
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", dagster_database)
    return home


@asset
def probe() -> MaterializeResult[None]:
    return MaterializeResult(metadata={"rows": 3})


def _in_flight(instance: DagsterInstance, tags: dict[str, str]) -> None:
    instance.add_run(
        DagsterRun(
            job_name="probe", run_id=make_new_run_id(), tags=tags, status=DagsterRunStatus.STARTED
        )
    )


def test_runs_and_pool_limits_are_kept_in_postgresql_when_the_production_profile_is_prepared(
    production: Path, dagster_database: str
) -> None:
    prepare_dagster_home()

    assert (production / "dagster.yaml").read_bytes() == PROFILE_FILES[PRODUCTION].read_bytes()
    assert dagster_database not in (production / "dagster.yaml").read_text()
    with DagsterInstance.from_config(str(production)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        result = materialize([probe], instance=instance, tags={CLIENT_TAG: "acme"})
        assert instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == 1
        instance.event_log_storage.set_concurrency_slots(WAREHOUSE_POOL, 2)

    # Read back by another instance (another process would do the same): all of it is in
    # PostgreSQL, none in $DAGSTER_HOME.
    assert not list(production.glob("**/*.db"))
    with DagsterInstance.from_config(str(production)) as instance:
        run = instance.get_run_by_id(result.run_id)
        assert run is not None
        assert run.status == DagsterRunStatus.SUCCESS
        assert run.tags[CLIENT_TAG] == "acme"
        event = instance.get_latest_materialization_event(probe.key)
        assert event is not None
        assert event.run_id == result.run_id
        assert event.asset_materialization is not None
        assert event.asset_materialization.metadata["rows"].value == 3
        assert instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == 2


def test_the_queue_holds_a_clients_third_run_and_a_sources_fifth_when_production_runs(
    production: Path,
) -> None:
    prepare_dagster_home()
    with DagsterInstance.from_config(str(production)) as instance:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        config = instance.get_concurrency_config()
        assert config.run_queue_config is not None
        limits = config.run_queue_config.tag_concurrency_limits
        per_unique_value = {"applyLimitPerUniqueValue": True}
        assert limits == [
            {"key": CLIENT_TAG, "value": per_unique_value, "limit": 2},
            {"key": SOURCE_TAG, "value": per_unique_value, "limit": 4},
        ]
        assert config.run_queue_config.max_concurrent_runs == 10
        assert config.pool_config.default_pool_limit == 4
        assert config.pool_config.pool_granularity == PoolGranularity.RUN
        # What the queue daemon does each tick: count the runs in progress (read from
        # PostgreSQL) by tag, and launch a queued run only if no limit is reached.
        going = [("acme", "crm"), ("acme", "billing"), ("bemo", "crm"), ("cato", "crm")]
        going.append(("dane", "crm"))
        for client, source in going:
            _in_flight(instance, {CLIENT_TAG: client, SOURCE_TAG: source})
        in_progress = instance.get_runs(RunsFilter(statuses=IN_PROGRESS_RUN_STATUSES))
        assert len(in_progress) == len(going)
        counter = TagConcurrencyLimitsCounter(limits, in_progress)

        def blocked(client: str, source: str) -> bool:
            tags = {CLIENT_TAG: client, SOURCE_TAG: source}
            return counter.is_blocked(DagsterRun(job_name="probe", tags=tags))

        assert blocked("acme", "support")  # acme has 2 runs going
        assert not blocked("bemo", "support")  # bemo has 1
        assert blocked("eve", "crm")  # crm has 4 runs going
        assert not blocked("eve", "billing")  # billing has 1
        assert not blocked("eve", "crm,billing")  # a sync's set of sources is a value of its own


def _run_with_event(instance: DagsterInstance, event: DagsterEventType, seconds_ago: float) -> str:
    """A run whose last event (`event`, which sets its status) came `seconds_ago` seconds ago,
    and nothing since: a worker that never came up, or one that died mid-run."""
    run = DagsterRun(job_name="probe", run_id=make_new_run_id())
    instance.add_run(run)
    instance.handle_new_event(
        EventLogEntry(  # type: ignore[no-untyped-call]
            error_info=None,
            level="debug",
            user_message="",
            run_id=run.run_id,
            timestamp=time.time() - seconds_ago,
            dagster_event=DagsterEvent(event.value, job_name="probe"),
        )
    )
    return run.run_id


def test_runs_whose_worker_never_started_or_died_are_failed_when_production_monitors_them(
    production: Path,
) -> None:
    prepare_dagster_home()
    log = logging.getLogger("run_monitoring")
    with DagsterInstance.from_config(str(production)) as instance:
        assert instance.run_monitoring_enabled
        assert (instance.run_retries_enabled, instance.run_retries_max_retries) == (True, 1)
        assert not instance.telemetry_enabled
        never_started = _run_with_event(instance, DagsterEventType.RUN_STARTING, 4 * 60)
        starting = _run_with_event(instance, DagsterEventType.RUN_STARTING, 60)
        died = _run_with_event(instance, DagsterEventType.RUN_START, 6 * 60 * 60 + 60)
        running = _run_with_event(instance, DagsterEventType.RUN_START, 60 * 60)
        # One pass of the monitoring daemon over these runs, as it makes them (from PostgreSQL).
        for run_id in (never_started, starting):
            record = instance.get_run_record_by_id(run_id)
            assert record is not None
            assert record.dagster_run.status == DagsterRunStatus.STARTING
            monitor_starting_run(instance, record, log)
        for run_id in (died, running):
            record = instance.get_run_record_by_id(run_id)
            assert record is not None
            assert record.dagster_run.status == DagsterRunStatus.STARTED
            # The default run launcher cannot check a started worker: no workspace is asked.
            monitor_started_run(instance, None, record, log)  # type: ignore[arg-type]

        def status(run_id: str) -> DagsterRunStatus:
            run = instance.get_run_by_id(run_id)
            assert run is not None
            return run.status

        assert status(never_started) == DagsterRunStatus.FAILURE  # 3 minutes to start
        assert status(starting) == DagsterRunStatus.STARTING
        assert status(died) == DagsterRunStatus.FAILURE  # 6 hours at most
        assert status(running) == DagsterRunStatus.STARTED


class InProcessGraphQL(DagsterGraphQL):
    """The orchestrator's GraphQL client answered by Dagster's GraphQL schema in this process,
    over a loaded workspace, as the webserver answers it (no server to start)."""

    def __init__(self, workspace: WorkspaceProcessContext) -> None:
        super().__init__("http://in-process")
        self.workspace = workspace

    def execute(
        self, query: str, variables: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        result = execute_dagster_graphql(self.workspace.create_request_context(), query, variables)
        if result.errors:
            raise DagsterRefused(f"Dagster refused the request: {result.errors}")
        return dict(result.data)


@contextmanager
def platform_workspace(instance: DagsterInstance) -> Iterator[WorkspaceProcessContext]:
    """The platform's code location (workspace.yaml's module and location name), loaded in this
    process rather than by a code server: the daemons' workspace, minus a process to start."""
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(
            executable_path=sys.executable,
            module_name="integration_platform.definitions",
            working_directory=str(Path(__file__).resolve().parents[2]),
        ),
        location_name="integration_platform",
    )
    with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as workspace:
        yield workspace


def _die_after_starting(instance: DagsterInstance, run_id: str) -> None:
    """A worker picked up the run 6 hours and a minute ago, and has sent nothing since."""
    for event in (DagsterEventType.RUN_STARTING, DagsterEventType.RUN_START):
        instance.handle_new_event(
            EventLogEntry(  # type: ignore[no-untyped-call]
                error_info=None,
                level="debug",
                user_message="",
                run_id=run_id,
                timestamp=time.time() - (6 * 60 * 60 + 60),
                dagster_event=DagsterEvent(event.value, job_name="__ASSET_JOB"),
            )
        )


def test_a_sync_run_whose_worker_died_is_retried_once_when_production_monitors_it(
    production: Path,
) -> None:
    prepare_dagster_home()
    log = logging.getLogger("run_monitoring")
    with (
        DagsterInstance.from_config(str(production)) as instance,
        platform_workspace(instance) as workspace,
        closing(InProcessGraphQL(workspace)) as graphql,
    ):
        # `dagster-daemon run` starts the run-retries daemon (EVENT_LOG_CONSUMER) only when the
        # instance enables run retries. It reads RUN_FAILURE events from where it last stopped
        # (its cursors, in PostgreSQL): one pass now, as a daemon running before the sync does.
        assert EventLogConsumerDaemon.daemon_type() in instance.get_required_daemon_types()
        retries_daemon = EventLogConsumerDaemon()
        list(retries_daemon.run_iteration(workspace))
        orchestrator = Orchestrator(graphql)
        assert orchestrator.register_client("acme")
        now = datetime.now(UTC)
        sync = Sync(
            id="sync-1",
            client_id="acme",
            sources=["crm"],
            start_date=date(2025, 3, 1),
            end_date=date(2025, 3, 2),
            full_refresh=False,
            idempotency_key=None,
            state="queued",
            raw_runs={},
            transform_run_id=None,
            error=None,
            created_at=now,
            updated_at=now,
            finished_at=None,
        )
        # The platform's own launch (the launchRun mutation the API sends): queued, not run.
        died_id = orchestrator.launch_sync(sync)["days"]
        died = instance.get_run_by_id(died_id)
        assert died is not None
        assert died.status == DagsterRunStatus.QUEUED
        assert died.asset_selection
        assert all(key.path[:2] == ["raw", "crm"] for key in died.asset_selection)
        _die_after_starting(instance, died_id)

        def monitor_and_retry(run_id: str) -> None:
            """One pass of the monitoring daemon over the run, then one of the run-retries
            daemon: Dagster internals, called as `dagster-daemon run` calls them."""
            record = instance.get_run_record_by_id(run_id)
            assert record is not None
            assert record.dagster_run.status == DagsterRunStatus.STARTED
            monitor_started_run(instance, workspace.create_request_context(), record, log)
            record = instance.get_run_record_by_id(run_id)
            assert record is not None
            assert record.dagster_run.status == DagsterRunStatus.FAILURE
            list(retries_daemon.run_iteration(workspace))

        monitor_and_retry(died_id)

        runs = instance.get_runs()
        assert len(runs) == 3  # the sync's two runs (days, reference), and the retry
        retry = next(run for run in runs if run.parent_run_id == died_id)
        assert retry.tags[PARENT_RUN_ID_TAG] == died_id
        assert retry.tags[ROOT_RUN_ID_TAG] == died_id
        assert retry.tags[RETRY_NUMBER_TAG] == "1"
        assert retry.job_name == died.job_name
        assert retry.asset_selection == died.asset_selection
        # The sync's tags carry over: the API finds the retry as the sync's run, and the
        # queue's per-client and per-source limits hold it too.
        # The same days too (the range tags of the raw assets' single-run backfill policy).
        for tag in (CLIENT_TAG, SOURCE_TAG, SYNC_TAG, RANGE_START_TAG, RANGE_END_TAG):
            assert retry.tags[tag] == died.tags[tag]
        assert retry.status == DagsterRunStatus.QUEUED  # submitted to the queue
        failed = instance.get_run_by_id(died_id)
        assert failed is not None
        assert failed.tags[WILL_RETRY_TAG] == "true"

        # The retry's worker dies too: max_retries 1, so no third run of it.
        _die_after_starting(instance, retry.run_id)
        monitor_and_retry(retry.run_id)

        assert len(instance.get_runs()) == 3
        failed_retry = instance.get_run_by_id(retry.run_id)
        assert failed_retry is not None
        assert failed_retry.status == DagsterRunStatus.FAILURE
        assert failed_retry.tags[WILL_RETRY_TAG] == "false"
        list(retries_daemon.run_iteration(workspace))  # a later pass finds nothing new
        assert len(instance.get_runs()) == 3


def test_the_variable_to_set_is_named_when_the_production_profile_lacks_its_database(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PROFILE_VARIABLE, PRODUCTION)
    monkeypatch.delenv("DAGSTER_POSTGRES_URL", raising=False)
    with pytest.raises(
        InstanceProfileError, match=r"set DAGSTER_POSTGRES_URL \(a postgresql\+psycopg2:// URL"
    ):
        prepare_dagster_home()
    assert not (home / "dagster.yaml").exists()


def test_a_postgres_url_without_psycopg2_is_refused_without_echoing_it_when_prepared(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PROFILE_VARIABLE, PRODUCTION)
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", "postgresql://dagster:s3cret-pw@db:5432/dagster")
    with pytest.raises(InstanceProfileError) as refused:
        prepare_dagster_home()
    assert "must start with postgresql+psycopg2://, not postgresql://" in str(refused.value)
    assert "s3cret-pw" not in str(refused.value)


def test_an_unknown_profile_is_refused_naming_the_profiles_when_prepared(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PROFILE_VARIABLE, "prod")
    with pytest.raises(InstanceProfileError, match="use one of local, production"):
        prepare_dagster_home()


@pytest.mark.parametrize("command", [["materialize", "--partition", "2025-03-01"], ["demo"]])
def test_a_command_prints_the_profiles_missing_variable_in_one_line_when_it_starts(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    from click.testing import CliRunner

    from integration_platform.cli import main

    monkeypatch.setenv(PROFILE_VARIABLE, PRODUCTION)
    monkeypatch.delenv("DAGSTER_POSTGRES_URL", raising=False)
    result = CliRunner().invoke(main, command)
    printed = result.output + "".join(capfd.readouterr())
    assert result.exit_code == 1, printed
    assert printed.strip().splitlines() == [
        "Error: the production instance profile (config/dagster.production.yaml) reads "
        "DAGSTER_POSTGRES_URL from the environment: set DAGSTER_POSTGRES_URL (a "
        "postgresql+psycopg2:// URL of a database for Dagster's storage), or leave "
        "INTEGRATION_PLATFORM_PROFILE unset for the local profile (SQLite)"
    ], printed  # no traceback, no log line: a setting to change, and how
