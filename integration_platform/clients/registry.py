"""Integration clients: register, list, read, rotate credentials, deactivate.

Credentials are validated against the specs, encrypted per source, and never come back out
through this class except to `credentials_for()` (a run that needs them). Every value written
or read is registered with the log redaction, so it cannot reach a log line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from integration_platform.clients.crypto import CredentialCipher, load_cipher
from integration_platform.clients.database import database_url, open_store
from integration_platform.clients.errors import (
    ClientExists,
    ClientInactive,
    ClientNotFound,
    InvalidRequest,
)
from integration_platform.clients.tables import ClientRow, CredentialRow, utc_now
from integration_platform.clients.variables import credential_problems
from integration_platform.logs import register_secrets

# A credentials patch: per source, a value sets a variable and None removes it; a source
# mapped to None removes all of that source's credentials (JSON merge patch, RFC 7396).
CredentialsPatch = Mapping[str, Mapping[str, str | None] | None]


@dataclass(frozen=True)
class CredentialInfo:
    """What may be said about stored credentials: variable names and when they were set."""

    variables: list[str]
    rotated_at: datetime


@dataclass(frozen=True)
class Client:
    id: str
    name: str
    active: bool
    credentials_from_environment: bool
    created_at: datetime
    updated_at: datetime
    deactivated_at: datetime | None
    partition_registered_at: datetime | None
    credentials: dict[str, CredentialInfo] = field(default_factory=dict)


class ClientRegistry:
    def __init__(self, sessions: sessionmaker[Session], cipher: CredentialCipher) -> None:
        self.sessions = sessions
        self.cipher = cipher

    @classmethod
    def open_default(cls) -> ClientRegistry:
        """The registry of this process's store (`DATABASE_URL` or the data directory)."""
        return _default_registry(database_url())

    def create(
        self,
        client_id: str,
        name: str,
        credentials: Mapping[str, Mapping[str, str]] | None = None,
        *,
        credentials_from_environment: bool = False,
    ) -> Client:
        credentials = credentials or {}
        problems = credential_problems(credentials)
        if problems:
            raise InvalidRequest(problems)
        now = utc_now()
        with self.sessions() as session:
            existing = session.get(ClientRow, client_id)
            if existing is not None:
                raise ClientExists(client_id, existing.active)
            session.add(
                ClientRow(
                    id=client_id,
                    name=name,
                    active=True,
                    credentials_from_environment=credentials_from_environment,
                    created_at=now,
                    updated_at=now,
                )
            )
            for source, values in credentials.items():
                session.add(self._credential_row(client_id, source, dict(values), now))
            try:
                session.commit()
            except IntegrityError:  # registered by a concurrent request in between
                raise ClientExists(client_id, True) from None
        return self._require(client_id)

    def get(self, client_id: str) -> Client | None:
        with self.sessions() as session:
            row = session.get(ClientRow, client_id)
            return None if row is None else self._clients(session, [row])[0]

    def page(
        self,
        *,
        limit: int,
        after: str | None = None,
        only: str | None = None,
        include_inactive: bool = False,
    ) -> list[Client]:
        """Clients ordered by id, the first `limit` after `after`; `only` limits to one id."""
        query = select(ClientRow).order_by(ClientRow.id).limit(limit)
        if after is not None:
            query = query.where(ClientRow.id > after)
        if only is not None:
            query = query.where(ClientRow.id == only)
        if not include_inactive:
            query = query.where(ClientRow.active.is_(True))
        with self.sessions() as session:
            rows = list(session.scalars(query))
            return self._clients(session, rows)

    def update(
        self,
        client_id: str,
        *,
        name: str | None = None,
        credentials: CredentialsPatch | None = None,
    ) -> Client:
        now = utc_now()
        with self.sessions() as session:
            row = session.get(ClientRow, client_id)
            if row is None:
                raise ClientNotFound(client_id)
            if not row.active:
                raise ClientInactive(client_id)
            if name is not None:
                row.name = name
            for source, patch in (credentials or {}).items():
                self._patch_source(session, client_id, source, patch, now)
            row.updated_at = now
            session.commit()
        return self._require(client_id)

    def deactivate(self, client_id: str) -> Client:
        """The client stays (its data and history too); its credentials are erased."""
        now = utc_now()
        with self.sessions() as session:
            row = session.get(ClientRow, client_id)
            if row is None:
                raise ClientNotFound(client_id)
            if row.active:
                row.active, row.deactivated_at, row.updated_at = False, now, now
                for stored in session.scalars(
                    select(CredentialRow).where(CredentialRow.client_id == client_id)
                ):
                    session.delete(stored)
                session.commit()
        return self._require(client_id)

    def decrypted_credentials(self, client_id: str, source: str) -> dict[str, str] | None:
        with self.sessions() as session:
            row = session.get(CredentialRow, (client_id, source))
            if row is None:
                return None
            values = self.cipher.decrypt(row.ciphertext)
        register_secrets(values.values())
        return values

    def mark_partition_registered(self, client_id: str) -> None:
        with self.sessions() as session:
            row = session.get(ClientRow, client_id)
            if row is not None and row.partition_registered_at is None:
                row.partition_registered_at = utc_now()
                session.commit()

    def _patch_source(
        self,
        session: Session,
        client_id: str,
        source: str,
        patch: Mapping[str, str | None] | None,
        now: datetime,
    ) -> None:
        stored = session.get(CredentialRow, (client_id, source))
        if patch is None:
            if stored is not None:
                session.delete(stored)
            return
        values = self.cipher.decrypt(stored.ciphertext) if stored is not None else {}
        for name, value in patch.items():
            if value is None:
                values.pop(name, None)
            else:
                values[name] = value
        problems = credential_problems({source: values})
        if problems:
            raise InvalidRequest(problems)
        if stored is not None:
            session.delete(stored)
            session.flush()
        session.add(self._credential_row(client_id, source, values, now))

    def _credential_row(
        self, client_id: str, source: str, values: dict[str, str], now: datetime
    ) -> CredentialRow:
        register_secrets(values.values())
        return CredentialRow(
            client_id=client_id,
            source=source,
            ciphertext=self.cipher.encrypt(values),
            variables=sorted(values),
            rotated_at=now,
        )

    def _require(self, client_id: str) -> Client:
        client = self.get(client_id)
        if client is None:
            raise ClientNotFound(client_id)
        return client

    @staticmethod
    def _clients(session: Session, rows: list[ClientRow]) -> list[Client]:
        """Views of these rows, with what their credentials look like (one query for all)."""
        stored: dict[str, dict[str, CredentialInfo]] = {row.id: {} for row in rows}
        for credential in session.scalars(
            select(CredentialRow)
            .where(CredentialRow.client_id.in_(list(stored)))
            .order_by(CredentialRow.source)
        ):
            stored[credential.client_id][credential.source] = CredentialInfo(
                list(credential.variables), credential.rotated_at
            )
        return [
            Client(
                id=row.id,
                name=row.name,
                active=row.active,
                credentials_from_environment=row.credentials_from_environment,
                created_at=row.created_at,
                updated_at=row.updated_at,
                deactivated_at=row.deactivated_at,
                partition_registered_at=row.partition_registered_at,
                credentials=stored[row.id],
            )
            for row in rows
        ]


@cache
def _default_registry(url: str) -> ClientRegistry:
    return ClientRegistry(open_store(url), load_cipher())
