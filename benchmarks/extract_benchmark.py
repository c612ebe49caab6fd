"""Extraction benchmarks against a sandbox running in its own process.

A. Throughput and memory: 1,000,000 billing invoices through the engine (EndpointExtractor
   over SourceClient) and, in the same run, through a bare loop over the same transport
   fetching the same pages (the ceiling); peak RSS of the engine at ~100k and ~1M records.
B. Shared rate limit: four processes extract the same endpoint at once through one limiter
   state directory against the sandbox's per-key quota; achieved request rate and 429s.

Run `.venv/bin/python -m benchmarks.extract_benchmark` (or `make bench-extract`); it prints a
summary and rewrites its sections of benchmarks/README.md. Every measured run is a fresh child
process of this module (the `engine`, `bare` and `paced` sub-commands), so peak RSS figures do
not contaminate each other.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx
import yaml
from dotenv import dotenv_values

from benchmarks import common
from benchmarks.common import README, REPO, SandboxProcess, bare_pages

if TYPE_CHECKING:
    from integration_platform.specs.models import SourceSpec

BILLING_SPEC = REPO / "sources" / "billing.yaml"
SANDBOX_ENV = REPO / "config" / "sandbox.env"
ENDPOINT = "invoices"
INVOICES_PATH = "/v1/invoices"
COMMAND = ".venv/bin/python -m benchmarks.extract_benchmark"

# Seed 42: 405,197 true customers give exactly 250,000 billing customers (61.7%, duplicates
# included), hence 1,000,000 invoices (4 per billing customer); /_sandbox/stats confirms it.
MILLION_CUSTOMERS = 405_197
SMALL_PAGES = 200  # x 500 = the ~100k-record run
THROUGHPUT_PAGE_SIZE = 500  # the sandbox's largest `limit`
THROUGHPUT_CONCURRENCY = 4
UNLIMITED_QUOTA = 1_000_000  # requests/s: the sandbox's quota never binds in part A

PACED_CUSTOMERS = 100_000  # ~247k invoices: more than four processes can fetch in the window
PACED_RATE = 50
PACED_PROCESSES = 4
PACED_SECONDS = 25.0
# Each process fetches its first page alone (to learn the total) before it fetches concurrently;
# the steady-state rate leaves out these first seconds.
RAMP_SECONDS = 2.0
# The shipped page size first; then small pages, which cost the sandbox a tenth of the CPU, so
# that its own speed on a busy machine cannot be what limits the rate.
PACED_PAGE_SIZES = (200, 20)

ENGINE_TARGET = 0.8  # engine records/s >= 0.8 x the bare loop's
RSS_TARGET = 1.25  # peak RSS at 1M <= 1.25 x peak RSS at 100k
RATE_TARGET = 0.95  # aggregate requests/s >= 95% of the sandbox's quota, with zero 429s


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def environment() -> dict[str, str]:
    """The sandbox's demo credentials, overridden by the real environment (as the CLI does)."""
    values = {k: v for k, v in dotenv_values(SANDBOX_ENV).items() if v is not None}
    return {**values, **os.environ}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def cpu_seconds() -> float:
    """User + system CPU of this process: unlike wall time, barely moved by other load."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class TimedTransport(httpx.AsyncBaseTransport):
    """Records how long each request takes on the wire (after any rate-limit wait)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.seconds: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        response = await self.inner.handle_async_request(request)
        await response.aread()
        self.seconds.append(time.perf_counter() - started)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

    def percentile_ms(self, share: float) -> float:
        ordered = sorted(self.seconds) or [0.0]
        return round(1000 * ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)


def quiet_production_logs() -> None:
    """The engine logs one JSON line per request: render them as in production, to /dev/null
    (stdout carries this child's result, and four processes' logs would drown the summary)."""
    from integration_platform.logs import configure_logging

    configure_logging(stream=open(os.devnull, "w"))  # noqa: SIM115 (lives as long as the process)


