"""Runs spread over two real celery workers (`integration-platform workers`) on this machine's
RabbitMQ: a backfill of 14 client-days of three billing endpoints runs its extract steps on both
workers and its loads on the warehouse queue, with exact row counts; a worker killed with
SIGKILL mid-run loses nothing: its step goes back to the queue, the other worker runs it, and
the run ends with the same rows, none lost and none doubled. Each module gets a RabbitMQ vhost
of its own (so its queues are its own), a sandbox process, a data dir and a Dagster instance."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import httpx
import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from integration_platform.celery_workers import (
    BROKER_URL_VARIABLE,
    BrokerUnreachableError,
    check_broker,
)
from integration_platform.environment import PROJECT_ROOT, load_sandbox_env
from tests.e2e.sandbox_process import sandbox_process

BIN = Path(sys.executable).parent
RABBITMQ = "127.0.0.1:5672"
ENDPOINTS = ("subscriptions", "invoices", "payments")
DAYS = [f"2025-03-{day:02d}" for day in range(1, 15)]  # 14 days of the demo client
DEADLINE_SECONDS = 240  # a loaded 2-core machine: generous, never a fixed sleep

DEFINITIONS = """
from dagster import Definitions
from integration_platform.assets.raw import api_resource_key
from integration_platform.assets.raw_steps import platform_raw_assets
from integration_platform.assets.resources import api_resource, default_resources
from integration_platform.defs.execution import run_executor
from integration_platform.specs.loader import load_specs

