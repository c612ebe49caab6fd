"""Extraction benchmarks against a sandbox running in its own process.

A. Throughput and memory: 1,000,000 billing invoices through the engine (EndpointExtractor
   over SourceClient) and, in the same run, through a bare httpx loop fetching the same pages
   (the ceiling); peak RSS of the engine at ~100k and ~1M records.
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
import queue
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx
import orjson
import yaml
from dotenv import dotenv_values

if TYPE_CHECKING:
    from integration_platform.specs.models import SourceSpec

REPO = Path(__file__).resolve().parents[1]
README = REPO / "benchmarks" / "README.md"
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


def billing_spec(url: str, *, requests_per_second: float | None, page_size: int | None = None,
                 concurrency: int | None = None, max_pages: int | None = None) -> SourceSpec:
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


class SandboxProcess:
    """`integration-platform sandbox up` as a child process on free ports, stopped on exit."""

    def __init__(self, customers: int, billing_rate_limit: int) -> None:
        self.customers = customers
        self.billing_rate_limit = billing_rate_limit
        self.url = ""
        self._process: subprocess.Popen[str] | None = None
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in __exit__)
            "w+", prefix="sandbox-", suffix=".log")
        self._http: httpx.Client | None = None

    def __enter__(self) -> SandboxProcess:
        script = Path(sys.executable).with_name("integration-platform")
        command = ([str(script)] if script.exists()
                   else [sys.executable, "-m", "integration_platform.cli"])
        command += ["sandbox", "up", "--customers", str(self.customers), "--base-port", "0",
                    "--billing-rate-limit", str(self.billing_rate_limit)]
        log(f"starting the sandbox: {' '.join(command[1:])}")
        started = time.monotonic()
        self._process = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=self._log, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            self.url = self._billing_url(timeout=120)
            self._http = httpx.Client(base_url=self.url, timeout=120,
                                      headers={"X-API-Key": environment()["BILLING_API_KEY"]})
            self._wait_healthy(timeout=120)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        log(f"sandbox healthy at {self.url} after {time.monotonic() - started:.1f} s")
        return self

    def _billing_url(self, timeout: float) -> str:
        assert self._process is not None and self._process.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        stdout = self._process.stdout

        def pump() -> None:  # drains stdout for the sandbox's whole life
            for line in stdout:
                lines.put(line)
            lines.put("")

        threading.Thread(target=pump, name="sandbox-stdout", daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"the sandbox printed no URL within {timeout:.0f} s: "
                                   f"{self._log_tail()}") from None
            if not line:
                raise RuntimeError(f"the sandbox exited while starting: {self._log_tail()}")
            match = re.match(r"\s+billing\s+(http://\S+)", line)
            if match:
                return match.group(1)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.TransportError):
                if self.get("/_sandbox/health").status_code == 200:
                    return
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"the sandbox exited while starting: {self._log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the sandbox was not healthy within {timeout:.0f} s")
            time.sleep(0.1)

    def _log_tail(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read()[-2000:] or "(no output)"

    def get(self, path: str, **params: Any) -> httpx.Response:
        assert self._http is not None
        return self._http.get(path, params=params or None)

    def stats(self) -> dict[str, Any]:
        response = self.get("/_sandbox/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def warm_up(self) -> dict[str, float]:
        """The first page request and the first stats call build lazy indexes and the revenue
        totals (seconds at a million invoices): do them before anything is timed."""
        timings = {}
        started = time.monotonic()
        self.get(INVOICES_PATH, offset=0, limit=1).raise_for_status()
        timings["first_page_seconds"] = round(time.monotonic() - started, 2)
        started = time.monotonic()
        self.stats()
        timings["first_stats_seconds"] = round(time.monotonic() - started, 2)
        log(f"sandbox warmed up: {timings}")
        return timings

    def __exit__(self, *exc: object) -> None:
        if self._http is not None:
            self._http.close()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()


# --- child runs: one fresh process each ----------------------------------------------------------


def run_child(mode: str, *args: str, timeout: float = 600) -> dict[str, Any]:
    """Run `python -m benchmarks.extract_benchmark <mode> ...`; its last stdout line is JSON."""
    command = [sys.executable, "-m", "benchmarks.extract_benchmark", mode, *args]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} run failed ({done.returncode}): {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def engine_run(url: str, page_size: int, concurrency: int,
                     max_pages: int | None) -> dict[str, Any]:
    """The engine as an asset uses it, records counted page by page and dropped."""
    from integration_platform.extraction.runner import EndpointExtractor
    from integration_platform.http.client import SourceClient

    spec = billing_spec(url, requests_per_second=None, page_size=page_size,
                        concurrency=concurrency, max_pages=max_pages)
    records = pages = 0
    async with SourceClient(spec) as client:
        extractor = EndpointExtractor(spec, ENDPOINT, client)
        started = time.perf_counter()
        async for page in extractor.pages():
            records += len(page.records)
            pages += 1
        seconds = time.perf_counter() - started
    summary = extractor.summary
    return {"side": "engine", "records": records, "pages": pages, "seconds": seconds,
            "bytes": summary.bytes, "requests": summary.requests, "retries": summary.retries,
            "peak_rss_mb": peak_rss_mb()}


async def bare_run(url: str, page_size: int, concurrency: int) -> dict[str, Any]:
    """The ceiling: plain httpx, the engine's offset/limit pages, `concurrency` in flight."""
    api_key = environment()["BILLING_API_KEY"]
    limits = httpx.Limits(max_connections=concurrency * 2,
                          max_keepalive_connections=concurrency * 2)
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": api_key}, limits=limits,
                                 timeout=httpx.Timeout(30.0)) as http:
        started = time.perf_counter()
        # Like the engine: one page first, to learn the total, then the rest concurrently.
        first = await http.get(INVOICES_PATH, params={"offset": 0, "limit": page_size})
        first.raise_for_status()
        total = orjson.loads(first.content)["total"]
        received = {"bytes": len(first.content), "pages": 1,
                    "records": min(page_size, total)}
        offsets = iter(range(page_size, total, page_size))

        async def worker() -> None:
            for offset in offsets:  # one shared iterator: each worker takes the next page
                response = await http.get(INVOICES_PATH,
                                          params={"offset": offset, "limit": page_size})
                response.raise_for_status()
                received["bytes"] += len(response.content)
                received["pages"] += 1
                received["records"] += min(page_size, total - offset)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return {"side": "bare", **received, "seconds": seconds, "requests": received["pages"],
            "retries": 0, "peak_rss_mb": peak_rss_mb()}


