"""One run at a time per partition: a cross-process lease on the partition's landing folder.

Two runs of one partition at once (a schedule and a manual run, two backfills that overlap)
would continue the same unfinished attempt and load each other's half pages. The lease is an
OS file lock (`filelock`: released by the kernel when its process dies, so a killed run
never leaves a partition locked) on `<landing>/<source>/<endpoint>/<partition>/.lease`, taken
before the attempt is opened and held until the partition is loaded. The run that comes
second waits, then extracts afresh; past its wait it fails naming the run that holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
from filelock import FileLock, Timeout

from integration_platform.logs import get_logger

_log = get_logger("integration_platform.lease")

LEASE_FILE = ".lease"
HOLDER_FILE = ".lease-holder.json"


class PartitionBusyError(RuntimeError):
    """Another run held the partition for longer than this one was willing to wait."""


class PartitionLease:
    """The lease of one partition folder, for one run."""

    def __init__(
        self,
        folder: Path,
        *,
        what: str,
        run_id: str,
        timeout_seconds: float,
        poll_seconds: float = 0.25,
    ) -> None:
        self.folder = folder
        self.what = what  # "crm/contacts partition 2025-03-01", for messages
        self.run_id = run_id
        self.timeout_seconds = timeout_seconds
        self.poll_seconds = poll_seconds
        # thread_local=False: taken on the event loop, it may be released from another thread.
        self._lock = FileLock(folder / LEASE_FILE, thread_local=False)

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[float]:
        """Hold the lease for the block; yields the seconds spent waiting for it."""
        waited = await self.acquire()
        try:
            yield waited
        finally:
            self.release()

    async def acquire(self) -> float:
        self.folder.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        told = False
        while True:
            try:
                self._lock.acquire(blocking=False)
                break
            except Timeout:
                waited = time.monotonic() - started
                if waited >= self.timeout_seconds:
                    raise PartitionBusyError(
                        f"{self.what} is being materialized by {self.holder()}; waited "
                        f"{waited:.0f} s for it. Let that run finish (or cancel it in the "
                        "Dagster UI's Runs page), then run this one again; the wait is the "
                        "landing resource's lease_timeout_seconds."
                    ) from None
                if not told:
                    _log.info("partition_lease_wait", partition=self.what, holder=self.holder())
                    told = True
                await asyncio.sleep(self.poll_seconds)
        (self.folder / HOLDER_FILE).write_bytes(
            orjson.dumps(
                {
                    "run_id": self.run_id,
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": datetime.now(UTC).isoformat(),
                }
            )
        )
        return time.monotonic() - started

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.folder / HOLDER_FILE).unlink()
        self._lock.release()

    def holder(self) -> str:
        """Who holds the lease now, in words."""
        try:
            holder = orjson.loads((self.folder / HOLDER_FILE).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return "another run"
        return (
            f"run {holder.get('run_id')} (pid {holder.get('pid')} on "
            f"{holder.get('host')}, since {holder.get('since')})"
        )
