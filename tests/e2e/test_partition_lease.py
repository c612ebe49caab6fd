"""Two runs of one partition at once: the second waits for the first, and the partition ends
with every record exactly once. Two real `dg launch` processes (Dagster's launch command), one
sandbox process, one data dir and one Dagster instance, as a schedule and a manual run would
share."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import duckdb
import httpx
import orjson
import pytest
import yaml

from integration_platform.environment import PROJECT_ROOT, load_sandbox_env
from tests.e2e.sandbox_process import sandbox_process

BIN = Path(sys.executable).parent
# Pages of one invoice at 2 requests/s: a day of 20-45 invoices takes 10-22 s to extract,
# far longer than the start-up times of two processes started together differ.
INVOICES_PER_DAY = (20, 45)

DEFINITIONS = """
from dagster import Definitions
from integration_platform.assets.raw import api_resource_key, raw_assets
from integration_platform.assets.resources import api_resource, default_resources
from integration_platform.specs.loader import load_specs

specs = load_specs()
defs = Definitions(
    assets=raw_assets(specs, retry_policy=None),
    resources={**default_resources(),
               **{api_resource_key(name): api_resource(spec) for name, spec in specs.items()}},
)
"""


REGISTER_DEMO = """
from dagster import DagsterInstance
from integration_platform.assets.partitions import register_clients
register_clients(DagsterInstance.get(), "demo")
"""


@pytest.fixture(scope="module")
def billing_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("sandbox") / "sandbox.log"
    with sandbox_process(log, "--customers", "3000", "--billing-rate-limit", "100000") as base:
        yield f"http://127.0.0.1:{base + 1}"


def slow_invoices_spec(folder: Path) -> Path:
    shipped = yaml.safe_load((PROJECT_ROOT / "sources" / "billing.yaml").read_text())
    invoices = shipped["endpoints"]["invoices"]
    invoices["pagination"]["page_size"] = 1
    spec = {key: shipped[key] for key in ("source", "kind", "base_url", "auth", "retry")}
    spec["endpoints"] = {"invoices": invoices}
    spec["rate_limit"] = {"requests_per_second": 2, "burst": 1}
    path = folder / "billing.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def a_day_with_some_invoices(billing_url: str) -> tuple[str, int]:
    day = date(2025, 3, 1)
    headers = {"X-API-Key": os.environ["BILLING_API_KEY"]}
    for _ in range(200):
        following = day + timedelta(days=1)
        total = httpx.get(
            f"{billing_url}/v1/invoices",
            headers=headers,
            timeout=10,
            params={
                "limit": 1,
                "created_since": f"{day}T00:00:00Z",
                "created_before": f"{following}T00:00:00Z",
            },
        ).json()["total"]
        if INVOICES_PER_DAY[0] <= total <= INVOICES_PER_DAY[1]:
            return day.isoformat(), total
        day = following
    raise AssertionError("no day with a suitable number of invoices")


def test_the_second_run_waits_and_the_partition_holds_each_record_once_when_two_runs_overlap(
    billing_url: str,
    tmp_path: Path,
) -> None:
    load_sandbox_env()
    day, invoices = a_day_with_some_invoices(billing_url)
    (tmp_path / "defs.py").write_text(DEFINITIONS)
    (tmp_path / "home").mkdir()
    data = tmp_path / "data"
    env = {
        **os.environ,
        "SOURCES_PATH": str(slow_invoices_spec(tmp_path)),
        "BILLING_BASE_URL": billing_url,
        "INTEGRATION_PLATFORM_DATA_DIR": str(data),
        "DAGSTER_HOME": str(tmp_path / "home"),
    }
    env.pop("WAREHOUSE_PATH", None)
    command = [
        str(BIN / "dg"),
        "launch",
        "-f",
        str(tmp_path / "defs.py"),
        "--assets",
        "raw/billing/invoices",
        "--partition",
        f"demo|{day}",
    ]

    def start(name: str) -> subprocess.Popen[bytes]:
        with (tmp_path / f"{name}.log").open("wb") as log:
            return subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path
            )

    # The instance's storage first (so two processes do not both create it), with the demo
    # client registered, as `make run` does.
    subprocess.run([sys.executable, "-c", REGISTER_DEMO], env=env, check=True, capture_output=True)
    partition = data / "landing" / "demo" / "billing" / "invoices" / day
    runs = {name: start(name) for name in ("first", "second")}  # started together
    try:
        for name, process in runs.items():
            assert process.wait(timeout=240) == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
    finally:
        for process in runs.values():
            if process.poll() is None:
                process.kill()

    waited = [name for name in runs if "waited" in (tmp_path / f"{name}.log").read_text()]
    assert len(waited) == 1, f"exactly one run should have waited for the other: {waited}"
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as connection:
        rows = connection.execute(
            'SELECT _primary_key, _run_id FROM raw."billing__invoices" WHERE _partition_key = ?',
            [day],
        ).fetchall()
    assert len(rows) == len({key for key, _ in rows}) == invoices
    assert len({run for _, run in rows}) == 1, "the partition mixes rows of two runs"
    # Each run extracted on its own: two complete attempts, each with every page of the day
    # landed by one run.
    attempts = sorted(p for p in partition.iterdir() if p.is_dir())
    assert len(attempts) == 2 and all((a / "COMPLETE").exists() for a in attempts)
    for attempt in attempts:
        lines = [
            orjson.loads(line) for line in (attempt / "manifest.jsonl").read_bytes().splitlines()
        ]
        assert len(lines) == invoices and len({line["run_id"] for line in lines}) == 1
