"""How a run's steps execute: in the run's own process.

The multiprocess default starts a process per step, and each one loads the definitions again
(about 6 s here, dagster-dbt's import most of it): a client-week's raw run spent most of its
minute starting processes. Raw steps wait on HTTP and take the warehouse's write lock in turn
anyway; dbt is one step.
"""

from dagster import Definitions, definitions, in_process_executor


@definitions
def defs() -> Definitions:
    return Definitions(executor=in_process_executor)
