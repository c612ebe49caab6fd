"""Integration Platform API: sync-request latency (p50/p99) and access-layer records/s.

The API runs in its own process (`integration-platform api serve`, SQLite store) against a
stand-in Dagster webserver in this process (tests/api/fake_dagster.py: it answers the GraphQL
the orchestrator sends, so the background worker launches runs as it would) and a published
warehouse copy holding N golden customer records of one client: the rows a real dbt build made
of the sandbox (two clients, a few days), repeated under new ids. The load generator is httpx
in threads, on keep-alive connections.

- sync API: each of C clients requests a sync (new syncs, 202), then repeated requests for
  the same clients come back as the running sync (200, `already_running`) or replay an
  Idempotency-Key (200): latency per request, p50/p99 per kind; and the status route.
- access API: page through every customer of the client (1000 per page), one reader and four
  at once: records/s.

    .venv/bin/python -m benchmarks.api_benchmark [--clients 200] [--repeats 2000]
        [--customers 100000] [--threads 8] [--readme]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import httpx
from cryptography.fernet import Fernet

from benchmarks import common
from benchmarks.common import REPO, busy, require
from integration_platform.webhooks.server import ReceiverServer
from tests.api.fake_dagster import FakeDagster
from tests.api.warehouse_fixture import build_published_warehouse

SECTION = "api"
ADMIN_KEY = "bench-admin-key-0123456789abcdef"
CLIENT = "bench-client"


def log(message: str) -> None:
    print(f"[api-bench] {message}", file=sys.stderr, flush=True)


def build_published(path: Path, customers: int) -> None:
    """`customers` golden records of CLIENT (and 100 of another client): the rows a real dbt
    build made (tests/api/warehouse_fixture.py: sandbox, materialize, dbt), with their column
    types, repeated under new customer ids."""
    log("building the marts with the real pipeline (sandbox, materialize, dbt build)")
    built = build_published_warehouse(path.parent / "marts")
    log(f"built in {built.seconds:.0f} s; repeating its customers")
    scale_marts(built.path, path, customers)


def scale_marts(built: Path, path: Path, customers: int) -> None:
    """Customer i of the copy is the built marts' row i modulo their count, renamed."""
    with duckdb.connect(str(path)) as connection:
        connection.execute("attach ? as built (read_only)", [str(built)])
        connection.execute("create schema marts")
        for model in ("dim_customers", "customer_360"):
            connection.execute(
                f"create table marts.{model} as "  # noqa: S608
                "with numbered as (select *, row_number() over (order by client_id, customer_id) "
                f"- 1 as row_n, count(*) over () as row_total from built.marts.{model}) "
                "select numbered.* exclude (row_n, row_total) replace ("
                "case when i < ? then ? else 'other' end as client_id, "
                "printf('cust-%08d', i) as customer_id) "
                "from range(?) t(i) join numbered on numbered.row_n = i % numbered.row_total",
                [customers, CLIENT, customers + 100],
            )
        connection.execute("detach built")


class ApiProcess:
    """`integration-platform api serve --port 0` with its own data directory and store."""

    def __init__(self, data: Path, dagster_url: str) -> None:
        env = {
            **os.environ,
            "INTEGRATION_PLATFORM_DATA_DIR": str(data),
            "WAREHOUSE_PATH": str(data / "warehouse.duckdb"),
            "DAGSTER_WEBSERVER_URL": dagster_url,
            "INTEGRATION_PLATFORM_ADMIN_KEY": ADMIN_KEY,
            "INTEGRATION_PLATFORM_SECRET_KEY": Fernet.generate_key().decode(),
            "LOG_LEVEL": "WARNING",
        }
        env.pop("DATABASE_URL", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "integration_platform.cli", "api", "serve", "--port", "0"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"the API did not start: {line!r}")
        self.url = line.split("listening on ")[1].split()[0]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def timed(
    calls: list[Callable[[httpx.Client], int]], threads: int, url: str
) -> tuple[list[float], list[int], float]:
    """Run the calls on `threads` keep-alive clients; latencies (ms), statuses, wall seconds."""
    local: dict[int, httpx.Client] = {}

    def run(call: Callable[[httpx.Client], int]) -> tuple[float, int]:
        import threading

        http = local.setdefault(
            threading.get_ident(),
            httpx.Client(
                base_url=url, timeout=30, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
            ),
        )
        started = time.perf_counter()
        status = call(http)
        return (time.perf_counter() - started) * 1000, status

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(run, calls))
    wall = time.perf_counter() - started
    for http in local.values():
        http.close()
    return [r[0] for r in results], [r[1] for r in results], wall


def percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "p50": round(statistics.median(ordered), 2),
        "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
        "max": round(ordered[-1], 2),
        "count": len(ordered),
    }


