"""The sandbox serving several tenants, over real HTTP: each tenant's credentials read that
tenant's records only, tenant 0 is the one-tenant sandbox unchanged, and what `/_sandbox/tenants`
and `sandbox tenants` print is enough for the platform's own engine to extract every vendor."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from dotenv import dotenv_values

from integration_platform import environment
from integration_platform.cli import main
from integration_platform.extraction.runner import open_extractor
from integration_platform.specs.loader import load_spec
from integration_platform_sandbox import signing
from integration_platform_sandbox.chaos import ChaosSettings
from integration_platform_sandbox.roster import ALL_VENDORS, VENDORS
from integration_platform_sandbox.server import Sandbox
from integration_platform_sandbox.truth import ground_truth
from integration_platform_sandbox.world import SandboxCredentials, SandboxSettings
from tests.conftest import TEST_CUSTOMERS, TEST_SEED
from tests.e2e.test_platform_commands import free_port_block
from tests.integration.sandbox_client import crm_token, ground_truth_ids

TENANTS = 3
SPEC_FILES = {
    **{vendor: environment.PROJECT_ROOT / "sources" / f"{vendor}.yaml" for vendor in VENDORS},
    **{
        vendor: environment.PROJECT_ROOT / "sources_registry" / f"{vendor}.yaml"
        for vendor in ("clinic", "insurer")
    },
}
# The endpoint of each vendor that holds its customers (the one its ground truth lists).
CUSTOMER_ENDPOINTS = {
    "crm": "contacts",
    "billing": "customers",
    "support": "customers",
    "analytics": "users",
    "clinic": "patients",
    "insurer": "members",
}
CUSTOMER_BY_ID_QUERY = "query ($id: ID!) { customer(id: $id) { id email } }"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever an extraction keeps locally stays in the test's own folder."""
    monkeypatch.setenv("INTEGRATION_PLATFORM_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture(scope="module")
def tenants_sandbox(sandbox_credentials: SandboxCredentials) -> Iterator[Sandbox]:
    """Every vendor, three tenants, on consecutive ports from a base port as `sandbox up`
    serves them (so `sandbox tenants --base-port` names the right URLs)."""
    settings = SandboxSettings(seed=TEST_SEED, customers=TEST_CUSTOMERS, tenants=TENANTS)
    server = Sandbox(
        settings,
        sandbox_credentials,
        base_port=free_port_block(len(ALL_VENDORS)),
        vendors=ALL_VENDORS,
    ).start()
    yield server
    server.stop()


def listed_variables(sandbox: Sandbox, vendor: str, tenant: int) -> dict[str, str]:
    """What the vendor's own admin route tells a client of `tenant`."""
    response = httpx.get(
        f"{sandbox.urls[vendor]}/_sandbox/tenants", params={"tenant": tenant}, timeout=10
    )
    response.raise_for_status()
    [entry] = response.json()["tenants"]
    assert entry["tenant"] == tenant
    variables: dict[str, str] = entry["credentials"][vendor]
    return variables


async def extract_customers(vendor: str, variables: dict[str, str]) -> dict[str, Any]:
    """Record id → record of every customer of `vendor`, extracted by the platform's engine
    with a spec resolved from `variables` alone (nothing from this process's environment)."""
    spec = load_spec(SPEC_FILES[vendor], env=variables)
    endpoint = CUSTOMER_ENDPOINTS[vendor]
    key = spec.endpoints[endpoint].primary_keys[0]
    records: dict[str, Any] = {}
    async with open_extractor(spec, endpoint, state_dir=None, full_refresh=True) as extractor:
        async for page in extractor.pages():
            for record in page.records:
                assert record[key] not in records, f"{vendor} served {record[key]} twice"
                records[record[key]] = record
    return records


def truth_ids(sandbox: Sandbox, vendor: str, tenant: int) -> set[str]:
    return set(ground_truth_ids(sandbox.urls[vendor], CUSTOMER_ENDPOINTS[vendor], tenant))


# -- each tenant its own records -----------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("vendor", ALL_VENDORS)
async def test_each_tenant_reads_exactly_its_own_records_when_a_vendor_serves_three_tenants(
    vendor: str, tenants_sandbox: Sandbox
) -> None:
    served: dict[int, set[str]] = {}
    for tenant in range(TENANTS):
        records = await extract_customers(vendor, listed_variables(tenants_sandbox, vendor, tenant))
        served[tenant] = set(records)
        assert served[tenant] == truth_ids(tenants_sandbox, vendor, tenant), f"tenant {tenant}"
    assert all(served[tenant] for tenant in served)
    assert served[0].isdisjoint(served[1])
    assert served[0].isdisjoint(served[2])
    assert served[1].isdisjoint(served[2])


@pytest.mark.anyio
async def test_tenants_hold_different_people_when_they_share_the_sandbox_seed(
    tenants_sandbox: Sandbox,
) -> None:
    emails = {}
    for tenant in (0, 1):
        records = await extract_customers("crm", listed_variables(tenants_sandbox, "crm", tenant))
        emails[tenant] = {
            record["email"].lower() for record in records.values() if record.get("email")
        }
    shared = emails[0] & emails[1]
    assert len(shared) < 0.02 * len(emails[0]), sorted(shared)[:5]


def test_tenant_zero_serves_what_a_one_tenant_sandbox_serves_when_more_tenants_run(
    tenants_sandbox: Sandbox, sandbox: Sandbox, sandbox_credentials: SandboxCredentials
) -> None:
    # The session's sandbox: same seed and size, one tenant, today's behaviour.
    assert sandbox.tenants.count == 1
    for vendor in VENDORS:
        truth_of_one = httpx.get(f"{sandbox.urls[vendor]}/_sandbox/ground-truth", timeout=30)
        truth_of_three = httpx.get(
            f"{tenants_sandbox.urls[vendor]}/_sandbox/ground-truth", timeout=30
        )
        assert truth_of_three.text == truth_of_one.text, vendor
    settings = SandboxSettings(seed=TEST_SEED, customers=TEST_CUSTOMERS)
    for vendor in ("clinic", "insurer"):
        expected = {
            (row.record_id, row.entity_id)
            for _, row in ground_truth(settings, sandbox_credentials, (vendor,))
        }
        served = ground_truth_ids(tenants_sandbox.urls[vendor], CUSTOMER_ENDPOINTS[vendor])
        assert set(served.items()) == expected, vendor
    headers = {"x-api-key": sandbox_credentials.billing_api_key}
    pages = [
        httpx.get(
            f"{server.urls['billing']}/v1/invoices",
            headers=headers,
            params={"limit": 50, "offset": 100},
            timeout=10,
        ).json()
        for server in (sandbox, tenants_sandbox)
    ]
    assert pages[0] == pages[1]
    assert listed_variables(tenants_sandbox, "crm", 0) == {
        "CRM_BASE_URL": tenants_sandbox.urls["crm"],
        "CRM_CLIENT_ID": sandbox_credentials.crm_client_id,
        "CRM_CLIENT_SECRET": sandbox_credentials.crm_client_secret,
    }


# -- credentials that mix two tenants --------------------------------------------------------------


def _mixed_request(sandbox: Sandbox, vendor: str) -> httpx.Response:
    """A request whose identifier is tenant 1's and whose secret is another tenant's."""
    one, other = sandbox.tenants.credentials(1), sandbox.tenants.credentials(2)
    url = sandbox.urls[vendor]
    if vendor == "crm":
        return httpx.post(
            f"{url}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": one.crm_client_id,
                "client_secret": sandbox.tenants.credentials(0).crm_client_secret,
            },
            timeout=10,
        )
    if vendor == "billing":
        return httpx.get(
            f"{url}/v1/customers",
            timeout=10,
            headers={"x-api-key": one.billing_api_key[:-4] + "0000"},
        )
    if vendor == "support":
        return httpx.post(
            f"{url}/graphql",
            json={"query": "{ customers { totalCount } }"},
            headers={"authorization": f"Bearer {one.support_api_token}x"},
            timeout=10,
        )
    if vendor == "analytics":
        headers = signing.signed_headers(
            one.analytics_key_id, other.analytics_signing_secret, "GET", "/v1/users"
        )
        return httpx.get(f"{url}/v1/users", headers=headers, timeout=10)
    if vendor == "clinic":
        return httpx.get(
            f"{url}/v1/patients",
            timeout=10,
            headers={"authorization": f"Bearer {other.clinic_api_token[:-1]}"},
        )
    basic = base64.b64encode(f"{one.insurer_username}:{other.insurer_password}".encode())
    return httpx.get(
        f"{url}/api/members", headers={"authorization": f"Basic {basic.decode()}"}, timeout=10
    )


