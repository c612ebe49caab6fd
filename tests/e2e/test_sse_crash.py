"""A stream consumer SIGKILLed mid-batch, restarted, cut off by the server and stopped: raw holds
every event the server sent, once.

Everything runs as separate processes, as under `make run`: the sandbox (`integration-platform
sandbox up --stream-rate 2000`) and `integration-platform streams consume` on a temporary data
dir. The test reads the warehouse only under its write lock, as any other writer would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson
import pytest
import yaml
from filelock import FileLock, Timeout

from integration_platform.environment import PROJECT_ROOT, load_sandbox_env
from integration_platform.landing.warehouse import Warehouse
from integration_platform_sandbox.chaos import ChaosEngine, ChaosSettings
from integration_platform_sandbox.vendors.analytics import Analytics
from integration_platform_sandbox.world import SandboxCredentials, SandboxSettings, World
from tests.e2e.test_platform_commands import free_port_block

BIN = Path(sys.executable).parent
SEED, CUSTOMERS, RATE, BATCH = 7, 300, 2000, 4000


@pytest.fixture(scope="module")
def analytics_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The sandbox in its own process, streaming 2,000 events a second."""
    base = free_port_block(4)
    log = tmp_path_factory.mktemp("sandbox") / "sandbox.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(BIN / "integration-platform"),
                "sandbox",
                "up",
                "--base-port",
                str(base),
                "--seed",
                str(SEED),
                "--customers",
                str(CUSTOMERS),
                "--stream-rate",
                str(RATE),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{base + 3}"
    try:
        wait_for(
            lambda: _healthy(url),
            60,
            lambda: f"the sandbox did not start: {log.read_text()[-2000:]}",
            process,
        )
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/_sandbox/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def wait_for(
    condition: Callable[[], bool],
    timeout: float,
    failure: Callable[[], str],
    process: subprocess.Popen[bytes] | None = None,
    poll: float = 0.05,
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process is None or process.poll() is None, failure()
        assert time.monotonic() < deadline, failure()
        time.sleep(poll)


class Consumer:
    """One `integration-platform streams consume` process."""

    def __init__(self, name: str, tmp_path: Path, env: dict[str, str]) -> None:
        self.log = tmp_path / f"{name}.log"
        self.out = tmp_path / f"{name}.json"
        with self.log.open("wb") as log, self.out.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    str(BIN / "integration-platform"),
                    "streams",
                    "consume",
                    "--source",
                    "analytics",
                    "--stream",
                    "usage",
                ],
                env=env,
                stdout=out,
                stderr=log,
            )

    def failure(self) -> str:
        return f"consumer exited {self.process.poll()}: {self.log.read_text()[-3000:]}"

    def stop(self) -> dict[str, Any]:
        """SIGTERM: it flushes what it read, then prints its summary and exits 0."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        assert self.process.returncode == 0, self.failure()
        summary: dict[str, Any] = json.loads(self.out.read_text())[0]
        return summary


def checkpoint(warehouse: Path) -> int | None:
    """The stream's checkpoint, read under the write lock (so no writer holds the file)."""
    if not warehouse.exists():
        return None
    with (
        Warehouse(warehouse, lock_timeout_seconds=30).locked(),
        duckdb.connect(str(warehouse), read_only=True) as connection,
    ):
        try:
            rows = connection.execute(
                "SELECT last_event_id FROM raw._stream_checkpoints "
                "WHERE source = 'analytics' AND stream = 'usage'"
            ).fetchall()
        except duckdb.CatalogException:
            return None
    return int(rows[0][0]) if rows else None


def reached(warehouse: Path, event_id: int) -> Callable[[], bool]:
    """Poll with `poll=0.25` or so: each look holds the write lock while DuckDB opens."""
    return lambda: (checkpoint(warehouse) or 0) >= event_id