def billing_spec(
    url: str,
    *,
    requests_per_second: float | None,
    page_size: int | None = None,
    concurrency: int | None = None,
    max_pages: int | None = None,
) -> SourceSpec:
    """sources/billing.yaml, edited in memory. `requests_per_second=None` drops the client's
    rate limit; otherwise it replaces the shipped rate (the shipped burst stays)."""
    from integration_platform.specs.models import SourceSpec

    raw = yaml.safe_load(BILLING_SPEC.read_text())
    if requests_per_second is None:
        raw.pop("rate_limit", None)
    else:
        raw["rate_limit"]["requests_per_second"] = requests_per_second
    if concurrency is not None:
        raw["concurrency"] = concurrency
    endpoint = raw["endpoints"][ENDPOINT]
    if page_size is not None:
        endpoint["pagination"]["page_size"] = page_size
    if max_pages is not None:
        endpoint["max_pages"] = max_pages
    env = {**environment(), "BILLING_BASE_URL": url}
    return SourceSpec.model_validate(raw, context={"env": env})


# --- the sandbox, in its own process -------------------------------------------------------------


def start_sandbox(customers: int, billing_rate_limit: int) -> SandboxProcess:
    log(f"starting the sandbox: --customers {customers} --billing-rate-limit {billing_rate_limit}")
    return SandboxProcess(
        ["--customers", str(customers), "--billing-rate-limit", str(billing_rate_limit)],
        headers={"X-API-Key": environment()["BILLING_API_KEY"]},
    )


def warm_up(sandbox: SandboxProcess) -> dict[str, float]:
    """The first page request and the first stats call build lazy indexes and the revenue
    totals (seconds at a million invoices): do them before anything is timed."""
    timings = {}
    started = time.monotonic()
    sandbox.get(INVOICES_PATH, offset=0, limit=1).raise_for_status()
    timings["first_page_seconds"] = round(time.monotonic() - started, 2)
    started = time.monotonic()
    sandbox.stats()
    timings["first_stats_seconds"] = round(time.monotonic() - started, 2)
    log(f"sandbox warmed up: {timings}")
    return timings


# --- child runs: one fresh process each ----------------------------------------------------------


def run_child(mode: str, *args: str, timeout: float = 600) -> dict[str, Any]:
    """Run `python -m benchmarks.extract_benchmark <mode> ...`; its last stdout line is JSON."""
    command = [sys.executable, "-m", "benchmarks.extract_benchmark", mode, *args]
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{mode} run failed ({done.returncode}): {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def engine_run(
    url: str, page_size: int, concurrency: int, max_pages: int | None
) -> dict[str, Any]:
    """The engine as an asset uses it, records counted page by page and dropped."""
    from integration_platform.extraction.runner import EndpointExtractor
    from integration_platform.http.client import SourceClient

    quiet_production_logs()
    spec = billing_spec(
        url,
        requests_per_second=None,
        page_size=page_size,
        concurrency=concurrency,
        max_pages=max_pages,
    )
    records = pages = 0
    async with SourceClient(spec) as client:
        extractor = EndpointExtractor(spec, ENDPOINT, client)
        started, cpu_started = time.perf_counter(), cpu_seconds()
        async for page in extractor.pages():
            records += len(page.records)
            pages += 1
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    summary = extractor.summary
    return {
        "side": "engine",
        "records": records,
        "pages": pages,
        "seconds": seconds,
        "bytes": summary.bytes,
        "requests": summary.requests,
        "retries": summary.retries,
        "cpu_seconds": cpu,
        "peak_rss_mb": peak_rss_mb(),
    }


async def bare_run(url: str, page_size: int, concurrency: int) -> dict[str, Any]:
    """The ceiling (common.bare_pages): a plain httpx client over the engine's transport, the
    engine's offset/limit pages, `concurrency` in flight."""
    api_key = environment()["BILLING_API_KEY"]
    got = await bare_pages(url, {"X-API-Key": api_key}, INVOICES_PATH, page_size, concurrency)
    return {
        "side": "bare",
        **got,
        "requests": got["pages"],
        "retries": 0,
        "peak_rss_mb": peak_rss_mb(),
    }


async def paced_run(
    url: str, rate: float, page_size: int, state_dir: Path, seconds: float
) -> dict[str, Any]:
    """The shipped billing spec at `rate` requests/s, one shared limiter state directory:
    extract the whole endpoint for `seconds` from the start time the parent sends, then stop.

    Handshake: print `ready` once the engine is imported and built, then read the epoch second
    to start at from stdin, so all processes start together however slow their imports."""
    from integration_platform.extraction.runner import EndpointExtractor, ExtractedPage
    from integration_platform.http.client import SourceClient

    quiet_production_logs()
    spec = billing_spec(url, requests_per_second=rate, page_size=page_size)
    records = 0
    connections = spec.concurrency * 2  # as SourceClient sizes its own pool
    wire = TimedTransport(
        httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        )
    )
    async with SourceClient(spec, state_dir=state_dir, transport=wire) as client:
        extractor = EndpointExtractor(spec, ENDPOINT, client)
        print("ready", flush=True)
        start_at = float(await asyncio.to_thread(sys.stdin.readline))
        late = time.time() - start_at
        await asyncio.sleep(max(0.0, -late))
        # pages() is an async generator: close it at once so its in-flight requests stop.
        stream = cast("AsyncGenerator[ExtractedPage, None]", extractor.pages())
        async with contextlib.aclosing(stream):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    async for page in stream:
                        records += len(page.records)
            stats = client.stats.as_dict()  # before cancelled requests could be counted
    limiter = client.limiter
    return {
        "requests": stats["requests"],
        "throttled": stats["throttled"],
        "retries": stats["retries"],
        "records": records,
        "rate_limit_wait_seconds": round(float(stats["rate_limit_wait_seconds"]), 2),
        "blocks": limiter.blocks if limiter else 0,
        "late_seconds": round(max(0.0, late), 3),
        "latency_p50_ms": wire.percentile_ms(0.5),
        "latency_p95_ms": wire.percentile_ms(0.95),
        "burst": spec.rate_limit.burst if spec.rate_limit else None,
        "concurrency": spec.concurrency,
    }


