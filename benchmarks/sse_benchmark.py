"""SSE benchmark: the analytics usage stream consumed into raw, in events/s, with peak RSS.

The sandbox runs in its own process at `--stream-rate 0` (as fast as it can send). Each
measured run is a fresh `integration-platform streams consume --max-events N` process on a
fresh data dir: the real consumer (httpx-sse reader, bounded buffer, micro-batches landed and
loaded with `load_attempt(mode="merge")` and the checkpoint in the same transaction), with
`sources/analytics.yaml` copied (its stream's own `batch_size` / `buffer_events` unless
given). The rate is the consumer's own figure, from its first event to its last commit
(start-up excluded; the wall time with start-up is reported beside it); peak RSS is the
child's `ru_maxrss`. Every run is checked: raw holds exactly N rows,
consecutive event ids, once each.

Run `.venv/bin/python -m benchmarks.sse_benchmark` (or `make bench-sse`); it prints a summary and
rewrites its section at the end of benchmarks/README.md (`--no-readme` to skip).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import psutil
import yaml

from benchmarks import common
from benchmarks.common import README, SandboxProcess, busy
from benchmarks.extract_benchmark import machine
from integration_platform.environment import PROJECT_ROOT, load_sandbox_env

BIN = Path(sys.executable).parent
SECTION = "sse-benchmark"
TARGET = 20_000  # events/s
# Peak RSS is mostly imports (~145 MB) plus DuckDB's working memory for one batch, which comes
# and goes (sampled: 205-380 MB over 600k events, no trend); 4x the events must not mean much more.
RSS_RATIO = 1.5
EVENTS = 200_000
_SHIPPED = yaml.safe_load((PROJECT_ROOT / "sources" / "analytics.yaml").read_text())
BATCH_SIZE = int(_SHIPPED["streams"]["usage"]["batch_size"])
BUFFER_EVENTS = int(_SHIPPED["streams"]["usage"]["buffer_events"])
# The extra run: StreamSpec's defaults, for a stream that does not set its own.
SMALL_BATCH_SIZE, SMALL_BUFFER_EVENTS = 1000, 10_000
COMMAND = "make bench-sse  # or: .venv/bin/python -m benchmarks.sse_benchmark"


def log(message: str) -> None:
    print(f"[sse-benchmark] {message}", file=sys.stderr, flush=True)


def spec_copy(folder: Path, batch_size: int, buffer_events: int) -> Path:
    spec = yaml.safe_load((PROJECT_ROOT / "sources" / "analytics.yaml").read_text())
    spec["streams"]["usage"].update(batch_size=batch_size, buffer_events=buffer_events)
    path = folder / "analytics.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def one_run(
    url: str, events: int, batch_size: int, buffer_events: int, sandbox: psutil.Process
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sse-bench-") as tmp:
        folder = Path(tmp)
        env = {
            **os.environ,
            "SOURCES_PATH": str(spec_copy(folder, batch_size, buffer_events)),
            "ANALYTICS_BASE_URL": url,
            "INTEGRATION_PLATFORM_DATA_DIR": str(folder / "data"),
            "LOG_LEVEL": "WARNING",
        }
        env.pop("WAREHOUSE_PATH", None)
        sandbox_cpu = sum(sandbox.cpu_times()[:2])
        started = time.monotonic()
        process = subprocess.Popen(
            [
                str(BIN / "integration-platform"),
                "streams",
                "consume",
                "--source",
                "analytics",
                "--stream",
                "usage",
                "--max-events",
                str(events),
                "--publish-every",
                "3600",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out = process.stdout.read() if process.stdout else b""
        err = process.stderr.read() if process.stderr else b""
        if process.returncode != 0:
            raise RuntimeError(f"the consumer failed: {err.decode()[-3000:]}")
        summary = json.loads(out)[0]
        with duckdb.connect(str(folder / "data" / "warehouse.duckdb"), read_only=True) as db:
            rows, distinct, low, high = db.execute(
                "SELECT count(*), count(DISTINCT _primary_key), min((record->>'event_id')::BIGINT),"
                " max((record->>'event_id')::BIGINT) FROM raw.\"analytics__events\""
            ).fetchall()[0]
    exact = rows == distinct == events and high - low + 1 == events
    return {
        "events": summary["events"],
        "events_per_second": summary["events_per_second"],
        "seconds": summary["seconds"],
        "wall_seconds": round(wall, 2),
        "batches": summary["batches"],
        "max_buffered": summary["max_buffered"],
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "sandbox_cpu_seconds": round(sum(sandbox.cpu_times()[:2]) - sandbox_cpu, 2),
        "rows": rows,
        "exact": exact,
        "batch_size": batch_size,
        "buffer_events": buffer_events,
    }


def measure(
    events: int, repeats: int, batch_size: int, buffer_events: int, default_batch_events: int
) -> dict[str, Any]:
    load_sandbox_env()
    # The analytics vendor streams as fast as it can (`--stream-rate 0`).
    with SandboxProcess(
        ["--customers", "1000", "--stream-rate", "0"], vendor="analytics"
    ) as sandbox:
        url = sandbox.url
        process = psutil.Process(sandbox.pid)
        load_before = os.getloadavg()
        runs = []
        for number in range(repeats):
            log(f"run {number + 1}/{repeats}: {events:,} events, batch_size {batch_size:,}")
            runs.append(one_run(url, events, batch_size, buffer_events, process))
            log(
                f"  {runs[-1]['events_per_second']:,.0f} events/s, "
                f"peak RSS {runs[-1]['peak_rss_mb']:.0f} MB, exact: {runs[-1]['exact']}"
            )
        log(f"memory check: {events // 4:,} events with the same settings")
        small = one_run(url, events // 4, batch_size, buffer_events, process)
        default = None
        if default_batch_events:
            log(
                f"StreamSpec's default batch_size ({SMALL_BATCH_SIZE:,}): "
                f"{default_batch_events:,} events"
            )
            default = one_run(
                url, default_batch_events, SMALL_BATCH_SIZE, SMALL_BUFFER_EVENTS, process
            )
        return {
            "runs": runs,
            "small": small,
            "default_batch": default,
            "load": [load_before[0], os.getloadavg()[0]],
            "machine": machine(),
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }


def report(result: dict[str, Any]) -> str:
    runs = result["runs"]
    rate = statistics.median(run["events_per_second"] for run in runs)
    rss = max(run["peak_rss_mb"] for run in runs)
    per_cpu = statistics.median(run["events"] / run["cpu_seconds"] for run in runs)
    first, small = runs[0], result["small"]
    exact = all(run["exact"] for run in [*runs, small])
    rows = "\n".join(
        f"| {i} | {r['events']:,} | {r['events_per_second']:,.0f} | {r['seconds']:.1f} | "
        f"{r['wall_seconds']:.1f} | {r['batches']} | {r['peak_rss_mb']:.0f} | "
        f"{r['cpu_seconds']:.1f} | {r['sandbox_cpu_seconds']:.1f} | "
        f"{'yes' if r['exact'] else 'NO'} |"
        for i, r in enumerate(runs, start=1)
    )
    default = result["default_batch"]
    default_line = (
        ""
        if default is None
        else (
            f"\nWith StreamSpec's defaults (`batch_size: {SMALL_BATCH_SIZE}`, `buffer_events: "
            f"{SMALL_BUFFER_EVENTS}`, for a stream that sets neither), "
            f"{default['events']:,} events: {default['events_per_second']:,.0f} events/s, peak RSS "
            f"{default['peak_rss_mb']:.0f} MB. A batch is one landing attempt, one transaction and "
            "one attach of the warehouse, so a stream whose rate is in the tens of thousands a "
            "second wants a larger `batch_size` (the shipped usage stream sets 10,000); "
            "`batch_seconds` still bounds the latency of a quiet stream.\n"
        )
    )
    return f"""## SSE consumption into raw (`benchmarks/sse_benchmark.py`)

