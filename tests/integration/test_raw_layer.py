"""The raw layer end to end: Dagster materializes raw assets from the sandbox into DuckDB.

Each test builds its own resources on a temporary data dir, points the API resources at the
sandbox through the `*_BASE_URL` variables, and calls `materialize()` like a user's run would.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dagster import (
    AssetCheckSeverity,
    AssetKey,
    AssetsDefinition,
    DagsterInstance,
    ExecuteInProcessResult,
    MultiPartitionsDefinition,
    asset,
    materialize,
)

from integration_platform import environment
from integration_platform.assets.partitions import register_clients
from integration_platform.assets.raw import DRIFT_CHECK, api_resource_key, raw_assets
from integration_platform.assets.resources import (
    LandingZoneResource,
    WarehouseResource,
    api_resource,
)
from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.extraction.runner import EndpointExtractor
from integration_platform.http.client import SourceClient
from integration_platform.http.graphql import GraphQLClient
from integration_platform.http.pagination import PageRequest
from integration_platform.landing.provenance import Pull
from integration_platform.landing.warehouse import WarehouseBusyError
from integration_platform.specs.loader import load_spec, load_specs
from integration_platform.specs.models import SourceSpec
from integration_platform_sandbox.chaos import PROFILES, ChaosSettings, Fault
from integration_platform_sandbox.roster import VENDOR_URL_VARIABLES
from integration_platform_sandbox.server import Sandbox
from tests.conftest import ChaosSwitch
from tests.demo_partitions import demo_partition
from tests.integration.sandbox_client import ground_truth_ids

SOURCES = environment.PROJECT_ROOT / "sources"
SECRET_VARIABLES = (
    "CRM_CLIENT_ID",
    "CRM_CLIENT_SECRET",
    "BILLING_API_KEY",
    "SUPPORT_API_TOKEN",
    "ANALYTICS_KEY_ID",
    "ANALYTICS_SIGNING_SECRET",
)
CUSTOMER_ENDPOINTS = {
    ("crm", "contacts"),
    ("billing", "customers"),
    ("support", "customers"),
    ("analytics", "users"),
}
# Days of the session sandbox (seed 7, 300 customers) chosen for what they hold.
BUSY_DAY = "2025-08-24"  # ≥ 2 contacts, invoices and tickets, 9 events
OTHER_DAY = "2025-05-16"  # ≥ 1 record on every partitioned endpoint
# The CRM drifts from DRIFT_FROM on; the days either side hold 2 contacts each.
BEFORE_DRIFT, DRIFT_FROM, AFTER_DRIFT = "2025-03-06", date(2025, 7, 1), "2025-08-20"
LINEAGE = "_primary_key, record::VARCHAR, _record_hash, _partition_key"


class Platform:
    """The raw assets of some specs, with resources on their own data dir."""

    def __init__(
        self, data: Path, specs: dict[str, SourceSpec], *, lock_timeout_seconds: float = 60.0
    ) -> None:
        self.data = data
        self.specs = specs
        self.warehouse_path = data / "warehouse.duckdb"
        self.published_path = data / "warehouse.published.duckdb"
        self.resources: dict[str, Any] = {
            "warehouse": WarehouseResource(
                path=str(self.warehouse_path), lock_timeout_seconds=lock_timeout_seconds
            ),
            "landing": LandingZoneResource(
                root=str(data / "landing"), state_root=str(data / "state")
            ),
            **{api_resource_key(name): api_resource(spec) for name, spec in specs.items()},
        }
        # No step retries: a failure must show at once, not after Dagster's back-off.
        self.assets = {a.key: a for a in raw_assets(specs, retry_policy=None)}
        self.instance = DagsterInstance.ephemeral()
        register_clients(self.instance, DEMO_CLIENT_ID)

    def asset(self, source: str, endpoint: str) -> AssetsDefinition:
        return self.assets[AssetKey(["raw", source, endpoint])]

    def partitioned(self) -> list[AssetsDefinition]:
        """The assets with daily partitions (client x day)."""
        return [
            a
            for a in self.assets.values()
            if isinstance(a.partitions_def, MultiPartitionsDefinition)
        ]

    def materialize(
        self, assets: list[AssetsDefinition], partition: str | None = None
    ) -> ExecuteInProcessResult:
        return self.run(assets, partition)

    def run(
        self,
        assets: list[AssetsDefinition],
        partition: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> ExecuteInProcessResult:
        """Materialize the demo client's `partition` (a day, or None for reference data),
        with raw config for each asset's op."""
        run_config = (
            {
                "ops": {
                    a.key.to_python_identifier(): {"config": config}
                    for a in assets
                    if a.key in self.assets
                }
            }
            if config
            else None
        )
        return materialize(
            assets,
            partition_key=demo_partition(partition),
            resources=self.resources,
            instance=self.instance,
            run_config=run_config,
            raise_on_error=False,
        )

    def query(
        self, sql: str, params: list[Any] | None = None, *, path: Path | None = None
    ) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(path or self.warehouse_path), read_only=True) as connection:
            return connection.execute(sql, params or []).fetchall()

    def rows(
        self, source: str, endpoint: str, partition: str, columns: str = LINEAGE
    ) -> list[tuple[Any, ...]]:
        return sorted(
            self.query(
                f'SELECT {columns} FROM raw."{source}__{endpoint}" WHERE _partition_key = ?',
                [partition],
            )
        )

    def served(self, source: str, endpoint: str, partition: str | None) -> dict[str, Any]:
        """What the API serves for this window, fetched plainly (no landing, no warehouse)."""
        spec = load_spec(self.specs[source].file or Path(), env=os.environ)
        keys = spec.endpoints[endpoint].primary_keys

        async def fetch() -> list[Any]:
            async with SourceClient(spec) as client:
                graphql = GraphQLClient(client) if spec.kind == "graphql" else None
                if graphql is not None:
                    await graphql.__aenter__()
                try:
                    extractor = EndpointExtractor(
                        spec,
                        endpoint,
                        client,
                        partition=partition,
                        full_refresh=True,
                        graphql=graphql,
                    )
                    return [record async for page in extractor.pages() for record in page.records]
                finally:
                    if graphql is not None:
                        await graphql.__aexit__(None, None, None)

        return {"|".join(str(record[k]) for k in keys): record for record in asyncio.run(fetch())}


