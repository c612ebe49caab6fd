"""The ground truth of the sandbox without running it: which person each vendor record is."""

from __future__ import annotations

from collections.abc import Iterator

from integration_platform_sandbox.roster import VENDORS
from integration_platform_sandbox.server import VENDOR_TRUTH
from integration_platform_sandbox.tenants import tenant_world
from integration_platform_sandbox.vendors.common import TruthRow
from integration_platform_sandbox.world import SandboxCredentials, SandboxSettings


def ground_truth(
    settings: SandboxSettings,
    credentials: SandboxCredentials,
    vendors: tuple[str, ...] = VENDORS,
    tenant: int = 0,
) -> Iterator[tuple[str, TruthRow]]:
    """Every record of `vendors` for one tenant (default: the default tenant, 0)."""
    world = tenant_world(settings, credentials, tenant)
    for vendor in vendors:
        for row in VENDOR_TRUTH[vendor](world):
            yield vendor, row