def benchmark(clients: int, repeats: int, customers: int, threads: int) -> dict[str, Any]:
    load_before = os.getloadavg()
    dagster = FakeDagster()
    fake = ReceiverServer(dagster.app(), port=0, name="stand-in Dagster").start()
    with tempfile.TemporaryDirectory(prefix="api-bench-") as folder:
        data = Path(folder)
        log(f"building a published copy with {customers:,} customers")
        build_published(data / "warehouse.published.duckdb", customers)
        api = ApiProcess(data, fake.url)
        try:
            with httpx.Client(
                base_url=api.url, timeout=30, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
            ) as http:
                credentials = {
                    "crm": {
                        "CRM_CLIENT_ID": "id",
                        "CRM_CLIENT_SECRET": "secret-1",
                        "CRM_BASE_URL": "http://127.0.0.1:9",
                    }
                }
                ids = [f"client-{i:05d}" for i in range(clients)]
                for client_id in [*ids, CLIENT]:
                    http.post(
                        "/clients",
                        json={"id": client_id, "name": client_id, "credentials": credentials},
                    ).raise_for_status()
            log(f"{clients} new syncs, then {repeats} repeated requests, {threads} threads")

            def sync(client_id: str, key: str | None = None) -> Callable[[httpx.Client], int]:
                headers = {"Idempotency-Key": key} if key else {}
                return lambda h: (
                    h.post(f"/integrations/{client_id}/sync", json={}, headers=headers).status_code
                )

            new, new_status, _ = timed([sync(c, f"k-{c}") for c in ids], threads, api.url)
            again = [
                sync(ids[i % clients], f"k-{ids[i % clients]}" if i % 2 else None)
                for i in range(repeats)
            ]
            repeat, repeat_status, _ = timed(again, threads, api.url)
            status_calls = [
                (lambda c: lambda h: h.get(f"/integrations/{c}/status").status_code)(
                    ids[i % clients]
                )
                for i in range(repeats // 2)
            ]
            status_latency, status_codes, _ = timed(status_calls, threads, api.url)
            launched = len(dagster.runs)

            def read_all(h: httpx.Client) -> int:
                cursor, count = None, 0
                while True:
                    params: dict[str, Any] = {"limit": 1000}
                    if cursor:
                        params["cursor"] = cursor
                    page = h.get(f"/clients/{CLIENT}/customers", params=params).json()
                    count += len(page["data"])
                    cursor = page["next_cursor"]
                    if cursor is None:
                        return count

            log(f"reading {customers:,} customers: one reader, then four")
            _, one_count, one_wall = timed([read_all], 1, api.url)
            _, four_counts, four_wall = timed([read_all] * 4, 4, api.url)
        finally:
            api.stop()
            fake.stop()
    require(set(new_status) == {202}, f"new syncs answered {sorted(set(new_status))}, not 202")
    require(
        set(repeat_status) == {200},
        f"repeated syncs answered {sorted(set(repeat_status))}, not 200",
    )
    require(set(status_codes) == {200}, f"status answered {sorted(set(status_codes))}, not 200")
    require(
        one_count == [customers] and four_counts == [customers] * 4,
        f"the readers got {one_count} and {four_counts} records, not {customers:,} each",
    )
    return {
        "clients": clients,
        "repeats": repeats,
        "customers": customers,
        "threads": threads,
        "new_syncs": percentiles(new),
        "repeated_syncs": percentiles(repeat),
        "status": percentiles(status_latency),
        "runs_launched": launched,
        "records_per_second_one_reader": round(customers / one_wall),
        "records_per_second_four_readers": round(4 * customers / four_wall),
        "load": [*load_before, *os.getloadavg()],
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
    }


def section(run: dict[str, Any], command: str) -> str:
    def row(name: str, figures: dict[str, float]) -> str:
        return (
            f"| {name} | {figures['count']:,} | {figures['p50']:.1f} | "
            f"{figures['p99']:.1f} | {figures['max']:.1f} |"
        )

    return "\n".join(
        [
            "## Integration Platform API: sync requests and the access layer",
            "",
            f"`{command}` — the API in its own process (SQLite store, uvicorn), a stand-in Dagster "
            "webserver answering the orchestrator's GraphQL (the background worker launches a run "
            "per new sync meanwhile), httpx clients in "
            f"{run['threads']} threads on keep-alive connections; {run['machine']}, "
            f"{busy(run['load'])}.",
            "",
            "| request | count | p50 ms | p99 ms | max ms |",
            "|---|---|---|---|---|",
            row(
                f"POST /integrations/{{id}}/sync, new sync (202), {run['clients']} clients",
                run["new_syncs"],
            ),
            row(
                "POST /integrations/{id}/sync, running sync or Idempotency-Key replay (200)",
                run["repeated_syncs"],
            ),
            row("GET /integrations/{id}/status (reads the runs from Dagster)", run["status"]),
            "",
            f"Access API, `GET /clients/{{id}}/customers` paged by 1000 through "
            f"{run['customers']:,} golden records: "
            f"**{run['records_per_second_one_reader']:,} "
            "records/s** with one reader, "
            f"**{run['records_per_second_four_readers']:,} records/s** "
            "with four at once (each reads them all).",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--readme", action="store_true", help="rewrite the README section")
    args = parser.parse_args()
    run = benchmark(args.clients, args.repeats, args.customers, args.threads)
    text = section(run, "make bench-api")
    print(text)
    if args.readme:
        common.write_readme({SECTION: text})


if __name__ == "__main__":
    main()
