"""SQL text the loader's steps share: quoting a value, and DuckDB settings for a while."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@contextmanager
def settings(connection: duckdb.DuckDBPyConnection, **values: object) -> Iterator[None]:
    """DuckDB settings for a while, then the values they had before."""
    before = {
        name: connection.execute(f"SELECT current_setting('{name}')").fetchall()[0][0]
        for name in values
    }
    for name, value in values.items():
        connection.execute(f"SET {name} = {sql_string(str(value))}")
    try:
        yield
    finally:
        for name, value in before.items():
            connection.execute(f"SET {name} = {sql_string(str(value))}")