# --- part A: throughput and memory ---------------------------------------------------------------


@dataclass
class ThroughputResult:
    customers: int
    invoices: int
    page_size: int
    concurrency: int
    warm_up: dict[str, float]
    runs: list[dict[str, Any]] = field(default_factory=list)
    small_runs: list[dict[str, Any]] = field(default_factory=list)
    sandbox_requests: int = 0
    sandbox_rate_limited: int = 0

    def side(self, name: str) -> list[dict[str, Any]]:
        return [run for run in self.runs if run["side"] == name]

    def median_rate(self, name: str) -> float:
        return statistics.median(float(run["records"] / run["seconds"]) for run in self.side(name))

    def median_rss(self, runs: list[dict[str, Any]]) -> float:
        return statistics.median(float(run["peak_rss_mb"]) for run in runs)

    @property
    def identical_pages(self) -> bool:
        signatures = {(run["records"], run["pages"], run["bytes"]) for run in self.runs}
        return len(signatures) == 1

    @property
    def engine_ratio(self) -> float:
        return self.median_rate("engine") / self.median_rate("bare")

    @property
    def rss_ratio(self) -> float:
        return self.median_rss(self.side("engine")) / self.median_rss(self.small_runs)


def measured_run(sandbox: SandboxProcess, side: str, *args: str) -> dict[str, Any]:
    """One child run, with the machine's load and the sandbox's CPU time around it."""
    load, cpu = os.getloadavg()[0], sandbox.cpu_seconds()
    run = run_child(side, *args)
    return {
        **run,
        "load_before": round(load, 2),
        "sandbox_cpu_seconds": round(sandbox.cpu_seconds() - cpu, 2),
    }


def measure_throughput(
    repeats: int, concurrency: int, customers: int = MILLION_CUSTOMERS
) -> ThroughputResult:
    with start_sandbox(customers, UNLIMITED_QUOTA) as sandbox:
        warm_up_times = warm_up(sandbox)
        before = sandbox.stats()
        result = ThroughputResult(
            customers=customers,
            invoices=before["counts"]["invoices"],
            page_size=THROUGHPUT_PAGE_SIZE,
            concurrency=concurrency,
            warm_up=warm_up_times,
        )
        log(f"sandbox holds {result.invoices:,} invoices")
        common = [
            "--url",
            sandbox.url,
            "--page-size",
            str(THROUGHPUT_PAGE_SIZE),
            "--concurrency",
            str(concurrency),
        ]
        # Alternate which side goes first, so drift (caches, other load) hits both alike.
        for round_number in range(repeats):
            order = ("engine", "bare") if round_number % 2 == 0 else ("bare", "engine")
            for side in order:
                run = measured_run(sandbox, side, *common)
                result.runs.append(run)
                log(f"{side:<6} 1M   round {round_number + 1}: {describe_run(run)}")
        for round_number in range(repeats):
            run = measured_run(sandbox, "engine", *common, "--max-pages", str(SMALL_PAGES))
            result.small_runs.append(run)
            log(f"engine 100k round {round_number + 1}: {describe_run(run)}")
        after = sandbox.stats()
        result.sandbox_requests = after["requests"][ENDPOINT] - before["requests"][ENDPOINT]
        result.sandbox_rate_limited = after["rate_limited"] - before["rate_limited"]
    return result