PlatformFactory = Callable[..., Platform]


@pytest.fixture
def platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox_credentials: object
) -> PlatformFactory:
    """`platform(server, spec_files=None, **options)`: raw assets aimed at `server`."""
    made = 0

    def make(server: Sandbox, spec_files: list[Path] | None = None, **options: Any) -> Platform:
        nonlocal made
        made += 1
        for vendor, url in server.urls.items():
            monkeypatch.setenv(VENDOR_URL_VARIABLES[vendor], url)
        specs = load_specs(spec_files or sorted(SOURCES.glob("*.yaml")))
        return Platform(tmp_path / f"data-{made}", specs, **options)

    return make


def spec_copy(tmp_path: Path, source: str, *replacements: tuple[str, str]) -> Path:
    """The shipped spec of `source` with some text replaced, as a file in tmp_path."""
    text = (SOURCES / f"{source}.yaml").read_text()
    for old, new in replacements:
        assert old in text, f"{old!r} is not in {source}.yaml any more"
        text = text.replace(old, new)
    path = tmp_path / f"{source}.yaml"
    path.write_text(text)
    return path


def failure_messages(result: ExecuteInProcessResult) -> str:
    """Every step failure's message and causes, as one text."""
    texts = []
    for event in result.get_step_failure_events():
        error = event.event_specific_data.error  # type: ignore[union-attr]
        while error is not None:
            texts.append(f"{error.cls_name}: {error.message}")
            error = error.cause
    return "\n".join(texts)


def drift_evaluation(result: ExecuteInProcessResult, source: str, endpoint: str) -> Any:
    [evaluation] = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == DRIFT_CHECK and e.asset_key == AssetKey(["raw", source, endpoint])
    ]
    return evaluation


# -- 1. what lands is what the API served -----------------------------------------------------

SCRIPTED_FAULTS: list[Fault | None] = ["429", "503", "drop", "malformed"]
GROUND_TRUTH_DAY = "2025-05-18"  # seed 7, 2000 customers: ≥ 3 records on every endpoint


