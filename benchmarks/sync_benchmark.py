"""A client's sync, end to end on the real platform (`integration-platform up`: the Dagster
daemon, the sandbox, the API), from POST to succeeded.

1. a scheduled raw day → refreshed marts with no one acting: crm's schedule ticks every
   minute here; the lag is from the scheduled run's end to the end of the build after it;
2. `--rounds` single syncs of one client-week (the demo client), one after the other: wall
   seconds from POST to `succeeded`, split into raw runs (POST → last raw run ended), the
   wait for the build, and the build;
3. `--clients` clients (the sandbox's tenants) syncing a week each at once: all succeed?
   total wall time, p50/p99 per sync, runs launched per sync, dbt builds for the batch.

    .venv/bin/python -m benchmarks.sync_benchmark [--rounds 3] [--clients 10] [--readme]
"""

from __future__ import annotations

import argparse
import os
import platform as machine
import statistics
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dagster import DagsterRunStatus

from benchmarks.common import busy, require, write_readme
from integration_platform.assets.partitions import PARTITION_TAG
from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.orchestration.instance import POSTGRES_URL_VARIABLE, PROFILE_VARIABLE
from integration_platform.orchestration.planner import SYNC_TAG
from integration_platform.run_kinds import AUTOMATION, KIND_TAG, SCHEDULED
from tests.e2e.platform import Platform, eventually, specs_copy, start_platform, stop_platform
from tests.postgres import scratch_database

WEEK = ("2025-06-01", "2025-06-07")
TIMEOUT = 1800


@dataclass
class Timed:
    client: str
    seconds: float
    raw_seconds: float
    wait_seconds: float
    build_seconds: float
    runs: int
    state: str
    # Each run's milestones from POST (`timeline`): where the seconds went.
    timelines: tuple[str, ...] = ()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def register(platform: Platform, client: str, tenant: int, tenants: int) -> None:
    credentials = platform.tenant_credentials(tenant, tenants)
    with platform.api_client() as api:
        answer = api.post(
            "/clients", json={"id": client, "name": client, "credentials": credentials}
        )
        assert answer.status_code in (200, 201), answer.text


def sync(platform: Platform, client: str, start: str, end: str) -> Timed:
    with platform.api_client() as api:
        posted = time.time()
        answer = api.post(
            f"/integrations/{client}/sync", json={"start_date": start, "end_date": end}
        )
        assert answer.status_code in (200, 202), answer.text
        sync_id = answer.json()["id"]

        def finished() -> dict | None:
            state = api.get(f"/integrations/{client}/syncs/{sync_id}").json()
            return state if state["state"] in ("succeeded", "failed", "canceled") else None

        state = eventually(finished, timeout=TIMEOUT, what=f"{client}'s sync", every=1)
    done = time.time()
    runs = platform.runs(**{SYNC_TAG: sync_id})
    ends = [platform.instance.get_run_record_by_id(r.run_id) for r in runs]
    raw_end = max((r.end_time or done) for r in ends if r is not None)

    def serving_build() -> Any:
        # The build created after the raw runs ended (what the API waits for); the API sees its
        # materializations before it publishes the copy and Dagster stamps the run's end.
        records = [
            platform.instance.get_run_record_by_id(r.run_id)
            for r in platform.runs(**{KIND_TAG: AUTOMATION})
        ]
        after = [b for b in records if b and b.create_timestamp.timestamp() > raw_end]
        first = min(after, key=lambda b: b.create_timestamp, default=None)
        return first if first is not None and first.end_time else None

    build = eventually(serving_build, timeout=120, what="the build that served the sync", every=1)
    build_start = build.start_time if build.start_time else raw_end
    timelines = tuple(
        timeline(platform, run.dagster_run.run_id, posted)
        for run in [*ends, build]
        if run is not None
    )
    for line in timelines:
        print(f"  {line}", flush=True)
    return Timed(
        client=client,
        seconds=done - posted,
        raw_seconds=raw_end - posted,
        wait_seconds=max(0.0, build_start - raw_end),
        build_seconds=build.end_time - build_start,
        runs=len(runs),
        state=state["state"],
        timelines=timelines,
    )


# The moments of a run worth seeing, by Dagster event type: where a sync's seconds go.
MILESTONES = {
    "PIPELINE_ENQUEUED": "queued",
    "PIPELINE_STARTING": "launched",
    "PIPELINE_START": "started",
    "STEP_START": "first step",
    "PIPELINE_SUCCESS": "ended",
    "PIPELINE_FAILURE": "failed",
}


