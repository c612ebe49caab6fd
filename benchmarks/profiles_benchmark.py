"""The demo and a client's sync on each Dagster instance profile, in one run: local (SQLite
under $DAGSTER_HOME) and production (PostgreSQL: a scratch database on this machine's server,
one for the demo and one for the platform, dropped at the end).

For each profile, one after the other on the same machine:
1. `integration-platform demo` in a data folder of its own: wall seconds, its raw stages and
   its transform stage (from the moments its progress lines appear), and the CPU it took;
2. the platform (`integration-platform up`) and `--rounds` syncs of one client-week of the demo
   client, one after the other: seconds from POST to succeeded, and the dbt build's part.

    .venv/bin/python -m benchmarks.profiles_benchmark [--rounds 3] [--readme]
"""

from __future__ import annotations

import argparse
import os
import platform as machine
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import busy, require, write_readme
from benchmarks.sync_benchmark import WEEK, Timed, instance_profile, sync
from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.environment import PROJECT_ROOT
from tests.e2e.platform import start_platform, stop_platform

PROFILES = ("local", "production")
DEMO_TIMEOUT = 1800


@dataclass(frozen=True)
class DemoFigures:
    seconds: float
    raw_seconds: float  # first stage header → the transform stage's header
    transform_seconds: float  # the transform stage's header → the demo's last line
    cpu_seconds: float  # the demo process and its children (dbt), whatever the load


def demo(profile_env: dict[str, str], root: Path) -> DemoFigures:
    """`integration-platform demo` with its data under `root`; the moment each output line
    appears is when that stage began or ended."""
    env = {**os.environ, "INTEGRATION_PLATFORM_DATA_DIR": str(root / "data"), **profile_env}
    env.pop("DAGSTER_HOME", None)  # the demo's own, under its data folder
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    stamped: list[tuple[float, str]] = []
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "integration-platform"), "demo"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        stamped.append((time.monotonic() - started, line.rstrip()))
        if time.monotonic() - started > DEMO_TIMEOUT:
            process.kill()
    code = process.wait()
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = "\n".join(line for _, line in stamped)
    if code != 0:
        raise SystemExit(f"the demo failed ({code}) on this profile:\n{output[-3000:]}")
    headers = [(at, line) for at, line in stamped if line.startswith("-- ")]
    transform = next(at for at, line in headers if line.startswith("-- transform"))
    return DemoFigures(
        seconds=seconds,
        raw_seconds=transform - headers[0][0],
        transform_seconds=stamped[-1][0] - transform,
        cpu_seconds=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    )


def syncs(profile_env: dict[str, str], root: Path, rounds: int) -> list[Timed]:
    platform = start_platform(root, instance_env=profile_env)
    try:
        return [sync(platform, DEMO_CLIENT_ID, *WEEK) for _ in range(rounds)]
    finally:
        stop_platform(platform)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--readme", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()
    demos: dict[str, DemoFigures] = {}
    synced: dict[str, list[Timed]] = {}
    for profile in PROFILES:
        with tempfile.TemporaryDirectory() as tmp:
            with instance_profile(profile) as variables:
                demos[profile] = demo(variables, Path(tmp) / "demo")
            print(f"{profile} demo: {demos[profile]}", flush=True)
            with instance_profile(profile) as variables:
                synced[profile] = syncs(variables, Path(tmp) / "platform", args.rounds)
            for timed in synced[profile]:
                print(f"{profile} sync: {timed}", flush=True)
    load_after = os.getloadavg()
    failed = [
        f"{p}: {t.state}" for p, timed in synced.items() for t in timed if t.state != "succeeded"
    ]
    require(not failed, f"syncs that did not succeed: {failed}")
    median = statistics.median
    lines = [
        "## Instance profiles: the demo and a sync on SQLite and on PostgreSQL",
        "",
        f"`make bench-profiles` (`.venv/bin/python -m benchmarks.profiles_benchmark --rounds "
        f"{args.rounds} --readme`), {datetime.now(UTC):%Y-%m-%d}, {machine.machine()}, "
        f"{os.cpu_count()} cores; load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after ({busy([load_before[0], load_after[0]])}). Each profile in "
        "turn, in one run: `local` is SQLite under $DAGSTER_HOME (`make run`'s default), "
        "`production` a scratch database on this machine's PostgreSQL (the server shares the "
        "two cores). A sync is one client-week of the demo client, from POST to succeeded.",
        "",
        "| profile | demo s | demo raw stages s | demo transform s | demo CPU s "
        "| sync p50 s | syncs s | sync's build p50 s |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
        *(
            f"| {profile} | {demos[profile].seconds:.0f} | {demos[profile].raw_seconds:.0f} "
            f"| {demos[profile].transform_seconds:.0f} | {demos[profile].cpu_seconds:.0f} "
            f"| **{median([t.seconds for t in synced[profile]]):.0f}** "
            f"| {' / '.join(f'{t.seconds:.0f}' for t in synced[profile])} "
            f"| {median([t.build_seconds for t in synced[profile]]):.0f} |"
            for profile in PROFILES
        ),
        "",
        "Every sync's state: "
        + ", ".join(
            f"{profile} {'/'.join(t.state for t in synced[profile])}" for profile in PROFILES
        )
        + ".",
    ]
    text = "\n".join(lines)
    print(text)
    if args.readme:
        write_readme({"bench-profiles": text})


if __name__ == "__main__":
    main()
