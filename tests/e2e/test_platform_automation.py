"""Fresh marts with no one acting, on the real platform (`integration-platform up`: the Dagster
webserver and daemon, the sandbox, the webhook receiver, the stream consumer, the API).

One platform serves the whole module. crm's schedule ticks every minute, so a scheduled raw
day lands within the first minutes; the webhook sender pushes billing events all along. The
tests wait on what the daemon does, with deadlines that hold on a loaded 2-core machine.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dagster import AssetKey, DagsterRunStatus

from integration_platform.automation.marts import max_wait_cron
from integration_platform.run_kinds import AUTOMATION, KIND_TAG, SCHEDULED, WEBHOOK_DRAIN
from tests.e2e.platform import Platform, eventually
from tests.e2e.readme_shell import Workdir

DIM_CUSTOMERS = AssetKey(["marts", "dim_customers"])
YESTERDAY = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
# A scheduled day: the schedule ticks within a minute, the raw run and the dbt build after it
# take minutes on a busy 2-core machine.
REFRESH_SECONDS = 1200

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3000)]


@pytest.fixture(scope="module")
def platform(shared_platform: Workdir) -> Iterator[Platform]:
    """The session's platform (tests/e2e/conftest.py), whose crm schedule ticks every minute."""
    shared = Platform.of_workdir(shared_platform)
    # One tick is enough (each tick requests the day again): stop crm's schedules once it
    # has ticked, as a user would in the UI.
    eventually(
        lambda: shared.runs(**{KIND_TAG: SCHEDULED}),
        timeout=REFRESH_SECONDS,
        what="crm's schedule to tick",
        platform=shared,
    )
    for schedule in ("crm_daily_schedule", "crm_reference_schedule"):
        shared.stop_schedule(schedule)
    yield shared
    shared.instance.dispose()


def _end_time(platform: Platform, run_id: str) -> float:
    record = platform.instance.get_run_record_by_id(run_id)
    assert record is not None and record.end_time is not None
    return float(record.end_time)


def _built_after(platform: Platform, after: float) -> Any:
    """The latest materialization of dim_customers, if an automation run made it after
    `after` and succeeded."""
    event = platform.instance.get_latest_materialization_event(DIM_CUSTOMERS)
    if event is None or event.timestamp <= after:
        return None
    run = platform.instance.get_run_by_id(event.run_id)
    if run is None or run.status != DagsterRunStatus.SUCCESS:
        return None
    return event


def _build_log(platform: Platform, run_id: str) -> Path | None:
    """The dbt.log of the build in run `run_id`, in its own target folder (dbt_assets.py)."""
    target = platform.data.parent / "dbt_project" / "target"
    return next((f / "dbt.log" for f in target.glob(f"dbt_build-{run_id[:7]}-*")), None)


def _published(platform: Platform) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(platform.data / "warehouse.published.duckdb"), read_only=True)


def test_a_scheduled_raw_day_refreshes_the_marts_with_no_one_acting_when_it_lands(
    platform: Platform,
) -> None:
    def scheduled_crm() -> Any:
        runs = platform.runs(DagsterRunStatus.SUCCESS, **{KIND_TAG: SCHEDULED})
        day = [r for r in runs if r.tags.get("dagster/partition", "").endswith(YESTERDAY)]
        reference = [r for r in runs if r.tags.get("dagster/partition") == "demo"]
        return (day[0], reference[0]) if day and reference else None

    day, reference = eventually(
        scheduled_crm,
        timeout=REFRESH_SECONDS,
        what=f"crm's schedules to land {YESTERDAY} and the reference data",
        platform=platform,
        every=5,
    )
    assert (day.job_name, reference.job_name) == ("crm_daily", "crm_reference")
    ended = max(_end_time(platform, day.run_id), _end_time(platform, reference.run_id))
    built = eventually(
        lambda: _built_after(platform, ended),
        timeout=REFRESH_SECONDS,
        what="the automation to rebuild the marts after the scheduled runs",
        platform=platform,
        every=5,
    )
    run = platform.instance.get_run_by_id(built.run_id)
    assert run is not None
    assert run.tags[KIND_TAG] == AUTOMATION  # Dagster's automation_sensor requested it
    assert run.tags.get("dagster/sensor_name") == "automation_sensor"
    # The marts read what landed: the build's summary counts every raw row the schedule
    # loaded. (The sandbox's records are dated 2025, so yesterday's day is empty; crm's
    # reference data, its companies, is not.)
    with _published(platform) as warehouse:
        raw = warehouse.execute(
            "select count(*) from raw.crm__companies where _client_id = 'demo'"
        ).fetchall()
        summary = warehouse.execute(
            "select rows from marts.raw_load_summary where source = 'crm' "
            "and endpoint = 'companies' and client_id = 'demo'"
        ).fetchall()
        day_rows = warehouse.execute(
            "select count(*) from raw.crm__contacts where _client_id = 'demo' "
            "and _partition_key = ?",
            [YESTERDAY],
        ).fetchall()
    assert raw[0][0] > 0 and summary == raw
    assert day_rows == [(0,)]


