"""What a dbt build costs, and what the lineage metadata adds to it.

On a copy of the demo's warehouse (`make demo` first), median wall seconds of:
- `dbt build --exclude-resource-type unit_test` alone (the CLI, as the build runs it);
- the `dbt_build` asset materialized through Dagster, in process, with the row counts, column
  types and column lineage dagster-dbt fetches (the default), and with `COLUMN_METADATA=off`
  (row counts only). Both include publishing the read-only copy.

    .venv/bin/python -m benchmarks.dbt_build_benchmark [--rounds 3] [--readme]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import REPO, busy, write_readme

DEMO_WAREHOUSE = REPO / "data" / "demo" / "warehouse.duckdb"
DBT = str(Path(sys.executable).parent / "dbt")


def time_cli(warehouse: Path, rounds: int) -> list[float]:
    env = {**os.environ, "WAREHOUSE_PATH": str(warehouse)}
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run(
            [DBT, "build", "--exclude-resource-type", "unit_test", "--quiet"],
            cwd=REPO / "dbt_project",
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        seconds.append(time.perf_counter() - started)
    return seconds


def time_dagster(folder: Path, rounds: int, column_metadata: bool) -> list[float]:
    """The asset through Dagster in a child process (a fresh interpreter per mode)."""
    code = (
        "import time, sys\n"
        "from dagster import DagsterInstance, materialize\n"
        "from integration_platform.definitions import defs, dbt_build\n"
        "resources = {k: v for k, v in (defs.resources or {}).items()}\n"
        "for _ in range(int(sys.argv[1])):\n"
        "    started = time.perf_counter()\n"
        "    result = materialize([dbt_build], resources=resources,\n"
        "                         instance=DagsterInstance.ephemeral(), raise_on_error=True)\n"
        "    print('SECONDS', time.perf_counter() - started, flush=True)\n"
    )
    env = {
        **os.environ,
        "INTEGRATION_PLATFORM_DATA_DIR": str(folder),
        "COLUMN_METADATA": "on" if column_metadata else "off",
        "LOG_LEVEL": "ERROR",
    }
    out = subprocess.run(
        [sys.executable, "-c", code, str(rounds)],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # dbt prints too: only the marked lines are the timings.
    return [float(line.split()[1]) for line in out.splitlines() if line.startswith("SECONDS ")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--readme", action="store_true", help="rewrite benchmarks/README.md")
    args = parser.parse_args()
    if not DEMO_WAREHOUSE.exists():
        sys.exit(f"{DEMO_WAREHOUSE} is missing: run `make demo` first")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        warehouse = folder / "warehouse.duckdb"
        shutil.copyfile(DEMO_WAREHOUSE, warehouse)
        cli = time_cli(warehouse, args.rounds)
        with_lineage = time_dagster(folder, args.rounds, column_metadata=True)
        without = time_dagster(folder, args.rounds, column_metadata=False)
    load_after = os.getloadavg()
    median = statistics.median
    lineage_cost = median(with_lineage) - median(without)
    rows = [
        ("`dbt build` alone (CLI)", cli),
        ("`dbt_build` through Dagster, row counts + column types + lineage", with_lineage),
        ("`dbt_build` through Dagster, `COLUMN_METADATA=off` (row counts only)", without),
    ]
    lines = [
        "## dbt build: the whole project, and what the lineage metadata costs",
        "",
        f"`make bench-dbt` (`.venv/bin/python -m benchmarks.dbt_build_benchmark --rounds "
        f"{args.rounds} --readme`), {datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, "
        f"{os.cpu_count()} cores; the demo's warehouse (one client, a week); "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after "
        f"({busy([load_before[0], load_after[0]])}).",
        "",
        "| what | median s | rounds (s) |",
        "|---|---:|---|",
        *(
            f"| {name} | {median(values):.1f} | {', '.join(f'{v:.1f}' for v in values)} |"
            for name, values in rows
        ),
        "",
        f"Column types and lineage cost **{lineage_cost:.1f} s** per build (median with minus "
        "median without); Dagster's own share (definitions, events, publishing the read-only "
        f"copy) is {median(without) - median(cli):.1f} s over dbt alone.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.readme:
        write_readme({"bench-dbt": text})


if __name__ == "__main__":
    main()