async def paced_run(url: str, rate: float, state_dir: Path, start_at: float,
                    seconds: float) -> dict[str, Any]:
    """The shipped billing spec at `rate` requests/s, one shared limiter state directory:
    extract the whole endpoint from `start_at` for `seconds`, then stop."""
    from integration_platform.extraction.runner import EndpointExtractor, ExtractedPage
    from integration_platform.http.client import SourceClient

    spec = billing_spec(url, requests_per_second=rate)
    records = 0
    async with SourceClient(spec, state_dir=state_dir) as client:
        extractor = EndpointExtractor(spec, ENDPOINT, client)
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
    return {"requests": stats["requests"], "throttled": stats["throttled"],
            "retries": stats["retries"], "records": records,
            "rate_limit_wait_seconds": round(float(stats["rate_limit_wait_seconds"]), 2),
            "blocks": limiter.blocks if limiter else 0, "late_seconds": round(max(0.0, late), 3),
            "burst": spec.rate_limit.burst if spec.rate_limit else None}


# --- part A: throughput and memory ---------------------------------------------------------------


@dataclass
class ThroughputResult:
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


def measure_throughput(repeats: int, concurrency: int) -> ThroughputResult:
    with SandboxProcess(MILLION_CUSTOMERS, UNLIMITED_QUOTA) as sandbox:
        warm_up = sandbox.warm_up()
        before = sandbox.stats()
        result = ThroughputResult(invoices=before["counts"]["invoices"],
                                  page_size=THROUGHPUT_PAGE_SIZE, concurrency=concurrency,
                                  warm_up=warm_up)
        log(f"sandbox holds {result.invoices:,} invoices")
        common = ["--url", sandbox.url, "--page-size", str(THROUGHPUT_PAGE_SIZE),
                  "--concurrency", str(concurrency)]
        # Alternate which side goes first, so drift (caches, thermals) hits both alike.
        for round_number in range(repeats):
            order = ("engine", "bare") if round_number % 2 == 0 else ("bare", "engine")
            for side in order:
                run = run_child(side, *common)
                result.runs.append(run)
                log(f"{side:<6} 1M  round {round_number + 1}: {run['records']:,} records in "
                    f"{run['seconds']:.1f} s = {run['records'] / run['seconds']:,.0f} rec/s, "
                    f"peak RSS {run['peak_rss_mb']:.0f} MB")
        for round_number in range(repeats):
            run = run_child("engine", *common, "--max-pages", str(SMALL_PAGES))
            result.small_runs.append(run)
            log(f"engine 100k round {round_number + 1}: {run['records']:,} records in "
                f"{run['seconds']:.1f} s, peak RSS {run['peak_rss_mb']:.0f} MB")
        after = sandbox.stats()
        result.sandbox_requests = after["requests"][ENDPOINT] - before["requests"][ENDPOINT]
        result.sandbox_rate_limited = after["rate_limited"] - before["rate_limited"]
    return result


