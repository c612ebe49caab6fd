"""What a dbt build costs, and what the lineage metadata adds to it.

On a copy of the demo's warehouse (`make demo` first), median wall seconds (and CPU seconds) of:
- `dbt build --exclude-resource-type unit_test` alone (the CLI, as the build runs it);
- the `dbt_build` asset materialized through Dagster, in process, with the row counts, column
  types and column lineage (the default): a first build, whose lineage cache is empty
  (each round deletes it), and later builds, which reuse the lineage of the models whose SQL and
  schemas did not change (here: none); then dagster-dbt's own `fetch_column_metadata()`
  (no cache, as the asset ran before the cache), and `COLUMN_METADATA=off` (row counts only).
  All include publishing the read-only copy.

    .venv/bin/python -m benchmarks.dbt_build_benchmark [--rounds 3] [--readme]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import REPO, busy, require, write_readme
from integration_platform.transform.dbt_assets import column_lineage_cache_path

DEMO_WAREHOUSE = REPO / "data" / "demo" / "warehouse.duckdb"
DBT = str(Path(sys.executable).parent / "dbt")


# A round's wall seconds, and the CPU seconds of the timed process and of its children (dbt).
Round = tuple[float, float]
MODES = {
    "first": "row counts + column types + lineage, first build (empty lineage cache)",
    "later": "row counts + column types + lineage, later builds (lineage cache)",
    "dagster-dbt": "row counts + dagster-dbt's `fetch_column_metadata()` (no cache)",
    "off": "`COLUMN_METADATA=off` (row counts only)",
}


def time_cli(warehouse: Path, rounds: int) -> list[Round]:
    env = {**os.environ, "WAREHOUSE_PATH": str(warehouse)}
    seconds = []
    for _ in range(rounds):
        started, cpu = time.perf_counter(), _children_cpu()
        subprocess.run(
            [DBT, "build", "--exclude-resource-type", "unit_test", "--quiet"],
            cwd=REPO / "dbt_project",
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        seconds.append((time.perf_counter() - started, _children_cpu() - cpu))
    return seconds


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# The child process: `mode` as above; `cache` is the lineage cache's file.
DAGSTER_CODE = """
import resource, sys, time
from pathlib import Path
from dagster import AssetKey, DagsterInstance, materialize
from integration_platform.transform import dbt_assets
mode, cache, rounds = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
if mode == "dagster-dbt":  # the asset as it was before: dagster-dbt's own iterators
    dbt_assets.with_build_metadata = lambda invocation, events, cache: (
        events.fetch_row_counts().fetch_column_metadata()
    )
from integration_platform.definitions import defs as load_definitions
defs = load_definitions()
dbt_build = defs.get_assets_def(AssetKey(["marts", "dim_customers"]))  # the whole build
resources = {k: v for k, v in (defs.resources or {}).items()}
def cpu(who):
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime
if mode == "later":  # the build before, which fills the cache
    materialize([dbt_build], resources=resources, instance=DagsterInstance.ephemeral())
for _ in range(rounds):
    if mode == "first":
        cache.unlink(missing_ok=True)
    started = time.perf_counter(), cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN)
    materialize([dbt_build], resources=resources, instance=DagsterInstance.ephemeral(),
                raise_on_error=True)
    wall = time.perf_counter() - started[0]
    own = cpu(resource.RUSAGE_SELF) - started[1]
    dbt = cpu(resource.RUSAGE_CHILDREN) - started[2]
    print("SECONDS", wall, own + dbt, flush=True)
"""


def time_dagster(folder: Path, rounds: int, mode: str) -> list[Round]:
    """The asset through Dagster in a child process (a fresh interpreter per mode)."""
    env = {
        **os.environ,
        "INTEGRATION_PLATFORM_DATA_DIR": str(folder),
        "COLUMN_METADATA": "off" if mode == "off" else "on",
        "LOG_LEVEL": "ERROR",
    }
    cache = column_lineage_cache_path(folder / "warehouse.duckdb")
    out = subprocess.run(
        [sys.executable, "-c", DAGSTER_CODE, mode, str(cache), str(rounds)],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # dbt prints too: only the marked lines are the timings.
    timed = [
        (float(line.split()[1]), float(line.split()[2]))
        for line in out.splitlines()
        if line.startswith("SECONDS ")
    ]
    require(len(timed) == rounds, f"{mode}: {len(timed)} of {rounds} builds reported a time")
    return timed


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
        timed = {"cli": time_cli(warehouse, args.rounds)}
        for mode in MODES:
            timed[mode] = time_dagster(folder, args.rounds, mode)
    load_after = os.getloadavg()

    def median(mode: str, cpu: bool = False) -> float:
        return statistics.median(round_[cpu] for round_ in timed[mode])

    rows = [("`dbt build` alone (CLI)", "cli")] + [
        (f"`dbt_build` through Dagster, {what}", mode) for mode, what in MODES.items()
    ]

    def cost(mode: str) -> str:
        return (
            f"{median(mode) - median('off'):.1f} s wall, "
            f"{median(mode, True) - median('off', True):.1f} s CPU"
        )

    lines = [
        "## dbt build: the whole project, and what the lineage metadata costs",
        "",
        f"`make bench-dbt` (`.venv/bin/python -m benchmarks.dbt_build_benchmark --rounds "
        f"{args.rounds} --readme`), {datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, "
        f"{os.cpu_count()} cores; the demo's warehouse (one client, a week); "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after "
        f"({busy([load_before[0], load_after[0]])}).",
        "",
        "| what | median s | median CPU s | rounds (s) |",
        "|---|---:|---:|---|",
        *(
            f"| {name} | {median(mode):.1f} | {median(mode, True):.1f} | "
            f"{', '.join(f'{wall:.1f}' for wall, _ in timed[mode])} |"
            for name, mode in rows
        ),
        "",
        "Column types and lineage cost, per build (median with minus median without; CPU: the "
        "Dagster process and dbt): "
        f"**{cost('later')}** on a build whose models and schemas the build before saw, "
        f"**{cost('first')}** on a first build or where everything changed; dagster-dbt's "
        f"`fetch_column_metadata()` cost {cost('dagster-dbt')}. Dagster's own share "
        "(definitions, events, row counts, publishing the read-only copy) is "
        f"{median('off') - median('cli'):.1f} s over dbt alone.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.readme:
        write_readme({"bench-dbt": text})


if __name__ == "__main__":
    main()
