"""Stopping the platform's runs: queued ones are canceled at once, in-flight ones get the grace
period, a STARTING run is terminated once it has started (Dagster refuses it before)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster_graphql import DagsterGraphQLClientError

from integration_platform import run_wind_down
from integration_platform.run_wind_down import TERMINABLE, RunWindDown

SINCE = datetime.now(UTC) - timedelta(minutes=1)


class FakeTime:
    """The module's clock: each sleep moves it on and lets the scripted world change."""

    def __init__(self) -> None:
        self.now = 0.0
        self.script: list[tuple[float, Callable[[], None]]] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        for at, change in list(self.script):
            if at <= self.now:
                self.script.remove((at, change))
                change()


class FakeWebserver:
    """terminateRun as Dagster answers it: refused unless the run is STARTED or QUEUED."""

    def __init__(self, instance: DagsterInstance) -> None:
        self.instance = instance
        self.asked: list[tuple[str, DagsterRunStatus]] = []

    def terminate_run(self, run_id: str) -> None:
        run = self.instance.get_run_by_id(run_id)
        assert run is not None
        self.asked.append((run_id, run.status))
        if run.status not in TERMINABLE:
            raise DagsterGraphQLClientError("TerminateRunFailure", f"status {run.status.value}")
        self.instance.report_run_canceled(run)


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as instance:
        yield instance


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(
        run_wind_down, "time", SimpleNamespace(monotonic=fake.monotonic, sleep=fake.sleep)
    )
    return fake


ORIGIN = RemoteJobOrigin(
    RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("platform"), "__repository__"),
    "drain_webhooks",
)


def _run(instance: DagsterInstance, run_id: str, status: DagsterRunStatus) -> None:
    instance.add_run(
        DagsterRun(
            job_name="drain_webhooks", run_id=run_id, status=status, remote_job_origin=ORIGIN
        )
    )


def _set(instance: DagsterInstance, run_id: str, status: DagsterRunStatus) -> Callable[[], None]:
    def change() -> None:
        instance.delete_run(run_id)
        _run(instance, run_id, status)

    return change


def test_queued_runs_are_canceled_at_once_and_running_ones_finish_when_within_the_grace_period(
    instance: DagsterInstance, clock: FakeTime
) -> None:
    _run(instance, "running", DagsterRunStatus.STARTED)
    _run(instance, "queued", DagsterRunStatus.QUEUED)
    clock.script.append((3.0, _set(instance, "running", DagsterRunStatus.SUCCESS)))
    webserver = FakeWebserver(instance)
    said: list[str] = []

    outcome = RunWindDown(instance, webserver, since=SINCE, echo=said.append).run(  # type: ignore[arg-type]
        grace_seconds=60
    )

    assert webserver.asked == [("queued", DagsterRunStatus.QUEUED)]
    assert dict(outcome.finished) == {"SUCCESS": 1, "CANCELED": 1}
    assert outcome.left_unfinished == []
    assert clock.now < 10, "waited out the grace period although nothing was running"
    assert (
        said[0]
        == "waiting up to 60 s for 1 run in progress to finish (Ctrl-C again: cancel now) ..."
    )


def test_a_starting_run_is_terminated_once_started_when_the_grace_period_is_over(
    instance: DagsterInstance, clock: FakeTime
) -> None:
    _run(instance, "starting", DagsterRunStatus.STARTING)
    clock.script.append((4.0, _set(instance, "starting", DagsterRunStatus.STARTED)))
    webserver = FakeWebserver(instance)

    outcome = RunWindDown(instance, webserver, since=SINCE, echo=lambda _: None).run(  # type: ignore[arg-type]
        grace_seconds=1
    )

    assert webserver.asked == [("starting", DagsterRunStatus.STARTED)]
    assert dict(outcome.finished) == {"CANCELED": 1}
    assert outcome.summary() == "runs: 1 canceled"


def test_a_run_that_will_not_end_is_named_when_termination_takes_too_long(
    instance: DagsterInstance, clock: FakeTime
) -> None:
    _run(instance, "stuck", DagsterRunStatus.CANCELING)

    outcome = RunWindDown(instance, FakeWebserver(instance), since=SINCE, echo=lambda _: None).run(  # type: ignore[arg-type]
        grace_seconds=1, terminate_within_seconds=5
    )

    assert outcome.left_unfinished == ["stuck (CANCELING)"]


def test_a_run_being_submitted_is_canceled_once_queued_when_it_arrives_during_the_stop(
    instance: DagsterInstance, clock: FakeTime
) -> None:
    """The daemon creates an automation build (NOT_STARTED while it writes the planned events)
    and queues it after the runs in flight ended: it is canceled, not left QUEUED for a daemon
    that is gone (CI saw one left behind)."""
    _run(instance, "running", DagsterRunStatus.STARTED)
    _run(instance, "submitting", DagsterRunStatus.NOT_STARTED)
    clock.script.append((2.0, _set(instance, "running", DagsterRunStatus.SUCCESS)))
    clock.script.append((5.0, _set(instance, "submitting", DagsterRunStatus.QUEUED)))
    webserver = FakeWebserver(instance)

    outcome = RunWindDown(instance, webserver, since=SINCE, echo=lambda _: None).run(  # type: ignore[arg-type]
        grace_seconds=60
    )

    assert webserver.asked == [("submitting", DagsterRunStatus.QUEUED)]
    assert dict(outcome.finished) == {"SUCCESS": 1, "CANCELED": 1}
    assert outcome.left_unfinished == []


def test_a_launch_that_failed_before_the_stop_is_not_waited_for(
    instance: DagsterInstance, clock: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NOT_STARTED run older than SUBMITTING_SECONDS was never going to be queued."""
    monkeypatch.setattr(run_wind_down, "SUBMITTING_SECONDS", 0.0)
    _run(instance, "refused", DagsterRunStatus.NOT_STARTED)
    webserver = FakeWebserver(instance)

    outcome = RunWindDown(instance, webserver, since=SINCE, echo=lambda _: None).run(  # type: ignore[arg-type]
        grace_seconds=60
    )

    assert webserver.asked == []
    assert clock.now == 0.0
    assert outcome.summary() == "no run was in progress"
