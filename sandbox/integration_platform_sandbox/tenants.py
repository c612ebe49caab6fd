"""The sandbox's customer accounts: each tenant has its own credentials and its own population.

A real SaaS vendor serves many customer accounts behind one API; which account a request reads
follows from the credentials it carries. Tenant 0 is the default account: the credentials from
the environment (`config/sandbox.env`) and the population of the sandbox's seed, exactly as a
one-tenant sandbox. Tenant k > 0 gets credentials computed from (seed, k), never stored, and a
population from a seed mixed with k. Every vendor resolves a request's tenant the same way,
through `Tenants.find`, then serves that tenant's world only.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any, Generic, TypeVar

from integration_platform_sandbox.population import mix64
from integration_platform_sandbox.roster import VENDOR_URL_VARIABLES
from integration_platform_sandbox.world import SandboxCredentials, SandboxSettings, World

MAX_TENANTS = 1000
_TENANT_SALT = 0x7E4A17
_SEED_RANGE = 2**31

# How each credential of tenant k > 0 reads: {tenant} is k, {secret} a hex string and
# {secret_b64} base64 bytes (Standard Webhooks secrets are `whsec_` + base64), both computed
# from (seed, k, credential). Identifiers stay readable; secrets are unguessable only to
# someone without the seed, which is all a sandbox needs.
_DERIVED = {
    "crm_client_id": "sandbox-crm-client-t{tenant}",
    "crm_client_secret": "sandbox-crm-secret-t{tenant}-{secret}",
    "billing_api_key": "sk_sandbox_billing_t{tenant}_{secret}",
    "billing_webhook_secret": "whsec_{secret_b64}",
    "support_api_token": "sandbox-support-token-t{tenant}-{secret}",
    "analytics_key_id": "sandbox-analytics-t{tenant}",
    "analytics_signing_secret": "sandbox-analytics-hmac-secret-t{tenant}-{secret}",
    "clinic_api_token": "sandbox-clinic-token-t{tenant}-{secret}",
    "insurer_username": "sandbox-insurer-t{tenant}",
    "insurer_password": "sandbox-insurer-password-t{tenant}-{secret}",
}


class UnknownTenantError(LookupError):
    """A tenant number this sandbox does not serve."""


def tenant_seed(seed: int, tenant: int) -> int:
    """The seed of tenant `tenant`'s population: the sandbox's own for tenant 0."""
    return seed if tenant == 0 else mix64(seed, _TENANT_SALT, tenant) % _SEED_RANGE


def tenant_credentials(default: SandboxCredentials, seed: int, tenant: int) -> SandboxCredentials:
    """Tenant 0's are `default` (from the environment); tenant k's are computed from (seed, k)."""
    if tenant == 0:
        return default

    def value(attribute: str, template: str) -> str:
        digest = hashlib.blake2b(
            f"sandbox-tenant/{seed}/{tenant}/{attribute}".encode(), digest_size=24
        ).digest()
        return template.format(
            tenant=tenant, secret=digest[:12].hex(), secret_b64=base64.b64encode(digest).decode()
        )

    return SandboxCredentials(
        **{attribute: value(attribute, template) for attribute, template in _DERIVED.items()}
    )


def tenant_world(settings: SandboxSettings, default: SandboxCredentials, tenant: int) -> World:
    """Tenant `tenant`'s world: its credentials and the population of its own seed."""
    return World(
        replace(settings, seed=tenant_seed(settings.seed, tenant)),
        tenant_credentials(default, settings.seed, tenant),
        tenant,
    )


def client_variables(credentials: SandboxCredentials, vendor: str, base_url: str) -> dict[str, str]:
    """What a client of `vendor` needs, named as the source specs' variables.

    `{"CRM_BASE_URL": ..., "CRM_CLIENT_ID": ..., "CRM_CLIENT_SECRET": ...}`: the credential
    attributes named `<vendor>_...` and the vendor's base URL.
    """
    variables = {VENDOR_URL_VARIABLES[vendor]: base_url}
    for attribute, variable in SandboxCredentials.ENV.items():
        if attribute.startswith(f"{vendor}_"):
            variables[variable] = getattr(credentials, attribute)
    return variables


