"""Runs spread over celery workers (Dagster's celery executor), chosen by `CELERY_BROKER_URL`.

Set, every run's steps go to the workers through that broker: extraction and checks to the
`dagster` queue (any worker), warehouse writes (raw loads, dbt) to the `warehouse` queue, which
the warehouse's one writer consumes (DuckDB has one). Unset (the default, `make run`), steps run
in the run's own process. The code location, the runs and the workers must all see the same value.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from integration_platform.environment import SettingError

if TYPE_CHECKING:
    from dagster import ExecutorDefinition

BROKER_URL_VARIABLE = "CELERY_BROKER_URL"
# dagster-celery's default queue: extraction, checks, everything not routed elsewhere.
EXTRACTION_QUEUE = "dagster"
WAREHOUSE_QUEUE = "warehouse"
QUEUES = (EXTRACTION_QUEUE, WAREHOUSE_QUEUE)
# The op tag dagster-celery routes a step by (dagster_celery.tags.DAGSTER_CELERY_QUEUE_TAG; read
# here without importing celery, which the local path never needs).
QUEUE_TAG = "dagster-celery/queue"
WAREHOUSE_STEP_TAGS = {QUEUE_TAG: WAREHOUSE_QUEUE}
# Results come back over the broker itself (a reply queue per run): no second service.
RESULT_BACKEND = "rpc://"
# A step is acknowledged when it has finished, not when a worker took it: the task of a worker
# that dies (kill -9, a lost node) goes back to the queue and another worker runs it. RabbitMQ
# hands it back as soon as the dead worker's connection drops; Redis only after its
# visibility_timeout (an hour by default), hence RabbitMQ in the deployment files. One step at
# a time per worker process, taken only when it is free.
CELERY_SETTINGS: dict[str, Any] = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry_on_startup": True,
}
BROKER_CHECK_TIMEOUT_SECONDS = 3.0


class BrokerUnreachableError(SettingError):
    """The broker `CELERY_BROKER_URL` names does not answer."""


def broker_url() -> str | None:
    """The broker runs are spread through; None (unset or empty): steps run in the run's process."""
    return os.environ.get(BROKER_URL_VARIABLE) or None


def uses_workers() -> bool:
    return broker_url() is not None


def broker_address(url: str) -> str:
    """`host:port` of a broker URL: what messages and logs may show (never the credentials)."""
    parts = urlsplit(url)
    default_port = 6379 if parts.scheme.startswith("redis") else 5672
    try:
        port = parts.port or default_port
    except ValueError:
        port = default_port
    return f"{parts.hostname or 'localhost'}:{port}"


def check_broker(url: str, timeout: float = BROKER_CHECK_TIMEOUT_SECONDS) -> None:
    """Connect to the broker once, within `timeout`; BrokerUnreachableError naming host:port."""
    # kombu: celery's messaging library, imported where it is used (the local path never is).
    from kombu.connection import Connection
    from kombu.exceptions import OperationalError

    connection = Connection(url, connect_timeout=timeout)
    try:
        connection.ensure_connection(max_retries=1, timeout=timeout)
    except (
        OperationalError,
        OSError,
        *connection.connection_errors,
        *connection.channel_errors,
    ) as exc:
        raise _unreachable(url, exc) from None
    finally:
        connection.release()


def _unreachable(url: str, exc: BaseException) -> BrokerUnreachableError:
    return BrokerUnreachableError(
        f"the celery broker at {broker_address(url)} ({BROKER_URL_VARIABLE}) did not take a "
        f"connection ({type(exc).__name__}): start it, or fix {BROKER_URL_VARIABLE} (host, port, "
        "user, password); unset it to run steps in the run's own process"
    )


def executor_config() -> dict[str, Any]:
    """dagster-celery's executor config: the broker from the environment, never a literal."""
    return {
        "broker": {"env": BROKER_URL_VARIABLE},
        "backend": RESULT_BACKEND,
        "config_source": dict(CELERY_SETTINGS),
    }


def run_executor() -> ExecutorDefinition:
    """The executor of every job: celery's with a broker, else the run's own process (the
    multiprocess default would start a process per step, each loading the definitions again)."""
    from dagster import in_process_executor

    if not uses_workers():
        return in_process_executor
    from dagster_celery import celery_executor  # celery is imported only where it is used

    configured: ExecutorDefinition = celery_executor.configured(executor_config())
    return configured
