"""The durable inbox: every accepted webhook, kept in SQLite until a drain lands it in raw.

Not the warehouse: DuckDB admits one writer process, and the receiver must acknowledge in
milliseconds whatever the pipeline is doing. SQLite in WAL mode lets the receiver append while
the sensor and the drain read. `synchronous=NORMAL` (the default) survives a crash of the
receiver process (a committed receipt is in the WAL, in the OS's hands); `FULL` also survives
a power cut, at one fsync per commit (the writer commits receipts in groups to share it).

Tables: `events` (one row per source and event id, so a redelivery is a no-op), `ignored`
(authentic events of types no route takes) and `rejections` (what was refused, and why).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Literal

from integration_platform import environment

INBOX_PATH_VARIABLE = "WEBHOOK_INBOX_PATH"
Synchronous = Literal["NORMAL", "FULL"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- arrival order; never reused
    source TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    body BLOB NOT NULL,                      -- the request body exactly as signed
    body_sha256 TEXT NOT NULL,
    received_at TEXT NOT NULL,               -- ISO 8601, UTC
    drained_at TEXT,
    drained_run_id TEXT,
    UNIQUE (source, event_id)
);
CREATE INDEX IF NOT EXISTS events_undrained ON events (source, seq) WHERE drained_at IS NULL;
CREATE TABLE IF NOT EXISTS ignored (
    source TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (source, event_id)
);
CREATE TABLE IF NOT EXISTS rejections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    event_id TEXT,
    remote TEXT,
    headers TEXT NOT NULL,                   -- JSON, secrets redacted
    body_bytes INTEGER,
    at TEXT NOT NULL
);
"""


def inbox_path() -> Path:
    """`WEBHOOK_INBOX_PATH`, or `<data dir>/inbox/webhooks.sqlite`."""
    configured = os.environ.get(INBOX_PATH_VARIABLE)
    return Path(configured) if configured else environment.data_dir() / "inbox" / "webhooks.sqlite"


def utc_now() -> str:
    return datetime.now(UTC).isoformat()


