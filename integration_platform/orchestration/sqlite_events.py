"""The local profile's event log: Dagster's SQLite event log (one database per run, and an index
database), with each database's connection kept between events.

Dagster's `SqliteEventLogStorage` creates an SQLAlchemy engine, opens the file, commits and
disposes the engine again for every event it stores, twice for an asset event (the run's
database and the index). A dbt build of this project stores about 400 events, and the daemon
stores one `ASSET_MATERIALIZATION_PLANNED` event per asset and check when it creates the run.
Measured on the demo's instance (`integration-platform materialize --select 'key:"marts/*"'`,
in process, 2 cores with other work running, load 7-9, runs interleaved): 102 s and 110 s with
Dagster's storage, 63 s and 43 s with the connections kept; py-spy put 52% of the stock run's
samples in `store_event`, 38% in opening and closing connections.

What is kept is only the connection: every event is still its own committed transaction, so
other processes (the daemon, the webserver, other runs) see it at once, and SQLite's locking is
the same as before. At most `OPEN_RUN_DATABASES` run databases stay open per process (a
long-lived daemon sees every run), and a wipe closes them before removing their files.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SqliteEventLogStorage,
)
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine

# Run databases kept open per process, the most recently used; the index is always open.
OPEN_RUN_DATABASES = 16
# Dagster's own busy timeout for its SQLite files (sqlite_event_log.py).
BUSY_TIMEOUT_SECONDS = 30


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` whose databases stay open between events (module docstring).

    Configured in dagster.yaml (the local profile) with the same folder Dagster's default
    storage uses, `$DAGSTER_HOME/history/runs`, so an instance keeps its history."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        # Before Dagster's __init__: it may connect (it indexes a new instance's database).
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        super().__init__(os.path.expandvars(base_dir), inst_data)

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # Dagster's body, less the engine made and disposed each time.
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = create_engine(
            self.conn_string_for_shard(shard),
            connect_args={"timeout": BUSY_TIMEOUT_SECONDS},
            pool_size=1,
            max_overflow=2,
        )
        self._engines[shard] = engine
        runs = [name for name in self._engines if name != INDEX_SHARD_NAME]
        for name in runs[: max(0, len(runs) - OPEN_RUN_DATABASES)]:
            self._engines.pop(name).dispose()
        return engine

    def _close_all(self) -> None:
        while self._engines:
            self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        with self._db_lock:
            self._close_all()  # before Dagster removes the files
        super().wipe()

    def dispose(self) -> None:
        super().dispose()
        with self._db_lock:
            self._close_all()
