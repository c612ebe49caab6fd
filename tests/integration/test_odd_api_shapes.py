"""Shapes the sandbox does not have, end to end through Dagster into DuckDB over real HTTP:
bare JSON arrays, one-object bodies, a page above 16 MB, GraphQL paging through variables
and Relay `nodes`. Every record served must be a row, and a spec that misreads a shape must
fail, never succeed with rows missing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dagster import (
    AssetKey,
    AssetsDefinition,
    DagsterInstance,
    ExecuteInProcessResult,
    materialize,
)

from integration_platform.assets.partitions import register_clients
from integration_platform.assets.raw import api_resource_key, raw_assets
from integration_platform.assets.resources import (
    LandingZoneResource,
    WarehouseResource,
    api_resource,
)
from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.extraction.to_files import extract_to_directory
from integration_platform.logs import ensure_logging
from integration_platform.specs.loader import load_spec
from integration_platform.specs.models import SourceSpec
from integration_platform.webhooks.server import ReceiverServer
from tests.integration import odd_apis

REST_SPEC = """
source: oddrest
kind: rest
base_url: {url}
endpoints:
  people:
    path: /people
    records: ""
    primary_key: id
    pagination: {{type: page_number, page_param: page, size_param: per_page, page_size: 10}}
  account:
    path: /account
    primary_key: id
  export:
    path: /export
    records: ""
    primary_key: id
"""

GRAPHQL_SPEC = """
source: oddgql
kind: graphql
base_url: {url}
endpoints:
  all_people:
    query_file: all_people.graphql
    records: allPeople.people
    primary_key: id
    pagination: {{type: page_number, page_param: page, size_param: perPage, page_size: 10,
                 total_pages_path: allPeople.totalPages}}
  people_slice:
    query_file: people_slice.graphql
    records: peopleSlice.items
    primary_key: id
    pagination: {{type: offset, offset_param: offset, limit_param: limit, page_size: 7,
                 total_path: peopleSlice.total}}
  people_nodes:
    query_file: people_nodes.graphql
    primary_key: id
    pagination: {{type: relay, connection_path: peopleConnection, page_size: 5}}
"""

QUERIES = {
    "all_people.graphql": "query People($page: Int, $perPage: Int) { allPeople(page: $page, "
    "perPage: $perPage) { totalPages people { id given_name dob } } }",
    "people_slice.graphql": "query Slice($limit: Int, $offset: Int) { peopleSlice("
    "limit: $limit, offset: $offset) { total items { id family_name } } }",
    "people_nodes.graphql": "query Nodes($first: Int, $after: String) { peopleConnection("
    "first: $first, after: $after) { pageInfo { hasNextPage endCursor } "
    "nodes { id given_name } } }",
}


@pytest.fixture(scope="module")
def odd_api() -> Iterator[str]:
    with ReceiverServer(odd_apis.create_app(), port=0) as server:
        yield server.url


def write_specs(folder: Path, url: str, *replacements: tuple[str, str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, query in QUERIES.items():
        (folder / name).write_text(query)
    files = []
    for name, text in (("oddrest.yaml", REST_SPEC), ("oddgql.yaml", GRAPHQL_SPEC)):
        text = text.format(url=url)
        for old, new in replacements:
            text = text.replace(old, new)
        (folder / name).write_text(text)
        files.append(folder / name)
    return files


def run(
    specs: dict[str, SourceSpec], data: Path, keys: list[tuple[str, str]] | None = None
) -> ExecuteInProcessResult:
    resources: dict[str, Any] = {
        "warehouse": WarehouseResource(path=str(data / "warehouse.duckdb"), publish=False),
        "landing": LandingZoneResource(root=str(data / "landing"), state_root=str(data / "state")),
        **{api_resource_key(name): api_resource(spec) for name, spec in specs.items()},
    }
    assets: list[AssetsDefinition] = raw_assets(specs, retry_policy=None)
    if keys is not None:
        assets = [a for a in assets if a.key in {AssetKey(["raw", *k]) for k in keys}]
    instance = DagsterInstance.ephemeral()
    register_clients(instance, DEMO_CLIENT_ID)
    return materialize(
        assets,
        resources=resources,
        partition_key=DEMO_CLIENT_ID,
        instance=instance,
        raise_on_error=False,
    )


def row_counts(data: Path) -> dict[str, int]:
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as connection:
        tables = [
            t
            for (t,) in connection.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'raw' "
                "AND table_name NOT LIKE '\\_%' ESCAPE '\\'"
            ).fetchall()
        ]
        return {
            t: connection.execute(f'SELECT count(*) FROM raw."{t}"').fetchall()[0][0]
            for t in tables
        }


def test_every_record_of_every_odd_shape_is_a_row_when_materialized(
    odd_api: str,
    tmp_path: Path,
) -> None:
    specs = {
        s.source: s
        for s in (load_spec(f, env={}) for f in write_specs(tmp_path / "specs", odd_api))
    }
    result = run(specs, tmp_path / "data")
    assert result.success
    people = odd_apis.PEOPLE
    assert row_counts(tmp_path / "data") == {
        "oddrest__people": people,
        "oddrest__account": 1,
        "oddrest__export": odd_apis.EXPORT_ROWS,
        "oddgql__all_people": people,
        "oddgql__people_slice": people,
        "oddgql__people_nodes": people,
    }
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        assert metadata["records"].value == metadata["rows_loaded"].value, event.asset_key
    with duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True) as db:
        # Pages 1..3 of ten people each: the third page is short and ends the listing.
        assert db.execute(
            'SELECT _page, count(*) FROM raw."oddrest__people" GROUP BY 1 ORDER BY 1'
        ).fetchall() == [(1, 10), (2, 10), (3, 3)]
        assert db.execute(
            "SELECT record->>'dob' FROM raw.\"oddgql__all_people\" WHERE _primary_key = 'p000'"
        ).fetchall() == [("19500101",)]


def test_the_extraction_summary_counts_graphql_records_when_they_sit_under_data(
    odd_api: str,
    tmp_path: Path,
) -> None:
    [_, graphql_file] = write_specs(tmp_path / "specs", odd_api)
    spec = load_spec(graphql_file, env={})
    summary = asyncio.run(extract_to_directory(spec, "all_people", tmp_path / "out"))
    assert (summary.records, summary.pages) == (odd_apis.PEOPLE, 3)


def test_every_graphql_record_lands_with_one_warning_a_run_when_the_api_hides_its_schema(
    odd_api: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Introspection answered with `{"data": {"__schema": null}}`: gql's "Invalid or incomplete
    # introspection result" TypeError used to fail the first request.
    ensure_logging()
    [_, graphql_file] = write_specs(
        tmp_path / "specs",
        odd_api,
        ("kind: graphql\n", "kind: graphql\ngraphql_path: /graphql-hidden\n"),
    )
    specs = {"oddgql": load_spec(graphql_file, env={})}
    runs = [run(specs, tmp_path / "data"), run(specs, tmp_path / "data")]
    assert all(result.success for result in runs)
    assert row_counts(tmp_path / "data") == {
        "oddgql__all_people": odd_apis.PEOPLE,
        "oddgql__people_slice": odd_apis.PEOPLE,
        "oddgql__people_nodes": odd_apis.PEOPLE,
    }
    warned = [
        record.msg
        for record in caplog.records
        if isinstance(record.msg, dict)
        and record.msg.get("event") == "graphql_schema_not_validated"
    ]
    # Three endpoints, each opening its own client, in each of two runs: one warning a run.
    assert [(w["source"], w["run_id"]) for w in warned] == [
        ("oddgql", result.run_id) for result in runs
    ]
    assert all("graphql_validate: false" in w["hint"] for w in warned)
    assert all("no usable __schema" in w["answer"] for w in warned)


def test_a_503_with_graphql_errors_is_retried_and_the_schema_still_checked_when_a_gateway_is_busy(
    odd_api: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ensure_logging()
    [_, graphql_file] = write_specs(
        tmp_path / "specs",
        odd_api,
        (
            "kind: graphql\n",
            "kind: graphql\ngraphql_path: /graphql-busy\n"
            "retry: {initial_delay_seconds: 0.01, max_delay_seconds: 0.05}\n",
        ),
    )
    spec = load_spec(graphql_file, env={})
    summary = asyncio.run(extract_to_directory(spec, "all_people", tmp_path / "out"))
    assert (summary.records, summary.pages) == (odd_apis.PEOPLE, 3)
    assert summary.retries == 3  # each page's first try was turned away
    # The introspection was retried too, not taken for a refusal: no warning.
    assert not [
        record
        for record in caplog.records
        if isinstance(record.msg, dict)
        and record.msg.get("event") == "graphql_schema_not_validated"
    ]


KEYS_SPEC = """
source: oddkeys
kind: rest
base_url: {url}
endpoints:
  things:
    path: /keys
    records: ""
    primary_key: id
