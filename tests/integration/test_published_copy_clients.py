"""The published copy opens in the DuckDB releases that BI tools bundle, not only in DuckDB 2.0.

DuckDB 1.4 (Python) and the duckdb CLI from PyPI each run from a venv of their own under
`.venv-bi/` (`make bi-clients`, which `make test` runs first; the fixture runs it too, a no-op
once they are there). The warehouse holds raw rows the real extraction and loader wrote from the
sandbox, the customer marts of two clients as a real dbt build made them (`marts_warehouse`),
and a staging view; `Warehouse.publish` writes the copy. Both ways a warehouse comes about are
covered: created by the platform (in the published format from the start) and created by DuckDB
2.0 itself (converted at each publish).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from integration_platform.environment import (
    DEFAULT_PUBLISHED_STORAGE_VERSION,
    PROJECT_ROOT,
    PUBLISHED_AS_IS,
)
from integration_platform.landing.warehouse import Warehouse
from integration_platform.specs.loader import load_specs
from integration_platform_sandbox.roster import VENDOR_URL_VARIABLES
from integration_platform_sandbox.server import Sandbox
from tests.api.warehouse_fixture import BuiltWarehouse
from tests.integration.dbt_warehouse import land_sandbox, load_landed

BI_CLIENTS = PROJECT_ROOT / ".venv-bi"
DUCKDB_PYTHON = BI_CLIENTS / "duckdb-1.4" / "bin" / "python"
DUCKDB_CLI = BI_CLIENTS / "duckdb-cli" / "bin" / "duckdb"

# What an analyst would ask, one client at a time; every figure as text so that the three
# DuckDB releases print it alike.
QUERY = """
SELECT
  (SELECT count(*) FROM raw.crm__contacts WHERE _client_id = 'demo')::VARCHAR,
  (SELECT count(DISTINCT record->>'$.id') FROM raw.crm__contacts
   WHERE _client_id = 'demo')::VARCHAR,
  (SELECT count(*) FROM staging.crm_contacts WHERE client_id = 'demo')::VARCHAR,
  (SELECT count(*) FROM marts.dim_customers WHERE client_id = 'acme')::VARCHAR,
  (SELECT sum(lifetime_revenue_reporting) FROM marts.customer_360
   WHERE client_id = 'acme')::VARCHAR,
  (SELECT max(last_activity_at) FROM marts.customer_360 WHERE client_id = 'demo')::DATE::VARCHAR
"""
# A view as dbt-duckdb writes one: tables named without the catalog.
STAGING_VIEW = """
CREATE SCHEMA IF NOT EXISTS staging;
CREATE VIEW staging.crm_contacts AS
SELECT _client_id AS client_id, record->>'$.id' AS contact_id FROM raw.crm__contacts
"""
# The first test waits for the marts' build (about a minute alone, several on a busy machine).
pytestmark = pytest.mark.timeout(900)
PYTHON_READER = """
import sys, duckdb
with duckdb.connect(sys.argv[1], read_only=True) as connection:
    print(",".join(connection.execute(sys.argv[2]).fetchone()))
"""


@pytest.fixture(scope="module")
def bi_clients() -> None:
    """The two venvs, installed once (`make bi-clients` is a no-op when they are there)."""
    done = subprocess.run(
        ["make", "-s", "bi-clients"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert DUCKDB_PYTHON.exists() and DUCKDB_CLI.exists()


@pytest.fixture(scope="module")
def warehouses(
    sandbox: Sandbox, marts_warehouse: BuiltWarehouse, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Two live warehouses with the same rows: created by the platform, created by DuckDB 2.0."""
    env = {**os.environ, **{VENDOR_URL_VARIABLES[v]: url for v, url in sandbox.urls.items()}}
    crm = load_specs(env=env)["crm"]
    made = {}
    for how in ("platform", "duckdb"):
        data = tmp_path_factory.mktemp(f"bi-{how}")
        path = data / "warehouse.duckdb"
        if how == "platform":
            with Warehouse(
                path, published_storage_version=DEFAULT_PUBLISHED_STORAGE_VERSION
            ).locked():
                pass  # the first lock creates the file
        load_landed(path, asyncio.run(land_sandbox([(crm, "contacts", None)], data)))
        with duckdb.connect(str(path)) as connection:
            connection.execute("attach ? as built (read_only)", [str(marts_warehouse.path)])
            connection.execute("create schema marts")
            for mart in ("dim_customers", "customer_360"):  # as the dbt build made them
                connection.execute(f"create table marts.{mart} as from built.marts.{mart}")
            connection.execute("detach built")
            connection.execute(STAGING_VIEW)
        made[how] = path
    return made


def publish(warehouse: Path, storage_version: str) -> Path:
    store = Warehouse(warehouse, published_storage_version=storage_version)
    with store.locked():
        return store.publish()


def expected(warehouse: Path) -> str:
    """The answer DuckDB 2.0 gives on the live warehouse."""
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        row = connection.execute(QUERY).fetchone()
    assert row is not None and int(row[0]) > 0 and int(row[3]) > 0, row
    return ",".join(row)


def read_with_duckdb_14(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DUCKDB_PYTHON), "-c", PYTHON_READER, str(path), QUERY],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def read_with_duckdb_cli(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DUCKDB_CLI), "-readonly", "-csv", "-noheader", str(path), "-c", QUERY],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("created_by", ["platform", "duckdb"])
@pytest.mark.parametrize(
    "reader", [read_with_duckdb_14, read_with_duckdb_cli], ids=["duckdb-1.4", "duckdb-cli"]
)
def test_older_duckdb_reads_raw_staging_and_marts_when_it_opens_the_published_copy(
    bi_clients: None,
    warehouses: dict[str, Path],
    created_by: str,
    reader: Callable[[Path], subprocess.CompletedProcess[str]],
) -> None:
    published = publish(warehouses[created_by], DEFAULT_PUBLISHED_STORAGE_VERSION)
    answer = reader(published)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == expected(warehouses[created_by])


def test_duckdb_14_refuses_the_copy_when_it_is_published_as_is_from_a_duckdb_2_warehouse(
    bi_clients: None, warehouses: dict[str, Path]
) -> None:
    """What the setting is for: a byte copy of DuckDB 2.0's own format opens in 2.0 only."""
    published = publish(warehouses["duckdb"], PUBLISHED_AS_IS)
    try:
        answer = read_with_duckdb_14(published)
        assert answer.returncode != 0
        assert "Trying to read a database file with version number" in answer.stderr
    finally:
        publish(warehouses["duckdb"], DEFAULT_PUBLISHED_STORAGE_VERSION)
