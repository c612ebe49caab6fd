"""What one tick of the `automation_sensor` costs: the daemon evaluates the dbt build's automation
condition every 5 seconds, all day, on the same 2 cores as the runs.

On a copy of the demo's Dagster instance (`make demo` first: its runs, its raw materializations,
its clients), CPU and wall seconds of Dagster's own evaluation
(`evaluate_automation_conditions`, the function its tests use; the daemon runs the same
evaluator and records the same cursor): a first tick, then `--ticks` more, each from the
cursor of the one before. A raw partition lands just before the first, so it requests the
build.

    .venv/bin/python -m benchmarks.automation_tick_benchmark [--ticks 5] [--readme]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import REPO, busy, require, write_readme

DEMO_HOME = REPO / "data" / "demo" / "dagster_home"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--readme", action="store_true")
    args = parser.parse_args()
    if not (DEMO_HOME / "dagster.yaml").exists():
        raise SystemExit(f"{DEMO_HOME} has no Dagster instance: run `make demo` first")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tick-bench-") as scratch:
        home = Path(scratch) / "dagster_home"
        shutil.copytree(DEMO_HOME, home)
        os.environ["DAGSTER_HOME"] = str(home)
        os.environ.setdefault("LOG_LEVEL", "WARNING")
        first, later, conditions, requested = _ticks(args.ticks)
    load_after = os.getloadavg()
    require(
        requested > 0,
        "the tick after a raw partition landed requested no dbt asset: the automation is broken",
    )
    cpu = statistics.median(c for c, _ in later)
    wall = statistics.median(w for _, w in later)
    body = "\n".join(
        [
            "## Automation: what one tick of the automation sensor costs",
            "",
            f"`.venv/bin/python -m benchmarks.automation_tick_benchmark --ticks {args.ticks}"
            f"{' --readme' if args.readme else ''}`, {datetime.now(UTC):%Y-%m-%d}, "
            f"{platform.machine()}, {os.cpu_count()} cores; {busy([*load_before, *load_after])}. "
            "On a copy of the demo's Dagster instance (SQLite); the sensor ticks every 5 s.",
            "",
            f"- conditions evaluated per tick: {conditions}; the first tick after a raw "
            f"partition landed requested {requested} assets: the whole dbt build",
            f"- the tick that requests it: {first[0]:.2f} s CPU, {first[1]:.2f} s wall",
            f"- later ticks (median of {len(later)}): **{cpu:.2f} s CPU**, {wall:.2f} s wall "
            f"(each: {', '.join(f'{c:.2f}' for c, _ in later)} s CPU)",
            "",
            "One condition decides the whole build (commit 6c36d01): before, each model carried "
            "it and asked again of every raw asset whether it was loading, and recording each "
            "answer made Dagster query the clients' partitions (the measurement before and after "
            "is in that commit's message).",
        ]
    )
    print(body)
    if args.readme:
        write_readme({"bench-tick": body})


def _ticks(count: int) -> tuple[tuple[float, float], list[tuple[float, float]], int, int]:
    from dagster import AssetKey, AssetMaterialization, DagsterInstance
    from dagster import evaluate_automation_conditions as evaluate

    import integration_platform.definitions as definitions

    defs = definitions.defs()
    graph = defs.resolve_asset_graph()
    dbt_keys = [
        key
        for key in graph.get_all_asset_keys()
        if key.path[0] != "raw" and graph.get(key).is_materializable
    ]
    with DagsterInstance.get() as instance:

        def tick(cursor: object) -> tuple[object, tuple[float, float], int, int]:
            cpu, wall = time.process_time(), time.perf_counter()
            result = evaluate(defs=defs, instance=instance, cursor=cursor)  # type: ignore[arg-type]
            spent = (time.process_time() - cpu, time.perf_counter() - wall)
            built = [key for key in dbt_keys if result.get_requested_partitions(key)]
            return result.cursor, spent, len(result.results), len(built)

        cursor, _, _, _ = tick(None)  # the sensor's cursor as it stands between landings
        instance.report_runless_asset_event(
            AssetMaterialization(AssetKey(["raw", "crm", "contacts"]), partition=_a_partition())
        )
        cursor, first, conditions, requested = tick(cursor)
        later = []
        for _ in range(count):
            cursor, spent, _, _ = tick(cursor)
            later.append(spent)
        return first, later, conditions, requested


def _a_partition() -> str:
    """A raw crm contacts partition of the demo's client (one of its days)."""
    from dagster import DagsterInstance

    from integration_platform.assets.partitions import CLIENTS_PARTITIONS

    with DagsterInstance.get() as instance:
        clients = instance.get_dynamic_partitions(CLIENTS_PARTITIONS)
    return f"{clients[0]}|2025-06-01"


if __name__ == "__main__":
    main()
