"""Where each stream stands: the id of the last event in raw, in `raw._stream_checkpoints`.

The row is written inside the transaction that loads the events (see `RawStreamSink`), so the
checkpoint can never run ahead of the data, nor fall behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import duckdb

TABLE = "raw._stream_checkpoints"

SCHEMA_SQL = f"""
CREATE SCHEMA IF NOT EXISTS raw;
CREATE TABLE IF NOT EXISTS {TABLE} (
    source VARCHAR, stream VARCHAR, last_event_id VARCHAR, updated_at TIMESTAMPTZ,
    PRIMARY KEY (source, stream));
"""

Statement = tuple[str, Sequence[object]]


def ensure_table(connection: duckdb.DuckDBPyConnection) -> None:
    connection.execute(SCHEMA_SQL)


def read(connection: duckdb.DuckDBPyConnection, source: str, stream: str) -> str | None:
    rows = connection.execute(
        f"SELECT last_event_id FROM {TABLE} WHERE source = ? AND stream = ?",  # noqa: S608
        [source, stream],
    ).fetchall()
    return str(rows[0][0]) if rows else None


def advance(source: str, stream: str, last_event_id: str) -> Statement:
    """The statement that records `last_event_id`, to run inside the load's transaction."""
    return (
        f"INSERT OR REPLACE INTO {TABLE} VALUES (?, ?, ?, ?)",  # noqa: S608
        [source, stream, last_event_id, datetime.now(UTC)],
    )
