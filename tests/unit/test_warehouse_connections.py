"""The warehouse connections Dagster code opens (WarehouseResource, through dagster-duckdb's
DuckDBResource): one writer at a time under the write lock, readers on the published copy."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from integration_platform.assets.resources import WarehouseResource
from integration_platform.landing.warehouse import WarehouseBusyError


def built(tmp_path: Path, *, publish: bool = True) -> WarehouseResource:
    resource = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"), publish=publish)
    with resource.read_write() as connection:
        connection.execute("CREATE SCHEMA marts")
        connection.execute("CREATE TABLE marts.t AS SELECT range AS i FROM range(3)")
    if publish:
        store = resource.warehouse()
        with store.locked():
            store.publish()
    return resource


def test_a_second_writer_waits_for_the_lock_and_then_fails_when_one_holds_it(
    tmp_path: Path,
) -> None:
    resource = built(tmp_path)
    impatient = resource.model_copy(update={"lock_timeout_seconds": 0.2})
    with resource.read_write() as connection:
        connection.execute("INSERT INTO marts.t VALUES (3)")
        with pytest.raises(WarehouseBusyError, match="write lock"), impatient.read_write():
            pass
    with impatient.read_write() as connection:  # released with the connection
        assert connection.execute("SELECT count(*) FROM marts.t").fetchone() == (4,)


def test_readers_share_the_published_copy_and_cannot_write_when_a_writer_holds_the_warehouse(
    tmp_path: Path,
) -> None:
    resource = built(tmp_path)
    with resource.read_write() as writer, resource.read_only() as one, resource.read_only() as two:
        writer.execute("INSERT INTO marts.t VALUES (3)")  # not published yet
        assert one.execute("SELECT count(*) FROM marts.t").fetchone() == (3,)
        assert two.execute("SELECT count(*) FROM marts.t").fetchone() == (3,)
        with pytest.raises(duckdb.InvalidInputException, match=r"read.only"):
            one.execute("INSERT INTO marts.t VALUES (4)")


def test_a_reader_reads_the_warehouse_under_the_lock_when_nothing_is_published(
    tmp_path: Path,
) -> None:
    resource = built(tmp_path, publish=False)
    assert not resource.warehouse().published_path.exists()
    with resource.read_only() as reader:
        assert reader.execute("SELECT count(*) FROM marts.t").fetchone() == (3,)
        impatient = resource.model_copy(update={"lock_timeout_seconds": 0.2})
        with pytest.raises(WarehouseBusyError), impatient.read_write():
            pass
