"""Tenants of the sandbox without HTTP: credentials derived from the seed, which tenant a set of
credentials names, ids that belong to one tenant, and what idle tenants cost."""

from __future__ import annotations

import tracemalloc
from dataclasses import astuple
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from integration_platform_sandbox.tenants import (
    Tenants,
    UnknownTenantError,
    tenant_credentials,
    tenant_world,
)
from integration_platform_sandbox.world import SandboxCredentials, SandboxSettings

DEFAULT = SandboxCredentials(*(f"default-{attribute}" for attribute in SandboxCredentials.ENV))
SECRETS = (
    "crm_client_secret",
    "billing_api_key",
    "billing_webhook_secret",
    "support_api_token",
    "analytics_signing_secret",
    "clinic_api_token",
    "insurer_password",
)


def test_tenant_secrets_are_the_same_when_derived_again_and_differ_when_the_seed_does() -> None:
    assert tenant_credentials(DEFAULT, 42, 3) == tenant_credentials(DEFAULT, 42, 3)
    at_42, at_43 = tenant_credentials(DEFAULT, 42, 3), tenant_credentials(DEFAULT, 43, 3)
    assert all(getattr(at_42, secret) != getattr(at_43, secret) for secret in SECRETS)


def test_tenant_zero_keeps_the_environments_credentials_when_there_are_more_tenants() -> None:
    assert tenant_credentials(DEFAULT, 42, 0) == DEFAULT
    assert Tenants(SandboxSettings(tenants=5), DEFAULT).credentials(0) == DEFAULT


def test_no_two_tenants_share_a_credential_when_a_sandbox_serves_two_hundred() -> None:
    tenants = Tenants(SandboxSettings(tenants=200), DEFAULT)
    values = [value for tenant in tenants for value in astuple(tenants.credentials(tenant))]
    assert len(values) == len(set(values))


def test_derived_webhook_secret_signs_standard_webhooks_when_a_tenant_uses_it() -> None:
    secret = tenant_credentials(DEFAULT, 42, 1).billing_webhook_secret
    signer = Webhook(secret)
    now = datetime.now(UTC)
    signature = signer.sign("msg_1", now, '{"ok": true}')
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    assert signer.verify('{"ok": true}', headers) == {"ok": True}


def test_find_names_the_tenant_whose_credentials_match_when_given_all_of_them() -> None:
    tenants = Tenants(SandboxSettings(tenants=10), DEFAULT)
    seven, eight = tenants.credentials(7), tenants.credentials(8)
    assert (
        tenants.find(crm_client_id=seven.crm_client_id, crm_client_secret=seven.crm_client_secret)
        == 7
    )
    assert tenants.find(billing_api_key=DEFAULT.billing_api_key) == 0
    assert (
        tenants.find(crm_client_id=seven.crm_client_id, crm_client_secret=eight.crm_client_secret)
        is None
    )
    assert tenants.find(billing_api_key="") is None


def test_a_tenant_past_the_last_is_refused_naming_the_range_when_asked_for() -> None:
    tenants = Tenants(SandboxSettings(tenants=2), DEFAULT)
    with pytest.raises(UnknownTenantError, match=r"no tenant 2: there are 2, numbered 0\.\.1"):
        tenants.world(2)


def test_record_ids_resolve_only_in_their_own_tenant_when_looked_up() -> None:
    settings = SandboxSettings(seed=7, customers=100)
    worlds = [tenant_world(settings, DEFAULT, tenant) for tenant in (0, 1, 2)]
    ids = [world.record_id("ct", 41) for world in worlds]
    assert len(set(ids)) == 3
    assert ids[0].startswith("ct_") and len(ids[0]) == len("ct_") + 8  # today's format
    assert ids[2].startswith("ct_t2_")
    for index, world in enumerate(worlds):
        assert [world.position_of("ct", record_id) for record_id in ids] == [
            41 if other == index else None for other in range(3)
        ]
    assert worlds[0].position_of("co", ids[0]) is None


def test_idle_tenants_cost_no_population_when_a_sandbox_serves_a_thousand_of_a_million() -> None:
    settings = SandboxSettings(customers=1_000_000, tenants=1000)
    tracemalloc.start()
    try:
        tenants = Tenants(settings, DEFAULT)
        last = tenants.credentials(999)
        assert tenants.find(support_api_token=last.support_api_token) == 999
        tenants.world(999)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A million people's roster for one vendor alone would take 5 MB.
    assert peak < 3 * 1024 * 1024, f"{peak / 2**20:.1f} MB"