@pytest.mark.parametrize("vendor", ALL_VENDORS)
def test_request_is_refused_when_its_credentials_mix_two_tenants_or_a_wrong_secret(
    vendor: str, tenants_sandbox: Sandbox
) -> None:
    response = _mixed_request(tenants_sandbox, vendor)
    assert response.status_code == 401, response.text
    assert "data" not in response.json()


def test_a_tenant_reads_nothing_when_it_asks_for_another_tenants_customer_by_id(
    tenants_sandbox: Sandbox,
) -> None:
    someone_of_two = sorted(truth_ids(tenants_sandbox, "support", 2))[0]

    def lookup(tenant: int) -> Any:
        token = tenants_sandbox.tenants.credentials(tenant).support_api_token
        query = {"query": CUSTOMER_BY_ID_QUERY, "variables": {"id": someone_of_two}}
        response = httpx.post(
            f"{tenants_sandbox.urls['support']}/graphql",
            json=query,
            headers={"authorization": f"Bearer {token}"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()["data"]["customer"]

    assert lookup(2)["id"] == someone_of_two
    assert lookup(1) is None
    assert lookup(0) is None


def test_the_stream_carries_only_the_signing_tenants_events_when_tenant_1_listens(
    tenants_sandbox: Sandbox,
) -> None:
    credentials = tenants_sandbox.tenants.credentials(1)
    headers = signing.signed_headers(
        credentials.analytics_key_id, credentials.analytics_signing_secret, "GET", "/v1/stream"
    )
    users = truth_ids(tenants_sandbox, "analytics", 1)
    owners = []
    with httpx.stream(
        "GET", f"{tenants_sandbox.urls['analytics']}/v1/stream", headers=headers, timeout=10
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                owners.append(json.loads(line[6:])["user_id"])
                if len(owners) == 5:
                    break
    assert set(owners) <= users


# -- admin routes per tenant ---------------------------------------------------------------------


def test_stats_count_only_that_tenants_records_and_tokens_when_asked_for_one_tenant(
    tenants_sandbox: Sandbox,
) -> None:
    url = tenants_sandbox.urls["crm"]

    def stats(tenant: int) -> dict[str, Any]:
        response = httpx.get(f"{url}/_sandbox/stats", params={"tenant": tenant}, timeout=10)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    before = {tenant: stats(tenant)["tokens_issued"] for tenant in (1, 2)}
    crm_token(url, tenants_sandbox.tenants.credentials(1))
    one, two = stats(1), stats(2)
    assert one["tenant"] == 1
    assert one["counts"]["contacts"] == len(truth_ids(tenants_sandbox, "crm", 1))
    assert two["counts"]["contacts"] == len(truth_ids(tenants_sandbox, "crm", 2))
    assert one["tokens_issued"] == before[1] + 1
    assert two["tokens_issued"] == before[2]


@pytest.mark.parametrize("route", ["stats", "ground-truth", "tenants"])
def test_admin_route_answers_400_naming_the_tenants_when_asked_for_one_that_does_not_exist(
    route: str, tenants_sandbox: Sandbox
) -> None:
    response = httpx.get(
        f"{tenants_sandbox.urls['billing']}/_sandbox/{route}",
        params={"tenant": TENANTS},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["message"] == f"tenant={TENANTS} is out of range: expected 0..2"


# -- per-tenant state inside one vendor ----------------------------------------------------------


def _billing(server: Sandbox, tenant: int, path: str, **params: Any) -> httpx.Response:
    key = server.tenants.credentials(tenant).billing_api_key
    return httpx.get(
        f"{server.urls['billing']}{path}", params=params, timeout=10, headers={"x-api-key": key}
    )


def test_billing_page_cache_answers_each_tenant_with_its_own_page_when_both_ask_for_the_same(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    server = make_sandbox(tenants=2, billing_page_cache_mb=4)
    first = [_billing(server, tenant, "/v1/customers", limit=20).json() for tenant in (0, 1)]
    again = [_billing(server, tenant, "/v1/customers", limit=20).json() for tenant in (0, 1)]
    assert again == first
    ids = [{customer["id"] for customer in page["data"]} for page in first]
    assert ids[0].isdisjoint(ids[1])
    assert ids[1] <= set(ground_truth_ids(server.urls["billing"], "customers", tenant=1))
    stats = httpx.get(f"{server.urls['billing']}/_sandbox/stats", timeout=10).json()
    assert stats["page_cache"]["hits"] == 2


def test_one_tenant_spending_its_billing_quota_leaves_another_tenants_whole_when_both_call(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    server = make_sandbox(tenants=2, billing_requests_per_second=3)
    with httpx.Client(base_url=server.urls["billing"], timeout=10) as client:

        def customers(tenant: int) -> httpx.Response:
            key = server.tenants.credentials(tenant).billing_api_key
            return client.get("/v1/customers", params={"limit": 1}, headers={"x-api-key": key})

        # Within one second tenant 0 spends its 3 requests (a window may end mid-way: then
        # the next one spends them again).
        spent = next(
            (
                response
                for response in (customers(0) for _ in range(10))
                if response.status_code == 429
            ),
            None,
        )
        other = customers(1)
    assert spent is not None, "tenant 0 was never limited"
    assert other.status_code == 200
    assert other.headers["x-ratelimit-remaining"] == "2"


def test_vendor_chaos_hits_every_tenant_when_a_fault_is_scripted(tenants_sandbox: Sandbox) -> None:
    engine = tenants_sandbox.engines["billing"]
    engine.configure(ChaosSettings(), ["503", "503"])
    try:
        statuses = [
            _billing(tenants_sandbox, tenant, "/v1/customers", limit=1).status_code
            for tenant in (2, 1, 2)
        ]
    finally:
        engine.configure(ChaosSettings())
    assert statuses == [503, 503, 200]


# -- the CLI ------------------------------------------------------------------------------------


def _cli(*arguments: str) -> str:
    result = CliRunner().invoke(main, list(arguments))
    assert result.exit_code == 0, result.output
    return result.output


def _tenants_cli(sandbox: Sandbox, *arguments: str) -> str:
    return _cli(
        "sandbox",
        "tenants",
        "--seed",
        str(TEST_SEED),
        "--tenants",
        str(TENANTS),
        "--vendors",
        "all",
        "--base-port",
        str(sandbox.ports["crm"]),
        *arguments,
    )


@pytest.mark.anyio
async def test_sandbox_tenants_json_resolves_every_spec_to_a_working_extraction_for_tenant_1(
    tenants_sandbox: Sandbox,
) -> None:
    listing = json.loads(_tenants_cli(tenants_sandbox, "--tenant", "1", "--json"))
    [entry] = listing["tenants"]
    assert entry["tenant"] == 1
    assert set(entry["credentials"]) == set(ALL_VENDORS)
    for vendor, variables in entry["credentials"].items():
        records = await extract_customers(vendor, variables)
        assert set(records) == truth_ids(tenants_sandbox, vendor, 1), vendor


def test_sandbox_tenants_prints_an_env_file_per_tenant_when_not_asked_for_json(
    tenants_sandbox: Sandbox,
) -> None:
    listing = json.loads(_tenants_cli(tenants_sandbox, "--json"))
    assert [entry["tenant"] for entry in listing["tenants"]] == [0, 1, 2]
    as_env = dotenv_values(stream=io.StringIO(_tenants_cli(tenants_sandbox, "--tenant", "2")))
    expected = {
        name: value
        for variables in listing["tenants"][2]["credentials"].values()
        for name, value in variables.items()
    }
    assert as_env == expected
    assert as_env["SUPPORT_API_TOKEN"] == tenants_sandbox.tenants.credentials(2).support_api_token


def test_sandbox_ground_truth_command_writes_what_the_vendors_serve_when_asked_for_tenant_1(
    tenants_sandbox: Sandbox,
) -> None:
    written = csv.DictReader(
        io.StringIO(
            _cli(
                "sandbox",
                "ground-truth",
                "--seed",
                str(TEST_SEED),
                "--customers",
                str(TEST_CUSTOMERS),
                "--vendors",
                "all",
                "--tenant",
                "1",
            )
        )
    )
    by_vendor: dict[str, dict[str, int]] = {vendor: {} for vendor in ALL_VENDORS}
    for row in written:
        by_vendor[row["vendor"]][row["record_id"]] = int(row["entity_id"])
    for vendor in ALL_VENDORS:
        assert by_vendor[vendor] == ground_truth_ids(
            tenants_sandbox.urls[vendor], CUSTOMER_ENDPOINTS[vendor], tenant=1
        )


def test_platform_launcher_serves_two_tenants_when_run_with_its_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from integration_platform import launcher

    launched: dict[str, Any] = {}

    def run_platform(**arguments: Any) -> int:
        launched.update(arguments)
        return 0

    monkeypatch.setattr(launcher, "run_platform", run_platform)
    CliRunner().invoke(main, ["up"])
    arguments = launched["sandbox_args"]
    assert arguments[arguments.index("--tenants") + 1] == "2"
