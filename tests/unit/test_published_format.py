"""The published copy's storage format: chosen by PUBLISHED_STORAGE_VERSION (default v1.4.0),
checked when the definitions load, and a bad value never costs the copy already published.
(`tests/integration/test_published_copy_clients.py` opens the copy with older DuckDB releases.)
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from integration_platform.assets.resources import default_resources
from integration_platform.environment import PUBLISHED_STORAGE_VERSION_VARIABLE
from integration_platform.landing.warehouse import PublishedStorageVersionError, Warehouse


def storage_version(path: Path) -> str:
    """What DuckDB says a file is readable by, e.g. `v1.4.0+`."""
    with duckdb.connect(":memory:") as connection:
        connection.execute("ATTACH ? AS f (READ_ONLY)", [str(path)])
        row = connection.execute(
            "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = 'f'"
        ).fetchone()
    assert row is not None
    return str(row[0])


def duckdb_warehouse(path: Path, rows: int = 3) -> Path:
    """A warehouse that DuckDB 2.0 created in its own format."""
    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE SCHEMA raw")
        connection.execute("CREATE TABLE raw.t AS SELECT range AS i FROM range(?)", [rows])
    return path


def publish(warehouse: Warehouse) -> Path:
    with warehouse.locked():
        return warehouse.publish()


def count(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as connection:
        row = connection.execute("SELECT count(*) FROM raw.t").fetchone()
    assert row is not None
    return int(row[0])


def test_copy_is_readable_by_duckdb_14_when_the_warehouse_is_in_duckdb_2_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PUBLISHED_STORAGE_VERSION_VARIABLE, raising=False)
    path = duckdb_warehouse(tmp_path / "warehouse.duckdb")
    assert storage_version(path) == "v2.0.0+"
    published = publish(Warehouse(path))
    assert storage_version(published) == "v1.4.0+"
    assert count(published) == 3


def test_copy_takes_the_chosen_format_when_the_variable_names_an_older_release(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PUBLISHED_STORAGE_VERSION_VARIABLE, "v1.0.0")
    published = publish(Warehouse(duckdb_warehouse(tmp_path / "warehouse.duckdb")))
    assert storage_version(published) == "v1.0.0+"


def test_copy_is_the_warehouse_byte_for_byte_when_the_variable_says_as_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PUBLISHED_STORAGE_VERSION_VARIABLE, "as-is")
    path = duckdb_warehouse(tmp_path / "warehouse.duckdb")
    published = publish(Warehouse(path))
    assert published.read_bytes() == path.read_bytes()


def test_new_warehouse_is_created_in_the_published_format_when_a_writer_first_locks_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PUBLISHED_STORAGE_VERSION_VARIABLE, raising=False)
    warehouse = Warehouse(tmp_path / "new" / "warehouse.duckdb")
    with warehouse.connect() as connection:  # a writer: loads, dbt and streams all lock first
        connection.execute("CREATE SCHEMA raw")
        connection.execute("CREATE TABLE raw.t AS SELECT range AS i FROM range(5)")
    assert storage_version(warehouse.path) == "v1.4.0+", "DuckDB keeps the file's format"
    published = publish(warehouse)
    assert published.read_bytes() == warehouse.path.read_bytes(), "already the right format"
    assert count(published) == 5


def test_publish_fails_naming_the_variable_and_keeps_the_last_copy_when_the_version_is_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = duckdb_warehouse(tmp_path / "warehouse.duckdb")
    monkeypatch.delenv(PUBLISHED_STORAGE_VERSION_VARIABLE, raising=False)
    published = publish(Warehouse(path))
    before = published.read_bytes()
    duckdb_warehouse(tmp_path / "other.duckdb", rows=10).replace(path)
    monkeypatch.setenv(PUBLISHED_STORAGE_VERSION_VARIABLE, "1.4")
    with pytest.raises(PublishedStorageVersionError) as caught:
        publish(Warehouse(path))
    message = str(caught.value)
    assert "PUBLISHED_STORAGE_VERSION='1.4' is not a storage version" in message
    assert "v1.4.0" in message and "as-is" in message
    assert published.read_bytes() == before, "the copy readers have is untouched"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "warehouse.duckdb",
        "warehouse.duckdb.lock",
        "warehouse.published.duckdb",
    ], "no half-written copy is left behind"


def test_definitions_fail_to_load_naming_the_variable_when_the_version_is_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PUBLISHED_STORAGE_VERSION_VARIABLE, "newest")
    with pytest.raises(PublishedStorageVersionError, match="PUBLISHED_STORAGE_VERSION='newest'"):
        default_resources()