def test_one_dbt_build_at_a_time_and_each_serves_every_landing_before_it(
    platform: Platform,
) -> None:
    """The webhook drain lands billing events all along: each drain is followed by a build
    that started after it, and no two builds ever overlapped."""
    drains = eventually(
        lambda: platform.runs(DagsterRunStatus.SUCCESS, **{KIND_TAG: WEBHOOK_DRAIN}),
        timeout=REFRESH_SECONDS,
        what="a webhook drain run",
        platform=platform,
        every=5,
    )
    drained = min(_end_time(platform, run.run_id) for run in drains)
    eventually(
        lambda: _built_after(platform, drained),
        timeout=REFRESH_SECONDS,
        what="a build after the webhook drain",
        platform=platform,
        every=5,
    )
    builds = sorted(
        (
            platform.instance.get_run_record_by_id(run.run_id)
            for run in platform.runs(**{KIND_TAG: AUTOMATION})
        ),
        key=lambda record: record.start_time or 0,  # type: ignore[union-attr]
    )
    finished = [b for b in builds if b is not None and b.end_time is not None]
    assert finished
    for before, after in itertools.pairwise(finished):
        assert after.start_time is not None and before.end_time is not None
        assert after.start_time >= before.end_time - 1, "two dbt builds overlapped"
    failed = [
        b.dagster_run.run_id for b in finished if b.dagster_run.status != DagsterRunStatus.SUCCESS
    ]
    assert not failed, f"automation builds failed: {failed}\n{platform.log_tail()}"
    # Every build after the warehouse's first starts from the partial parse the build before it
    # kept (dbt_assets.PARTIAL_PARSE): none parses the whole project again. (Only the newest
    # builds' folders are kept, so some may be gone.)
    logs = [_build_log(platform, b.dagster_run.run_id) for b in finished[1:]]
    kept = [log for log in logs if log is not None]
    assert kept or len(finished) < 2, "no build's dbt.log was left to read"
    whole = [log for log in kept if "Unable to do partial parsing" in log.read_text()]
    assert not whole, f"builds parsed the whole dbt project again: {whole}"


def test_a_stream_flush_is_reported_to_dagster_and_refreshes_the_marts_when_it_lands(
    platform: Platform,
) -> None:
    """The stream consumer loads events outside any run; its reports (runless
    materializations of the raw asset) count as updates, so a build follows."""
    events = AssetKey(["raw", "analytics", "events"])

    def reported() -> Any:
        records = platform.instance.fetch_materializations(events, limit=100).records
        runless = [r for r in records if not r.run_id]
        return min(runless, key=lambda r: r.timestamp) if runless else None

    report = eventually(
        reported,
        timeout=REFRESH_SECONDS,
        what="a stream report of raw/analytics/events",
        platform=platform,
        every=5,
    )
    assert report.partition_key.startswith("demo|")
    materialization = report.event_log_entry.asset_materialization
    assert materialization is not None and materialization.metadata["rows"].value > 0  # type: ignore[operator]
    eventually(
        lambda: _built_after(platform, report.timestamp),
        timeout=REFRESH_SECONDS,
        what="a build after the stream report",
        platform=platform,
        every=5,
    )


SYNC_DAYS = ("2025-06-01", "2025-06-02")
SYNC_SECONDS = 1500
# How long two syncs take from request to build on a loaded machine, at most.
SYNCS_TO_BUILD_SECONDS = 180


