"""The DuckDB warehouse: one writer at a time through a cross-process lock, and a published copy.

DuckDB allows one read-write process or many read-only ones, never both. So every write takes
`<warehouse>.lock` (bounded wait, clear error when it runs out), and BI tools read a copy that
`publish()` swaps in atomically: a reader holding the old copy keeps its file, never blocks us.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from filelock import FileLock, Timeout

from integration_platform.landing.loader import DEFAULT_LOAD_MEMORY_MB


class WarehouseBusyError(RuntimeError):
    """Another process held the warehouse write lock for longer than we were willing to wait."""


class Warehouse:
    def __init__(
        self,
        path: Path,
        *,
        lock_timeout_seconds: float = 300.0,
        published_path: Path | None = None,
        load_memory_mb: int = DEFAULT_LOAD_MEMORY_MB,
    ) -> None:
        self.path = path
        self.lock_timeout_seconds = lock_timeout_seconds
        self.load_memory_mb = load_memory_mb  # DuckDB's memory limit while a load runs
        self.published_path = published_path or path.with_name(f"{path.stem}.published.duckdb")
        self._lock = FileLock(f"{path}.lock")

    @contextmanager
    def locked(self) -> Iterator[float]:
        """Hold the write lock; yields the seconds spent waiting for it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            self._lock.acquire(timeout=self.lock_timeout_seconds)
        except Timeout:
            raise WarehouseBusyError(
                f"waited {self.lock_timeout_seconds:.0f} s for the write lock on {self.path} "
                "and another load still holds it. Retry later, or raise the warehouse "
                "resource's lock_timeout_seconds if loads are simply long."
            ) from None
        try:
            yield time.monotonic() - started
        finally:
            self._lock.release()

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection, held only inside the write lock and closed on exit."""
        with self.locked():
            connection = duckdb.connect(str(self.path))
            try:
                yield connection
            finally:
                connection.close()

    def read_only(self) -> duckdb.DuckDBPyConnection:
        """Read the published copy (never the live file, which a writer may hold)."""
        return duckdb.connect(str(self.published_path), read_only=True)

    def publish(self) -> Path:
        """Copy the closed warehouse next to itself and swap it in as the published file.

        Call inside `locked()`, after the writing connection is closed, so the copy is whole.
        """
        tmp = self.published_path.with_name(f".{self.published_path.name}.tmp")
        shutil.copyfile(self.path, tmp)
        os.replace(tmp, self.published_path)
        return self.published_path
