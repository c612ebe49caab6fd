"""The registry variant's vendors over real HTTP: auth, pages, what a record holds, the truth."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from integration_platform.cli import main
from integration_platform_sandbox.roster import REGISTRY_VENDORS
from integration_platform_sandbox.server import Sandbox
from integration_platform_sandbox.world import SandboxCredentials, SandboxSettings
from tests.integration.sandbox_client import ground_truth_ids

CUSTOMERS = 300


@pytest.fixture(scope="module")
def registry(sandbox_credentials: SandboxCredentials) -> Iterator[Sandbox]:
    server = Sandbox(
        SandboxSettings(seed=7, customers=CUSTOMERS),
        sandbox_credentials,
        base_port=0,
        vendors=REGISTRY_VENDORS,
    ).start()
    yield server
    server.stop()


def _pages(get: Any, path: str, records: str, params: list[dict[str, int]]) -> list[Any]:
    rows = []
    for page in params:
        response = get(path, params=page)
        response.raise_for_status()
        rows += response.json()[records]
    return rows


def test_clinic_serves_every_patient_once_by_page_when_the_token_is_right(
    registry: Sandbox, sandbox_credentials: SandboxCredentials
) -> None:
    url = registry.urls["clinic"]
    assert httpx.get(f"{url}/v1/patients").status_code == 401
    assert (
        httpx.get(f"{url}/v1/patients", headers={"Authorization": "Bearer wrong"}).status_code
        == 401
    )
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {sandbox_credentials.clinic_api_token}"}
    ) as client:
        first = client.get("/v1/patients", params={"per_page": 100}).json()
        pages = [{"page": n, "per_page": 100} for n in range(1, first["total_pages"] + 1)]
        patients = _pages(client.get, "/v1/patients", "patients", pages)
    truth = ground_truth_ids(url, "patients")
    assert sorted(p["patient_id"] for p in patients) == sorted(truth)
    assert not any("email" in p or "phone" in p for p in patients)
    assert {len(p["date_of_birth"]) for p in patients if p["date_of_birth"]} == {8, 10}


def test_insurer_serves_members_by_offset_when_basic_credentials_are_right(
    registry: Sandbox, sandbox_credentials: SandboxCredentials
) -> None:
    url = registry.urls["insurer"]
    assert (
        httpx.get(
            f"{url}/api/members", auth=(sandbox_credentials.insurer_username, "wrong")
        ).status_code
        == 401
    )
    with httpx.Client(
        base_url=url,
        auth=(sandbox_credentials.insurer_username, sandbox_credentials.insurer_password),
    ) as client:
        total = client.get("/api/members", params={"limit": 1}).json()["total"]
        members = _pages(
            client.get,
            "/api/members",
            "members",
            [{"offset": o, "limit": 200} for o in range(0, total, 200)],
        )
    assert sorted(m["member_no"] for m in members) == sorted(ground_truth_ids(url, "members"))
    assert {type(m["born"]) for m in members} == {int, type(None)}
    assert any(m["born"] is not None and m["born"] < 0 for m in members), "born before 1970"
    assert set(members[0]) == {"member_no", "name", "born", "address", "national_id", "updated"}


def test_ground_truth_lists_only_the_chosen_vendors_when_asked_for_the_registry() -> None:
    result = CliRunner().invoke(
        main, ["sandbox", "ground-truth", "--vendors", "registry", "--customers", "100"]
    )
    assert result.exit_code == 0, result.output
    vendors = {row["vendor"] for row in csv.DictReader(io.StringIO(result.output))}
    assert vendors == {"clinic", "insurer"}
    refused = CliRunner().invoke(main, ["sandbox", "up", "--vendors", "hospital"])
    assert refused.exit_code != 0 and "unknown vendor 'hospital'" in refused.output