# --- part B: one rate limit, four processes ------------------------------------------------------


@dataclass
class PacedResult:
    rate: int
    processes: int
    seconds: float
    invoices: int
    children: list[dict[str, Any]]
    sandbox_requests: int
    sandbox_rate_limited: int

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
    def client_rate(self) -> float:
        return self.client_requests / self.seconds

    @property
    def met(self) -> bool:
        return (self.sandbox_rate >= RATE_TARGET * self.rate and self.sandbox_rate_limited == 0
                and self.client_throttled == 0)


def measure_paced(rate: int, processes: int, seconds: float) -> PacedResult:
    state_dir = Path(tempfile.mkdtemp(prefix="bench-ratelimit-"))
    try:
        with SandboxProcess(PACED_CUSTOMERS, rate) as sandbox:
            sandbox.warm_up()
            invoices = sandbox.stats()["counts"]["invoices"]
            start_at = time.time() + 8.0  # time for four interpreters to import the engine
            args = ["--url", sandbox.url, "--rate", str(rate), "--state-dir", str(state_dir),
                    "--start-at", repr(start_at), "--seconds", repr(seconds)]
            log(f"{processes} processes extract {ENDPOINT} at once for {seconds:.0f} s "
                f"against a quota of {rate} requests/s")
            with _ThreadPool(processes) as pool:
                futures = [pool.submit(lambda: run_child("paced", *args))
                           for _ in range(processes)]
                time.sleep(max(0.0, start_at - time.time()))
                before = sandbox.stats()
                time.sleep(max(0.0, start_at + seconds - time.time()))
                after = sandbox.stats()
                children = [future() for future in futures]
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    return PacedResult(
        rate=rate, processes=processes, seconds=seconds, invoices=invoices, children=children,
        sandbox_requests=after["requests"][ENDPOINT] - before["requests"][ENDPOINT],
        sandbox_rate_limited=after["rate_limited"] - before["rate_limited"])


class _ThreadPool:
    """Run blocking calls (child processes) side by side; `submit` returns a result getter."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._threads: list[threading.Thread] = []

    def submit(self, call: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["value"] = call()
            except BaseException as exc:  # re-raised by the getter, in the caller's thread
                box["error"] = exc

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self._threads.append(thread)

        def result() -> dict[str, Any]:
            thread.join()
            if "error" in box:
                raise box["error"]
            value: dict[str, Any] = box["value"]
            return value

        return result

    def __enter__(self) -> _ThreadPool:
        return self

    def __exit__(self, *exc: object) -> None:
        for thread in self._threads:
            thread.join()


# --- reporting -----------------------------------------------------------------------------------


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
    return (f"{os.cpu_count()} cores ({model}){memory}, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}")


def yes_no(met: bool) -> str:
    return "**met**" if met else "**not met**"


def throughput_section(result: ThroughputResult, when: str) -> str:
    engine, bare = result.median_rate("engine"), result.median_rate("bare")
    rss_1m, rss_100k = result.median_rss(result.side("engine")), result.median_rss(
        result.small_runs)
    small = result.small_runs[0]["records"]
    rows = "\n".join(
        f"| {i + 1} | {run['side']} | {run['records']:,} | {run['pages']:,} | "
        f"{run['bytes'] / 1e6:,.1f} | {run['seconds']:.1f} | "
        f"{run['records'] / run['seconds']:,.0f} | {run['peak_rss_mb']:.0f} |"
        for i, run in enumerate(result.runs + result.small_runs))
    return f"""\
## A. Extraction throughput and memory: 1,000,000 billing invoices

**What is measured.** The sandbox (`integration-platform sandbox up --customers
{MILLION_CUSTOMERS} --billing-rate-limit {UNLIMITED_QUOTA}`, its own process) holds
**{result.invoices:,}** invoices (from `/_sandbox/stats`). Each run is a fresh child process that
extracts all of `/v1/invoices`:

