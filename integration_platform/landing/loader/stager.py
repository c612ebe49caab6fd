"""Staging an attempt's pages while they are still landing, then loading from what was staged."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb

from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.landing.contracts import Observed
from integration_platform.landing.loader.load import DriftPolicy, LoadMode, LoadResult, load_attempt
from integration_platform.landing.loader.sql import sql_string
from integration_platform.landing.loader.stage import (
    DEFAULT_LOAD_MEMORY_MB,
    READER_MB_PER_THREAD,
    merge_observed,
    observe,
    stage,
)
from integration_platform.landing.zone import Attempt, PageEntry
from integration_platform.logs import get_logger
from integration_platform.specs.models import SourceSpec

_log = get_logger("integration_platform.loader")


class Stager:
    """Stages an attempt's pages in a DuckDB instance of its own while they are still landing.

    Extraction keeps one core busy in Python; DuckDB reads the landed pages on another (it
    releases the GIL), so when the last page lands most of the partition is already staged
    and its schema observed, and `load()` has only the contract check and the transaction
    left. `load()` attaches the warehouse to this instance for that and detaches it after; a
    staging failure is not an error, the load then stages everything itself. Staging holds
    the same `memory_limit_mb` as a load and spills beyond it. Close it when done.
    """

    def __init__(
        self,
        spec: SourceSpec,
        endpoint: str,
        attempt: Attempt,
        *,
        temp_directory: Path,
        memory_limit_mb: int = DEFAULT_LOAD_MEMORY_MB,
        chunk_pages: int = 100,
        poll_seconds: float = 0.05,
    ) -> None:
        self.spec, self.endpoint, self.attempt = spec, endpoint, attempt
        self.memory_limit_mb = memory_limit_mb
        self._chunk_pages, self._poll_seconds = chunk_pages, poll_seconds
        self._threads = max(1, memory_limit_mb // READER_MB_PER_THREAD)
        self.connection = duckdb.connect(
            ":memory:",
            config={
                "memory_limit": f"{memory_limit_mb}MB",
                "threads": self._threads,
                "temp_directory": str(temp_directory),
            },
        )
        self._staged_entries = 0
        self._manifest_offset = 0  # bytes of the manifest already staged
        self._waiting: list[PageEntry] = []  # landed, not staged yet
        self._observed = Observed(0, {})
        self._error: BaseException | None = None
        self._landing = threading.Event()  # set: the extraction has finished landing
        self._thread = threading.Thread(target=self._follow, name="stager", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        try:
            while not self._landing.wait(self._poll_seconds):
                self._stage_new(minimum=self._chunk_pages)
        except BaseException as exc:  # handed to load(), which stages from scratch instead
            self._error = exc

    def _stage_new(self, minimum: int) -> None:
        # Only the manifest's new lines are read: this runs every poll, beside the extraction.
        new, self._manifest_offset = self.attempt.entries_after(self._manifest_offset)
        self._waiting += new
        entries = self._waiting
        # Wait for a whole chunk; at the end stage what is left (the tables, even if empty).
        if len(entries) < minimum or (not entries and self._staged_entries > 0):
            return
        self._waiting = []
        stage(
            self.connection,
            self.spec,
            self.endpoint,
            self.attempt,
            entries,
            append=self._staged_entries > 0,
            memory_limit_mb=self.memory_limit_mb,
            threads=self._threads,
        )
        if entries:
            self._observed = merge_observed(
                self._observed, observe(self.connection, (entries[0].page, entries[-1].page))
            )
        self._staged_entries += len(entries)

    def finish(self) -> Observed | None:
        """Stage what is left once landing has finished; None when staging failed."""
        self._landing.set()
        self._thread.join()
        if self._error is None:
            try:
                self._stage_new(minimum=0)
            except duckdb.Error as exc:
                self._error = exc
        if self._error is not None:
            _log.warning(
                "staging_failed",
                source=self.spec.source,
                endpoint=self.endpoint,
                error=str(self._error)[:500],
            )
            return None
        return self._observed

    def load(
        self,
        warehouse: Path,
        *,
        partition: str | None,
        run_id: str,
        client_id: str = DEMO_CLIENT_ID,
        mode: LoadMode = "replace",
        on_breaking_drift: DriftPolicy = "hold",
    ) -> LoadResult:
        """`load_attempt` into the warehouse file from what was staged; call under its lock."""
        observed = self.finish()
        connection = self.connection
        connection.execute(f"ATTACH {sql_string(str(warehouse))} AS warehouse")
        try:
            connection.execute("USE warehouse")
            connection.execute("RESET threads")  # staging is done: every core again
            return load_attempt(
                connection,
                spec=self.spec,
                endpoint=self.endpoint,
                attempt=self.attempt,
                partition=partition,
                run_id=run_id,
                client_id=client_id,
                mode=mode,
                memory_limit_mb=self.memory_limit_mb,
                staged=observed,
                on_breaking_drift=on_breaking_drift,
            )
        finally:
            connection.execute("USE memory")
            connection.execute("DETACH warehouse")

    def close(self) -> None:
        self._landing.set()
        self._thread.join()
        self.connection.close()

    def __enter__(self) -> Stager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