"""


def test_records_whose_keys_cannot_be_keys_are_dead_letters_with_reasons_when_materialized(
    odd_api: str, tmp_path: Path
) -> None:
    (tmp_path / "oddkeys.yaml").write_text(KEYS_SPEC.format(url=odd_api))
    result = run({"oddkeys": load_spec(tmp_path / "oddkeys.yaml", env={})}, tmp_path / "data")
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    refused = [(n, reason) for n, (_, reason) in enumerate(odd_apis.ODD_KEYS) if reason]
    assert metadata["records"].value == len(odd_apis.ODD_KEYS)
    assert metadata["dead_letters"].value == len(refused)
    assert metadata["duplicates_superseded"].value == 1
    with duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True) as db:
        assert db.execute(
            "SELECT _primary_key, (record->>'n')::INT FROM raw.\"oddkeys__things\" ORDER BY 1"
        ).fetchall() == [("42", 2), ("k-1", 0)]
        assert (
            db.execute(
                "SELECT (record->>'n')::INT, reason FROM raw._dead_letters "
                "WHERE source = 'oddkeys' AND endpoint = 'things' ORDER BY page_index"
            ).fetchall()
            == refused
        )


@pytest.mark.parametrize(
    ("replacement", "endpoint", "says"),
    [
        (
            (
                'records: ""\n    primary_key: id\n    pagination: {type: page_number',
                "records: data\n    primary_key: id\n    pagination: {type: page_number",
            ),
            ("oddrest", "people"),
            "expected an object at the top level to look up 'data'",
        ),
        (
            ("records: allPeople.people", "records: allPeople.persons"),
            ("oddgql", "all_people"),
            "no key 'persons'",
        ),
    ],
)
def test_a_run_fails_saying_where_it_looked_when_the_records_path_misreads_the_shape(
    odd_api: str,
    tmp_path: Path,
    replacement: tuple[str, str],
    endpoint: tuple[str, str],
    says: str,
) -> None:
    files = write_specs(tmp_path / "specs", odd_api, replacement)
    specs = {s.source: s for s in (load_spec(f, env={}) for f in files)}
    result = run(specs, tmp_path / "data", [endpoint])
    assert not result.success
    [failure] = result.get_step_failure_events()
    assert says in str(failure.event_specific_data.error)  # type: ignore[union-attr]
    assert f"{endpoint[0]}__{endpoint[1]}" not in row_counts(tmp_path / "data")
