"""The landing zone, schema contracts and the DuckDB loader, on tiny hand-made pages."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
import pytest

from integration_platform.extraction.windows import UNPARTITIONED
from integration_platform.http.pagination import PageRequest, RecordsRule
from integration_platform.landing import contracts
from integration_platform.landing.contracts import FieldRule, Observed, ObservedField
from integration_platform.landing.loader import (
    LoadCountError,
    LoadMemoryError,
    LoadResult,
    Stager,
    load_attempt,
)
from integration_platform.landing.loader import stage as stage_module
from integration_platform.landing.loader import stager as stager_module
from integration_platform.landing.loader.locate import rule_sql
from integration_platform.landing.provenance import Pull, StreamBatch, WebhookDelivery
from integration_platform.landing.zone import MANIFEST, Attempt, LandingZone
from integration_platform.specs.loader import load_spec
from integration_platform.specs.models import SchemaContract, SourceSpec

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
    contract: {fields: {id: integer, amount: number}}
  lines:
    path: /lines
    records: result.items
    primary_key: [order_id, line]
    pagination: {type: single}
"""

SHOP_GRAPHQL = """
source: desk
kind: graphql
base_url: http://127.0.0.1:9
endpoints:
  tickets:
    query_file: tickets.graphql
    primary_key: id
    pagination: {type: relay, connection_path: viewer.tickets, page_size: 2}
"""

FETCHED_AT = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
RUN = "run-0001-aaaa"


@pytest.fixture
def shop(tmp_path: Path) -> SourceSpec:
    (tmp_path / "shop.yaml").write_text(SHOP)
    return load_spec(tmp_path / "shop.yaml", env={})


@pytest.fixture
def zone(tmp_path: Path) -> LandingZone:
    return LandingZone(tmp_path / "landing")


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield connection
    connection.close()


def land(
    zone: LandingZone,
    pages: list[Any],
    *,
    partition: str | None = "2025-03-01",
    endpoint: str = "orders",
    run_id: str = RUN,
    complete: bool = True,
) -> Attempt:
    """A new attempt holding these response bodies as pages 1..n."""
    attempt = zone.open_attempt("shop", endpoint, partition, run_id, resume=False)
    for number, body in enumerate(pages, start=1):
        attempt.write_page(
            number,
            json.dumps(body).encode(),
            records=_records_in(body),
            run_id=run_id,
            url=f"http://127.0.0.1:9/{endpoint}?offset={number - 1}",
            fetched_at=FETCHED_AT,
            provenance=pulled(
                PageRequest(f"/{endpoint}", {"offset": number - 1}),
                PageRequest(f"/{endpoint}", {"offset": number}) if number < len(pages) else None,
            ),
        )
    if complete:
        attempt.mark_complete()
    return attempt


def pulled(request: PageRequest, following: PageRequest | None = None) -> Pull:
    """The provenance of a page the extraction fetched with `request`."""
    return Pull(
        request=request.to_checkpoint(),
        next_request=None if following is None else following.to_checkpoint(),
    )


def _records_in(body: Any) -> int:
    """How many records the extractor would count on a page of SHOP's endpoints."""
    if isinstance(body, list):
        return len(body)
    return len(body["result"]["items"] if "result" in body else body.get("data", []))


def rows(
    connection: duckdb.DuckDBPyConnection, table: str = 'raw."shop__orders"', where: str = "true"
) -> dict[str, Any]:
    found = connection.execute(f"SELECT _primary_key, record FROM {table} WHERE {where}").fetchall()
    return {pk: json.loads(record) for pk, record in found}


# -- landing zone ----------------------------------------------------------------------------


def test_page_lands_gzipped_with_a_manifest_line_when_written(zone: LandingZone) -> None:
    attempt = land(zone, [{"data": [{"id": 1}]}], complete=False)
    [entry] = attempt.entries()
    body = gzip.decompress((attempt.folder / entry.file).read_bytes())
    assert json.loads(body) == {"data": [{"id": 1}]}
    assert entry.sha256 == hashlib.sha256(body).hexdigest()
    assert entry.fetched_at == "2025-03-01T12:30:00+00:00"
    assert attempt.folder.parent == zone.root / "shop" / "orders" / "2025-03-01"
    assert not attempt.complete


def test_unpartitioned_pages_land_under_all_when_there_is_no_partition(
    zone: LandingZone,
) -> None:
    attempt = land(zone, [{"data": []}], partition=None)
    assert attempt.folder.parent.name == UNPARTITIONED


def test_resume_continues_after_the_last_page_when_a_run_died_mid_extraction(
    zone: LandingZone,
) -> None:
    died = land(zone, [{"data": [{"id": 1}]}, {"data": [{"id": 2}]}, {"data": []}], complete=False)
    resumed = zone.open_attempt("shop", "orders", "2025-03-01", "run-0002-bbbb")
    assert resumed.folder == died.folder
    landed, request, finished = resumed.resume_point()
    assert landed == 3
    assert finished, "the last page had no next request: nothing is left to fetch"
    assert request is None


def test_resume_point_is_the_next_request_of_the_last_page_when_pages_remain(
    zone: LandingZone,
) -> None:
    attempt = land(zone, [{"data": [{"id": 1}]}, {"data": [{"id": 2}]}], complete=False)
    lines = attempt.manifest_path.read_bytes().splitlines(keepends=True)
    attempt.manifest_path.write_bytes(lines[0])  # the run died before page 2's line
    landed, request, finished = attempt.resume_point()
    assert (landed, finished) == (1, False)
    assert request == PageRequest("/orders", {"offset": 1}).to_checkpoint()


