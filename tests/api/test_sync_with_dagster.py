"""A sync for real: the API launches runs on a Dagster webserver started here (temporary
DAGSTER_HOME, free port), the raw run extracts from the sandbox, the sync then waits for the dbt
assets (built by Dagster's automation, which needs the daemon this test does not start), and the
status reports what the runs did."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from integration_platform.api.app import create_app
from integration_platform.api.settings import ApiSettings
from integration_platform.clients.credentials import source_variables
from integration_platform.environment import PROJECT_ROOT
from integration_platform.launcher import VENDOR_URL_VARIABLES
from integration_platform.sandbox.server import Sandbox
from integration_platform.webhooks.server import ReceiverServer
from tests.api.conftest import ADMIN_KEY

BIN = Path(sys.executable).parent
DAY = "2025-06-10"
# Runs start at once in a subprocess: no daemon needed, nothing waits in a queue.
INSTANCE = """\
run_coordinator:
  module: dagster.core.run_coordinator
  class: DefaultRunCoordinator
telemetry:
  enabled: false
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def dagster_webserver(
    tmp_path: Path,
    sandbox: Sandbox,
    api_environment: Path,
    store_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    # Runs read a client's credentials from the API's store, with its key (as under make run).
    monkeypatch.setenv("DATABASE_URL", store_url)
    for vendor, url in sandbox.urls.items():
        monkeypatch.setenv(VENDOR_URL_VARIABLES[vendor], url)
    port = free_port()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    process = subprocess.Popen(
        [
            str(BIN / "dagster-webserver"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            str(PROJECT_ROOT / "workspace.yaml"),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert process.poll() is None, "the Dagster webserver exited while starting"
            try:
                nodes = httpx.post(
                    f"{url}/graphql", timeout=10, json={"query": "{ assetNodes { id } }"}
                ).json()["data"]["assetNodes"]
                if nodes:
                    break
            except (httpx.TransportError, KeyError, TypeError):
                pass
            time.sleep(1)
        else:
            raise AssertionError("the code location did not load within 240 s")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_registered_clients_sync_runs_on_dagster_and_its_status_reads_them_when_requested(
    dagster_webserver: str,
    store_url: str,
    api_environment: Path,
) -> None:
    """Raw runs to success, then `transforming` until the dbt assets materialize: no daemon
    runs here, so nothing builds them and the whole dbt build is left out (the stand-in Dagster
    covers the sync's later states, and tests/e2e/test_pipeline_end_to_end.py the dbt assets)."""
    settings = ApiSettings(
        database_url=store_url,
        dagster_url=dagster_webserver,
        published_warehouse=api_environment / "warehouse.published.duckdb",
    )
    credentials = {name: os.environ[name] for name in source_variables()["crm"].required}
    with (
        ReceiverServer(create_app(settings), port=0, name="API server") as server,
        httpx.Client(
            base_url=server.url, timeout=120, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ) as http,
    ):
        created = http.post(
            "/clients", json={"id": "acme", "name": "Acme", "credentials": {"crm": credentials}}
        )
        assert created.status_code == 201, created.text
        sync = http.post(
            "/integrations/acme/sync", json={"start_date": DAY, "end_date": DAY}
        ).json()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            status = http.get("/integrations/acme/status").json()
            if status["sync"]["state"] != "extracting" and status["sync"]["state"] != "queued":
                break
            time.sleep(1)
        assert status["sync"]["id"] == sync["id"]
        assert status["sync"]["state"] == "transforming", status
        crm = status["sources"][0]
        assert crm["source"] == "crm"
        assert crm["state"] == "succeeded"
        assert crm["run_url"] == f"{dagster_webserver}/runs/{crm['run_id']}"
        assert crm["records"] > 0
        assert crm["rows_loaded"] == crm["records"]
        assert crm["dead_letters"] == 0
        assert set(crm["freshness"]) == {"raw/crm/contacts", "raw/crm/companies"}
        assert status["sync"]["transform_run"] is None  # the API launches no dbt run
        assert status["transform"]["state"] == "never_run"
        client = http.get("/clients/acme").json()
        assert client["dagster_partition_registered_at"] is not None

    runs = httpx.post(
        f"{dagster_webserver}/graphql",
        json={
            "query": """
        { runsOrError(filter: {tags: [{key: "integration_platform/client_id", value: "acme"}]})
          { ... on Runs { results { tags { key value } assetSelection { path } } } } }"""
        },
    ).json()
    found = {}
    for run in runs["data"]["runsOrError"]["results"]:
        tags = {t["key"]: t["value"] for t in run["tags"]}
        found[tags["integration_platform/raw_part"]] = (tags, run)
    assert set(found) == {"crm", "crm:reference"}
    raw_tags = found["crm"][0]
    assert raw_tags["dagster/asset_partition_range_start"] == f"acme|{DAY}"
    assert raw_tags["dagster/asset_partition_range_end"] == f"acme|{DAY}"
    assert raw_tags["integration_platform/sync_id"] == sync["id"]
    assert raw_tags["integration_platform/stage"] == "raw"
    assert found["crm:reference"][0]["dagster/partition"] == "acme"

    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        assert instance.has_dynamic_partition("clients", "acme")
