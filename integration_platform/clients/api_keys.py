"""API keys: bearer tokens with scopes, optionally limited to one client, stored as hashes.

A token reads `ipk_<key id>_<secret>`; only the SHA-256 of the secret is stored (the secret is
32 random bytes, so a fast hash is enough: there is nothing to guess). The bootstrap admin key
comes from `INTEGRATION_PLATFORM_ADMIN_KEY` and has every scope.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from integration_platform.clients.errors import ClientNotFound, InvalidRequest, Problem
from integration_platform.clients.tables import ApiKeyRow, ClientRow, utc_now
from integration_platform.logs import register_secrets

ADMIN_KEY_VARIABLE = "INTEGRATION_PLATFORM_ADMIN_KEY"
SCOPES = ("clients:read", "clients:write", "syncs:write", "status:read", "data:read")
TOKEN_PREFIX = "ipk"  # noqa: S105 (a label, not a secret)
MIN_ADMIN_KEY_LENGTH = 24


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's id and name, what it may do and which client it is limited to."""

    key_id: str
    name: str
    scopes: frozenset[str]
    client_id: str | None

    def may_see(self, client_id: str) -> bool:
        return self.client_id is None or self.client_id == client_id


@dataclass(frozen=True)
class IssuedKey:
    principal: Principal
    token: str  # shown once, never stored
    created_at: datetime


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class ApiKeys:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def create(self, name: str, scopes: list[str], client_id: str | None = None) -> IssuedKey:
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise InvalidRequest(
                [
                    Problem(
                        "scopes",
                        f"unknown scope(s) {', '.join(unknown)}; choose from {', '.join(SCOPES)}"
                        if unknown
                        else f"give at least one of {', '.join(SCOPES)}",
                    )
                ]
            )
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        now = utc_now()
        with self.sessions() as session:
            if client_id is not None and session.get(ClientRow, client_id) is None:
                raise ClientNotFound(client_id)
            session.add(
                ApiKeyRow(
                    id=key_id,
                    secret_sha256=_sha256(secret),
                    name=name,
                    scopes=sorted(set(scopes)),
                    client_id=client_id,
                    created_at=now,
                )
            )
            session.commit()
        token = f"{TOKEN_PREFIX}_{key_id}_{secret}"
        register_secrets([token])
        return IssuedKey(Principal(key_id, name, frozenset(scopes), client_id), token, now)

    def revoke(self, key_id: str) -> bool:
        with self.sessions() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = utc_now()
            session.commit()
            return True

    def listing(self) -> list[tuple[Principal, datetime, datetime | None]]:
        with self.sessions() as session:
            return [
                (
                    Principal(r.id, r.name, frozenset(r.scopes), r.client_id),
                    r.created_at,
                    r.revoked_at,
                )
                for r in session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))
            ]

    def authenticate(self, token: str) -> Principal | None:
        """The principal a bearer token stands for, or None (unknown, revoked, malformed)."""
        admin = os.environ.get(ADMIN_KEY_VARIABLE, "")
        if len(admin) >= MIN_ADMIN_KEY_LENGTH and hmac.compare_digest(
            _sha256(token), _sha256(admin)
        ):
            return Principal("admin", "bootstrap admin key", frozenset(SCOPES), None)
        prefix, _, rest = token.partition("_")
        key_id, _, secret = rest.partition("_")
        if prefix != TOKEN_PREFIX or not key_id or not secret or len(token) > 200:
            return None
        with self.sessions() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None or row.revoked_at is not None:
                return None
            if not hmac.compare_digest(row.secret_sha256, _sha256(secret)):
                return None
            return Principal(row.id, row.name, frozenset(row.scopes), row.client_id)
