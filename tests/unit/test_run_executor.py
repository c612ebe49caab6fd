"""Which executor runs a job's steps: the run's own process by default; with a broker, Dagster's
celery executor, and every warehouse write (the webhook drain too) on the `warehouse` queue."""

from __future__ import annotations

import pytest

from integration_platform.automation.webhook_sensor import DRAIN_OP, build_drain_job
from integration_platform.celery_workers import BROKER_URL_VARIABLE, QUEUE_TAG, WAREHOUSE_QUEUE
from integration_platform.specs.loader import load_specs


@pytest.mark.parametrize(
    ("broker", "executor"),
    [(None, "in_process"), ("amqp://guest:guest@127.0.0.1:5672//", "celery")],
)
def test_the_webhook_drain_writes_on_the_warehouse_queue_when_workers_run_it(
    broker: str | None, executor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if broker is None:
        monkeypatch.delenv(BROKER_URL_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(BROKER_URL_VARIABLE, broker)
    job = build_drain_job(load_specs())
    assert job.executor_def.name == executor
    # The one step writes the raw tables: with workers, the warehouse's one writer takes it.
    assert job.graph.node_named(DRAIN_OP).tags[QUEUE_TAG] == WAREHOUSE_QUEUE
