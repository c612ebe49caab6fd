"""The landing zone behaves the same in a folder and on S3-compatible object storage (a real
moto server on loopback): pages, manifest, checkpoint and resume, COMPLETE, pruning, loads, and
clear errors when the storage cannot be reached."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from integration_platform import environment
from integration_platform.assets.partitions import register_clients
from integration_platform.assets.raw import api_resource_key, raw_assets
from integration_platform.assets.resources import (
    LandingZoneResource,
    WarehouseResource,
    api_resource,
)
from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.http.pagination import PageRequest
from integration_platform.landing.loader import load_attempt
from integration_platform.landing.provenance import Pull
from integration_platform.landing.zone import (
    LANDING_URL_VARIABLE,
    Attempt,
    LandingStorageError,
    LandingZone,
)
from integration_platform.specs.loader import load_spec, load_specs
from integration_platform.specs.models import SourceSpec
from integration_platform_sandbox.roster import VENDOR_URL_VARIABLES
from integration_platform_sandbox.server import Sandbox
from tests.demo_partitions import demo_partition
from tests.landing_s3 import S3Server, s3_env, s3_server
from tests.ports import closed_port

__all__ = ["s3_env", "s3_server"]  # fixtures

SHOP = """
source: shop
kind: rest
base_url: http://127.0.0.1:9
endpoints:
  orders:
    path: /orders
    records: data
    primary_key: id
    pagination: {type: offset, page_size: 2, total_path: total}
    partitions: {type: daily, start: "2025-01-01", start_param: since}
