"""The sync ledger: what was asked for, which Dagster runs carry it, and how it ended.

Two properties live here, in the database's unique constraints so no race can break them:
an `Idempotency-Key` returns the sync it first created, and a client has at most one active
(queued, extracting or transforming) sync, which a new request gets back instead of a second.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from integration_platform.clients.errors import StoreError
from integration_platform.clients.tables import SyncRow, utc_now

ACTIVE_STATES = ("queued", "extracting", "transforming")
TERMINAL_STATES = ("succeeded", "failed")
SyncState = Literal["queued", "extracting", "transforming", "succeeded", "failed"]
Reuse = Literal["created", "idempotency_key", "already_running"]


class IdempotencyKeyReused(StoreError):
    code = "idempotency_key_reused"

    def __init__(self, key: str) -> None:
        super().__init__(
            f"Idempotency-Key {key!r} was already used for a different sync "
            "request of this client: send a new key for a new request"
        )


@dataclass(frozen=True)
class SyncRequest:
    sources: tuple[str, ...]
    start_date: date
    end_date: date
    full_refresh: bool
    request_sha256: str  # of the request as sent, to tell a retry from a different request
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Sync:
    id: str
    client_id: str
    sources: list[str]
    start_date: date
    end_date: date
    full_refresh: bool
    idempotency_key: str | None
    state: SyncState
    raw_runs: dict[str, str]
    transform_run_id: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


@dataclass(frozen=True)
class Opened:
    sync: Sync
    reused: Reuse


def _view(row: SyncRow) -> Sync:
    return Sync(
        id=row.id,
        client_id=row.client_id,
        sources=list(row.sources),
        start_date=row.start_date,
        end_date=row.end_date,
        full_refresh=row.full_refresh,
        idempotency_key=row.idempotency_key,
        state=row.state,  # type: ignore[arg-type]
        raw_runs=dict(row.raw_runs or {}),
        transform_run_id=row.transform_run_id,
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
    )


class SyncLedger:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def open(self, client_id: str, request: SyncRequest) -> Opened:
        """A new queued sync, or the one this request already stands for."""
        for _ in range(3):  # a concurrent request may win a constraint between look and insert
            found = self._existing(client_id, request)
            if found is not None:
                return found
            now = utc_now()
            row = SyncRow(
                id=f"syn_{uuid.uuid4().hex}",
                client_id=client_id,
                sources=list(request.sources),
                start_date=request.start_date,
                end_date=request.end_date,
                full_refresh=request.full_refresh,
                idempotency_key=request.idempotency_key,
                request_sha256=request.request_sha256,
                state="queued",
                active_client_id=client_id,
                raw_runs={},
                created_at=now,
                updated_at=now,
            )
            with self.sessions() as session:
                session.add(row)
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                    continue
                return Opened(_view(row), "created")
        raise RuntimeError(f"could not open a sync for {client_id} after three attempts")

    def _existing(self, client_id: str, request: SyncRequest) -> Opened | None:
        with self.sessions() as session:
            if request.idempotency_key is not None:
                keyed = session.scalar(
                    select(SyncRow).where(
                        SyncRow.client_id == client_id,
                        SyncRow.idempotency_key == request.idempotency_key,
                    )
                )
                if keyed is not None:
                    if keyed.request_sha256 != request.request_sha256:
                        raise IdempotencyKeyReused(request.idempotency_key)
                    return Opened(_view(keyed), "idempotency_key")
            running = session.scalar(select(SyncRow).where(SyncRow.active_client_id == client_id))
            return None if running is None else Opened(_view(running), "already_running")

    def get(self, sync_id: str) -> Sync | None:
        with self.sessions() as session:
            row = session.get(SyncRow, sync_id)
            return None if row is None else _view(row)

    def latest(self, client_id: str) -> Sync | None:
        with self.sessions() as session:
            row = session.scalar(
                select(SyncRow)
                .where(SyncRow.client_id == client_id)
                .order_by(SyncRow.created_at.desc())
                .limit(1)
            )
            return None if row is None else _view(row)

    def discard(self, sync_id: str) -> None:
        """Forget a sync whose runs could not be launched (the client simply retries)."""
        with self.sessions() as session:
            row = session.get(SyncRow, sync_id)
            if row is not None:
                session.delete(row)
                session.commit()

    def record(self, sync: Sync, **changes: object) -> tuple[Sync, bool]:
        """Record what Dagster says of an active sync (state, raw_runs, transform_run_id,
        error): the sync as stored now, and whether this call ended it (True once, whoever
        observes its end first)."""
        now = utc_now()
        changed = replace(sync, **changes, updated_at=now)  # type: ignore[arg-type]
        ended = changed.state in TERMINAL_STATES
        if ended:
            changed = replace(changed, finished_at=now)
        with self.sessions() as session:
            result = session.execute(
                update(SyncRow)
                .where(SyncRow.id == sync.id, SyncRow.active_client_id.is_not(None))
                .values(
                    state=changed.state,
                    raw_runs=dict(changed.raw_runs),
                    transform_run_id=changed.transform_run_id,
                    error=changed.error,
                    updated_at=now,
                    finished_at=changed.finished_at,
                    active_client_id=None if ended else sync.client_id,
                )
            )
            session.commit()
        if result.rowcount != 1:  # type: ignore[attr-defined]
            stored = self.get(sync.id)  # it ended meanwhile: as the first observer saw it
            return (stored or changed), False
        return changed, ended