def describe_run(run: dict[str, Any]) -> str:
    return (
        f"{run['records']:,} records in {run['seconds']:.1f} s = "
        f"{run['records'] / run['seconds']:,.0f} rec/s, client CPU "
        f"{run['cpu_seconds']:.1f} s, sandbox CPU {run['sandbox_cpu_seconds']:.1f} s, "
        f"peak RSS {run['peak_rss_mb']:.0f} MB, load {run['load_before']}"
    )


# --- part B: one rate limit, four processes ------------------------------------------------------


@dataclass
class PacedResult:
    rate: int
    page_size: int
    processes: int
    seconds: float
    invoices: int
    children: list[dict[str, Any]]
    sandbox_requests: int
    steady_requests: int  # served after the first RAMP_SECONDS
    sandbox_rate_limited: int
    sandbox_cpu_share: float  # CPU seconds the sandbox used per second of the window
    load: float  # 1-minute load average at the start

    @property
    def client_requests(self) -> int:
        return sum(child["requests"] for child in self.children)

    @property
    def client_throttled(self) -> int:
        return sum(child["throttled"] for child in self.children)

    @property
    def sandbox_rate(self) -> float:
        return self.sandbox_requests / self.seconds

    @property
    def steady_rate(self) -> float:
        return self.steady_requests / (self.seconds - RAMP_SECONDS)

    @property
    def client_rate(self) -> float:
        return self.client_requests / self.seconds

    @property
    def rate_met(self) -> bool:
        return self.sandbox_rate >= RATE_TARGET * self.rate

    @property
    def no_429s(self) -> bool:
        return self.sandbox_rate_limited == 0 and self.client_throttled == 0

    def latency_ms(self, key: str) -> float:
        return float(statistics.median(child[key] for child in self.children))


def measure_paced(
    rate: int, processes: int, seconds: float, page_sizes: tuple[int, ...]
) -> list[PacedResult]:
    results = []
    with start_sandbox(PACED_CUSTOMERS, rate) as sandbox:
        warm_up(sandbox)
        invoices = sandbox.stats()["counts"]["invoices"]
        for page_size in page_sizes:
            time.sleep(1.0)  # a fresh quota window: the warm-up and earlier runs spent some
            log(
                f"{processes} processes extract {ENDPOINT} ({page_size} per page) at once for "
                f"{seconds:.0f} s against a quota of {rate} requests/s"
            )
            result = paced_round(sandbox, rate, page_size, processes, seconds, invoices)
            results.append(result)
            log(
                f"  {result.sandbox_rate:.1f} requests/s, {result.sandbox_rate_limited} 429s, "
                f"latency p50 {result.latency_ms('latency_p50_ms'):.0f} ms"
            )
    return results