def timeline(platform: Platform, run_id: str, since: float) -> str:
    """`tags: queued +1.2 s, launched +2.0 s, ...`: a run's milestones, from `since`."""
    record = platform.instance.get_run_record_by_id(run_id)
    tags = record.dagster_run.tags if record else {}
    seen: dict[str, float] = {"created": record.create_timestamp.timestamp()} if record else {}
    steps_ended = 0.0
    step_started: dict[str, float] = {}
    steps: list[str] = []
    for entry in platform.instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        name = MILESTONES.get(event.event_type_value)
        if name and name not in seen:
            seen[name] = entry.timestamp
        if event.event_type_value == "STEP_START" and event.step_key:
            step_started[event.step_key] = entry.timestamp
        if event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            steps_ended = max(steps_ended, entry.timestamp)
            began = step_started.get(event.step_key or "", entry.timestamp)
            steps.append(f"{event.step_key} {entry.timestamp - began:.1f} s")
    if steps_ended:
        seen["last step ended"] = steps_ended
    what = tags.get(KIND_TAG, "?") + "/" + tags.get("integration_platform/raw_part", "build")
    moments = sorted(seen.items(), key=lambda item: item[1])
    return (
        f"{what}: "
        + ", ".join(f"{name} +{at - since:.1f} s" for name, at in moments)
        + (f" (steps: {', '.join(steps)})" if steps else "")
    )


def scheduled_lag(platform: Platform) -> tuple[float, float]:
    """(seconds from the scheduled run's end to the build's end, the build's seconds)."""
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()

    def landed() -> object:
        runs = platform.runs(DagsterRunStatus.SUCCESS, **{KIND_TAG: SCHEDULED})
        return next((r for r in runs if r.tags.get(PARTITION_TAG, "").endswith(yesterday)), None)

    run = eventually(landed, timeout=TIMEOUT, what="the scheduled crm day", every=2)
    for schedule in ("crm_daily_schedule", "crm_reference_schedule"):  # one tick is enough
        platform.stop_schedule(schedule)
    record = platform.instance.get_run_record_by_id(run.run_id)
    assert record is not None and record.end_time is not None
    ended = record.end_time

    def built() -> object:
        for r in platform.runs(DagsterRunStatus.SUCCESS, **{KIND_TAG: AUTOMATION}):
            rec = platform.instance.get_run_record_by_id(r.run_id)
            if rec and rec.start_time and rec.end_time and rec.start_time >= ended - 1:
                return rec
        return None

    build = eventually(built, timeout=TIMEOUT, what="the build after the scheduled day", every=2)
    return build.end_time - ended, build.end_time - build.start_time