"""
DAY = "2025-03-01"
FETCHED_AT = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)


@pytest.fixture(params=["folder", "s3"])
def zone(request: pytest.FixtureRequest, tmp_path: Path) -> LandingZone:
    if request.param == "folder":
        return LandingZone(tmp_path / "landing")
    server: S3Server = request.getfixturevalue("s3_env")
    bucket = server.create_bucket(f"landing-{uuid.uuid4().hex[:12]}")
    return LandingZone(f"s3://{bucket}/prod", scratch=tmp_path / "scratch")


@pytest.fixture
def shop(tmp_path: Path) -> SourceSpec:
    (tmp_path / "shop.yaml").write_text(SHOP)
    return load_spec(tmp_path / "shop.yaml", env={})


def land(zone: LandingZone, bodies: list[Any], *, complete: bool = True) -> Attempt:
    attempt = zone.open_attempt("shop", "orders", DAY, "run-0001", resume=False)
    for number, body in enumerate(bodies, start=1):
        write(attempt, number, body, last=number == len(bodies))
    if complete:
        attempt.mark_complete()
    return attempt


def write(attempt: Attempt, number: int, body: Any, *, last: bool) -> None:
    attempt.write_page(
        number,
        json.dumps(body).encode(),
        records=len(body["data"]),
        url=f"http://127.0.0.1:9/orders?offset={number - 1}",
        fetched_at=FETCHED_AT,
        run_id="run-0001",
        provenance=Pull(
            request=PageRequest("/orders", {"offset": number - 1}).to_checkpoint(),
            next_request=None
            if last
            else PageRequest("/orders", {"offset": number}).to_checkpoint(),
        ),
    )


def page(n: int) -> dict[str, Any]:
    return {"data": [{"id": n, "amount": n * 10}]}


def read_page(attempt: Attempt, name: str) -> bytes:
    return gzip.decompress((attempt.folder / name).read_bytes())


def test_pages_land_gzipped_under_the_partition_with_their_manifest_when_written(
    zone: LandingZone,
) -> None:
    attempt = land(zone, [page(1), page(2)], complete=False)
    assert [e.page for e in attempt.entries()] == [1, 2]
    assert json.loads(read_page(attempt, "page-000002.json.gz")) == page(2)
    assert str(attempt.folder).startswith(str(zone.root))
    assert str(attempt.folder.parent).endswith(f"shop/orders/{DAY}")
    assert not attempt.complete
    attempt.mark_complete()
    assert attempt.complete


def test_users_see_the_object_url_when_the_zone_is_on_object_storage(
    zone: LandingZone,
) -> None:
    attempt = land(zone, [page(1)])
    shown = str(attempt.folder)
    assert shown.startswith("s3://landing-") if zone.object_storage else shown.startswith("/")


def test_a_killed_extraction_resumes_after_its_last_committed_page_when_reopened(
    zone: LandingZone,
) -> None:
    died = land(zone, [page(1), page(2), page(3)], complete=False)
    resumed = zone.open_attempt("shop", "orders", DAY, "run-0002")
    assert str(resumed.folder) == str(died.folder)
    assert resumed.resume_point() == (
        3,
        None,
        True,
    ), "the last page had no next request: nothing is left to fetch"


def test_a_page_without_its_manifest_line_is_not_landed_and_is_fetched_again_when_resumed(
    zone: LandingZone,
) -> None:
    attempt = zone.open_attempt("shop", "orders", DAY, "run-0001")
    write(attempt, 1, page(1), last=False)
    # Page 2's file landed, then the process died before its line: no commit.
    (attempt.folder / "page-000002.json.gz").write_bytes(gzip.compress(b"half"))
    assert [e.page for e in attempt.entries()] == [1]
    landed, request, finished = attempt.resume_point()
    assert (landed, finished) == (1, False)
    assert request == PageRequest("/orders", {"offset": 1}).to_checkpoint()
    write(attempt, 2, page(2), last=True)
    assert json.loads(read_page(attempt, "page-000002.json.gz")) == page(2)
    assert attempt.resume_point() == (2, None, True)


def test_the_manifest_is_cut_at_the_first_lost_page_and_pages_after_it_follow_when_resumed(
    zone: LandingZone,
) -> None:
    attempt = land(zone, [page(n) for n in range(1, 6)], complete=False)
    (attempt.folder / "page-000003.json.gz").write_bytes(b"\x1f\x8b truncated")
    landed, request, finished = attempt.resume_point()
    assert (landed, request, finished) == (
        2,
        PageRequest("/orders", {"offset": 2}).to_checkpoint(),
        False,
    )
    assert [e.page for e in attempt.entries()] == [1, 2], "lines after the loss are cut off"
    for number in (3, 4):
        write(attempt, number, page(number * 100), last=number == 4)
    assert [e.page for e in attempt.entries()] == [1, 2, 3, 4]
    assert json.loads(read_page(attempt, "page-000004.json.gz")) == page(400)


def test_a_stager_follows_the_manifest_while_it_grows_when_it_reads_from_its_offset(
    zone: LandingZone,
) -> None:
    attempt = land(zone, [page(1)], complete=False)
    first, offset = attempt.entries_after(0)
    write(attempt, 2, page(2), last=False)
    write(attempt, 3, page(3), last=True)
    more, offset = attempt.entries_after(offset)
    rest, _ = attempt.entries_after(offset)
    assert ([e.page for e in first], [e.page for e in more], rest) == ([1], [2, 3], [])


def test_complete_attempts_start_anew_and_old_ones_are_pruned_when_attempts_pile_up(
    zone: LandingZone,
) -> None:
    made = [land(zone, [page(n)]) for n in range(1, 4)]
    fresh = zone.open_attempt("shop", "orders", DAY, "run-0009")
    assert str(fresh.folder) not in {str(a.folder) for a in made}
    assert zone.prune("shop", "orders", DAY, keep=2) == 1
    left = [str(a.folder) for a in zone.attempts("shop", "orders", DAY) if a.complete]
    assert left == [str(a.folder) for a in made[1:]]
    assert zone.partitions("shop", "orders") == [DAY]


def test_a_webhook_batch_appears_complete_and_is_never_continued_when_moved_in(
    zone: LandingZone,
) -> None:
    staged = zone.staging_attempt("shop-orders-batch-1")
    write(staged, 1, page(7), last=True)
    staged.mark_complete()
    moved = zone.move_in(staged, "shop", "orders", DAY, "20250301T000000000000-run-webhooks")
    assert moved.complete and [e.page for e in moved.entries()] == [1]
    assert zone.partitions("shop", "orders") == [DAY]
    pull = zone.open_attempt("shop", "orders", DAY, "run-0003")
    assert str(pull.folder) != str(moved.folder)


def test_records_load_into_duckdb_exactly_when_the_pages_are_read_from_the_zone(
    zone: LandingZone, shop: SourceSpec, tmp_path: Path
) -> None:
    attempt = land(zone, [{"data": [{"id": 1, "amount": 5}, {"id": 2, "amount": 6}]}, page(3)])
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as connection:
        result = load_attempt(
            connection, spec=shop, endpoint="orders", attempt=attempt, partition=DAY, run_id="r"
        )
        rows = connection.execute(
            'SELECT _primary_key, record::VARCHAR FROM raw."shop__orders" ORDER BY 1'
        ).fetchall()
    assert result.rows == 3
    assert [(pk, json.loads(r)) for pk, r in rows] == [
        ("1", {"id": 1, "amount": 5}),
        ("2", {"id": 2, "amount": 6}),
        ("3", {"id": 3, "amount": 30}),
    ]


def test_an_unreachable_endpoint_names_the_setting_when_pages_would_land(
    s3_env: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    zone = LandingZone("s3://landing-gone/prod", scratch=tmp_path)
    with pytest.raises(LandingStorageError) as raised:
        land(zone, [page(1)])
    message = str(raised.value)
    assert LANDING_URL_VARIABLE in message and "AWS_ENDPOINT_URL" in message
    assert "testing" not in message, "no credential in the message"


def test_a_missing_bucket_names_the_setting_and_keeps_nothing_half_landed_when_writing(
    s3_env: S3Server, tmp_path: Path
) -> None:
    zone = LandingZone("s3://no-such-bucket/prod", scratch=tmp_path)
    attempt = zone.open_attempt("shop", "orders", DAY, "run-0001")
    with pytest.raises(LandingStorageError, match=LANDING_URL_VARIABLE):
        write(attempt, 1, page(1), last=True)


# -- a real raw materialization (Dagster, the sandbox CRM over HTTP) landing in S3 --------------

BUSY_DAY = "2025-08-24"  # two contacts: two pages at one contact a page


def test_raw_asset_lands_in_s3_loads_exact_rows_and_resumes_from_its_checkpoint_after_a_crash(
    s3_env: S3Server,
    sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for vendor, url in sandbox.urls.items():
        monkeypatch.setenv(VENDOR_URL_VARIABLES[vendor], url)
    bucket = s3_env.create_bucket(f"landing-{uuid.uuid4().hex[:12]}")
    crm = tmp_path / "crm.yaml"
    crm.write_text(
        (environment.PROJECT_ROOT / "sources" / "crm.yaml")
        .read_text()
        .replace("page_size: 200, size_param: limit", "page_size: 1, size_param: limit")
    )
    specs = load_specs([crm])
    landing = LandingZoneResource(root=f"s3://{bucket}/landing", state_root=str(tmp_path / "state"))
    resources = {
        "warehouse": WarehouseResource(path=str(tmp_path / "warehouse.duckdb"), publish=False),
        "landing": landing,
        api_resource_key("crm"): api_resource(specs["crm"]),
    }
    [contacts] = [
        a
        for a in raw_assets(specs, retry_policy=None)
        if a.key == AssetKey(["raw", "crm", "contacts"])
    ]
    instance = DagsterInstance.ephemeral()
    register_clients(instance, DEMO_CLIENT_ID)

    def run(config: dict[str, Any] | None = None) -> dict[str, Any]:
        result = materialize(
            [contacts],
            partition_key=demo_partition(BUSY_DAY),
            resources=resources,
            instance=instance,
            run_config={"ops": {contacts.key.to_python_identifier(): {"config": config}}}
            if config
            else None,
        )
        [event] = result.get_asset_materialization_events()
        return {k: v.value for k, v in event.materialization.metadata.items()}

    def rows() -> list[tuple[Any, ...]]:
        with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as connection:
            return connection.execute(
                'SELECT _primary_key, record::VARCHAR, _record_hash FROM raw."crm__contacts" '
                "WHERE _partition_key = ? ORDER BY 1",
                [BUSY_DAY],
            ).fetchall()

    first = run({"full_refresh": True})
    landed = first["landing_attempt"]
    assert str(landed).startswith(
        f"s3://{bucket}/landing/{DEMO_CLIENT_ID}/crm/contacts/{BUSY_DAY}/"
    )
    served = rows()
    assert len(served) == 2 and first["pages"] >= 2

    # A run killed after its first page: the same attempt's first page and manifest line, no
    # more, and no COMPLETE; the next run must continue from that line's checkpoint.
    zone = landing.zone()
    done = next(iter(zone.attempts("crm", "contacts", BUSY_DAY)))
    killed = zone.open_attempt("crm", "contacts", BUSY_DAY, "killed-run", resume=False)
    entry = done.entries()[0]
    body = gzip.decompress((done.folder / entry.file).read_bytes())
    killed.write_page(
        entry.page,
        body,
        records=entry.records,
        url=entry.url,
        fetched_at=datetime.fromisoformat(entry.fetched_at),
        run_id="killed-run",
        provenance=entry.provenance,
    )

    resumed = run()  # a full refresh of an incremental endpoint would start over
    assert resumed["resumed_after_pages"] == 1
    assert str(resumed["landing_attempt"]) == str(killed.folder)
    assert resumed["pages"] + 1 == first["pages"]
    assert rows() == served, "the same rows, none lost and none doubled"