def _clear_of_the_wait_cap() -> None:
    """Wait out a half-hour mark that is near: at that mark a build stops waiting for raw
    loads still running (automation/marts.py), so syncs that straddle it may not share one."""
    assert max_wait_cron() == "*/30 * * * *"  # the platform runs with the default marks
    now = time.time()
    to_mark = 1800 - now % 1800
    if to_mark < SYNCS_TO_BUILD_SECONDS:
        time.sleep(to_mark + 10)


def test_two_clients_syncs_run_at_once_share_one_build_and_land_exact_rows_when_requested(
    platform: Platform,
) -> None:
    with platform.api_client() as api:
        created = api.post(
            "/clients",
            json={
                "id": "globex",
                "name": "Globex",
                "credentials": platform.tenant_credentials(1),
            },
        )
        assert created.status_code == 201, created.text
        _clear_of_the_wait_cap()
        # crm alone (a run of its days, one of its reference data, per client): enough to
        # show the builds shared, and cheap enough for the suite.
        body = {"sources": ["crm"], "start_date": SYNC_DAYS[0], "end_date": SYNC_DAYS[1]}
        with ThreadPoolExecutor(2) as pool:
            answers = list(
                pool.map(
                    lambda client: api.post(f"/integrations/{client}/sync", json=body),
                    ["demo", "globex"],
                )
            )
        assert [a.status_code for a in answers] == [202, 202], [a.text for a in answers]
        syncs = {a.json()["client_id"]: a.json()["id"] for a in answers}

        def ended() -> dict[str, Any] | None:
            states = {
                client: api.get(f"/integrations/{client}/syncs/{sync_id}").json()
                for client, sync_id in syncs.items()
            }
            done = all(s["state"] in ("succeeded", "failed") for s in states.values())
            return states if done else None

        states = eventually(
            ended, timeout=SYNC_SECONDS, what="both syncs to end", platform=platform, every=5
        )
    assert {c: s["state"] for c, s in states.items()} == {
        "demo": "succeeded",
        "globex": "succeeded",
    }, {c: s.get("error") for c, s in states.items()}
    # One dbt build served both: the raw loads that landed together waited for each other.
    builds = {s["transform_run"]["run_id"] for s in states.values()}
    assert len(builds) == 1, states
    # Exact rows: what each client's raw runs reported loading is what the warehouse holds
    # for those days, and each client's customers are its own.
    for client, sync_id in syncs.items():
        reported = 0
        for run in platform.runs(**{"integration_platform/sync_id": sync_id}):
            # A range run reports its totals once, on each of its partitions' events.
            totals = [
                int(event.asset_materialization.metadata["rows_loaded"].value)  # type: ignore[arg-type]
                for event in platform.instance.all_logs(run.run_id)
                if event.asset_materialization
                and event.asset_materialization.asset_key.path == ["raw", "crm", "contacts"]
            ]
            reported += totals[0] if totals else 0
        with _published(platform) as warehouse:
            ((held,),) = warehouse.execute(
                "select count(*) from raw.crm__contacts where _client_id = ? "
                "and _partition_key in (?, ?)",
                [client, *SYNC_DAYS],
            ).fetchall()
            ((foreign,),) = warehouse.execute(
                "select count(*) from marts.dim_customers d join marts.dim_customers o "
                "on d.customer_id = o.customer_id and d.client_id <> o.client_id "
                "where d.client_id = ?",
                [client],
            ).fetchall()
        assert reported > 0 and held == reported, (client, reported, held)
        assert foreign == 0


def test_a_sync_whose_raw_run_fails_says_why_in_plain_words_when_read(
    platform: Platform,
) -> None:
    credentials = platform.tenant_credentials(1)
    credentials["crm"]["CRM_CLIENT_SECRET"] = "not-the-secret-" + "x" * 16
    with platform.api_client() as api:
        created = api.post(
            "/clients",
            json={
                "id": "wrongkey",
                "name": "Wrong Key",
                "credentials": {"crm": credentials["crm"]},
            },
        )
        assert created.status_code == 201, created.text
        sync = api.post(
            "/integrations/wrongkey/sync",
            json={"sources": ["crm"], "start_date": SYNC_DAYS[0], "end_date": SYNC_DAYS[0]},
        )
        assert sync.status_code == 202, sync.text
        path = f"/integrations/wrongkey/syncs/{sync.json()['id']}"
        state = eventually(
            lambda: (s := api.get(path).json())["state"] in ("succeeded", "failed") and s,
            timeout=SYNC_SECONDS,
            what="the sync with a wrong secret to end",
            platform=platform,
            every=3,
        )
    assert state["state"] == "failed"
    error = state["error"]
    assert "crm" in error and ("401" in error or "credentials" in error.lower()), error
    assert "Traceback" not in error and 'File "' not in error
    assert "not-the-secret" not in error  # the wrong secret is still a secret


