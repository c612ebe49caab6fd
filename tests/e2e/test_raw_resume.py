"""A raw materialization killed mid-extraction resumes where it died and loses nothing.

Everything runs as separate processes, as in production: the sandbox (`integration-platform
sandbox up`), a run that is SIGKILLed once some pages have landed, the run that resumes it, and
a clean run into another data dir to compare with.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
import yaml

from integration_platform.environment import PROJECT_ROOT, load_sandbox_env
from tests.e2e.sandbox_process import sandbox_process

BIN = Path(sys.executable).parent
CUSTOMERS = 4_000  # about 9,900 invoices: 400 pages of 25
PAGES_BEFORE_KILL = 60

MATERIALIZE = '''
"""Materialize every raw asset of SOURCES_PATH once; write the outcome as JSON to argv[1].

With argv[2], wait until that file exists first (imports done, so the run starts at once),
and give up after a few minutes if it never does.
"""
import json, pathlib, sys, time
from dagster import DagsterInstance, materialize
from integration_platform.assets.partitions import register_clients
from integration_platform.assets.raw import api_resource_key, raw_assets
from integration_platform.assets.resources import api_resource, default_resources
from integration_platform.specs.loader import load_specs

if len(sys.argv) > 2:
    deadline = time.monotonic() + 240
    while not pathlib.Path(sys.argv[2]).exists():
        if time.monotonic() > deadline:
            sys.exit("never told to start")
        time.sleep(0.02)
specs = load_specs()
resources = {**default_resources(),
             **{api_resource_key(name): api_resource(spec) for name, spec in specs.items()}}
instance = DagsterInstance.ephemeral()
register_clients(instance, "demo")
result = materialize(raw_assets(specs, retry_policy=None), resources=resources,
                     partition_key="demo", instance=instance, raise_on_error=False)
metadata = {}
for event in result.get_asset_materialization_events():
    metadata.update({k: v.value for k, v in event.materialization.metadata.items()
                     if isinstance(v.value, (int, float, str))})
with open(sys.argv[1], "w") as out:
    json.dump({"success": result.success, "run_id": result.run_id, "metadata": metadata}, out)
'''


@pytest.fixture(scope="module")
def billing_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A big sandbox in its own process, billing's server-side quota out of the way."""
    log = tmp_path_factory.mktemp("sandbox") / "sandbox.log"
    with sandbox_process(
        log, "--customers", str(CUSTOMERS), "--billing-rate-limit", "100000"
    ) as base:
        yield f"http://127.0.0.1:{base + 1}"


def invoices_spec(tmp_path: Path) -> Path:
    """billing.yaml cut down to invoices, unpartitioned, in pages of 25 at 100 requests/s."""
    shipped = yaml.safe_load((PROJECT_ROOT / "sources" / "billing.yaml").read_text())
    invoices = shipped["endpoints"]["invoices"]
    invoices.pop("partitions")
    invoices["pagination"]["page_size"] = 25
    spec = {key: shipped[key] for key in ("source", "kind", "base_url", "auth", "retry")}
    spec["endpoints"] = {"invoices": invoices}
    spec["rate_limit"] = {"requests_per_second": 100, "burst": 5}
    path = tmp_path / "billing.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


class Run:
    """One `materialize` process on its own data dir."""

    def __init__(
        self,
        tmp_path: Path,
        name: str,
        data: Path,
        env: dict[str, str],
        wait_for: Path | None = None,
    ) -> None:
        script = tmp_path / "materialize.py"
        script.write_text(MATERIALIZE)
        self.outcome_path = tmp_path / f"{name}.json"
        self.log = tmp_path / f"{name}.log"
        self.data = data
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    str(script),
                    str(self.outcome_path),
                    *([str(wait_for)] if wait_for else []),
                ],
                env={**env, "INTEGRATION_PLATFORM_DATA_DIR": str(data)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def finish(self) -> dict[str, Any]:
        self.process.wait(timeout=150)
        assert self.process.returncode == 0, self.error()
        outcome: dict[str, Any] = json.loads(self.outcome_path.read_text())
        assert outcome["success"], self.error()
        return outcome

    def error(self) -> str:
        return self.log.read_text()[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def manifests(self) -> list[Path]:
        return sorted(
            (self.data / "landing" / "demo" / "billing" / "invoices").glob("*/*/manifest.jsonl")
        )

    def table(self) -> list[tuple[str, str]]:
        with duckdb.connect(str(self.data / "warehouse.duckdb"), read_only=True) as connection:
            return connection.execute(
                'SELECT _primary_key, record::VARCHAR FROM raw."billing__invoices" ORDER BY ALL'
            ).fetchall()


def lines(path: Path) -> int:
    return path.read_bytes().count(b"\n")


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    """Runs to stop when the test ends, whichever way it ends."""
    started: list[Run] = []
    yield started
    for run in started:
        run.stop()


@pytest.mark.slow
def test_killed_run_resumes_after_its_landed_pages_and_loads_every_invoice_once_when_rerun(
    billing_url: str,
    tmp_path: Path,
    runs: list[Run],
) -> None:
    load_sandbox_env()  # the demo credentials, as the CLI loads them
    env = {
        **os.environ,
        "SOURCES_PATH": str(invoices_spec(tmp_path)),
        "BILLING_BASE_URL": billing_url,
    }
    env.pop("WAREHOUSE_PATH", None)
    go = tmp_path / "resume-now"
    clean = Run(tmp_path, "clean", tmp_path / "clean", env)
    killed = Run(tmp_path, "killed", tmp_path / "resumed", env)
    resuming = Run(tmp_path, "resumed", tmp_path / "resumed", env, wait_for=go)
    runs += [clean, killed, resuming]

    deadline = time.monotonic() + 150  # three processes import Dagster at once first
    while not (killed.manifests() and lines(killed.manifests()[0]) >= PAGES_BEFORE_KILL):
        if killed.process.poll() is not None:
            raise AssertionError(f"the run ended before it could be killed: {killed.error()}")
        assert time.monotonic() < deadline, "pages did not land within 150 s"
        time.sleep(0.02)
    killed.process.send_signal(signal.SIGKILL)
    killed.process.wait(timeout=10)
    [manifest] = killed.manifests()
    landed_before_kill = lines(manifest)
    assert landed_before_kill < 300, "the run got too far to show a resume"
    assert not (manifest.parent / "COMPLETE").exists()
    assert not killed.outcome_path.exists()

    go.touch()
    resumed = resuming.finish()["metadata"]
    baseline = clean.finish()["metadata"]

    assert resumed["resumed_after_pages"] >= landed_before_kill >= PAGES_BEFORE_KILL
    assert baseline["resumed_after_pages"] == 0
    assert resumed["requests"] <= baseline["requests"] - landed_before_kill
    assert resumed["pages"] + resumed["resumed_after_pages"] == baseline["pages"]
    assert resumed["rows_loaded"] == baseline["rows_loaded"]
    invoices = httpx.get(f"{billing_url}/_sandbox/stats", timeout=10).json()["counts"]["invoices"]
    table = killed.table()
    assert len(table) == len({key for key, _ in table}) == invoices, "lost or doubled invoices"
    assert table == clean.table()
