"""Small clients the sandbox contract tests use to talk to the vendors over real HTTP."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx

from integration_platform_sandbox.world import SandboxCredentials

# A vendor's first request builds its record pools: a second alone, many on a crowded machine.
TIMEOUT = 60.0


def ground_truth_ids(base_url: str, endpoint: str, tenant: int = 0) -> dict[str, int]:
    """record id → entity id from a vendor's /_sandbox/ground-truth CSV (of one tenant)."""
    response = httpx.get(
        f"{base_url}/_sandbox/ground-truth",
        params={"tenant": tenant} if tenant else None,
        timeout=TIMEOUT,
    )
    response.raise_for_status()
    rows = csv.DictReader(io.StringIO(response.text))
    return {row["record_id"]: int(row["entity_id"]) for row in rows if row["endpoint"] == endpoint}


def crm_token(base_url: str, credentials: SandboxCredentials) -> str:
    response = httpx.post(
        f"{base_url}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": credentials.crm_client_id,
            "client_secret": credentials.crm_client_secret,
        },
        timeout=TIMEOUT,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def crm_pages(base_url: str, token: str, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of a CRM collection, following next_cursor until it is absent."""
    pages: list[dict[str, Any]] = []
    cursor: str | None = None
    with httpx.Client(
        base_url=base_url, timeout=TIMEOUT, headers={"authorization": f"Bearer {token}"}
    ) as client:
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            response = client.get(path, params=query)
            response.raise_for_status()
            page = response.json()
            pages.append(page)
            cursor = page.get("next_cursor")
            if not cursor:
                return pages
            if len(pages) > 10_000:
                raise AssertionError("the CRM never stopped paginating")
