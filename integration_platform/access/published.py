"""The published, read-only warehouse copy, opened once per version of the file.

Publishing swaps a new file in (`os.replace`), so a connection keeps reading the version it
opened while the next request opens the new one; DuckDB lets any number of processes read a
file read-only, and each request works on its own cursor of the shared connection. The file
is attached (as catalog `published`) to an in-memory database rather than opened: DuckDB
caches opened files by path, and would hand back the replaced version.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

CATALOG = "published"


class PublishedWarehouse:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._version: str | None = None
        self._connection: duckdb.DuckDBPyConnection | None = None

    def version(self) -> str | None:
        """Changes whenever a new copy is published; None while nothing is."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        identity = f"{stat.st_ino}:{stat.st_mtime_ns}:{stat.st_size}"
        return hashlib.sha256(identity.encode()).hexdigest()[:16]

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """A cursor on the newest published copy (None while nothing is published)."""
        version = self.version()
        if version is None:
            yield None
            return
        with self._lock:
            if version != self._version or self._connection is None:
                # The previous connection is left to the garbage collector: another request
                # may still be reading through a cursor of it.
                connection = duckdb.connect(":memory:")
                connection.execute("set TimeZone = 'UTC'")
                connection.execute(f"attach ? as {CATALOG} (read_only)", [str(self.path)])
                self._connection = connection
                self._version = version
            cursor = self._connection.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    def close(self) -> None:
        """Close the shared connection (on shutdown; cursors still open keep it usable)."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
            self._connection, self._version = None, None
