"""The store's tables (SQLAlchemy 2 declarative); migrations/ creates and changes them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and read back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("store timestamps must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: dict[Any, Any] = {datetime: UtcDateTime(), date: Date()}


class ClientRow(Base):
    __tablename__ = "clients"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The operator's own client (the demo): runs read credentials from the process environment.
    credentials_from_environment: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deactivated_at: Mapped[datetime | None]
    # When Dagster learnt the client as a partition of `clients`; null until it has.
    partition_registered_at: Mapped[datetime | None]


class CredentialRow(Base):
    """One source's variables for one client, encrypted together (Fernet token)."""

    __tablename__ = "client_credentials"

    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True
    )
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    # Names only, so the API can say which variables are set without decrypting anything.
    variables: Mapped[list[str]] = mapped_column(JSON)
    rotated_at: Mapped[datetime]


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    client_id: Mapped[str | None] = mapped_column(ForeignKey("clients.id"), nullable=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class SyncRow(Base):
    __tablename__ = "syncs"
    __table_args__ = (
        UniqueConstraint("client_id", "idempotency_key", name="uq_syncs_client_idempotency_key"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"), index=True)
    sources: Mapped[list[str]] = mapped_column(JSON)
    start_date: Mapped[date]
    end_date: Mapped[date]
    full_refresh: Mapped[bool] = mapped_column(Boolean, default=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    request_sha256: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(20), index=True)
    # The client's id while this sync is queued or running, null once it ended: a unique
    # column, so a client can never have two active syncs, whatever races.
    active_client_id: Mapped[str | None] = mapped_column(String(40), unique=True, nullable=True)
    raw_runs: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    transform_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Unused since syncs are read from Dagster rather than advanced by a worker; kept so the
    # existing migrations and stores stay as they are.
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
