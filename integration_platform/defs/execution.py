"""How a run's steps execute: in the run's own process, or on celery workers when
`CELERY_BROKER_URL` names a broker (integration_platform/celery_workers.py).

The multiprocess default starts a process per step, and each one loads the definitions again
(about 6 s here, dagster-dbt's import most of it): a client-week's raw run spent most of its
minute starting processes. Raw steps wait on HTTP and take the warehouse's write lock in turn
anyway; dbt is one step. With workers, Dagster's celery executor sends each step to a queue:
extraction to any worker, warehouse writes to the `warehouse` queue.
"""

from dagster import Definitions, definitions

from integration_platform.celery_workers import run_executor


@definitions
def defs() -> Definitions:
    return Definitions(executor=run_executor())
