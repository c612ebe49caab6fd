"""Every GraphQL operation the platform sends to Dagster is valid against the installed
dagster-graphql schema: a renamed field fails here, not against a live webserver."""

from __future__ import annotations

import pytest
from dagster_graphql.schema import create_schema
from graphql import parse, validate

from integration_platform.orchestration import orchestrator, runs

OPERATIONS = {
    "AssetGraph": orchestrator.ASSET_GRAPH_QUERY,
    "Launch": orchestrator.LAUNCH_MUTATION,
    "AddClient": orchestrator.ADD_PARTITION_MUTATION,
    "Repositories": orchestrator.REPOSITORIES_QUERY,
    "Terminate": orchestrator.TERMINATE_MUTATION,
    "Runs": runs.RUNS_QUERY,
    "Logs": runs.LOGS_QUERY,
    "AssetsLatest": runs.ASSETS_LATEST_QUERY,
}


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_the_operation_is_valid_against_dagsters_schema_when_sent(name: str) -> None:
    schema = create_schema().graphql_schema
    errors = validate(schema, parse(OPERATIONS[name]))
    assert errors == [], [e.message for e in errors]


def test_an_unknown_field_is_reported_when_validated() -> None:
    schema = create_schema().graphql_schema
    errors = validate(schema, parse("query Q { assetsLatestInfo(assetKeys: []) { nope } }"))
    assert errors
