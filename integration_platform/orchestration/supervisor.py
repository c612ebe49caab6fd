"""Moves syncs along: queued → extracting (raw runs launched) → transforming (dbt run) → done.

`advance()` is one step for one sync and is safe to call from anywhere at any time: a claim in
the ledger keeps two workers off one sync, and launches find runs already launched. The API
runs `watch()` in a background thread (requests never wait for Dagster to launch a run).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

from integration_platform.clients.registry import ClientRegistry
from integration_platform.clients.syncs import Sync, SyncLedger
from integration_platform.clients.tables import utc_now
from integration_platform.logs import get_logger
from integration_platform.orchestration.dagster_graphql import DagsterRefused, DagsterUnavailable
from integration_platform.orchestration.orchestrator import (
    PART_TAG,
    RAW_STAGE,
    STAGE_TAG,
    SYNC_TAG,
    TRANSFORM_STAGE,
    Orchestrator,
)
from integration_platform.orchestration.runs import Run

# A sync that could not reach Dagster for this long fails, so the client can sync again.
LAUNCH_DEADLINE = timedelta(minutes=10)

_log = get_logger("integration_platform.orchestration")


class SyncSupervisor:
    def __init__(
        self,
        ledger: SyncLedger,
        registry: ClientRegistry,
        orchestrator: Orchestrator,
        *,
        on_finished: Callable[[Sync], None] | None = None,
        launch_deadline: timedelta = LAUNCH_DEADLINE,
    ) -> None:
        self.ledger, self.registry, self.orchestrator = ledger, registry, orchestrator
        self.on_finished = on_finished
        self.launch_deadline = launch_deadline
        self.wake = threading.Event()

    def advance(self, sync_id: str) -> Sync | None:
        sync = self.ledger.claim(sync_id)
        if sync is None:
            return self.ledger.get(sync_id)
        try:
            advanced = self._step(sync)
        except DagsterUnavailable as exc:
            if sync.state == "queued" and utc_now() - sync.created_at > self.launch_deadline:
                advanced = self.ledger.save(
                    sync,
                    state="failed",
                    error=(
                        f"Dagster could not be reached for {self.launch_deadline} ({exc}); start "
                        "the platform and sync again"
                    ),
                )
            else:
                advanced = self.ledger.save(sync, error=f"waiting for Dagster: {exc}")
        except DagsterRefused as exc:
            advanced = self.ledger.save(sync, state="failed", error=str(exc))
        except BaseException:
            self.ledger.save(sync)  # release the claim; the next pass tries again
            raise
        if not advanced.active and sync.active:
            _log.info(
                "sync_finished",
                sync_id=sync.id,
                client_id=sync.client_id,
                state=advanced.state,
                error=advanced.error,
            )
            if self.on_finished is not None:
                self.on_finished(advanced)
        return advanced

    def advance_all(self) -> None:
        for client_id in self.registry.awaiting_partition():
            try:
                if self.orchestrator.register_client(client_id):
                    self.registry.mark_partition_registered(client_id)
            except (DagsterUnavailable, DagsterRefused) as exc:
                _log.info("client_partition_pending", client_id=client_id, reason=str(exc))
                break
        for sync_id in self.ledger.active_ids():
            self.advance(sync_id)

    def watch(self, stop: threading.Event, interval_seconds: float) -> None:
        """Advance every active sync every `interval_seconds` (sooner when woken) until `stop`."""
        while not stop.is_set():
            try:
                self.advance_all()
            except Exception:  # a bad pass must not end the loop; the next one retries
                _log.exception("sync_supervisor_pass_failed")
            self.wake.wait(interval_seconds)
            self.wake.clear()

    def _step(self, sync: Sync) -> Sync:
        if sync.state == "queued":
            return self._launch_raw(sync)
        if sync.state == "extracting":
            return self._after_raw(sync)
        if sync.state == "transforming":
            return self._after_transform(sync)
        return self.ledger.save(sync)

    def _launch_raw(self, sync: Sync) -> Sync:
        client = self.registry.get(sync.client_id)
        if (
            client is not None
            and client.partition_registered_at is None
            and self.orchestrator.register_client(sync.client_id)
        ):
            self.registry.mark_partition_registered(sync.client_id)
        runs = {part: self.orchestrator.launch_raw(sync, part) for part in self._parts(sync)}
        return self.ledger.save(sync, state="extracting", raw_runs=runs, error=None)

    def _parts(self, sync: Sync) -> list[str]:
        return [part for source in sync.sources for part in self.orchestrator.raw_parts(source)]

    def _latest(self, sync: Sync, stage: str, part: str | None = None) -> Run | None:
        tags = {SYNC_TAG: sync.id, STAGE_TAG: stage}
        if part is not None:
            tags[PART_TAG] = part
        return self.orchestrator.reader.latest(tags)

    def _after_raw(self, sync: Sync) -> Sync:
        latest = {part: self._latest(sync, RAW_STAGE, part) for part in self._parts(sync)}
        runs = {s: run.run_id for s, run in latest.items() if run is not None}
        missing = sorted(s for s, run in latest.items() if run is None)
        if missing:
            return self.ledger.save(
                sync,
                state="failed",
                error=(
                    f"Dagster has no run of this sync for {', '.join(missing)} any more "
                    "(deleted?); "
                    "sync again"
                ),
            )
        if any(run.active or run.will_retry for run in latest.values() if run is not None):
            return self.ledger.save(sync, raw_runs={**sync.raw_runs, **runs}, error=None)
        failed = {
            s: run for s, run in latest.items() if run is not None and run.status != "SUCCESS"
        }
        if failed:
            reasons = [f"{source}: {self._reason(run)}" for source, run in sorted(failed.items())]
            return self.ledger.save(sync, state="failed", raw_runs=runs, error="; ".join(reasons))
        transform = self.orchestrator.launch_transform(sync)
        if transform is None:
            return self.ledger.save(sync, state="succeeded", raw_runs=runs, error=None)
        return self.ledger.save(
            sync, state="transforming", raw_runs=runs, transform_run_id=transform, error=None
        )

    def _after_transform(self, sync: Sync) -> Sync:
        run = self._latest(sync, TRANSFORM_STAGE)
        if run is None or run.active or run.will_retry:
            return self.ledger.save(sync)
        if run.status == "SUCCESS":
            return self.ledger.save(
                sync, state="succeeded", transform_run_id=run.run_id, error=None
            )
        return self.ledger.save(
            sync,
            state="failed",
            transform_run_id=run.run_id,
            error=f"transform: {self._reason(run)}",
        )

    def _reason(self, run: Run) -> str:
        if run.status == "CANCELED":
            return f"run {run.run_id} was canceled"
        return self.orchestrator.reader.failure(run.run_id) or f"run {run.run_id} failed"
