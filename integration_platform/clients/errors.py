"""What the store refuses, each with what to do about it; the API maps these onto 4xx answers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request, at a field path such as `credentials.crm.CRM_BASE_URL`."""

    path: str
    message: str


class StoreError(Exception):
    code = "store_error"


class InvalidRequest(StoreError):
    code = "validation_failed"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))


class ClientNotFound(StoreError):
    code = "client_not_found"

    def __init__(self, client_id: str) -> None:
        super().__init__(
            f"no client {client_id!r}: list clients with GET /clients, or "
            "register it with POST /clients"
        )


class ClientExists(StoreError):
    code = "client_exists"

    def __init__(self, client_id: str, active: bool) -> None:
        hint = (
            "pick another id, or PATCH it to change its name or credentials"
            if active
            else "it was deactivated and ids are never reused; pick another id"
        )
        super().__init__(f"client {client_id!r} already exists: {hint}")


class ClientInactive(StoreError):
    code = "client_inactive"

    def __init__(self, client_id: str) -> None:
        super().__init__(
            f"client {client_id!r} is deactivated: it can no longer be changed "
            "or synced; register a new client instead"
        )