class Outcome(Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # same id, same body: a redelivery, acknowledged again
    CONFLICT = "conflict"  # same id, another body: refused, the first body stays
    IGNORED = "ignored"
    RECORDED = "recorded"  # a rejection was written down


@dataclass(frozen=True)
class Receipt:
    """An authentic event to keep."""

    source: str
    event_id: str
    event_type: str
    endpoint: str
    partition_key: str
    body: bytes
    received_at: str

    @property
    def body_sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


@dataclass(frozen=True)
class Ignored:
    source: str
    event_id: str
    event_type: str
    received_at: str


@dataclass(frozen=True)
class Rejection:
    source: str
    status: int
    reason: str
    detail: str
    event_id: str | None
    remote: str | None
    headers: str
    body_bytes: int | None
    at: str


InboxWrite = Receipt | Ignored | Rejection


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    event_id: str
    event_type: str
    endpoint: str
    partition_key: str
    body: bytes
    received_at: str


@dataclass(frozen=True)
class Batch:
    """A run's worth of undrained events of one source: arrival numbers first..last."""

    source: str
    first_seq: int
    last_seq: int
    events: int
    first_received_at: str = ""
    """When its oldest event arrived (ISO 8601, UTC)."""

    @property
    def key(self) -> str:
        return f"{self.source}:{self.first_seq}-{self.last_seq}"


class Inbox:
    """One connection to the inbox file; use it from one thread at a time."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: Synchronous = "NORMAL",
        busy_timeout_seconds: float = 30.0,
        autocheckpoint: bool = True,
    ) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode; transactions are explicit (BEGIN IMMEDIATE for writes).
        self._connection = sqlite3.connect(
            path, timeout=busy_timeout_seconds, isolation_level=None, check_same_thread=False
        )
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute(f"PRAGMA synchronous={synchronous}")
        if not autocheckpoint:
            # The commit that crosses the WAL threshold would otherwise copy the WAL into the
            # database and fsync it, stalling every acknowledgement waiting on that commit.
            self._connection.execute("PRAGMA wal_autocheckpoint=0")
        self._connection.executescript(SCHEMA)

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> Inbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    # -- the receiver's side ---------------------------------------------------------------

    def checkpoint(self, mode: Literal["PASSIVE", "TRUNCATE"] = "PASSIVE") -> None:
        """Move committed WAL frames into the database file (PASSIVE never waits on writers)."""
        self._connection.execute(f"PRAGMA wal_checkpoint({mode})")

    def write(self, writes: Sequence[InboxWrite]) -> list[Outcome]:
        """Apply receipts, ignored events and rejections in one transaction, in order."""
        outcomes = []
        with self._transaction() as connection:
            for item in writes:
                if isinstance(item, Receipt):
                    outcomes.append(self._receive(connection, item))
                elif isinstance(item, Ignored):
                    connection.execute(
                        "INSERT OR IGNORE INTO ignored VALUES (?, ?, ?, ?)",
                        (item.source, item.event_id, item.event_type, item.received_at),
                    )
                    outcomes.append(Outcome.IGNORED)
                else:
                    connection.execute(
                        "INSERT INTO rejections (source, status, reason, detail, event_id, "
                        "remote, headers, body_bytes, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            item.source,
                            item.status,
                            item.reason,
                            item.detail,
                            item.event_id,
                            item.remote,
                            item.headers,
                            item.body_bytes,
                            item.at,
                        ),
                    )
                    outcomes.append(Outcome.RECORDED)
        return outcomes

    @staticmethod
    def _receive(connection: sqlite3.Connection, receipt: Receipt) -> Outcome:
        digest = receipt.body_sha256
        cursor = connection.execute(
            "INSERT OR IGNORE INTO events (source, event_id, event_type, endpoint, "
            "partition_key, body, body_sha256, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                receipt.source,
                receipt.event_id,
                receipt.event_type,
                receipt.endpoint,
                receipt.partition_key,
                receipt.body,
                digest,
                receipt.received_at,
            ),
        )
        if cursor.rowcount == 1:
            return Outcome.ACCEPTED
        (kept,) = connection.execute(
            "SELECT body_sha256 FROM events WHERE source = ? AND event_id = ?",
            (receipt.source, receipt.event_id),
        ).fetchone()
        return Outcome.DUPLICATE if kept == digest else Outcome.CONFLICT

    # -- the sensor's and the drain's side -------------------------------------------------

    def next_batch(self, source: str, *, after_seq: int, max_events: int) -> Batch | None:
        """The first `max_events` undrained events of `source` that arrived after `after_seq`."""
        row = self._connection.execute(
            "SELECT min(seq), max(seq), count(*), min(received_at) FROM (SELECT seq, "
            "received_at FROM events WHERE source = ? AND drained_at IS NULL AND seq > ? "
            "ORDER BY seq LIMIT ?)",
            (source, after_seq, max_events),
        ).fetchone()
        return Batch(source, *row) if row[2] else None

    def stranded_batch(
        self, source: str, *, up_to_seq: int, received_before: str, max_events: int
    ) -> Batch | None:
        """Undrained events already handed to a run (seq <= up_to_seq) that is long gone."""
        row = self._connection.execute(
            "SELECT min(seq), max(seq), count(*), min(received_at) FROM (SELECT seq, "
            "received_at FROM events WHERE source = ? AND drained_at IS NULL AND seq <= ? "
            "AND received_at < ? ORDER BY seq LIMIT ?)",
            (source, up_to_seq, received_before, max_events),
        ).fetchone()
        return Batch(source, *row) if row[2] else None

    def undrained(self, source: str, first_seq: int, last_seq: int) -> list[StoredEvent]:
        rows = self._connection.execute(
            "SELECT seq, event_id, event_type, endpoint, partition_key, body, received_at "
            "FROM events WHERE source = ? AND seq BETWEEN ? AND ? AND drained_at IS NULL "
            "ORDER BY seq",
            (source, first_seq, last_seq),
        ).fetchall()
        return [StoredEvent(*row) for row in rows]

    def mark_drained(self, source: str, seqs: Sequence[int], run_id: str) -> int:
        """Mark events as landed in raw; returns how many were still undrained."""
        marked = 0
        now = utc_now()
        with self._transaction() as connection:
            for start in range(0, len(seqs), 500):
                chunk = list(seqs[start : start + 500])
                marks = ", ".join("?" * len(chunk))
                marked += connection.execute(
                    f"UPDATE events SET drained_at = ?, drained_run_id = ? "  # noqa: S608
                    f"WHERE source = ? AND drained_at IS NULL AND seq IN ({marks})",
                    (now, run_id, source, *chunk),
                ).rowcount
        return marked

    def prune(self, older_than: str) -> int:
        """Forget drained events, ignored events and rejections from before `older_than`.

        Drained events are kept a while so a late redelivery is still recognised as one
        (vendors retry for days); one forgotten and delivered again is merged again on its
        primary key, which changes nothing.
        """
        with self._transaction() as connection:
            removed = connection.execute(
                "DELETE FROM events WHERE drained_at IS NOT NULL AND drained_at < ?", (older_than,)
            ).rowcount
            removed += connection.execute(
                "DELETE FROM ignored WHERE received_at < ?", (older_than,)
            ).rowcount
            removed += connection.execute(
                "DELETE FROM rejections WHERE at < ?", (older_than,)
            ).rowcount
        return removed

    def counts(self, source: str | None = None) -> dict[str, int]:
        """Events received, undrained, ignored and rejected (of one source, or all)."""
        where, params = ("WHERE source = ?", (source,)) if source else ("", ())
        received, undrained = self._connection.execute(
            f"SELECT count(*), count(*) FILTER (WHERE drained_at IS NULL) "  # noqa: S608
            f"FROM events {where}",
            params,
        ).fetchone()
        ignored = self._connection.execute(
            f"SELECT count(*) FROM ignored {where}",  # noqa: S608
            params,
        ).fetchone()[0]
        rejected = self._connection.execute(
            f"SELECT count(*) FROM rejections {where}",  # noqa: S608
            params,
        ).fetchone()[0]
        return {
            "received": received,
            "undrained": undrained,
            "ignored": ignored,
            "rejected": rejected,
        }

    def rejections(self, source: str | None = None) -> list[Rejection]:
        where, params = ("WHERE source = ?", (source,)) if source else ("", ())
        rows = self._connection.execute(
            f"SELECT source, status, reason, detail, event_id, remote, headers, "  # noqa: S608
            f"body_bytes, at FROM rejections {where} ORDER BY id",
            params,
        ).fetchall()
        return [Rejection(*row) for row in rows]
