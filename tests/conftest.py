"""Shared fixtures: the sandbox vendors as real HTTP servers on free loopback ports, and a
warehouse the real pipeline built for two clients."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from integration_platform import environment
from integration_platform_sandbox.chaos import ChaosSettings, Fault
from integration_platform_sandbox.server import Sandbox
from integration_platform_sandbox.world import SandboxCredentials, SandboxSettings
from tests.api.warehouse_fixture import BuiltWarehouse, build_published_warehouse

# `make test` runs the suite on two pytest-xdist workers (--dist loadgroup). The tests that
# share what a session fixture made (one platform, one marts warehouse, one demo run) go to one
# worker together, so it is made once; so does every other module, so its module fixtures are
# made once. The platform's tests, the longest group by far, are handed out first.
SHARED_FIXTURES = ("shared_platform", "marts_warehouse", "demo_run")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    groups = {}
    for item in items:
        shared = [name for name in SHARED_FIXTURES if name in item.fixturenames]
        groups[item.nodeid] = shared[0] if shared else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(groups[item.nodeid]))

    def first(item: pytest.Item) -> int:
        group = groups[item.nodeid]
        return SHARED_FIXTURES.index(group) if group in SHARED_FIXTURES else len(SHARED_FIXTURES)

    items.sort(key=first)  # stable: within a group, the order as collected


TEST_SEED = 7
TEST_CUSTOMERS = 300
# Starting takes about a second alone; on a crowded 2-core machine many times that.
START_SECONDS = 90.0


@pytest.fixture(autouse=True)
def local_instance_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test prepares the local Dagster instance unless it asks for the production one: a
    shell's INTEGRATION_PLATFORM_PROFILE must not send tests to its PostgreSQL."""
    monkeypatch.delenv("INTEGRATION_PLATFORM_PROFILE", raising=False)
    monkeypatch.delenv("DAGSTER_POSTGRES_URL", raising=False)


@pytest.fixture(scope="session")
def sandbox_credentials() -> SandboxCredentials:
    environment.load_sandbox_env()
    return SandboxCredentials.from_env()


@pytest.fixture(scope="session")
def sandbox(sandbox_credentials: SandboxCredentials) -> Iterator[Sandbox]:
    """One sandbox for the session, chaos off; tests switch chaos on through `chaos`."""
    server = Sandbox(
        SandboxSettings(seed=TEST_SEED, customers=TEST_CUSTOMERS), sandbox_credentials, base_port=0
    ).start(timeout=START_SECONDS)
    yield server
    server.stop()


@pytest.fixture
def make_sandbox(sandbox_credentials: SandboxCredentials) -> Iterator[Callable[..., Sandbox]]:
    """Start a private sandbox with custom settings; it stops when the test ends."""
    started: list[Sandbox] = []

    def make(**settings: Any) -> Sandbox:
        settings.setdefault("seed", TEST_SEED)
        settings.setdefault("customers", TEST_CUSTOMERS)
        server = Sandbox(SandboxSettings(**settings), sandbox_credentials, base_port=0).start(
            timeout=START_SECONDS
        )
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


ChaosSwitch = Callable[..., None]


@pytest.fixture
def chaos(sandbox: Sandbox) -> Iterator[ChaosSwitch]:
    """`chaos(vendor, settings=None, script=None)`: set one vendor's chaos; reset after the test."""

    def switch(
        vendor: str, settings: ChaosSettings | None = None, script: list[Fault | None] | None = None
    ) -> None:
        sandbox.engines[vendor].configure(settings or ChaosSettings(), script)

    yield switch
    for engine in sandbox.engines.values():
        engine.configure(ChaosSettings())


@pytest.fixture(scope="session")
def marts_warehouse(tmp_path_factory: pytest.TempPathFactory) -> BuiltWarehouse:
    """Built once by the real pipeline (sandbox with two tenants, materialize, dbt build):
    about a minute alone; its tests only ever read it, or copies of it."""
    return build_published_warehouse(tmp_path_factory.mktemp("marts"))
