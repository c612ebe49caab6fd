"""Stopping `make run` without failing runs: the Dagster runs in flight get a grace period to
finish, then the webserver's GraphQL `terminateRun` cancels the rest (they end CANCELED, not
FAILURE); runs still waiting in the queue are canceled at once. Dagster (webserver, daemon, code
server) must still be up while this runs: the launcher stops it afterwards.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from integration_platform.logs import get_logger

_log = get_logger("integration_platform.launcher")

# A NOT_STARTED run is one being submitted: the daemon creates an automation build, writes its
# planned events (one per model and dbt test, seconds on SQLite), then queues it; a stop in
# between would leave it QUEUED once the daemon is gone. It is waited for (and canceled once
# queued) while it is younger than this; an older one is a launch that failed, left alone.
SUBMITTING_SECONDS = 60.0
WAITING = (DagsterRunStatus.QUEUED,)
IN_FLIGHT = (DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING)
# terminateRun refuses a STARTING run (Dagster's CANCELABLE_RUN_STATUSES): it is asked again
# once its worker has started it.
TERMINABLE = (DagsterRunStatus.STARTED, DagsterRunStatus.QUEUED)


@dataclass
class WindDown:
    """What happened to the runs that were unfinished when the platform was asked to stop."""

    finished: Counter[str] = field(default_factory=Counter)
    left_unfinished: list[str] = field(default_factory=list)

    def summary(self) -> str:
        done = ", ".join(f"{n} {status.lower()}" for status, n in sorted(self.finished.items()))
        text = f"runs: {done}" if done else "no run was in progress"
        if self.left_unfinished:
            text += f"; still unfinished: {', '.join(self.left_unfinished)}"
        return text


class RunWindDown:
    """The runs this platform started (created after `since`), wound down through Dagster."""

    def __init__(
        self,
        instance: DagsterInstance,
        graphql: DagsterGraphQLClient,
        *,
        since: datetime,
        poll_seconds: float = 1.0,
        echo: Callable[[str], None] = print,
    ) -> None:
        self.instance, self.graphql, self.since = instance, graphql, since
        self.poll_seconds = poll_seconds
        self.echo = echo
        self._seen: dict[str, DagsterRunStatus] = {}

    def unfinished(self) -> list[DagsterRun]:
        statuses = [*WAITING, *IN_FLIGHT, DagsterRunStatus.SUSPENDED]
        runs = list(self.instance.get_runs(RunsFilter(statuses=statuses, created_after=self.since)))
        recently = datetime.now(UTC) - timedelta(seconds=SUBMITTING_SECONDS)
        runs += self.instance.get_runs(
            RunsFilter(
                statuses=[DagsterRunStatus.NOT_STARTED],
                created_after=max(self.since, recently),
            )
        )
        for run in runs:
            self._seen[run.run_id] = run.status
        return list(runs)

    def run(self, *, grace_seconds: float, terminate_within_seconds: float = 90.0) -> WindDown:
        """Wait up to `grace_seconds` for the runs in flight (canceling queued ones meanwhile),
        then terminate what is left and wait for it to end. A Ctrl-C while waiting ends the grace
        period at once."""
        runs = self.unfinished()
        in_flight = [run for run in runs if run.status not in WAITING]
        if in_flight:
            self.echo(
                f"waiting up to {grace_seconds:g} s for {_count(in_flight)} in progress "
                "to finish (Ctrl-C again: cancel now) ..."
            )
        try:
            self._wait(until=time.monotonic() + grace_seconds, terminate=False)
        except KeyboardInterrupt:
            self.echo("canceling the runs in progress now ...")
        left = self.unfinished()
        if left:
            self.echo(f"canceling {_count(left)} not finished (Dagster terminateRun) ...")
        self._wait(until=time.monotonic() + terminate_within_seconds, terminate=True)
        return self._outcome()

    def _wait(self, *, until: float, terminate: bool) -> None:
        asked: set[tuple[str, DagsterRunStatus]] = set()
        while True:
            runs = self.unfinished()
            if not runs:
                return
            for run in runs:
                # Queued runs never start; in-flight ones only once the grace period is over.
                wanted = run.status in WAITING or (terminate and run.status in TERMINABLE)
                key = (run.run_id, run.status)
                if (
                    wanted
                    and run.status in TERMINABLE
                    and key not in asked
                    and self._terminate(run)
                ):
                    asked.add(key)
            if time.monotonic() >= until:
                return
            time.sleep(self.poll_seconds)

    def _terminate(self, run: DagsterRun) -> bool:
        try:
            self.graphql.terminate_run(run.run_id)
        except DagsterGraphQLClientError as exc:
            # Not terminable (yet), e.g. it went back to STARTING: asked again next round.
            _log.warning("run_terminate_refused", run_id=run.run_id, error=str(exc))
            return False
        _log.info("run_terminate_requested", run_id=run.run_id, status=run.status.value)
        return True

    def _outcome(self) -> WindDown:
        outcome = WindDown()
        for run_id in self._seen:
            run = self.instance.get_run_by_id(run_id)
            if run is None:
                continue
            if run.is_finished:
                outcome.finished[run.status.value] += 1
            else:
                outcome.left_unfinished.append(f"{run_id} ({run.status.value})")
        return outcome


def _count(runs: Sequence[DagsterRun]) -> str:
    return f"{len(runs)} run{'s' if len(runs) != 1 else ''}"
