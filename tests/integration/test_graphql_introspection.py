"""GraphQL sources whose API refuses introspection (Apollo Server's production default) are
extracted unvalidated with one warning; APIs that answer it still have every query document
checked before the first page; `graphql_validate: false` skips introspection altogether.

Run through `integration-platform extract support.tickets` against the sandbox's support
vendor over real HTTP, with its introspection switched off where the test says so.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from integration_platform import environment
from integration_platform.cli import main
from integration_platform_sandbox.server import Sandbox
from integration_platform_sandbox.world import SandboxCredentials, SandboxSettings
from tests.conftest import TEST_CUSTOMERS, TEST_SEED

SOURCES = environment.PROJECT_ROOT / "sources"
WARNING = "graphql_schema_not_validated"
# A field the support API's Ticket type does not have.
BAD_FIELD = "priorityLevel"


@pytest.fixture(scope="module")
def closed_sandbox(sandbox_credentials: SandboxCredentials) -> Iterator[Sandbox]:
    """The sandbox with support refusing introspection, as Apollo Server does in production."""
    server = Sandbox(
        SandboxSettings(seed=TEST_SEED, customers=TEST_CUSTOMERS, support_introspection=False),
        sandbox_credentials,
        base_port=0,
    ).start()
    yield server
    server.stop()


def support_spec(folder: Path, *, validate: bool | None = None, bad_query: bool = False) -> Path:
    """A copy of the shipped support spec and its queries, changed as asked."""
    folder.mkdir(parents=True)
    shutil.copytree(SOURCES / "queries", folder / "queries")
    text = (SOURCES / "support.yaml").read_text()
    if validate is not None:
        text = text.replace(
            "graphql_path: /graphql\n",
            f"graphql_path: /graphql\ngraphql_validate: {str(validate).lower()}\n",
        )
    (folder / "support.yaml").write_text(text)
    if bad_query:
        query = folder / "queries" / "support_tickets.graphql"
        query.write_text(query.read_text().replace("subject status", f"subject {BAD_FIELD}"))
    return folder / "support.yaml"


def extract(sandbox: Sandbox, spec: Path, tmp_path: Path, endpoint: str = "tickets") -> Result:
    env = {
        **os.environ,
        "SOURCES_PATH": str(spec),
        "SUPPORT_BASE_URL": sandbox.urls["support"],
        "INTEGRATION_PLATFORM_DATA_DIR": str(tmp_path / "data"),
    }
    out = tmp_path / "out"
    return CliRunner().invoke(
        main, ["extract", f"support.{endpoint}", "--out", str(out), "--full-refresh"], env=env
    )


def warnings(result: Result) -> list[dict[str, Any]]:
    """The JSON log lines of the schema warning the command printed on stderr."""
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == WARNING]


def support_stats(sandbox: Sandbox) -> dict[str, Any]:
    response = httpx.get(f"{sandbox.urls['support']}/_sandbox/stats", timeout=10)
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    return stats


def pages_written(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "out").glob("page-*.json"))


def test_every_ticket_lands_with_one_warning_when_the_api_refuses_introspection(
    closed_sandbox: Sandbox, tmp_path: Path
) -> None:
    refused_before = support_stats(closed_sandbox)["rejected_queries"]["introspection"]
    result = extract(closed_sandbox, support_spec(tmp_path / "specs"), tmp_path)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    stats = support_stats(closed_sandbox)
    assert summary["records"] == stats["counts"]["tickets"] > 0
    assert summary["pages"] == len(pages_written(tmp_path)) > 1
    assert stats["rejected_queries"]["introspection"] == refused_before + 1
    # One warning for the run, not one per page; it says what happened and how to silence it.
    [warning] = warnings(result)
    assert warning["level"] == "warning"
    assert warning["source"] == "support"
    assert warning["status"] == 400
    assert "refused introspection" in warning["reason"]
    assert "without schema validation" in warning["reason"]
    assert "graphql_validate: false" in warning["hint"]
    assert "introspection has been disabled" in warning["answer"]


def test_no_introspection_is_sent_and_nothing_warned_when_the_spec_turns_validation_off(
    closed_sandbox: Sandbox, tmp_path: Path
) -> None:
    refused_before = support_stats(closed_sandbox)["rejected_queries"]["introspection"]
    result = extract(closed_sandbox, support_spec(tmp_path / "specs", validate=False), tmp_path)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    stats = support_stats(closed_sandbox)
    assert summary["records"] == stats["counts"]["tickets"] > 0
    assert stats["rejected_queries"]["introspection"] == refused_before
    assert warnings(result) == []


def test_extraction_fails_naming_the_query_file_before_any_page_when_the_query_does_not_fit(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    result = extract(sandbox, support_spec(tmp_path / "specs", bad_query=True), tmp_path)
    assert result.exit_code != 0
    assert (
        "support.tickets: the query in queries/support_tickets.graphql does not fit the API's "
        f"schema: Cannot query field '{BAD_FIELD}' on type 'Ticket'." in result.output
    ), result.output
    assert "Update the .graphql file" in result.output
    assert pages_written(tmp_path) == []
    assert warnings(result) == []


def test_a_query_that_does_not_fit_fails_on_the_api_errors_when_validation_is_off(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    spec = support_spec(tmp_path / "specs", validate=False, bad_query=True)
    result = extract(sandbox, spec, tmp_path)
    assert result.exit_code != 0
    # Not checked here, so the API itself says what is wrong, on the first page.
    assert "does not fit the API's schema" not in result.output
    assert "the API answered HTTP 400 with 1 GraphQL error(s)" in result.output, result.output
    assert f"Cannot query field '{BAD_FIELD}' on type 'Ticket'." in result.output
    assert "check the query file against its schema" in result.output
    assert pages_written(tmp_path) == []