def paced_round(
    sandbox: SandboxProcess,
    rate: int,
    page_size: int,
    processes: int,
    seconds: float,
    invoices: int,
) -> PacedResult:
    state_dir = Path(tempfile.mkdtemp(prefix="bench-ratelimit-"))
    command = [
        sys.executable,
        "-m",
        "benchmarks.extract_benchmark",
        "paced",
        "--url",
        sandbox.url,
        "--rate",
        str(rate),
        "--page-size",
        str(page_size),
        "--state-dir",
        str(state_dir),
        "--seconds",
        repr(seconds),
    ]
    children: list[subprocess.Popen[str]] = []
    try:
        children = [
            subprocess.Popen(
                command, cwd=REPO, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            for _ in range(processes)
        ]
        for child in children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError("a paced process failed to start: see its error above")
        start_at = time.time() + 0.5
        for child in children:
            assert child.stdin is not None
            child.stdin.write(f"{start_at!r}\n")
            child.stdin.close()
        time.sleep(max(0.0, start_at - time.time()))
        load = os.getloadavg()[0]
        before, cpu_before = sandbox.stats(), sandbox.cpu_seconds()
        time.sleep(max(0.0, start_at + RAMP_SECONDS - time.time()))
        ramped = sandbox.stats()
        time.sleep(max(0.0, start_at + seconds - time.time()))
        after, cpu_after = sandbox.stats(), sandbox.cpu_seconds()
        reports = []
        for child in children:
            assert child.stdout is not None
            out = child.stdout.read()
            if child.wait(timeout=120) != 0:
                raise RuntimeError(f"a paced process failed ({child.returncode})")
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        shutil.rmtree(state_dir, ignore_errors=True)
    return PacedResult(
        rate=rate,
        page_size=page_size,
        processes=processes,
        seconds=seconds,
        invoices=invoices,
        children=reports,
        sandbox_requests=after["requests"][ENDPOINT] - before["requests"][ENDPOINT],
        steady_requests=after["requests"][ENDPOINT] - ramped["requests"][ENDPOINT],
        sandbox_rate_limited=after["rate_limited"] - before["rate_limited"],
        sandbox_cpu_share=(cpu_after - cpu_before) / seconds,
        load=round(load, 2),
    )


# --- reporting -----------------------------------------------------------------------------------

# What building these benchmarks found, kept with the figures they explain.
# Fixed text carries no figure: every figure in the README comes from a measurement of this run
# (the before/after measurements behind past changes are in their commit messages).
THROUGHPUT_FINDINGS = """\
Because the sandbox builds every record on request, it, not the client, is the bottleneck of
this part: records/s moves less than the client's CPU does, and the client CPU column shows the
engine's own cost. `make bench-raw` serves pre-rendered pages instead, so that the client sets
the pace there.
"""

PACED_FINDINGS = """\
**How the limiter avoids 429s.** A limiter that stops a source only once a response says at
most `low_water_mark` requests are left overspends: the requests already in flight by then
(about `requests_per_second` x latency of them) spend more than that, and each 429's
`Retry-After` then holds the whole source back, wasting most of the next window.
`SharedRateLimiter` (`integration_platform/http/ratelimit.py`) numbers the requests it releases
(a counter in the shared state, so across processes) and reads a response's `remaining` minus
the requests the source sent after that one.

**When the rate falls short**, look at "sandbox CPU": with a fraction of a core on a busy
machine, the sandbox's latency at page size 200 climbs and it cannot serve the quota; pages of
20 cost it a tenth of the CPU. At best the limiter gives the quota less `low_water_mark` per
window, and the whole window also pays for each process's first page, fetched alone.
"""


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kilobytes = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kilobytes / 1024**2:.0f} GB RAM"
    return (
        f"{os.cpu_count()} cores ({model}){memory}, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def yes_no(met: bool) -> str:
    return "**met**" if met else "**not met**"


def throughput_section(result: ThroughputResult, when: str) -> str:
    engine, bare = result.median_rate("engine"), result.median_rate("bare")
    rss_1m = result.median_rss(result.side("engine"))
    rss_100k = result.median_rss(result.small_runs)
    small = result.small_runs[0]["records"]
    rows = "\n".join(
        f"| {i + 1} | {run['side']} | {run['records']:,} | {run['pages']:,} | "
        f"{run['bytes'] / 1e6:,.1f} | {run['seconds']:.1f} | "
        f"{run['records'] / run['seconds']:,.0f} | {run['cpu_seconds']:.1f} | "
        f"{run['sandbox_cpu_seconds']:.1f} | {run['peak_rss_mb']:.0f} | {run['load_before']} |"
        for i, run in enumerate(result.runs + result.small_runs)
    )
    cpu_engine = statistics.median(run["cpu_seconds"] for run in result.side("engine"))
    cpu_bare = statistics.median(run["cpu_seconds"] for run in result.side("bare"))
    return f"""\
## Extraction: {result.invoices:,} billing invoices, engine vs a bare loop, and memory

**What is measured.** The sandbox (`integration-platform sandbox up --customers
{result.customers} --billing-rate-limit {UNLIMITED_QUOTA}`, its own process) holds
**{result.invoices:,} invoices** (from `/_sandbox/stats`). Each run is a fresh child process
that extracts all of `/v1/invoices`:

- **engine**: `EndpointExtractor` over `SourceClient`, the spec being `sources/billing.yaml`
  edited in memory (no client rate limit, `page_size: {result.page_size}`, `concurrency:
  {result.concurrency}`); each page's records are counted, then dropped.
- **bare**: the ceiling, a plain `httpx.AsyncClient` loop over the engine's transport
  (`build_transport`: aiohttp) fetching the same `offset`/`limit` pages ({result.concurrency}
  in flight, the first page alone to learn the total, like the engine), bodies discarded
  unparsed.

Both sides fetched {"identical" if result.identical_pages else "**different**"} pages (same
record, page and byte counts). The sandbox was warmed up first (first page
{result.warm_up["first_page_seconds"]} s, first stats call
{result.warm_up["first_stats_seconds"]} s: excluded). Sides alternate order between rounds;
figures are medians. Peak RSS is `ru_maxrss` of the child process; the {small:,}-record runs
stop after {SMALL_PAGES} pages through the endpoint's `max_pages`. Client and sandbox CPU are
user + system seconds spent during the timed extraction (imports excluded), which other load on
the machine barely moves, unlike wall time. The
sandbox served {result.sandbox_requests:,} invoice pages and refused
{result.sandbox_rate_limited}.

**Command:** `{COMMAND}` (or `make bench-extract`); {when}.

**Machine:** {machine()}. The sandbox builds every record on request in Python and is the
bottleneck: it needs about {_sandbox_us_per_record(result):.0f} us of CPU per invoice, one core,
while the extracting process uses the other; it runs in its own session, so that on a busy
machine the client's CPU does not come out of its fair share. "load" is the 1-minute load average
when the run started; the benchmark itself accounts for up to 2 of it.

| run | side | records | pages | MB | seconds | records/s | client CPU s | sandbox CPU s | \
peak RSS MB | load |
|---|---|---|---|---|---|---|---|---|---|---|
{rows}

| figure | value | target | |
|---|---|---|---|
| engine records/s (median) | {engine:,.0f} | | |
| bare loop records/s (median) | {bare:,.0f} | | |
| engine / bare | {result.engine_ratio:.2f}x | >= {ENGINE_TARGET}x | \
{yes_no(result.engine_ratio >= ENGINE_TARGET)} |
| client CPU s per {result.invoices:,}-record run, engine / bare | {cpu_engine:.1f} / \
{cpu_bare:.1f} | | |
| engine peak RSS at {small:,} records | {rss_100k:.0f} MB | | |
| engine peak RSS at {result.invoices:,} records | {rss_1m:.0f} MB | | |
| RSS at 1M / RSS at 100k | {result.rss_ratio:.2f}x | <= {RSS_TARGET}x | \
{yes_no(result.rss_ratio <= RSS_TARGET)} |

{THROUGHPUT_FINDINGS}"""


def _sandbox_us_per_record(result: ThroughputResult) -> float:
    runs = result.runs
    seconds = sum(float(run["sandbox_cpu_seconds"]) for run in runs)
    return 1e6 * seconds / sum(int(run["records"]) for run in runs)


def paced_section(results: list[PacedResult], when: str) -> str:
    first = results[0]
    child = first.children[0]
    processes = "\n".join(
        f"| {result.page_size} | {i + 1} | {report['requests']} | {report['records']:,} | "
        f"{report['throttled']} | {report['rate_limit_wait_seconds']:.1f} | {report['blocks']} | "
        f"{report['latency_p50_ms']:.0f} / {report['latency_p95_ms']:.0f} |"
        for result in results
        for i, report in enumerate(result.children)
    )
    figures = "\n".join(
        f"| {result.page_size}{' (shipped)' if result.page_size == PACED_PAGE_SIZES[0] else ''} "
        f"| {result.sandbox_requests:,} | {result.sandbox_rate:.1f} = "
        f"{result.sandbox_rate / result.rate:.1%} {yes_no(result.rate_met)} | "
        f"{result.steady_rate:.1f} = {result.steady_rate / result.rate:.1%} | "
        f"{result.client_rate:.1f} | {result.sandbox_rate_limited} / {result.client_throttled} "
        f"{yes_no(result.no_429s)} | {result.latency_ms('latency_p50_ms'):.0f} / "
        f"{result.latency_ms('latency_p95_ms'):.0f} | {result.sandbox_cpu_share:.0%} | "
        f"{result.load} |"
        for result in results
    )
    return f"""\
## Extraction: one rate limit shared by four processes

**What is measured.** The sandbox (`integration-platform sandbox up --customers
{PACED_CUSTOMERS} --billing-rate-limit {first.rate}`, its own process; {first.invoices:,}
invoices) allows {first.rate} requests per second per API key in fixed one-second windows and
answers 429 beyond. {first.processes} separate processes each run the full, unpartitioned
extraction of `billing.invoices` with the shipped spec (`concurrency: {child["concurrency"]}`,
`burst: {child["burst"]}`, retries) but `requests_per_second: {first.rate}`, all with one
`state_dir` (`SourceClient(spec, state_dir=...)`). They start together (each reports ready,
then gets the same start time) and stop after {first.seconds:.0f} s. Requests are counted by the
sandbox (`/_sandbox/stats` sampled at the start, after {RAMP_SECONDS:.0f} s and at the end) and
by the clients (`RequestStats.requests`); 429s by both (`rate_limited`, `throttled`). It runs
with the shipped `page_size: 200`, then with 20, which costs the sandbox a tenth of the CPU per
request, so that the sandbox's own speed cannot be what limits the rate.

**Target:** aggregate rate >= {RATE_TARGET:.0%} of {first.rate} requests/s over the whole window,
and zero 429s. "steady" leaves out the first {RAMP_SECONDS:.0f} s, while each process fetches its
first page alone to learn the total.

**Command:** `{COMMAND}` (or `make bench-extract`); {when}.

**Machine:** {machine()}. "load" is the 1-minute load average at the start; "sandbox CPU" the
share of one core the sandbox used during the window. Latency is per request, measured by the
clients on the wire (after the limiter's wait).

| page size | pages served | requests/s (sandbox) | steady requests/s | requests/s (clients) | \
429s (sandbox / clients) | latency p50 / p95 ms | sandbox CPU | load |
|---|---|---|---|---|---|---|---|---|
{figures}

Per process:

| page size | process | requests | records | 429s | s waiting in limiter (its 4 tasks) | \
header blocks | latency p50 / p95 ms |
|---|---|---|---|---|---|---|---|
{processes}

{PACED_FINDINGS}"""


def write_readme(sections: dict[str, str]) -> None:
    common.write_readme(sections)
    log(f"wrote {README.relative_to(REPO)}")


def print_summary(throughput: ThroughputResult | None, paced: list[PacedResult]) -> None:
    rows: list[tuple[str, str, str, str]] = []
    if throughput is not None:
        t = throughput
        rss_small, rss_big = t.median_rss(t.small_runs), t.median_rss(t.side("engine"))
        rows += [
            ("A invoices in the sandbox", f"{t.invoices:,}", "", ""),
            ("A engine records/s (median)", f"{t.median_rate('engine'):,.0f}", "", ""),
            ("A bare loop records/s (median)", f"{t.median_rate('bare'):,.0f}", "", ""),
            (
                "A engine / bare",
                f"{t.engine_ratio:.2f}x",
                f">= {ENGINE_TARGET}x",
                str(t.engine_ratio >= ENGINE_TARGET),
            ),
            ("A engine peak RSS at 100k / 1M", f"{rss_small:.0f} / {rss_big:.0f} MB", "", ""),
            (
                "A peak RSS 1M / 100k",
                f"{t.rss_ratio:.2f}x",
                f"<= {RSS_TARGET}x",
                str(t.rss_ratio <= RSS_TARGET),
            ),
            (
                "A identical pages on both sides",
                str(t.identical_pages),
                "True",
                str(t.identical_pages),
            ),
        ]
    for p in paced:
        rows += [
            (
                f"B page {p.page_size}: requests/s (steady)",
                f"{p.sandbox_rate:.1f} ({p.steady_rate:.1f})",
                f">= {RATE_TARGET * p.rate:.1f}",
                str(p.rate_met),
            ),
            (
                f"B page {p.page_size}: 429s (sandbox / clients)",
                f"{p.sandbox_rate_limited} / {p.client_throttled}",
                "0",
                str(p.no_429s),
            ),
        ]
    header = ("figure", "value", "target", "met")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    print()
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


# --- command line --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.extract_benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # `engine`, `bare` and `paced` are the child processes this command starts: not listed.
    commands = parser.add_subparsers(dest="command", metavar="{run}")
    run = commands.add_parser("run", help="both benchmarks (the default)")
    run.add_argument("--only", choices=["throughput", "ratelimit"], default=None)
    run.add_argument("--repeats", type=int, default=2, help="runs per side in part A")
    run.add_argument("--concurrency", type=int, default=THROUGHPUT_CONCURRENCY)
    run.add_argument(
        "--customers",
        type=int,
        default=MILLION_CUSTOMERS,
        help="sandbox size in part A (the default gives 1,000,000 invoices)",
    )
    run.add_argument("--rate", type=int, default=PACED_RATE, help="the sandbox quota in part B")
    run.add_argument("--seconds", type=float, default=PACED_SECONDS)
    run.add_argument("--no-readme", action="store_true", help="print only")
    for name in ("engine", "bare"):
        child = commands.add_parser(name)
        child.add_argument("--url", required=True)
        child.add_argument("--page-size", type=int, required=True)
        child.add_argument("--concurrency", type=int, required=True)
        child.add_argument("--max-pages", type=int, default=None)
    paced = commands.add_parser("paced")
    paced.add_argument("--url", required=True)
    paced.add_argument("--rate", type=float, required=True)
    paced.add_argument("--page-size", type=int, required=True)
    paced.add_argument("--state-dir", type=Path, required=True)
    paced.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args(argv if argv is not None else sys.argv[1:] or ["run"])

    if args.command == "engine":
        print(
            json.dumps(
                asyncio.run(engine_run(args.url, args.page_size, args.concurrency, args.max_pages))
            )
        )
    elif args.command == "bare":
        print(json.dumps(asyncio.run(bare_run(args.url, args.page_size, args.concurrency))))
    elif args.command == "paced":
        print(
            json.dumps(
                asyncio.run(
                    paced_run(args.url, args.rate, args.page_size, args.state_dir, args.seconds)
                )
            )
        )
    else:
        run_benchmarks(args)


def run_benchmarks(args: argparse.Namespace) -> None:
    started = time.monotonic()
    throughput, paced = None, []
    if args.only in (None, "throughput"):
        throughput = measure_throughput(args.repeats, args.concurrency, args.customers)
    if args.only in (None, "ratelimit"):
        paced = measure_paced(args.rate, PACED_PROCESSES, args.seconds, PACED_PAGE_SIZES)
    minutes = (time.monotonic() - started) / 60
    print_summary(throughput, paced)
    log(f"benchmark took {minutes:.1f} min")
    when = (
        f"run on {datetime.now(UTC).strftime('%Y-%m-%d')}; the command took "
        f"{minutes:.0f} min{' (this part only)' if args.only else ''}"
    )
    sections = {}
    if throughput is not None:
        # Both sides must have fetched every record, the same pages: else no figure holds.
        common.require(
            throughput.identical_pages
            and all(run["records"] == throughput.invoices for run in throughput.runs),
            "the 1M runs did not all fetch the sandbox's "
            f"{throughput.invoices:,} invoices in the same pages: "
            + ", ".join(
                f"{run['side']} {run['records']:,} records, {run['pages']:,} pages, "
                f"{run['bytes']:,} bytes"
                for run in throughput.runs
            ),
        )
        small = min(throughput.invoices, SMALL_PAGES * THROUGHPUT_PAGE_SIZE)
        common.require(
            all(run["records"] == small for run in throughput.small_runs),
            f"the {SMALL_PAGES}-page runs fetched "
            + ", ".join(f"{run['records']:,}" for run in throughput.small_runs)
            + f" records, not {small:,}",
        )
        sections["extract-throughput"] = throughput_section(throughput, when)
    if paced:
        sections["shared-rate-limit"] = paced_section(paced, when)
    if not args.no_readme:
        write_readme(sections)


if __name__ == "__main__":
    main()