- **engine**: `EndpointExtractor` over `SourceClient`, the spec being `sources/billing.yaml`
  edited in memory (no client rate limit, `page_size: {result.page_size}`, `concurrency:
  {result.concurrency}`); each page's records are counted, then dropped.
- **bare**: the ceiling, a plain `httpx.AsyncClient` loop fetching the same `offset`/`limit` pages
  ({result.concurrency} in flight, first page alone to learn the total, like the engine), bodies
  discarded unparsed.

Both sides fetched {"identical" if result.identical_pages else "**different**"} pages (same
record, page and byte counts). The sandbox was warmed up first (first page
{result.warm_up["first_page_seconds"]} s, first stats call {result.warm_up["first_stats_seconds"]}
s: excluded). Sides alternate order between rounds; figures are medians. Peak RSS is
`ru_maxrss` of the child process (the engine at {small:,} records stops after {SMALL_PAGES} pages
via the endpoint's `max_pages`). The sandbox served {result.sandbox_requests:,} invoice pages
and refused {result.sandbox_rate_limited} (429).

**Command:** `{COMMAND}` (or `make bench-extract`), {when}.

**Machine:** {machine()}. The sandbox, generating every record on request in Python, uses one
core; the extracting process the other.

| run | side | records | pages | MB | seconds | records/s | peak RSS MB |
|---|---|---|---|---|---|---|---|
{rows}

| figure | value | target | |
|---|---|---|---|
| engine records/s (median) | {engine:,.0f} | | |
| bare httpx records/s (median) | {bare:,.0f} | | |
| engine / bare | {result.engine_ratio:.2f}x | >= {ENGINE_TARGET}x | \
{yes_no(result.engine_ratio >= ENGINE_TARGET)} |
| engine peak RSS at {small:,} records | {rss_100k:.0f} MB | | |
| engine peak RSS at {result.invoices:,} records | {rss_1m:.0f} MB | | |
| RSS at 1M / RSS at 100k | {result.rss_ratio:.2f}x | <= {RSS_TARGET}x | \
{yes_no(result.rss_ratio <= RSS_TARGET)} |
"""


def paced_section(result: PacedResult, when: str) -> str:
    rows = "\n".join(
        f"| {i + 1} | {child['requests']} | {child['records']:,} | {child['throttled']} | "
        f"{child['rate_limit_wait_seconds']:.1f} | {child['blocks']} | {child['late_seconds']} |"
        for i, child in enumerate(result.children))
    burst = result.children[0]["burst"]
    share = result.sandbox_rate / result.rate
    return f"""\
## B. One rate limit shared by four processes

**What is measured.** The sandbox (`integration-platform sandbox up --customers
{PACED_CUSTOMERS} --billing-rate-limit {result.rate}`, its own process; {result.invoices:,}
invoices) allows {result.rate} requests per second per API key in fixed one-second windows and
answers 429 beyond. {result.processes} separate processes each run the full, unpartitioned
extraction of `billing.invoices` with the shipped spec (`page_size: 200`, `concurrency: 4`,
`burst: {burst}`) but `requests_per_second: {result.rate}`, all with one `state_dir`
(`SourceClient(spec, state_dir=...)`), starting at the same instant and stopping after
{result.seconds:.0f} s. The request rate is counted by the sandbox (`/_sandbox/stats` sampled at
the start and the end of the window) and by the clients (`RequestStats.requests`); 429s by both
(`rate_limited`, `throttled`).

**Command:** `{COMMAND}` (or `make bench-extract`), {when}.

**Machine:** {machine()}.

| process | requests | records | 429s | s waiting in limiter | header blocks | late start s |
|---|---|---|---|---|---|---|
{rows}

| figure | value | target | |
|---|---|---|---|
| pages served by the sandbox in the window | {result.sandbox_requests:,} | | |
| aggregate requests/s (sandbox) | {result.sandbox_rate:.1f} ({share:.1%} of {result.rate}) \
| >= {RATE_TARGET:.0%} of {result.rate} | |
| aggregate requests/s (clients) | {result.client_rate:.1f} | | |
| 429s (sandbox `rate_limited` / clients `throttled`) | {result.sandbox_rate_limited} / \
{result.client_throttled} | 0 | |
| target | | | {yes_no(result.met)} |
"""


def replace_section(text: str, name: str, body: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text)
    return text.rstrip() + "\n\n" + block + "\n"


README_HEADER = """\
# Benchmarks

Performance runs against the sandbox, kept out of the test suite (pytest only collects `tests/`).
Each section is rewritten by the command it names; the sandbox always runs in its own process.
"""


def write_readme(sections: dict[str, str]) -> None:
    text = README.read_text() if README.exists() else README_HEADER
    for name, body in sections.items():
        text = replace_section(text, name, body)
    README.write_text(text)
    log(f"wrote {README.relative_to(REPO)}")


def print_summary(throughput: ThroughputResult | None, paced: PacedResult | None) -> None:
    lines = ["", "figure                                         value           target   met"]
    if throughput is not None:
        t = throughput
        lines += [
            f"A  invoices in the sandbox                      {t.invoices:<15,}",
            f"A  engine records/s (median)                    {t.median_rate('engine'):<15,.0f}",
            f"A  bare httpx records/s (median)                {t.median_rate('bare'):<15,.0f}",
            f"A  engine / bare                                {t.engine_ratio:<15.2f} "
            f">= {ENGINE_TARGET:<5} {t.engine_ratio >= ENGINE_TARGET}",
            f"A  engine peak RSS MB at 100k / 1M              "
            f"{t.median_rss(t.small_runs):.0f} / {t.median_rss(t.side('engine')):<9.0f}",
            f"A  RSS 1M / 100k                                {t.rss_ratio:<15.2f} "
            f"<= {RSS_TARGET:<5} {t.rss_ratio <= RSS_TARGET}",
            f"A  identical pages on both sides                {t.identical_pages}",
        ]
    if paced is not None:
        p = paced
        lines += [
            f"B  aggregate requests/s (sandbox / clients)     "
            f"{p.sandbox_rate:.1f} / {p.client_rate:<8.1f} >= {RATE_TARGET * p.rate:<5.1f}",
            f"B  429s (sandbox / clients)                     "
            f"{p.sandbox_rate_limited} / {p.client_throttled:<11} 0        {p.met}",
        ]
    print("\n".join(lines))


# --- command line --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.extract_benchmark",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run", help="both benchmarks (the default)")
    run.add_argument("--only", choices=["throughput", "ratelimit"], default=None)
    run.add_argument("--repeats", type=int, default=2, help="runs per side in part A")
    run.add_argument("--concurrency", type=int, default=THROUGHPUT_CONCURRENCY)
    run.add_argument("--rate", type=int, default=PACED_RATE, help="the sandbox quota in part B")
    run.add_argument("--seconds", type=float, default=PACED_SECONDS)
    run.add_argument("--no-readme", action="store_true", help="print only")
    for name in ("engine", "bare"):
        child = commands.add_parser(name, help=argparse.SUPPRESS)
        child.add_argument("--url", required=True)
        child.add_argument("--page-size", type=int, required=True)
        child.add_argument("--concurrency", type=int, required=True)
        child.add_argument("--max-pages", type=int, default=None)
    paced = commands.add_parser("paced", help=argparse.SUPPRESS)
    paced.add_argument("--url", required=True)
    paced.add_argument("--rate", type=float, required=True)
    paced.add_argument("--state-dir", type=Path, required=True)
    paced.add_argument("--start-at", type=float, required=True)
    paced.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args(argv if argv is not None else sys.argv[1:] or ["run"])

    if args.command == "engine":
        print(json.dumps(asyncio.run(engine_run(args.url, args.page_size, args.concurrency,
                                                args.max_pages))))
    elif args.command == "bare":
        print(json.dumps(asyncio.run(bare_run(args.url, args.page_size, args.concurrency))))
    elif args.command == "paced":
        print(json.dumps(asyncio.run(paced_run(args.url, args.rate, args.state_dir,
                                               args.start_at, args.seconds))))
    else:
        run_benchmarks(args)


def run_benchmarks(args: argparse.Namespace) -> None:
    when = f"run on {datetime.now(UTC).strftime('%Y-%m-%d')}"
    started = time.monotonic()
    throughput = paced = None
    sections = {}
    if args.only in (None, "throughput"):
        throughput = measure_throughput(args.repeats, args.concurrency)
        sections["extract-throughput"] = throughput_section(throughput, when)
    if args.only in (None, "ratelimit"):
        paced = measure_paced(args.rate, PACED_PROCESSES, args.seconds)
        sections["shared-rate-limit"] = paced_section(paced, when)
    print_summary(throughput, paced)
    log(f"benchmark took {time.monotonic() - started:.0f} s")
    if not args.no_readme:
        write_readme(sections)


if __name__ == "__main__":
    main()