def test_raw_tables_hold_exactly_what_the_apis_serve_when_materialized_under_light_chaos(
    make_sandbox: Callable[..., Sandbox],
    platform: PlatformFactory,
) -> None:
    server = make_sandbox(customers=2000)
    raw = platform(server)
    endpoints = [
        (s, e, spec.endpoints[e].is_partitioned)
        for s, spec in raw.specs.items()
        for e in spec.endpoints
    ]
    served = {
        (s, e): raw.served(s, e, GROUND_TRUTH_DAY if daily else None) for s, e, daily in endpoints
    }
    assert all(served.values()), f"every endpoint must have records that day: {served.keys()}"
    # Light chaos, plus scripted faults so every vendor surely fails a few requests.
    for engine in server.engines.values():
        engine.configure(PROFILES["light"], SCRIPTED_FAULTS)

    started = datetime.now(UTC)
    daily = raw.materialize(raw.partitioned(), GROUND_TRUTH_DAY)
    whole = raw.materialize([a for a in raw.assets.values() if a not in raw.partitioned()])
    finished = datetime.now(UTC)
    assert daily.success and whole.success, failure_messages(daily) + failure_messages(whole)
    for vendor, engine in server.engines.items():
        assert sum(engine.injected.values()) >= len(SCRIPTED_FAULTS), f"{vendor} saw no chaos"
    secrets = [os.environ[name] for name in SECRET_VARIABLES]

    for source, endpoint, is_daily in endpoints:
        expected = served[(source, endpoint)]
        run_id = daily.run_id if is_daily else whole.run_id
        partition = GROUND_TRUTH_DAY if is_daily else "__all__"
        rows = raw.rows(
            source,
            endpoint,
            partition,
            "_primary_key, record::VARCHAR, _source, "
            "_endpoint, _run_id, _fetched_at, _request_url, _record_hash",
        )
        where = f"{source}.{endpoint}"
        assert [row[0] for row in rows] == sorted(expected), f"{where}: keys differ or repeat"
        assert {row[0]: json.loads(row[1]) for row in rows} == expected, f"{where}: records"
        assert {row[2:5] for row in rows} == {(source, endpoint, run_id)}, where
        for _, record, *_, fetched_at, url, record_hash in rows:
            assert fetched_at.utcoffset() is not None and started <= fetched_at <= finished
            assert url.startswith(server.urls[source] + "/"), url
            assert not [s for s in secrets if s in url], f"{where}: a secret in {url}"
            assert record_hash == hashlib.md5(record.encode()).hexdigest(), where  # noqa: S324
        if (source, endpoint) in CUSTOMER_ENDPOINTS:
            truth = ground_truth_ids(server.urls[source], endpoint)
            assert set(expected) <= set(truth), f"{where}: ids outside the ground truth"


# -- 3. re-running a partition ----------------------------------------------------------------

IDEMPOTENT = [
    ("crm", "contacts"),
    ("billing", "invoices"),
    ("support", "tickets"),
    ("analytics", "events"),
]


def test_rerun_gives_identical_rows_and_leaves_other_partitions_alone_when_a_day_is_reloaded(
    sandbox: Sandbox,
    platform: PlatformFactory,
) -> None:
    raw = platform(sandbox)
    assets = [raw.asset(*key) for key in IDEMPOTENT]
    for day in (BUSY_DAY, OTHER_DAY):
        assert raw.materialize(assets, day).success
    every_column = "* EXCLUDE (record), record::VARCHAR"
    first = {key: raw.rows(*key, BUSY_DAY) for key in IDEMPOTENT}
    other = {key: raw.rows(*key, OTHER_DAY, every_column) for key in IDEMPOTENT}
    assert all(len(rows) >= 2 for rows in first.values()), first

    again = raw.materialize(assets, BUSY_DAY)
    assert again.success, failure_messages(again)
    for key in IDEMPOTENT:
        assert raw.rows(*key, BUSY_DAY) == first[key], f"{key}: the re-run changed the day"
        assert raw.rows(*key, OTHER_DAY, every_column) == other[key], f"{key}: other day touched"
        run_ids = {r[0] for r in raw.rows(*key, BUSY_DAY, "_run_id")}
        assert again.run_id in run_ids, f"{key}: the re-run did not reload the day"


def test_full_refresh_fetches_the_whole_day_when_an_incremental_run_died_before_loading(
    sandbox: Sandbox,
    platform: PlatformFactory,
) -> None:
    raw = platform(sandbox)
    contacts = raw.asset("crm", "contacts")
    assert raw.materialize([contacts], BUSY_DAY).success
    served = raw.served("crm", "contacts", BUSY_DAY)
    assert len(served) == 2
    # An incremental run landed its one changed contact, then died before loading it.
    changed = next(iter(served.values()))
    landing = raw.resources["landing"].zone()
    died = landing.open_attempt("crm", "contacts", BUSY_DAY, "died-run")
    died.write_page(
        1,
        json.dumps({"data": [changed]}).encode(),
        records=1,
        url="u",
        fetched_at=datetime.now(UTC),
        run_id="died-run",
        provenance=Pull(
            request=PageRequest(
                "/v2/contacts", {"updated_since": changed["updated_at"]}
            ).to_checkpoint()
        ),
    )

    refresh = raw.run([contacts], BUSY_DAY, {"full_refresh": True})

    assert refresh.success, failure_messages(refresh)
    [event] = refresh.get_asset_materialization_events()
    assert event.materialization.metadata["resumed_after_pages"].value == 0
    assert {row[0] for row in raw.rows("crm", "contacts", BUSY_DAY)} == set(served)


