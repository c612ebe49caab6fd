"""Raw-load benchmark: 1,000,000 billing invoices, API to DuckDB table, ours against dlt's.

In one run, against one sandbox in its own process, which first renders every invoice page
into its page cache (so the runs measure the clients, not the sandbox's Python rendering):

- **ours**: the real raw path of `materialize_raw` — `extract_to_landing` into a `LandingZone`
  in a temporary folder, then `load_attempt` (replace mode, unpartitioned) into a temporary
  DuckDB file — with `sources/billing.yaml` read through `SourceSpec.model_validate` and
  edited in memory: no client rate limit, page size 500 (the sandbox's largest).
- **dlt**: `dlt.sources.rest_api.rest_api_source` on the same endpoint (same base URL, API key
  header, offset paginator with limit 500 and `total_path: total`, `data_selector: data`),
  `write_disposition: replace`, pipeline into a temporary DuckDB file.

Each measured run is a fresh child process of this module (`ours` / `dlt` sub-commands) so its
peak RSS is its own; the parent also samples the RSS of the child's whole process tree. Our
side runs at ~100k records as well, to show memory stays flat. Every run's row count is checked
against the sandbox's `/_sandbox/stats`.

Run `.venv/bin/python -m benchmarks.raw_load_benchmark` (or `make bench-raw`); dlt comes from the
`bench` extra (`uv pip install -c constraints.txt -e ".[dev,bench]"`, which `make bench-raw`
does). It prints a summary, writes benchmarks/results/raw_load.json and, with `--readme`,
rewrites its marked section of benchmarks/README.md (appended at the end the first time).
`--from-results` reports the last results again without measuring.
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
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from benchmarks import common
from benchmarks.common import README, REPO, SandboxProcess, bare_pages

if TYPE_CHECKING:
    from integration_platform.specs.models import SourceSpec

RESULTS = REPO / "benchmarks" / "results" / "raw_load.json"
BILLING_SPEC = REPO / "sources" / "billing.yaml"
SOURCE, ENDPOINT, INVOICES_PATH = "billing", "invoices", "/v1/invoices"
COMMAND = ".venv/bin/python -m benchmarks.raw_load_benchmark --readme"
SECTION_TITLE = "## Raw load: 1M billing invoices into DuckDB, ours vs dlt"

# Seed 42: 405,197 people give 250,000 billing customers, hence 1,000,000 invoices (4 each);
# the run reads the exact count from /_sandbox/stats and checks every table against it.
MILLION_CUSTOMERS = 405_197
PAGE_SIZE = 500  # the sandbox's largest `limit`, on both sides
SMALL_PAGES = 200  # x 500 = the ~100k-record run of our side
UNLIMITED_QUOTA = 1_000_000  # requests/s: the sandbox's per-key quota never binds
# The sandbox keeps every rendered invoice page (~200 MB for the million): the warm-up renders
# them once, so the runs measure the clients, not the sandbox's Python rendering.
PAGE_CACHE_MB = 512

SPEED_TARGET = 5.0  # ours >= 5x dlt's records/s
BARE_TARGET = 0.9  # ours >= 0.9x a bare loop of the same transport on the same pages
RSS_TARGET = 1.25  # our peak RSS at 1M <= 1.25x at 100k
SIDES = ("ours", "dlt", "bare")
PROFILE = REPO / "benchmarks" / "results" / "raw_load_profile.pyisession"


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def cpu_seconds() -> float:
    """User + system CPU of this process and its reaped children so far."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def peak_rss_mb() -> dict[str, float]:
    """ru_maxrss of this process and of its largest reaped child (Linux: kilobytes)."""
    return {
        "self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def api_key() -> str:
    from integration_platform.environment import load_sandbox_env

    load_sandbox_env()  # the real environment wins; only unset variables come from the file
    return os.environ["BILLING_API_KEY"]


def count_rows(database: Path, table: str) -> int:
    import duckdb

    with duckdb.connect(str(database), read_only=True) as connection:
        row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
    assert row is not None
    return int(row[0])


# --- our side ------------------------------------------------------------------------------------


def billing_spec(url: str, max_pages: int | None) -> SourceSpec:
    """sources/billing.yaml edited in memory: no rate limit, pages of 500, unpartitioned."""
    from integration_platform.specs.models import SourceSpec

    raw = yaml.safe_load(BILLING_SPEC.read_text())
    raw.pop("rate_limit", None)
    endpoint = raw["endpoints"][ENDPOINT]
    endpoint["pagination"]["page_size"] = PAGE_SIZE
    endpoint.pop("partitions", None)
    if max_pages is not None:
        endpoint["max_pages"] = max_pages
    api_key()  # loads config/sandbox.env into the environment (unset variables only)
    env = {**os.environ, "BILLING_BASE_URL": url}
    return SourceSpec.model_validate(raw, context={"env": env})


def ours_run(url: str, workdir: Path, max_pages: int | None) -> dict[str, Any]:
    """What `materialize_raw` does for one unpartitioned endpoint, minus Dagster and publish."""
    from integration_platform.extraction.state import IncrementalState
    from integration_platform.landing.ingest import extract_to_landing
    from integration_platform.landing.loader import Stager, table_name
    from integration_platform.landing.zone import LandingZone

    spec = billing_spec(url, max_pages)
    run_id = uuid.uuid4().hex
    zone = LandingZone(workdir / "landing")
    state = IncrementalState(workdir / "state")
    database = workdir / "warehouse.duckdb"
    started, cpu_started = time.perf_counter(), cpu_seconds()
    attempt = zone.open_attempt(SOURCE, ENDPOINT, None, run_id, resume=False)
    with Stager(spec, ENDPOINT, attempt, temp_directory=attempt.folder / ".tmp") as stager:
        landed = asyncio.run(
            extract_to_landing(
                spec,
                ENDPOINT,
                attempt,
                partition=None,
                run_id=run_id,
                state=state,
                full_refresh=True,
            )
        )
        extracted, cpu_extracted = time.perf_counter(), cpu_seconds()
        extract_rss = peak_rss_mb()["self"]
        result = stager.load(database, partition=None, run_id=run_id, mode="replace")
    finished = time.perf_counter()
    summary = landed.summary
    return {
        "side": "ours",
        "records": summary.records,
        "pages": summary.pages,
        "requests": summary.requests,
        "retries": summary.retries,
        "bytes": summary.bytes,
        "seconds": finished - started,
        "extract_seconds": extracted - started,
        "load_seconds": finished - extracted,
        "rows_loaded": result.rows,
        "cpu_seconds": cpu_seconds() - cpu_started,
        "extract_cpu_seconds": cpu_extracted - cpu_started,
        "dead_letters": result.dead_letters,
        "rows_in_table": count_rows(database, table_name(SOURCE, ENDPOINT)),
        "landing_bytes": sum(p.stat().st_size for p in attempt.folder.iterdir()),
        "extract_peak_rss_mb": extract_rss,
        "peak_rss_mb": peak_rss_mb(),
    }


# --- dlt's side ----------------------------------------------------------------------------------


def dlt_config(url: str) -> dict[str, Any]:
    return {
        "client": {
            "base_url": url,
            "auth": {
                "type": "api_key",
                "name": "X-API-Key",
                "api_key": api_key(),
                "location": "header",
            },
            "paginator": {
                "type": "offset",
                "limit": PAGE_SIZE,
                "offset_param": "offset",
                "limit_param": "limit",
                "total_path": "total",
            },
        },
        "resource_defaults": {
            "write_disposition": "replace",
            "endpoint": {"data_selector": "data"},
        },
        "resources": [{"name": ENDPOINT, "primary_key": "id", "endpoint": {"path": INVOICES_PATH}}],
    }


# dlt's knobs, tried on 100k invoices of this sandbox (see README): the loader file format is
# the one that matters. Its default for DuckDB (insert_values) took 97 s and 4.1 GB for 100k
# records, jsonl 35 s, parquet 26-29 s; a bigger writer buffer, or two normalize workers over
# rotated files, changed nothing measurable. rest_api follows an offset paginator one page
# after the other (one resource, so `parallelized` has nothing to run alongside it).
DLT_SETTINGS = {"RUNTIME__LOG_LEVEL": "WARNING"}
DLT_FILE_FORMAT = "parquet"


def dlt_run(url: str, workdir: Path, file_format: str | None) -> dict[str, Any]:
    import dlt
    from dlt.sources.rest_api import rest_api_source

    database = workdir / "dlt.duckdb"
    started, cpu_started = time.perf_counter(), cpu_seconds()
    pipeline = dlt.pipeline(
        pipeline_name="raw_load_benchmark",
        destination=dlt.destinations.duckdb(str(database)),
        dataset_name="raw",
        pipelines_dir=str(workdir / "pipelines"),
    )
    source = rest_api_source(dlt_config(url))  # type: ignore[arg-type]
    pipeline.extract(source, loader_file_format=file_format)  # type: ignore[arg-type]
    extracted, cpu_extracted = time.perf_counter(), cpu_seconds()
    pipeline.normalize()
    normalized = time.perf_counter()
    pipeline.load()
    finished = time.perf_counter()
    trace = pipeline.last_trace
    rows = count_rows(database, f"raw.{ENDPOINT}")
    return {
        "side": "dlt",
        "version": dlt.__version__,
        "file_format": file_format or "default",
        "records": rows,
        "seconds": finished - started,
        "extract_seconds": extracted - started,
        "normalize_seconds": normalized - extracted,
        "load_seconds": finished - normalized,
        "rows_in_table": rows,
        "cpu_seconds": cpu_seconds() - cpu_started,
        "extract_cpu_seconds": cpu_extracted - cpu_started,
        "steps": [step.step for step in trace.steps] if trace else [],
        "peak_rss_mb": peak_rss_mb(),
    }


# --- the bare loop: the transport alone ---------------------------------------------------------


async def bare_run(url: str) -> dict[str, Any]:
    """The ceiling our side could reach (common.bare_pages): the engine's transport, the same
    pages with the spec's concurrency; bodies counted, not parsed, landed or loaded."""
    got = await bare_pages(
        url,
        {"X-API-Key": api_key()},
        INVOICES_PATH,
        PAGE_SIZE,
        billing_spec(url, None).concurrency,
    )
    return {
        "side": "bare",
        **got,
        "rows_in_table": got["records"],  # nothing is loaded: the records fetched
        "peak_rss_mb": peak_rss_mb(),
    }


# --- the sandbox, in its own process -------------------------------------------------------------


def start_sandbox(customers: int) -> SandboxProcess:
    """The billing sandbox (no quota that binds, a page cache for the whole listing)."""
    args = [
        "--customers",
        str(customers),
        "--billing-rate-limit",
        str(UNLIMITED_QUOTA),
        "--billing-page-cache-mb",
        str(PAGE_CACHE_MB),
    ]
    log(f"starting the sandbox: {' '.join(args)}")
    return SandboxProcess(args, headers={"X-API-Key": api_key()})


def measured_run(sandbox: SandboxProcess, side: str, *args: str) -> dict[str, Any]:
    """One measured child run, with the sandbox's CPU and the machine's load around it."""
    cpu, load = sandbox.cpu_seconds(), os.getloadavg()[0]
    run = run_child(side, "--url", sandbox.url, *args)
    run["sandbox_cpu_seconds"] = sandbox.cpu_seconds() - cpu
    run["loadavg"] = f"{load:.1f}->{os.getloadavg()[0]:.1f}"
    return run


def warm_up(sandbox: SandboxProcess) -> dict[str, float]:
    """Build the sandbox's lazy indexes, then render every page both sides will ask for
    into its page cache (its CPU for that is the rendering cost a run no longer pays)."""
    started = time.monotonic()
    sandbox.get(INVOICES_PATH, offset=0, limit=1).raise_for_status()
    total = int(sandbox.stats()["counts"]["invoices"])
    indexed, cpu = time.monotonic(), sandbox.cpu_seconds()
    for offset in range(0, total, PAGE_SIZE):
        sandbox.get(INVOICES_PATH, offset=offset, limit=PAGE_SIZE).raise_for_status()
    cache = sandbox.stats()["page_cache"]
    pages = -(-total // PAGE_SIZE)
    if cache["pages"] < pages:
        raise RuntimeError(
            f"the sandbox kept {cache['pages']} of {pages} pages: raise PAGE_CACHE_MB"
        )
    return {
        "index_seconds": indexed - started,
        "render_seconds": time.monotonic() - indexed,
        "render_cpu_seconds": sandbox.cpu_seconds() - cpu,
        "cached_pages": cache["pages"],
        "cached_mb": cache["bytes"] / 2**20,
    }


# --- children: one fresh process per measured run ------------------------------------------------


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB (0 once it is gone)."""
    import psutil

    try:
        parent = psutil.Process(pid)
        processes = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += process.memory_info().rss
    return total / 2**20


def run_child(side: str, *args: str, timeout: float = 900) -> dict[str, Any]:
    """`python -m benchmarks.raw_load_benchmark <side> ...` in a fresh temporary folder; its
    last stdout line is JSON. The parent samples the child tree's RSS every 100 ms as well."""
    workdir = Path(tempfile.mkdtemp(prefix=f"raw-bench-{side}-"))
    command = [
        sys.executable,
        "-m",
        "benchmarks.raw_load_benchmark",
        side,
        "--workdir",
        str(workdir),
        *args,
    ]
    started = time.perf_counter()
    try:
        with subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as child:
            peak = 0.0
            sampler_done = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not sampler_done.wait(0.1):
                    peak = max(peak, tree_rss_mb(child.pid))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            try:
                stdout, stderr = child.communicate(timeout=timeout)
            finally:
                sampler_done.set()
                sampler.join()
        if child.returncode != 0:
            raise RuntimeError(f"{side} run failed ({child.returncode}): {stderr[-3000:]}")
        result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["process_seconds"] = time.perf_counter() - started
    result["sampled_tree_rss_mb"] = peak
    result["rate"] = result["records"] / result["seconds"]
    return result


def describe(run: dict[str, Any]) -> str:
    rss = run["peak_rss_mb"]
    return (
        f"{run['side']:<4} {run['records']:>9,} records in {run['seconds']:6.1f} s = "
        f"{run['rate']:>8,.0f} rec/s, peak RSS {rss['self']:.0f} MB "
        f"(tree {run['sampled_tree_rss_mb']:.0f} MB), CPU {run['cpu_seconds']:.0f} s, "
        f"sandbox CPU {run.get('sandbox_cpu_seconds', 0):.0f} s, load {run['loadavg']}"
    )


# --- the profile: where the time goes -----------------------------------------------------------


def profile_group(file_path: str) -> str | None:
    """The package or project layer a frame's code belongs to (None: C code, which counts for
    the Python code that called it)."""
    path = file_path.replace("\\", "/")
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/integration_platform/" in path:
        parts = path.split("/integration_platform/", 1)[1].split("/")
        layer = "/".join(parts[:2]) if parts[0] == "landing" and len(parts) > 2 else parts[0]
        return f"integration_platform/{layer.removesuffix('.py')}"
    if "/benchmarks/" in path:
        return "the benchmark's own code"
    if "/lib/python3" in path:
        return "stdlib " + path.split("/lib/python3", 1)[1].split("/", 2)[1].removesuffix(".py")
    return None


# C calls in which the profiled thread waits (for the network, a lock, another thread)
WAITING_CALLS = {"poll", "select", "acquire", "wait", "sleep", "join"}
WAITING = "waiting: epoll and locks (the sandbox, the other threads)"


def profile_summary(path: Path, top: int = 12) -> dict[str, Any]:
    """Wall-clock seconds of the profiled thread by package (self time, C calls counted for
    their Python caller) and by function (self time), from a saved pyinstrument session."""
    from collections import Counter

    from pyinstrument.session import Session

    session = Session.load(str(path))
    root = session.root_frame()
    groups: Counter[str] = Counter()
    functions: Counter[str] = Counter()

    def walk(frame: Any, owner: str) -> None:
        group = profile_group(frame.file_path or "") or owner
        # pyinstrument puts a frame's own time in a synthetic `[self]` child.
        real = [child for child in frame.children if not child.is_synthetic]
        own = frame.time - sum(child.time for child in real)
        if own > 0:
            if frame.file_path == "<built-in>":
                waiting = frame.function.rsplit(".", 1)[-1] in WAITING_CALLS
                label = f"`{frame.function}` (C, under {owner})"
            else:
                waiting = False
                where = (frame.file_path_short or frame.file_path or "").split("site-packages/")
                label = f"`{frame.function}` ({where[-1]})"
            groups[
                "waiting: epoll and locks (the sandbox, the other threads)" if waiting else group
            ] += own
            functions[label] += own
        for child in real:
            walk(child, group)

    if root is not None:
        walk(root, "other")
    return {
        "seconds": session.duration,
        "cpu_seconds": session.cpu_time,
        "samples": session.sample_count,
        "groups": groups.most_common(top),
        "functions": functions.most_common(top),
    }


# --- the orchestrating run -----------------------------------------------------------------------


def measure(
    repeats: int, customers: int, dlt_format: str | None, profile: bool = True
) -> dict[str, Any]:
    with start_sandbox(customers) as sandbox:
        warm = warm_up(sandbox)
        before = sandbox.stats()
        invoices = int(before["counts"]["invoices"])
        log(
            f"sandbox at {sandbox.url} holds {invoices:,} invoices, {warm['cached_pages']:,} "
            f"pages rendered in {warm['render_seconds']:.1f} s"
        )
        runs: list[dict[str, Any]] = []
        small: list[dict[str, Any]] = []
        fmt = ["--file-format", dlt_format] if dlt_format else []
        # Rotate which side goes first, so drift hits every side alike.
        for round_number in range(repeats):
            order = SIDES[round_number % 3 :] + SIDES[: round_number % 3]
            for side in order:
                run = measured_run(sandbox, side, *(fmt if side == "dlt" else []))
                runs.append(run)
                log(f"1M   round {round_number + 1}: {describe(run)}")
        for round_number in range(repeats):
            run = measured_run(sandbox, "ours", "--max-pages", str(SMALL_PAGES))
            small.append(run)
            log(f"100k round {round_number + 1}: {describe(run)}")
        profiled = None
        if profile:
            # One more 1M run of our side under pyinstrument: where the time goes. Kept out of
            # the medians (the sampling costs a little); its session is saved beside the results.
            PROFILE.parent.mkdir(parents=True, exist_ok=True)
            profiled = measured_run(sandbox, "ours", "--profile", str(PROFILE))
            profiled["profile"] = profile_summary(PROFILE)
            log(f"1M   profiled: {describe(profiled)}")
        after = sandbox.stats()
    return {
        "invoices": invoices,
        "customers": customers,
        "page_size": PAGE_SIZE,
        "warm_up": warm,
        "runs": runs,
        "small_runs": small,
        "profiled_run": profiled,
        "sandbox_requests": after["requests"][ENDPOINT] - before["requests"][ENDPOINT],
        "sandbox_rate_limited": after["rate_limited"] - before["rate_limited"],
        "dlt_settings": DLT_SETTINGS,
        "dlt_file_format": dlt_format or "default",
        "machine": machine(),
    }


def machine() -> dict[str, Any]:
    import duckdb

    try:
        import dlt

        dlt_version = dlt.__version__
    except ImportError:
        dlt_version = "not installed"
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "duckdb": duckdb.__version__,
        "dlt": dlt_version,
        "date": datetime.now().strftime("%Y-%m-%d"),
    }


def count_errors(result: dict[str, Any]) -> list[str]:
    """Every run whose table does not hold exactly the records the sandbox has (or, for the
    100k runs, the records its pages hold), or whose load set records aside."""
    invoices = result["invoices"]
    profiled = [result["profiled_run"]] if result.get("profiled_run") else []
    expected = [(run, invoices) for run in result["runs"] + profiled] + [
        (run, min(invoices, SMALL_PAGES * PAGE_SIZE)) for run in result["small_runs"]
    ]
    errors = []
    for run, want in expected:
        got = {"records extracted": run["records"], "rows in the table": run["rows_in_table"]}
        if "rows_loaded" in run:
            got["rows loaded"] = run["rows_loaded"]
        wrong = {what: count for what, count in got.items() if count != want}
        if wrong or run.get("dead_letters"):
            errors.append(
                f"{run['side']} run of {want:,} records: "
                + ", ".join(f"{what} {count:,}" for what, count in wrong.items())
                + (f", {run['dead_letters']:,} dead letters" if run.get("dead_letters") else "")
            )
    # Our side and the bare loop must have fetched the same pages, byte for byte in size.
    fetched = {(run["pages"], run["bytes"]) for run in result["runs"] if run["side"] != "dlt"}
    if len(fetched) > 1:
        errors.append(f"our side and the bare loop fetched different pages: {sorted(fetched)}")
    return errors


def analyse(result: dict[str, Any]) -> dict[str, Any]:
    invoices = result["invoices"]
    ours = [r for r in result["runs"] if r["side"] == "ours"]
    theirs = [r for r in result["runs"] if r["side"] == "dlt"]
    bare = [r for r in result["runs"] if r["side"] == "bare"]
    small = result["small_runs"]
    small_expected = min(invoices, SMALL_PAGES * PAGE_SIZE)

    def median(runs: list[dict[str, Any]], key: str) -> float:
        return statistics.median(float(r[key]) for r in runs)

    def median_rss(runs: list[dict[str, Any]], key: str = "self") -> float:
        return statistics.median(
            float(r["peak_rss_mb"][key] if key == "self" else r[key]) for r in runs
        )

    counts_ok = not count_errors(result)
    speedup = median(ours, "rate") / median(theirs, "rate")
    bare_ratio = median(ours, "rate") / median(bare, "rate")
    rss_ratio = median_rss(ours) / median_rss(small)
    sandbox_cpu = median(ours, "sandbox_cpu_seconds")
    return {
        "ours_rate": median(ours, "rate"),
        "dlt_rate": median(theirs, "rate"),
        "bare_rate": median(bare, "rate"),
        "bare_ratio": bare_ratio,
        "bare_met": bare_ratio >= BARE_TARGET,
        "bare_cpu": median(bare, "cpu_seconds"),
        "ours_seconds": median(ours, "seconds"),
        "dlt_seconds": median(theirs, "seconds"),
        "ours_cpu": median(ours, "cpu_seconds"),
        "dlt_cpu": median(theirs, "cpu_seconds"),
        "ours_rss": median_rss(ours),
        "dlt_rss": median_rss(theirs),
        "small_rss": median_rss(small),
        "ours_extract_rss": median_rss(ours, "extract_peak_rss_mb"),
        "small_extract_rss": median_rss(small, "extract_peak_rss_mb"),
        "small_records": small_expected,
        "sandbox_cpu": sandbox_cpu,
        "speedup": speedup,
        "rss_ratio": rss_ratio,
        "counts_ok": counts_ok,
        "speed_met": speedup >= SPEED_TARGET,
        "rss_met": rss_ratio <= RSS_TARGET,
    }


# Fixed text carries no figure: every figure in the README comes from a measurement of this run
# (the before/after measurements behind past changes are in their commit messages).
NOTES = """\
**Our side** is `materialize_raw`'s path without Dagster, logging as in production (one JSON
line per request): `extract_to_landing` (the engine, 4 requests in flight, every page gzipped
into the landing zone, then its manifest line) with a `Stager` following the manifest, which
stages landed pages into its own DuckDB instance in chunks and observes their schema on the
other core while the extraction goes on; then `Stager.load` attaches the warehouse and runs
`load_attempt` in replace mode on what was staged (one transaction: check the contract, dedupe
on the primary key, insert with lineage columns and an md5 per record).
**dlt's side** is `rest_api_source` with the same URL, `X-API-Key` header, offset paginator
(`total_path: total`), `data_selector: data`, `write_disposition: replace`, into DuckDB,
parquet loader files (of dlt's loader file formats for DuckDB, the fastest on this workload;
its default, insert_values, is the slowest), dlt's defaults otherwise. rest_api follows the
paginator one page after the other (one resource: `parallelized` has nothing to overlap).
**The bare loop** is the ceiling of the transport: the same client stack without the engine
(`SourceClient`'s transport and connection pool, the same pages, 4 in flight), bodies
counted, not parsed, landed or loaded.

**Memory.** The extraction streams: its peak RSS does not grow with the records (the figure in
brackets, which includes the staging alongside it). Staging and the load hold DuckDB to
`load_memory_mb` (the warehouse resource's setting): the staged partition spills to a temp
folder beyond it, so memory does not grow with the partition. DuckDB's JSON reader takes a
buffer of twice `maximum_object_size` per reading thread, so staging reads with one thread per
that much of the limit; the rest of the load uses every thread. A load that still runs out
raises `LoadMemoryError` naming the setting, after rolling back (tests/unit/test_landing.py).
dlt streams records into parquet files and DuckDB reads those at the end.
"""


def sandbox_note(result: dict[str, Any], a: dict[str, Any]) -> str:
    """Why the sandbox serves cached pages: rendering them would set the pace for both sides."""
    warm = result["warm_up"]
    render_rate = result["invoices"] / warm["render_cpu_seconds"]
    return (
        "**The sandbox serves pre-rendered pages.** It builds every record in Python on one "
        f"thread: rendering them took {warm['render_cpu_seconds']:.0f} s of its CPU "
        f"in the warm-up ({render_rate:,.0f} records/s), which would cap any client below "
        "that rate and make the ratio measure the sandbox. The warm-up "
        f"therefore rendered all {warm['cached_pages']:,} pages once into the sandbox's page "
        f"cache (`--billing-page-cache-mb`, {warm['cached_mb']:.0f} MB); every side then gets "
        "the same bytes for the same requests, and serving them cost the sandbox "
        f"{a['sandbox_cpu']:.1f} s of CPU per run. All sides share the 2 cores with it. "
        "Wall times on a shared VM vary between identical runs (CPU steal): compare "
        "runs of the same round, and the CPU columns."
    )


def report(result: dict[str, Any]) -> str:
    a = analyse(result)
    m = result["machine"]
    yes = {True: "**met**", False: "**not met**"}
    lines = [
        SECTION_TITLE,
        "",
        f"Command: `{COMMAND}` (or `make bench-raw`), {len(result['small_runs'])} round(s), "
        f"about {result['elapsed_minutes']:.0f} minutes. Machine: {m['cpu']}, {m['cores']} "
        f"cores, Python {m['python']}, {m['os']}, DuckDB {m['duckdb']}, dlt {m['dlt']}; "
        f"{m['date']}. The machine may be shared with other work: the load average (1 "
        "minute, before->after each run) is in the table.",
        "",
        f"Workload: `GET /v1/invoices` of the billing sandbox (`--customers "
        f"{result['customers']:,}`, seed 42, `--billing-rate-limit {UNLIMITED_QUOTA:,}`, in "
        f"its own process): **{result['invoices']:,} invoices** per `/_sandbox/stats`, pages "
        f"of {result['page_size']}, no client rate limit. Each run is a fresh child process; "
        "wall time runs from the first request to the committed load (imports excluded); "
        "peak RSS is the child's `ru_maxrss` (in brackets: at the end of the extraction, "
        "staging included); the "
        "row count is read back from each DuckDB file.",
        "",
        "| run | records | wall s | records/s | client CPU s | sandbox CPU s | "
        "peak RSS MB | rows in DuckDB | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in result["runs"] + result["small_runs"]:
        label = {"ours": "ours", "bare": "bare loop"}.get(run["side"]) or (
            f"dlt ({run['file_format']})"
        )
        rss = f"{run['peak_rss_mb']['self']:.0f}"
        if run["side"] == "ours":
            rss += f" ({run['extract_peak_rss_mb']:.0f})"
        rows = "-" if run["side"] == "bare" else f"{run['rows_in_table']:,}"
        lines.append(
            f"| {label} | {run['records']:,} | {run['seconds']:.1f} | {run['rate']:,.0f} | "
            f"{run['cpu_seconds']:.1f} | {run['sandbox_cpu_seconds']:.1f} | {rss} | "
            f"{rows} | {run['loadavg']} |"
        )
    ours = [r for r in result["runs"] if r["side"] == "ours"]
    theirs = [r for r in result["runs"] if r["side"] == "dlt"]

    def phase(runs: list[dict[str, Any]], key: str) -> str:
        return f"{statistics.median(r[key] for r in runs):.1f}"

    extract_rate = result["invoices"] / statistics.median(r["extract_seconds"] for r in ours)
    width = len(SIDES)
    groups = [result["runs"][i : i + width] for i in range(0, len(result["runs"]), width)]
    rounds = []
    for number, group in enumerate(groups, start=1):
        by_side = {run["side"]: run for run in group}
        if set(SIDES) <= set(by_side):
            rounds.append(
                f"round {number} {by_side['ours']['rate'] / by_side['dlt']['rate']:.2f}x dlt, "
                f"{by_side['ours']['rate'] / by_side['bare']['rate']:.2f}x bare"
                f" (load {group[0]['loadavg'].split('->')[0]}->"
                f"{group[-1]['loadavg'].split('->')[1]})"
            )
    lines += [
        "",
        f"Ours within each round (its runs back to back): {'; '.join(rounds)}.",
        "",
        f"Phases (medians, s): ours extract+land {phase(ours, 'extract_seconds')} (alone, "
        f"{extract_rate:,.0f} rec/s = {extract_rate / a['bare_rate']:.2f}x the bare loop), load "
        f"{phase(ours, 'load_seconds')}; dlt extract {phase(theirs, 'extract_seconds')}, "
        f"normalize {phase(theirs, 'normalize_seconds')}, load {phase(theirs, 'load_seconds')}."
        f" Records per client CPU-second: ours {result['invoices'] / a['ours_cpu']:,.0f}, "
        f"dlt {result['invoices'] / a['dlt_cpu']:,.0f} "
        f"({a['dlt_cpu'] / a['ours_cpu']:.1f}x).",
        "",
        "| target | result | |",
        "|---|---|---|",
        f"| ours >= {SPEED_TARGET:g}x dlt's records/s | {a['ours_rate']:,.0f} vs "
        f"{a['dlt_rate']:,.0f} rec/s = {a['speedup']:.2f}x | {yes[a['speed_met']]} |",
        f"| ours >= {BARE_TARGET:g}x a bare loop of the same transport on the same pages | "
        f"{a['ours_rate']:,.0f} vs {a['bare_rate']:,.0f} rec/s = {a['bare_ratio']:.2f}x "
        f"(the bare loop's client CPU: {a['bare_cpu']:.1f} s) | {yes[a['bare_met']]} |",
        f"| our peak RSS at 1M <= {RSS_TARGET:g}x at {a['small_records']:,} | "
        f"{a['ours_rss']:.0f} vs {a['small_rss']:.0f} MB = {a['rss_ratio']:.2f}x "
        f"(until the last page landed: {a['ours_extract_rss']:.0f} vs "
        f"{a['small_extract_rss']:.0f} MB)"
        f" | {yes[a['rss_met']]} |",
        f"| every table holds exactly the expected rows | "
        f"{'all equal' if a['counts_ok'] else 'MISMATCH'} | {yes[a['counts_ok']]} |",
        "",
        f"Sandbox: {result['sandbox_requests']:,} invoice requests served, "
        f"{result['sandbox_rate_limited']} rate-limited.",
        "",
        sandbox_note(result, a),
        "",
        *profile_lines(result),
        NOTES,
    ]
    return "\n".join(lines)


def profile_lines(result: dict[str, Any]) -> list[str]:
    """Where the time of the profiled 1M run went, from its pyinstrument session."""
    run = result.get("profiled_run")
    if not run:
        return []
    summary = run["profile"]
    wall = summary["seconds"]

    def rows(pairs: list[list[Any]]) -> list[str]:
        return [f"| {name} | {seconds:.2f} | {seconds / wall:.0%} |" for name, seconds in pairs]

    return [
        f"**Where the time goes** (`pyinstrument`, one more {run['records']:,}-record run of "
        f"our side, left out of the medians: {run['seconds']:.1f} s from the first request "
        "to the committed load, "
        f"extract+land {run['extract_seconds']:.1f} s, load {run['load_seconds']:.1f} s, "
        f"load average {run['loadavg']}). The profile samples the main thread every 1 ms, "
        f"wall clock: {wall:.1f} s in all (the spec's validation and set-up included), "
        f"{summary['cpu_seconds']:.1f} s of it on a CPU. The landing writer's thread (gzip, "
        "sha256, the manifest) and the stager's (DuckDB staging) are not in it: where the main "
        "thread waits for them, or for the sandbox, it shows as waiting; a C call that "
        "releases the GIL (a log line's write, a socket's send, a queue's put) also counts the "
        "time the thread then waits to get the GIL back from those threads. `_load` and "
        "`_mark_violations` are the load's transaction in DuckDB (its own threads, on both "
        "cores). Session: "
        f"`{PROFILE.relative_to(REPO)}` (`pyinstrument --load {PROFILE.relative_to(REPO)}`).",
        "",
        "| where (self time; C calls count for their Python caller) | s | share |",
        "|---|---:|---:|",
        *rows(summary["groups"]),
        "",
        "| function (self time) | s | share |",
        "|---|---:|---:|",
        *rows(summary["functions"]),
        "",
    ]


def write_readme(section: str) -> None:
    common.write_readme({"raw-load": section})


# --- command line --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks.raw_load_benchmark", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="mode")
    bench = sub.add_parser("bench", help="the whole benchmark (the default)")
    bench.add_argument("--repeats", type=int, default=3)
    bench.add_argument("--customers", type=int, default=MILLION_CUSTOMERS)
    bench.add_argument("--dlt-file-format", default=DLT_FILE_FORMAT)
    bench.add_argument(
        "--readme",
        action="store_true",
        help="rewrite this benchmark's section of benchmarks/README.md",
    )
    bench.add_argument(
        "--from-results",
        action="store_true",
        help=f"measure nothing: report {RESULTS.relative_to(REPO)} again",
    )
    bench.add_argument(
        "--no-profile", action="store_true", help="skip the profiled 1M run of our side"
    )
    for side in SIDES:
        child = sub.add_parser(side, help=f"one measured {side} run (used by `bench`)")
        child.add_argument("--url", required=True)
        child.add_argument("--workdir", type=Path, required=True)
        if side == "ours":
            child.add_argument("--max-pages", type=int, default=None)
            child.add_argument("--profile", type=Path, default=None, help="pyinstrument session")
        elif side == "dlt":
            child.add_argument("--file-format", default=None)
    arguments = sys.argv[1:] if argv is None else argv
    if not arguments or arguments[0].startswith("-"):
        arguments = ["bench", *arguments]  # `bench` is the default sub-command
    args = parser.parse_args(arguments)

    if args.mode == "ours":
        from integration_platform.logs import configure_logging

        configure_logging()  # as in production: JSON lines (one per request) on stderr
        if args.profile is None:
            print(json.dumps(ours_run(args.url, args.workdir, args.max_pages)))
            return 0
        from pyinstrument import Profiler

        # What ours_run imports, imported before the profile starts: it profiles the run.
        import integration_platform.extraction.state
        import integration_platform.landing.ingest
        import integration_platform.landing.loader
        import integration_platform.landing.zone  # noqa: F401

        profiler = Profiler(interval=0.001, async_mode="disabled")  # wall clock, as it runs
        with profiler:
            run = ours_run(args.url, args.workdir, args.max_pages)
        assert profiler.last_session is not None
        profiler.last_session.save(str(args.profile))
        print(json.dumps(run))
        return 0
    if args.mode == "bare":
        print(json.dumps(asyncio.run(bare_run(args.url))))
        return 0
    if args.mode == "dlt":
        os.environ.update({k: v for k, v in DLT_SETTINGS.items() if k not in os.environ})
        print(json.dumps(dlt_run(args.url, args.workdir, args.file_format)))
        return 0

    started = time.monotonic()
    if args.from_results:
        result = json.loads(RESULTS.read_text())
    else:
        result = measure(
            args.repeats, args.customers, args.dlt_file_format, profile=not args.no_profile
        )
        result["elapsed_minutes"] = (time.monotonic() - started) / 60
        result["analysis"] = analyse(result)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2))
    section = report(result)
    print(section)
    log(f"done in {time.monotonic() - started:.0f} s; results in {RESULTS.relative_to(REPO)}")
    # A wrong row count fails the command, and its figures do not replace the README's.
    common.require(not count_errors(result), "; ".join(count_errors(result)))
    if args.readme:
        write_readme(section)
        log(f"rewrote the raw-load section of {README.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
