"""What publishing the warehouse costs: a byte copy against a copy in DuckDB 1.4's format.

`Warehouse.publish()` runs after every load (under the write lock), so its time is paid by every
raw asset run, dbt build, webhook drain and stream batch that publishes. Timed here through the
real `publish()`, on the demo's warehouse (`make demo` first) and on a raw table of `--rows`
records shaped like the loader's, each in both formats a warehouse can be in: DuckDB 2.0's own
(a warehouse from before PUBLISHED_STORAGE_VERSION, rewritten at each publish) and DuckDB 1.4's
(a warehouse the platform created since, copied as it is).

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

from benchmarks.common import REPO, busy, require, write_readme
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


def time_publish(warehouse: Path, mode: str, rounds: int, folder: Path) -> float:
    """Median seconds of `rounds` publishes of `warehouse` in `mode`."""
    store = Warehouse(
        warehouse, published_path=folder / "published.duckdb", published_storage_version=mode
    )
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        with store.locked():
            store.publish()
        seconds.append(time.perf_counter() - started)
    published, original = row_counts(folder / "published.duckdb"), row_counts(warehouse)
    require(
        published == original,
        f"the published copy of {warehouse.name} ({mode}) holds {published}, not {original}",
    )
    return statistics.median(seconds)


def row_counts(path: Path) -> dict[str, int]:
    """Every table of a DuckDB file and its row count."""
    with duckdb.connect(str(path), read_only=True) as connection:
        tables = connection.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = "
            "current_database()"
        ).fetchall()
        counts = {}
        for schema, table in tables:
            row = connection.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()  # noqa: S608
            counts[f"{schema}.{table}"] = int(row[0]) if row else -1
    return counts


def synthetic_warehouse(folder: Path, rows: int) -> Path:
    path = folder / "synthetic.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute(RAW_TABLE, [rows])
    return path


def in_format(source: Path, storage_version: str, target: Path) -> Path:
    """`source`'s schemas, tables and views in a new file of that storage format."""
    with duckdb.connect(":memory:") as connection:
        connection.execute("ATTACH ? AS source (READ_ONLY)", [str(source)])
        connection.execute(
            f"ATTACH ? AS target (STORAGE_VERSION '{storage_version}')", [str(target)]
        )
        connection.execute("COPY FROM DATABASE source TO target")
    return target


def measure(source: Path, label: str, rounds: int, folder: Path) -> str:
    duckdb_2 = in_format(source, "v2.0.0", folder / f"{source.stem}-2.0.duckdb")
    duckdb_14 = in_format(
        source, DEFAULT_PUBLISHED_STORAGE_VERSION, folder / f"{source.stem}-1.4.duckdb"
    )
    before = time_publish(duckdb_2, PUBLISHED_AS_IS, rounds, folder)
    legacy = time_publish(duckdb_2, DEFAULT_PUBLISHED_STORAGE_VERSION, rounds, folder)
    new = time_publish(duckdb_14, DEFAULT_PUBLISHED_STORAGE_VERSION, rounds, folder)
    line = (
        f"| {label} | {duckdb_2.stat().st_size / 1e6:,.1f} MB | {before * 1000:,.0f} ms | "
        f"{new * 1000:,.0f} ms | {legacy * 1000:,.0f} ms |"
    )
    print(line, flush=True)
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--readme", action="store_true", help="rewrite its README section")
    args = parser.parse_args()
    rows: list[str] = []
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="publish-bench-") as tmp:
        folder = Path(tmp)
        if DEMO_WAREHOUSE.exists():
            rows.append(measure(DEMO_WAREHOUSE, "the demo's (`make demo`)", args.rounds, folder))
        else:
            print(f"{DEMO_WAREHOUSE} not found: run `make demo` first to time it too")
        big = synthetic_warehouse(folder, args.rows)
        rows.append(measure(big, f"a raw table of {args.rows:,} invoices", args.rounds, folder))
    if args.readme:
        write_readme({"publish": readme_section(rows, args.rounds, load, os.getloadavg()[0])})


def readme_section(rows: list[str], rounds: int, load: float, load_after: float) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""## Publishing the read-only copy: byte copy vs DuckDB 1.4's storage format

`Warehouse.publish()` after each load, timed through the real code (median of {rounds}), under
the write lock, so its time is also how much longer the next load waits. *Before*: the byte
copy every publish was until the copy had to open in DuckDB 1.4 (`PUBLISHED_STORAGE_VERSION=as-is`
still does it). *New warehouse*: a warehouse the platform created, which is in DuckDB 1.4's
format from the start: still a byte copy, after DuckDB reads the file's format. *Older
warehouse*: one in DuckDB 2.0's format, rewritten into a new file at each publish
(`COPY FROM DATABASE`); `cp data/warehouse.published.duckdb data/warehouse.duckdb`, with the
platform stopped, turns it into a new one.

**Command:** `.venv/bin/python -m benchmarks.publish_benchmark --readme` (after `make demo`);
{when}, {platform.machine()}, {os.cpu_count()} CPUs, DuckDB {duckdb.__version__}; load average
{load:.1f} at the start, {load_after:.1f} at the end ({busy([load, load_after])}).

| warehouse | size | before (byte copy) | new warehouse | older warehouse (rewritten) |
|---|---:|---:|---:|---:|
{chr(10).join(rows)}

`make demo` publishes after each raw asset's run, then after the dbt build."""


if __name__ == "__main__":
    main()
