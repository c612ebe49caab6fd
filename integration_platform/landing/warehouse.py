"""The DuckDB warehouse: one writer at a time through a cross-process lock, and a published copy.

DuckDB allows one read-write process or many read-only ones, never both. So every write takes
`<warehouse>.lock` (bounded wait, clear error when it runs out), and BI tools read a copy that
`publish()` swaps in atomically: a reader holding the old copy keeps its file, never blocks us.
The copy is written in an older storage format (`PUBLISHED_STORAGE_VERSION`) because the DuckDB
drivers that BI tools bundle lag behind the DuckDB that writes the warehouse.
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

from integration_platform import environment
from integration_platform.landing.loader import DEFAULT_LOAD_MEMORY_MB


class WarehouseBusyError(RuntimeError):
    """Another process held the warehouse write lock for longer than we were willing to wait."""


class PublishedStorageVersionError(ValueError):
    """`PUBLISHED_STORAGE_VERSION` names no storage version this DuckDB can write."""


def check_storage_version(version: str) -> str:
    """The version when DuckDB can write it (or `as-is`), else PublishedStorageVersionError."""
    known = (environment.PUBLISHED_AS_IS, environment.DEFAULT_PUBLISHED_STORAGE_VERSION)
    if version not in known:
        with duckdb.connect(":memory:") as connection:  # DuckDB knows its own list
            _attach_as_published(connection, ":memory:", version)
    return version


def _attach_as_published(connection: duckdb.DuckDBPyConnection, path: str, version: str) -> None:
    try:
        connection.execute(f"ATTACH ? AS published (STORAGE_VERSION {_quoted(version)})", [path])
    except duckdb.InvalidInputException:
        raise PublishedStorageVersionError(
            f"{environment.PUBLISHED_STORAGE_VERSION_VARIABLE}={version!r} is not a storage "
            f"version DuckDB {duckdb.__version__} can write. Set it to a DuckDB release: "
            f"{environment.DEFAULT_PUBLISHED_STORAGE_VERSION} (the default; DuckDB 1.4 and later "
            f"open the copy), v1.0.0 (DuckDB 0.10 and later), or to "
            f"{environment.PUBLISHED_AS_IS} (a byte copy of the warehouse: the fastest, but only "
            "the DuckDB release that wrote the warehouse, or a newer one, opens it)"
        ) from None


class Warehouse:
    def __init__(
        self,
        path: Path,
        *,
        lock_timeout_seconds: float = 300.0,
        published_path: Path | None = None,
        load_memory_mb: int = DEFAULT_LOAD_MEMORY_MB,
        published_storage_version: str | None = None,
    ) -> None:
        self.path = path
        self.lock_timeout_seconds = lock_timeout_seconds
        self.load_memory_mb = load_memory_mb  # DuckDB's memory limit while a load runs
        self.published_path = published_path or path.with_name(f"{path.stem}.published.duckdb")
        # None: `PUBLISHED_STORAGE_VERSION`, default v1.4.0 (checked when the copy is written)
        self.published_storage_version = (
            published_storage_version or environment.published_storage_version()
        )
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
            if not self.path.exists():
                self._create()
            yield time.monotonic() - started
        finally:
            self._lock.release()

    def _create(self) -> None:
        """An empty warehouse in the published copy's storage format: DuckDB keeps writing a
        file in the format it was created in, so each publish is then a byte copy."""
        if self.published_storage_version == environment.PUBLISHED_AS_IS:
            return  # whoever opens it first creates it, in DuckDB's own format
        with duckdb.connect(":memory:") as connection:
            _attach_as_published(connection, str(self.path), self.published_storage_version)
            connection.execute("DETACH published")

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection, held only inside the write lock and closed on exit."""
        with self.locked():
            connection = duckdb.connect(str(self.path))
            try:
                yield connection
            finally:
                connection.close()

    def publish(self) -> Path:
        """Copy the closed warehouse next to itself and swap it in as the published file.

        Call inside `locked()`, after the writing connection is closed, so the copy is whole.
        The copy is in `published_storage_version`'s format: a byte copy when the warehouse is
        in that format or an older one (or with `as-is`), else a new file written in it.
        """
        tmp = self.published_path.with_name(f".{self.published_path.name}.tmp")
        tmp.unlink(missing_ok=True)  # left by a publish that was killed half-way
        if self.published_storage_version == environment.PUBLISHED_AS_IS:
            shutil.copyfile(self.path, tmp)
        else:
            self._write_copy(tmp, self.published_storage_version)
        os.replace(tmp, self.published_path)
        return self.published_path

    def _write_copy(self, target: Path, storage_version: str) -> None:
        """The warehouse in `storage_version`'s format (or an older one), at `target`.

        A warehouse created by an older `_create` or another DuckDB may be in a newer format
        than asked for: then every schema, table and view is written into a new file of that
        format (`COPY FROM DATABASE`), which costs about as much as reading the whole warehouse
        (benchmarks/README.md).
        """
        config: dict[str, str | bool | int | float | list[str]] = {
            "memory_limit": f"{self.load_memory_mb}MB",
            "temp_directory": f"{self.path}.tmp",  # a large table spills next to the warehouse
        }
        try:
            with duckdb.connect(":memory:", config=config) as connection:
                connection.execute("ATTACH ? AS warehouse (READ_ONLY)", [str(self.path)])
                written_for = connection.execute(
                    "SELECT tags['storage_version'] FROM duckdb_databases() "
                    "WHERE database_name = 'warehouse'"
                ).fetchone()
                if _readable(written_for[0] if written_for else None, by=storage_version):
                    connection.execute("DETACH warehouse")
                    shutil.copyfile(self.path, target)
                    return
                _attach_as_published(connection, str(target), storage_version)
                connection.execute("COPY FROM DATABASE warehouse TO published")
                connection.execute("DETACH published")  # checkpoints: the file is whole
        except BaseException:
            target.unlink(missing_ok=True)
            Path(f"{target}.wal").unlink(missing_ok=True)
            raise


def _readable(written_for: str | None, *, by: str) -> bool:
    """Whether a file DuckDB tags `v1.4.0+` (readable from that release on) is readable by the
    release `by` names (`v1.4.0`, `v2.0.0`, `latest`)."""
    oldest = _release(written_for.rstrip("+")) if written_for else None
    if oldest is None:
        return False
    if by == "latest":
        return True
    reader = _release(by)
    return reader is not None and oldest <= reader


def _release(version: str) -> tuple[int, ...] | None:
    parts = version.removeprefix("v").split(".")
    return tuple(int(part) for part in parts) if all(p.isdigit() for p in parts) else None


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
