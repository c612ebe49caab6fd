"""`make demo`'s wall time: the whole job, headless, sandbox to marts, at its default size.

Each round runs `integration-platform demo` (what `make demo` runs after `make install`) in a
fresh data folder and reads its output: the marts' rows, the facts linked to their customer and
entity resolution's figures against the sandbox's ground truth. The command fails (exit 1)
when a demo fails or when the rounds do not print the same marts and ER figures.

    .venv/bin/python -m benchmarks.demo_benchmark [--rounds 3] [--readme]   (make bench-demo)
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import REPO, busy, require, write_readme

SECTION = "demo"
TARGET_SECONDS = 90.0
DEMO_TIMEOUT = 900.0
MART_LINE = re.compile(
    r"^(?P<mart>(?:dim|fct|customer)_\w+)\s+(?P<rows>\d+)\s*(?P<linked>\d+%)?\s*$", re.M
)
ER_LINE = re.compile(
    r"precision (?P<precision>[\d.]+), recall (?P<recall>[\d.]+), F1 (?P<f1>[\d.]+) "
    r"\((?P<verdict>passed|FAILED)\)"
)
DONE_LINE = re.compile(r"^done in (?P<seconds>\d+) s\.", re.M)


@dataclass
class DemoRound:
    seconds: float  # the process, start to exit
    own_seconds: int  # the demo's own "done in"
    marts: dict[str, tuple[int, str]]  # mart: (rows, share of rows with a customer)
    er: dict[str, str]  # precision, recall, f1, verdict


def one_demo(folder: Path) -> DemoRound:
    env = {**os.environ, "INTEGRATION_PLATFORM_DATA_DIR": str(folder)}
    env.pop("DAGSTER_HOME", None)  # the demo's own, under its data folder
    started = time.monotonic()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "integration-platform"), "demo"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT,
        check=False,
    )
    seconds = time.monotonic() - started
    output = done.stdout
    require(done.returncode == 0, f"the demo failed ({done.returncode}):\n{output[-3000:]}")
    own, er = DONE_LINE.search(output), ER_LINE.search(output)
    require(own is not None and er is not None, f"the demo printed no summary:\n{output[-3000:]}")
    assert own is not None and er is not None
    marts = {m["mart"]: (int(m["rows"]), m["linked"] or "") for m in MART_LINE.finditer(output)}
    return DemoRound(seconds, int(own["seconds"]), marts, er.groupdict())


def section(rounds: list[DemoRound], load: tuple[float, float], command: str) -> str:
    first = rounds[0]
    facts = [rows for rows, linked in first.marts.values() if linked]
    all_linked = all(linked == "100%" for _, linked in first.marts.values() if linked)
    walls = [r.seconds for r in rounds]
    median = statistics.median(walls)
    met = median < TARGET_SECONDS
    rows = "\n".join(
        f"| {i} | {r.seconds:.1f} | {r.own_seconds} s | "
        + (f"{r.marts['dim_customers'][0]:,} customers, {sum(facts):,} facts" if i == 1 else "same")
        + f" | {'100%' if all_linked else 'not all'} | {r.er['f1']} |"
        for i, r in enumerate(rounds, start=1)
    )
    return f"""## `make demo`: the whole job, wall time

Command: `{command}` (`make bench-demo`); each round is `integration-platform demo` (what
`make demo` runs after `make install`, which also parses the dbt project once) in a fresh data
folder: the sandbox in process, a week (2025-06-01...07) of the four SaaS sources into raw,
their reference data, then dbt (seeds, staging, entity resolution, marts, data tests), at the
default size. {datetime.now(UTC):%Y-%m-%d %H:%M UTC}, {platform.machine()}, {os.cpu_count()}
cores, Python {platform.python_version()}; load average {load[0]:.1f} before, {load[1]:.1f}
after ({busy(load)}).

| run | wall s | the demo's own "done in" | marts | facts linked | ER F1 |
|---:|---:|---:|---|---:|---:|
{rows}

**Target: under {TARGET_SECONDS:.0f} s at the default size:** median {median:.1f} s
({min(walls):.0f}-{max(walls):.0f} s), {"**met**" if met else "**not met**"}. Entity resolution
against the sandbox's ground truth: precision {first.er["precision"]}, recall
{first.er["recall"]}, F1 {first.er["f1"]} ({first.er["verdict"]}), the same in every round."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--readme", action="store_true", help="rewrite its README section")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rounds = []
    for number in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="demo-bench-") as tmp:
            rounds.append(one_demo(Path(tmp)))
        print(f"round {number + 1}: {rounds[-1]}", file=sys.stderr, flush=True)
    load = (load_before, os.getloadavg()[0])
    # Seeded: every round builds the same marts and resolves the same customers.
    require(
        all(r.marts == rounds[0].marts and r.er == rounds[0].er for r in rounds),
        "the rounds printed different marts or ER figures: "
        + "; ".join(f"{r.marts} {r.er}" for r in rounds),
    )
    require(
        rounds[0].er["verdict"] == "passed", f"entity resolution's check failed: {rounds[0].er}"
    )
    command = f".venv/bin/python -m benchmarks.demo_benchmark --rounds {args.rounds} --readme"
    text = section(rounds, load, command)
    print(text)
    if args.readme:
        write_readme({SECTION: text})
    return 0


if __name__ == "__main__":
    sys.exit(main())