def test_pages_after_a_torn_manifest_line_are_kept_when_the_resumed_run_lands_them(
    zone: LandingZone,
) -> None:
    attempt = land(zone, [{"data": [{"id": 1}]}, {"data": [{"id": 2}]}], complete=False)
    whole, torn = attempt.manifest_path.read_bytes().splitlines(keepends=True)
    attempt.manifest_path.write_bytes(whole + torn[: len(torn) // 2])  # killed mid-append
    assert [e.page for e in attempt.entries()] == [1]

    landed, request, _ = attempt.resume_point()
    assert request is not None
    attempt.write_page(
        landed + 1,
        b'{"data": [{"id": 2}]}',
        records=1,
        url="u",
        fetched_at=FETCHED_AT,
        run_id="run-2",
        provenance=Pull(request=request),
    )
    assert [e.page for e in attempt.entries()] == [1, 2], "page 2 must not vanish behind the tear"
    assert attempt.resume_point() == (2, None, True)


def test_resume_continues_from_the_first_page_a_machine_crash_lost_when_lines_outlived_pages(
    zone: LandingZone,
) -> None:
    attempt = land(zone, [{"data": [{"id": n}]} for n in range(1, 6)], complete=False)
    page_3 = attempt.folder / attempt.entries()[2].file
    page_3.write_bytes(page_3.read_bytes()[:10])  # the crash kept its name, not its data
    (attempt.folder / attempt.entries()[4].file).unlink()

    landed, request, finished = attempt.resume_point()
    assert (landed, request, finished) == (
        2,
        PageRequest("/orders", {"offset": 2}).to_checkpoint(),
        False,
    )
    assert [e.page for e in attempt.entries()] == [1, 2], "lines after the loss are cut off"


def test_a_new_attempt_starts_when_the_last_one_completed(zone: LandingZone) -> None:
    first = land(zone, [{"data": [{"id": 1}]}])
    second = zone.open_attempt("shop", "orders", "2025-03-01", RUN)
    assert second.folder != first.folder
    assert second.entries() == []
    assert list(zone.attempts("shop", "orders", "2025-03-01"))[-1].folder == second.folder


def test_a_new_attempt_starts_when_resume_is_off_even_if_one_is_unfinished(
    zone: LandingZone,
) -> None:
    unfinished = land(zone, [{"data": [{"id": 1}]}], complete=False)
    fresh = zone.open_attempt("shop", "orders", "2025-03-01", "run-2", resume=False)
    assert fresh.folder != unfinished.folder
    assert fresh.entries() == []


def test_a_stale_unfinished_attempt_is_not_continued_when_a_later_attempt_finished(
    zone: LandingZone,
) -> None:
    land(zone, [{"data": [{"id": 1}]}], complete=False)  # died; then a fresh run finished
    land(zone, [{"data": [{"id": 1}, {"id": 2}]}])
    following = zone.open_attempt("shop", "orders", "2025-03-01", "run-3")
    assert following.entries() == [], "the stale pages must not be continued"


def test_prune_keeps_only_the_newest_complete_attempts_when_attempts_pile_up(
    zone: LandingZone,
) -> None:
    attempts = [land(zone, [{"data": [{"id": n}]}]) for n in range(4)]
    unfinished = land(zone, [{"data": []}], complete=False)
    assert zone.prune("shop", "orders", "2025-03-01", keep=2) == 2
    left = [a.folder for a in zone.attempts("shop", "orders", "2025-03-01")]
    assert left == [attempts[2].folder, attempts[3].folder, unfinished.folder]


# -- contracts ------------------------------------------------------------------------------


def observed(records: int, **fields: tuple[int, set[str]]) -> Observed:
    return Observed(
        records,
        {
            name: ObservedField(present, frozenset(types))
            for name, (present, types) in fields.items()
        },
    )


def test_declared_types_expand_when_written_as_shorthand_or_lists() -> None:
    contract = contracts.declared(
        SchemaContract(
            fields={
                "amount": "number",
                "created": ["string", "integer"],
                "note": {"type": "string", "required": False},
            }
        )
    )
    assert contract["amount"] == FieldRule(frozenset({"number", "integer"}), True)
    assert contract["created"].types == {"string", "integer"}
    assert contract["note"] == FieldRule(frozenset({"string"}), False)


def test_declared_fields_win_over_inferred_ones_when_both_describe_a_field() -> None:
    seen = observed(2, id=(2, {"string"}), score=(2, {"string"}), extra=(1, {"boolean"}))
    contract = contracts.initial_contract(
        SchemaContract(mode="infer", fields={"score": "integer"}), seen
    )
    assert contract["score"].types == {"integer"}
    assert contract["id"] == FieldRule(frozenset({"string"}), True)
    assert contract["extra"] == FieldRule(frozenset({"boolean"}), False), "not in every record"
    declared_only = contracts.initial_contract(
        SchemaContract(mode="declared", fields={"id": "string"}), seen
    )
    assert set(declared_only) == {"id"}


def test_drift_names_the_missing_renamed_and_retyped_fields_when_the_api_changed() -> None:
    contract = {
        "id": FieldRule(frozenset({"string"}), True),
        "email": FieldRule(frozenset({"string"}), True),
        "score": FieldRule(frozenset({"integer"}), True),
    }
    drift = contracts.compare(
        contract,
        observed(3, id=(3, {"string"}), email_address=(3, {"string"}), score=(3, {"string"})),
    )
    assert drift.breaking
    assert drift.disappeared == {"email": 3}
    assert drift.renamed == {"email": "email_address"}
    assert drift.retyped == {"score": {"expected": ["integer"], "observed": ["string"]}}
    assert drift.new_fields == {"email_address": ["string"]}
    assert "'email' missing from 3 record(s) (renamed to 'email_address'?)" in drift.summary()


def test_new_fields_and_nulls_do_not_break_the_contract_when_types_still_match() -> None:
    contract = {
        "id": FieldRule(frozenset({"integer"}), True),
        "note": FieldRule(frozenset({"string"}), True),
    }
    drift = contracts.compare(
        contract, observed(2, id=(2, {"integer"}), note=(2, set()), coupon=(1, {"string"}))
    )
    assert not drift.breaking
    assert drift.new_fields == {"coupon": ["string"]}
    evolved = contracts.evolve(contract, drift)
    assert evolved["coupon"] == FieldRule(frozenset({"string"}), False)
    assert contracts.from_json(contracts.to_json(evolved)) == evolved


# -- loader ---------------------------------------------------------------------------------


def test_records_load_unchanged_with_lineage_when_an_attempt_is_loaded(
    shop: SourceSpec,
    zone: LandingZone,
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    records: list[dict[str, Any]] = [
        {"id": 1, "amount": 9.5, "tags": ["a"]},
        {"id": 2, "amount": 3},
        {"id": 3, "amount": 1, "nested": {"x": None}},
    ]
    attempt = land(zone, [{"data": records[:2], "total": 3}, {"data": records[2:], "total": 3}])
    result = load_attempt(
        warehouse, spec=shop, endpoint="orders", attempt=attempt, partition="2025-03-01", run_id=RUN
    )
    assert (result.rows, result.dead_letters, result.table) == (3, 0, 'raw."shop__orders"')
    assert result.contract_created and not result.drift.breaking
    assert rows(warehouse) == {str(r["id"]): r for r in records}
    lineage = warehouse.execute("""
        SELECT _source, _endpoint, _partition_key, _run_id, _fetched_at, _request_url,
               _page, _page_index, _record_hash, record::VARCHAR
        FROM raw."shop__orders" ORDER BY _primary_key""").fetchall()
    assert [row[:4] for row in lineage] == [("shop", "orders", "2025-03-01", RUN)] * 3
    assert {row[4] for row in lineage} == {FETCHED_AT}
    assert [(row[5], row[6], row[7]) for row in lineage] == [
        ("http://127.0.0.1:9/orders?offset=0", 1, 1),
        ("http://127.0.0.1:9/orders?offset=0", 1, 2),
        ("http://127.0.0.1:9/orders?offset=1", 2, 1),
    ]
    assert all(row[8] == hashlib.md5(row[9].encode()).hexdigest() for row in lineage)  # noqa: S324


def test_the_latest_page_wins_when_a_record_arrives_twice_in_one_attempt(
    shop: SourceSpec,
    zone: LandingZone,
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    attempt = land(
        zone,
        [
            {"data": [{"id": 1, "amount": 1}, {"id": 2, "amount": 1}]},
            {"data": [{"id": 2, "amount": 5}]},
        ],
    )
    result = load_attempt(
        warehouse, spec=shop, endpoint="orders", attempt=attempt, partition="2025-03-01", run_id=RUN
    )
    assert result.rows == 2
    assert rows(warehouse) == {"1": {"id": 1, "amount": 1}, "2": {"id": 2, "amount": 5}}


def test_reloading_a_partition_replaces_only_that_partition_when_run_again(
    shop: SourceSpec,
    zone: LandingZone,
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    for day, ids in (("2025-03-01", [1, 2, 3]), ("2025-03-02", [4, 5])):
        load_attempt(
            warehouse,
            spec=shop,
            endpoint="orders",
            partition=day,
            run_id=RUN,
            attempt=land(zone, [{"data": [{"id": i, "amount": i} for i in ids]}], partition=day),
        )
    before = warehouse.execute(
        "SELECT * FROM raw.\"shop__orders\" WHERE _partition_key = '2025-03-02' ORDER BY ALL"
    ).fetchall()
    again = load_attempt(
        warehouse,
        spec=shop,
        endpoint="orders",
        partition="2025-03-01",
        run_id="run-2",
        attempt=land(zone, [{"data": [{"id": 1, "amount": 7}]}], partition="2025-03-01"),
    )
    assert (again.rows, again.rows_replaced) == (1, 3)
    assert rows(warehouse, where="_partition_key = '2025-03-01'") == {"1": {"id": 1, "amount": 7}}
    assert (
        warehouse.execute(
            "SELECT * FROM raw.\"shop__orders\" WHERE _partition_key = '2025-03-02' ORDER BY ALL"
        ).fetchall()
        == before
    )


def test_a_partition_larger_than_the_load_memory_loads_whole_and_settings_come_back(
    shop: SourceSpec,
    zone: LandingZone,
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    # ~135 MB of records against a 128 MB load: DuckDB must spill, not fail or drop rows.
    pad = "x" * 400
    pages = [
        {"data": [{"id": page * 1000 + i, "amount": i, "pad": pad} for i in range(1000)]}
        for page in range(300)
    ]
    warehouse.execute("SET memory_limit = '2GiB'")
    warehouse.execute("SET threads = 2")
    settings = "SELECT current_setting('memory_limit'), current_setting('threads')"
    result = load_attempt(
        warehouse,
        spec=shop,
        endpoint="orders",
        attempt=land(zone, pages),
        partition="2025-03-01",
        run_id=RUN,
        memory_limit_mb=128,
    )
    assert (result.rows, result.dead_letters) == (300_000, 0)
    assert warehouse.execute(
        "SELECT count(DISTINCT _primary_key), sum((record ->> 'amount')::INT) "
        'FROM raw."shop__orders"'
    ).fetchall() == [(300_000, 300 * sum(range(1000)))]
    assert warehouse.execute(settings).fetchall() == [("2.0 GiB", 2)]  # the caller's, again


def test_a_load_starved_of_memory_says_which_setting_to_raise_and_writes_nothing(
    shop: SourceSpec,
    zone: LandingZone,
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    pages = [
        {"data": [{"id": page * 100 + i, "amount": i} for i in range(100)]} for page in range(20)
    ]
    with pytest.raises(
        LoadMemoryError,
        match=r"shop/orders partition 2025-03-01 ran out of "
        r"its 8 MB memory limit.*load_memory_mb",
    ):
        load_attempt(
            warehouse,
            spec=shop,
            endpoint="orders",
            attempt=land(zone, pages),
            partition="2025-03-01",
            run_id=RUN,
            memory_limit_mb=8,
        )
    assert rows(warehouse) == {}


def test_merge_replaces_only_the_keys_that_arrived_when_loading_incrementally(
    shop: SourceSpec,
    zone: LandingZone,
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    load_attempt(
        warehouse,
        spec=shop,
        endpoint="orders",
        partition="2025-03-01",
        run_id=RUN,
        attempt=land(zone, [{"data": [{"id": 1, "amount": 1}, {"id": 2, "amount": 2}]}]),
    )
    merged = load_attempt(
        warehouse,
        spec=shop,
        endpoint="orders",
        partition="2025-03-01",
        run_id="run-2",
        mode="merge",
        attempt=land(zone, [{"data": [{"id": 2, "amount": 20}, {"id": 3, "amount": 3}]}]),
    )
    assert (merged.rows, merged.rows_replaced) == (2, 1)
    assert rows(warehouse) == {
        "1": {"id": 1, "amount": 1},
        "2": {"id": 2, "amount": 20},
        "3": {"id": 3, "amount": 3},
    }


def test_records_that_break_the_contract_become_dead_letters_when_loaded(
    shop: SourceSpec,
    zone: LandingZone,
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    attempt = land(
        zone,
        [
            {"data": [{"id": 1, "amount": 1}]},
            {"data": [{"amount": 2}, "not a record", {"id": 4, "amount": "3.50"}, {"id": 5}]},
        ],
    )
    result = load_attempt(
        warehouse,
        spec=shop,
        endpoint="orders",
        attempt=attempt,
        partition="2025-03-01",
        run_id=RUN,
        on_breaking_drift="dead_letter",
    )
    assert (result.rows, result.dead_letters) == (1, 4)
    assert result.drift.breaking
    dead = warehouse.execute("""
        SELECT page, page_file, page_index, record, reason, run_id, partition_key
        FROM raw._dead_letters ORDER BY page_index""").fetchall()
    assert [(d[0], d[1], d[2]) for d in dead] == [
        (2, "page-000002.json.gz", i) for i in (1, 2, 3, 4)
    ]
    reasons = [d[4] for d in dead]
    assert "primary key 'id' is missing" in reasons[0]
    assert "required field 'id' is missing" in reasons[0]
    assert reasons[1].startswith("record is not a JSON object")
    assert reasons[2] == "field 'amount' is varchar, contract says integer/number"
    assert reasons[3] == "required field 'amount' is missing"
    assert json.loads(dead[2][3]) == {"id": 4, "amount": "3.50"}
    assert {(d[5], d[6]) for d in dead} == {(RUN, "2025-03-01")}


def test_reload_clears_the_partitions_dead_letters_when_the_data_is_fixed(
    shop: SourceSpec,
    zone: LandingZone,
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    load_attempt(
        warehouse,
        spec=shop,
        endpoint="orders",
        partition="2025-03-01",
        run_id=RUN,
        attempt=land(zone, [{"data": [{"id": 1, "amount": 1}, {"id": 2}]}]),
        on_breaking_drift="dead_letter",
    )
    assert warehouse.execute("SELECT count(*) FROM raw._dead_letters").fetchone() == (1,)
    load_attempt(
        warehouse,
        spec=shop,
        endpoint="orders",
        partition="2025-03-01",
        run_id="r2",
        attempt=land(zone, [{"data": [{"id": 1, "amount": 1}, {"id": 2, "amount": 2}]}]),
    )
    assert warehouse.execute("SELECT count(*) FROM raw._dead_letters").fetchone() == (0,)


def test_new_fields_load_and_join_the_contract_when_records_gain_a_field(
    shop: SourceSpec,
    zone: LandingZone,
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    load_attempt(
        warehouse,
        spec=shop,
        endpoint="orders",
        partition="2025-03-01",
        run_id=RUN,
        attempt=land(zone, [{"data": [{"id": 1, "amount": 1}]}]),
    )
    gained = load_attempt(
        warehouse,
        spec=shop,
        endpoint="orders",
        partition="2025-03-02",
        run_id=RUN,
        attempt=land(
            zone, [{"data": [{"id": 2, "amount": 2, "coupon": "SPRING"}]}], partition="2025-03-02"
        ),
    )
    assert (gained.rows, gained.dead_letters) == (1, 0)
    assert not gained.drift.breaking and not gained.contract_created
    assert gained.drift.new_fields == {"coupon": ["string"]}
    later = load_attempt(
        warehouse,
        spec=shop,
        endpoint="orders",
        partition="2025-03-03",
        run_id=RUN,
        attempt=land(zone, [{"data": [{"id": 3, "amount": 3}]}], partition="2025-03-03"),
    )
    assert later.drift.summary() == "matches the contract", "the new field is optional now"


def test_an_empty_partition_loads_nothing_and_learns_no_contract_when_no_records_came(
    shop: SourceSpec,
    zone: LandingZone,
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    empty = load_attempt(
        warehouse,
        spec=shop,
        endpoint="orders",
        partition="2025-03-01",
        run_id=RUN,
        attempt=land(zone, [{"data": []}]),
    )
    assert (empty.rows, empty.contract_created) == (0, False)
    assert warehouse.execute("SELECT count(*) FROM raw._contracts").fetchone() == (0,)
    nothing = load_attempt(
        warehouse,
        spec=shop,
        endpoint="orders",
        partition="2025-03-02",
        run_id=RUN,
        attempt=land(zone, [], partition="2025-03-02"),
    )
    assert nothing.rows == 0
    first = load_attempt(
        warehouse,
        spec=shop,
        endpoint="orders",
        partition="2025-03-03",
        run_id=RUN,
        attempt=land(zone, [{"data": [{"id": 1, "amount": 2}]}], partition="2025-03-03"),
    )
    assert first.contract_created


def test_nested_records_and_composite_keys_load_when_the_spec_says_where_they_are(
    shop: SourceSpec,
    zone: LandingZone,
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    attempt = land(
        zone,
        [{"result": {"items": [{"order_id": 1, "line": 1}, {"order_id": 1, "line": 2}]}}],
        endpoint="lines",
        partition=None,
    )
    result = load_attempt(
        warehouse, spec=shop, endpoint="lines", attempt=attempt, partition=None, run_id=RUN
    )
    assert result.rows == 2
    assert set(rows(warehouse, 'raw."shop__lines"')) == {"1|1", "1|2"}
    assert warehouse.execute(
        'SELECT DISTINCT _partition_key FROM raw."shop__lines"'
    ).fetchall() == [(UNPARTITIONED,)]


def test_relay_nodes_load_as_records_when_the_source_is_graphql(
    tmp_path: Path,
    zone: LandingZone,
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    (tmp_path / "tickets.graphql").write_text(
        "query T { viewer { tickets { edges { node { id } } } } }"
    )
    (tmp_path / "desk.yaml").write_text(SHOP_GRAPHQL)
    desk = load_spec(tmp_path / "desk.yaml", env={})
    page = {
        "data": {
            "viewer": {
                "tickets": {
                    "edges": [
                        {"node": {"id": "t1", "tags": []}},
                        {"node": {"id": "t2", "tags": ["x"]}},
                    ],
                    "pageInfo": {"hasNextPage": False},
                }
            }
        }
    }
    attempt = zone.open_attempt("desk", "tickets", None, RUN)
    attempt.write_page(
        1,
        json.dumps(page).encode(),
        records=2,
        url="u",
        fetched_at=FETCHED_AT,
        run_id=RUN,
        provenance=pulled(PageRequest("/graphql")),
    )
    result = load_attempt(
        warehouse, spec=desk, endpoint="tickets", attempt=attempt, partition=None, run_id=RUN
    )
    assert result.rows == 2
    assert rows(warehouse, 'raw."desk__tickets"') == {
        "t1": {"id": "t1", "tags": []},
        "t2": {"id": "t2", "tags": ["x"]},
    }


def test_manifest_is_the_only_checkpoint_when_a_page_file_exists_without_its_line(
    shop: SourceSpec,
    zone: LandingZone,
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    attempt = land(
        zone,
        [{"data": [{"id": 1, "amount": 1}]}, {"data": [{"id": 2, "amount": 2}]}],
        complete=False,
    )
    lines = attempt.manifest_path.read_bytes().splitlines(keepends=True)
    (attempt.folder / MANIFEST).write_bytes(lines[0])  # page 2's file landed, its line did not
    result = load_attempt(
        warehouse, spec=shop, endpoint="orders", attempt=attempt, partition="2025-03-01", run_id=RUN
    )
    assert result.rows == 1
    assert set(rows(warehouse)) == {"1"}


def test_pages_land_in_order_and_a_failed_write_stops_the_extraction_when_written_in_a_thread(
    zone: LandingZone,
) -> None:
    from integration_platform.landing.ingest import _PageWriter

    attempt = zone.open_attempt("shop", "orders", "2025-03-01", RUN, resume=False)

    def write(number: int) -> None:
        if number == 5:
            raise OSError("disk full")
        attempt.write_page(
            number,
            json.dumps({"data": [{"id": number}]}).encode(),
            records=1,
            url=f"http://127.0.0.1:9/orders?offset={number}",
            fetched_at=FETCHED_AT,
            run_id=RUN,
            provenance=pulled(
                PageRequest("/orders", {"offset": number}),
                PageRequest("/orders", {"offset": number + 1}),
            ),
        )

    async def extract() -> int:
        submitted = 0
        with _PageWriter(backlog=2) as writer:
            for number in range(1, 40):
                await writer.submit(write, number)
                submitted = number
            await writer.drain()
        return submitted

    with pytest.raises(OSError, match="disk full"):
        asyncio.run(extract())
    assert [entry.page for entry in attempt.entries()] == [1, 2, 3, 4]
    assert attempt.resume_point()[1] == PageRequest("/orders", {"offset": 5}).to_checkpoint()


def _shop_table(path: Path) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute(
            "SELECT _primary_key, record::VARCHAR, _page, _page_index, _partition_key, "
            '_request_url, _record_hash FROM raw."shop__orders" ORDER BY ALL'
        ).fetchall()


def _dead_letters(path: Path) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute(
            "SELECT page, page_index, reason FROM raw._dead_letters ORDER BY ALL"
        ).fetchall()


class StagedPages:
    """How many pages a Stager has staged so far: the real staging step it calls, counted."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = stage_module.stage

        def counted(*args: Any, **kwargs: Any) -> None:
            real(*args, **kwargs)
            self.count += len(args[4])  # the entries it was given

        monkeypatch.setattr(stager_module, "stage", counted)

    def wait_for(self, pages: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self.count < pages:
            assert time.monotonic() < deadline, f"{self.count} of {pages} pages staged"
            time.sleep(0.01)


def test_a_partition_staged_while_its_pages_land_loads_exactly_like_a_plain_load(
    shop: SourceSpec,
    zone: LandingZone,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    staged = StagedPages(monkeypatch)
    pages: list[Any] = [
        {"data": [{"id": page * 10 + i, "amount": i} for i in range(10)]} for page in range(7)
    ]
    pages[3]["data"][4] = {"id": 34, "amount": "lots"}  # breaks the contract: a dead letter
    pages[5]["data"][0] = {"id": 2, "amount": 99}  # a key seen on page 1: the later one wins
    plain = land(zone, pages)
    with duckdb.connect(str(tmp_path / "plain.duckdb")) as connection:
        expected = load_attempt(
            connection,
            spec=shop,
            endpoint="orders",
            attempt=plain,
            partition="2025-03-01",
            run_id=RUN,
            on_breaking_drift="dead_letter",
        )

    attempt = zone.open_attempt("shop", "orders", "2025-03-01", RUN, resume=False)
    with Stager(
        shop, "orders", attempt, temp_directory=tmp_path / "spill", chunk_pages=2, poll_seconds=0.01
    ) as stager:
        for number, body in enumerate(pages, start=1):  # pages land while the stager follows
            attempt.write_page(
                number,
                json.dumps(body).encode(),
                records=len(body["data"]),
                run_id=RUN,
                url=f"http://127.0.0.1:9/orders?offset={number - 1}",
                fetched_at=FETCHED_AT,
                provenance=pulled(PageRequest("/orders", {"offset": number - 1})),
            )
            if number % 2 == 0:  # a whole chunk landed: the stager takes it before the next
                staged.wait_for(number, seconds=30)
        staged_while_landing = staged.count
        attempt.mark_complete()
        result = stager.load(
            tmp_path / "staged.duckdb",
            partition="2025-03-01",
            run_id=RUN,
            on_breaking_drift="dead_letter",
        )

    assert staged_while_landing == 6  # three chunks of two, before the last page landed
    assert (result.rows, result.dead_letters) == (expected.rows, expected.dead_letters) == (68, 1)
    assert result.schema_hash == expected.schema_hash and result.preview == expected.preview
    assert result.drift.as_dict() == expected.drift.as_dict()
    assert _shop_table(tmp_path / "staged.duckdb") == _shop_table(tmp_path / "plain.duckdb")
    assert _dead_letters(tmp_path / "staged.duckdb") == [
        (4, 5, "field 'amount' is varchar, contract says integer/number")
    ]


def test_the_load_stages_everything_itself_when_staging_alongside_failed(
    shop: SourceSpec,
    zone: LandingZone,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pages = [{"data": [{"id": page * 10 + i, "amount": i} for i in range(10)]} for page in range(4)]
    attempt = land(zone, pages)

    def observe_fails(connection: Any, pages: Any = None) -> Any:
        raise duckdb.IOException("temp directory is full")

    monkeypatch.setattr(stager_module, "observe", observe_fails)  # the stager's, not the load's
    with Stager(shop, "orders", attempt, temp_directory=tmp_path / "spill") as stager:
        result = stager.load(tmp_path / "w.duckdb", partition="2025-03-01", run_id=RUN)
    assert (result.rows, result.dead_letters) == (40, 0)
    assert len(_shop_table(tmp_path / "w.duckdb")) == 40


# -- where records sit: one rule, read by the paginators and, as SQL, by the loader -------------

CONNECTION = {"viewer": {"tickets": {"edges": [{"node": {"id": "t1"}}, {"node": {"id": "t2"}}]}}}


@pytest.mark.parametrize(
    ("rule", "body"),
    [
        (RecordsRule("data"), {"data": [{"id": 1}, {"id": 2}], "total": 2}),
        (RecordsRule(""), [{"id": 1}, "text", 3]),
        (RecordsRule("result.items"), {"result": {"items": [{"id": 1}]}}),
        (RecordsRule("pages[1]"), {"pages": [[{"id": 0}], [{"id": 1}, {"id": 2}]]}),
        (RecordsRule("data"), {"data": []}),
        (RecordsRule("account", "list_or_object"), {"account": {"id": "acct_1"}}),
        (RecordsRule("account", "list_or_object"), {"account": [{"id": 1}, {"id": 2}]}),
        (RecordsRule("viewer.tickets", "connection"), CONNECTION),
        (
            RecordsRule("viewer.tickets", "connection"),
            {"viewer": {"tickets": {"nodes": [{"id": "n1"}], "pageInfo": {}}}},
        ),
    ],
)
def test_the_loader_finds_the_records_the_paginator_finds_when_given_the_same_rule(
    rule: RecordsRule, body: Any
) -> None:
    locator = rule_sql(rule)
    with duckdb.connect() as connection:
        [(found,)] = connection.execute(
            f"SELECT {locator.records} FROM (SELECT json, {locator.part} AS part "
            "FROM (SELECT ?::JSON AS json))",
            [json.dumps(body)],
        ).fetchall()
    assert [json.loads(record) for record in found] == rule.records(body)


@pytest.mark.parametrize(
    "provenance",
    [
        WebhookDelivery(route="/webhooks/shop", first_seq=1, last_seq=2),
        StreamBatch(stream="orders", first_event_id="7", last_event_id="8"),
    ],
)
def test_pushed_records_load_as_they_are_when_their_page_is_the_list_of_records(
    shop: SourceSpec,
    zone: LandingZone,
    warehouse: duckdb.DuckDBPyConnection,
    provenance: WebhookDelivery | StreamBatch,
) -> None:
    # `lines` holds its records at `result.items` in its API pages; a pushed page is the list.
    records = [{"order_id": 1, "line": 1}, {"order_id": 1, "line": 2}]
    attempt = zone.open_attempt("shop", "lines", None, RUN, resume=False)
    attempt.write_page(
        1,
        json.dumps(records).encode(),
        records=2,
        url="webhook:/webhooks/shop",
        fetched_at=FETCHED_AT,
        run_id=RUN,
        provenance=provenance,
    )
    attempt.mark_complete()
    assert attempt.entries()[0].provenance == provenance
    result = load_attempt(
        warehouse, spec=shop, endpoint="lines", attempt=attempt, partition=None, run_id=RUN
    )
    assert (result.rows, result.records_extracted) == (2, 2)
    assert rows(warehouse, 'raw."shop__lines"') == {"1|1": records[0], "1|2": records[1]}
    assert warehouse.execute('SELECT DISTINCT _request_url FROM raw."shop__lines"').fetchall() == [
        ("webhook:/webhooks/shop",)
    ]


def test_an_unfinished_attempt_resumes_when_its_manifest_predates_provenance(
    zone: LandingZone,
) -> None:
    attempt = zone.open_attempt("shop", "orders", "2025-03-01", RUN)
    (attempt.folder / "page-000001.json.gz").write_bytes(gzip.compress(b'{"data": []}'))
    line = {
        "page": 1,
        "file": "page-000001.json.gz",
        "records": 0,
        "bytes": 12,
        "sha256": hashlib.sha256(b'{"data": []}').hexdigest(),
        "url": "http://127.0.0.1:9/orders?offset=0",
        "fetched_at": FETCHED_AT.isoformat(),
        "run_id": RUN,
        "request": {"path": "/orders", "params": {"offset": 0}, "variables": None},
        "next_request": {"path": "/orders", "params": {"offset": 2}, "variables": None},
        "graphql_errors": [],
    }
    attempt.manifest_path.write_text(json.dumps(line) + "\n")
    landed, checkpoint, finished = attempt.resume_point()
    assert (landed, finished) == (1, False)
    assert checkpoint is not None
    assert PageRequest.from_checkpoint(checkpoint) == PageRequest("/orders", {"offset": 2})


# -- every load checks its counts, whatever the page's shape -----------------------------------

SHAPES = """
source: shapes
kind: rest
base_url: http://127.0.0.1:9
endpoints:
  bare:
    path: /bare
    records: ""
    primary_key: id
    pagination: {type: page_number, page_size: 2}
  account:
    path: /account
    primary_key: id
  listed:
    path: /listed
    records: items
    primary_key: id
    pagination: {type: cursor, cursor_path: next}
"""

PEOPLE_GRAPHQL = """
source: people
kind: graphql
base_url: http://127.0.0.1:9
endpoints:
  people:
    query_file: people.graphql
    records: allPeople.people
    primary_key: id
    pagination: {type: page_number, page_param: page, size_param: perPage, page_size: 2}
  nodes:
    query_file: people.graphql
    primary_key: id
    pagination: {type: relay, connection_path: peopleConnection}
"""


@pytest.fixture
def shapes(tmp_path: Path) -> SourceSpec:
    (tmp_path / "shapes.yaml").write_text(SHAPES)
    return load_spec(tmp_path / "shapes.yaml", env={})


def land_as_extracted(
    zone: LandingZone,
    spec: SourceSpec,
    endpoint: str,
    pages: list[tuple[Any, int]],
    partition: str | None = None,
) -> Attempt:
    """An attempt holding these (body, records the extractor counted) pages."""
    attempt = zone.open_attempt(spec.source, endpoint, partition, RUN, resume=False)
    for number, (body, records) in enumerate(pages, start=1):
        attempt.write_page(
            number,
            json.dumps(body).encode(),
            records=records,
            run_id=RUN,
            url=f"http://127.0.0.1:9/{endpoint}",
            fetched_at=FETCHED_AT,
            provenance=pulled(PageRequest(f"/{endpoint}")),
        )
    attempt.mark_complete()
    return attempt


def test_bare_array_bodies_load_every_record_when_records_is_the_root(
    shapes: SourceSpec,
    zone: LandingZone,
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    attempt = land_as_extracted(
        zone, shapes, "bare", [([{"id": 1}, {"id": 2}], 2), ([{"id": 3}], 1)]
    )
    result = load_attempt(
        warehouse, spec=shapes, endpoint="bare", attempt=attempt, partition=None, run_id=RUN
    )
    assert (result.rows, result.records_extracted) == (3, 3)
    assert set(rows(warehouse, 'raw."shapes__bare"')) == {"1", "2", "3"}
    assert result.drift.summary() == "matches the contract"


def test_a_single_object_body_is_one_record_when_the_endpoint_has_one_page(
    shapes: SourceSpec,
    zone: LandingZone,
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    attempt = land_as_extracted(zone, shapes, "account", [({"id": "acct_1", "plan": "pro"}, 1)])
    result = load_attempt(
        warehouse, spec=shapes, endpoint="account", attempt=attempt, partition=None, run_id=RUN
    )
    assert result.rows == 1
    assert rows(warehouse, 'raw."shapes__account"') == {"acct_1": {"id": "acct_1", "plan": "pro"}}


def test_load_fails_and_keeps_the_previous_rows_when_it_reads_fewer_records_than_extracted(
    shapes: SourceSpec,
    zone: LandingZone,
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    good = land_as_extracted(zone, shapes, "listed", [({"items": [{"id": 1}, {"id": 2}]}, 2)])
    load_attempt(
        warehouse, spec=shapes, endpoint="listed", attempt=good, partition=None, run_id=RUN
    )
    # The extraction counted three records on a page whose `items` the loader cannot see
    # (the API moved them): a load that said success here would lose them all.
    moved = land_as_extracted(
        zone, shapes, "listed", [({"results": [{"id": 1}, {"id": 2}, {"id": 3}]}, 3)]
    )
    with pytest.raises(LoadCountError) as error:
        load_attempt(
            warehouse, spec=shapes, endpoint="listed", attempt=moved, partition=None, run_id="r2"
        )
    message = str(error.value)
    assert "counted 3 records but the loader read 0" in message
    assert "page-000001.json.gz: 3 extracted, 0 read" in message
    assert str(moved.folder) in message
    assert set(rows(warehouse, 'raw."shapes__listed"')) == {"1", "2"}
    assert warehouse.execute("SELECT count(*) FROM raw._dead_letters").fetchall() == [(0,)]


def test_a_page_above_sixteen_megabytes_loads_when_the_api_sends_one(
    shapes: SourceSpec,
    zone: LandingZone,
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    records = [{"id": i, "text": "x" * 1000} for i in range(17_000)]  # about 17.3 MB
    attempt = land_as_extracted(zone, shapes, "bare", [(records, len(records))])
    assert attempt.entries()[0].bytes > 16 * 1024 * 1024
    result = load_attempt(
        warehouse, spec=shapes, endpoint="bare", attempt=attempt, partition=None, run_id=RUN
    )
    assert result.rows == 17_000


def test_graphql_records_load_from_their_path_inside_data_when_pages_are_numbered(
    tmp_path: Path,
    zone: LandingZone,
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    (tmp_path / "people.graphql").write_text(
        "query P($page: Int, $perPage: Int) { allPeople(page: $page, perPage: $perPage) "
        "{ people { id } } }"
    )
    (tmp_path / "people.yaml").write_text(PEOPLE_GRAPHQL)
    people = load_spec(tmp_path / "people.yaml", env={})
    attempt = land_as_extracted(
        zone,
        people,
        "people",
        [
            ({"data": {"allPeople": {"people": [{"id": "p1"}, {"id": "p2"}]}}}, 2),
            ({"data": {"allPeople": {"people": [{"id": "p3"}]}}}, 1),
        ],
    )
    result = load_attempt(
        warehouse, spec=people, endpoint="people", attempt=attempt, partition=None, run_id=RUN
    )
    assert result.rows == 3
    assert set(rows(warehouse, 'raw."people__people"')) == {"p1", "p2", "p3"}


def test_relay_nodes_load_when_the_connection_lists_nodes_without_edges(
    tmp_path: Path,
    zone: LandingZone,
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    (tmp_path / "people.graphql").write_text("query { peopleConnection { nodes { id } } }")
    (tmp_path / "people.yaml").write_text(PEOPLE_GRAPHQL)
    people = load_spec(tmp_path / "people.yaml", env={})
    attempt = land_as_extracted(
        zone,
        people,
        "nodes",
        [
            (
                {
                    "data": {
                        "peopleConnection": {
                            "nodes": [{"id": "n1"}, {"id": "n2"}],
                            "pageInfo": {"hasNextPage": False},
                        }
                    }
                },
                2,
            )
        ],
    )
    result = load_attempt(
        warehouse, spec=people, endpoint="nodes", attempt=attempt, partition=None, run_id=RUN
    )
    assert result.rows == 2


# -- a breaking drift holds the load -----------------------------------------------------------


def test_a_drifted_reload_leaves_the_previous_rows_in_place_when_the_contract_breaks(
    shop: SourceSpec,
    zone: LandingZone,
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    load_attempt(
        warehouse,
        spec=shop,
        endpoint="orders",
        partition="2025-03-01",
        run_id=RUN,
        attempt=land(zone, [{"data": [{"id": 1, "amount": 1}, {"id": 2, "amount": 2}]}]),
    )
    drifted = land(
        zone, [{"data": [{"id": 1, "total": 1}, {"id": 2, "total": 2}, {"id": 3, "total": 3}]}]
    )
    result = load_attempt(
        warehouse,
        spec=shop,
        endpoint="orders",
        partition="2025-03-01",
        run_id="r2",
        attempt=drifted,
    )
    assert result.held and result.drift.breaking
    assert (result.rows, result.rows_kept, result.records_extracted) == (0, 2, 3)
    assert result.drift.renamed == {"amount": "total"}
    assert rows(warehouse) == {"1": {"id": 1, "amount": 1}, "2": {"id": 2, "amount": 2}}
    assert warehouse.execute("SELECT count(*) FROM raw._dead_letters").fetchall() == [(0,)]
    assert drifted.entries()  # the new pages wait in the landing zone


def test_accepting_a_drift_loads_every_record_and_widens_the_contract_when_asked(
    shop: SourceSpec,
    zone: LandingZone,
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    load_attempt(
        warehouse,
        spec=shop,
        endpoint="orders",
        partition="2025-03-01",
        run_id=RUN,
        attempt=land(zone, [{"data": [{"id": 1, "amount": 1}]}]),
    )
    result = load_attempt(
        warehouse,
        spec=shop,
        endpoint="orders",
        partition="2025-03-01",
        run_id="r2",
        on_breaking_drift="accept",
        attempt=land(zone, [{"data": [{"id": 1, "amount": "1.00"}, {"id": 2}]}]),
    )
    assert (result.rows, result.dead_letters, result.drift_accepted) == (2, 0, True)
    stored = contracts.from_json(
        warehouse.execute("SELECT contract FROM raw._contracts").fetchall()[0][0]
    )
    assert stored["amount"] == FieldRule(frozenset({"integer", "number", "string"}), False)
    again = load_attempt(
        warehouse,
        spec=shop,
        endpoint="orders",
        partition="2025-03-01",
        run_id="r3",
        attempt=land(zone, [{"data": [{"id": 3}]}]),
    )
    assert not again.held and again.rows == 1


# -- primary keys: one rule (README, the raw layer) ---------------------------------------------

KEYS = """
source: keys
kind: rest
base_url: http://127.0.0.1:9
endpoints:
  orders:
    path: /orders
    records: data
    primary_key: id
    pagination: {type: offset, page_size: 100, total_path: total}
  lines:
    path: /lines
    records: data
    primary_key: [order_id, line]
    pagination: {type: offset, page_size: 100, total_path: total}
"""
NOT_A_KEY = "; a key must be a string or an integer"


@pytest.fixture
def keys(tmp_path: Path) -> SourceSpec:
    (tmp_path / "keys.yaml").write_text(KEYS)
    return load_spec(tmp_path / "keys.yaml", env={})


def load_keys(
    warehouse: duckdb.DuckDBPyConnection,
    spec: SourceSpec,
    attempt: Attempt,
    endpoint: str = "orders",
    mode: Literal["replace", "merge"] = "replace",
) -> LoadResult:
    result = load_attempt(
        warehouse,
        spec=spec,
        endpoint=endpoint,
        attempt=attempt,
        partition="2025-03-01",
        run_id=RUN,
        mode=mode,
    )
    assert not result.held
    # The load invariant holds whatever the keys.
    assert result.rows + result.dead_letters + result.duplicates == result.records_extracted
    return result


def key_dead_letters(warehouse: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    found = warehouse.execute(
        "SELECT record, reason FROM raw._dead_letters ORDER BY page, page_index"
    ).fetchall()
    return [(json.loads(record), reason) for record, reason in found]


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (True, "primary key 'id' is the boolean true" + NOT_A_KEY),
        (False, "primary key 'id' is the boolean false" + NOT_A_KEY),
        ({"value": 1}, "primary key 'id' is an object" + NOT_A_KEY),
        ([1], "primary key 'id' is a list" + NOT_A_KEY),
        (None, "primary key 'id' is null"),
        ("", "primary key 'id' is an empty string"),
        ("   ", "primary key 'id' is blank (only spaces)"),
        ("ord\x001", "primary key 'id' holds the control character U+0000"),
        ("ord\n1", "primary key 'id' holds the control character U+000A"),
        ("ord\x851", "primary key 'id' holds the control character U+0085"),
        (1.5, "primary key 'id' is the number 1.5, with a fraction or an exponent" + NOT_A_KEY),
        (2.0, "primary key 'id' is the number 2.0, with a fraction or an exponent" + NOT_A_KEY),
    ],
)
def test_a_key_that_cannot_be_a_key_goes_to_dead_letters_with_its_reason_when_loaded(
    keys: SourceSpec,
    zone: LandingZone,
    warehouse: duckdb.DuckDBPyConnection,
    key: Any,
    reason: str,
) -> None:
    bad = {"id": key, "amount": 2}
    result = load_keys(warehouse, keys, land(zone, [{"data": [{"id": 1, "amount": 1}, bad]}]))
    assert (result.rows, result.dead_letters, result.duplicates) == (1, 1, 0)
    assert rows(warehouse, 'raw."keys__orders"') == {"1": {"id": 1, "amount": 1}}
    assert key_dead_letters(warehouse) == [(bad, reason)]


def test_a_record_without_its_key_goes_to_dead_letters_naming_the_key_when_loaded(
    keys: SourceSpec, zone: LandingZone, warehouse: duckdb.DuckDBPyConnection
) -> None:
    result = load_keys(warehouse, keys, land(zone, [{"data": [{"amount": 1}, "text"]}]))
    assert (result.rows, result.dead_letters) == (0, 2)
    assert key_dead_letters(warehouse) == [
        ({"amount": 1}, "primary key 'id' is missing"),
        (
            "text",
            "record is not a JSON object; primary key 'id' is missing; "
            "required field 'amount' is missing",  # the contract learnt from the other record
        ),
    ]


def test_strings_and_integers_are_keys_by_their_text_when_loaded(
    keys: SourceSpec, zone: LandingZone, warehouse: duckdb.DuckDBPyConnection
) -> None:
    big = 123456789012345678901234567890  # beyond 64 bits: still an integer, digits kept
    records = [
        {"id": 1, "amount": 1},
        {"id": "1", "amount": 2},  # the same key as 1: the later record wins
        {"id": "01", "amount": 3},
        {"id": " 1", "amount": 4},
        {"id": "1.0", "amount": 5},
        {"id": -5, "amount": 6},
        {"id": 18446744073709551615, "amount": 7},
        {"id": big, "amount": 8},
        {"id": "ABC", "amount": 9},
        {"id": "abc", "amount": 10},
        {"id": "café|42", "amount": 11},
    ]
    result = load_keys(warehouse, keys, land(zone, [{"data": records}]))
    assert (result.rows, result.dead_letters, result.duplicates) == (10, 0, 1)
    assert {k: r["amount"] for k, r in rows(warehouse, 'raw."keys__orders"').items()} == {
        "1": 2,
        "01": 3,
        " 1": 4,
        "1.0": 5,
        "-5": 6,
        "18446744073709551615": 7,
        str(big): 8,
        "ABC": 9,
        "abc": 10,
        "café|42": 11,
    }
    # A push (merge) of "-5" as a string replaces the integer's row: one key.
    merged = load_keys(
        warehouse, keys, land(zone, [{"data": [{"id": "-5", "amount": 60}]}]), mode="merge"
    )
    assert (merged.rows, merged.rows_replaced) == (1, 1)
    assert rows(warehouse, 'raw."keys__orders"')["-5"] == {"id": "-5", "amount": 60}


def test_a_composite_key_applies_the_rule_to_each_part_when_loaded(
    keys: SourceSpec, zone: LandingZone, warehouse: duckdb.DuckDBPyConnection
) -> None:
    records = [
        {"order_id": "a|b", "line": "c"},
        {"order_id": "a", "line": "b|c"},  # not the same key as the one above
        {"order_id": 7, "line": "7"},
        {"order_id": "back\\slash", "line": 1},
        {"order_id": 8, "line": True},
        {"order_id": {"id": 8}, "line": ""},
        {"order_id": 9},
    ]
    result = load_keys(warehouse, keys, land(zone, [{"data": records}], endpoint="lines"), "lines")
    assert (result.rows, result.dead_letters, result.duplicates) == (4, 3, 0)
    assert set(rows(warehouse, 'raw."keys__lines"')) == {
        "a\\|b|c",
        "a|b\\|c",
        "7|7",
        "back\\\\slash|1",
    }
    assert [reason for _, reason in key_dead_letters(warehouse)] == [
        "primary key 'line' is the boolean true" + NOT_A_KEY,
        "primary key 'order_id' is an object"
        + NOT_A_KEY
        + "; primary key 'line' is an empty string",
        "primary key 'line' is missing",
    ]


# -- one run at a time per partition -----------------------------------------------------------


def test_a_second_run_fails_naming_the_holder_when_the_partition_stays_leased(
    tmp_path: Path,
) -> None:
    from integration_platform.landing.lease import PartitionBusyError, PartitionLease

    def lease(run_id: str, timeout: float) -> PartitionLease:
        return PartitionLease(
            tmp_path / "shop" / "orders" / "2025-03-01",
            run_id=run_id,
            what="shop/orders partition 2025-03-01",
            timeout_seconds=timeout,
            poll_seconds=0.01,
        )

    async def scenario() -> str:
        async with lease("run-one", 1).held():
            with pytest.raises(PartitionBusyError) as busy:
                await lease("run-two", 0.1).acquire()
        async with lease("run-three", 0.1).held() as waited:  # free again once released
            assert waited < 0.1
        return str(busy.value)

    message = asyncio.run(scenario())
    assert "shop/orders partition 2025-03-01 is being materialized by run run-one" in message
    assert "lease_timeout_seconds" in message
