"""A published warehouse copy built by the real pipeline, for the access API's tests.

The sandbox serves two tenants on free loopback ports. A child process (with a Dagster
instance, data folder, client store and dbt project copy of its own) runs the main job as
`integration-platform materialize` does: a few days of every source for the demo client
(tenant 0) and for `acme` (tenant 1, registered with that tenant's credentials), then one dbt
build of staging, entity resolution and the marts, which publishes the read-only copy the API
serves. One child rather than one `materialize` per step: each would load the definitions again.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
from cryptography.fernet import Fernet
from dotenv import dotenv_values

from integration_platform import environment
from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.clients.crypto import CredentialCipher
from integration_platform.clients.database import open_store
from integration_platform.clients.registry import ClientRegistry
from integration_platform.transform.dbt_assets import DBT_BUILD
from integration_platform_sandbox.roster import VENDOR_URL_VARIABLES
from integration_platform_sandbox.server import Sandbox
from integration_platform_sandbox.tenants import client_listing
from integration_platform_sandbox.world import SandboxCredentials, SandboxSettings

SECOND_CLIENT = "acme"  # reads the sandbox's tenant 1
CLIENTS = (DEMO_CLIENT_ID, SECOND_CLIENT)
SEED, CUSTOMERS = 7, 200
FIRST_DAY, LAST_DAY = date(2025, 6, 1), date(2025, 6, 3)
# About a minute alone; several on a crowded 2-core machine.
BUILD_SECONDS = 780.0
START_SECONDS = 90.0
RAW = 'key:"raw/*"'


@dataclass(frozen=True)
class BuiltWarehouse:
    path: Path  # the published copy
    seconds: float  # how long the build took
    cpu_seconds: float  # the CPU it took (this process's sandbox and the child), whatever the load
    progress: str  # the runs' progress lines, with each run's duration

    def query(self, sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
        with self._published() as connection:
            return connection.execute(sql, list(parameters)).fetchall()

    def rows(self, sql: str, *parameters: Any) -> list[dict[str, Any]]:
        with self._published() as connection:
            cursor = connection.execute(sql, list(parameters))
            names = [column[0] for column in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    @contextmanager
    def _published(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The copy as the API reads it: attached read-only, times in UTC."""
        with duckdb.connect(":memory:") as connection:
            connection.execute("set TimeZone = 'UTC'")
            connection.execute("attach ? as published (read_only)", [str(self.path)])
            connection.execute("use published")
            yield connection

    def column_types(self, table: str) -> dict[str, str]:
        schema, name = table.split(".")
        return dict(
            self.query(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = ? and table_name = ? order by ordinal_position",
                schema,
                name,
            )
        )


def build_published_warehouse(root: Path) -> BuiltWarehouse:
    """Sandbox → raw for both clients' days → dbt build → the published copy, under `root`."""
    started, cpu_before = time.monotonic(), _cpu_seconds()
    root.mkdir(parents=True, exist_ok=True)
    project = root / "dbt_project"
    # The parsed manifest comes along (its mtime kept), so the runs do not parse again.
    shutil.copytree(
        environment.PROJECT_ROOT / "dbt_project",
        project,
        ignore=shutil.ignore_patterns(
            "logs", "dbt_packages", ".user.yml", "run_results.json", f"{DBT_BUILD}-*"
        ),
    )
    secret_key = Fernet.generate_key().decode()
    store_url = f"sqlite:///{root / 'platform.sqlite'}"
    # The demo credentials, as the CLI reads them, without exporting them into the session.
    credentials = SandboxCredentials.from_env(
        {**dotenv_values(environment.SANDBOX_ENV_FILE), **os.environ}
    )
    settings = SandboxSettings(seed=SEED, customers=CUSTOMERS, tenants=2)
    sandbox = Sandbox(settings, credentials, base_port=0).start(timeout=START_SECONDS)
    try:
        tenant_1 = client_listing(sandbox.tenants, [1], sandbox.urls)["tenants"][0]
        registry = ClientRegistry(open_store(store_url), CredentialCipher([secret_key.encode()]))
        registry.create(SECOND_CLIENT, "Acme Corp", tenant_1["credentials"])
        env = {
            **{k: v for k, v in os.environ.items() if k != "WAREHOUSE_PATH"},
            **{VENDOR_URL_VARIABLES[vendor]: url for vendor, url in sandbox.urls.items()},
            # the demo client's: the sandbox's tenant 0, whatever a .env says
            **{name: getattr(credentials, key) for key, name in SandboxCredentials.ENV.items()},
            "INTEGRATION_PLATFORM_DATA_DIR": str(root / "data"),
            "DAGSTER_HOME": str(root / "dagster_home"),
            "DBT_PROJECT_DIR": str(project),
            "DATABASE_URL": store_url,
            "INTEGRATION_PLATFORM_SECRET_KEY": secret_key,
        }
        done = subprocess.run(
            [sys.executable, "-m", "tests.api.warehouse_fixture"],
            env=env,
            cwd=environment.PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=BUILD_SECONDS,
            check=False,
        )
    finally:
        sandbox.stop()
    log = root / "data" / "logs" / "materialize.log"
    assert done.returncode == 0, (
        f"the build failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        f"\nthe runs' output ({log}):\n{log.read_text()[-4000:] if log.exists() else '-'}"
    )
    published = root / "data" / "warehouse.published.duckdb"
    assert published.exists(), f"materialize published nothing under {root / 'data'}"
    return BuiltWarehouse(
        published, time.monotonic() - started, _cpu_seconds() - cpu_before, done.stdout
    )


def _cpu_seconds() -> float:
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
    )


def main() -> None:
    """In the child: the main job as `integration-platform materialize` runs it, three times
    (each client's raw days, then dbt once for both), in the instance of DAGSTER_HOME."""
    from dagster import DagsterInstance

    from integration_platform.assets.partitions import register_clients
    from integration_platform.cli import _finish
    from integration_platform.logs import configure_logging
    from integration_platform.orchestration.instance import prepare_dagster_home
    from integration_platform.runs.commands import run_main_job

    environment.load_env()
    configure_logging()
    with DagsterInstance.from_config(str(prepare_dagster_home())) as instance:
        register_clients(instance, *CLIENTS)  # as registering a client through the API does
    runs = [(client, RAW) for client in CLIENTS] + [(DEMO_CLIENT_ID, f"not {RAW}")]
    for client, selection in runs:
        started = time.monotonic()
        result = run_main_job(
            client_id=client,
            start=FIRST_DAY,
            end=LAST_DAY,
            selection=selection,
            full_refresh=False,
            echo=print,
            log_name="materialize",
        )
        print(f"== {client} {selection}: {time.monotonic() - started:.1f} s")
        if not result.success:
            assert result.progress is not None
            print("\n".join(result.progress.summary()))
            _finish(False)
    _finish(True)


if __name__ == "__main__":
    main()