# -- 4. schema drift --------------------------------------------------------------------------


def downstream_of(raw_asset: AssetsDefinition, ran: list[str]) -> AssetsDefinition:
    """A tiny asset that depends on `raw_asset` and notes when it runs."""

    @asset(deps=[raw_asset.key], partitions_def=raw_asset.partitions_def)
    def contact_summary() -> None:
        ran.append("contact_summary")

    return contact_summary


def test_drift_check_fails_blocks_downstream_and_keeps_the_rows_when_a_reload_drifts(
    sandbox: Sandbox,
    chaos: ChaosSwitch,
    platform: PlatformFactory,
) -> None:
    raw = platform(sandbox)
    contacts = raw.asset("crm", "contacts")
    ran: list[str] = []
    summary = downstream_of(contacts, ran)
    for day in (BEFORE_DRIFT, AFTER_DRIFT):
        before = raw.materialize([contacts, summary], day)
        assert before.success and drift_evaluation(before, "crm", "contacts").passed
    good_rows = raw.rows("crm", "contacts", AFTER_DRIFT)
    assert len(good_rows) == 2

    chaos("crm", ChaosSettings(schema_drift_from=DRIFT_FROM))
    served_after = raw.served("crm", "contacts", AFTER_DRIFT)
    ran.clear()
    # A full reload of the day (contacts are incremental: a plain run fetches only changes).
    after = raw.run([contacts, summary], AFTER_DRIFT, {"full_refresh": True})

    check = drift_evaluation(after, "crm", "contacts")
    assert not check.passed
    assert check.severity == AssetCheckSeverity.ERROR
    difference = check.metadata["difference"].value
    assert difference["disappeared"] == {"email": len(served_after)}
    assert difference["renamed"] == {"email": "email_address"}
    assert difference["retyped"]["lead_score"]["observed"] == ["string"]
    assert "email" in check.description and "lead_score" in check.description
    assert check.metadata["held"].value[demo_partition(AFTER_DRIFT)]["rows_kept"] == 2
    assert ran == [], "a blocking check failed: the downstream asset must not run"
    assert not after.success
    assert "accept_drift" in failure_messages(after)
    assert raw.rows("crm", "contacts", AFTER_DRIFT) == good_rows, "the good rows must stay"
    assert raw.query("SELECT count(*) FROM raw._dead_letters") == [(0,)]
    assert raw.rows("crm", "contacts", BEFORE_DRIFT), "the earlier day keeps its rows"

    accepted = raw.run(
        [contacts, summary], AFTER_DRIFT, {"accept_drift": True, "full_refresh": True}
    )
    assert accepted.success, failure_messages(accepted)
    assert ran == ["contact_summary"]
    assert "accepted" in drift_evaluation(accepted, "crm", "contacts").description
    loaded = [json.loads(row[1]) for row in raw.rows("crm", "contacts", AFTER_DRIFT)]
    assert len(loaded) == 2 and all("email_address" in record for record in loaded)


def test_drift_check_only_warns_and_downstream_runs_when_records_bring_new_fields(
    sandbox: Sandbox,
    platform: PlatformFactory,
    tmp_path: Path,
) -> None:
    # A declared-only contract: every field the CRM sends beyond it is a new field.
    declared = spec_copy(tmp_path, "crm", ("mode: infer", "mode: declared"))
    raw = platform(sandbox, [declared])
    contacts = raw.asset("crm", "contacts")
    ran: list[str] = []
    result = raw.materialize([contacts, downstream_of(contacts, ran)], BEFORE_DRIFT)

    check = drift_evaluation(result, "crm", "contacts")
    assert not check.passed
    assert check.severity == AssetCheckSeverity.WARN
    difference = check.metadata["difference"].value
    assert {"first_name", "last_name", "phone"} <= set(difference["new_fields"])
    assert not difference["disappeared"] and not difference["retyped"]
    assert result.success and ran == ["contact_summary"]
    assert len(raw.rows("crm", "contacts", BEFORE_DRIFT)) == 2
    assert raw.query("SELECT count(*) FROM raw._dead_letters") == [(0,)]
    again = raw.materialize([contacts], AFTER_DRIFT)
    assert drift_evaluation(again, "crm", "contacts").passed, "new fields joined the contract"


# -- 5. readers of the published copy ---------------------------------------------------------