READING = (
    "Reading the timelines: each run pays a process start and a load of the definitions "
    "between `launched` and `started` (Dagster's code server starts every run in a fresh "
    "`spawn`ed interpreter, and importing dagster-dbt imports dbt-core). The build is "
    "created at the automation tick after the raw runs end, and queued once the daemon has "
    "written its planned events, one per model, seed and dbt test. The steps' seconds are in "
    "brackets; the build's one step is dagster-dbt's `dbt build` (its parse starts from the "
    "warehouse's last partial parse), then the events and metadata of every node, stored by "
    "the local profile's event log with its SQLite connections kept open "
    "(orchestration/sqlite_events.py). What would move it further: one run per sync holding "
    "raw and dbt (one process start and no tick, but two clients' syncs would no longer "
    "share a build); estimating entity resolution's weights only for clients whose records "
    "changed; one in-memory DuckDB for a run's stagers instead of one per partition."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--readme", action="store_true")
    parser.add_argument(
        "--profile",
        choices=["local", "production"],
        default="local",
        help="the Dagster instance profile; production: a scratch database on this machine's "
        "PostgreSQL (127.0.0.1:5432, user postgres), dropped at the end",
    )
    args = parser.parse_args()
    with instance_profile(args.profile) as instance_env:
        run(args, instance_env)


@contextmanager
def instance_profile(profile: str) -> Iterator[dict[str, str]]:
    """The variables that select the profile, for the platform and this process (set here until
    the end); production: a scratch database on this machine's PostgreSQL (tests/postgres.py),
    dropped at the end."""
    if profile == "local":
        yield {}
        return
    with scratch_database("bench") as database:
        url = database.set(drivername="postgresql+psycopg2")  # what dagster-postgres speaks
        variables = {
            PROFILE_VARIABLE: profile,
            POSTGRES_URL_VARIABLE: url.render_as_string(hide_password=False),
        }
        saved = {name: os.environ.get(name) for name in variables}
        os.environ.update(variables)  # this process reads the same instance
        try:
            yield variables
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def run(args: argparse.Namespace, instance_env: dict[str, str]) -> None:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sources = specs_copy(root / "sources", {"crm": "* * * * *"})
        started = time.monotonic()
        platform = start_platform(
            root,
            env={"SOURCES_PATH": str(sources)},
            extra_args=["--tenants", str(args.clients + 1)],
            instance_env=instance_env,
        )
        start_seconds = time.monotonic() - started
        try:
            lag, lag_build = scheduled_lag(platform)
            print(f"scheduled day -> marts: {lag:.0f} s (build {lag_build:.0f} s)", flush=True)
            singles = []
            for _ in range(args.rounds):
                singles.append(sync(platform, DEMO_CLIENT_ID, *WEEK))
                print(f"single sync: {singles[-1]}", flush=True)
            clients = [f"client{i:02d}" for i in range(1, args.clients + 1)]
            for tenant, client in enumerate(clients, start=1):
                register(platform, client, tenant, args.clients + 1)
            batch_started = time.time()
            with ThreadPoolExecutor(len(clients)) as pool:
                batch = list(pool.map(lambda c: sync(platform, c, *WEEK), clients))
            batch_seconds = time.time() - batch_started
            for timed in batch:
                print(f"batch sync: {timed}", flush=True)
            batch_builds = [
                r
                for r in platform.runs(**{KIND_TAG: AUTOMATION})
                if (rec := platform.instance.get_run_record_by_id(r.run_id))
                and rec.create_timestamp.timestamp() >= batch_started
            ]
        finally:
            stop_platform(platform)
    load_after = os.getloadavg()
    failed = [t for t in [*singles, *batch] if t.state != "succeeded"]
    require(not failed, f"{len(failed)} sync(s) did not succeed: {[t.state for t in failed]}")
    median = statistics.median
    times = [t.seconds for t in singles]
    profile_option = f" --profile {args.profile}" if args.profile != "local" else ""
    lines = [
        "## API sync: POST to succeeded, on the real platform",
        "",
        f"`make bench-sync` (`.venv/bin/python -m benchmarks.sync_benchmark --rounds "
        f"{args.rounds} --clients {args.clients}{profile_option} --readme`), "
        f"{datetime.now(UTC):%Y-%m-%d}, "
        f"{machine.machine()}, {os.cpu_count()} cores; load average {load_before[0]:.1f} "
        f"before, {load_after[0]:.1f} after ({busy([load_before[0], load_after[0]])}). "
        f"The platform took {start_seconds:.0f} s to answer. Dagster instance profile: "
        f"{args.profile}.",
        "",
        f"**A scheduled raw day → marts, no one acting:** the build after crm's scheduled "
        f"day ended {lag:.0f} s after it (the build itself: {lag_build:.0f} s).",
        "",
        f"**One client-week ({WEEK[0]} ... {WEEK[1]}, the demo client), {args.rounds} "
        f"rounds:** p50 **{median(times):.0f} s** from POST to succeeded (target: under 30 s).",
        "",
        "| round | state | total s | raw runs s | wait for the build s | build s | runs |",
        "|---:|---|---:|---:|---:|---:|---:|",
        *(
            f"| {i} | {t.state} | {t.seconds:.0f} | {t.raw_seconds:.0f} | {t.wait_seconds:.0f} "
            f"| {t.build_seconds:.0f} | {t.runs} |"
            for i, t in enumerate(singles, start=1)
        ),
        "",
        "Where the seconds went, per round: each run's milestones from the POST (Dagster's run "
        "records and event log; `days`/`reference` are the sync's raw runs, `build` the dbt "
        "build the automation launched after them):",
        "",
        *(f"- round {i}, {line}" for i, t in enumerate(singles, start=1) for line in t.timelines),
        "",
        f"**{args.clients} clients at once** (a week each): "
        f"{sum(t.state == 'succeeded' for t in batch)}/{len(batch)} succeeded; "
        f"total {batch_seconds:.0f} s; per sync p50 {median([t.seconds for t in batch]):.0f} s, "
        f"p99 {percentile([t.seconds for t in batch], 0.99):.0f} s; "
        f"{median([t.runs for t in batch]):.0f} runs launched per sync (its raw runs); "
        f"{len(batch_builds)} dbt build(s) for the batch.",
        "",
        READING,
    ]
    text = "\n".join(lines)
    print(text)
    if args.readme:
        write_readme({"bench-sync": text})


if __name__ == "__main__":
    main()
