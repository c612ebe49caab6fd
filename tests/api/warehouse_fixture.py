"""A published warehouse copy built by the real pipeline, for the access API's tests.

The sandbox serves two tenants on free loopback ports; `integration-platform materialize`
(in child processes, on a Dagster instance, data folder, client store and dbt project copy of
their own) extracts a few days of every source for two clients, the demo client (tenant 0)
and `acme` (tenant 1, registered with that tenant's credentials), then one dbt build makes
staging, entity resolution and the marts and publishes the read-only copy the API serves.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
from cryptography.fernet import Fernet
from dotenv import dotenv_values

from integration_platform import environment
from integration_platform.clients.crypto import CredentialCipher
from integration_platform.clients.database import open_store
from integration_platform.clients.registry import ClientRegistry
from integration_platform.clients.slugs import DEMO_CLIENT_ID
from integration_platform.launcher import VENDOR_URL_VARIABLES
from integration_platform.sandbox.server import Sandbox
from integration_platform.sandbox.tenants import client_listing
from integration_platform.sandbox.world import SandboxCredentials, SandboxSettings

SECOND_CLIENT = "acme"  # reads the sandbox's tenant 1
CLIENTS = (DEMO_CLIENT_ID, SECOND_CLIENT)
SEED, CUSTOMERS = 7, 200
FIRST_DAY, LAST_DAY = date(2025, 6, 1), date(2025, 6, 3)
# About a minute alone, all runs together; many times that on a crowded 2-core machine.
BUILD_SECONDS = 780.0
START_SECONDS = 90.0
CLI = Path(sys.executable).with_name("integration-platform")


@dataclass(frozen=True)
class BuiltWarehouse:
    path: Path  # the published copy
    seconds: float  # how long the build took

    def query(self, sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
        """Read the published copy the way the API does: attached read-only, times in UTC."""
        with duckdb.connect(":memory:") as connection:
            connection.execute("set TimeZone = 'UTC'")
            connection.execute("attach ? as published (read_only)", [str(self.path)])
            connection.execute("use published")
            return connection.execute(sql, list(parameters)).fetchall()

    def rows(self, sql: str, *parameters: Any) -> list[dict[str, Any]]:
        with duckdb.connect(":memory:") as connection:
            connection.execute("set TimeZone = 'UTC'")
            connection.execute("attach ? as published (read_only)", [str(self.path)])
            connection.execute("use published")
            cursor = connection.execute(sql, list(parameters))
            names = [column[0] for column in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

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
    started = time.monotonic()
    deadline = started + BUILD_SECONDS
    root.mkdir(parents=True, exist_ok=True)
    project = root / "dbt_project"
    # The parsed manifest comes along (its mtime kept), so the runs do not parse again.
    shutil.copytree(
        environment.PROJECT_ROOT / "dbt_project",
        project,
        ignore=shutil.ignore_patterns("logs", "dbt_packages", ".user.yml", "run_results.json"),
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
            "INTEGRATION_PLATFORM_DATA_DIR": str(root / "data"),
            "DAGSTER_HOME": str(root / "dagster_home"),
            "DBT_PROJECT_DIR": str(project),
            "DATABASE_URL": store_url,
            "INTEGRATION_PLATFORM_SECRET_KEY": secret_key,
        }
        _register_in_dagster(env, deadline)
        days = f"{FIRST_DAY}...{LAST_DAY}"
        for client in CLIENTS:
            _materialize(
                env, deadline, "--client", client, "--partition-range", days, "--select", RAW
            )
        # dbt: every client's staging, ER and marts (the ER check reads the sandbox's truth)
        _materialize(env, deadline, "--select", f"not {RAW}")
    finally:
        sandbox.stop()
    published = root / "data" / "warehouse.published.duckdb"
    assert published.exists(), f"materialize published nothing under {root / 'data'}"
    return BuiltWarehouse(published, time.monotonic() - started)


RAW = 'key:"raw/*"'


def _register_in_dagster(env: dict[str, str], deadline: float) -> None:
    """Both clients become `clients` partitions of the instance, as registering through the
    API does (in a child: the instance belongs to the runs' DAGSTER_HOME)."""
    script = (
        "from integration_platform.launcher import prepare_dagster_home\n"
        "from integration_platform.assets.partitions import register_clients\n"
        "from dagster import DagsterInstance\n"
        "home = prepare_dagster_home()\n"
        "with DagsterInstance.from_config(str(home)) as instance:\n"
        f"    register_clients(instance, *{CLIENTS!r})\n"
    )
    _run(env, deadline, [sys.executable, "-c", script])


def _materialize(env: dict[str, str], deadline: float, *arguments: str) -> None:
    _run(env, deadline, [str(CLI), "materialize", *arguments])


def _run(env: dict[str, str], deadline: float, command: list[str]) -> None:
    done = subprocess.run(
        command,
        env=env,
        cwd=environment.PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=max(deadline - time.monotonic(), 1.0),
        check=False,
    )
    if done.returncode != 0:
        log = Path(env["INTEGRATION_PLATFORM_DATA_DIR"]) / "logs" / "materialize.log"
        tail = log.read_text()[-4000:] if log.exists() else "(no log)"
        raise AssertionError(
            f"{' '.join(command[:4])} failed ({done.returncode}):\n{done.stdout[-3000:]}"
            f"\n{done.stderr[-3000:]}\nlog:\n{tail}"
        )
