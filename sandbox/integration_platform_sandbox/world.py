"""Sandbox settings, the demo credentials it accepts, and the world one tenant's vendors serve."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from integration_platform_sandbox.chaos import PROFILES, ChaosSettings
from integration_platform_sandbox.noise_levels import DEFAULT_NOISE, NoiseLevel
from integration_platform_sandbox.population import Population, mix64
from integration_platform_sandbox.roster import ALL_VENDORS, Roster


@dataclass(frozen=True)
class SandboxSettings:
    seed: int = 42
    customers: int = 1000
    chaos: ChaosSettings = field(default_factory=lambda: PROFILES["none"])
    # How noisy the vendors' records are; the default level is the sandbox's data as it always
    # was, heavier ones add families, twins, swaps and more damage (noise_levels.py).
    noise: NoiseLevel = DEFAULT_NOISE
    token_ttl_seconds: float = 3600.0
    # Billing's per-key limit: a fixed one-second window of this many requests.
    billing_requests_per_second: int = 50
    # Billing keeps rendered list pages up to this many MB (0: render every request). Pages
    # are pure functions of the seed and the query, so a benchmark can warm the cache once
    # and then measure its clients rather than the sandbox's Python rendering.
    billing_page_cache_mb: int = 0
    webhook_url: str | None = None
    webhook_events_per_second: float = 5.0
    stream_events_per_second: float = 50.0
    signature_max_age_seconds: float = 300.0
    # False: support refuses introspection queries, as Apollo Server does in production.
    support_introspection: bool = True
    # Customer accounts each vendor serves (tenant 0 is the default one; see tenants.py).
    tenants: int = 1


class MissingCredentialError(RuntimeError):
    """The sandbox was started without one of the credentials it issues to clients."""


@dataclass(frozen=True)
class SandboxCredentials:
    """The credentials the sandbox vendors accept: read from the environment like any secret.

    The sandbox-only values live in `config/sandbox.env`, which the CLI loads for variables
    that are not already set.
    """

    crm_client_id: str
    crm_client_secret: str
    billing_api_key: str
    billing_webhook_secret: str
    support_api_token: str
    analytics_key_id: str
    analytics_signing_secret: str
    clinic_api_token: str
    insurer_username: str
    insurer_password: str

    ENV = {
        "crm_client_id": "CRM_CLIENT_ID",
        "crm_client_secret": "CRM_CLIENT_SECRET",
        "billing_api_key": "BILLING_API_KEY",
        "billing_webhook_secret": "BILLING_WEBHOOK_SECRET",
        "support_api_token": "SUPPORT_API_TOKEN",
        "analytics_key_id": "ANALYTICS_KEY_ID",
        "analytics_signing_secret": "ANALYTICS_SIGNING_SECRET",
        "clinic_api_token": "CLINIC_API_TOKEN",
        "insurer_username": "INSURER_USERNAME",
        "insurer_password": "INSURER_PASSWORD",
    }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SandboxCredentials:
        env = os.environ if env is None else env
        missing = [var for var in cls.ENV.values() if not env.get(var)]
        if missing:
            raise MissingCredentialError(
                f"the sandbox needs these environment variables: {', '.join(missing)}. "
                "Load config/sandbox.env (the CLI does this for you) or export them."
            )
        return cls(**{attr: env[var] for attr, var in cls.ENV.items()})


class World:
    """Population, rosters and id scheme shared by the vendors of one tenant of a sandbox.

    Tenant 0's ids are `<prefix>_<8 hex>`; another tenant's carry its number,
    `<prefix>_t<tenant>_<8 hex>`, so no id is ever valid for two tenants.
    """

    def __init__(
        self, settings: SandboxSettings, credentials: SandboxCredentials, tenant: int = 0
    ) -> None:
        self.settings = settings
        self.credentials = credentials
        self.tenant = tenant
        self.population = Population(
            settings.seed,
            settings.customers,
            family_members=settings.noise.family_members,
            twins=settings.noise.twins,
        )
        self._id_tag = f"t{tenant}_" if tenant else ""
        self._rosters: dict[str, Roster] = {}
        self._id_keys: dict[str, int] = {}
        self._lock = threading.Lock()

    def roster(self, vendor: str) -> Roster:
        if vendor not in ALL_VENDORS:
            raise KeyError(f"no vendor {vendor!r}")
        with self._lock:
            if vendor not in self._rosters:
                self._rosters[vendor] = Roster(self.population, vendor)
            return self._rosters[vendor]

    def _id_key(self, prefix: str) -> int:
        """Each prefix scrambles differently, so ids of one position never look related."""
        key = self._id_keys.get(prefix)
        if key is None:
            key = mix64(self.settings.seed, 0x1D, *prefix.encode()) & 0xFFFFFFFF
            self._id_keys[prefix] = key
        return key

    def record_id(self, prefix: str, position: int) -> str:
        """An opaque, unique, stable id: multiplying by an odd number is a bijection mod 2**32."""
        scrambled = ((position * 2654435761) & 0xFFFFFFFF) ^ self._id_key(prefix)
        high = f"{position >> 32:x}" if position >> 32 else ""
        return f"{prefix}_{self._id_tag}{scrambled:08x}{high}"

    def position_of(self, prefix: str, record_id: str) -> int | None:
        """Inverse of `record_id`, or None when the id is not one of this tenant's."""
        match = _RECORD_ID.fullmatch(record_id)
        if match is None or match["prefix"] != prefix or (match["tag"] or "") != self._id_tag:
            return None
        scrambled = int(match["low"], 16)
        high = int(match["high"], 16) if match["high"] else 0
        low = ((scrambled ^ self._id_key(prefix)) * pow(2654435761, -1, 2**32)) & 0xFFFFFFFF
        return (high << 32) | low


_RECORD_ID = re.compile(
    r"(?P<prefix>[a-z]+)_(?P<tag>t[0-9]+_)?(?P<low>[0-9a-f]{8})"
    r"(?P<high>[0-9a-f]*)"
)
