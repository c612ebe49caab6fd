"""The Dagster instance in $DAGSTER_HOME, set up as `make run`, materialize and the demo need."""

from __future__ import annotations

import shutil
from pathlib import Path

from dagster import DagsterInstance

from integration_platform import environment
from integration_platform.assets.partitions import register_clients
from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.transform.dbt_assets import WAREHOUSE_POOL

# The slots of the pool of the runs that write the warehouse (the dbt build's `WAREHOUSE_POOL`):
# DuckDB has one writer. Pools' limits live in the instance's storage; dagster.yaml sets the
# default for every other pool.
WAREHOUSE_POOL_SLOTS = 1


def prepare_dagster_home() -> Path:
    """$DAGSTER_HOME holds the instance; dagster.yaml there comes from the repository's copy.
    The demo client is one of the instance's `clients` partitions, so its days are there to
    materialize without registering anything; the `warehouse` pool gets its one slot (unless its
    limit was set already)."""
    home = environment.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(environment.PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    with DagsterInstance.from_config(str(home)) as instance:
        register_clients(instance, DEMO_CLIENT_ID)
        set_pools = {
            p.name for p in instance.event_log_storage.get_pool_limits() if not p.from_default
        }
        if (
            WAREHOUSE_POOL not in set_pools
        ):  # a limit someone set (dagster instance concurrency set)
            instance.event_log_storage.set_concurrency_slots(WAREHOUSE_POOL, WAREHOUSE_POOL_SLOTS)
    return home
