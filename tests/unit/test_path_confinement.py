"""Names from specs and command lines never lead a path out of its folder.

First line: specs refuse such names at load time, naming the file and key. Second line: every
path builder refuses them again, for names that never went through a spec.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from integration_platform.cli import main
from integration_platform.extraction.state import IncrementalState
from integration_platform.http.ratelimit import SharedRateLimiter
from integration_platform.landing.warehouse import Warehouse
from integration_platform.landing.zone import LandingZone
from integration_platform.paths import UnsafePathError, path_under
from integration_platform.specs.loader import SpecError, load_spec
from integration_platform.streams.raw_sink import RawStreamSink
from tests.unit.test_specs import ENV, GOOD, write

ESCAPES = ["..", "../../../tmp/owned", "a/b", "/etc", "x\0y", "é" * 200]

GRAPHQL = """
source: desk
kind: graphql
base_url: ${SHOP_URL}
endpoints:
  tickets:
    primary_key: id
    query_file: QUERY
    pagination: {type: relay, connection_path: tickets}
"""


def files_under(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


@pytest.mark.parametrize("name", ["../../../tmp/owned", "Usage", "a" * 64, "x.y"])
def test_spec_is_refused_naming_the_stream_when_its_stream_name_could_leave_the_data_folder(
    tmp_path: Path, name: str
) -> None:
    text = GOOD + f'streams:\n  "{name}": {{path: /stream, endpoint: orders}}\n'
    with pytest.raises(SpecError) as caught:
        load_spec(write(tmp_path, text), env=ENV)
    message = str(caught.value)
    assert "shop.yaml" in message
    assert f"stream name {name!r}" in message and "lowercase letters, digits and _" in message


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("endpoint", GOOD.replace("  orders:", '  "../orders":')),
        ("source", GOOD.replace("source: shop", "source: " + "s" * 300)),
    ],
)
def test_spec_is_refused_naming_the_name_when_an_endpoint_or_source_name_is_unsafe(
    tmp_path: Path, field: str, text: str
) -> None:
    with pytest.raises(SpecError, match=f"{field} name .*: use 1 to 63 lowercase letters"):
        load_spec(write(tmp_path, text), env=ENV)


def test_spec_loads_with_its_stream_when_the_stream_name_is_plain(tmp_path: Path) -> None:
    text = GOOD + "streams:\n  order_events: {path: /stream, endpoint: orders}\n"
    assert list(load_spec(write(tmp_path, text), env=ENV).streams) == ["order_events"]


@pytest.mark.parametrize(
    "query_file", ["../outside.graphql", "{outside}", "sub/../../outside.graphql"]
)
def test_spec_is_refused_when_its_query_file_is_outside_the_spec_folder(
    tmp_path: Path, query_file: str
) -> None:
    outside = tmp_path / "outside.graphql"
    outside.write_text("{ tickets { edges { node { id } } } }")
    specs = tmp_path / "specs"
    (specs / "sub").mkdir(parents=True)
    spec_file = write(
        specs, GRAPHQL.replace("QUERY", query_file.format(outside=outside)), "desk.yaml"
    )
    with pytest.raises(SpecError) as caught:
        load_spec(spec_file, env=ENV)
    assert "endpoints.tickets.query_file" in str(caught.value)
    assert "outside the spec's folder" in str(caught.value)


def test_spec_is_refused_when_its_query_file_links_outside_the_spec_folder(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("not a query")
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "tickets.graphql").symlink_to(outside)
    spec_file = write(specs, GRAPHQL.replace("QUERY", "tickets.graphql"), "desk.yaml")
    with pytest.raises(SpecError, match="outside the spec's folder"):
        load_spec(spec_file, env=ENV)


def test_query_is_read_when_its_file_is_in_a_subfolder_of_the_spec(tmp_path: Path) -> None:
    (tmp_path / "queries").mkdir()
    (tmp_path / "queries" / "tickets.graphql").write_text("{ tickets { pageInfo { endCursor } } }")
    spec = load_spec(
        write(tmp_path, GRAPHQL.replace("QUERY", "queries/tickets.graphql"), "desk.yaml"), env=ENV
    )
    assert spec.query_text("tickets").startswith("{ tickets")


# -- second line: the path builders themselves -------------------------------------------------


@pytest.mark.parametrize("name", ESCAPES)
def test_landing_zone_refuses_and_writes_nothing_when_a_name_would_leave_its_root(
    tmp_path: Path, name: str
) -> None:
    root = tmp_path / "landing"
    zone = LandingZone(root)
    for source, endpoint, partition in [(name, "e", None), ("s", name, None), ("s", "e", name)]:
        with pytest.raises(UnsafePathError, match="cannot name a file or folder"):
            zone.open_attempt(source, endpoint, partition, "run-1")
    assert files_under(tmp_path) == set()


@pytest.mark.parametrize("name", ESCAPES)
def test_incremental_state_refuses_and_writes_nothing_when_a_name_would_leave_its_root(
    tmp_path: Path, name: str
) -> None:
    state = IncrementalState(tmp_path / "state")
    with pytest.raises(UnsafePathError):
        state.set(name, "contacts", None, "2025-01-01")
    with pytest.raises(UnsafePathError):
        state.set("crm", name, None, "2025-01-01")
    assert files_under(tmp_path) == set()


def test_rate_limit_state_stays_in_its_folder_whatever_the_source_is_called(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "ratelimit"
    for source in ["../../owned", "a/b", ".."]:
        limiter = SharedRateLimiter(source, 100.0, state_dir=folder)
        assert limiter.state_path is not None and limiter.state_path.parent == folder
    with pytest.raises(UnsafePathError):
        SharedRateLimiter("s" * 300, 100.0, state_dir=folder)
    assert {p.parent for p in files_under(tmp_path) if p.is_file()} <= {folder}


@pytest.mark.parametrize("name", ESCAPES)
def test_stream_sink_refuses_before_landing_anything_when_a_stream_name_would_leave_its_root(
    tmp_path: Path, name: str
) -> None:
    text = GOOD.replace("primary_key: id", "primary_key: id\n    partitions: {type: none}")
    spec = load_spec(
        write(tmp_path, text + "streams:\n  ok: {path: /s, endpoint: orders}\n"), env=ENV
    )
    # As a spec built in code (not loaded from YAML) could be: no validation ran on it.
    unchecked = spec.model_copy(update={"streams": {name: spec.streams["ok"]}})
    before = files_under(tmp_path)
    with pytest.raises(UnsafePathError, match="stream name"):
        RawStreamSink(
            unchecked,
            name,
            warehouse=Warehouse(tmp_path / "w.duckdb"),
            landing_root=tmp_path / "landing",
            run_id="run-1",
        )
    assert files_under(tmp_path) == before


def test_path_under_builds_the_path_when_every_name_is_plain(tmp_path: Path) -> None:
    assert path_under(tmp_path, "crm", "contacts", "2025-03-01") == (
        tmp_path / "crm" / "contacts" / "2025-03-01"
    )


# -- the command line --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "partition", ["x" * 5000, "../../../../tmp/owned", "2025-02-30", "2025-W09-6"]
)
def test_extract_says_the_partition_is_not_a_day_and_makes_no_folder_when_the_key_is_bad(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, partition: str
) -> None:
    monkeypatch.setenv("INTEGRATION_PLATFORM_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(main, ["extract", "crm.contacts", "--partition", partition])
    assert result.exit_code == 2, result.output
    assert "Invalid value for --partition" in result.output
    assert "daily partitions are YYYY-MM-DD" in result.output or "is not a day" in result.output
    assert len(result.output) < 1000  # a 5,000-character key is not echoed back whole
    assert files_under(tmp_path) == set()


def test_extract_says_the_endpoint_is_not_partitioned_when_given_a_partition_it_has_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTEGRATION_PLATFORM_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(main, ["extract", "crm.companies", "--partition", "2025-03-01"])
    assert result.exit_code == 2
    assert "crm.companies is not partitioned: run it without a partition" in result.output
    assert files_under(tmp_path) == set()


def test_symlinked_data_folder_is_accepted_when_names_are_plain(tmp_path: Path) -> None:
    real = tmp_path / "disk"
    real.mkdir()
    os.symlink(real, tmp_path / "data")
    attempt = LandingZone(tmp_path / "data").open_attempt("crm", "contacts", "2025-03-01", "r")
    assert attempt.folder.resolve().is_relative_to(real)