The sandbox streams usage events as fast as it can (`--stream-rate 0`, its own process);
`integration-platform streams consume --max-events {first["events"]:,}` (its own process, fresh
data dir) reads them with httpx-sse into a bounded buffer and writes micro-batches through the
landing zone and `load_attempt(mode="merge")` into `raw.analytics__events`, the checkpoint in
each load's transaction. Stream settings: `batch_size: {first["batch_size"]:,}`,
`buffer_events: {first["buffer_events"]:,}`. Events/s is the consumer's own figure, first event
to last commit; wall time includes process start-up. Peak RSS is the consumer's `ru_maxrss`.

**Command:** `{COMMAND}`; {result["when"]}.

**Machine:** {result["machine"]}. Load average {result["load"][0]:.1f} at the start,
{result["load"][1]:.1f} at the end ({busy(result["load"])}).

| run | events | events/s | s (first event → last commit) | wall s | batches | peak RSS MB | \
consumer CPU s | sandbox CPU s | rows exact |
|---|---|---|---|---|---|---|---|---|---|
{rows}

| figure | value | target | |
|---|---|---|---|
| events/s (median) | {rate:,.0f} | >= {TARGET:,} | {"yes" if rate >= TARGET else "no"} |
| events per consumer CPU-second (start-up included; all threads) | {per_cpu:,.0f} | | |
| peak RSS (max) at {first["events"]:,} events | {rss:.0f} MB | | |
| peak RSS at {small["events"]:,} events | {small["peak_rss_mb"]:.0f} MB | | |
| RSS at {first["events"]:,} / RSS at {small["events"]:,} | {rss / small["peak_rss_mb"]:.2f}x | \
<= 1.5x: does not grow with the events (bounded buffer) | \
{"yes" if rss / small["peak_rss_mb"] <= RSS_RATIO else "no"} |
| raw rows = events sent, consecutive ids, once each | {"all runs" if exact else "NO"} | \
all runs | {"yes" if exact else "no"} |
{default_line}"""


def write_readme(section: str) -> None:
    common.write_readme({SECTION: section})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sse_benchmark", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--buffer-events", type=int, default=BUFFER_EVENTS)
    parser.add_argument(
        "--default-batch-events",
        type=int,
        default=50_000,
        help="events for the extra run at the spec's batch_size (0: skip)",
    )
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args(argv)
    result = measure(
        args.events, args.repeats, args.batch_size, args.buffer_events, args.default_batch_events
    )
    section = report(result)
    print(section)
    runs = [*result["runs"], result["small"]]
    if result["default_batch"] is not None:
        runs.append(result["default_batch"])
    common.require(
        all(run["exact"] for run in runs),
        "raw rows are not the events sent, once each: "
        + ", ".join(f"{run['events']:,} events: exact={run['exact']}" for run in runs),
    )
    if not args.no_readme:
        write_readme(section)
        log(f"wrote its section of {README.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