def writing(warehouse: Path) -> bool:
    """Whether a writer holds the warehouse lock right now (the consumer is loading a batch)."""
    lock = FileLock(f"{warehouse}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


def stream_spec(tmp_path: Path) -> Path:
    """sources/analytics.yaml with batches of 4,000 events (about 2 s of stream each): a load
    then lasts long enough for the kills below to land inside its transaction."""
    spec = yaml.safe_load((PROJECT_ROOT / "sources" / "analytics.yaml").read_text())
    spec["streams"]["usage"].update(batch_size=BATCH, batch_seconds=5)
    path = tmp_path / "analytics.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def kill_mid_write(consumer: Consumer, warehouse: Path, after_seconds: float) -> int:
    """SIGKILL `after_seconds` into one of the consumer's batch writes; the checkpoint then."""
    wait_for(lambda: writing(warehouse), 10, consumer.failure, consumer.process, poll=0.002)
    time.sleep(after_seconds)  # inside the transaction, or detaching, or already buffering
    consumer.process.send_signal(signal.SIGKILL)
    consumer.process.wait(timeout=10)
    at_kill = checkpoint(warehouse)
    assert at_kill is not None
    return at_kill


def test_no_event_is_lost_or_doubled_when_the_consumer_is_killed_mid_batch_and_restarted(
    analytics_url: str, tmp_path: Path
) -> None:
    load_sandbox_env()
    data = tmp_path / "data"
    warehouse = data / "warehouse.duckdb"
    env = {
        **os.environ,
        "SOURCES_PATH": str(stream_spec(tmp_path)),
        "ANALYTICS_BASE_URL": analytics_url,
        "INTEGRATION_PLATFORM_DATA_DIR": str(data),
        "LOG_LEVEL": "INFO",
        # The loads are reported to this instance, not to the one `make` points at.
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    (tmp_path / "dagster_home").mkdir()
    env.pop("WAREHOUSE_PATH", None)
    history = httpx.get(f"{analytics_url}/_sandbox/stats", timeout=10).json()["counts"]["events"]

    first = Consumer("first", tmp_path, env)
    wait_for(reached(warehouse, history + BATCH), 60, first.failure, first.process, poll=0.25)
    first_kill = kill_mid_write(first, warehouse, 0.03)
    second = Consumer("second", tmp_path, env)
    wait_for(reached(warehouse, first_kill + BATCH), 60, second.failure, second.process, poll=0.25)
    second_kill = kill_mid_write(second, warehouse, 0.12)

    last_one = Consumer("last", tmp_path, env)
    wait_for(
        reached(warehouse, second_kill + BATCH), 60, last_one.failure, last_one.process, poll=0.25
    )
    hangup = httpx.post(f"{analytics_url}/_sandbox/stream/disconnect", timeout=10).json()
    # `retry: 2000`: the consumer is back about two seconds later, after its last event id.
    wait_for(
        reached(warehouse, second_kill + 2 * BATCH),
        60,
        last_one.failure,
        last_one.process,
        poll=0.25,
    )
    summary = last_one.stop()

    with duckdb.connect(str(warehouse), read_only=True) as connection:
        rows = connection.execute(
            "SELECT (record ->> 'event_id')::BIGINT, record::VARCHAR "
            'FROM raw."analytics__events" ORDER BY 1'
        ).fetchall()
    ids = [int(event_id) for event_id, _ in rows]
    last = checkpoint(warehouse)
    assert hangup["disconnected"] == 1
    assert summary["resumed_after"] == str(second_kill)
    assert summary["connections"] == 2
    assert summary["last_event_id"] == str(last)
    assert ids == list(range(history + 1, last + 1)), (
        f"{len(ids)} rows, {len(set(ids))} distinct, for ids {history + 1}..{last}"
    )
    assert [orjson.loads(record) for _, record in rows] == deterministic_events(ids)


def deterministic_events(ids: list[int]) -> list[dict[str, Any]]:
    """The events `ids` as the sandbox's generator makes them for this seed and population."""
    world = World(SandboxSettings(seed=SEED, customers=CUSTOMERS), SandboxCredentials.from_env())
    vendor = Analytics(world, ChaosEngine(ChaosSettings(), SEED))
    return [vendor.event(event_id, None) for event_id in ids]