def test_a_sync_whose_run_is_canceled_says_so_and_the_run_ends_canceled(
    platform: Platform,
) -> None:
    with platform.api_client() as api:
        sync = api.post(
            "/integrations/globex/sync",
            json={"sources": ["billing"], "start_date": "2025-07-01", "end_date": "2025-07-07"},
        )
        assert sync.status_code == 202, sync.text
        path = f"/integrations/globex/syncs/{sync.json()['id']}"
        runs = platform.runs(**{"integration_platform/sync_id": sync.json()["id"]})
        assert runs
        for run in runs:
            # As the UI's Terminate button; a run that is STARTING cannot be yet: try again.
            eventually(
                lambda run_id=run.run_id: (
                    platform.graphql(
                        """mutation Stop($id: String!) {
                         terminateRun(runId: $id) { __typename } }""",
                        {"id": run_id},
                    )["terminateRun"]["__typename"]
                    == "TerminateRunSuccess"
                ),
                timeout=120,
                what="Dagster to terminate the sync's run",
                platform=platform,
                every=1,
            )
        state = eventually(
            lambda: (s := api.get(path).json())["state"] in ("succeeded", "failed") and s,
            timeout=SYNC_SECONDS,
            what="the canceled sync to end",
            platform=platform,
            every=3,
        )
    assert state["state"] == "failed" and "cancel" in state["error"], state
    statuses = {platform.instance.get_run_by_id(r.run_id).status for r in runs}  # type: ignore[union-attr]
    assert statuses <= {DagsterRunStatus.CANCELED, DagsterRunStatus.SUCCESS}, statuses
    assert DagsterRunStatus.CANCELED in statuses


def test_a_mart_column_carries_its_lineage_back_to_staging_when_read_from_the_instance(
    platform: Platform,
) -> None:
    eventually(
        lambda: platform.instance.get_latest_materialization_event(DIM_CUSTOMERS),
        timeout=REFRESH_SECONDS,
        what="a build of the marts",
        platform=platform,
        every=5,
    )
    # Walk dagster/column_lineage from dim_customers.email upstream, asset by asset.
    frontier = [(DIM_CUSTOMERS, "email")]
    seen: set[tuple[AssetKey, str]] = set()
    while frontier:
        key, column = frontier.pop()
        if (key, column) in seen:
            continue
        seen.add((key, column))
        event = platform.instance.get_latest_materialization_event(key)
        if event is None or event.asset_materialization is None:
            continue
        metadata = event.asset_materialization.metadata
        lineage = metadata.get("dagster/column_lineage")
        if lineage is None:
            continue
        for dep in lineage.value.deps_by_column.get(column, []):  # type: ignore[attr-defined]
            frontier.append((dep.asset_key, dep.column_name))
    layers = {key.path[0] for key, _ in seen}
    assert {"marts", "intermediate", "staging"} <= layers, sorted(seen)
    schema = platform.instance.get_latest_materialization_event(DIM_CUSTOMERS)
    assert schema is not None and schema.asset_materialization is not None
    columns = schema.asset_materialization.metadata["dagster/column_schema"].value
    types = {c.name: c.type for c in columns.columns}  # type: ignore[attr-defined]
    assert "char" in types["email"].lower()  # as DuckDB names it: character varying(256)

    def counted() -> tuple[Any, Any] | None:
        """The row count the latest build reported, and the published copy's, read with no
        build in between."""
        before = platform.instance.get_latest_materialization_event(DIM_CUSTOMERS)
        with _published(platform) as warehouse:
            held = warehouse.execute("select count(*) from marts.dim_customers").fetchall()
        after = platform.instance.get_latest_materialization_event(DIM_CUSTOMERS)
        if before is None or after is None or before.timestamp != after.timestamp:
            return None
        assert after.asset_materialization is not None
        return after.asset_materialization.metadata["dagster/row_count"].value, held[0][0]

    reported, held = eventually(
        counted, timeout=REFRESH_SECONDS, what="a quiet moment between builds", every=3
    )
    assert reported == held and held > 0  # (the syncs above loaded customers)
