"""What publishing the warehouse costs: a byte copy against a copy in DuckDB 1.4's format.

`Warehouse.publish()` runs after every load (under the write lock), so its time is paid by every
raw asset run, dbt build, webhook drain and stream batch that publishes. Timed here through the
real `publish()`, on the demo's warehouse (`make demo` first) and on a raw table of `--rows`
records shaped like the loader's.

    .venv/bin/python -m benchmarks.publish_benchmark [--rows 1000000] [--rounds 5] [--readme]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from benchmarks.common import REPO, write_readme
from integration_platform.environment import DEFAULT_PUBLISHED_STORAGE_VERSION, PUBLISHED_AS_IS
from integration_platform.landing.warehouse import Warehouse

DEMO_WAREHOUSE = REPO / "data" / "demo" / "warehouse.duckdb"
MODES = (PUBLISHED_AS_IS, DEFAULT_PUBLISHED_STORAGE_VERSION)

# One raw table as the loader writes it: the record as JSON plus the lineage columns.
RAW_TABLE = """
CREATE SCHEMA raw;
CREATE TABLE raw.billing__invoices AS
SELECT json_object('id', 'inv_' || i, 'customer_id', 'cus_' || (i % 50000),
                   'amount', (i * 7919) % 100000, 'currency', ['USD', 'EUR', 'GBP'][i % 3 + 1],
                   'status', ['paid', 'open', 'void'][i % 3 + 1],
                   'created_at', '2025-06-01T00:00:00Z', 'lines', [i % 10, i % 7])::JSON AS record,
       'billing' AS _source, 'invoices' AS _endpoint, '2025-06-0' || (i % 7 + 1) AS _partition_key,
       'run-' || (i // 100000) AS _run_id, now() AS _fetched_at,
       'http://127.0.0.1:8701/v1/invoices?offset=' || i AS _request_url,
       md5(i::VARCHAR) AS _record_hash, 'inv_' || i AS _primary_key, i // 500 AS _page,
       i % 500 AS _page_index, now() AS _loaded_at, 'demo' AS _client_id
FROM range(?) t(i);
"""


def time_publish(warehouse: Path, mode: str, rounds: int, folder: Path) -> tuple[float, int]:
    """Median seconds of `rounds` publishes of `warehouse` in `mode`, and the copy's size."""
    store = Warehouse(
        warehouse,
        published_path=folder / f"published-{mode}.duckdb",
        published_storage_version=mode,
    )
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        with store.locked():
            store.publish()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), store.published_path.stat().st_size


def synthetic_warehouse(folder: Path, rows: int) -> Path:
    path = folder / "warehouse.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute(RAW_TABLE, [rows])
    return path


def measure(warehouse: Path, label: str, rounds: int, folder: Path) -> list[str]:
    figures = {mode: time_publish(warehouse, mode, rounds, folder) for mode in MODES}
    (copy, _), (written, written_size) = figures[MODES[0]], figures[MODES[1]]
    line = (
        f"| {label} | {warehouse.stat().st_size / 1e6:,.1f} MB | {copy * 1000:,.0f} ms | "
        f"{written * 1000:,.0f} ms ({written_size / 1e6:,.1f} MB) | "
        f"+{(written - copy) * 1000:,.0f} ms |"
    )
    print(line, flush=True)
    return [line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--readme", action="store_true", help="rewrite its benchmarks/README.md section"
    )
    args = parser.parse_args()
    rows: list[str] = []
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="publish-bench-") as tmp:
        folder = Path(tmp)
        if DEMO_WAREHOUSE.exists():
            rows += measure(
                DEMO_WAREHOUSE, "the demo's warehouse (`make demo`)", args.rounds, folder
            )
        else:
            print(f"{DEMO_WAREHOUSE} not found: run `make demo` first to time it too")
        big = synthetic_warehouse(folder, args.rows)
        rows += measure(big, f"one raw table of {args.rows:,} invoices", args.rounds, folder)
    if args.readme:
        write_readme({"publish": readme_section(rows, args.rounds, load)})


def readme_section(rows: list[str], rounds: int, load: float) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""## Publishing the read-only copy: byte copy vs DuckDB 1.4's storage format

`Warehouse.publish()` after each load, timed through the real code (median of {rounds}):
`as-is` copies the warehouse file (only DuckDB 2.0 opens it), the default
`PUBLISHED_STORAGE_VERSION={DEFAULT_PUBLISHED_STORAGE_VERSION}` writes a new file that DuckDB 1.4
and later open (`ATTACH ... (STORAGE_VERSION ...)` + `COPY FROM DATABASE`). The write lock is
held meanwhile, so the difference is also how much longer the next load waits.

**Command:** `.venv/bin/python -m benchmarks.publish_benchmark --readme` (after `make demo`);
{when}, {platform.machine()}, {os.cpu_count()} CPUs, DuckDB {duckdb.__version__}, load average
{load:.1f} at the start.

| warehouse | size | `as-is` | `{DEFAULT_PUBLISHED_STORAGE_VERSION}` (its size) | cost |
|---|---:|---:|---:|---:|
{chr(10).join(rows)}

`make demo` publishes 11 times (each of the 10 raw assets' runs, then the dbt build)."""


if __name__ == "__main__":
    main()