specs = load_specs()
defs = Definitions(
    assets=platform_raw_assets(specs, retry_policy=None),
    resources={**default_resources(),
               **{api_resource_key(name): api_resource(spec) for name, spec in specs.items()}},
    executor=run_executor(),
)
"""

REGISTER_DEMO = """
from dagster import DagsterInstance
from integration_platform.assets.partitions import register_clients
register_clients(DagsterInstance.get(), "demo")
"""


@dataclass
class Cluster:
    env: dict[str, str]
    folder: Path
    workers: dict[str, subprocess.Popen[bytes]]
    expected: dict[tuple[str, str], int]  # (endpoint, day) -> records the sandbox serves

    @property
    def warehouse(self) -> Path:
        return Path(self.env["INTEGRATION_PLATFORM_DATA_DIR"]) / "warehouse.duckdb"


@pytest.fixture(scope="module")
def vhost() -> Iterator[str]:
    """A RabbitMQ virtual host of this module's own: its queues collide with no other run's."""
    try:
        check_broker(f"amqp://guest:guest@{RABBITMQ}//", timeout=5)
    except BrokerUnreachableError as exc:
        pytest.fail(
            f"RabbitMQ at {RABBITMQ} (guest/guest) must answer for the celery worker tests: "
            f"start it (`rabbitmq-server -detached`). {exc}"
        )
    name = f"ip_test_{uuid.uuid4().hex[:10]}"
    subprocess.run(["rabbitmqctl", "add_vhost", name], check=True, capture_output=True)
    subprocess.run(
        ["rabbitmqctl", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    yield name
    subprocess.run(["rabbitmqctl", "delete_vhost", name], check=False, capture_output=True)


def billing_spec(folder: Path) -> Path:
    """The shipped billing spec's three daily endpoints, in small pages at a modest rate, so
    that each extract step lasts long enough to be killed in the middle."""
    shipped = yaml.safe_load((PROJECT_ROOT / "sources" / "billing.yaml").read_text())
    spec = {key: shipped[key] for key in ("source", "kind", "base_url", "auth", "retry")}
    spec["endpoints"] = {name: shipped["endpoints"][name] for name in ENDPOINTS}
    for endpoint in spec["endpoints"].values():
        endpoint["pagination"]["page_size"] = 5
    spec["rate_limit"] = {"requests_per_second": 15, "burst": 2}
    path = folder / "billing.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def served_counts(billing_url: str) -> dict[tuple[str, str], int]:
    headers = {"X-API-Key": os.environ["BILLING_API_KEY"]}
    counts = {}
    with httpx.Client(base_url=billing_url, headers=headers, timeout=10) as http:
        for endpoint in ENDPOINTS:
            for day in DAYS:
                following = f"2025-03-{int(day[-2:]) + 1:02d}"
                page = http.get(
                    f"/v1/{endpoint}",
                    params={
                        "limit": 1,
                        "created_since": f"{day}T00:00:00Z",
                        "created_before": f"{following}T00:00:00Z",
                    },
                )
                page.raise_for_status()
                counts[endpoint, day] = page.json()["total"]
    return counts


def start_worker(
    env: dict[str, str], folder: Path, name: str, *queues: str
) -> subprocess.Popen[bytes]:
    log = folder / f"worker-{name}.log"
    arguments = [str(BIN / "integration-platform"), "workers", "--name", f"{name}@%h"]
    for queue in queues:
        arguments += ["--queue", queue]
    with log.open("wb") as out:
        process = subprocess.Popen(
            arguments, env=env, cwd=folder, stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + DEADLINE_SECONDS
    while b" ready." not in log.read_bytes():
        assert process.poll() is None, f"worker {name} exited: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"worker {name} not ready: {log.read_text()[-3000:]}"
        time.sleep(0.2)
    return process


@pytest.fixture(scope="module")
def cluster(vhost: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("celery")
    load_sandbox_env()
    with sandbox_process(
        folder / "sandbox.log", "--customers", "3000", "--billing-rate-limit", "100000"
    ) as base:
        billing_url = f"http://127.0.0.1:{base + 1}"
        (folder / "defs.py").write_text(DEFINITIONS)
        (folder / "home").mkdir()
        env = {
            **os.environ,
            "SOURCES_PATH": str(billing_spec(folder)),
            "BILLING_BASE_URL": billing_url,
            "INTEGRATION_PLATFORM_DATA_DIR": str(folder / "data"),
            "DAGSTER_HOME": str(folder / "home"),
            BROKER_URL_VARIABLE: f"amqp://guest:guest@{RABBITMQ}/{vhost}",
        }
        env.pop("WAREHOUSE_PATH", None)
        subprocess.run(
            [sys.executable, "-c", REGISTER_DEMO], env=env, check=True, capture_output=True
        )
        # `a` serves both queues (the warehouse's one writer), `b` extraction only.
        workers = {
            "a": start_worker(env, folder, "a", "dagster", "warehouse"),
            "b": start_worker(env, folder, "b", "dagster"),
        }
        try:
            yield Cluster(env, folder, workers, served_counts(billing_url))
        finally:
            for process in workers.values():
                if process.poll() is None:
                    process.terminate()
            for process in workers.values():
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()


def launch(cluster: Cluster, name: str) -> subprocess.Popen[bytes]:
    """A backfill of the 14 days of all three endpoints: one run (their backfill policy)."""
    with (cluster.folder / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [
                str(BIN / "dg"),
                "launch",
                "-f",
                str(cluster.folder / "defs.py"),
                "--assets",
                ",".join(f"raw/billing/{endpoint}" for endpoint in ENDPOINTS),
                "--partition-range",
                f"demo|{DAYS[0]}...demo|{DAYS[-1]}",
            ],
            env=cluster.env,
            cwd=cluster.folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def steps_by_worker(
    cluster: Cluster, instance: DagsterInstance, run_id: str
) -> list[tuple[str, str]]:
    """(step key, worker name) for each step start, in order: a worker's solo pool runs the
    step in the worker's own process, so the event's pid names the worker."""
    names = {process.pid: name for name, process in cluster.workers.items()}
    return [
        (str(record.step_key), names.get(record.dagster_event.pid, "elsewhere"))
        for record in instance.all_logs(run_id, of_type=DagsterEventType.STEP_START)
        if record.dagster_event is not None
    ]


def latest_run_id(instance: DagsterInstance, after: set[str]) -> str | None:
    runs = [r for r in instance.get_runs(limit=5) if r.run_id not in after]
    return runs[0].run_id if runs else None


def rows(cluster: Cluster) -> dict[tuple[str, str], tuple[int, int, set[str]]]:
    """(endpoint, day) -> (rows, distinct primary keys, run ids) in the warehouse."""
    found = {}
    with duckdb.connect(str(cluster.warehouse), read_only=True) as connection:
        for endpoint in ENDPOINTS:
            for day, count, keys, runs in connection.execute(
                f"SELECT _partition_key, count(*), count(DISTINCT _primary_key), "
                f'list(DISTINCT _run_id) FROM raw."billing__{endpoint}" GROUP BY 1'
            ).fetchall():
                found[endpoint, day] = (count, keys, set(runs))
    return found


def assert_exact_rows(cluster: Cluster, run_id: str) -> None:
    found = rows(cluster)
    for key, served in cluster.expected.items():
        count, distinct, runs = found.get(key, (0, 0, set()))
        assert count == distinct == served, f"{key}: {count} rows, {distinct} keys, {served} served"
        if served:
            assert runs == {run_id}, f"{key} holds rows of runs {runs}"
    assert set(found) <= set(cluster.expected), "rows outside the backfill's days"


def test_steps_run_on_both_workers_and_loads_on_the_warehouse_queue_when_a_backfill_runs(
    cluster: Cluster,
) -> None:
    process = launch(cluster, "backfill")
    assert process.wait(timeout=DEADLINE_SECONDS) == 0, (
        cluster.folder / "backfill.log"
    ).read_text()[-3000:]
    with DagsterInstance.from_config(cluster.env["DAGSTER_HOME"]) as instance:
        [run] = instance.get_runs(limit=1)
        assert run.status == DagsterRunStatus.SUCCESS
        started = steps_by_worker(cluster, instance, run.run_id)
    assert {worker for _, worker in started} == {"a", "b"}, started
    loads = [(step, worker) for step, worker in started if step.endswith("_load")]
    assert len(loads) == len(ENDPOINTS) and {w for _, w in loads} == {"a"}, started
    assert sum(cluster.expected.values()) > 0
    assert_exact_rows(cluster, run.run_id)


def test_the_run_finishes_with_the_same_rows_when_a_worker_is_killed_mid_run(
    cluster: Cluster,
) -> None:
    with DagsterInstance.from_config(cluster.env["DAGSTER_HOME"]) as instance:
        before = {r.run_id for r in instance.get_runs()}
        process = launch(cluster, "killed")
        victim = cluster.workers["b"]
        deadline = time.monotonic() + DEADLINE_SECONDS
        killed_step = None
        while killed_step is None:
            assert process.poll() is None, (cluster.folder / "killed.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "worker b never started a step of the run"
            run_id = latest_run_id(instance, before)
            if run_id is not None:
                on_b = [s for s, w in steps_by_worker(cluster, instance, run_id) if w == "b"]
                if on_b:
                    killed_step = on_b[0]
                    os.kill(victim.pid, signal.SIGKILL)
            time.sleep(0.2)
        assert victim.wait(timeout=30) == -signal.SIGKILL
        assert process.wait(timeout=DEADLINE_SECONDS) == 0, (
            cluster.folder / "killed.log"
        ).read_text()[-3000:]
        assert run_id is not None
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == DagsterRunStatus.SUCCESS
        started = steps_by_worker(cluster, instance, run_id)
        step_succeeded = {
            r.step_key for r in instance.all_logs(run_id, of_type=DagsterEventType.STEP_SUCCESS)
        }
    # The killed step came back from the queue and the surviving worker ran it to the end.
    assert (killed_step, "a") in started[started.index((killed_step, "b")) :], started
    assert killed_step in step_succeeded
    assert_exact_rows(cluster, run_id)