def client_listing(
    tenants: Tenants, numbers: Iterable[int], urls: Mapping[str, str]
) -> dict[str, Any]:
    """What `/_sandbox/tenants` and `sandbox tenants --json` print: per tenant, per vendor in
    `urls`, the variables of `client_variables`, in the shape of a client's credentials in the
    API: `{"tenants": [{"tenant": 1, "credentials": {"crm": {"CRM_CLIENT_ID": ...}}}]}`."""
    return {
        "tenants": [
            {
                "tenant": number,
                "credentials": {
                    vendor: client_variables(tenants.credentials(number), vendor, url)
                    for vendor, url in urls.items()
                },
            }
            for number in numbers
        ]
    }


class Tenants:
    """The tenants one sandbox serves; worlds are built on first use, so an idle tenant costs
    its credentials and nothing else."""

    def __init__(self, settings: SandboxSettings, default: SandboxCredentials) -> None:
        if not 1 <= settings.tenants <= MAX_TENANTS:
            raise ValueError(
                f"tenants={settings.tenants} is out of range: expected 1..{MAX_TENANTS}"
            )
        self.settings = settings
        self.count = settings.tenants
        self._default = default
        self._credentials = [
            tenant_credentials(default, settings.seed, tenant) for tenant in range(self.count)
        ]
        self._worlds: dict[int, World] = {}
        self._indexes: dict[tuple[str, ...], dict[bytes, int]] = {}
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.count))

    def _known(self, tenant: int) -> int:
        if not 0 <= tenant < self.count:
            raise UnknownTenantError(
                f"no tenant {tenant}: there are {self.count}, numbered "
                f"0..{self.count - 1} (--tenants N serves 0..N-1)"
            )
        return tenant

    def credentials(self, tenant: int) -> SandboxCredentials:
        return self._credentials[self._known(tenant)]

    def world(self, tenant: int) -> World:
        self._known(tenant)
        with self._lock:
            world = self._worlds.get(tenant)
            if world is None:
                world = self._worlds[tenant] = tenant_world(self.settings, self._default, tenant)
            return world

    def find(self, **given: str) -> int | None:
        """The tenant whose credentials hold exactly these values (`billing_api_key=...`).

        Looked up by a digest of the values, so a request costs one dict lookup whatever the
        number of tenants, and no secret is compared character by character.
        """
        names = tuple(sorted(given))
        with self._lock:
            index = self._indexes.get(names)
            if index is None:
                index = self._indexes[names] = {
                    _digest(getattr(credentials, name) for name in names): tenant
                    for tenant, credentials in enumerate(self._credentials)
                }
        return index.get(_digest(given[name] for name in names))


def _digest(values: Iterable[str]) -> bytes:
    whole = hashlib.sha256()
    for value in values:
        # Hashing each value first keeps ("ab", "c") and ("a", "bc") apart.
        whole.update(hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest())
    return whole.digest()


VendorState = TypeVar("VendorState")


class PerTenant(Generic[VendorState]):
    """One vendor's state for each tenant (its records, counters, quotas), built on the
    tenant's first request from the tenant's world."""

    def __init__(self, tenants: Tenants, build: Callable[[World], VendorState]) -> None:
        self.tenants = tenants
        self._build = build
        self._states: dict[int, VendorState] = {}
        self._lock = threading.Lock()

    def __getitem__(self, tenant: int) -> VendorState:
        state = self._states.get(tenant)
        if state is None:
            world = self.tenants.world(tenant)
            with self._lock:
                state = self._states.get(tenant)
                if state is None:
                    state = self._states[tenant] = self._build(world)
        return state

    def built(self) -> list[VendorState]:
        """The states built so far (tenants that never made a request have none)."""
        with self._lock:
            return list(self._states.values())