READER = """
import sys, time, pathlib, duckdb
connection = duckdb.connect(sys.argv[1], read_only=True)
count = 'SELECT count(*) FROM raw."crm__contacts"'
print(connection.execute(count).fetchone()[0], flush=True)
go, deadline = pathlib.Path(sys.argv[2]), time.monotonic() + 30
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.05)
print(connection.execute(count).fetchone()[0], flush=True)
"""


def test_open_reader_keeps_its_snapshot_and_new_readers_see_new_rows_when_a_load_publishes(
    sandbox: Sandbox,
    platform: PlatformFactory,
    tmp_path: Path,
) -> None:
    raw = platform(sandbox)
    contacts = raw.asset("crm", "contacts")
    assert raw.materialize([contacts], BEFORE_DRIFT).success
    go = tmp_path / "read-again"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(raw.published_path), str(go)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None
        snapshot = int(reader.stdout.readline())
        assert snapshot == 2

        result = raw.materialize([contacts], AFTER_DRIFT)
        assert result.success, failure_messages(result)
        count = 'SELECT count(*) FROM raw."crm__contacts"'
        assert raw.query(count, path=raw.published_path) == [(4,)], "a new reader sees the load"

        go.touch()
        out, err = reader.communicate(timeout=30)
    finally:
        reader.kill()
    assert reader.returncode == 0, err
    assert int(out) == snapshot, "the open reader still reads the copy it opened"


# -- 6. the write lock ------------------------------------------------------------------------

LOCK_HOLDER = """
import sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def lock_holder() -> Iterator[Callable[[Path], None]]:
    """`lock_holder(path)`: another process takes this lock file and keeps it."""
    holders: list[subprocess.Popen[str]] = []

    def hold(path: Path) -> None:
        holder = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        holders.append(holder)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"

    yield hold
    for holder in holders:
        holder.kill()
        holder.wait()


def test_load_fails_with_warehouse_busy_and_writes_nothing_when_another_process_holds_the_lock(
    sandbox: Sandbox,
    platform: PlatformFactory,
    lock_holder: Callable[[Path], None],
) -> None:
    raw = platform(sandbox, lock_timeout_seconds=1)
    contacts = raw.asset("crm", "contacts")
    assert raw.materialize([contacts], BEFORE_DRIFT).success
    tables = 'SELECT _partition_key, count(*) FROM raw."crm__contacts" GROUP BY ALL'
    before = raw.query(tables), raw.query(tables, path=raw.published_path)

    lock_holder(Path(f"{raw.warehouse_path}.lock"))
    result = raw.materialize([contacts], AFTER_DRIFT)

    assert not result.success
    messages = failure_messages(result)
    assert WarehouseBusyError.__name__ in messages
    assert "another load still holds it" in messages
    assert "Retry later, or raise the warehouse resource's lock_timeout_seconds" in messages
    assert (raw.query(tables), raw.query(tables, path=raw.published_path)) == before


# -- 7. requests that keep failing ------------------------------------------------------------


def test_asset_fails_clearly_and_records_the_failed_request_when_the_api_keeps_erroring(
    sandbox: Sandbox,
    chaos: ChaosSwitch,
    platform: PlatformFactory,
    tmp_path: Path,
) -> None:
    impatient = spec_copy(
        tmp_path,
        "billing",
        (
            "retry: {max_attempts: 8, initial_delay_seconds: 0.2, max_delay_seconds: 10}",
            "retry: {max_attempts: 3, initial_delay_seconds: 0.05, max_delay_seconds: 0.1}",
        ),
    )
    raw = platform(sandbox, [impatient])
    chaos("billing", ChaosSettings(server_error_burst=1.0, burst_length=1000))

    result = raw.materialize([raw.asset("billing", "invoices")], BUSY_DAY)

    assert not result.success
    [failure] = result.get_step_failure_events()
    description = str(failure.event_specific_data.user_failure_data.description)  # type: ignore[union-attr]
    assert description.startswith(f"billing.invoices [{demo_partition(BUSY_DAY)}]: billing: GET ")
    assert "failed after 3 attempts" in description and "HTTP 50" in description
    assert "raise retry.max_attempts" in description
    [row] = raw.query(
        "SELECT source, endpoint, partition_key, run_id, request, error, attempts, "
        "client_id FROM raw._failed_requests"
    )
    assert row[:4] == ("billing", "invoices", BUSY_DAY, result.run_id)
    assert row[7] == DEMO_CLIENT_ID
    assert row[4].startswith(f"billing: GET {sandbox.urls['billing']}/v1/invoices?")
    assert "HTTP 50" in row[5] and row[6] == 3
    assert os.environ["BILLING_API_KEY"] not in row[4] + row[5]
    assert raw.query(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'billing__invoices'"
    ) == [(0,)]
